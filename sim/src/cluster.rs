//! The L2 cluster: real `ferrokv-server` nodes (tokio + tonic code, compiled against madsim)
//! on simulated machines, each over a `SimEngine` whose `SimDisk` outlives kills and
//! restarts, and each with its own clock (rate, jumps and wall-clock skew under the
//! nemesis's control). Only under `--cfg madsim`.
//!
//! The first region is bootstrapped on the first `voters` stores; the others start empty,
//! as spares for membership changes. Or (`SimCluster::with_pd`) the stores joined through
//! real PD members (`pd_cluster`): then they are keyed by the id PD gave them, and the
//! members stay reachable through `pd`, so every store fault works the same either way.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ferrokv_client::{RawClient, RawConfig};
use ferrokv_server::clock::{ClockControl, RuntimeClock};
use ferrokv_server::config::{BootstrapSection, RaftSection, ServerConfig};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};

use crate::engine::{CrashTail, SimDisk, SimEngine};
use crate::pd_cluster::PdCluster;

/// gRPC port every simulated store listens on.
pub const STORE_PORT: u16 = 20160;

/// One simulated store machine.
pub struct SimStore {
    /// Store id.
    pub id: u64,
    /// `ip:port`.
    pub addr: String,
    /// Its disk, surviving restarts.
    pub disk: SimDisk,
    /// Its clock (monotonic rate and jumps, wall-clock skew), surviving restarts like a
    /// machine's clock survives a process restart.
    pub clock: ClockControl,
    /// Its machine.
    pub node: NodeHandle,
}

impl SimStore {
    /// Store `id` running on a machine `pd_cluster` started.
    pub fn of_machine(id: u64, machine: &crate::pd_cluster::Machine) -> SimStore {
        SimStore {
            id,
            addr: machine.addr.clone(),
            disk: machine.disk.clone(),
            clock: machine.clock.clone(),
            node: machine.node.clone(),
        }
    }
}

/// A cluster of simulated store machines.
pub struct SimCluster {
    handle: Handle,
    /// Stores by id (a store that joins during the run is added).
    stores: RwLock<BTreeMap<u64, Arc<SimStore>>>,
    /// Trace hashes of store incarnations that were killed (folded into the run's trace).
    pub past_traces: Mutex<Vec<(u64, u64)>>,
    /// How many faults currently cut each one-way store link.
    cuts: Mutex<LinkCuts>,
    /// The Placement Driver the stores joined through (`None`: a static bootstrap).
    pub pd: Option<PdCluster>,
}

/// Reference counts of one-way link cuts: two overlapping faults may cut the same link,
/// and the link comes back only when both have restored it.
#[derive(Debug, Default)]
pub struct LinkCuts(BTreeMap<(u64, u64), u32>);

impl LinkCuts {
    /// Counts one more cut of `from -> to`; true if the link was up until now.
    pub fn cut(&mut self, from: u64, to: u64) -> bool {
        let count = self.0.entry((from, to)).or_default();
        *count += 1;
        *count == 1
    }

    /// Drops one cut of `from -> to`; true if that was the last one (the link is up now).
    /// Restoring a link nobody cut does nothing.
    pub fn restore(&mut self, from: u64, to: u64) -> bool {
        let Some(count) = self.0.get_mut(&(from, to)) else {
            return false;
        };
        *count -= 1;
        if *count > 0 {
            return false;
        }
        self.0.remove(&(from, to));
        true
    }

    /// Forgets every cut; returns the links that were cut.
    pub fn clear(&mut self) -> Vec<(u64, u64)> {
        std::mem::take(&mut self.0).into_keys().collect()
    }
}

fn store_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, id as u8))
}

fn store_config(id: u64, count: u64, voters: u64, raft: &RaftSection) -> ServerConfig {
    let stores = (1..=count)
        .map(|other| (other, format!("{}:{STORE_PORT}", store_ip(other))))
        .collect();
    let bootstrap = (id <= voters).then(|| BootstrapSection {
        region_id: 1,
        peers: (1..=voters).map(|s| [s, s]).collect(),
    });
    ServerConfig {
        store_id: id,
        addr: format!("{}:{STORE_PORT}", store_ip(id)),
        peer_addr: None,
        data_dir: format!("sim/store{id}").into(),
        raft: raft.clone(),
        stores,
        bootstrap,
    }
}

