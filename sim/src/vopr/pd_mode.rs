//! Seeds with a Placement Driver: three real PD members (`pd_cluster`, the same code as
//! `ferrokv-pd`) and stores that join through them instead of the static bootstrap. Once
//! every store registered, the stores are keyed by the id PD gave them, so the store
//! faults, the workload and the checks work unchanged; PD adds its own faults
//! (`nemesis::pd_faults`) and checks:
//! - timestamp takers on their own machines call `Tso` all run long; afterwards every
//!   timestamp must be strictly above every one a call that completed before it began
//!   received (`checker::tso`), across PD failovers and clock jumps;
//! - after healing, every region must be back to `max_replicas` voters on live stores
//!   (the replicas of a store that was down past `max_store_down_time`, or corrupt, rebuilt);
//! - then, within `BALANCE_BUDGET`, peers and leaders spread over the live stores within
//!   `checker::balance::SPREAD` (a store that joined mid-run started empty);
//! - a watcher counts PD leader changes and the operators it sees running (GetOperator,
//!   sampled: a lower bound, an operator that starts and ends between two looks is missed).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_client::pd::{PdClient, PdClientError};
use ferrokv_core::env::{Rng, SeededRng};
use ferrokv_proto::metapb::PeerRole;
use ferrokv_server::config::RaftSection;
use madsim::runtime::NodeHandle;

use super::nemesis::STORE_DOWN_MS;
use super::workload::elapsed_ns;
use super::Failure;
use crate::checker::balance;
use crate::checker::regions::{newest_regions, StoreReports};
use crate::checker::tso::{self, TsoCall};
use crate::cluster::SimCluster;
use crate::pd_cluster::{pd_leader, PdCluster, PdClusterConfig};

/// PD members in a seed with PD.
pub const PD_MEMBERS: u64 = 3;
/// Voters PD keeps per region.
pub const MAX_REPLICAS: usize = 3;
/// Simulated time the cluster has to form (every store registered, the first region at
/// full replica count) before the run fails.
const FORMATION_BUDGET: Duration = Duration::from_secs(60);
/// Simulated time PD has, once the run settled, to spread peers and leaders over the
/// live stores.
const BALANCE_BUDGET: Duration = Duration::from_secs(120);
/// How often the watcher looks at PD's leader and operators.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// A timestamp taker asks the members for the leader again every this many calls.
const REDISCOVER_EVERY: u64 = 4;

/// What a seed with PD saw of PD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PdStats {
    /// PD leader changes the watcher saw.
    pub failovers: u64,
    /// Timestamp calls that ended unavailable (unknown: not checked).
    pub tso_unavailable: u64,
    /// Distinct operators the watcher saw running (sampled: a lower bound).
    pub operators: u64,
    /// Successful timestamp calls checked.
    pub tso_calls: u64,
}

fn cluster_config(stores: u64, raft: &RaftSection) -> PdClusterConfig {
    let schedule = ferrokv_pd_core::Config {
        max_replicas: MAX_REPLICAS,
        max_store_down_time_ms: STORE_DOWN_MS,
        balance_interval_ms: 2_000,
        operator_region_timeout_ms: 30_000,
        ..ferrokv_pd_core::Config::default()
    };
    PdClusterConfig {
        members: PD_MEMBERS,
        stores,
        raft: raft.clone(),
        schedule,
        split_size_bytes: 64 * 1024,
    }
}

/// Starts the PD members and `stores` stores joining through them, with clock rates from
/// `rng`; waits (on `control`) until every store registered and the first region has its
/// full replica count. Returns the cluster keyed by PD store ids.
pub(super) async fn start(
    stores: u64,
    raft: &RaftSection,
    rng: &mut SeededRng,
) -> Result<(SimCluster, NodeHandle), Failure> {
    let pd = PdCluster::start(cluster_config(stores, raft));
    for machine in pd.members.values().chain(pd.stores.values()) {
        machine
            .clock
            .set_rate_ppm(super::nemesis::rate_within_bound(rng));
    }
    let control = pd.client_node("control", 250);
    let (client, addrs) = (pd.pd_client(), pd.store_addrs());
    let ids = control
        .spawn(async move { formed(&client, &addrs).await })
        .await
        .expect("formation task")?;
    Ok((SimCluster::with_pd(pd, &ids), control))
}

