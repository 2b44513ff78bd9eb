//! The L1 harness: real `Store`s over `SimEngine`s, stepped directly (no async) over the
//! packet simulator, with virtual time. It is the driver the pure cores run under for
//! scenario tests: exact, fast, and replayable from a seed.

mod client;
mod network;

use std::collections::BTreeMap;
use std::time::Duration;

use ferrokv_core::env::{Instant, Rng, SeededRng};
use ferrokv_core::raft::{region_data_hash, RaftConfig};
use ferrokv_core::store::{bootstrap_region, RegionStatus, Request, Response, Store, Token};
use ferrokv_core::types::{RegionId, StoreId};
use ferrokv_proto::metapb;

pub use client::{delete_op, put_op, region_error, CallError};
pub use network::{message_type, NetConfig, Network, Outbox, Packet, PacketDelay, PacketFilter};

use crate::engine::{CrashTail, SimDisk, SimEngine};

/// One store of the harness: its disk survives crashes, the `Store` does not.
struct Node {
    disk: SimDisk,
    store: Option<Store<SimEngine>>,
    outbox: Outbox,
    next_tick: Instant,
    restarts: u64,
}

/// A simulated cluster of stores.
pub struct Cluster {
    now: Instant,
    rng: SeededRng,
    config: RaftConfig,
    nodes: BTreeMap<StoreId, Node>,
    /// The simulated network; tests cut links and add filters on it.
    pub network: Network,
    next_token: u64,
    responses: BTreeMap<Token, Response>,
}

