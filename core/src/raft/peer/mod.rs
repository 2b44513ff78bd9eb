//! The peer FSM: one replica of one region, wrapping raft-rs's `RawNode`.
//!
//! Inputs: `step` (a Raft message), `tick`, `propose_*`, `read`, `on_persisted`.
//! Outputs: `poll` fills `Effects`. The peer owns everything random about Raft: raft-rs
//! draws election timeouts from `thread_rng`, which is not replayable, so after every input
//! that may reset the timeout the peer overrides it from its seeded `Rng`.

mod apply_round;
mod propose;
mod read;
mod ready;

use std::collections::{BTreeMap, VecDeque};

use ferrokv_proto::ferrokv_raftpb::RaftMessage;
use ferrokv_proto::metapb;
use protobuf::Message as _;
use raft::eraftpb::Message as RaftWireMessage;
use raft::{RawNode, StateRole};

use super::config::RaftConfig;
use super::effects::OutMessage;
use super::logger::peer_logger;
use super::storage::{LoadedState, PeerStorage};
use crate::env::{Instant, KvEngine, Rng, SeededRng};
use crate::store::{RegionError, Token};
use crate::types::{PeerId, RegionEpoch, RegionId, StoreId};

pub use read::PendingRead;

/// A proposal waiting for its entry to apply.
#[derive(Clone, Debug)]
struct Proposal {
    index: u64,
    term: u64,
    token: Token,
}

/// The part of raft-rs state whose change may have re-drawn the election timeout.
type TimeoutFingerprint = (u64, StateRole, u64, usize);

/// One replica of a region.
pub struct Peer<E: KvEngine> {
    raw: RawNode<PeerStorage<E>>,
    store_id: StoreId,
    peer_id: PeerId,
    region_id: RegionId,
    config: RaftConfig,
    rng: SeededRng,
    timeout_fingerprint: TimeoutFingerprint,
    proposals: VecDeque<Proposal>,
    reads: read::ReadQueue,
    lease_until: Option<Instant>,
    peer_cache: BTreeMap<u64, metapb::Peer>,
    ticks_since_gc: usize,
    snapshot_ticks: BTreeMap<u64, usize>,
    removed: bool,
    trace: u64,
}

impl<E: KvEngine> Peer<E> {
    /// A peer over `state` (loaded from disk, or empty for an uninitialized peer).
    pub fn new(
        engine: E,
        store_id: StoreId,
        peer: &metapb::Peer,
        region_id: RegionId,
        state: LoadedState,
        config: &RaftConfig,
        rng: SeededRng,
    ) -> Result<Peer<E>, raft::Error> {
        let applied = state.apply_state.applied_index;
        let storage = PeerStorage::new(engine, region_id, state);
        let raft_config = raft::Config {
            id: peer.id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied,
            max_size_per_msg: config.max_size_per_msg,
            max_inflight_msgs: config.max_inflight_msgs,
            check_quorum: config.check_quorum,
            pre_vote: config.pre_vote,
            ..raft::Config::default()
        };
        raft_config.validate()?;
        let raw = RawNode::new(
            &raft_config,
            storage,
            &peer_logger(region_id.get(), peer.id),
        )?;
        let mut created = Peer {
            raw,
            store_id,
            peer_id: PeerId(peer.id),
            region_id,
            config: config.clone(),
            rng,
            timeout_fingerprint: (0, StateRole::Follower, 0, 0),
            proposals: VecDeque::new(),
            reads: read::ReadQueue::default(),
            lease_until: None,
            peer_cache: BTreeMap::new(),
            ticks_since_gc: 0,
            snapshot_ticks: BTreeMap::new(),
            removed: false,
            trace: crate::types::fnv::FNV_OFFSET,
        };
        created.refresh_peer_cache();
        created.own_election_timeout();
        Ok(created)
    }

    /// Replaces raft-rs's `thread_rng` election timeout with one from the seeded rng
    /// whenever raft-rs may have re-drawn it.
    fn own_election_timeout(&mut self) {
        let raft = &self.raw.raft;
        let seen = (
            raft.term,
            raft.state,
            raft.leader_id,
            raft.randomized_election_timeout(),
        );
        if seen == self.timeout_fingerprint {
            return;
        }
        let low = self.config.election_tick as u64;
        let timeout = self.rng.range(low, 2 * low) as usize;
        crate::types::fnv::fold_u64(&mut self.trace, timeout as u64);
        self.raw.raft.set_randomized_election_timeout(timeout);
        self.timeout_fingerprint = (seen.0, seen.1, seen.2, timeout);
    }

    fn refresh_peer_cache(&mut self) {
        for peer in &self.raw.store().region().peers {
            self.peer_cache.insert(peer.id, *peer);
        }
    }

    /// The region as applied.
    pub fn region(&self) -> &metapb::Region {
        self.raw.store().region()
    }

    /// The region id.
    pub fn region_id(&self) -> RegionId {
        self.region_id
    }

