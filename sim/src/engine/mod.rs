//! SimEngine: the `KvEngine` used under simulation, with power-loss and disk-fault semantics
//! that madsim's file system lacks.
//!
//! Writes go to an in-memory multi-version table (what readers see) and, as checksummed,
//! sequence-numbered records, to a `SimDisk`: unsynced bytes first, durable after a sync,
//! which also moves the disk's durable boundary. `SimDisk::crash` drops, tears, zeroes or
//! scrambles the unsynced tail (`CrashTail`); `SimEngine::open` replays what survived.
//!
//! Outcomes the engine guarantees (see `recovery.rs` for the rules):
//! - after any crash, open recovers every synced batch plus a prefix of whole later batches;
//! - damage before the durable boundary (bit flips in the log or the image, misdirected
//!   records) refuses to open with `Corruption`; an unreadable durable sector with `Io`;
//! - a failed sync fences the engine: every later write fails with `Fenced` until the store
//!   reopens; a crash (including one during a synced write, `crash_on_sync_at_least`) kills
//!   the handle: every later write fails with `Io`;
//! - a full disk refuses the write with `DiskFull` and changes nothing.
//!
//! Not modelled here: runtime read errors (reads are served from the memtable, so latent
//! sector errors surface at recovery only) and slow fsyncs (the engine is synchronous; the
//! simulator models a slow disk by pausing the node).

mod disk;
mod faults;
mod image;
mod memtable;
mod record;
mod recovery;

use std::sync::{Arc, Mutex, MutexGuard};

use ferrokv_core::env::{
    assert_scan_args, Cf, Direction, EngineError, KvEngine, KvPair, Snapshot, WriteBatch,
    WriteOptions,
};
use ferrokv_core::types::KeyRange;

pub use disk::{
    CrashReport, CrashTail, DiskFaults, DiskSector, RecoveryReport, SimDisk, SyncCrash,
    SECTOR_BYTES,
};
use memtable::Memtable;
pub use record::RecordDamage;

#[derive(Debug)]
struct Shared {
    disk: SimDisk,
    generation: u64,
    memtable: Mutex<Memtable>,
    fenced: Mutex<bool>,
}

/// A handle to an open SimEngine. Clones share it.
#[derive(Clone, Debug)]
pub struct SimEngine {
    shared: Arc<Shared>,
}

impl SimEngine {
    /// Opens the engine on `disk`, replaying its durable contents and whatever whole, in-order
    /// records survived past them. Any earlier handle on the same disk stops working. Fails
    /// with `Corruption` if durable data is damaged and `Io` if it cannot be read; a failed
    /// open changes nothing on the disk.
    pub fn open(disk: &SimDisk) -> Result<SimEngine, EngineError> {
        let mut state = disk.lock();
        if !state.unsynced.is_empty() {
            // A clean reopen without a crash: the OS still holds the unsynced bytes.
            let unsynced = std::mem::take(&mut state.unsynced);
            state.log.extend_from_slice(&unsynced);
        }
        let memtable = state.recover()?;
        state.generation += 1;
        let generation = state.generation;
        drop(state);
        let shared = Shared {
            disk: disk.clone(),
            generation,
            memtable: Mutex::new(memtable),
            fenced: Mutex::new(false),
        };
        Ok(SimEngine {
            shared: Arc::new(shared),
        })
    }

    /// The disk under this engine.
    pub fn disk(&self) -> &SimDisk {
        &self.shared.disk
    }

    fn memtable(&self) -> MutexGuard<'_, Memtable> {
        self.shared
            .memtable
            .lock()
            .expect("sim memtable lock poisoned")
    }
}

impl KvEngine for SimEngine {
    type Snap = SimSnapshot;

    fn snapshot(&self) -> SimSnapshot {
        let seq = self.memtable().acquire_snapshot();
        SimSnapshot {
            engine: self.clone(),
            seq,
        }
    }

    fn write(&self, batch: &WriteBatch, options: WriteOptions) -> Result<(), EngineError> {
        let mut fenced = self.shared.fenced.lock().expect("sim fence lock poisoned");
        let mut disk = self.shared.disk.lock();
        if disk.generation != self.shared.generation {
            return Err(EngineError::Io(
                "engine handle outlived a crash or reopen".into(),
            ));
        }
        if *fenced {
            return Err(EngineError::Fenced);
        }
        if let Err(error) = disk.append(batch, options.sync) {
            if matches!(error, EngineError::Io(_)) {
                *fenced = true;
            }
            return Err(error);
        }
        let mut memtable = self.memtable();
        memtable.apply(batch);
        disk.maybe_checkpoint(&memtable);
        Ok(())
    }
}

/// A consistent view of a SimEngine.
#[derive(Debug)]
pub struct SimSnapshot {
    engine: SimEngine,
    seq: u64,
}

impl Drop for SimSnapshot {
    fn drop(&mut self) {
        self.engine.memtable().release_snapshot(self.seq);
    }
}

impl Snapshot for SimSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.engine.memtable().get(self.seq, cf, key))
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<KvPair>, EngineError> {
        assert_scan_args(range, limit);
        if range.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .engine
            .memtable()
            .scan(self.seq, cf, range, limit, direction))
    }
}
