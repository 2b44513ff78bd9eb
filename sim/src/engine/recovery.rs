//! Recovery: rebuilds the memtable from a `SimDisk` after a crash or a clean close.
//!
//! Inputs: the image, the log and the superblock's durable boundary. Output: the memtable
//! and a `RecoveryReport`, or the error that keeps the store down.
//!
//! Rules:
//! - The image is read whole: an unreadable sector is `Io`; a failed checksum, or a base
//!   sequence number other than the superblock's, is `Corruption`.
//! - Before the durable boundary every record must read back whole, with the next sequence
//!   number, ending exactly at the boundary with the superblock's record count: an
//!   unreadable sector is `Io`, anything else wrong is `Corruption`. Nothing is repaired.
//! - Past the boundary, records replay while they are whole and in sequence; from the first
//!   that is not (cut, zeros, garbage, out of sequence, unreadable) everything is a torn tail
//!   and is truncated, so exactly a prefix of whole batches replays, never a later batch after
//!   a missing one.
//! - A successful recovery makes what it replayed durable (it writes the superblock), so a
//!   second crash cannot take back what the first recovery showed.
//! - A failed recovery changes nothing on the disk.

use ferrokv_core::env::EngineError;

use super::disk::{DiskSector, DiskState, RecoveryReport, SECTOR_BYTES};
use super::image::{self, Image};
use super::memtable::Memtable;
use super::record::{self, ReadRecord, RecordDamage};

/// Where the replay past the durable boundary stopped.
struct Tail {
    records: u64,
    end: usize,
    damage: Option<RecordDamage>,
}

impl DiskState {
    /// Whether any sector holding bytes `start..end` of an area fails its reads.
    fn unreadable(&self, area: fn(usize) -> DiskSector, start: usize, end: usize) -> bool {
        if start >= end {
            return false;
        }
        let first = start / SECTOR_BYTES;
        let last = (end - 1) / SECTOR_BYTES;
        self.bad_sectors
            .range(area(first)..=area(last))
            .next()
            .is_some()
    }

    fn read_image(&self) -> Result<Image, EngineError> {
        assert_eq!(self.image.len(), self.superblock.image_len);
        if self.image.is_empty() {
            assert_eq!(
                self.superblock.log_base_seq, 0,
                "no image: the log starts at 0"
            );
            return Ok(Image::default());
        }
        if self.unreadable(DiskSector::Image, 0, self.image.len()) {
            return Err(EngineError::Io(
                "checkpoint image: sector unreadable".into(),
            ));
        }
        let image = image::decode(&self.image)
            .map_err(|why| EngineError::Corruption(format!("checkpoint image: {why}")))?;
        if image.base_seq != self.superblock.log_base_seq {
            return Err(EngineError::Corruption(format!(
                "checkpoint image precedes record {}, superblock says {}",
                image.base_seq, self.superblock.log_base_seq
            )));
        }
        Ok(image)
    }

    /// Reads the record at `offset` of `log[..end]` expecting sequence number `seq`.
    fn read_record(&self, offset: usize, end: usize, seq: u64) -> ReadRecord {
        let bytes = &self.log[offset..end];
        if self.unreadable(DiskSector::Log, offset, offset + record::span(bytes)) {
            return ReadRecord::Damaged(RecordDamage::Unreadable);
        }
        record::read(bytes, seq)
    }

    /// Replays every durable record into `memtable`; returns how many there were.
    fn replay_durable(&self, memtable: &mut Memtable) -> Result<u64, EngineError> {
        let boundary = self.superblock.synced_len;
        let (mut offset, mut records) = (0, 0);
        while offset < boundary {
            let seq = self.superblock.log_base_seq + records;
            match self.read_record(offset, boundary, seq) {
                ReadRecord::Batch(batch, used) => {
                    memtable.apply(&batch);
                    offset += used;
                    records += 1;
                }
                ReadRecord::Damaged(RecordDamage::Unreadable) => {
                    return Err(EngineError::Io(format!(
                        "durable log offset {offset}: sector unreadable"
                    )));
                }
                ReadRecord::Damaged(damage) => {
                    return Err(EngineError::Corruption(format!(
                        "durable log offset {offset} (record {seq}): {damage}"
                    )));
                }
            }
        }
        assert_eq!(offset, boundary, "records never cross the durable boundary");
        if records != self.superblock.synced_records {
            return Err(EngineError::Corruption(format!(
                "durable log holds {records} records, superblock says {}",
                self.superblock.synced_records
            )));
        }
        Ok(records)
    }

    /// Replays whole in-sequence records past the durable boundary until the first damage.
    fn replay_tail(&self, memtable: &mut Memtable, durable_records: u64) -> Tail {
        let end = self.log.len();
        let mut tail = Tail {
            records: 0,
            end: self.superblock.synced_len,
            damage: None,
        };
        while tail.end < end {
            let seq = self.superblock.log_base_seq + durable_records + tail.records;
            match self.read_record(tail.end, end, seq) {
                ReadRecord::Batch(batch, used) => {
                    memtable.apply(&batch);
                    tail.end += used;
                    tail.records += 1;
                }
                ReadRecord::Damaged(damage) => {
                    tail.damage = Some(damage);
                    break;
                }
            }
        }
        tail
    }

    /// Sectors overlapping `log[from..]` whose part in that range is all zeros.
    fn zero_sectors_from(&self, from: usize) -> usize {
        let end = self.log.len();
        let mut start = from;
        let mut count = 0;
        while start < end {
            let stop = ((start / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
            if self.log[start..stop].iter().all(|byte| *byte == 0) {
                count += 1;
            }
            start = stop;
        }
        count
    }

    /// Whole records (any sequence number) found in `log[from..]` after the damaged record.
    fn orphans_from(&self, from: usize) -> usize {
        let mut offset = from + 1;
        let mut count = 0;
        while offset < self.log.len() {
            match record::read_any(&self.log[offset..]) {
                Some((_, used)) => {
                    count += 1;
                    offset += used;
                }
                None => offset += 1,
            }
        }
        count
    }

    /// Replays image + log into a memtable, truncating a torn tail and making the rest durable.
    pub(super) fn recover(&mut self) -> Result<Memtable, EngineError> {
        assert!(
            self.unsynced.is_empty(),
            "recovery starts after a crash or a clean close"
        );
        let image = self.read_image()?;
        let mut memtable = Memtable::from_image(&image.entries);
        let durable = self.replay_durable(&mut memtable)?;
        let tail = self.replay_tail(&mut memtable, durable);
        let report = RecoveryReport {
            image_entries: image.entries.len(),
            durable_records: durable as usize,
            records_replayed: (durable + tail.records) as usize,
            torn_bytes_dropped: self.log.len() - tail.end,
            tail_damage: tail.damage,
            zero_sectors_dropped: self.zero_sectors_from(tail.end),
            orphan_records_dropped: self.orphans_from(tail.end),
        };
        assert_eq!(report.tail_damage.is_some(), report.torn_bytes_dropped > 0);
        self.log.truncate(tail.end);
        let first_gone = self.log.len().div_ceil(SECTOR_BYTES);
        self.bad_sectors.retain(|sector| match sector {
            DiskSector::Log(index) => *index < first_gone,
            DiskSector::Image(_) => true,
        });
        self.superblock.synced_len = self.log.len();
        self.superblock.synced_records = durable + tail.records;
        self.records_written = durable + tail.records;
        self.last_recovery = report;
        Ok(memtable)
    }
}