/// The region every cluster starts with: the whole key space on stores `1..=stores`, peer
/// ids equal to store ids.
pub fn initial_region(stores: u64) -> metapb::Region {
    metapb::Region {
        id: 1,
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: (1..=stores)
            .map(|id| metapb::Peer {
                id,
                store_id: id,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

impl Cluster {
    /// `stores` stores sharing one bootstrapped region, all randomness from `seed`.
    pub fn new(stores: u64, seed: u64, config: RaftConfig, net: NetConfig) -> Cluster {
        let mut cluster = Cluster {
            now: Instant::from_nanos(0),
            rng: SeededRng::new(seed),
            config,
            nodes: BTreeMap::new(),
            network: Network::new(net),
            next_token: 1,
            responses: BTreeMap::new(),
        };
        let region = initial_region(stores);
        for id in 1..=stores {
            let disk = SimDisk::new();
            let engine = SimEngine::open(&disk).expect("fresh sim engine");
            bootstrap_region(&engine, &region).expect("bootstrap");
            let node = Node {
                disk,
                store: None,
                outbox: Outbox::default(),
                next_tick: Instant::default(),
                restarts: 0,
            };
            cluster.nodes.insert(StoreId(id), node);
            cluster.start(StoreId(id));
        }
        cluster
    }

    /// Adds an empty store (for membership changes).
    pub fn add_empty_store(&mut self, id: StoreId) {
        let node = Node {
            disk: SimDisk::new(),
            store: None,
            outbox: Outbox::default(),
            next_tick: self.now,
            restarts: 0,
        };
        self.nodes.insert(id, node);
        self.start(id);
    }

    fn start(&mut self, id: StoreId) {
        let tick = self.config.tick_interval;
        let node = self.nodes.get_mut(&id).expect("known store");
        let engine = SimEngine::open(&node.disk).expect("sim engine reopens after a crash");
        let stream = id.get() * 1_000 + node.restarts;
        let store = Store::load(engine, id, self.config.clone(), self.rng.fork(stream))
            .expect("store loads from its disk");
        node.store = Some(store);
        node.next_tick = self.now + tick;
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Store ids.
    pub fn store_ids(&self) -> Vec<StoreId> {
        self.nodes.keys().copied().collect()
    }

    /// Powers a store off: its unsynced writes are handled per `tail`.
    pub fn crash(&mut self, id: StoreId, tail: CrashTail) {
        let node = self.nodes.get_mut(&id).expect("known store");
        node.store = None;
        node.outbox.take();
        node.disk.crash(tail);
    }

    /// Powers a crashed store back on; it recovers from its disk.
    pub fn restart(&mut self, id: StoreId) {
        let node = self.nodes.get_mut(&id).expect("known store");
        assert!(node.store.is_none(), "restart of a running store");
        node.restarts += 1;
        self.start(id);
    }

    /// Makes `id`'s transport refuse its next `count` snapshot sends (a full queue).
    pub fn refuse_snapshot_sends(&mut self, id: StoreId, count: u64) {
        let node = self.nodes.get(&id).expect("known store");
        node.outbox.refuse_snapshot_sends(count);
    }

    /// True if the store is running.
    pub fn is_up(&self, id: StoreId) -> bool {
        self.nodes.get(&id).is_some_and(|node| node.store.is_some())
    }

    /// Cuts every link between `id` and the other stores.
    pub fn isolate(&mut self, id: StoreId) {
        for other in self.store_ids() {
            if other != id {
                self.network.cut_both(id, other);
            }
        }
    }

    /// Runs the cluster for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        while self.step_until(until) {}
    }

    /// Processes the next event if it is due by `until`; false when nothing is.
    fn step_until(&mut self, until: Instant) -> bool {
        let next_tick = self
            .nodes
            .values()
            .filter(|n| n.store.is_some())
            .map(|n| n.next_tick)
            .min();
        let next = [next_tick, self.network.next_arrival()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next.filter(|at| *at <= until) else {
            self.now = self.now.max(until);
            return false;
        };
        self.now = self.now.max(next);
        for packet in self.network.due(self.now) {
            if let Some(store) = self
                .nodes
                .get_mut(&packet.to)
                .and_then(|n| n.store.as_mut())
            {
                store.on_raft_message(packet.message);
            }
        }
        self.deliver_snapshot_reports();
        let tick = self.config.tick_interval;
        let now = self.now;
        for node in self.nodes.values_mut() {
            if let Some(store) = node.store.as_mut() {
                store.set_now(now);
                while node.next_tick <= now {
                    store.tick();
                    node.next_tick = node.next_tick + tick;
                }
            }
        }
        self.drive_all();
        true
    }

    fn deliver_snapshot_reports(&mut self) {
        for (from, region, to_peer, delivered) in self.network.take_snapshot_reports() {
            if let Some(store) = self.nodes.get_mut(&from).and_then(|n| n.store.as_mut()) {
                store.report_snapshot(RegionId(region), to_peer, delivered);
            }
        }
    }

    fn drive_all(&mut self) {
        let ids = self.store_ids();
        for id in ids {
            let node = self.nodes.get_mut(&id).expect("known store");
            let Some(store) = node.store.as_mut() else {
                continue;
            };
            let output = store
                .drive(&node.outbox)
                .expect("sim engine writes succeed");
            // The harness generates snapshots at once, where a server uses a task.
            for task in output.snapshot_tasks {
                store.on_snapshot_generated(task.region_id, task.run());
            }
            self.responses.extend(output.responses);
            for (to, message) in node.outbox.take() {
                let packet = Packet {
                    from: id,
                    to,
                    message,
                };
                self.network.send(packet, self.now, &mut self.rng);
            }
        }
    }

    /// Submits `request` to store `id`; the response arrives through `wait`.
    pub fn submit(&mut self, id: StoreId, request: Request) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        let Some(store) = self.nodes.get_mut(&id).and_then(|n| n.store.as_mut()) else {
            let error = ferrokv_core::store::RegionError::ServerIsBusy("store is down".into());
            self.responses
                .insert(token, Response::error_for(&request, error));
            return token;
        };
        store.set_now(self.now);
        if let Some(response) = store.request(token, request) {
            self.responses.insert(token, response);
        }
        self.drive_all();
        token
    }

    /// Runs until the response for `token` arrives or `timeout` passes.
    pub fn wait(&mut self, token: Token, timeout: Duration) -> Option<Response> {
        let until = self.now + timeout;
        loop {
            if let Some(response) = self.responses.remove(&token) {
                return Some(response);
            }
            if !self.step_until(until) {
                return self.responses.remove(&token);
            }
        }
    }

    /// Status of every region on store `id`.
    pub fn regions(&self, id: StoreId) -> Vec<RegionStatus> {
        self.store(id).map(Store::regions).unwrap_or_default()
    }

    /// The running store `id`.
    pub fn store(&self, id: StoreId) -> Option<&Store<SimEngine>> {
        self.nodes.get(&id).and_then(|node| node.store.as_ref())
    }

    /// The store whose peer leads `region`, among running stores (the highest term wins).
    pub fn leader_of(&self, region: RegionId) -> Option<StoreId> {
        let mut best: Option<(u64, StoreId)> = None;
        for id in self.store_ids() {
            for status in self.regions(id) {
                if status.region.id == region.get()
                    && status.is_leader
                    && best.is_none_or(|(term, _)| status.term > term)
                {
                    best = Some((status.term, id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Runs until `region` has a leader, up to `timeout`.
    pub fn wait_for_leader(&mut self, region: RegionId, timeout: Duration) -> Option<StoreId> {
        let until = self.now + timeout;
        loop {
            if let Some(leader) = self.leader_of(region) {
                return Some(leader);
            }
            if !self.step_until(until) {
                return self.leader_of(region);
            }
        }
    }

    /// Runs until some store outside `excluded` leads `region`.
    pub fn wait_for_leader_outside(
        &mut self,
        excluded: &[StoreId],
        timeout: Duration,
    ) -> Option<StoreId> {
        let until = self.now + timeout;
        loop {
            let leader = self.store_ids().into_iter().find(|id| {
                !excluded.contains(id)
                    && self
                        .regions(*id)
                        .iter()
                        .any(|r| r.region.id == 1 && r.is_leader)
            });
            if leader.is_some() {
                return leader;
            }
            if !self.step_until(until) {
                return None;
            }
        }
    }

    /// `(store, applied index, data hash)` of every running replica of `region`.
    pub fn replica_hashes(&self, region: RegionId) -> Vec<(StoreId, u64, u64)> {
        let mut out = Vec::new();
        for id in self.store_ids() {
            let Some(store) = self.store(id) else {
                continue;
            };
            for status in store.regions() {
                if status.region.id != region.get() {
                    continue;
                }
                let view = ferrokv_core::env::KvEngine::snapshot(store.engine());
                let hash = region_data_hash(&view, &status.region).expect("sim engine reads");
                out.push((id, status.applied_index, hash));
            }
        }
        out
    }

    /// A fresh draw from the cluster's seeded stream (for test-side random choices).
    pub fn random(&mut self, bound: u64) -> u64 {
        self.rng.below(bound)
    }
}
