//! Snapshots on a leader: generation handed to the driver, delivery reports from the
//! transport, and a long timeout for reports that never come.
//!
//! raft-rs keeps a follower in snapshot state (sending it nothing else) until told how the
//! snapshot went. The transport reports delivery (`report_snapshot`), which is progress-
//! based: a large snapshot that keeps streaming is never cut off by a timer. Only a follower
//! stuck in snapshot state for `snapshot_report_timeout` with no report at all (a lost
//! message, a driver without reports) is failed, so that raft-rs sends a fresh one.

use std::collections::BTreeMap;

use super::Peer;
use crate::env::{Instant, KvEngine};
use crate::raft::effects::{Effects, SnapshotTask};

/// Followers in snapshot state, by peer id, with the time they entered it.
#[derive(Debug, Default)]
pub(super) struct SnapshotTracker {
    since: BTreeMap<u64, Instant>,
}

impl<E: KvEngine> Peer<E> {
    /// Hands a snapshot generation task to the driver if raft-rs asked for one.
    pub(super) fn take_snapshot_task(&mut self, effects: &mut Effects) {
        if let Some(view) = self.raw.store().take_snapshot_request() {
            effects.snapshot_tasks.push(SnapshotTask {
                region_id: self.region_id,
                view: Box::new(view),
            });
        }
    }

    /// A generation task finished.
    pub fn on_snapshot_generated(
        &mut self,
        result: Result<raft::eraftpb::Snapshot, crate::env::EngineError>,
    ) {
        self.raw.store().on_snapshot_generated(result);
    }

    /// The transport delivered (or failed to deliver) a snapshot to `peer_id`.
    pub fn report_snapshot(&mut self, peer_id: u64, delivered: bool) {
        let status = if delivered {
            raft::SnapshotStatus::Finish
        } else {
            raft::SnapshotStatus::Failure
        };
        self.snapshots.since.remove(&peer_id);
        self.raw.report_snapshot(peer_id, status);
        self.observe();
    }

    /// Fails snapshots that got no report for `snapshot_report_timeout`, and drops the
    /// generated snapshot once no follower needs one.
    pub(super) fn expire_unreported_snapshots(&mut self, now: Instant) {
        if !self.is_leader() {
            self.snapshots.since.clear();
            self.raw.store().drop_generated_snapshot();
            return;
        }
        let in_snapshot: Vec<u64> = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(_, progress)| progress.state == raft::ProgressState::Snapshot)
            .map(|(id, _)| *id)
            .collect();
        self.snapshots
            .since
            .retain(|id, _| in_snapshot.contains(id));
        assert!(
            !in_snapshot.contains(&self.peer_id.get()),
            "a leader never waits for its own snapshot"
        );
        assert!(self.snapshots.since.len() <= in_snapshot.len());
        let timeout = self.config.snapshot_report_timeout;
        for id in in_snapshot {
            let since = *self.snapshots.since.entry(id).or_insert(now);
            if now.saturating_since(since) > timeout {
                tracing::warn!(region_id = %self.region_id, to = id, "snapshot unreported; sending a new one");
                self.snapshots.since.remove(&id);
                self.raw.report_snapshot(id, raft::SnapshotStatus::Failure);
            }
        }
        let wanted = self.raw.raft.prs().iter().any(|(_, progress)| {
            progress.state == raft::ProgressState::Snapshot || progress.matched < self.truncated().0
        });
        if !wanted {
            self.raw.store().drop_generated_snapshot();
        }
    }
}
