//! Disk faults: a failed fsync, a full disk and a crash in the middle of a large write (the
//! store fences itself and is then power-cycled), and damaged durable data (a flipped bit in
//! the log or the checkpoint image, a misdirected write, a latent sector error: the store
//! must refuse to start, and stays down for the rest of the run).

use std::time::Duration;

use ferrokv_core::env::{Rng, SeededRng};

use super::{secs, Fault, Nemesis};
use crate::engine::{CrashTail, DiskFaults};

impl Nemesis {
    pub(super) async fn disk_fault(&self, rng: &mut SeededRng, fsync: bool) {
        let Some(id) = self.claim_store(rng) else {
            return self.noop("disk fault: no free store".into());
        };
        let disk = self.cluster.store(id).disk.clone();
        let (what, faults) = if fsync {
            let faults = DiskFaults {
                fail_next_sync: true,
                ..DiskFaults::default()
            };
            ("fsync failure", faults)
        } else {
            let room = rng.below(8192) as usize;
            let faults = DiskFaults {
                capacity_bytes: Some(disk.stored_bytes() + room),
                ..DiskFaults::default()
            };
            ("disk full", faults)
        };
        self.count(if fsync {
            Fault::FsyncFailure
        } else {
            Fault::DiskFull
        });
        self.note(format!("store {id}: {what}"));
        disk.set_faults(faults);
        tokio::time::sleep(secs(rng, 1, 5)).await;
        disk.set_faults(DiskFaults::default());
        let tail = Self::crash_tail(rng);
        self.keep_trace(id).await;
        self.note(format!("store {id}: power-cycle after {what} ({tail:?})"));
        self.cluster.kill(id, tail);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.note(format!("restart store {id}"));
        self.cluster.restart(id);
        self.release(id);
    }

    /// A store crashes while writing a large batch (a snapshot install or a big apply):
    /// the write fails, the disk keeps a torn prefix, the store stops; it is power-cycled
    /// and must recover the state before that batch.
    pub(super) async fn crash_during_large_write(&self, rng: &mut SeededRng) {
        let Some(id) = self.claim_store(rng) else {
            return self.noop("crash during large write: no free store".into());
        };
        let disk = self.cluster.store(id).disk.clone();
        let bytes = [4096, 16 * 1024, 64 * 1024][rng.below(3) as usize];
        self.count(Fault::CrashDuringLargeWrite);
        self.note(format!(
            "store {id}: crash on the next synced write of {bytes}+ bytes"
        ));
        disk.crash_on_sync_at_least(bytes, rng.next_u64());
        tokio::time::sleep(secs(rng, 2, 8)).await;
        disk.set_faults(DiskFaults::default());
        self.keep_trace(id).await;
        self.note(format!(
            "store {id}: power-cycle after the large-write crash window"
        ));
        self.cluster.kill(id, CrashTail::DropAll);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.cluster.restart(id);
        self.release(id);
    }

    /// Damages one store's durable data (a flipped bit in its log or checkpoint image, a
    /// misdirected write, a latent sector error), at most once per run and only while at
    /// least three stores are healthy: the store must refuse to start and stays down.
    ///
    /// The store is marked corrupt when it is claimed, before anything awaits: a second
    /// actor cannot pass the once-per-run check meanwhile, and the checks that exclude
    /// corrupt stores see it from the start. If there turns out to be nothing to damage,
    /// the mark is taken back.
    pub(super) async fn corruption(&self, rng: &mut SeededRng) {
        let claimed = {
            let stores: Vec<u64> = self.cluster.store_ids();
            let mut state = self.state.lock().expect("nemesis lock");
            state.claim_for_corruption(&stores, rng)
        };
        let id = match claimed {
            Ok(id) => id,
            Err(why) => return self.noop(format!("corruption: {why}")),
        };
        let disk = self.cluster.store(id).disk.clone();
        self.keep_trace(id).await;
        self.note(format!("kill store {id} (DropAll) to damage its disk"));
        self.cluster.kill(id, CrashTail::DropAll);
        let bit = rng.below(u64::MAX) as usize;
        let (what, damaged) = match rng.below(4) {
            0 => ("a bit flip in its durable log", disk.flip_log_bit(bit)),
            1 => (
                "a bit flip in its checkpoint image",
                disk.flip_image_bit(bit),
            ),
            2 => (
                "a misdirected write",
                disk.misdirect_durable_record(rng.next_u64()),
            ),
            _ => (
                "a latent sector error",
                disk.latent_sector_error(rng.below(1 << 20) as usize)
                    .is_some(),
            ),
        };
        if !damaged {
            self.note(format!("restart store {id}: nothing to damage for {what}"));
            self.cluster.restart(id);
            self.state.lock().expect("nemesis lock").corrupt.remove(&id);
            self.release(id);
            return;
        }
        self.count(Fault::Corruption);
        self.note(format!("store {id}: {what}; restart must refuse"));
        self.cluster.restart(id);
    }
}
