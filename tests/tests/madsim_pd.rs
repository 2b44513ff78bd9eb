//! The Placement Driver inside madsim: real PD members (3, replicating their state through
//! FerroKV's own Raft) and real stores that join through them, under PD nemeses.
//!
//! - `tso_increases_across_pd_failovers`: clients take timestamps while the PD leader is
//!   killed, partitioned and its members' wall clocks jump (back and forward); every
//!   timestamp must be strictly greater than every one received by a call that completed
//!   before it began (`checker::tso`), across failovers.
//! - `tso_survives_a_wall_clock_jump_back` / `planted_tso_from_wall_clock_is_caught`: the
//!   same targeted scenario (followers' clocks 60 s behind, then the leader dies) passes
//!   with the real code and is caught with the planted bug `TsoFromWallClock`.
//! - `replicas_of_a_dead_store_are_rebuilt`: a store down past `max_store_down_time` has
//!   its replicas rebuilt on the others, back to 3 voters per region; data stays readable.
//! - `regions_and_leaders_balance_after_a_store_joins`: after a fourth store joins, peer
//!   and leader counts per store end within 2 of each other (PD tolerance 1, plus one move
//!   in flight).
#![cfg(madsim)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_client::pd::PdClient;
use ferrokv_client::RawClient;
use ferrokv_core::planted::{self, PlantedBug};
use ferrokv_server::config::RaftSection;
use ferrokv_sim::checker::tso::{self, TsoCall, TsoViolation};
use ferrokv_sim::pd_cluster::{pd_leader, PdCluster, PdClusterConfig};

fn config(members: u64, stores: u64) -> PdClusterConfig {
    let schedule = ferrokv_pd_core::Config {
        max_store_down_time_ms: 10_000,
        balance_interval_ms: 1_000,
        region_split_size_bytes: 16 * 1024,
        operator_region_timeout_ms: 60_000,
        ..ferrokv_pd_core::Config::default()
    };
    PdClusterConfig {
        members,
        stores,
        raft: RaftSection {
            log_gc_count_threshold: 64,
            ..RaftSection::default()
        },
        schedule,
        split_size_bytes: 16 * 1024,
    }
}

