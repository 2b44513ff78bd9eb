//! Peer lifecycle after a poll: regions created by splits, peers destroyed by their removal.
//!
//! A split applies identically on every replica (it is decided by replicated state only);
//! creating the new region's peer is a store-local act that may find the region id taken.
//! An uninitialized peer (created early by a message from the new region's leader) is
//! replaced, keeping its term and vote; an initialized one (installed from a snapshot of the
//! new region before the split applied here) is newer than the split and is kept. Either
//! way nothing panics, so a committed split can never crash-loop a store on replay.

use ferrokv_proto::metapb;
use raft::eraftpb::HardState;

use super::cmd::{Response, Token};
use super::fsm::Store;
use crate::env::{Cf, KvEngine, WriteBatch};
use crate::raft::storage::{
    clear_region_data, initial_apply_state, initial_hard_state, stage_initial_region,
    write_tombstone, LoadedState,
};
use crate::raft::{keys, Effects, PeerEvent};
use crate::types::RegionId;

impl<E: KvEngine> Store<E> {
    /// Acts on peer events after a poll: creates split regions, destroys removed peers.
    pub(super) fn handle_events(&mut self, effects: &mut Effects) {
        for event in std::mem::take(&mut effects.events) {
            match event {
                PeerEvent::Split { new_region } => self.create_split_peer(new_region, effects),
                PeerEvent::Removed { region_id } => {
                    let answers = self.destroy_peer_into(region_id, &mut effects.apply);
                    effects.responses.extend(answers);
                    effects.apply_sync = true;
                }
                PeerEvent::SnapshotInstalled { .. } => self.stats.snapshots_installed += 1,
            }
        }
    }

    fn create_split_peer(&mut self, region: metapb::Region, effects: &mut Effects) {
        let region_id = RegionId(region.id);
        let Some(me) = region
            .peers
            .iter()
            .find(|p| p.store_id == self.store_id.get())
            .cloned()
        else {
            return;
        };
        let mut hard_state = initial_hard_state();
        if let Some(existing) = self.peers.get(&region_id) {
            if existing.is_initialized() {
                tracing::warn!(%region_id, "split target already initialized here (a snapshot of it arrived first); keeping it");
                return;
            }
            // An uninitialized peer created by an eager message may have voted: keep its
            // term and vote (persisted below), or it could vote twice in that term.
            hard_state = split_target_hard_state(existing.hard_state());
            self.peers.remove(&region_id);
        }
        if self.tombstones.contains_key(&region_id) {
            // Its peer here was removed before the split applied locally: the range's data
            // belongs to no local region any more.
            tracing::info!(%region_id, "split target was destroyed here before; not recreating it");
            let range = crate::raft::storage::region_range(&region);
            if !self.overlaps_other_region(&range, region_id) {
                clear_region_data(&region, &mut effects.apply);
            }
            return;
        }
        stage_initial_region(&region, hard_state.clone(), &mut effects.apply);
        let state = LoadedState {
            region: region.clone(),
            apply_state: initial_apply_state(),
            hard_state,
            entries: Vec::new(),
        };
        let parent_leads = self
            .peers
            .values()
            .any(|p| p.is_leader() && p.region().end_key == region.start_key);
        if let Err(error) = self.insert_peer(&me, state) {
            tracing::error!(%region_id, %error, "the region from a split cannot start here");
            return;
        }
        assert!(
            self.peers[&region_id].is_initialized(),
            "a split region starts initialized"
        );
        if parent_leads {
            if let Some(peer) = self.peers.get_mut(&region_id) {
                peer.campaign();
            }
        }
    }

    /// Removes the peer of `region_id`, stages its destruction (data, log, state) into
    /// `batch`, and returns the answers for its pending requests.
    pub(super) fn destroy_peer_into(
        &mut self,
        region_id: RegionId,
        batch: &mut WriteBatch,
    ) -> Vec<(Token, Response)> {
        let Some(mut peer) = self.peers.remove(&region_id) else {
            return Vec::new();
        };
        let answers = peer.fail_all_pending();
        let region = peer.region().clone();
        assert_eq!(region.id, region_id.get(), "a peer's region is its own");
        assert_eq!(
            peer.pending(),
            (0, 0),
            "a destroyed peer leaves nothing pending"
        );
        if peer.is_initialized() {
            clear_region_data(&region, batch);
        }
        let op = crate::env::RaftLogOp::Clear { region: region_id };
        crate::env::stage_log_op(&op, batch);
        let peer_id = peer.peer_id().get();
        write_tombstone(&region, peer_id, batch);
        batch.delete(Cf::Raft, &keys::apply_state_key(region_id));
        tracing::info!(%region_id, peer_id, store_id = %self.store_id, "peer destroyed");
        self.tombstones.insert(region_id, (region, peer_id));
        self.dirty.remove(&region_id);
        assert!(!self.peers.contains_key(&region_id), "destroyed once");
        answers
    }
}

/// The hard state a split target starts with when an uninitialized peer of it already ran
/// here: its term and vote survive (a vote is a promise for the whole term), its commit is
/// the initial log position the split gives it.
fn split_target_hard_state(existing: HardState) -> HardState {
    let initial = initial_hard_state();
    if existing.term < initial.term {
        return initial;
    }
    HardState {
        term: existing.term,
        vote: existing.vote,
        commit: initial.commit,
        ..Default::default()
    }
}
