//! The store state machine: peers by region, request admission with deadlines, ticks and
//! status. Message routing and peer creation live in `route.rs`, peer lifecycle events in
//! `lifecycle.rs`, and `drive.rs` executes effects.
//!
//! Invariants (checked by `check_invariants` after every drive): initialized regions on a
//! store are pairwise disjoint; every accepted request is answered exactly once, by its
//! peer or by its deadline.

use std::collections::{BTreeMap, BTreeSet};

use ferrokv_proto::ferrokv_raftpb::RaftMessage;
use ferrokv_proto::metapb;
use raft::eraftpb::HardState;

use super::cmd::{Request, Response, Token, TxnFailure};
use super::deadlines::Deadlines;
use super::error::RegionError;
use super::load::{scan_regions, Found, StoreLoadError};
use crate::env::{Instant, KvEngine, SeededRng, WriteBatch};
use crate::raft::storage::{region_range, LoadedState};
use crate::raft::ReadOp;
use crate::raft::{OutMessage, Peer, RaftConfig};
use crate::types::{RegionId, StoreId};

/// A region's state on this store, for status pages, routing and convergence checks.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionStatus {
    /// The region as applied here.
    pub region: metapb::Region,
    /// The leader this peer knows of.
    pub leader: Option<metapb::Peer>,
    /// True if this peer is the leader.
    pub is_leader: bool,
    /// Applied index.
    pub applied_index: u64,
    /// Term of the applied index.
    pub applied_term: u64,
    /// Commit index this peer knows.
    pub commit_index: u64,
    /// Index of the last entry in this peer's log.
    pub last_index: u64,
    /// Truncated log position `(index, term)`.
    pub truncated: (u64, u64),
    /// Current term.
    pub term: u64,
    /// While leader: until when (on this store's monotonic clock) local reads are safe
    /// under the leader lease; `None` without a valid lease. The bound already allows for
    /// `max_clock_drift_permille` between stores, and is cleared at once on a term or role
    /// change, a leader transfer, a membership change or a split. A service that must not
    /// act after another leader exists (PD's timestamp oracle) acts only before this
    /// instant, less a margin for its own work between reading it and acting (PD keeps
    /// 20 ms); the value is only as fresh as the `regions()` call that returned it.
    pub lease_until: Option<Instant>,
    /// While leader: members that need a snapshot before they can serve (PD's
    /// `pending_peers`); empty on followers.
    pub pending_peers: Vec<metapb::Peer>,
    /// While leader: members that have not answered for a while, and for how long (PD's
    /// `down_peers`); empty on followers.
    pub down_peers: Vec<(metapb::Peer, std::time::Duration)>,
}

/// Counters of notable store events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Snapshots received and installed.
    pub snapshots_installed: u64,
    /// Peers destroyed because another peer proved them removed (stale peer GC).
    pub stale_peers_destroyed: u64,
    /// Requests answered by their deadline.
    pub requests_timed_out: u64,
    /// Election timeouts raft-rs drew that the deterministic override missed (must be 0).
    pub override_misses: u64,
    /// What pessimistic-lock waiters came to.
    pub lock_waits: super::lock_waits::LockWaitCounts,
    /// Raft messages from the network refused before raft-rs saw them (malformed, forged, or
    /// contradicting the log); no honest peer sends one, so the simulator expects 0.
    pub raft_messages_refused: u64,
}

/// Every region replica on one store.
pub struct Store<E: KvEngine> {
    pub(super) store_id: StoreId,
    pub(super) engine: E,
    pub(super) config: RaftConfig,
    rng: SeededRng,
    pub(super) peers: BTreeMap<RegionId, Peer<E>>,
    /// Destroyed peers: their region as they knew it, and their id.
    pub(super) tombstones: BTreeMap<RegionId, (metapb::Region, u64)>,
    pub(super) dirty: BTreeSet<RegionId>,
    pub(super) now: Instant,
    pub(super) stats: StoreStats,
    pub(super) deadlines: Deadlines,
    /// Transactional write commands in flight, and their latches.
    pub(super) txn: super::txn::TxnDriver,
    /// The cluster's deadlock detector, while this store leads the first region.
    cluster_detector: super::detector::ClusterDetector,
    /// Store-level records (peer creation) written with the next Raft log sync.
    pub(super) pending_persist: WriteBatch,
    /// Store-level messages (tombstones for stale peers) sent by the next drive.
    pub(super) outgoing: Vec<OutMessage>,
    /// Answers produced outside a drive (a destroyed stale peer's requests).
    pub(super) store_answers: Vec<(Token, Response)>,
    pub(super) trace: u64,
    /// Set when a drive failed on storage: the in-memory state may be ahead of the disk,
    /// so the store must be dropped and reloaded, never driven again.
    pub(super) failed: bool,
}

