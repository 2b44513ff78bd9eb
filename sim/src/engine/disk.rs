//! A simulated disk holding one SimEngine's data, with power-loss and fault semantics.
//!
//! The disk survives node kills and restarts (the harness keeps it while madsim drops the
//! node). It holds three areas and a superblock:
//! - the checkpoint **image** (`image.rs`), checksummed;
//! - the **log** of records (`record.rs`) written since the image, each carrying its sequence
//!   number inside its checksummed header;
//! - the **unsynced** bytes: written, held by the OS page cache, lost or mangled by a crash;
//! - the **superblock**, written atomically by every fsync and checkpoint (a real store
//!   would keep redundant copies; it is trusted here): the image length, the sequence number
//!   the log starts at, and the durable boundary (synced log bytes and records).
//!
//! Invariants:
//! - While an engine is open every log byte is durable (`log.len() == synced_len`); log
//!   bytes past the boundary exist only between a crash and the next open.
//! - The durable boundary falls between records, never inside one.
//! - Nothing here draws OS randomness: every random fault takes a `u64` seed.
//!
//! Recovery (`recovery.rs`) replays image + log. Damage before the durable boundary is
//! corruption or an I/O error and the engine refuses to open; damage after it is a torn tail,
//! truncated. Faults (`faults.rs`) are crash tails (`CrashTail`), armed write faults
//! (`DiskFaults`) and at-rest damage (bit flips, misdirected records, latent sector errors).
//!
//! Latent sector errors are modelled at recovery only: at runtime the engine serves reads
//! from its memtable and never reads the disk. A slow fsync is not modelled here: the engine
//! is synchronous, so the simulator models one by pausing the node.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use ferrokv_core::env::{EngineError, WriteBatch};

use super::image;
use super::memtable::Memtable;
use super::record::{self, RecordDamage};

/// Bytes of one sector: the unit a crash persists or loses whole, and a read can fail on.
pub const SECTOR_BYTES: usize = 512;

/// Log bytes after which the log is folded into the checkpoint image, by default.
const CHECKPOINT_LOG_BYTES: usize = 4 * 1024 * 1024;

/// What a crash does to the unsynced tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashTail {
    /// Every unsynced byte is lost.
    DropAll,
    /// The first `n` unsynced bytes reached the platter; the rest are lost. `n` may end
    /// inside a record, which recovery then sees as torn.
    KeepPrefix(usize),
    /// Everything written survives (a process crash with an intact OS page cache).
    KeepAll,
    /// The first `n` unsynced bytes reached the platter; the rest of the tail reads as zeros
    /// (the file grew but the data never landed).
    ZeroedFrom(usize),
    /// The first `bytes` unsynced bytes reached the platter; the rest of the tail reads as
    /// garbage drawn from a generator seeded with `seed` (a sector torn mid-write).
    GarbageFrom {
        /// Unsynced bytes kept intact.
        bytes: usize,
        /// Seed of the garbage.
        seed: u64,
    },
    /// Unsynced writes persisted out of order: each 512-byte sector the tail touches
    /// survives or reads as zeros, chosen by a generator seeded with `seed`, so a later record
    /// may survive while an earlier one is zeros.
    Scrambled {
        /// Seed of the sector choice.
        seed: u64,
    },
}

/// A crash armed to strike during a large synced write (e.g. a snapshot install).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncCrash {
    /// The crash strikes the first synced write whose record is at least this many bytes.
    pub min_record_bytes: usize,
    /// Seed of how much of the unsynced tail survives (always less than all of it).
    pub seed: u64,
}

/// Faults armed on the disk; each fires on the next matching operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskFaults {
    /// The next sync fails with an I/O error (and the data it covered may be lost).
    pub fail_next_sync: bool,
    /// Writes that would grow the stored bytes beyond this are refused with `DiskFull`.
    pub capacity_bytes: Option<usize>,
    /// Power fails during the next large synced write: see `SimDisk::crash_on_sync_at_least`.
    pub crash_on_sync: Option<SyncCrash>,
}

