//! The store state machine: peers by region, message routing, request admission.

use std::collections::{BTreeMap, BTreeSet};

use ferrokv_proto::ferrokv_raftpb::{PeerState, RaftMessage};
use ferrokv_proto::metapb;
use protobuf::Message as _;
use raft::eraftpb::{HardState, Message as RaftWireMessage, MessageType};

use super::cmd::{Request, Response, Token};
use super::error::RegionError;
use super::load::{scan_regions, Found, StoreLoadError};
use crate::env::{Cf, EngineError, Instant, KvEngine, SeededRng, WriteBatch, WriteOptions};
use crate::raft::storage::{clear_region_data, region_range, write_region_state, LoadedState};
use crate::raft::{keys, Effects, Peer, PeerEvent, RaftConfig, INIT_LOG_INDEX, INIT_LOG_TERM};
use crate::types::{RegionId, StoreId};

/// A region's state on this store, for status pages and convergence checks.
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
    /// Current term.
    pub term: u64,
}

/// Counters of notable store events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Snapshots received and installed.
    pub snapshots_installed: u64,
}

/// Every region replica on one store.
pub struct Store<E: KvEngine> {
    pub(super) store_id: StoreId,
    pub(super) engine: E,
    pub(super) config: RaftConfig,
    rng: SeededRng,
    pub(super) peers: BTreeMap<RegionId, Peer<E>>,
    tombstones: BTreeMap<RegionId, metapb::Region>,
    pub(super) dirty: BTreeSet<RegionId>,
    pub(super) now: Instant,
    stats: StoreStats,
    trace: u64,
}

