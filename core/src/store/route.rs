//! Routing Raft messages to peers: creating a peer for a region a leader reaches out with,
//! refusing snapshots that would overlap another region, and garbage-collecting stale peers.
//!
//! Stale peers (TiKV's raftstore does the same): a peer removed from its region while cut
//! off never applies its own removal and would live forever, blocking any region that
//! overlaps its range. It learns it is gone in two ways:
//! - a message for a *newer* peer id of its region on this store, under a newer conf
//!   version: the region re-added this store with a fresh peer, so the old peer is destroyed
//!   and the new one created;
//! - a tombstone message: a member of the region, seeing a message from a peer that is not
//!   in its (newer) membership, answers with `is_tombstone`, and the stale peer destroys
//!   itself if the tombstone's conf version is newer than its own.
//!
//! Peer ids are never reused, so a peer missing from a newer membership was removed.

use ferrokv_proto::ferrokv_raftpb::{PeerState, RaftMessage};
use ferrokv_proto::metapb;
use protobuf::Message as _;
use raft::eraftpb::{HardState, Message as RaftWireMessage, MessageType};

use super::fsm::{uninitialized_state, Store};
use super::load::StoreLoadError;
use crate::env::KvEngine;
use crate::raft::storage::{check_snapshot, write_region_state};
use crate::raft::OutMessage;
use crate::types::{KeyRange, RegionId, StoreId};

fn conf_ver(epoch: Option<metapb::RegionEpoch>) -> u64 {
    epoch.map_or(0, |epoch| epoch.conf_ver)
}

/// The key range a message names, if it is a valid range.
fn message_range(message: &RaftMessage) -> Option<KeyRange> {
    let valid = message.end_key.is_empty() || message.start_key <= message.end_key;
    valid.then(|| KeyRange::new(message.start_key.clone(), message.end_key.clone()))
}

impl<E: KvEngine> Store<E> {
    /// Routes a Raft message from another store.
    pub fn on_raft_message(&mut self, mut message: RaftMessage) {
        crate::types::fnv::fold_u64(&mut self.trace, message.region_id);
        crate::types::fnv::fold(&mut self.trace, &message.message);
        let Some(to_peer) = message.to_peer else {
            return;
        };
        if to_peer.store_id != self.store_id.get() || to_peer.id == 0 || message.region_id == 0 {
            tracing::warn!(store_id = %self.store_id, to = ?to_peer, region_id = message.region_id, "misaddressed raft message dropped");
            return;
        }
        let region_id = RegionId(message.region_id);
        if message.is_tombstone {
            self.on_tombstone(&message, &to_peer);
            return;
        }
        // Judge the Raft message itself before it may create or destroy a peer.
        let wire = RaftWireMessage::parse_from_bytes(&message.message);
        let from_peer_id = message.from_peer.as_ref().map(|peer| peer.id);
        let refusal = match &wire {
            Ok(wire) => crate::raft::refused_from_network(wire, to_peer.id, from_peer_id),
            Err(error) => Some(format!("undecodable: {error}")),
        };
        if let Some(why) = refusal {
            self.stats.raft_messages_refused += 1;
            tracing::debug!(store_id = %self.store_id, region_id = message.region_id, "raft message refused: {why}");
            return;
        }
        // What the message is decides the snapshot checks, not a flag its sender sets.
        message.is_snapshot =
            wire.is_ok_and(|wire| wire.get_msg_type() == MessageType::MsgSnapshot);
        if let Some(peer) = self.peers.get(&region_id) {
            let local_id = peer.peer_id().get();
            if local_id == to_peer.id {
                self.deliver(region_id, message);
                return;
            }
            let newer =
                to_peer.id > local_id && conf_ver(message.region_epoch) > peer.epoch().conf_ver;
            if !newer {
                tracing::debug!(%region_id, "message for an older peer id; dropping");
                return;
            }
            tracing::info!(%region_id, stale = local_id, new = to_peer.id, "a newer peer of this region reached out; destroying the stale one");
            self.destroy_stale_peer(region_id);
        }
        if self.is_stale_for_tombstone(&message) || !self.may_create_peer(&message) {
            return;
        }
        if let Err(error) = self.create_peer_for_message(&message, &to_peer) {
            tracing::warn!(%region_id, %error, "could not create a peer for an incoming message");
            return;
        }
        self.deliver(region_id, message);
    }

    /// Steps `message` into its local peer unless the sender is a removed peer (answered
    /// with a tombstone) or it is a snapshot that does not fit this store.
    fn deliver(&mut self, region_id: RegionId, message: RaftMessage) {
        assert_eq!(
            message.region_id,
            region_id.get(),
            "delivered to its own region"
        );
        let peer = self.peers.get(&region_id).expect("caller checked");
        assert_eq!(
            message.to_peer.as_ref().map(|p| p.id),
            Some(peer.peer_id().get()),
            "delivered to the peer it names"
        );
        if let Some(from) = message.from_peer {
            let member = peer.region().peers.iter().any(|p| p.id == from.id);
            let older = conf_ver(message.region_epoch) < peer.epoch().conf_ver;
            if peer.is_initialized() && !member && older && from.store_id != 0 {
                let tombstone = self.tombstone_for(region_id, from);
                self.outgoing.push(tombstone);
                return;
            }
        }
        if message.is_snapshot && !self.snapshot_fits(region_id, &message) {
            return;
        }
        self.step_local(region_id, message);
    }