    /// This peer's id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This peer as region metadata.
    pub fn meta(&self) -> metapb::Peer {
        self.peer_cache
            .get(&self.peer_id.get())
            .cloned()
            .unwrap_or(metapb::Peer {
                id: self.peer_id.get(),
                store_id: self.store_id.get(),
                ..Default::default()
            })
    }

    /// The region's epoch.
    pub fn epoch(&self) -> RegionEpoch {
        RegionEpoch::from(self.region().region_epoch)
    }

    /// True if the peer has a region (not waiting for its first snapshot).
    pub fn is_initialized(&self) -> bool {
        self.raw.store().is_initialized()
    }

    /// True if this peer leads its region.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The applied index.
    pub fn applied_index(&self) -> u64 {
        self.raw.store().apply_state().applied_index
    }

    /// The best known leader, as region metadata.
    pub fn leader(&self) -> Option<metapb::Peer> {
        self.peer_cache.get(&self.raw.raft.leader_id).cloned()
    }

    /// A fingerprint of this peer's random draws and applied entries, for determinism checks.
    pub fn trace(&self) -> u64 {
        self.trace
    }

    /// True once this peer's removal from the region was applied.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// The error telling a client to go to the leader.
    pub fn not_leader(&self) -> RegionError {
        RegionError::NotLeader {
            region_id: self.region_id,
            leader: self.leader(),
        }
    }

    /// Steps a Raft message from another peer.
    pub fn step(&mut self, message: RaftMessage) {
        if let Some(from) = &message.from_peer {
            self.peer_cache.insert(from.id, *from);
        }
        let wire = match RaftWireMessage::parse_from_bytes(&message.message) {
            Ok(wire) => wire,
            Err(error) => {
                tracing::warn!(region_id = %self.region_id, %error, "dropping undecodable raft message");
                return;
            }
        };
        if let Err(error) = self.raw.step(wire) {
            tracing::debug!(region_id = %self.region_id, %error, "raft rejected a message");
        }
        self.own_election_timeout();
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self, now: Instant) {
        self.raw.tick();
        self.own_election_timeout();
        if !self.is_leader() {
            self.lease_until = None;
        }
        self.ticks_since_gc += 1;
        if self.ticks_since_gc >= self.config.log_gc_tick {
            self.ticks_since_gc = 0;
            self.maybe_compact_log();
        }
        self.renew_lease_if_needed(now);
        self.expire_stuck_snapshots(self.config.election_tick * 2);
    }

    /// Wraps raft-rs messages for the transport.
    fn wrap_messages(&self, messages: Vec<RaftWireMessage>) -> Vec<OutMessage> {
        let region = self.region();
        let from_peer = self.meta();
        let mut out = Vec::with_capacity(messages.len());
        for message in messages {
            let Some(to_peer) = self.peer_cache.get(&message.to).cloned() else {
                tracing::debug!(region_id = %self.region_id, to = message.to, "no store for peer; dropping");
                continue;
            };
            let wrapped = RaftMessage {
                region_id: self.region_id.get(),
                from_peer: Some(from_peer),
                to_peer: Some(to_peer),
                region_epoch: region.region_epoch,
                message: message
                    .write_to_bytes()
                    .expect("encoding into memory cannot fail"),
                start_key: region.start_key.clone(),
                end_key: region.end_key.clone(),
                is_tombstone: false,
                is_snapshot: message.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot,
            };
            out.push(OutMessage {
                to_store: StoreId(to_peer.store_id),
                message: wrapped,
            });
        }
        out
    }

    /// Fails every pending request (the peer is being destroyed).
    pub fn fail_all_pending(&mut self, error: &RegionError) -> Vec<(Token, RegionError)> {
        let mut failed: Vec<(Token, RegionError)> = self
            .proposals
            .drain(..)
            .map(|p| (p.token, error.clone()))
            .collect();
        failed.extend(
            self.reads
                .drain()
                .into_iter()
                .map(|read| (read.token, error.clone())),
        );
        failed
    }

    /// Reports a peer as unreachable (its transport queue failed).
    pub fn report_unreachable(&mut self, peer_id: u64) {
        self.raw.report_unreachable(peer_id);
    }
}

impl<E: KvEngine> Peer<E> {
    /// Starts an election at once (a split's new region on the parent's leader store).
    pub fn campaign(&mut self) {
        if let Err(error) = self.raw.campaign() {
            tracing::debug!(region_id = %self.region_id, %error, "campaign refused");
        }
        self.own_election_timeout();
    }

    /// Gives up on snapshots a follower has not confirmed for `ticks_max` ticks, so raft-rs
    /// sends a fresh one (a lost snapshot message would otherwise stall that follower).
    pub(super) fn expire_stuck_snapshots(&mut self, ticks_max: usize) {
        if !self.is_leader() {
            self.snapshot_ticks.clear();
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
        self.snapshot_ticks.retain(|id, _| in_snapshot.contains(id));
        for id in in_snapshot {
            let ticks = self.snapshot_ticks.entry(id).or_insert(0);
            *ticks += 1;
            if *ticks > ticks_max {
                *ticks = 0;
                self.raw.report_snapshot(id, raft::SnapshotStatus::Failure);
            }
        }
    }
}
