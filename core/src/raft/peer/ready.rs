//! Turning raft-rs Readies into effects.

use crate::env::{EngineError, Instant, KvEngine};
use crate::raft::effects::{Effects, PeerEvent};

use super::Peer;

impl<E: KvEngine> Peer<E> {
    /// Drains everything this peer has to do into `effects`. A storage error (while
    /// applying) means the store must stop: effects of this poll must not be executed.
    pub fn poll(&mut self, effects: &mut Effects, now: Instant) -> Result<(), EngineError> {
        self.flush_reads(now);
        if self.raw.has_ready() {
            self.handle_ready(effects)?;
        }
        self.release_ready_reads(effects);
        self.take_snapshot_task(effects);
        effects.responses.append(&mut self.answers);
        if self.removed {
            effects.events.push(PeerEvent::Removed {
                region_id: self.region_id,
            });
        }
        Ok(())
    }

    fn handle_ready(&mut self, effects: &mut Effects) -> Result<(), EngineError> {
        let mut ready = self.raw.ready();
        let leader_messages = self.wrap_messages(ready.take_messages());
        effects.send_now.extend(leader_messages);
        let mut installed = None;
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.install_snapshot(&snapshot, effects);
            installed = Some(snapshot.get_metadata().index);
        }
        let entries = ready.take_entries();
        for pair in entries.windows(2) {
            assert_eq!(
                pair[1].index,
                pair[0].index + 1,
                "appended entries are consecutive"
            );
            assert!(
                pair[1].term >= pair[0].term,
                "appended terms never decrease"
            );
        }
        if let (Some(first), Some(index)) = (entries.first(), installed) {
            assert!(first.index > index, "entries after a snapshot follow it");
        }
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
        assert!(
            committed
                .windows(2)
                .all(|pair| pair[1].index == pair[0].index + 1),
            "committed entries are consecutive"
        );
        self.raw.advance_append_async(ready);
        if let Some(index) = installed {
            self.snapshot_to_apply = Some((number, index));
        }
        effects.after_persist(self.region_id, number, persisted_messages);
        self.observe();
        self.on_read_states(read_states);
        self.apply_committed(committed, effects)?;
        self.observe();
        self.check_invariants();
        Ok(())
    }

    /// Installs a snapshot from the leader: the region's data, log and state are replaced
    /// in the persist batch; proposals its index covers may have applied inside it.
    fn install_snapshot(&mut self, snapshot: &raft::eraftpb::Snapshot, effects: &mut Effects) {
        let batch = effects.persist_batch();
        if let Err(error) = self.raw.mut_store().apply_snapshot(snapshot, batch) {
            // The transport checksums snapshots and the store checked the region before
            // stepping the message: a snapshot that still does not decode is a bug.
            panic!(
                "snapshot for region {} is unusable: {error}",
                self.region_id
            );
        }
        let meta = snapshot.get_metadata();
        assert!(
            meta.index > 0,
            "a snapshot holds at least the initial entry"
        );
        assert!(
            self.is_initialized(),
            "an installed snapshot initializes the peer"
        );
        tracing::info!(region_id = %self.region_id, index = meta.index, "installing snapshot");
        self.lease.clear();
        self.refresh_peer_cache();
        for (token, settled) in self.proposals.on_snapshot(meta.index, meta.term) {
            let response = self.settled_response(settled, None);
            effects.responses.push((token, response));
        }
        effects.events.push(PeerEvent::SnapshotInstalled {
            region_id: self.region_id,
        });
    }

    /// The driver made Ready `number` (and all before it) durable.
    pub fn on_persisted(&mut self, number: u64) {
        assert!(number > 0, "raft-rs numbers Readys from 1");
        self.raw.on_persist_ready(number);
        if let Some((ready, index)) = self.snapshot_to_apply {
            if number >= ready {
                // raft-rs learns that a snapshot applied only from the application, once it
                // is persisted: without this its applied index stays below the truncated log,
                // and the next campaign asks storage for compacted entries and aborts.
                self.snapshot_to_apply = None;
                self.raw.advance_apply_to(index);
            }
        }
        self.observe();
        self.check_invariants();
    }

    /// True if polling would produce anything.
    pub fn has_work(&self) -> bool {
        self.raw.has_ready()
            || self.reads.has_releasable(self.applied_index())
            || !self.answers.is_empty()
    }
}
