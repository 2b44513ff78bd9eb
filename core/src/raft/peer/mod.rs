//! The peer FSM: one replica of one region, wrapping raft-rs's `RawNode`.
//!
//! Inputs: `step` (a Raft message), `tick`, `propose_*`, `read`, `on_persisted`,
//! `on_snapshot_generated`, `report_snapshot`. Outputs: `poll` fills `Effects`.
//!
//! The peer owns everything random about Raft: raft-rs draws election timeouts from
//! `thread_rng`, which is not replayable, so after every input the peer overrides the
//! timeout from its seeded `Rng` whenever term, role or leader changed (raft-rs re-draws only
//! inside `reset()`, and every caller of `reset()` changes one of them; `observe` counts
//! any draw that slipped past, and simulations require the count to stay zero).
//!
//! After every input the peer also compares raft-rs's role and term with what it saw last:
//! a change clears the lease and fails reads that can no longer be confirmed (raft-rs's
//! `reset()` drops its read-only state on every role change).

mod activity;
mod apply_round;
mod lease;
mod proposals;
mod propose;
mod read;
mod ready;
mod snapshot;
#[cfg(test)]
mod tests;

use crate::planted::{self, PlantedBug};
use std::collections::BTreeMap;

use ferrokv_proto::ferrokv_raftpb::RaftMessage;
use ferrokv_proto::metapb;
use protobuf::Message as _;
use raft::eraftpb::{HardState, Message as RaftWireMessage};
use raft::{RawNode, StateRole};

use super::config::RaftConfig;
use super::effects::OutMessage;
use super::logger::peer_logger;
use super::storage::{LoadedState, PeerStorage};
use crate::env::{Instant, KvEngine, Rng, SeededRng};
use crate::limits;
use crate::store::{RegionError, Response, Token};
use crate::types::{PeerId, RegionEpoch, RegionId, StoreId};

pub use read::PendingRead;

/// Term, role and leader as last observed: a change means raft-rs may have re-drawn the
/// election timeout and the lease and reads must be re-checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Observed {
    term: u64,
    role: StateRole,
    leader: u64,
}

