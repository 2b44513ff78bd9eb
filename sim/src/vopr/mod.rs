//! The VOPR of FerroKV: one seed = one simulated cluster (3 to 5 real store nodes on
//! SimEngine inside madsim, each with its own drifting clock), a multi-key workload, and a
//! nemesis whose fault actors overlap. Three phases: a safety phase with faults; a progress
//! phase after healing, where every client must complete definite calls, every pending call
//! must finish and every store must converge; and a final judgement of the history
//! (linearizability per key group), the regions (no gap or overlap) and the replicas
//! (identical applied state, every peer of every region present). Only under `--cfg madsim`.
//!
//! A seed may run with a Placement Driver (`pd_mode`): three real PD members, stores that
//! join through them, PD faults, timestamp takers judged by the TSO checker, and a final
//! check that every region is back to full replica count on live stores. `--pd` forces it,
//! `--no-pd` forbids it; by default a seed picks it with probability 1/2 from a stream of
//! its own (`PD_STREAM`), so a seed without PD draws and does exactly what it always did.

mod dump;
pub use dump::LockWaitTotals;
mod failure;
mod liveness;
pub mod nemesis;
mod pd_mode;
mod txn_workload;
mod workload;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_core::env::{Rng, SeededRng};
use ferrokv_core::planted::{self, PlantedBug};
use ferrokv_core::types::fnv;
use ferrokv_server::config::RaftSection;

pub use failure::{Failure, FailureKind};
use nemesis::Nemesis;
pub use nemesis::{Fault, FaultMask, NemesisStats};
pub use pd_mode::PdStats;
use txn_workload::{TxnHistory, TxnTask};
use workload::{ClientTask, HealedAt, Progress};

use crate::checker::linearizability::{self, Verdict};
use crate::checker::regions::{check_convergence, check_tiling, newest_regions, StoreReports};
use crate::cluster::SimCluster;
use crate::history::{History, GROUP_KEYS};

/// Simulated time the progress phase may take before the run fails.
pub const LIVENESS_BUDGET: Duration = Duration::from_secs(90);
/// Room for the final checks and for wall-clock skew (the nemesis jumps a wall clock by
/// at most 10 s and drifts it by at most 4 s), past the progress phase.
const TTL_MARGIN: Duration = Duration::from_secs(120);

/// The longest safety phase a run may have: the whole run must end before any write with
/// a TTL (`workload::WRITE_TTL_SECS`) could expire, because the checker does not model
/// expiry.
pub const SAFETY_MAX: Duration = Duration::from_secs(
    workload::WRITE_TTL_SECS - LIVENESS_BUDGET.as_secs() - TTL_MARGIN.as_secs(),
);

/// Successful calls each client must complete after healing and the grace period (at
/// least one a write).
pub const PROGRESS_CALLS: u64 = 5;
/// Time after healing for elections and catch-up; calls invoked later must all succeed.
pub const PROGRESS_GRACE: Duration = Duration::from_secs(5);

/// One seed's setup.
#[derive(Clone, Debug)]
pub struct SeedConfig {
    /// The seed: everything else about the run derives from it.
    pub seed: u64,
    /// Length of the safety (fault) phase in simulated time.
    pub safety: Duration,
    /// Faults to use; `None` lets the seed choose (swarm).
    pub faults: Option<FaultMask>,
    /// A deliberately planted bug (simulation only).
    pub planted_bug: Option<PlantedBug>,
    /// Forbid buggify even if the seed would enable it (for triage).
    pub no_buggify: bool,
    /// Run with a Placement Driver (`Some(true)`), without (`Some(false)`), or as the seed
    /// picks (`None`: one seed in two).
    pub pd: Option<bool>,
}