    fn tombstone_for(&self, region_id: RegionId, to: metapb::Peer) -> OutMessage {
        let peer = &self.peers[&region_id];
        assert!(
            !peer.region().peers.iter().any(|p| p.id == to.id),
            "tombstones go to non-members only"
        );
        let region = peer.region();
        OutMessage {
            to_store: StoreId(to.store_id),
            message: RaftMessage {
                region_id: region_id.get(),
                from_peer: Some(peer.meta()),
                to_peer: Some(to),
                region_epoch: region.region_epoch,
                message: Vec::new(),
                start_key: region.start_key.clone(),
                end_key: region.end_key.clone(),
                is_tombstone: true,
                is_snapshot: false,
            },
        }
    }

    fn on_tombstone(&mut self, message: &RaftMessage, to_peer: &metapb::Peer) {
        let region_id = RegionId(message.region_id);
        let Some(peer) = self.peers.get(&region_id) else {
            return;
        };
        let stale = peer.peer_id().get() == to_peer.id
            && conf_ver(message.region_epoch) > peer.epoch().conf_ver;
        if stale {
            tracing::info!(%region_id, peer_id = to_peer.id, "a member says this peer was removed; destroying it");
            self.destroy_stale_peer(region_id);
        }
    }

    fn destroy_stale_peer(&mut self, region_id: RegionId) {
        assert!(
            self.peers.contains_key(&region_id),
            "only a live peer is destroyed"
        );
        let mut batch = std::mem::take(&mut self.pending_persist);
        let answers = self.destroy_peer_into(region_id, &mut batch);
        self.pending_persist = batch;
        self.store_answers.extend(answers);
        self.stats.stale_peers_destroyed += 1;
        assert!(
            self.tombstones.contains_key(&region_id),
            "a destroyed peer leaves a tombstone"
        );
    }

    /// A snapshot is installed only if its region is the message's, is not older than the
    /// local peer's, and overlaps no other initialized region here (TiKV's
    /// `check_snapshot`): a split not yet applied locally will hand the range over instead.
    fn snapshot_fits(&self, region_id: RegionId, message: &RaftMessage) -> bool {
        let to_peer_id = message.to_peer.map_or(0, |peer| peer.id);
        let checked = RaftWireMessage::parse_from_bytes(&message.message)
            .map_err(|e| e.to_string())
            .and_then(|wire| check_snapshot(wire.get_snapshot(), to_peer_id));
        let region = match checked {
            Ok(region) if region.id == region_id.get() => region,
            Ok(region) => {
                tracing::warn!(%region_id, other = region.id, "snapshot for another region dropped");
                return false;
            }
            Err(why) => {
                tracing::warn!(%region_id, "snapshot dropped: {why}");
                return false;
            }
        };
        let local = &self.peers[&region_id];
        let epoch = crate::types::RegionEpoch::from(region.region_epoch);
        if local.is_initialized() && epoch.is_stale_against(&local.epoch()) {
            return false;
        }
        let range = KeyRange::new(region.start_key.clone(), region.end_key.clone());
        if self.overlaps_other_region(&range, region_id) {
            tracing::debug!(%region_id, "snapshot overlaps another region here; dropped until it moves");
            return false;
        }
        true
    }

    /// A message for a region destroyed here may create a peer again only for a newer
    /// membership *and* a newer peer id: a destroyed peer id never comes back (its log is
    /// gone; recreating it empty would break what its leader knows it holds).
    fn is_stale_for_tombstone(&self, message: &RaftMessage) -> bool {
        let Some((region, peer_id)) = self.tombstones.get(&RegionId(message.region_id)) else {
            return false;
        };
        let to_peer = message.to_peer.map_or(0, |p| p.id);
        conf_ver(message.region_epoch) <= conf_ver(region.region_epoch) || to_peer <= *peer_id
    }

    /// A peer is created only for messages a leader or candidate sends, only for a valid
    /// key range, and only if that range overlaps no initialized local region (a split not
    /// yet applied here will create it instead).
    fn may_create_peer(&self, message: &RaftMessage) -> bool {
        let Ok(wire) = RaftWireMessage::parse_from_bytes(&message.message) else {
            return false;
        };
        let creating = matches!(
            wire.get_msg_type(),
            MessageType::MsgAppend
                | MessageType::MsgHeartbeat
                | MessageType::MsgSnapshot
                | MessageType::MsgRequestVote
                | MessageType::MsgRequestPreVote
        );
        if !creating {
            return false;
        }
        let Some(range) = message_range(message) else {
            tracing::warn!(
                region_id = message.region_id,
                "message with an inverted key range dropped"
            );
            return false;
        };
        !self.overlaps_other_region(&range, RegionId(message.region_id))
    }

    /// Creates the peer in memory first (it may refuse), then stages its record for the next
    /// Raft log sync, before the peer can send anything.
    fn create_peer_for_message(
        &mut self,
        message: &RaftMessage,
        to_peer: &metapb::Peer,
    ) -> Result<(), StoreLoadError> {
        let region = metapb::Region {
            id: message.region_id,
            start_key: message.start_key.clone(),
            end_key: message.end_key.clone(),
            region_epoch: message.region_epoch,
            peers: Vec::new(),
            ..Default::default()
        };
        self.insert_peer(
            to_peer,
            uninitialized_state(region.clone(), HardState::default()),
        )?;
        write_region_state(
            &region,
            PeerState::Applying,
            to_peer.id,
            &mut self.pending_persist,
        );
        tracing::info!(
            region_id = region.id,
            peer_id = to_peer.id,
            "created uninitialized peer"
        );
        Ok(())
    }
}
