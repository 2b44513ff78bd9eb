//! Fault injection on a `SimDisk`: what a crash does to the unsynced tail, and damage to data
//! at rest (bit flips, misdirected records, latent sector errors).
//!
//! Inputs: a `CrashTail` or a fault call with explicit positions or a `u64` seed. Outputs: the
//! mutated disk and a `CrashReport` for crashes. Invariants: every choice is a function of
//! the arguments and the disk contents (no OS randomness); at-rest damage only touches bytes
//! before the durable boundary, so recovery must refuse to open (`Corruption` or `Io`); a
//! crash never changes durable bytes, only what follows them.

use ferrokv_core::env::{Rng, SeededRng};

use super::disk::SECTOR_BYTES;
use super::disk::{CrashReport, CrashTail, DiskSector, DiskState, SimDisk, SyncCrash};
use super::record;

/// Log sectors touched by `len` bytes starting at log offset `start`.
fn sectors(start: usize, len: usize) -> std::ops::Range<usize> {
    if len == 0 {
        return 0..0;
    }
    start / SECTOR_BYTES..(start + len - 1) / SECTOR_BYTES + 1
}

/// Which bytes of an unsynced tail that starts at log offset `start` reach the platter, and
/// which read as zeros.
fn persist_tail(unsynced: &[u8], start: usize, tail: CrashTail) -> (Vec<u8>, CrashReport) {
    let len = unsynced.len();
    let mut kept = unsynced.to_vec();
    let mut zeroed = vec![false; len];
    let mut garbage = 0;
    match tail {
        CrashTail::DropAll => kept.clear(),
        CrashTail::KeepAll => {}
        CrashTail::KeepPrefix(bytes) => kept.truncate(bytes.min(len)),
        CrashTail::ZeroedFrom(bytes) => zeroed[bytes.min(len)..].fill(true),
        CrashTail::GarbageFrom { bytes, seed } => {
            let mut rng = SeededRng::new(seed);
            for chunk in kept[bytes.min(len)..].chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
            }
            garbage = len - bytes.min(len);
        }
        CrashTail::Scrambled { seed } => {
            let mut rng = SeededRng::new(seed);
            for sector in sectors(start, len) {
                if rng.ratio(1, 2) {
                    continue;
                }
                let from = (sector * SECTOR_BYTES).max(start) - start;
                let to = ((sector + 1) * SECTOR_BYTES).min(start + len) - start;
                zeroed[from..to].fill(true);
            }
        }
    }
    for (byte, zero) in kept.iter_mut().zip(&zeroed) {
        if *zero {
            *byte = 0;
        }
    }
    let zeroed_bytes = zeroed[..kept.len()].iter().filter(|zero| **zero).count();
    let zeroed_sectors = sectors(start, kept.len())
        .filter(|sector| {
            let from = (sector * SECTOR_BYTES).max(start) - start;
            let to = ((sector + 1) * SECTOR_BYTES).min(start + kept.len()) - start;
            zeroed[from..to].iter().any(|zero| *zero)
        })
        .collect();
    let report = CrashReport {
        unsynced_bytes: len,
        kept_bytes: kept.len() - zeroed_bytes - garbage,
        zeroed_bytes,
        zeroed_sectors,
        garbage_bytes: garbage,
    };
    (kept, report)
}

impl DiskState {
    /// Power loss: the unsynced tail persists as `tail` says; every open handle dies.
    pub(super) fn crash(&mut self, tail: CrashTail) {
        let unsynced = std::mem::take(&mut self.unsynced);
        let (kept, report) = persist_tail(&unsynced, self.log.len(), tail);
        assert!(kept.len() <= unsynced.len(), "a crash never grows the tail");
        self.log.extend_from_slice(&kept);
        self.generation += 1;
        self.last_crash = report;
    }

    /// Power loss in the middle of a synced write: a seeded prefix of the unsynced tail,
    /// always cutting the record being written (the last one), reaches the platter.
    pub(super) fn crash_during_sync(&mut self, seed: u64) {
        let len = self.unsynced.len();
        assert!(len > 0, "a synced write left bytes to sync");
        let keep = SeededRng::new(seed).below(len as u64) as usize;
        self.crash(CrashTail::KeepPrefix(keep));
    }

    /// Offsets of the durable records, in log order, up to the first damaged one.
    fn durable_record_offsets(&self) -> Vec<usize> {
        let durable = &self.log[..self.superblock.synced_len];
        let mut offsets = Vec::new();
        let mut offset = 0;
        while let Some((_, used)) = record::read_any(&durable[offset..]) {
            offsets.push(offset);
            offset += used;
        }
        offsets
    }

    fn durable_sector_count(&self) -> (usize, usize) {
        let image = self.image.len().div_ceil(SECTOR_BYTES);
        let log = self.superblock.synced_len.div_ceil(SECTOR_BYTES);
        (image, log)
    }
}

fn flip(bytes: &mut [u8], bit: usize) {
    let bit = bit % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
}