impl SeedConfig {
    /// Refuses a safety phase so long that writes with a TTL could expire during the run
    /// (the checker does not model expiry).
    pub fn check(&self) -> Result<(), String> {
        if self.safety > SAFETY_MAX {
            return Err(format!(
                "a safety phase of {:.1} simulated minutes is longer than the {:.1} allowed: workload writes carry a {} s TTL and the checker does not model expiry",
                self.safety.as_secs_f64() / 60.0,
                SAFETY_MAX.as_secs_f64() / 60.0,
                workload::WRITE_TTL_SECS
            ));
        }
        Ok(())
    }
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
    /// Transactions recorded (and checked).
    pub txns: usize,
    /// What the transaction checkers covered, if they passed.
    pub txn_checked: Option<txn_workload::TxnChecked>,
    /// Simulated seconds the run covered.
    pub simulated_secs: f64,
    /// Fingerprint of the run: every store incarnation's trace and the history.
    pub trace_hash: u64,
    /// The first failed check, if any.
    pub failure: Option<Failure>,
    /// The history, for export when the seed failed.
    pub history: History,
    /// The nemesis log.
    pub nemesis_log: Vec<String>,
    /// Faults injected by kind, and faults that could not be injected.
    pub nemesis_stats: NemesisStats,
    /// The fault set the seed ran with.
    pub faults: String,
    /// What PD did, in a seed with PD.
    pub pd: Option<PdStats>,
    /// Pessimistic-lock waits the stores counted (a lower bound: counts restart with a
    /// store).
    pub lock_waits: LockWaitTotals,
}

struct Shape {
    stores: u64,
    voters: u64,
    clients: u64,
    /// Transactional clients (each runs bank and list-append transactions).
    txn_clients: u64,
    keys: u64,
    actors: u64,
    raft: RaftSection,
    faults: FaultMask,
    buggify: bool,
    /// Stores join through a Placement Driver.
    pd: bool,
}

/// The random stream a seed picks PD mode and PD faults from (apart from the main stream,
/// which a seed without PD uses exactly as before PD mode existed).
const PD_STREAM: u64 = 0x5044;
/// The random stream of the transactional clients (apart from the main stream too).
const TXN_STREAM: u64 = 0x5458;

/// Whether `config`'s seed runs with PD.
pub fn runs_with_pd(config: &SeedConfig) -> bool {
    config
        .pd
        .unwrap_or_else(|| SeededRng::new(config.seed).fork(PD_STREAM).ratio(1, 2))
}

fn shape(config: &SeedConfig, rng: &mut SeededRng) -> Shape {
    let stores = rng.range(3, 6);
    let log_gc = [16, 64, 1024][rng.below(3) as usize];
    let raft = RaftSection {
        log_gc_count_threshold: log_gc,
        ..RaftSection::default()
    };
    let faults = config
        .faults
        .clone()
        .unwrap_or_else(|| FaultMask::swarm(rng));
    let buggify = rng.ratio(4, 5) && !config.no_buggify;
    let pd = runs_with_pd(config);
    let mut pd_rng = SeededRng::new(config.seed).fork(PD_STREAM + 1);
    let (stores, faults) = match (pd, config.faults.is_some()) {
        // PD rebuilds the replicas of a store down for long: it needs a spare store.
        (true, false) => (stores.max(4), faults.with_pd_swarm(&mut pd_rng)),
        (true, true) => (stores.max(4), faults),
        (false, _) => (stores, faults.without_pd()),
    };
    Shape {
        pd,
        stores,
        voters: 3,
        clients: rng.range(3, 9),
        txn_clients: SeededRng::new(config.seed).fork(TXN_STREAM).range(2, 6),
        keys: GROUP_KEYS * rng.range(2, 7),
        actors: rng.range(1, 4),
        raft,
        faults,
        buggify,
    }
}

