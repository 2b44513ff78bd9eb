//! The L2 cluster with a Placement Driver: real PD members (`ferrokv_pd::run_member`, the
//! same code as `ferrokv-pd`) and real stores that join through them
//! (`ferrokv_server::pd::run_with_pd`), each on its own simulated machine over a `SimEngine`
//! whose `SimDisk` outlives kills, with its own clock (wall-clock skew and monotonic
//! rate under the nemesis's control). Only under `--cfg madsim`.
//!
//! Store ids come from PD, so stores are named here by their index (1-based, in start
//! order); `store_ids` maps them through PD's store list by address.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use ferrokv_client::pd::PdClient;
use ferrokv_pd::PdConfig;
use ferrokv_server::clock::{ClockControl, RuntimeClock};
use ferrokv_server::config::{RaftSection, ServerConfig};
use ferrokv_server::pd::PdOptions;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};

use crate::engine::{CrashTail, SimDisk, SimEngine};

/// Client port of every simulated PD member.
pub const PD_CLIENT_PORT: u16 = 2379;
/// Raft port of every simulated PD member.
pub const PD_PEER_PORT: u16 = 2380;
/// gRPC port of every simulated store.
pub const STORE_PORT: u16 = 20160;
/// Port of every store's Raft endpoint (`FerroRaft`): a listener of its own, as
/// `ferrokv playground` runs stores.
pub const STORE_PEER_PORT: u16 = 20260;

/// One simulated machine (a PD member or a store).
pub struct Machine {
    /// Its address (`ip:port` clients use).
    pub addr: String,
    /// Its disk, surviving restarts.
    pub disk: SimDisk,
    /// Its clock.
    pub clock: ClockControl,
    pub(crate) node: NodeHandle,
}

/// What the cluster is made of.
#[derive(Clone, Debug)]
pub struct PdClusterConfig {
    /// PD members.
    pub members: u64,
    /// Stores started at once.
    pub stores: u64,
    /// Raft knobs (PD region and stores alike).
    pub raft: RaftSection,
    /// PD scheduling configuration.
    pub schedule: ferrokv_pd_core::Config,
    /// Store-side split size.
    pub split_size_bytes: u64,
}

/// A simulated cluster with PD.
pub struct PdCluster {
    handle: Handle,
    config: PdClusterConfig,
    /// PD members by id.
    pub members: BTreeMap<u64, Machine>,
    /// Stores by index.
    pub stores: BTreeMap<u64, Machine>,
}

fn member_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 3, id as u8))
}

fn store_ip(index: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, index as u8))
}

impl PdCluster {
    /// Starts the members and the first stores.
    pub fn start(config: PdClusterConfig) -> PdCluster {
        assert!(config.members >= 1 && config.stores < 200);
        let mut cluster = PdCluster {
            handle: Handle::current(),
            config: config.clone(),
            members: BTreeMap::new(),
            stores: BTreeMap::new(),
        };
        for id in 1..=config.members {
            cluster.start_member(id);
        }
        for _ in 0..config.stores {
            cluster.add_store();
        }
        cluster
    }

    /// Every PD client address.
    pub fn pd_endpoints(&self) -> Vec<String> {
        self.members.values().map(|m| m.addr.clone()).collect()
    }

    fn pd_config(&self, id: u64) -> PdConfig {
        let mut config = PdConfig::single("x:1", "x:2", format!("sim/pd{id}").into());
        config.members = (1..=self.config.members)
            .map(|member| ferrokv_pd::Member {
                id: member,
                name: format!("pd{member}"),
                client_addr: format!("{}:{PD_CLIENT_PORT}", member_ip(member)),
                peer_addr: format!("{}:{PD_PEER_PORT}", member_ip(member)),
            })
            .collect();
        config.member_id = id;
        config.raft = self.config.raft.clone();
        config.schedule = self.config.schedule.clone();
        config
    }

    fn start_member(&mut self, id: u64) {
        let config = self.pd_config(id);
        let seed = self.handle.seed() ^ (id << 40) ^ 0x5044;
        let (disk, clock) = (SimDisk::new(), RuntimeClock::new());
        let (node_disk, node_clock) = (disk.clone(), clock.clone());
        let node = self
            .handle
            .create_node()
            .name(format!("pd{id}"))
            .ip(member_ip(id))
            .init(move || {
                let (disk, config, clock) = (node_disk.clone(), config.clone(), node_clock.clone());
                async move {
                    let Ok(engine) = SimEngine::open(&disk) else {
                        tracing::warn!(member = id, "PD member cannot open its disk");
                        return;
                    };
                    let shutdown = std::future::pending();
                    // Awaited outside the log macro: a disabled callsite skips its fields.
                    let result =
                        ferrokv_pd::run_member(config, engine, seed, clock, shutdown).await;
                    tracing::warn!(member = id, ?result, "PD member stopped");
                }
            })
            .build();
        let addr = format!("{}:{PD_CLIENT_PORT}", member_ip(id));
        let clock = clock.control();
        self.members.insert(
            id,
            Machine {
                addr,
                disk,
                clock,
                node,
            },
        );
    }

    /// Starts one more store (a new machine with an empty disk); returns its index.
    pub fn add_store(&mut self) -> u64 {
        let index = self.stores.len() as u64 + 1;
        let machine = self.start_store(index);
        self.stores.insert(index, machine);
        index
    }