impl<E: KvEngine> Store<E> {
    /// Starts a store from what `engine` holds (empty for a new store).
    pub fn load(
        engine: E,
        store_id: StoreId,
        config: RaftConfig,
        rng: SeededRng,
    ) -> Result<Store<E>, StoreLoadError> {
        config
            .validate()
            .map_err(|detail| StoreLoadError::Inconsistent {
                region_id: 0,
                detail,
            })?;
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
            trace: crate::types::fnv::FNV_OFFSET,
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
                Found::Tombstone(region) => {
                    store.tombstones.insert(RegionId(region.id), region);
                }
            }
        }
        tracing::info!(store_id = %store_id, regions = store.peers.len(), "store loaded");
        Ok(store)
    }

    fn insert_peer(&mut self, peer: &metapb::Peer, state: LoadedState) -> Result<(), raft::Error> {
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
        self.peers.insert(region_id, created);
        self.dirty.insert(region_id);
        Ok(())
    }

    /// Event counters.
    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    /// This store's id.
    pub fn store_id(&self) -> StoreId {
        self.store_id
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Moves the store's clock; ticks are separate (`tick`).
    pub fn set_now(&mut self, now: Instant) {
        assert!(now >= self.now, "store clock moved backwards");
        self.now = now;
    }

    /// One logical tick for every peer.
    pub fn tick(&mut self) {
        let now = self.now;
        crate::types::fnv::fold_u64(&mut self.trace, now.nanos);
        for (region_id, peer) in &mut self.peers {
            peer.tick(now);
            self.dirty.insert(*region_id);
        }
    }

    /// Status of every region.
    pub fn regions(&self) -> Vec<RegionStatus> {
        self.peers
            .values()
            .filter(|peer| peer.is_initialized())
            .map(|peer| RegionStatus {
                region: peer.region().clone(),
                leader: peer.leader(),
                is_leader: peer.is_leader(),
                applied_index: peer.applied_index(),
                term: peer.term(),
            })
            .collect()
    }

    /// Accepts a request. `Some` is an immediate answer; otherwise the answer comes from a
    /// later `drive`.
    pub fn request(&mut self, token: Token, request: Request) -> Option<Response> {
        let now = self.now;
        let region_id = match &request {
            Request::Write { header, .. } | Request::Read { header, .. } => header.region_id,
            Request::Admin(admin) => RegionId(admin.region_id),
        };
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
        };
        result.err()
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

    /// Routes a Raft message from another store, creating the target peer if a leader of a
    /// region this store does not have yet is reaching out.
    pub fn on_raft_message(&mut self, message: RaftMessage) {
        crate::types::fnv::fold_u64(&mut self.trace, message.region_id);
        crate::types::fnv::fold(&mut self.trace, &message.message);
        let Some(to_peer) = message.to_peer else {
            return;
        };
        if to_peer.store_id != self.store_id.get() {
            tracing::warn!(store_id = %self.store_id, to = to_peer.store_id, "message for another store");
            return;
        }
        let region_id = RegionId(message.region_id);
        if let Some(peer) = self.peers.get_mut(&region_id) {
            if peer.peer_id().get() != to_peer.id {
                tracing::debug!(%region_id, "message for another peer id; dropping");
                return;
            }
            peer.step(message);
            self.dirty.insert(region_id);
            return;
        }
        if self.is_stale_for_tombstone(&message) || !self.may_create_peer(&message) {
            return;
        }
        if let Err(error) = self.create_peer_for_message(&message, &to_peer) {
            tracing::warn!(%region_id, %error, "could not create a peer for an incoming message");
            return;
        }
        if let Some(peer) = self.peers.get_mut(&region_id) {
            peer.step(message);
        }
    }

    fn is_stale_for_tombstone(&self, message: &RaftMessage) -> bool {
        let Some(tombstone) = self.tombstones.get(&RegionId(message.region_id)) else {
            return false;
        };
        let dead = tombstone.region_epoch.unwrap_or_default();
        let incoming = message.region_epoch.unwrap_or_default();
        incoming.conf_ver <= dead.conf_ver
    }

    /// A peer is created only for messages a leader or candidate sends, and only if its
    /// range overlaps no initialized local region (a split not yet applied here will
    /// create it instead).
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
        let incoming =
            crate::types::KeyRange::new(message.start_key.clone(), message.end_key.clone());
        !self
            .peers
            .values()
            .filter(|peer| peer.is_initialized())
            .any(|peer| region_range(peer.region()).overlaps(&incoming))
    }

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
        let mut batch = WriteBatch::new();
        write_region_state(&region, PeerState::Applying, to_peer.id, &mut batch);
        self.engine.write(&batch, WriteOptions::SYNC)?;
        tracing::info!(
            region_id = region.id,
            peer_id = to_peer.id,
            "created uninitialized peer"
        );
        self.insert_peer(to_peer, uninitialized_state(region, HardState::default()))?;
        Ok(())
    }

    /// Acts on peer events after a poll: creates split regions, destroys removed peers.
    pub(super) fn handle_events(&mut self, effects: &mut Effects) {
        for event in std::mem::take(&mut effects.events) {
            match event {
                PeerEvent::Split { new_region } => self.create_split_peer(new_region),
                PeerEvent::Removed { region_id } => self.destroy_peer(region_id, effects),
                PeerEvent::SnapshotInstalled { .. } => self.stats.snapshots_installed += 1,
            }
        }
    }

    fn create_split_peer(&mut self, region: metapb::Region) {
        let region_id = RegionId(region.id);
        let Some(me) = region
            .peers
            .iter()
            .find(|p| p.store_id == self.store_id.get())
            .cloned()
        else {
            return;
        };
        let mut hard_state = HardState {
            term: INIT_LOG_TERM,
            commit: INIT_LOG_INDEX,
            ..Default::default()
        };
        if let Some(existing) = self.peers.remove(&region_id) {
            // An uninitialized peer created by an eager message: keep its term and vote.
            assert!(
                !existing.is_initialized(),
                "split target region {region_id} already exists"
            );
            hard_state.term = hard_state.term.max(existing.term());
        }
        let state = LoadedState {
            region: region.clone(),
            apply_state: crate::raft::storage::initial_apply_state(),
            hard_state,
            entries: Vec::new(),
        };
        let parent_leads = self
            .peers
            .values()
            .any(|p| p.is_leader() && p.region().end_key == region.start_key);
        if let Err(error) = self.insert_peer(&me, state) {
            panic!("region {region_id} from a split cannot start: {error}");
        }
        if parent_leads {
            if let Some(peer) = self.peers.get_mut(&region_id) {
                peer.campaign();
            }
        }
    }

    fn destroy_peer(&mut self, region_id: RegionId, effects: &mut Effects) {
        let Some(mut peer) = self.peers.remove(&region_id) else {
            return;
        };
        let error = RegionError::RegionNotFound(region_id);
        for (token, error) in peer.fail_all_pending(&error) {
            effects.responses.push((token, Response::Write(Err(error))));
        }
        let region = peer.region().clone();
        let batch = &mut effects.apply;
        clear_region_data(&region, batch);
        let op = crate::env::RaftLogOp::Clear { region: region_id };
        crate::env::stage_log_op(&op, batch);
        write_region_state(&region, PeerState::Tombstone, 0, batch);
        batch.delete(Cf::Raft, &keys::apply_state_key(region_id));
        effects.apply_sync = true;
        tracing::info!(%region_id, store_id = %self.store_id, "peer removed; destroyed");
        self.tombstones.insert(region_id, region);
    }

    pub(super) fn engine_error(&self, error: EngineError) -> EngineError {
        tracing::error!(store_id = %self.store_id, %error, "storage failed; the store stops");
        error
    }
}

fn uninitialized_state(region: metapb::Region, hard_state: HardState) -> LoadedState {
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
