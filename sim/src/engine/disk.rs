//! A simulated disk holding one SimEngine's data, with power-loss semantics.
//!
//! The disk survives node kills and restarts (the harness keeps it while madsim drops the
//! node). It holds a checkpoint image, a durable log of records written since, and the bytes
//! written but not yet synced. A crash keeps a chosen prefix of the unsynced bytes, which may
//! cut the last record (a torn write); recovery drops the torn tail and refuses to open on a
//! corrupt complete record.

use std::sync::{Arc, Mutex, MutexGuard};

use ferrokv_core::env::{EngineError, WriteBatch};

use super::memtable::Memtable;
use super::record::{self, ReadRecord};

/// How much of the unsynced tail a crash keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashTail {
    /// Every unsynced byte is lost.
    DropAll,
    /// The first `n` unsynced bytes reached the platter; the rest are lost. `n` may end
    /// inside a record, which recovery then sees as torn.
    KeepPrefix(usize),
    /// Everything written survives (a process crash with an intact OS page cache).
    KeepAll,
}

/// Faults armed on the disk; each fires on the next matching operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskFaults {
    /// The next sync fails with an I/O error (and the data it covered may be lost).
    pub fail_next_sync: bool,
    /// Writes that would grow the stored bytes beyond this are refused with `DiskFull`.
    pub capacity_bytes: Option<usize>,
}

/// What the last recovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records replayed from the log.
    pub records_replayed: usize,
    /// Bytes of a torn tail record that were dropped.
    pub torn_bytes_dropped: usize,
}

#[derive(Debug, Default)]
pub(super) struct DiskState {
    pub(super) image: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) log: Vec<u8>,
    pub(super) unsynced: Vec<u8>,
    pub(super) faults: DiskFaults,
    /// Bumped by every open and crash; handles from an older generation are dead.
    pub(super) generation: u64,
    pub(super) last_recovery: RecoveryReport,
}

/// Log bytes after which the log is folded into the checkpoint image.
const CHECKPOINT_LOG_BYTES: usize = 4 * 1024 * 1024;

impl DiskState {
    pub(super) fn stored_bytes(&self) -> usize {
        let image: usize = self.image.iter().map(|(k, v)| k.len() + v.len()).sum();
        image + self.log.len() + self.unsynced.len()
    }

    /// Appends a record for `batch`; with `sync`, makes every written byte durable.
    pub(super) fn append(&mut self, batch: &WriteBatch, sync: bool) -> Result<(), EngineError> {
        let mut encoded = Vec::new();
        record::encode(batch, &mut encoded);
        if let Some(capacity) = self.faults.capacity_bytes {
            if self.stored_bytes() + encoded.len() > capacity {
                return Err(EngineError::DiskFull {
                    bytes: encoded.len(),
                });
            }
        }
        self.unsynced.extend_from_slice(&encoded);
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), EngineError> {
        if std::mem::take(&mut self.faults.fail_next_sync) {
            return Err(EngineError::Io("injected fsync failure".to_string()));
        }
        let unsynced = std::mem::take(&mut self.unsynced);
        self.log.extend_from_slice(&unsynced);
        Ok(())
    }

    /// Folds the durable log into the image when it is large and nothing is pending.
    pub(super) fn maybe_checkpoint(&mut self, memtable: &Memtable) {
        if self.log.len() >= CHECKPOINT_LOG_BYTES && self.unsynced.is_empty() {
            self.image = memtable.latest_image();
            self.log.clear();
        }
    }

    /// Replays image + log into a memtable, truncating a torn tail.
    pub(super) fn recover(&mut self) -> Result<Memtable, EngineError> {
        assert!(
            self.unsynced.is_empty(),
            "recovery starts after a crash or a clean close"
        );
        let mut memtable = Memtable::from_image(&self.image);
        let mut offset = 0;
        let mut report = RecoveryReport::default();
        while offset < self.log.len() {
            match record::read(&self.log[offset..]) {
                ReadRecord::Batch(batch, used) => {
                    memtable.apply(&batch);
                    offset += used;
                    report.records_replayed += 1;
                }
                ReadRecord::Torn => {
                    report.torn_bytes_dropped = self.log.len() - offset;
                    self.log.truncate(offset);
                }
                ReadRecord::Corrupt(why) => {
                    return Err(EngineError::Corruption(format!(
                        "log offset {offset}: {why}"
                    )));
                }
            }
        }
        self.last_recovery = report;
        Ok(memtable)
    }
}

/// A simulated disk. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    pub(super) state: Arc<Mutex<DiskState>>,
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().expect("sim disk lock poisoned")
    }

    /// Power loss: keeps `tail` of the unsynced bytes, and kills every open engine handle.
    pub fn crash(&self, tail: CrashTail) {
        let mut state = self.lock();
        let unsynced = std::mem::take(&mut state.unsynced);
        let keep = match tail {
            CrashTail::DropAll => 0,
            CrashTail::KeepPrefix(bytes) => bytes.min(unsynced.len()),
            CrashTail::KeepAll => unsynced.len(),
        };
        state.log.extend_from_slice(&unsynced[..keep]);
        state.generation += 1;
    }

    /// Bytes held (image, durable log and unsynced tail).
    pub fn stored_bytes(&self) -> usize {
        self.lock().stored_bytes()
    }

    /// Bytes written since the last sync (what a crash may lose).
    pub fn unsynced_bytes(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// Arms faults for the next operations.
    pub fn set_faults(&self, faults: DiskFaults) {
        self.lock().faults = faults;
    }

    /// Flips one bit of the durable log (a latent sector error); `bit` wraps around the log.
    /// Returns false if the log is empty.
    pub fn flip_log_bit(&self, bit: usize) -> bool {
        let mut state = self.lock();
        if state.log.is_empty() {
            return false;
        }
        let bit = bit % (state.log.len() * 8);
        state.log[bit / 8] ^= 1 << (bit % 8);
        true
    }

    /// What the most recent open recovered.
    pub fn last_recovery(&self) -> RecoveryReport {
        self.lock().last_recovery.clone()
    }
}