impl SimCluster {
    /// Starts `count` stores, the first `voters` holding the first region; each node's
    /// random stream derives from the run seed.
    pub fn start(count: u64, voters: u64, raft: RaftSection) -> SimCluster {
        assert!((1..=count).contains(&voters), "voters among the stores");
        let handle = Handle::current();
        let seed = handle.seed();
        let mut stores = BTreeMap::new();
        for id in 1..=count {
            let disk = SimDisk::new();
            let config = store_config(id, count, voters, &raft);
            let addr = config.addr.clone();
            let node_disk = disk.clone();
            let clock = RuntimeClock::new();
            let node_clock = clock.clone();
            let node = handle
                .create_node()
                .name(format!("store{id}"))
                .ip(store_ip(id))
                .init(move || {
                    let disk = node_disk.clone();
                    let config = config.clone();
                    let clock = node_clock.clone();
                    async move {
                        let engine = match SimEngine::open(&disk) {
                            Ok(engine) => engine,
                            Err(error) => {
                                // A corrupt disk: the store refuses to start (it never
                                // serves data it cannot trust) and stays down.
                                tracing::warn!(store = id, %error, "store cannot open its disk");
                                return;
                            }
                        };
                        let node_seed = seed ^ (id << 48);
                        let shutdown = std::future::pending();
                        let result = ferrokv_server::run_with_clock(
                            config, engine, node_seed, clock, shutdown,
                        )
                        .await;
                        tracing::warn!(store = id, ?result, "store stopped");
                    }
                })
                .build();
            let control = clock.control();
            stores.insert(
                id,
                Arc::new(SimStore {
                    id,
                    addr,
                    disk,
                    clock: control,
                    node,
                }),
            );
        }
        SimCluster {
            handle,
            stores: RwLock::new(stores),
            past_traces: Mutex::new(Vec::new()),
            cuts: Mutex::new(LinkCuts::default()),
            pd: None,
        }
    }

    /// The stores of `pd` (every one registered: `ids` maps each store index to the id PD
    /// gave it), keyed by their PD store id; `pd` keeps its members.
    pub fn with_pd(pd: PdCluster, ids: &BTreeMap<u64, u64>) -> SimCluster {
        let stores = pd
            .stores
            .iter()
            .map(|(index, machine)| {
                let id = ids[index];
                (id, Arc::new(SimStore::of_machine(id, machine)))
            })
            .collect();
        SimCluster {
            handle: Handle::current(),
            stores: RwLock::new(stores),
            past_traces: Mutex::new(Vec::new()),
            cuts: Mutex::new(LinkCuts::default()),
            pd: Some(pd),
        }
    }

    /// Store `id` (it must exist).
    pub fn store(&self, id: u64) -> Arc<SimStore> {
        let stores = self.stores.read().expect("stores lock");
        let store = stores.get(&id).unwrap_or_else(|| panic!("no store {id}"));
        assert_eq!(store.id, id);
        store.clone()
    }

    /// Every store id, in order.
    pub fn store_ids(&self) -> Vec<u64> {
        self.stores
            .read()
            .expect("stores lock")
            .keys()
            .copied()
            .collect()
    }

    /// Every store, in id order.
    pub fn stores(&self) -> Vec<Arc<SimStore>> {
        self.stores
            .read()
            .expect("stores lock")
            .values()
            .cloned()
            .collect()
    }

    /// Adds a store that joined during the run (its id must be new).
    pub fn add_store(&self, store: SimStore) {
        let id = store.id;
        let previous = self
            .stores
            .write()
            .expect("stores lock")
            .insert(id, Arc::new(store));
        assert!(previous.is_none(), "store {id} added twice");
    }

    /// A client configuration reaching every store.
    pub fn client_config(&self) -> RawConfig {
        let stores = self
            .stores()
            .iter()
            .map(|store| (store.id, store.addr.clone()))
            .collect();
        RawConfig::new(stores, Duration::from_secs(10), Duration::from_secs(2))
    }