impl<E: KvEngine> Store<E> {
    /// Starts a store from what `engine` holds (empty for a new store).
    pub fn load(
        engine: E,
        store_id: StoreId,
        config: RaftConfig,
        rng: SeededRng,
    ) -> Result<Store<E>, StoreLoadError> {
        config.validate().map_err(StoreLoadError::Config)?;
        super::load::check_layout(&engine)?;
        let mut store = Store {
            store_id,
            engine: engine.clone(),
            config,
            rng,
            peers: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            dirty: BTreeSet::new(),
            now: Instant::default(),
            stats: StoreStats::default(),
            deadlines: Deadlines::default(),
            txn: super::txn::TxnDriver::default(),
            cluster_detector: Default::default(),
            pending_persist: WriteBatch::new(),
            outgoing: Vec::new(),
            store_answers: Vec::new(),
            trace: crate::types::fnv::FNV_OFFSET,
            failed: false,
        };
        for found in scan_regions(&engine, store_id.get())? {
            match found {
                Found::Live { state, peer } => store.insert_peer(&peer, state)?,
                Found::Uninitialized {
                    region,
                    peer,
                    hard_state,
                } => {
                    let state = uninitialized_state(region, hard_state);
                    store.insert_peer(&peer, state)?;
                }
                Found::Tombstone(region, peer_id) => {
                    store
                        .tombstones
                        .insert(RegionId(region.id), (region, peer_id));
                }
            }
        }
        let initialized = store.peers.values().filter(|peer| peer.is_initialized());
        super::load::check_disjoint(initialized.map(|peer| peer.region()))?;
        for peer in store.peers.values_mut() {
            peer.guard_votes_after_restart();
        }
        store.check_invariants();
        tracing::info!(store_id = %store_id, regions = store.peers.len(), "store loaded");
        Ok(store)
    }

    pub(super) fn insert_peer(
        &mut self,
        peer: &metapb::Peer,
        state: LoadedState,
    ) -> Result<(), raft::Error> {
        let region_id = RegionId(state.region.id);
        let rng = self.rng.fork(region_id.get() << 20 ^ peer.id);
        let created = Peer::new(
            self.engine.clone(),
            self.store_id,
            peer,
            region_id,
            state,
            &self.config,
            rng,
        )?;
        assert_eq!(created.region_id(), region_id);
        assert_eq!(
            created.peer_id().get(),
            peer.id,
            "the peer is the one asked for"
        );
        let replaced = self.peers.insert(region_id, created);
        assert!(
            replaced.is_none(),
            "region {region_id} already has a peer here"
        );
        self.dirty.insert(region_id);
        Ok(())
    }

    /// Checks the store-wide invariants; a violation is a bug.
    pub(super) fn check_invariants(&self) {
        self.txn.check_invariants();
        let initialized = self.peers.values().filter(|peer| peer.is_initialized());
        if let Err(overlap) = super::load::check_disjoint(initialized.map(|peer| peer.region())) {
            panic!("store {}: regions overlap: {overlap}", self.store_id);
        }
        for (region_id, peer) in &self.peers {
            assert_eq!(
                *region_id,
                peer.region_id(),
                "peers are keyed by their region"
            );
            assert!(
                peer.truncated().0 <= peer.commit_index(),
                "region {region_id}: compacted past the commit index"
            );
            assert!(
                peer.applied_index() <= peer.commit_index(),
                "region {}: applied {} beyond commit {}",
                peer.region_id(),
                peer.applied_index(),
                peer.commit_index()
            );
        }
    }

    /// Event counters.
    pub fn stats(&self) -> StoreStats {
        let mut stats = self.stats;
        stats.override_misses = self.peers.values().map(|p| p.override_misses()).sum();
        stats.lock_waits = self.txn.lock_wait_counts();
        stats
    }