/// Runs one seed to completion in a fresh madsim runtime.
///
/// # Panics
/// If `config.safety` exceeds `SAFETY_MAX` (callers check first: see `SeedConfig::check`).
pub fn run_seed(config: &SeedConfig) -> SeedReport {
    if let Err(error) = config.check() {
        panic!("{error}");
    }
    // A fresh thread per run: madsim sets std's per-thread `HashMap` keys from the seed
    // itself when a runtime starts; on a thread whose keys were already drawn that fails
    // (with a warning), so a seed that was not the first on its worker thread ran with the
    // previous seed's keys, and a second run of it could differ from the first (seed 16
    // with PD, whose RPC stack builds hash maps). A fresh thread per seed has fresh keys.
    let config = config.clone();
    let run = std::thread::spawn(move || {
        let runtime =
            madsim::runtime::Runtime::with_seed_and_config(config.seed, madsim::Config::default());
        runtime.block_on(simulate(config))
    });
    run.join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// What the clients share with the phases.
struct Clients {
    tasks: Vec<madsim::task::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    healed_at: HealedAt,
    progress: Vec<Arc<Progress>>,
    /// Transactional clients still running (a transaction is recorded only when it ends).
    txn_running: Arc<AtomicU64>,
}

async fn simulate(config: SeedConfig) -> SeedReport {
    planted::set(config.planted_bug);
    let mut rng = SeededRng::new(config.seed);
    let shape = shape(&config, &mut rng);
    ferrokv_server::buggify::set_enabled(shape.buggify);
    let (cluster, control) = if shape.pd {
        let mut pd_rng = rng.fork(PD_STREAM);
        match pd_mode::start(shape.stores, &shape.raft, &mut pd_rng).await {
            Ok((cluster, control)) => (Arc::new(cluster), control),
            Err(failure) => {
                planted::set(None);
                return unformed_report(&config, &shape, failure);
            }
        }
    } else {
        let cluster = Arc::new(SimCluster::start(
            shape.stores,
            shape.voters,
            shape.raft.clone(),
        ));
        for store in cluster.stores() {
            store
                .clock
                .set_rate_ppm(nemesis::rate_within_bound(&mut rng));
        }
        let control = cluster.client_node("control", 250);
        (cluster, control)
    };
    let nemesis = Nemesis::new(cluster.clone(), &shape.faults, shape.keys);
    let splitter = nemesis.clone();
    let split = control
        .spawn(async move { split_txn_space(&splitter).await })
        .await
        .expect("split task");
    if let Err(failure) = split {
        planted::set(None);
        return unformed_report(&config, &shape, failure);
    }
    let start = tokio::time::Instant::now();
    let history = Arc::new(Mutex::new(History::default()));
    let txn_history = Arc::new(Mutex::new(TxnHistory::default()));
    let clients = spawn_clients(&cluster, &shape, &mut rng, start, &history, &txn_history);
    let (txn_stop, txn_running) = (clients.stop.clone(), clients.txn_running.clone());
    let pd_run = cluster
        .pd
        .as_ref()
        .map(|pd| pd_mode::PdRun::start(pd, 2, &rng.fork(PD_STREAM + 2), start));
    let nemesis_rng = rng.fork(7);
    let phase = (
        cluster.clone(),
        nemesis.clone(),
        config.safety,
        shape.actors,
    );
    let failure = control
        .spawn(async move {
            let (cluster, nemesis, safety, actors) = phase;
            nemesis.run(actors, start + safety, &nemesis_rng).await;
            let (failure, dump) = heal_and_settle(&cluster, &nemesis, clients, start).await;
            let pd = match pd_run {
                Some(run) => Some(run.finish().await),
                None => None,
            };
            (failure, pd, dump)
        })
        .await
        .expect("control task");
    let (failure, pd, dump) = failure;
    let (pd_stats, tso_calls, failure) = match pd {
        // A timestamp that went back is the finding, whatever else failed.
        Some((stats, calls, Some(tso))) if tso.kind == FailureKind::Violation => {
            (Some(stats), calls, Some(tso))
        }
        Some((stats, calls, pd_failure)) => (Some(stats), calls, failure.or(pd_failure)),
        None => (None, Vec::new(), failure),
    };
    let mut report = finish(
        &config, &shape, &cluster, &control, start, &history, &nemesis, failure,
    )
    .await;
    report.pd = pd_stats;
    report.nemesis_log.extend(dump);
    fold_tso_calls(&mut report.trace_hash, &tso_calls);
    // A run cut short by a failure may have left transactional clients mid-transaction:
    // their history is judged only once every one of them has stopped.
    let stopped = control
        .spawn(stop_txn_clients(txn_stop, txn_running))
        .await
        .expect("stop task");
    if stopped {
        judge_txns(&mut report, &txn_history.lock().expect("txn history lock"));
    }
    planted::set(None);
    report
}

/// Heals every fault, then requires progress, settled regions and (with PD) balance; the
/// first failure, and for a liveness failure every store's view of its regions.
async fn heal_and_settle(
    cluster: &SimCluster,
    nemesis: &Nemesis,
    clients: Clients,
    start: tokio::time::Instant,
) -> (Option<Failure>, Vec<String>) {
    ferrokv_server::buggify::set_enabled(false);
    nemesis.heal().await;
    let corrupt = nemesis.corrupt();
    let mut settled = liveness::progress(cluster, &corrupt, clients, start).await;
    if settled.is_ok() && cluster.pd.is_some() {
        settled = pd_mode::await_balance(cluster, &corrupt).await;
    }
    let failure = settled
        .err()
        .or_else(|| nemesis.findings().first().cloned().map(Failure::liveness));
    let dump = match &failure {
        Some(f) if f.kind == FailureKind::Liveness => {
            dump::regions_at_failure(cluster, &corrupt).await
        }
        _ => Vec::new(),
    };
    (failure, dump)
}

/// Splits at the encoded start of the transactional space before any client runs, so
/// transactional regions are bounded by encoded keys (`txn_workload::TXN_SPACE`).
async fn split_txn_space(nemesis: &Nemesis) -> Result<(), Failure> {
    let bound = ferrokv_core::types::codec::encode_bytes(txn_workload::TXN_SPACE);
    for _ in 0..120 {
        if nemesis.region_starts_at(&bound).await {
            return Ok(());
        }
        nemesis.split_at(bound.clone(), None).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Failure::liveness(
        "the transactional space was not split off within 60 s of a fault-free start",
    ))
}

/// The report of a seed whose cluster (or its transactional space) never formed.
fn unformed_report(config: &SeedConfig, shape: &Shape, failure: Failure) -> SeedReport {
    SeedReport {
        seed: config.seed,
        stores: shape.stores,
        calls: 0,
        definite_calls: 0,
        txns: 0,
        txn_checked: None,
        simulated_secs: 0.0,
        trace_hash: 0,
        failure: Some(failure),
        history: History::default(),
        nemesis_log: Vec::new(),
        nemesis_stats: NemesisStats::default(),
        faults: shape.faults.describe(),
        pd: Some(PdStats::default()),
        lock_waits: LockWaitTotals::default(),
    }
}

/// Stops the clients and waits (a bounded time: every call has a deadline) until no
/// transactional client runs; false if some still does.
async fn stop_txn_clients(stop: Arc<AtomicBool>, running: Arc<AtomicU64>) -> bool {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for _ in 0..600 {
        if running.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Judges the transactions and folds them into the run's fingerprint. A transactional
/// violation is the finding, whatever else failed (a run cut short by a liveness failure
/// still recorded a valid history).
fn judge_txns(report: &mut SeedReport, history: &TxnHistory) {
    report.txns = history.transactions();
    for txn in &history.timed {
        fnv::fold(&mut report.trace_hash, format!("{txn:?}").as_bytes());
    }
    match txn_workload::judge(history) {
        Ok(checked) => report.txn_checked = Some(checked),
        Err(violation) => {
            let already = report.failure.as_ref().map(|f| f.kind);
            if already != Some(FailureKind::Violation) {
                report.failure = Some(violation);
            }
        }
    }
}

/// Folds the timestamps clients received into the run's fingerprint.
fn fold_tso_calls(trace: &mut u64, calls: &[crate::checker::tso::TsoCall]) {
    for call in calls {
        fnv::fold_u64(trace, call.ts);
        fnv::fold_u64(trace, call.invoked_ns ^ call.completed_ns.rotate_left(17));
    }
}

fn spawn_clients(
    cluster: &SimCluster,
    shape: &Shape,
    rng: &mut SeededRng,
    start: tokio::time::Instant,
    history: &Arc<Mutex<History>>,
    txn_history: &Arc<Mutex<TxnHistory>>,
) -> Clients {
    let mut clients = Clients {
        tasks: Vec::new(),
        stop: Arc::new(AtomicBool::new(false)),
        healed_at: HealedAt::default(),
        progress: Vec::new(),
        txn_running: Arc::default(),
    };
    for process in 1..=shape.clients {
        let node = cluster.client_node(&format!("client{process}"), process as u8);
        let task = ClientTask {
            process,
            keys: shape.keys,
            start,
            stop: clients.stop.clone(),
            healed_at: clients.healed_at.clone(),
            progress: clients.new_progress(),
            history: history.clone(),
        };
        let client = raw_client(cluster, rng);
        let client_rng = rng.fork(100 + process);
        clients.tasks.push(node.spawn(task.run(client, client_rng)));
    }
    spawn_txn_clients(cluster, shape, rng, start, txn_history, &mut clients);
    clients
}

/// The transactional clients, on a random stream of their own: a seed's raw clients do
/// what they did before these existed.
fn spawn_txn_clients(
    cluster: &SimCluster,
    shape: &Shape,
    main_rng: &SeededRng,
    start: tokio::time::Instant,
    history: &Arc<Mutex<TxnHistory>>,
    clients: &mut Clients,
) {
    // Forking does not advance the main stream.
    let mut rng = main_rng.fork(TXN_STREAM + 1);
    let oracle = match &cluster.pd {
        Some(pd) => ferrokv_client::txn::Oracle::Pd(pd.pd_client()),
        None => txn_workload::local_oracle(start),
    };
    let bank_ready = Arc::new(AtomicBool::new(false));
    let active = txn_workload::ActiveTxns::default();
    if let Some(pd) = &cluster.pd {
        let node = cluster.client_node("gcdriver", 149);
        let client =
            ferrokv_client::txn::TxnClient::new(raw_client(cluster, &mut rng), oracle.clone());
        let driver = txn_workload::gc_driver(
            client,
            pd.pd_client(),
            active.clone(),
            clients.stop.clone(),
            history.clone(),
        );
        clients.tasks.push(node.spawn(driver));
    }
    for index in 0..shape.txn_clients {
        let process = 100 + index;
        let node = cluster.client_node(&format!("txn{index}"), 150 + index as u8);
        let task = TxnTask {
            process,
            setup: index == 0,
            keys: shape.keys,
            start,
            stop: clients.stop.clone(),
            healed_at: clients.healed_at.clone(),
            progress: clients.new_progress(),
            history: history.clone(),
            bank_ready: bank_ready.clone(),
            active: active.clone(),
            computed_commits: cluster.pd.is_some(),
            _alive: txn_workload::Running::start(&clients.txn_running),
        };
        let client =
            ferrokv_client::txn::TxnClient::new(raw_client(cluster, &mut rng), oracle.clone());
        let client_rng = rng.fork(TXN_STREAM + 16 + index);
        clients.tasks.push(node.spawn(task.run(client, client_rng)));
    }
}

impl Clients {
    fn new_progress(&mut self) -> Arc<Progress> {
        let progress = Arc::new(Progress::default());
        self.progress.push(progress.clone());
        progress
    }
}

/// A routing client as the workload's clients use it: some give up on a silent store
/// quickly, some wait long; half send each call first to a random peer; with PD, half
/// find routes through PD, the others ask the stores.
fn raw_client(cluster: &SimCluster, rng: &mut SeededRng) -> ferrokv_client::RawClient {
    let mut config = cluster.client_config();
    config.attempt_timeout = Duration::from_millis(rng.range(300, 2000));
    if rng.ratio(1, 2) {
        // Some reach every side of a partition (a deposed leader included).
        config.first_attempt = ferrokv_client::FirstAttempt::RandomPeer {
            seed: rng.next_u64(),
        };
    }
    match &cluster.pd {
        // As the official client does.
        Some(pd) if rng.ratio(1, 2) => {
            config.stores.clear();
            ferrokv_client::RawClient::with_pd_config(pd.pd_client(), config)
        }
        // And the address of a store that joined after they started from PD.
        Some(pd) => ferrokv_client::RawClient::with_store_directory(pd.pd_client(), config),
        None => ferrokv_client::RawClient::new(config),
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    config: &SeedConfig,
    shape: &Shape,
    cluster: &Arc<SimCluster>,
    control: &madsim::runtime::NodeHandle,
    start: tokio::time::Instant,
    history: &Arc<Mutex<History>>,
    nemesis: &Nemesis,
    failure: Option<Failure>,
) -> SeedReport {
    let corrupt = nemesis.corrupt();
    let checks =
        liveness::final_checks(cluster.clone(), corrupt, shape.keys, start, history.clone());
    let (reports, store_traces, check_failure) = control.spawn(checks).await.expect("final checks");
    let counted = (cluster.clone(), nemesis.corrupt());
    let lock_waits = control
        .spawn(async move { dump::lock_wait_totals(&counted.0, &counted.1).await })
        .await
        .expect("lock wait counters");
    let history = history.lock().expect("history lock").clone();
    let failure = failure
        .or(check_failure)
        .or_else(|| judge(&history, &reports));
    let trace_hash = run_trace(cluster, &store_traces, &history);
    SeedReport {
        seed: config.seed,
        stores: shape.stores,
        calls: history.events.len(),
        txns: 0,
        txn_checked: None,
        definite_calls: history.events.iter().filter(|e| e.is_definite()).count(),
        simulated_secs: start.elapsed().as_secs_f64(),
        trace_hash,
        failure,
        history,
        nemesis_log: nemesis.log(),
        nemesis_stats: nemesis.stats(),
        faults: shape.faults.describe(),
        pd: None,
        lock_waits,
    }
}

/// The run's fingerprint: every store incarnation's trace (those killed along the way
/// included) and every call's operation, result and times.
fn run_trace(cluster: &SimCluster, store_traces: &[(u64, u64)], history: &History) -> u64 {
    let mut trace = fnv::FNV_OFFSET;
    for (store, hash) in cluster.past_traces.lock().expect("traces lock").iter() {
        fnv::fold_u64(&mut trace, *store);
        fnv::fold_u64(&mut trace, *hash);
    }
    for (store, hash) in store_traces {
        fnv::fold_u64(&mut trace, *store);
        fnv::fold_u64(&mut trace, *hash);
    }
    for event in &history.events {
        fnv::fold(
            &mut trace,
            format!("{:?}{:?}", event.op, event.outcome).as_bytes(),
        );
        fnv::fold_u64(
            &mut trace,
            event.invoked_ns ^ event.completed_ns.rotate_left(17),
        );
    }
    trace
}

/// Runs every checker; the first failure wins.
fn judge(history: &History, reports: &[StoreReports]) -> Option<Failure> {
    match linearizability::check(history) {
        Verdict::Linearizable => {}
        Verdict::Violation { group, detail } => {
            return Some(Failure::violation(format!(
                "linearizability violated in key group {group}: {detail}"
            )))
        }
        Verdict::Exhausted { group } => {
            return Some(Failure::new(
                FailureKind::Exhausted,
                format!("linearizability check exhausted its budget on key group {group}"),
            ))
        }
    }
    if let Err(error) = check_tiling(&newest_regions(reports)) {
        return Some(Failure::violation(format!("regions: {error}")));
    }
    check_convergence(reports, true)
        .err()
        .map(Failure::convergence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_end_before_any_ttl_write_could_expire() {
        let config = |safety| SeedConfig {
            seed: 1,
            safety,
            faults: None,
            planted_bug: None,
            no_buggify: false,
            pd: None,
        };
        assert!(config(SAFETY_MAX).check().is_ok());
        assert!(config(SAFETY_MAX + Duration::from_secs(1)).check().is_err());
        let run = SAFETY_MAX + LIVENESS_BUDGET + TTL_MARGIN;
        assert!(run <= Duration::from_secs(workload::WRITE_TTL_SECS));
    }
}