/// A sector of the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DiskSector {
    /// Sector `n` of the checkpoint image.
    Image(usize),
    /// Sector `n` of the log (log byte offset / 512).
    Log(usize),
}

/// What the last crash did to the unsynced tail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Bytes written but not synced when power failed.
    pub unsynced_bytes: usize,
    /// Of those, bytes that reached the platter intact.
    pub kept_bytes: usize,
    /// Of those, bytes that read as zeros after the crash.
    pub zeroed_bytes: usize,
    /// Log sectors whose unsynced part reads as zeros, ascending.
    pub zeroed_sectors: Vec<usize>,
    /// Of those, bytes that read as garbage after the crash.
    pub garbage_bytes: usize,
}

/// What the last successful recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Live keys loaded from the checkpoint image.
    pub image_entries: usize,
    /// Records replayed from before the durable boundary.
    pub durable_records: usize,
    /// Records replayed in all: durable ones plus whole, in-order records past the boundary
    /// (which recovery then makes durable).
    pub records_replayed: usize,
    /// Bytes past the boundary that were dropped from the first damaged record on.
    pub torn_bytes_dropped: usize,
    /// What the first damaged record past the boundary looked like, if there was one.
    pub tail_damage: Option<RecordDamage>,
    /// Sectors overlapping the dropped bytes whose dropped part is all zeros.
    pub zero_sectors_dropped: usize,
    /// Whole records found after the damaged one and dropped with it: later batches that
    /// persisted while an earlier one did not (out-of-order persistence).
    pub orphan_records_dropped: usize,
}

/// The atomically written root of the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Superblock {
    /// Bytes of the checkpoint image (0: no checkpoint yet).
    pub(super) image_len: usize,
    /// Sequence number of the first log record.
    pub(super) log_base_seq: u64,
    /// Durable log bytes: everything before is synced.
    pub(super) synced_len: usize,
    /// Records in the durable log bytes.
    pub(super) synced_records: u64,
}

#[derive(Debug)]
pub(super) struct DiskState {
    pub(super) image: Vec<u8>,
    pub(super) log: Vec<u8>,
    pub(super) unsynced: Vec<u8>,
    pub(super) superblock: Superblock,
    /// Records in `log` + `unsynced`, counted from `superblock.log_base_seq`.
    pub(super) records_written: u64,
    /// Sectors whose reads fail.
    pub(super) bad_sectors: BTreeSet<DiskSector>,
    pub(super) faults: DiskFaults,
    /// Bumped by every open and crash; handles from an older generation are dead.
    pub(super) generation: u64,
    pub(super) syncs: u64,
    pub(super) checkpoint_log_bytes: usize,
    pub(super) last_recovery: RecoveryReport,
    pub(super) last_crash: CrashReport,
}

impl Default for DiskState {
    fn default() -> DiskState {
        DiskState {
            image: Vec::new(),
            log: Vec::new(),
            unsynced: Vec::new(),
            superblock: Superblock::default(),
            records_written: 0,
            bad_sectors: BTreeSet::new(),
            faults: DiskFaults::default(),
            generation: 0,
            syncs: 0,
            checkpoint_log_bytes: CHECKPOINT_LOG_BYTES,
            last_recovery: RecoveryReport::default(),
            last_crash: CrashReport::default(),
        }
    }
}

impl DiskState {
    pub(super) fn stored_bytes(&self) -> usize {
        self.image.len() + self.log.len() + self.unsynced.len()
    }

    fn assert_open_invariants(&self) {
        assert_eq!(
            self.log.len(),
            self.superblock.synced_len,
            "an open engine's log is all durable"
        );
        assert!(self.records_written >= self.superblock.synced_records);
        assert_eq!(self.image.len(), self.superblock.image_len);
    }