    /// This store's id.
    pub fn store_id(&self) -> StoreId {
        self.store_id
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// True if a `drive` call has work left (it stops after a bounded number of rounds so
    /// new inputs are not starved): the caller should drive again without waiting.
    pub fn has_work(&self) -> bool {
        !self.dirty.is_empty() || !self.outgoing.is_empty() || !self.pending_persist.is_empty()
    }

    /// Requests accepted and not yet answered.
    pub fn pending_requests(&self) -> usize {
        self.deadlines.len()
    }

    /// The Raft configuration.
    pub fn config(&self) -> &RaftConfig {
        &self.config
    }

    /// Moves the store's clock; ticks are separate (`tick`).
    pub fn set_now(&mut self, now: Instant) {
        assert!(now >= self.now, "store clock moved backwards");
        self.now = now;
        self.txn.set_now(now.nanos / 1_000_000);
    }

    /// One logical tick for every peer.
    pub fn tick(&mut self) {
        let now = self.now;
        crate::types::fnv::fold_u64(&mut self.trace, now.nanos);
        for (region_id, peer) in &mut self.peers {
            peer.tick(now);
            self.dirty.insert(*region_id);
        }
        self.txn.tick(now.nanos / 1_000_000);
        let woken = self.txn.take_wake_answers();
        self.store_answers.extend(woken);
    }

    /// Status of every initialized region.
    pub fn regions(&self) -> Vec<RegionStatus> {
        self.peers
            .values()
            .filter(|peer| peer.is_initialized())
            .map(|peer| RegionStatus {
                region: peer.region().clone(),
                leader: peer.leader(),
                is_leader: peer.is_leader(),
                applied_index: peer.applied_index(),
                applied_term: peer.applied_term(),
                commit_index: peer.commit_index(),
                last_index: peer.last_index(),
                truncated: peer.truncated(),
                term: peer.term(),
                lease_until: peer.lease_until(self.now),
                pending_peers: peer.pending_peers(),
                down_peers: peer.down_peers(),
            })
            .collect()
    }

    /// The regions this store leads, with their terms.
    fn leaders(&self) -> std::collections::BTreeMap<RegionId, u64> {
        self.peers
            .iter()
            .filter(|(_, peer)| peer.is_leader())
            .map(|(region, peer)| (*region, peer.term()))
            .collect()
    }

    /// The leaders here (region, term) that may not yet use max_ts for async commit and
    /// 1PC: the caller takes a PD timestamp after this call and hands both to
    /// `max_ts_synced`.
    pub fn max_ts_unsynced(&self) -> Vec<(RegionId, u64)> {
        self.txn.max_ts_unsynced(self.leaders().into_iter())
    }

    /// `pd_ts`, a PD timestamp requested after `listed` came from `max_ts_unsynced`:
    /// raises max_ts to it and lets the listed leaders still leading in their term use it.
    pub fn max_ts_synced(&mut self, listed: &[(RegionId, u64)], pd_ts: crate::types::TimeStamp) {
        let current = self.leaders();
        self.txn.max_ts_synced(listed, pd_ts, &current);
    }

    /// Serves calls for the cluster's deadlock detector (see `detector.rs`): answered here
    /// while this store leads the first region, else `NotDetector` with its leader if known.
    pub fn serve_detector(&mut self, batch: &super::DetectorBatch) -> super::DetectorAnswer {
        let first = self
            .peers
            .values()
            .find(|peer| peer.is_initialized() && peer.region().start_key.is_empty());
        let leading = first
            .filter(|peer| peer.is_leader())
            .map(|peer| (peer.region_id(), peer.term()));
        let leader = first
            .and_then(|peer| peer.leader())
            .map(|peer| StoreId(peer.store_id));
        let now_ms = self.now.nanos / 1_000_000;
        self.cluster_detector.serve(batch, leading, leader, now_ms)
    }

    /// Calls this store's waits make on the cluster's detector since the last call: the
    /// driver delivers them to the first region's leader (`serve_detector` there) and
    /// reports what it found with `on_remote_deadlock`.
    pub fn take_detector_calls(&mut self) -> Vec<super::DetectorCall> {
        self.txn.take_detector_calls()
    }

    /// The cluster's detector found that the wait `edge` closes a cycle: its waiter, if
    /// still waiting, is answered `Deadlock` by the next `drive`.
    pub fn on_remote_deadlock(
        &mut self,
        edge: &crate::mvcc::WaitForEdge,
        found: crate::txn::Deadlock,
    ) {
        self.txn.on_remote_deadlock(edge, found);
        let answers = self.txn.take_wake_answers();
        self.store_answers.extend(answers);
    }

    /// The term of `index` in the log of this store's peer of `region`, if it holds it.
    pub fn log_term(&self, region: RegionId, index: u64) -> Option<u64> {
        self.peers.get(&region)?.log_term(index)
    }

    /// Accepts a request. `Some` is an immediate answer; otherwise the answer comes from a
    /// later `drive` (at the latest when the request's deadline passes).
    pub fn request(&mut self, token: Token, request: Request) -> Option<Response> {
        let now = self.now;
        let region_id = match &request {
            Request::Write { header, .. }
            | Request::Read { header, .. }
            | Request::TxnRead { header, .. }
            | Request::TxnWrite { header, .. } => header.region_id,
            Request::Admin(admin) => RegionId(admin.region_id),
        };
        if let Some(error) = self.check_admin(&request) {
            return Some(Response::Admin(Err(error)));
        }
        let Some(peer) = self
            .peers
            .get_mut(&region_id)
            .filter(|p| p.is_initialized())
        else {
            return Some(Response::error_for(
                &request,
                RegionError::RegionNotFound(region_id),
            ));
        };
        self.dirty.insert(region_id);
        let kind = Response::error_for(&request, RegionError::StaleCommand);
        let result = match request {
            Request::Write { header, ops } => peer
                .propose_write(token, &header, ops)
                .map_err(|e| Response::Write(Err(e))),
            Request::Read {
                header,
                read,
                now_ms,
            } => peer
                .read(token, &header, read, now_ms, now)
                .map_err(|e| Response::Read(Err(e))),
            Request::Admin(admin) => match peer.propose_admin(token, admin) {
                Ok(Some(done)) => return Some(Response::Admin(Ok(done))),
                Ok(None) => Ok(()),
                Err(error) => Err(Response::Admin(Err(error))),
            },
            Request::TxnRead { header, read } => peer
                .read_txn(token, &header, ReadOp::Txn(read), now)
                .map_err(|e| Response::TxnRead(Err(TxnFailure::Region(e)))),
            Request::TxnWrite { header, command } => {
                let checked = peer
                    .check_leader_and_epoch(&header)
                    .and_then(|()| peer.check_txn_ranges(&command.user_ranges()));
                match checked {
                    Err(e) => Err(Response::TxnWrite(Err(TxnFailure::Region(e)))),
                    Ok(()) => match self.txn.submit(token, header, command) {
                        Err(failure) => Err(Response::TxnWrite(Err(failure))),
                        Ok(start) => {
                            let deadline = now + self.config.request_timeout;
                            self.deadlines.accept(token, deadline, &kind);
                            if let Some(start) = start {
                                self.start_txn_write(start);
                            }
                            return None;
                        }
                    },
                }
            }
        };
        match result {
            Ok(()) => {
                let deadline = now + self.config.request_timeout;
                self.deadlines.accept(token, deadline, &kind);
                None
            }
            Err(response) => Some(response),
        }
    }

    /// Store-level checks of an admin command: a split's new region id must be unknown
    /// here (the peer checks everything about its own region).
    fn check_admin(&self, request: &Request) -> Option<RegionError> {
        let Request::Admin(admin) = request else {
            return None;
        };
        let Some(ferrokv_proto::ferrokv_raftpb::admin_request::Cmd::Split(split)) = &admin.cmd
        else {
            return None;
        };
        let new_region = RegionId(split.new_region_id);
        let taken =
            self.peers.contains_key(&new_region) || self.tombstones.contains_key(&new_region);
        taken.then(|| {
            RegionError::Invalid(format!(
                "split target region {new_region} already exists here"
            ))
        })
    }

    /// A fingerprint of every message this store received and every draw and applied entry
    /// of its peers: equal across two runs of one seed, or the run is not deterministic.
    pub fn trace_hash(&self) -> u64 {
        let mut hash = self.trace;
        for (region_id, peer) in &self.peers {
            crate::types::fnv::fold_u64(&mut hash, region_id.get());
            crate::types::fnv::fold_u64(&mut hash, peer.trace());
        }
        hash
    }

    /// A generated snapshot for `region` (see `Effects::snapshot_tasks`).
    pub fn on_snapshot_generated(
        &mut self,
        region: RegionId,
        result: Result<raft::eraftpb::Snapshot, crate::env::EngineError>,
    ) {
        if let Some(peer) = self.peers.get_mut(&region) {
            peer.on_snapshot_generated(result);
            self.dirty.insert(region);
        }
    }

    /// The transport finished sending a snapshot of `region` to `to_peer`.
    pub fn report_snapshot(&mut self, region: RegionId, to_peer: u64, delivered: bool) {
        if let Some(peer) = self.peers.get_mut(&region) {
            peer.report_snapshot(to_peer, delivered);
            self.dirty.insert(region);
        }
    }

    /// True if `range` overlaps an initialized region on this store other than `except`.
    pub(super) fn overlaps_other_region(
        &self,
        range: &crate::types::KeyRange,
        except: RegionId,
    ) -> bool {
        self.peers
            .values()
            .filter(|peer| peer.is_initialized() && peer.region_id() != except)
            .any(|peer| region_range(peer.region()).overlaps(range))
    }

    /// Routes a message to the peer of its region, if any (used by `route.rs`).
    pub(super) fn step_local(&mut self, region_id: RegionId, message: RaftMessage) {
        if let Some(peer) = self.peers.get_mut(&region_id) {
            if !peer.step(message) {
                self.stats.raft_messages_refused += 1;
            }
            self.dirty.insert(region_id);
        }
    }
}

/// The loaded state of a peer created by a message or waiting for its first snapshot.
pub(super) fn uninitialized_state(region: metapb::Region, hard_state: HardState) -> LoadedState {
    LoadedState {
        region: metapb::Region {
            peers: Vec::new(),
            ..region
        },
        apply_state: Default::default(),
        hard_state,
        entries: Vec::new(),
    }
}