    /// A new client machine.
    pub fn client_node(&self, name: &str, ip_last: u8) -> NodeHandle {
        self.handle
            .create_node()
            .name(name)
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 2, ip_last)))
            .build()
    }

    /// Power loss on store `id`: the machine stops and its disk keeps `tail` of the
    /// unsynced writes.
    pub fn kill(&self, id: u64, tail: CrashTail) {
        let store = self.store(id);
        self.handle.kill(store.node.id());
        store.disk.crash(tail);
    }

    /// Powers store `id` back on; it recovers from its disk.
    pub fn restart(&self, id: u64) {
        self.handle.restart(self.store(id).node.id());
    }

    /// Cuts store `id` off the network (both directions, clients included).
    pub fn isolate(&self, id: u64) {
        NetSim::current().clog_node(self.store(id).node.id());
    }

    /// Reconnects store `id`.
    pub fn reconnect(&self, id: u64) {
        NetSim::current().unclog_node(self.store(id).node.id());
    }

    /// Cuts every link between store `id` and the other stores, both ways, while clients
    /// still reach it (the classic stale-read setup for a deposed leader).
    pub fn cut_from_stores(&self, id: u64) {
        for other in self.store_ids().into_iter().filter(|other| *other != id) {
            self.cut_link(id, other);
            self.cut_link(other, id);
        }
    }

    /// Restores every link between store `id` and the other stores.
    pub fn restore_to_stores(&self, id: u64) {
        for other in self.store_ids().into_iter().filter(|other| *other != id) {
            self.restore_link(id, other);
            self.restore_link(other, id);
        }
    }

    /// Freezes store `id` (a long GC pause or a slow fsync): its tasks stop, its peers time
    /// out.
    pub fn pause(&self, id: u64) {
        self.handle.pause(self.store(id).node.id());
    }

    /// Unfreezes store `id`.
    pub fn resume(&self, id: u64) {
        self.handle.resume(self.store(id).node.id());
    }

    /// Cuts the one-way link from store `from` to store `to` (one more cut: the link stays
    /// down until every cut of it is restored).
    pub fn cut_link(&self, from: u64, to: u64) {
        if self.cuts.lock().expect("cuts lock").cut(from, to) {
            NetSim::current().clog_link(self.store(from).node.id(), self.store(to).node.id());
        }
    }

    /// Restores one cut of the one-way link from store `from` to store `to`; the link is up
    /// again once no fault cuts it.
    pub fn restore_link(&self, from: u64, to: u64) {
        if self.cuts.lock().expect("cuts lock").restore(from, to) {
            self.unclog_link(from, to);
        }
    }

    /// Restores every store link, whoever cut it (healing).
    pub fn restore_all_links(&self) {
        let cut = self.cuts.lock().expect("cuts lock").clear();
        for (from, to) in cut {
            self.unclog_link(from, to);
        }
    }

    fn unclog_link(&self, from: u64, to: u64) {
        NetSim::current().unclog_link(self.store(from).node.id(), self.store(to).node.id());
    }

    /// The machine of store `id`.
    pub fn node(&self, id: u64) -> NodeHandle {
        self.store(id).node.clone()
    }
}

pub use ferrokv_client::admin::{region_reports, region_routes, store_report};

/// A raw client for use inside a simulated client machine.
pub fn raw_client(config: RawConfig) -> RawClient {
    RawClient::new(config)
}

#[cfg(test)]
mod tests {
    use super::LinkCuts;

    #[test]
    fn overlapping_cuts_of_one_link_heal_only_together() {
        let mut cuts = LinkCuts::default();
        assert!(cuts.cut(1, 2), "the first cut takes the link down");
        assert!(!cuts.cut(1, 2), "a second fault cuts it too");
        assert!(cuts.cut(2, 1), "the other direction is its own link");
        assert!(
            !cuts.restore(1, 2),
            "one fault healed: still cut by the other"
        );
        assert!(cuts.restore(1, 2), "both healed: the link is up");
        assert!(!cuts.restore(1, 2), "restoring an uncut link does nothing");
        assert_eq!(cuts.clear(), vec![(2, 1)]);
        assert!(cuts.cut(2, 1), "after clear every link is up");
    }
}