/// Waits until peers and leaders are spread over the live (not corrupt) stores within
/// `checker::balance::SPREAD`; a liveness failure after `BALANCE_BUDGET`.
pub(super) async fn await_balance(
    cluster: &SimCluster,
    corrupt: &std::collections::BTreeSet<u64>,
) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + BALANCE_BUDGET;
    let live: Vec<u64> = cluster
        .store_ids()
        .into_iter()
        .filter(|id| !corrupt.contains(id))
        .collect();
    loop {
        let (reports, _) = super::liveness::collect_reports(cluster, corrupt).await;
        let verdict = balance::check(&balance::load(&reports, &live));
        match verdict {
            Ok(()) => return Ok(()),
            Err(why) if tokio::time::Instant::now() >= deadline => {
                return Err(Failure::liveness(format!(
                    "not balanced {BALANCE_BUDGET:?} after settling: {why}"
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Store index -> PD store id once every store (index -> address in `addrs`) registered
/// and the first region has `MAX_REPLICAS` voters.
async fn formed(
    client: &PdClient,
    addrs: &BTreeMap<u64, String>,
) -> Result<BTreeMap<u64, u64>, Failure> {
    let deadline = tokio::time::Instant::now() + FORMATION_BUDGET;
    loop {
        let ids = crate::pd_cluster::store_ids(client, addrs).await;
        let routes = client.scan_regions(b"", b"", 0).await.unwrap_or_default();
        let replicated = routes.first().is_some_and(|route| {
            route
                .region
                .peers
                .iter()
                .filter(|p| p.role != PeerRole::Learner as i32)
                .count()
                == MAX_REPLICAS
        });
        if ids.len() == addrs.len() && replicated {
            return Ok(ids);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::liveness(format!(
                "the cluster did not form through PD in {FORMATION_BUDGET:?}: stores registered {ids:?}, regions {:?}",
                routes.iter().map(|r| &r.region).collect::<Vec<_>>()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The PD side of a run: timestamp takers and the watcher, all on their own machines.
pub(super) struct PdRun {
    stop: Arc<AtomicBool>,
    tasks: Vec<madsim::task::JoinHandle<()>>,
    calls: Arc<Mutex<Vec<TsoCall>>>,
    stats: Arc<Mutex<PdStats>>,
    /// The first wrong answer a taker got (malformed, or refused).
    wrong: Arc<Mutex<Option<Failure>>>,
    endpoints: Vec<String>,
    start: tokio::time::Instant,
}

impl PdRun {
    /// Starts `takers` timestamp takers and the watcher.
    pub(super) fn start(
        pd: &PdCluster,
        takers: u64,
        rng: &SeededRng,
        start: tokio::time::Instant,
    ) -> PdRun {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(Mutex::new(PdStats::default()));
        let wrong = Arc::new(Mutex::new(None));
        let mut tasks = Vec::new();
        for taker in 1..=takers {
            let node = pd.client_node(&format!("tso{taker}"), 200 + taker as u8);
            // Taker k asks member k first, and asks again every few calls: during a PD
            // partition different takers can reach different members, so two members
            // handing out timestamps at once is visible.
            let mut endpoints = pd.pd_endpoints();
            let first = (taker - 1) as usize % endpoints.len();
            endpoints.rotate_left(first);
            let client = PdClient::new(endpoints, Duration::from_secs(5));
            let task = take_timestamps(
                client,
                Takers {
                    calls: calls.clone(),
                    stats: stats.clone(),
                    wrong: wrong.clone(),
                },
                stop.clone(),
                rng.fork(600 + taker),
                start,
            );
            tasks.push(node.spawn(task));
        }
        let node = pd.client_node("pdwatch", 240);
        let client = PdClient::new(pd.pd_endpoints(), Duration::from_secs(2));
        tasks.push(node.spawn(watch(client, stats.clone(), stop.clone())));
        PdRun {
            stop,
            tasks,
            calls,
            stats,
            wrong,
            endpoints: pd.pd_endpoints(),
            start,
        }
    }

    /// Stops the takers and the watcher, takes one more timestamp (PD must hand one out
    /// after healing), then checks the timestamps; returns what PD did and the calls (for
    /// the trace).
    pub(super) async fn finish(self) -> (PdStats, Vec<TsoCall>, Option<Failure>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failure = None;
        for task in self.tasks {
            if tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .is_err()
            {
                failure.get_or_insert(Failure::liveness(
                    "a timestamp taker or the PD watcher did not stop",
                ));
            }
        }
        let client = PdClient::new(self.endpoints.clone(), Duration::from_secs(5));
        let invoked_ns = elapsed_ns(self.start);
        match client.tso(1).await {
            Ok(ts) => self.calls.lock().expect("tso calls lock").push(TsoCall {
                invoked_ns,
                completed_ns: elapsed_ns(self.start),
                ts: ts.get(),
                count: 1,
            }),
            Err(error) => {
                failure.get_or_insert(Failure::liveness(format!(
                    "PD handed out no timestamp after healing: {error}"
                )));
            }
        }
        let calls = self.calls.lock().expect("tso calls lock").clone();
        if let Some(wrong) = self.wrong.lock().expect("tso wrong lock").take() {
            if wrong.kind == super::FailureKind::Violation || failure.is_none() {
                failure = Some(wrong);
            }
        }
        if let Err(violation) = tso::check(&calls) {
            failure = Some(Failure::violation(format!("TSO: {violation}")));
        }
        let mut stats = self.stats.lock().expect("pd stats lock").clone();
        stats.tso_calls = calls.len() as u64;
        (stats, calls, failure)
    }
}

/// Where the timestamp takers put what they saw.
struct Takers {
    calls: Arc<Mutex<Vec<TsoCall>>>,
    stats: Arc<Mutex<PdStats>>,
    wrong: Arc<Mutex<Option<Failure>>>,
}

async fn take_timestamps(
    client: PdClient,
    takers: Takers,
    stop: Arc<AtomicBool>,
    mut rng: SeededRng,
    start: tokio::time::Instant,
) {
    let mut made = 0u64;
    while !stop.load(Ordering::Relaxed) {
        made += 1;
        if made.is_multiple_of(REDISCOVER_EVERY) {
            client.reconnect();
        }
        let count = rng.range(1, 9) as u32;
        let invoked_ns = elapsed_ns(start);
        match client.tso(count).await {
            Ok(ts) => {
                let call = TsoCall {
                    invoked_ns,
                    completed_ns: elapsed_ns(start),
                    ts: ts.get(),
                    count,
                };
                takers.calls.lock().expect("tso calls lock").push(call);
            }
            // Unknown: PD may or may not have handed the batch out.
            Err(PdClientError::Unavailable(_)) => {
                takers.stats.lock().expect("pd stats lock").tso_unavailable += 1;
            }
            Err(error) => {
                let failure = match &error {
                    PdClientError::Malformed(_) => {
                        Failure::violation(format!("TSO: malformed answer: {error}"))
                    }
                    _ => Failure::liveness(format!("TSO: refused: {error}")),
                };
                let mut wrong = takers.wrong.lock().expect("tso wrong lock");
                let replace = wrong.as_ref().is_none_or(|first| {
                    first.kind != super::FailureKind::Violation
                        && failure.kind == super::FailureKind::Violation
                });
                if replace {
                    *wrong = Some(failure);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.range(10, 100))).await;
    }
}

/// Counts PD leader changes and the operators running on each region.
async fn watch(client: PdClient, stats: Arc<Mutex<PdStats>>, stop: Arc<AtomicBool>) {
    let mut leader = None;
    let mut running: BTreeMap<u64, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(now) = pd_leader(&client).await {
            if leader.is_some_and(|before| before != now) {
                stats.lock().expect("pd stats lock").failovers += 1;
            }
            leader = Some(now);
        }
        let routes = client.scan_regions(b"", b"", 0).await.unwrap_or_default();
        for route in routes {
            let id = route.region.id;
            match client.get_operator(id).await {
                Ok(Some(op)) => {
                    let seen = (op.kind, op.desc);
                    if running.get(&id) != Some(&seen) {
                        stats.lock().expect("pd stats lock").operators += 1;
                        running.insert(id, seen);
                    }
                }
                Ok(None) => {
                    running.remove(&id);
                }
                Err(_) => {}
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// Every newest region has exactly `MAX_REPLICAS` voters, no learner, and no peer on a
/// store in `down` (corrupt: never back, so PD had to rebuild its replicas elsewhere).
pub(super) fn replicas_rebuilt(
    reports: &[StoreReports],
    down: &std::collections::BTreeSet<u64>,
) -> Result<(), String> {
    for (id, region) in newest_regions(reports) {
        let voters = region
            .peers
            .iter()
            .filter(|p| p.role != PeerRole::Learner as i32)
            .count();
        let on_down: Vec<u64> = region
            .peers
            .iter()
            .map(|p| p.store_id)
            .filter(|store| down.contains(store))
            .collect();
        if voters != MAX_REPLICAS || voters != region.peers.len() || !on_down.is_empty() {
            let peers: Vec<(u64, i32)> =
                region.peers.iter().map(|p| (p.store_id, p.role)).collect();
            return Err(format!(
                "region {id}: peers (store, role) {peers:?}, {MAX_REPLICAS} voters on live stores wanted (down: {down:?})"
            ));
        }
    }
    Ok(())
}
