//! Turning raft-rs Readies into effects.

use crate::env::{Instant, KvEngine};
use crate::raft::effects::{Effects, PeerEvent};

use super::Peer;

impl<E: KvEngine> Peer<E> {
    /// Drains everything this peer has to do into `effects`.
    pub fn poll(&mut self, effects: &mut Effects, now: Instant) {
        self.flush_reads(now);
        if self.raw.has_ready() {
            self.handle_ready(effects);
        }
        self.release_ready_reads(effects);
    }

    fn handle_ready(&mut self, effects: &mut Effects) {
        let was_leader = self.is_leader();
        let mut ready = self.raw.ready();
        let leader_messages = self.wrap_messages(ready.take_messages());
        effects.send_now.extend(leader_messages);
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            let batch = effects.persist_batch();
            match self.raw.mut_store().apply_snapshot(&snapshot, batch) {
                Ok(_) => {
                    let index = snapshot.get_metadata().index;
                    tracing::info!(region_id = %self.region_id, index, "installing snapshot");
                    self.lease_until = None;
                    self.refresh_peer_cache();
                    effects.events.push(PeerEvent::SnapshotInstalled {
                        region_id: self.region_id,
                    });
                }
                Err(error) => panic!(
                    "snapshot for region {} is unusable: {error}",
                    self.region_id
                ),
            }
        }
        let entries = ready.take_entries();
        if !entries.is_empty() {
            self.raw
                .mut_store()
                .append(entries, effects.persist_batch());
        }
        if let Some(hard_state) = ready.hs() {
            let hard_state = hard_state.clone();
            self.raw
                .mut_store()
                .set_hard_state(hard_state, effects.persist_batch());
        }
        let read_states = ready.take_read_states();
        let committed = ready.take_committed_entries();
        let persisted_messages = self.wrap_messages(ready.take_persisted_messages());
        let number = ready.number();
        self.raw.advance_append_async(ready);
        effects.after_persist(self.region_id, number, persisted_messages);
        self.on_read_states(read_states);
        self.apply_committed(committed, effects);
        self.own_election_timeout();
        if was_leader && !self.is_leader() {
            self.fail_reads_on_step_down(effects);
        }
        if self.removed {
            effects.events.push(PeerEvent::Removed {
                region_id: self.region_id,
            });
        }
    }

    /// The driver made Ready `number` (and all before it) durable.
    pub fn on_persisted(&mut self, number: u64) {
        self.raw.on_persist_ready(number);
        self.own_election_timeout();
    }

    /// True if polling would produce anything.
    pub fn has_work(&self) -> bool {
        self.raw.has_ready() || self.has_pending_reads()
    }

    fn has_pending_reads(&self) -> bool {
        self.reads.has_releasable(self.applied_index())
    }
}
