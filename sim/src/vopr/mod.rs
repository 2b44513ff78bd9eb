//! The VOPR of FerroKV: one seed = one simulated cluster (3 or 5 real store nodes on
//! SimEngine inside madsim), a register workload, and a nemesis. Two phases: a safety
//! phase with faults, then a liveness phase that heals everything and requires every region
//! to have a leader and every pending call to finish within bounded simulated time.
//! Checkers then judge the history (linearizability per key), the regions (no gap or
//! overlap) and the replicas (identical applied state). Only under `--cfg madsim`.

mod nemesis;
mod workload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_client::admin::region_reports;
use ferrokv_core::env::{Rng, SeededRng};
use ferrokv_core::raft::PlantedBug;
use ferrokv_core::types::fnv;
use ferrokv_server::config::RaftSection;

pub use nemesis::FaultMask;
use nemesis::Nemesis;
use workload::{elapsed_ns, key_bytes, ClientTask};

use crate::checker::linearizability::{self, Verdict};
use crate::checker::regions::{check_convergence, check_tiling, newest_regions, StoreReports};
use crate::cluster::SimCluster;
use crate::history::{Event, History, Op, Outcome};

/// Simulated time the liveness phase may take before the run fails.
pub const LIVENESS_BUDGET: Duration = Duration::from_secs(60);

/// One seed's setup.
#[derive(Clone, Debug)]
pub struct SeedConfig {
    /// The seed: everything else about the run derives from it.
    pub seed: u64,
    /// Length of the safety (fault) phase in simulated time.
    pub safety: Duration,
    /// Faults to use; `None` lets the seed choose (swarm).
    pub faults: Option<FaultMask>,
    /// A deliberately planted bug (test-only).
    pub planted_bug: Option<PlantedBug>,
    /// Forbid buggify even if the seed would enable it (for triage).
    pub no_buggify: bool,
}

/// What one seed did and found.
#[derive(Clone, Debug)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Stores in the cluster.
    pub stores: u64,
    /// Calls recorded (and checked).
    pub calls: usize,
    /// Calls with a definite answer.
    pub definite_calls: usize,
    /// Simulated seconds the run covered.
    pub simulated_secs: f64,
    /// Fingerprint of the run: stores' traces and the history.
    pub trace_hash: u64,
    /// The first failed check, if any.
    pub failure: Option<String>,
    /// The history, for export when the seed failed.
    pub history: History,
    /// The nemesis log.
    pub nemesis_log: Vec<String>,
}

struct Shape {
    stores: u64,
    clients: u64,
    keys: u64,
    raft: RaftSection,
    faults: FaultMask,
    buggify: bool,
}

fn shape(config: &SeedConfig, rng: &mut SeededRng) -> Shape {
    let stores = if rng.ratio(1, 3) { 5 } else { 3 };
    let log_gc = [16, 64, 1024][rng.below(3) as usize];
    let raft = RaftSection {
        log_gc_count_threshold: log_gc,
        planted_bug: config.planted_bug,
        ..RaftSection::default()
    };
    let faults = config
        .faults
        .clone()
        .unwrap_or_else(|| FaultMask::swarm(rng));
    let buggify = rng.ratio(4, 5) && !config.no_buggify;
    Shape {
        stores,
        clients: rng.range(2, 6),
        keys: rng.range(4, 16),
        raft,
        faults,
        buggify,
    }
}

/// Runs one seed to completion in a fresh madsim runtime.
pub fn run_seed(config: &SeedConfig) -> SeedReport {
    let runtime =
        madsim::runtime::Runtime::with_seed_and_config(config.seed, madsim::Config::default());
    let config = config.clone();
    runtime.block_on(simulate(config))
}

