//! Disk faults: a failed fsync and a full disk (the store fences itself and is then
//! power-cycled), and a flipped bit in durable data (the store must refuse to start, and
//! stays down for the rest of the run).

use std::time::Duration;

use ferrokv_core::env::{Rng, SeededRng};

use super::{secs, Nemesis};
use crate::engine::{CrashTail, DiskFaults};

impl Nemesis {
    pub(super) async fn disk_fault(&self, rng: &mut SeededRng, fsync: bool) {
        let Some(id) = self.claim_store(rng) else {
            return self.failed("disk fault: no free store".into());
        };
        let disk = self.cluster.stores[&id].disk.clone();
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

    /// Flips one bit of one store's durable log, at most once per run and only when at
    /// least three stores are healthy: the store must detect it at restart and stay down.
    pub(super) async fn bit_flip(&self, rng: &mut SeededRng) {
        let healthy = self.healthy_stores().len();
        if !self.corrupt().is_empty() || healthy < 3 {
            return self.failed("bit flip: would leave too few healthy stores".into());
        }
        let Some(id) = self.claim_store(rng) else {
            return self.failed("bit flip: no free store".into());
        };
        let disk = self.cluster.stores[&id].disk.clone();
        let bit = rng.below(u64::MAX) as usize;
        self.keep_trace(id).await;
        self.note(format!("kill store {id} (DropAll) for a bit flip"));
        self.cluster.kill(id, CrashTail::DropAll);
        if !disk.flip_log_bit(bit) {
            self.note(format!(
                "restart store {id}: its log is empty, nothing to flip"
            ));
            self.cluster.restart(id);
            self.release(id);
            return;
        }
        self.note(format!(
            "store {id}: bit flip in its durable log; restart must refuse"
        ));
        self.state.lock().expect("nemesis lock").corrupt.insert(id);
        self.cluster.restart(id);
    }
}