    /// Starts a store machine with an empty disk at `index` (its address) that joins
    /// through the members; `stores` is left alone (for a store joining a running
    /// `SimCluster`, which keeps it by the id PD gives it).
    pub fn start_store(&self, index: u64) -> Machine {
        assert!(
            !self.stores.contains_key(&index),
            "store index {index} is taken"
        );
        let addr = format!("{}:{STORE_PORT}", store_ip(index));
        let config = ServerConfig {
            store_id: 0,
            addr: addr.clone(),
            peer_addr: Some(format!("{}:{STORE_PEER_PORT}", store_ip(index))),
            data_dir: format!("sim/store{index}").into(),
            raft: self.config.raft.clone(),
            stores: BTreeMap::new(),
            bootstrap: None,
        };
        let mut options = PdOptions::new(self.pd_endpoints());
        options.split_size_bytes = self.config.split_size_bytes;
        options.store_heartbeat_interval = Duration::from_millis(500);
        options.region_heartbeat_interval = Duration::from_millis(500);
        options.size_check_interval = Duration::from_secs(1);
        options.gc_interval = Duration::from_secs(3);
        let seed = self.handle.seed() ^ (index << 48);
        let (disk, clock) = (SimDisk::new(), RuntimeClock::new());
        let (node_disk, node_clock) = (disk.clone(), clock.clone());
        let node = self
            .handle
            .create_node()
            .name(format!("store{index}"))
            .ip(store_ip(index))
            .init(move || {
                let (disk, config, clock) = (node_disk.clone(), config.clone(), node_clock.clone());
                let options = options.clone();
                async move {
                    let Ok(engine) = SimEngine::open(&disk) else {
                        tracing::warn!(store = index, "store cannot open its disk");
                        return;
                    };
                    let shutdown = std::future::pending();
                    let result = ferrokv_server::pd::run_with_pd(
                        config, options, engine, seed, clock, shutdown,
                    )
                    .await;
                    tracing::warn!(store = index, ?result, "store stopped");
                }
            })
            .build();
        let clock = clock.control();
        Machine {
            addr,
            disk,
            clock,
            node,
        }
    }

    /// A PD client (use it inside a simulated client machine).
    pub fn pd_client(&self) -> Arc<PdClient> {
        Arc::new(PdClient::new(self.pd_endpoints(), Duration::from_secs(10)))
    }

    /// A new client machine.
    pub fn client_node(&self, name: &str, ip_last: u8) -> NodeHandle {
        self.handle
            .create_node()
            .name(name)
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 2, ip_last)))
            .build()
    }

    /// Power loss on PD member `id` (unsynced writes dropped).
    pub fn kill_member(&self, id: u64) {
        let member = &self.members[&id];
        self.handle.kill(member.node.id());
        member.disk.crash(CrashTail::DropAll);
    }

    /// Powers PD member `id` back on.
    pub fn restart_member(&self, id: u64) {
        self.handle.restart(self.members[&id].node.id());
    }

    /// Power loss on store `index`.
    pub fn kill_store(&self, index: u64) {
        let store = &self.stores[&index];
        self.handle.kill(store.node.id());
        store.disk.crash(CrashTail::DropAll);
    }

    /// Powers store `index` back on.
    pub fn restart_store(&self, index: u64) {
        self.handle.restart(self.stores[&index].node.id());
    }

    /// Cuts PD member `id` off the network (clients and stores included).
    pub fn isolate_member(&self, id: u64) {
        NetSim::current().clog_node(self.members[&id].node.id());
    }

    /// Reconnects PD member `id`.
    pub fn reconnect_member(&self, id: u64) {
        NetSim::current().unclog_node(self.members[&id].node.id());
    }

    /// Cuts PD member `id` off the other members, both ways, while clients and stores still
    /// reach it (a deposed leader that keeps answering).
    pub fn cut_member_from_members(&self, id: u64) {
        self.member_links(id, |net, a, b| net.clog_link(a, b));
    }

    /// Restores every link between PD member `id` and the other members.
    pub fn restore_member_links(&self, id: u64) {
        self.member_links(id, |net, a, b| net.unclog_link(a, b));
    }

    fn member_links(
        &self,
        id: u64,
        act: impl Fn(&NetSim, madsim::task::NodeId, madsim::task::NodeId),
    ) {
        let net = NetSim::current();
        let me = self.members[&id].node.id();
        for (other, member) in &self.members {
            if *other != id {
                act(&net, me, member.node.id());
                act(&net, member.node.id(), me);
            }
        }
    }

    /// Store index -> store id, from PD's store list (matched by address).
    pub async fn store_ids(&self, pd: &PdClient) -> BTreeMap<u64, u64> {
        store_ids(pd, &self.store_addrs()).await
    }

    /// Store index -> address.
    pub fn store_addrs(&self) -> BTreeMap<u64, String> {
        let addrs = self.stores.iter();
        addrs.map(|(index, m)| (*index, m.addr.clone())).collect()
    }
}

/// Store index -> store id for the stores at `addrs` (index -> address) that PD lists.
pub async fn store_ids(pd: &PdClient, addrs: &BTreeMap<u64, String>) -> BTreeMap<u64, u64> {
    let Ok(stores) = pd.get_all_stores(true).await else {
        return BTreeMap::new();
    };
    let mut ids = BTreeMap::new();
    for (index, addr) in addrs {
        if let Some(store) = stores.iter().find(|s| s.address == *addr) {
            ids.insert(*index, store.id);
        }
    }
    ids
}

/// The PD leader's member id as `GetMembers` reports it.
pub async fn pd_leader(pd: &PdClient) -> Option<u64> {
    let members = pd.members().await.ok()?;
    members.leader.map(|leader| leader.member_id)
}