async fn simulate(config: SeedConfig) -> SeedReport {
    let mut rng = SeededRng::new(config.seed);
    let shape = shape(&config, &mut rng);
    ferrokv_server::buggify::set_enabled(shape.buggify);
    let cluster = Arc::new(SimCluster::start(shape.stores, shape.raft.clone()));
    let control = cluster.client_node("control", 250);
    let start = tokio::time::Instant::now();
    let history = Arc::new(Mutex::new(History::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = spawn_clients(&cluster, &shape, &mut rng, start, &stop, &history);
    let nemesis_rng = rng.fork(7);
    let phase_cluster = cluster.clone();
    let safety = config.safety;
    let faults = shape.faults.clone();
    let (nemesis_log, corrupt, failure) = control
        .spawn(async move {
            let mut nemesis = Nemesis::new(phase_cluster.clone(), nemesis_rng, &faults);
            nemesis.run(start + safety).await;
            ferrokv_server::buggify::set_enabled(false);
            nemesis.heal().await;
            let failure = liveness(&phase_cluster, &nemesis.corrupt, &stop, clients)
                .await
                .err();
            (nemesis.log, nemesis.corrupt, failure)
        })
        .await
        .expect("control task");
    finish(
        config.seed,
        &shape,
        cluster,
        control,
        start,
        history,
        nemesis_log,
        corrupt,
        failure,
    )
    .await
}

fn spawn_clients(
    cluster: &SimCluster,
    shape: &Shape,
    rng: &mut SeededRng,
    start: tokio::time::Instant,
    stop: &Arc<AtomicBool>,
    history: &Arc<Mutex<History>>,
) -> Vec<madsim::task::JoinHandle<()>> {
    (1..=shape.clients)
        .map(|process| {
            let node = cluster.client_node(&format!("client{process}"), process as u8);
            let task = ClientTask {
                process,
                keys: shape.keys,
                start,
                stop: stop.clone(),
                history: history.clone(),
            };
            let client = ferrokv_client::RawClient::new(cluster.client_config());
            let client_rng = rng.fork(100 + process);
            node.spawn(task.run(client, client_rng))
        })
        .collect()
}

/// The liveness phase: after healing, every region gets a leader and every client's
/// pending call finishes, within `LIVENESS_BUDGET`.
async fn liveness(
    cluster: &SimCluster,
    corrupt: &std::collections::BTreeSet<u64>,
    stop: &AtomicBool,
    clients: Vec<madsim::task::JoinHandle<()>>,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + LIVENESS_BUDGET;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, client).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(format!("liveness: a client task failed: {error}")),
            Err(_) => return Err("liveness: a client call did not finish after healing".into()),
        }
    }
    loop {
        let reports = collect_reports(cluster, corrupt).await;
        match leaders_settled(&reports) {
            Ok(()) if check_convergence(&reports, true).is_ok() => return Ok(()),
            outcome => {
                if tokio::time::Instant::now() >= deadline {
                    let why = outcome
                        .err()
                        .or_else(|| check_convergence(&reports, true).err());
                    return Err(format!(
                        "liveness: not settled after healing: {}",
                        why.unwrap_or_default()
                    ));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn collect_reports(
    cluster: &SimCluster,
    corrupt: &std::collections::BTreeSet<u64>,
) -> Vec<StoreReports> {
    let mut reports = Vec::new();
    for (id, store) in &cluster.stores {
        if corrupt.contains(id) {
            continue;
        }
        if let Some(regions) = region_reports(&store.addr).await {
            reports.push((*id, regions));
        }
    }
    reports
}

/// Every newest region has exactly one leader that all its reporting replicas agree on.
fn leaders_settled(reports: &[StoreReports]) -> Result<(), String> {
    for (region_id, _) in newest_regions(reports) {
        let mut leaders = std::collections::BTreeSet::new();
        for (_, regions) in reports {
            for info in regions
                .iter()
                .filter(|info| info.region.as_ref().is_some_and(|r| r.id == region_id))
            {
                leaders.insert(info.leader.map(|leader| leader.id));
            }
        }
        if leaders.len() != 1 || leaders.contains(&None) {
            return Err(format!("region {region_id}: leaders {leaders:?}"));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    seed: u64,
    shape: &Shape,
    cluster: Arc<SimCluster>,
    control: madsim::runtime::NodeHandle,
    start: tokio::time::Instant,
    history: Arc<Mutex<History>>,
    nemesis_log: Vec<String>,
    corrupt: std::collections::BTreeSet<u64>,
    failure: Option<String>,
) -> SeedReport {
    let keys = shape.keys;
    let config = cluster.client_config();
    let final_history = history.clone();
    let check_cluster = cluster.clone();
    let (reports, trace_hash) = control
        .spawn(async move {
            let client = ferrokv_client::RawClient::new(config);
            for key in 0..keys {
                let invoked_ns = elapsed_ns(start);
                let outcome = match client.get(&key_bytes(key)).await {
                    Ok(found) => Outcome::Read(
                        found.map(|v| v.as_slice().try_into().map_or(u64::MAX, u64::from_be_bytes)),
                    ),
                    Err(_) => Outcome::Unknown,
                };
                let event = Event {
                    process: 0,
                    key,
                    op: Op::Get,
                    outcome,
                    invoked_ns,
                    completed_ns: elapsed_ns(start),
                };
                final_history
                    .lock()
                    .expect("history lock")
                    .events
                    .push(event);
            }
            // Background entries (log compaction, lease renewals) may be in flight: give the
            // replicas a moment to reach the same applied index before judging them.
            let settle = tokio::time::Instant::now() + Duration::from_secs(10);
            let mut reports = collect_reports(&check_cluster, &corrupt).await;
            while check_convergence(&reports, true).is_err() && tokio::time::Instant::now() < settle
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                reports = collect_reports(&check_cluster, &corrupt).await;
            }
            let mut trace = fnv::FNV_OFFSET;
            for store in check_cluster.stores.values() {
                if let Some(reply) = ferrokv_client::admin::store_trace(&store.addr).await {
                    fnv::fold_u64(&mut trace, reply);
                }
            }
            (reports, trace)
        })
        .await
        .expect("final checks");
    let history = history.lock().expect("history lock").clone();
    let failure = failure.or_else(|| judge(&history, &reports));
    let mut trace_hash = trace_hash;
    for event in &history.events {
        fnv::fold_u64(
            &mut trace_hash,
            event.invoked_ns ^ event.completed_ns.rotate_left(17),
        );
    }
    SeedReport {
        seed,
        stores: shape.stores,
        calls: history.events.len(),
        definite_calls: history
            .events
            .iter()
            .filter(|e| !matches!(e.outcome, Outcome::Unknown | Outcome::Failed))
            .count(),
        simulated_secs: start.elapsed().as_secs_f64(),
        trace_hash,
        failure,
        history,
        nemesis_log,
    }
}

/// Runs every checker; the first failure wins.
fn judge(history: &History, reports: &[StoreReports]) -> Option<String> {
    match linearizability::check(history) {
        Verdict::Linearizable => {}
        Verdict::Violation { key, detail } => {
            return Some(format!("linearizability violated on key {key}: {detail}"))
        }
        Verdict::Exhausted { key } => {
            return Some(format!(
                "linearizability check exhausted its budget on key {key}"
            ))
        }
    }
    if let Err(error) = check_tiling(&newest_regions(reports)) {
        return Some(format!("regions: {error}"));
    }
    check_convergence(reports, true)
        .err()
        .map(|error| format!("convergence: {error}"))
}