impl SimDisk {
    /// Power loss: keeps `tail` of the unsynced bytes, and kills every open engine handle.
    pub fn crash(&self, tail: CrashTail) {
        self.lock().crash(tail);
    }

    /// Arms a crash during the next synced write whose record is at least `bytes` long (a
    /// snapshot install, say): a prefix of the unsynced tail chosen by `seed` survives, cutting
    /// that record; the write fails with `Io` and the engine handle is dead. A later open
    /// recovers the state before that write. Other armed faults stay armed.
    pub fn crash_on_sync_at_least(&self, bytes: usize, seed: u64) {
        self.lock().faults.crash_on_sync = Some(SyncCrash {
            min_record_bytes: bytes,
            seed,
        });
    }

    /// Appends arbitrary `bytes` to the unsynced tail, as if a torn or misdirected write had
    /// left them past the last record: recovery must treat them as a torn tail. For fuzzing
    /// recovery with bytes no crash model produces.
    pub fn append_unsynced_garbage(&self, bytes: &[u8]) {
        self.lock().unsynced.extend_from_slice(bytes);
    }

    /// Flips one bit of the durable log; `bit` wraps around the durable bytes. Returns false
    /// if nothing is durable in the log.
    pub fn flip_log_bit(&self, bit: usize) -> bool {
        let mut state = self.lock();
        let durable = state.superblock.synced_len;
        if durable == 0 {
            return false;
        }
        flip(&mut state.log[..durable], bit);
        true
    }

    /// Flips one bit of the checkpoint image; `bit` wraps around it. Returns false if there
    /// is no image yet.
    pub fn flip_image_bit(&self, bit: usize) -> bool {
        let mut state = self.lock();
        if state.image.is_empty() {
            return false;
        }
        flip(&mut state.image, bit);
        true
    }

    /// A misdirected write: a copy of one durable record (chosen by `seed`) lands over another
    /// durable record, clipped to the log. Returns false if fewer than two records are durable.
    pub fn misdirect_durable_record(&self, seed: u64) -> bool {
        let mut state = self.lock();
        let offsets = state.durable_record_offsets();
        if offsets.len() < 2 {
            return false;
        }
        let mut rng = SeededRng::new(seed);
        let count = offsets.len() as u64;
        let source = rng.below(count) as usize;
        let target = (source + 1 + rng.below(count - 1) as usize) % offsets.len();
        assert_ne!(source, target);
        let end = offsets.get(source + 1).copied();
        let end = end.unwrap_or(state.superblock.synced_len);
        let copy = state.log[offsets[source]..end].to_vec();
        let at = offsets[target];
        let len = copy.len().min(state.log.len() - at);
        state.log[at..at + len].copy_from_slice(&copy[..len]);
        true
    }

    /// A latent sector error: reads of one durable sector (image sectors first, then log
    /// sectors; `index` wraps) fail from now on. Returns the sector, or None if nothing is
    /// durable. Only recovery reads the disk, so only `SimEngine::open` sees it.
    pub fn latent_sector_error(&self, index: usize) -> Option<DiskSector> {
        let mut state = self.lock();
        let (image, log) = state.durable_sector_count();
        if image + log == 0 {
            return None;
        }
        let index = index % (image + log);
        let sector = if index < image {
            DiskSector::Image(index)
        } else {
            DiskSector::Log(index - image)
        };
        state.bad_sectors.insert(sector);
        Some(sector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sectors_are_absolute() {
        assert_eq!(sectors(0, 0), 0..0);
        assert_eq!(sectors(0, 512), 0..1);
        assert_eq!(sectors(511, 2), 0..2);
        assert_eq!(sectors(1024, 1), 2..3);
    }

    #[test]
    fn zeroed_from_keeps_the_length_and_zeroes_the_rest() {
        let (kept, report) = persist_tail(&[7u8; 1000], 100, CrashTail::ZeroedFrom(600));
        assert_eq!(kept.len(), 1000);
        assert!(kept[..600].iter().all(|b| *b == 7) && kept[600..].iter().all(|b| *b == 0));
        assert_eq!(
            report,
            CrashReport {
                unsynced_bytes: 1000,
                kept_bytes: 600,
                zeroed_bytes: 400,
                zeroed_sectors: vec![1, 2],
                garbage_bytes: 0,
            }
        );
    }

    #[test]
    fn scrambled_zeroes_whole_sectors_only() {
        for seed in 0..32 {
            let (kept, report) = persist_tail(&[7u8; 2000], 300, CrashTail::Scrambled { seed });
            assert_eq!(kept.len(), 2000);
            for (i, byte) in kept.iter().enumerate() {
                let sector = (300 + i) / SECTOR_BYTES;
                let zeroed = report.zeroed_sectors.contains(&sector);
                assert_eq!(*byte, if zeroed { 0 } else { 7 }, "seed {seed} byte {i}");
            }
            assert_eq!(report.kept_bytes + report.zeroed_bytes, 2000);
        }
    }
}