    /// Appends a record for `batch`; with `sync`, makes every written byte durable.
    pub(super) fn append(&mut self, batch: &WriteBatch, sync: bool) -> Result<(), EngineError> {
        self.assert_open_invariants();
        let seq = self.superblock.log_base_seq + self.records_written;
        let mut encoded = Vec::new();
        record::encode(batch, seq, &mut encoded);
        if let Some(capacity) = self.faults.capacity_bytes {
            if self.stored_bytes() + encoded.len() > capacity {
                return Err(EngineError::DiskFull {
                    bytes: encoded.len(),
                });
            }
        }
        self.unsynced.extend_from_slice(&encoded);
        self.records_written += 1;
        if !sync {
            return Ok(());
        }
        if let Some(crash) = self.faults.crash_on_sync {
            if encoded.len() >= crash.min_record_bytes {
                self.faults.crash_on_sync = None;
                self.crash_during_sync(crash.seed);
                return Err(EngineError::Io(format!(
                    "power lost during a {} byte synced write",
                    encoded.len()
                )));
            }
        }
        self.sync()
    }

    fn sync(&mut self) -> Result<(), EngineError> {
        if std::mem::take(&mut self.faults.fail_next_sync) {
            return Err(EngineError::Io("injected fsync failure".to_string()));
        }
        let unsynced = std::mem::take(&mut self.unsynced);
        self.log.extend_from_slice(&unsynced);
        self.superblock.synced_len = self.log.len();
        self.superblock.synced_records = self.records_written;
        self.syncs += 1;
        self.assert_open_invariants();
        Ok(())
    }

    /// Folds the durable log into the image when it is large and nothing is pending. The new
    /// image, the emptied log and the superblock are written as one atomic step.
    pub(super) fn maybe_checkpoint(&mut self, memtable: &Memtable) {
        if self.log.len() < self.checkpoint_log_bytes || !self.unsynced.is_empty() {
            return;
        }
        self.assert_open_invariants();
        let base_seq = self.superblock.log_base_seq + self.records_written;
        self.image = image::encode(&memtable.latest_image(), base_seq);
        self.log.clear();
        self.records_written = 0;
        self.bad_sectors.clear();
        self.superblock = Superblock {
            image_len: self.image.len(),
            log_base_seq: base_seq,
            synced_len: 0,
            synced_records: 0,
        };
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

    /// An empty disk that folds its log into a checkpoint image once the log holds
    /// `log_bytes` (the default is 4 MiB); small values make tests checkpoint often.
    pub fn with_checkpoint_log_bytes(log_bytes: usize) -> SimDisk {
        assert!(log_bytes > 0, "checkpoint threshold must be positive");
        let disk = SimDisk::new();
        disk.lock().checkpoint_log_bytes = log_bytes;
        disk
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().expect("sim disk lock poisoned")
    }

    /// Bytes held (image, log and unsynced tail).
    pub fn stored_bytes(&self) -> usize {
        self.lock().stored_bytes()
    }

    /// Bytes written since the last sync (what a crash may lose).
    pub fn unsynced_bytes(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// Log bytes before the durable boundary.
    pub fn durable_log_bytes(&self) -> usize {
        self.lock().superblock.synced_len
    }

    /// Bytes of the checkpoint image (0 before the first checkpoint).
    pub fn image_bytes(&self) -> usize {
        self.lock().image.len()
    }

    /// Successful syncs made by writes since the disk was created (recovery's own
    /// superblock update is not counted).
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Arms faults for the next operations, replacing any armed before.
    pub fn set_faults(&self, faults: DiskFaults) {
        self.lock().faults = faults;
    }

    /// What the most recent successful open recovered.
    pub fn last_recovery(&self) -> RecoveryReport {
        self.lock().last_recovery.clone()
    }

    /// What the most recent crash did to the unsynced tail.
    pub fn last_crash(&self) -> CrashReport {
        self.lock().last_crash.clone()
    }
}