/// One replica of a region.
pub struct Peer<E: KvEngine> {
    raw: RawNode<PeerStorage<E>>,
    store_id: StoreId,
    peer_id: PeerId,
    region_id: RegionId,
    config: RaftConfig,
    rng: SeededRng,
    observed: Observed,
    election_timeout: usize,
    proposals: proposals::ProposalQueue,
    reads: read::ReadQueue,
    lease: lease::Lease,
    peer_cache: BTreeMap<u64, metapb::Peer>,
    ticks_since_gc: usize,
    snapshots: snapshot::SnapshotTracker,
    answers: Vec<(Token, Response)>,
    /// A snapshot installed in Ready `.0` at index `.1`: raft-rs's applied index moves there
    /// once that Ready is persisted.
    snapshot_to_apply: Option<(u64, u64)>,
    removed: bool,
    override_misses: u64,
    trace: u64,
    /// Ticks left during which this peer, just restarted, ignores (pre)vote requests that
    /// would raise its term; see `guard_votes_after_restart`.
    restart_vote_guard: usize,
    /// While leader: when each member was last heard from.
    activity: activity::Activity,
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
        if peer.id == 0 || region_id.get() == 0 {
            return Err(raft::Error::ConfigInvalid(
                "peer and region ids must be non-zero".into(),
            ));
        }
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
            max_uncommitted_size: limits::RAFT_UNCOMMITTED_BYTES_MAX,
            max_committed_size_per_ready: limits::RAFT_READY_COMMITTED_BYTES_MAX,
            ..raft::Config::default()
        };
        raft_config.validate()?;
        let logger = peer_logger(region_id.get(), peer.id);
        let raw = RawNode::new(&raft_config, storage, &logger)?;
        let observed = Observed {
            term: raw.raft.term,
            role: raw.raft.state,
            leader: raw.raft.leader_id,
        };
        let mut created = Peer {
            raw,
            store_id,
            peer_id: PeerId(peer.id),
            region_id,
            config: config.clone(),
            rng,
            observed,
            election_timeout: 0,
            proposals: Default::default(),
            reads: Default::default(),
            lease: Default::default(),
            peer_cache: BTreeMap::new(),
            ticks_since_gc: 0,
            snapshots: Default::default(),
            answers: Vec::new(),
            snapshot_to_apply: None,
            removed: false,
            override_misses: 0,
            trace: crate::types::fnv::FNV_OFFSET,
            restart_vote_guard: 0,
            activity: activity::Activity::default(),
        };
        created.refresh_peer_cache();
        created.draw_election_timeout();
        Ok(created)
    }

    /// Called for peers loaded from disk at store start. Before the crash this peer may
    /// have acknowledged a leader's heartbeat moments ago, and that leader counts on it not
    /// voting for anyone else for an election timeout (the leader lease rests on that
    /// promise, and on check-quorum). raft-rs keeps the promise only while it remembers the
    /// leader, which a restart forgets; so for `election_tick` ticks after the restart the
    /// peer ignores (pre)votes for a higher term unless a leader transfer forces them, as
    /// raft-rs would while in lease. Peers created at run time (splits, messages) never
    /// acknowledged anything and need no guard.
    pub fn guard_votes_after_restart(&mut self) {
        if self.config.check_quorum {
            self.restart_vote_guard = self.config.election_tick;
        }
    }

    fn ignores_vote_after_restart(&self, wire: &RaftWireMessage) -> bool {
        use raft::eraftpb::MessageType::{MsgRequestPreVote, MsgRequestVote};
        let vote = matches!(wire.get_msg_type(), MsgRequestVote | MsgRequestPreVote);
        self.restart_vote_guard > 0
            && vote
            && wire.term > self.term()
            && wire.context.as_ref() != raft::CAMPAIGN_TRANSFER
    }

    /// Replaces raft-rs's `thread_rng` election timeout with one from the seeded rng.
    fn draw_election_timeout(&mut self) {
        let low = self.config.election_tick as u64;
        let timeout = self.rng.range(low, 2 * low) as usize;
        crate::types::fnv::fold_u64(&mut self.trace, timeout as u64);
        self.raw.raft.set_randomized_election_timeout(timeout);
        self.election_timeout = timeout;
    }

    /// Runs after every input: re-draws the election timeout if raft-rs may have, and reacts
    /// to a role or term change (lease cleared, unconfirmable reads failed).
    /// The peer's standing invariants, checked after every Ready and persist.
    fn check_invariants(&self) {
        let log = &self.raw.raft.raft_log;
        let (truncated, truncated_term) = self.truncated();
        assert!(
            truncated <= self.applied_index(),
            "region {}: truncated {truncated} past applied {}",
            self.region_id,
            self.applied_index()
        );
        assert!(
            self.applied_index() <= log.committed,
            "region {}: applied {} past commit {}",
            self.region_id,
            self.applied_index(),
            log.committed
        );
        assert!(
            log.committed <= log.last_index(),
            "region {}: commit {} past the last index {}",
            self.region_id,
            log.committed,
            log.last_index()
        );
        assert!(
            log.persisted <= log.last_index(),
            "region {}: persisted past the last index",
            self.region_id
        );
        assert!(
            truncated_term <= self.term() && self.applied_term() <= self.term(),
            "region {}: log terms above the current term {}",
            self.region_id,
            self.term()
        );
        assert_eq!(
            self.region().id,
            self.region_id.get(),
            "a peer keeps its region id"
        );
        if self.lease.until().is_some() && !planted::active(PlantedBug::LeaseKeptAfterStepDown) {
            assert!(
                self.is_leader(),
                "region {}: a lease only on a leader",
                self.region_id
            );
        }
        if self.is_leader() {
            assert_eq!(
                self.raw.raft.leader_id,
                self.peer_id.get(),
                "a leader leads itself"
            );
            assert!(
                self.log_term(log.last_index()) == Some(self.term())
                    || log.last_index() == truncated,
                "region {}: a leader's last entry is of its term",
                self.region_id
            );
        }
        if let Some((_, index)) = self.snapshot_to_apply {
            assert!(
                index <= log.last_index(),
                "an installed snapshot is within the log"
            );
        }
        self.proposals.check_invariants(self.term());
    }

    fn observe(&mut self) {
        let raft = &self.raw.raft;
        let now = Observed {
            term: raft.term,
            role: raft.state,
            leader: raft.leader_id,
        };
        if now == self.observed {
            if raft.randomized_election_timeout() != self.election_timeout {
                // raft-rs drew from `thread_rng` without a term, role or leader change: the
                // override's premise broke (a raft-rs upgrade?). Replace the draw so runs stay
                // replayable, and count it: simulations and tests require zero.
                self.override_misses += 1;
                self.draw_election_timeout();
            }
            return;
        }
        assert!(now.term >= self.observed.term, "raft term moved backwards");
        let before = self.observed;
        self.observed = now;
        self.draw_election_timeout();
        if before.term != now.term || before.role != now.role {
            self.lease.clear();
            if before.role == StateRole::Leader {
                self.fail_unconfirmed_reads();
            }
            if now.role == StateRole::Leader {
                self.activity.became_leader();
            }
        }
        if now.role == StateRole::Leader {
            assert_eq!(now.leader, self.peer_id.get(), "a leader leads itself");
        }
    }

    /// Remembers where a sender lives, unless the region says it lives elsewhere: a message
    /// (stale or forged) never re-homes a member.
    fn learn_peer(&mut self, from: &metapb::Peer) {
        if from.id == 0 || from.store_id == 0 {
            return;
        }
        if crate::raft::apply::moves_a_peer(self.region(), from.id, from.store_id).is_some() {
            tracing::warn!(region_id = %self.region_id, peer = ?from, "message names a member on another store; not re-homing it");
            return;
        }
        self.peer_cache.insert(from.id, *from);
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

    /// The hard state (term, vote, commit) this peer has in memory; equal to the persisted
    /// one once its last ready is persisted.
    pub fn hard_state(&self) -> HardState {
        self.raw.raft.hard_state()
    }

    /// The applied index.
    pub fn applied_index(&self) -> u64 {
        self.raw.store().apply_state().applied_index
    }

    /// The term of the applied index.
    pub fn applied_term(&self) -> u64 {
        self.raw.store().apply_state().applied_term
    }

    /// The truncated log position `(index, term)`.
    pub fn truncated(&self) -> (u64, u64) {
        let truncated = self.raw.store().truncated();
        (truncated.index, truncated.term)
    }

    /// The commit index this peer knows.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The last log index.
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// The term of `index` in this peer's log, if it still holds it.
    pub fn log_term(&self, index: u64) -> Option<u64> {
        self.raw.raft.raft_log.term(index).ok()
    }

    /// The best known leader, as region metadata.
    pub fn leader(&self) -> Option<metapb::Peer> {
        self.peer_cache.get(&self.raw.raft.leader_id).cloned()
    }

    /// While leader: the members whose log ends before this leader's first kept entry, so
    /// they need a snapshot before they can serve (TiKV's rule for PD's `pending_peers`), and
    /// members this leader has not heard a match from yet (a peer just added).
    pub fn pending_peers(&self) -> Vec<metapb::Peer> {
        if !self.is_leader() {
            return Vec::new();
        }
        let (truncated, _) = self.truncated();
        let progress = self.raw.raft.prs();
        self.region()
            .peers
            .iter()
            .filter(|peer| peer.id != self.peer_id.get())
            .filter(|peer| {
                progress
                    .get(peer.id)
                    .is_none_or(|p| p.matched == 0 || p.matched < truncated)
            })
            .copied()
            .collect()
    }

    /// While leader: members silent for `DOWN_AFTER_ELECTION_TIMEOUTS` election timeouts or
    /// more (counted from when this peer became leader), with how long they have been
    /// silent (PD's `down_peers`: it balances no region with one, and removes a down voter
    /// first when a region has too many).
    pub fn down_peers(&self) -> Vec<(metapb::Peer, std::time::Duration)> {
        if !self.is_leader() {
            return Vec::new();
        }
        let down_after = activity::DOWN_AFTER_ELECTION_TIMEOUTS * self.config.election_tick as u64;
        self.region()
            .peers
            .iter()
            .filter(|peer| peer.id != self.peer_id.get())
            .filter_map(|peer| {
                let silent = self.activity.silent_ticks(peer.id);
                let ticks = u32::try_from(silent).unwrap_or(u32::MAX);
                (silent >= down_after).then(|| (*peer, self.config.tick_interval * ticks))
            })
            .collect()
    }

    /// A fingerprint of this peer's random draws and applied entries, for determinism checks.
    pub fn trace(&self) -> u64 {
        self.trace
    }

    /// Election timeouts raft-rs drew that the deterministic override did not foresee (must
    /// stay 0; see the module doc).
    pub fn override_misses(&self) -> u64 {
        self.override_misses
    }

    /// True once this peer's removal from the region was applied.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Pending proposals and reads, for status and tests.
    pub fn pending(&self) -> (usize, usize) {
        (self.proposals.len(), self.reads.len())
    }

    /// The error telling a client to go to the leader.
    pub fn not_leader(&self) -> RegionError {
        RegionError::NotLeader {
            region_id: self.region_id,
            leader: self.leader(),
        }
    }

    /// Steps a Raft message from another peer.
    /// Steps a message from the network into raft-rs; false if it was refused (undecodable,
    /// or contradicting this peer's log in a way only a forged message can).
    pub fn step(&mut self, message: RaftMessage) -> bool {
        if let Some(from) = &message.from_peer {
            self.learn_peer(from);
        }
        let wire = match RaftWireMessage::parse_from_bytes(&message.message) {
            Ok(wire) => wire,
            Err(error) => {
                tracing::debug!(region_id = %self.region_id, %error, "dropping undecodable raft message");
                return false;
            }
        };
        if let Some(why) = self.refused_by_log(&wire) {
            tracing::debug!(region_id = %self.region_id, from = wire.from, "dropping a raft message: {why}");
            return false;
        }
        if self.ignores_vote_after_restart(&wire) {
            tracing::debug!(region_id = %self.region_id, from = wire.from, "restarted moments ago: ignoring a vote request");
            return true;
        }
        let answer = self.answer_of(&wire);
        if let Err(error) = self.raw.step(wire) {
            tracing::debug!(region_id = %self.region_id, %error, "raft rejected a message");
        }
        if let Some(from) = answer {
            self.activity.answered(from, self.raw.raft.term);
        }
        self.observe();
        true
    }

    /// Why a message that passed routing must still not reach raft-rs, if it must not: it
    /// names log positions past this peer's log that no honest peer names, and raft-rs
    /// aborts on one (a heartbeat's commit index past the log) and is misled by the other
    /// (an append acknowledged past the leader's log would count toward the commit quorum
    /// and send the follower appends after a gap, forever).
    fn refused_by_log(&self, wire: &RaftWireMessage) -> Option<String> {
        use raft::eraftpb::MessageType as T;
        let last = self.raw.raft.raft_log.last_index();
        match wire.get_msg_type() {
            T::MsgHeartbeat if wire.commit > last => Some(format!(
                "a heartbeat committing {} past this log's last index {last}",
                wire.commit
            )),
            T::MsgAppendResponse if !wire.reject && wire.index > last => Some(format!(
                "an append acknowledged at {} past this log's last index {last}",
                wire.index
            )),
            _ => None,
        }
    }

    /// The member whose answer `wire` is, if it is one (see `activity`): an append or
    /// heartbeat response, or a granted vote, from a member in this peer's current term.
    fn answer_of(&self, wire: &RaftWireMessage) -> Option<u64> {
        use raft::eraftpb::MessageType as T;
        let answers = match wire.get_msg_type() {
            T::MsgAppendResponse | T::MsgHeartbeatResponse => true,
            T::MsgRequestVoteResponse => !wire.reject,
            _ => false,
        };
        let member = self.raw.raft.prs().get(wire.from).is_some();
        (answers && member && wire.from != self.peer_id.get() && wire.term == self.raw.raft.term)
            .then_some(wire.from)
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self, now: Instant) {
        self.restart_vote_guard = self.restart_vote_guard.saturating_sub(1);
        self.activity.tick(&self.raw.store().region().peers);
        self.raw.tick();
        self.observe();
        self.ticks_since_gc += 1;
        if self.ticks_since_gc >= self.config.log_gc_tick {
            self.ticks_since_gc = 0;
            self.maybe_compact_log();
        }
        self.renew_lease_if_needed(now);
        self.expire_unreported_snapshots(now);
        self.observe();
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

    /// Answers every pending request of a peer that is being destroyed: writes may still
    /// commit elsewhere (outcome unknown), reads are definitely not served.
    pub fn fail_all_pending(&mut self) -> Vec<(Token, Response)> {
        let mut failed = std::mem::take(&mut self.answers);
        for (token, settled) in self.proposals.drain_unknown() {
            failed.push((token, self.settled_response(settled, None)));
        }
        let gone = RegionError::RegionNotFound(self.region_id);
        for read in self.reads.drain() {
            failed.push(read.failed(gone.clone()));
        }
        failed
    }

    /// Reports a peer as unreachable (its transport queue failed).
    pub fn report_unreachable(&mut self, peer_id: u64) {
        self.raw.report_unreachable(peer_id);
    }

    /// Starts an election at once (a split's new region on the parent's leader store).
    pub fn campaign(&mut self) {
        if let Err(error) = self.raw.campaign() {
            tracing::debug!(region_id = %self.region_id, %error, "campaign refused");
        }
        self.observe();
    }
}

/// Why a Raft message from the network must not reach raft-rs, if it must not, judged
/// from the message alone (routing calls this before it creates or destroys a peer for
/// it). raft-rs aborts the process on some malformed messages (a vote answer without a
/// term, an append after a gap) and acts on message types that only the node itself
/// creates: a leader appends the entries of any `MsgPropose`, answers any `MsgReadIndex`
/// (a forged one without entries aborts it; one that claims to be its own hands real
/// reads a forged read index) and starts a transfer on any `MsgTransferLeader`, skipping
/// the lease fence the store sets when it proposes one. This store never forwards
/// proposals, read requests or transfer requests between nodes, so no honest peer sends
/// these.
pub(crate) fn refused_from_network(
    wire: &RaftWireMessage,
    to_peer_id: u64,
    from_peer_id: Option<u64>,
) -> Option<String> {
    use raft::eraftpb::MessageType as T;
    let kind = wire.get_msg_type();
    let local_only = matches!(
        kind,
        T::MsgHup
            | T::MsgBeat
            | T::MsgPropose
            | T::MsgUnreachable
            | T::MsgSnapStatus
            | T::MsgCheckQuorum
            | T::MsgReadIndex
            | T::MsgReadIndexResp
            | T::MsgTransferLeader
    );
    let envelope_disagrees = from_peer_id.is_some_and(|id| id != 0 && id != wire.from);
    if local_only {
        Some(format!("{kind:?} is never sent between nodes"))
    } else if wire.to != to_peer_id
        || wire.from == 0
        || wire.from == to_peer_id
        || envelope_disagrees
    {
        Some(format!(
            "addressed from {} to {}, not from another peer to peer {to_peer_id}",
            wire.from, wire.to
        ))
    } else if wire.term == 0 {
        // raft-rs sends every message between nodes with its term, and takes a term-0
        // message for one of its own.
        Some(format!("{kind:?} without a term"))
    } else if kind == T::MsgAppend && wire.index > 0 && wire.log_term == 0 {
        // Every entry has a term of at least 1; raft-rs reads term 0 for indexes it does
        // not hold, so it would match this and append after a gap.
        Some(format!(
            "an append after index {} without that entry's term",
            wire.index
        ))
    } else {
        None
    }
}