fn nanos_since(origin: tokio::time::Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

/// Takes timestamps until `stop_at` (ns since `origin`), recording every success.
async fn take_timestamps(
    pd: Arc<PdClient>,
    calls: Arc<Mutex<Vec<TsoCall>>>,
    origin: tokio::time::Instant,
    stop_at: u64,
    client: u32,
) {
    let mut round = 0u32;
    while nanos_since(origin) < stop_at {
        round += 1;
        let count = 1 + (round * 7 + client) % 8;
        let invoked_ns = nanos_since(origin);
        if let Ok(ts) = pd.tso(count).await {
            let completed_ns = nanos_since(origin);
            let call = TsoCall {
                invoked_ns,
                completed_ns,
                ts: ts.get(),
                count,
            };
            calls.lock().unwrap().push(call);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `clients` timestamp takers on their own machines for `seconds`.
fn start_takers(
    cluster: &PdCluster,
    clients: u32,
    seconds: u64,
) -> (Arc<Mutex<Vec<TsoCall>>>, Vec<madsim::task::JoinHandle<()>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let origin = tokio::time::Instant::now();
    let stop_at = seconds * 1_000_000_000;
    let handles = (0..clients)
        .map(|client| {
            let node = cluster.client_node(&format!("tso{client}"), 10 + client as u8);
            let (pd, calls) = (cluster.pd_client(), calls.clone());
            node.spawn(take_timestamps(pd, calls, origin, stop_at, client))
        })
        .collect();
    (calls, handles)
}

async fn wait_for_leader(pd: &PdClient) -> u64 {
    for _ in 0..100 {
        if let Some(leader) = pd_leader(pd).await {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no PD leader within 20 s");
}

/// One nemesis step against the current leader; returns a description.
async fn nemesis_step(cluster: &PdCluster, pd: &PdClient, step: u64) -> String {
    let leader = wait_for_leader(pd).await;
    match step % 4 {
        0 => {
            cluster.kill_member(leader);
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.restart_member(leader);
            format!("killed leader {leader}")
        }
        1 => {
            cluster.isolate_member(leader);
            tokio::time::sleep(Duration::from_secs(4)).await;
            cluster.reconnect_member(leader);
            format!("partitioned leader {leader}")
        }
        2 => {
            for (id, member) in &cluster.members {
                let back = -(20_000 + 5_000 * *id as i64);
                member.clock.skew_wall_clock(back);
            }
            "every wall clock jumped back 25-35 s".to_string()
        }
        _ => {
            let member = &cluster.members[&leader];
            member.clock.skew_wall_clock(7_000);
            format!("leader {leader}'s wall clock jumped 7 s forward")
        }
    }
}

#[madsim::test]
async fn tso_increases_across_pd_failovers() {
    let cluster = Arc::new(PdCluster::start(config(3, 0)));
    let (calls, takers) = start_takers(&cluster, 3, 40);
    let nemesis = {
        let cluster = cluster.clone();
        cluster.client_node("nemesis", 1).spawn(async move {
            let pd = cluster.pd_client();
            let mut leaders = Vec::new();
            tokio::time::sleep(Duration::from_secs(3)).await;
            for step in 0..6 {
                leaders.push(wait_for_leader(&pd).await);
                let done = nemesis_step(&cluster, &pd, step).await;
                println!("nemesis step {step}: {done}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            leaders.push(wait_for_leader(&pd).await);
            leaders
        })
    };
    let leaders = nemesis.await.unwrap();
    for taker in takers {
        taker.await.unwrap();
    }
    let calls = calls.lock().unwrap().clone();
    let failovers = leaders.windows(2).filter(|w| w[0] != w[1]).count();
    println!(
        "tso: {} calls checked, leaders {leaders:?} ({failovers} changes)",
        calls.len()
    );
    assert!(calls.len() > 500, "too few timestamps: {}", calls.len());
    assert!(
        failovers >= 2,
        "the nemesis moved leadership only {failovers} times"
    );
    assert_eq!(tso::check(&calls), Ok(()));
}

/// Followers' wall clocks fall 60 s behind, then the leader dies: the new leader must still
/// hand out timestamps above everything the old one did.
async fn wall_clock_jump_scenario() -> Result<(), TsoViolation> {
    let cluster = Arc::new(PdCluster::start(config(3, 0)));
    let (calls, takers) = start_takers(&cluster, 2, 16);
    let cluster_for_nemesis = cluster.clone();
    let nemesis = cluster.client_node("nemesis", 1).spawn(async move {
        let cluster = cluster_for_nemesis;
        let pd = cluster.pd_client();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let leader = wait_for_leader(&pd).await;
        for (id, member) in &cluster.members {
            if *id != leader {
                member.clock.skew_wall_clock(-60_000);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.kill_member(leader);
        let next = wait_for_leader(&pd).await;
        assert_ne!(next, leader, "leadership moved");
    });
    nemesis.await.unwrap();
    for taker in takers {
        taker.await.unwrap();
    }
    let calls = calls.lock().unwrap().clone();
    assert!(calls.len() > 100, "too few timestamps: {}", calls.len());
    tso::check(&calls)
}

#[madsim::test]
async fn tso_survives_a_wall_clock_jump_back() {
    planted::set(None);
    assert_eq!(wall_clock_jump_scenario().await, Ok(()));
}

#[madsim::test]
async fn planted_tso_from_wall_clock_is_caught() {
    planted::set(Some(PlantedBug::TsoFromWallClock));
    let outcome = wall_clock_jump_scenario().await;
    planted::set(None);
    let violation =
        outcome.expect_err("the checker must catch a TSO restarting from the wall clock");
    assert!(
        matches!(violation, TsoViolation::WentBack { .. }),
        "{violation}"
    );
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

/// Writes `keys` keys of `value_bytes` each through a PD-routed client.
async fn write_data(client: &RawClient, keys: u64, value_bytes: usize) {
    for i in 0..keys {
        let value = vec![b'a' + (i % 26) as u8; value_bytes];
        for _ in 0..20 {
            if client.put(&key(i), &value, 0).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Regions as PD sees them: (region id, peers as (store id, is voter)).
async fn pd_regions(pd: &PdClient) -> Vec<(u64, Vec<(u64, bool)>)> {
    let routes = pd.scan_regions(b"", b"", 0).await.unwrap_or_default();
    routes
        .into_iter()
        .map(|route| {
            let peers = route
                .region
                .peers
                .iter()
                .map(|p| (p.store_id, p.role == 0))
                .collect();
            (route.region.id, peers)
        })
        .collect()
}

fn raw_client(cluster: &PdCluster) -> RawClient {
    RawClient::with_pd(
        cluster.pd_client(),
        Duration::from_secs(20),
        Duration::from_secs(3),
    )
}

#[madsim::test]
async fn replicas_of_a_dead_store_are_rebuilt() {
    let cluster = Arc::new(PdCluster::start(config(1, 4)));
    let node = cluster.client_node("client", 1);
    let checked = cluster.clone();
    let outcome = node.spawn(async move {
        let cluster = checked;
        let pd = cluster.pd_client();
        let client = raw_client(&cluster);
        write_data(&client, 120, 1_000).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
        let ids = cluster.store_ids(&pd).await;
        let regions = pd_regions(&pd).await;
        assert!(
            regions.len() >= 3,
            "splits made several regions: {regions:?}"
        );
        let victim = (1..=4)
            .max_by_key(|index| {
                let id = ids[index];
                regions
                    .iter()
                    .filter(|(_, peers)| peers.iter().any(|p| p.0 == id))
                    .count()
            })
            .unwrap();
        let dead = ids[&victim];
        cluster.kill_store(victim);
        let mut rebuilt = false;
        for _ in 0..90 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let regions = pd_regions(&pd).await;
            rebuilt = !regions.is_empty()
                && regions.iter().all(|(_, peers)| {
                    peers.len() == 3 && peers.iter().all(|(store, voter)| *voter && *store != dead)
                });
            if rebuilt {
                break;
            }
        }
        let regions = pd_regions(&pd).await;
        for i in 0..120 {
            let found = client.get(&key(i)).await.expect("read after the rebuild");
            assert_eq!(found.map(|v| v.len()), Some(1_000), "key {i}");
        }
        (rebuilt, regions, dead)
    });
    let (rebuilt, regions, dead) = outcome.await.unwrap();
    println!(
        "rebuild: {} regions without store {dead}: {regions:?}",
        regions.len()
    );
    assert!(
        rebuilt,
        "replicas of store {dead} were not rebuilt: {regions:?}"
    );
}

fn spread(counts: &BTreeMap<u64, u64>) -> u64 {
    counts.values().max().unwrap_or(&0) - counts.values().min().unwrap_or(&0)
}

#[madsim::test]
async fn regions_and_leaders_balance_after_a_store_joins() {
    let cluster = Arc::new(Mutex::new(PdCluster::start(config(1, 3))));
    let (node, pd) = {
        let cluster = cluster.lock().unwrap();
        (cluster.client_node("client", 1), cluster.pd_client())
    };
    let client = raw_client(&cluster.lock().unwrap());
    let loaded = node.spawn(async move {
        write_data(&client, 200, 1_000).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    loaded.await.unwrap();
    cluster.lock().unwrap().add_store();
    let watched = node.spawn(async move {
        let mut last = (BTreeMap::new(), BTreeMap::new());
        for _ in 0..120 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let routes = pd.scan_regions(b"", b"", 0).await.unwrap_or_default();
            let stores = pd.get_all_stores(true).await.unwrap_or_default();
            let mut peers: BTreeMap<u64, u64> = stores.iter().map(|s| (s.id, 0)).collect();
            let mut leaders = peers.clone();
            for route in &routes {
                for peer in &route.region.peers {
                    *peers.entry(peer.store_id).or_default() += 1;
                }
                if let Some(leader) = route.leader {
                    *leaders.entry(leader.store_id).or_default() += 1;
                }
            }
            last = (peers, leaders);
            if last.0.len() == 4 && spread(&last.0) <= 2 && spread(&last.1) <= 2 {
                return (true, last);
            }
        }
        (false, last)
    });
    let (balanced, (peers, leaders)) = watched.await.unwrap();
    println!("balance: peers per store {peers:?}, leaders per store {leaders:?}");
    assert!(
        balanced,
        "not balanced within 2: peers {peers:?}, leaders {leaders:?}"
    );
}
