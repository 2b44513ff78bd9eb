//! Seed runner: options, parallel workers, replay commands, reports.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrokv_core::planted::PlantedBug;
use ferrokv_sim::vopr::{run_seed, Failure, FailureKind, FaultMask, SeedConfig, SeedReport};

/// Command-line options.
#[derive(Clone, Debug)]
pub struct Options {
    first_seed: u64,
    seeds: u64,
    seed_list: Option<Vec<u64>>,
    sim_minutes: f64,
    jobs: usize,
    planted_bug: Option<PlantedBug>,
    /// The failure kind a planted bug must produce in at least one seed.
    expect: Option<FailureKind>,
    /// Text the expected failure's detail must contain (`--expect-detail`): a planted bug
    /// caught as a panic must be caught by its own assertion, not by any panic.
    expect_detail: Option<String>,
    swarm: bool,
    faults: Option<FaultMask>,
    twice: bool,
    verbose: bool,
    no_buggify: bool,
    /// `--pd` (every seed with PD), `--no-pd` (none), or each seed picks (one in two).
    pd: Option<bool>,
    out: PathBuf,
}

fn parse_bug(name: &str) -> Result<PlantedBug, String> {
    PlantedBug::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown planted bug {name:?} (known: {})", names.join(", "))
    })
}

/// Parses the command line.
pub fn parse(args: Vec<String>) -> Result<Options, String> {
    let mut options = Options {
        first_seed: 1,
        seeds: 1,
        seed_list: None,
        sim_minutes: 1.0,
        jobs: 1,
        planted_bug: None,
        expect: None,
        expect_detail: None,
        swarm: false,
        faults: None,
        twice: false,
        verbose: false,
        no_buggify: false,
        pd: None,
        out: PathBuf::from("target/vopr"),
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: String, flag: &str| -> Result<u64, String> {
            text.parse().map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--seed" => {
                options.first_seed = number(value()?, "--seed")?;
                options.seeds = 1;
            }
            "--first-seed" => options.first_seed = number(value()?, "--first-seed")?,
            "--seed-list" => {
                let list = value()?
                    .split(',')
                    .map(|seed| number(seed.trim().to_string(), "--seed-list"))
                    .collect::<Result<Vec<u64>, String>>()?;
                options.seeds = list.len() as u64;
                options.seed_list = Some(list);
            }
            "--seeds" => options.seeds = number(value()?, "--seeds")?,
            "--sim-minutes" => {
                options.sim_minutes = value()?
                    .parse()
                    .map_err(|e| format!("--sim-minutes: {e}"))?
            }
            "--jobs" => options.jobs = number(value()?, "--jobs")? as usize,
            "--planted-bug" => options.planted_bug = Some(parse_bug(&value()?)?),
            "--expect-violation" => options.expect = Some(FailureKind::Violation),
            "--expect" => options.expect = Some(FailureKind::from_name(&value()?)?),
            "--expect-detail" => options.expect_detail = Some(value()?),
            "--out" => options.out = PathBuf::from(value()?),
            "--swarm" => options.swarm = true,
            "--faults" => options.faults = Some(FaultMask::parse(&value()?)?),
            "--twice" => options.twice = true,
            "--verbose" => options.verbose = true,
            "--no-buggify" => options.no_buggify = true,
            "--pd" => options.pd = Some(true),
            "--no-pd" => options.pd = Some(false),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    let safety_secs = options.sim_minutes * 60.0;
    if !(safety_secs.is_finite() && safety_secs >= 0.0) {
        return Err("--sim-minutes must be a non-negative number".into());
    }
    let longest = ferrokv_sim::vopr::SAFETY_MAX.as_secs_f64() / 60.0;
    if safety_secs > ferrokv_sim::vopr::SAFETY_MAX.as_secs_f64() {
        return Err(format!(
            "--sim-minutes {} is longer than {longest:.1}: workload writes carry a TTL the checker does not model, and must not expire during a run",
            options.sim_minutes
        ));
    }
    // PD faults need a seed with PD: an explicit list naming one forces PD mode (it would
    // be dropped in a seed without), and refuses --no-pd.
    if options.faults.as_ref().is_some_and(names_pd) {
        if options.pd == Some(false) {
            return Err("--faults names a PD fault, which needs PD: drop --no-pd".into());
        }
        options.pd = Some(true);
    }
    if options.expect_detail.is_some() && options.expect.is_none() {
        return Err("--expect-detail needs --expect".into());
    }
    if options.expect.is_some() && options.planted_bug.is_none() {
        return Err("--expect/--expect-violation need --planted-bug".into());
    }
    Ok(options)
}

fn names_pd(faults: &FaultMask) -> bool {
    faults.0.iter().any(|fault| fault.is_pd())
}

/// The command that replays `seed` with every option that shaped it.
fn replay_command(options: &Options, seed: u64) -> String {
    let mut command = format!(
        "ci/sim.sh --seed {seed} --sim-minutes {}",
        options.sim_minutes
    );
    if options.swarm {
        command.push_str(" --swarm");
    }
    if let Some(faults) = &options.faults {
        command.push_str(&format!(" --faults {}", faults.describe()));
    }
    if options.no_buggify {
        command.push_str(" --no-buggify");
    }
    match options.pd {
        Some(true) => command.push_str(" --pd"),
        Some(false) => command.push_str(" --no-pd"),
        None => {}
    }
    if let Some(bug) = options.planted_bug {
        command.push_str(&format!(" --planted-bug {}", bug.name()));
    }
    if let Some(kind) = options.expect {
        command.push_str(&format!(" --expect {kind}"));
    }
    if let Some(detail) = &options.expect_detail {
        command.push_str(&format!(" --expect-detail {detail:?}"));
    }
    command
}

fn panic_report(config: &SeedConfig, panic: Box<dyn std::any::Any + Send>) -> SeedReport {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    SeedReport {
        seed: config.seed,
        stores: 0,
        calls: 0,
        definite_calls: 0,
        txns: 0,
        txn_checked: None,
        simulated_secs: 0.0,
        trace_hash: 0,
        failure: Some(Failure::new(FailureKind::Panic, message)),
        history: Default::default(),
        nemesis_log: Vec::new(),
        nemesis_stats: Default::default(),
        faults: String::new(),
        pd: None,
        lock_waits: Default::default(),
    }
}

fn run_guarded(config: &SeedConfig) -> SeedReport {
    catch_unwind(AssertUnwindSafe(|| run_seed(config)))
        .unwrap_or_else(|panic| panic_report(config, panic))
}

fn save(options: &Options, report: &SeedReport) {
    let _ = std::fs::create_dir_all(&options.out);
    let edn = options.out.join(format!("seed-{}.edn", report.seed));
    let log = options
        .out
        .join(format!("seed-{}.nemesis.txt", report.seed));
    let _ = std::fs::write(&edn, report.history.to_edn());
    let _ = std::fs::write(&log, report.nemesis_log.join("\n"));
    println!(
        "    history: {}  nemesis log: {}",
        edn.display(),
        log.display()
    );
}

/// Runs one seed (twice with `--twice`, failing or not) and decides whether it passed.
fn run_one(options: &Options, seed: u64) -> (bool, SeedReport, Duration) {
    let config = SeedConfig {
        seed,
        safety: Duration::from_secs_f64(options.sim_minutes * 60.0),
        faults: match (&options.faults, options.swarm) {
            (Some(faults), _) => Some(faults.clone()),
            (None, true) => None,
            (None, false) => Some(FaultMask::all()),
        },
        planted_bug: options.planted_bug,
        no_buggify: options.no_buggify,
        pd: options.pd,
    };
    let began = Instant::now();
    let mut report = run_guarded(&config);
    if options.twice {
        let again = run_guarded(&config);
        if again.trace_hash != report.trace_hash || again.failure != report.failure {
            let detail = format!(
                "trace {:#018x} then {:#018x}; failure {:?} then {:?}",
                report.trace_hash,
                again.trace_hash,
                report.failure.as_ref().map(ToString::to_string),
                again.failure.as_ref().map(ToString::to_string)
            );
            report.failure = Some(Failure::new(FailureKind::Nondeterminism, detail));
            return (false, report, began.elapsed());
        }
    }
    // Expecting a failure kind (a planted bug), a seed that finds none is not a failure by
    // itself: the run fails only if no seed at all finds one of that kind (`summarize`).
    let ok = options.expect.is_some() || report.failure.is_none();
    (ok, report, began.elapsed())
}

/// Per-run totals for the summary.
#[derive(Default)]
struct Totals {
    seeds: usize,
    failed: usize,
    /// Seeds that failed, by kind.
    kinds: BTreeMap<FailureKind, usize>,
    sim_secs: f64,
    calls: usize,
    txns: usize,
    faults: BTreeMap<String, u64>,
    faults_noop: u64,
    /// Seeds with PD, and what PD did in them: (failovers, operators, timestamps) per seed.
    pd_seeds: Vec<(u64, u64, u64)>,
    /// Seeds that failed the way `--expect` (and `--expect-detail`) asked.
    caught: usize,
}

/// Whether a seed's failure is the one a planted bug must produce.
fn is_expected(options: &Options, failure: &Failure) -> bool {
    options.expect == Some(failure.kind)
        && options
            .expect_detail
            .as_ref()
            .is_none_or(|detail| failure.detail.contains(detail.as_str()))
}

fn print_seed(options: &Options, ok: bool, report: &SeedReport, wall: Duration) {
    let status = match (&report.failure, options.expect) {
        (None, None) => "ok".to_string(),
        (Some(failure), Some(kind)) if is_expected(options, failure) => {
            format!("{kind} found as expected: {}", failure.detail)
        }
        (Some(failure), Some(kind)) => {
            let detail = options.expect_detail.as_deref().unwrap_or("");
            format!("failed, but not as the expected {kind} {detail:?}: {failure}")
        }
        (None, Some(kind)) => format!("no {kind} in this seed"),
        (Some(failure), None) => format!("FAILED: {failure}"),
    };
    let pd = report.pd.as_ref().map_or(String::new(), |pd| {
        format!(
            ", PD: {} leader changes observed, {} operators seen, {} timestamps",
            pd.failovers, pd.operators, pd.tso_calls
        )
    });
    let txns = report.txn_checked.map_or(String::new(), |t| {
        format!(
            ", {} txns checked ({} bank reads, {} in the list-append graph, {} oracle reads, {} pessimistic commits, {} async/1PC commits ({} decided after unanswered prewrites), lock waits {} (woken {}, timed out {}), deadlocks {} ({} found across stores), {} GC safe point advances)",
            t.txns, t.bank_reads, t.list_txns, t.oracle_reads, t.pessimistic_commits,
            t.computed_commits, t.decided_after_unknown,
            report.lock_waits.waited, report.lock_waits.woken, report.lock_waits.timed_out,
            t.deadlocks, report.lock_waits.remote_deadlocks, t.gc_advances
        )
    });
    println!(
        "seed {}: {status} ({} stores{pd}, {} calls{txns} checked, {:.0} sim-s in {:.1} s, trace {:#018x})",
        report.seed,
        report.stores,
        report.calls,
        report.simulated_secs,
        wall.as_secs_f64(),
        report.trace_hash
    );
    if options.verbose {
        println!("    faults enabled: {}", report.faults);
        println!(
            "    injected: {:?}, no effect: {}",
            report.nemesis_stats.injected, report.nemesis_stats.noops
        );
        for line in &report.nemesis_log {
            println!("    {line}");
        }
    }
    if !ok || report.failure.is_some() {
        println!("    replay: {}", replay_command(options, report.seed));
        save(options, report);
    }
}

/// Runs every seed on `jobs` workers; true if all passed.
pub fn run(options: Options) -> bool {
    let next = Arc::new(AtomicU64::new(options.first_seed));
    let end = options.first_seed + options.seeds;
    let totals = Arc::new(Mutex::new(Totals::default()));
    let began = Instant::now();
    let workers: Vec<_> = (0..options.jobs.max(1))
        .map(|_| {
            let (next, totals, options) = (next.clone(), totals.clone(), options.clone());
            std::thread::spawn(move || loop {
                let position = next.fetch_add(1, Ordering::SeqCst);
                if position >= end {
                    return;
                }
                let seed = match &options.seed_list {
                    Some(list) => list[(position - options.first_seed) as usize],
                    None => position,
                };
                let (ok, report, wall) = run_one(&options, seed);
                print_seed(&options, ok, &report, wall);
                let mut totals = totals.lock().expect("totals");
                totals.seeds += 1;
                totals.failed += usize::from(!ok);
                if let Some(failure) = &report.failure {
                    *totals.kinds.entry(failure.kind).or_default() += 1;
                    totals.caught += usize::from(is_expected(&options, failure));
                }
                totals.sim_secs += report.simulated_secs;
                totals.calls += report.calls;
                totals.txns += report.txns;
                for (fault, count) in &report.nemesis_stats.injected {
                    *totals.faults.entry(fault.clone()).or_default() += count;
                }
                totals.faults_noop += report.nemesis_stats.noops;
                if let Some(pd) = &report.pd {
                    totals
                        .pd_seeds
                        .push((pd.failovers, pd.operators, pd.tso_calls));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("vopr worker");
    }
    let totals = totals.lock().expect("totals");
    summarize(&options, &totals, began.elapsed())
}

fn summarize(options: &Options, totals: &Totals, wall: Duration) -> bool {
    let seeds = totals.seeds.max(1) as f64;
    let kinds: Vec<String> = totals
        .kinds
        .iter()
        .map(|(kind, count)| format!("{count} {kind}"))
        .collect();
    let kinds = if kinds.is_empty() {
        String::new()
    } else {
        format!(" ({})", kinds.join(", "))
    };
    println!(
        "vopr: {} seeds, {} failed, {} with a failure{kinds}; {:.1} simulated minutes in {:.1} s wall ({:.2} sim-min per wall-s); {:.0} calls and {:.0} transactions checked per seed",
        totals.seeds,
        totals.failed,
        totals.kinds.values().sum::<usize>(),
        totals.sim_secs / 60.0,
        wall.as_secs_f64(),
        totals.sim_secs / 60.0 / wall.as_secs_f64().max(1e-9),
        totals.calls as f64 / seeds,
        totals.txns as f64 / seeds,
    );
    let per_seed: Vec<String> = totals
        .faults
        .iter()
        .map(|(fault, count)| format!("{fault} {:.1}", *count as f64 / seeds))
        .collect();
    println!(
        "vopr: faults that took effect, per seed: {}; faults with no effect (not counted): {:.1} per seed",
        per_seed.join(", "),
        totals.faults_noop as f64 / seeds
    );
    if !totals.pd_seeds.is_empty() {
        let n = totals.pd_seeds.len() as f64;
        let column = |pick: fn(&(u64, u64, u64)) -> u64| {
            let values: Vec<u64> = totals.pd_seeds.iter().map(pick).collect();
            let (min, max) = (values.iter().min(), values.iter().max());
            format!(
                "{:.1} (min {}, max {})",
                values.iter().sum::<u64>() as f64 / n,
                min.unwrap_or(&0),
                max.unwrap_or(&0)
            )
        };
        println!(
            "vopr: {} seeds with PD; per seed: PD leader changes observed {}, operators seen {}, timestamps checked {}",
            totals.pd_seeds.len(),
            column(|s| s.0),
            column(|s| s.1),
            column(|s| s.2)
        );
    }
    if let (Some(bug), Some(kind)) = (options.planted_bug, options.expect) {
        let caught = totals.caught;
        println!(
            "vopr: planted bug {} caught (as {kind}) by {caught} of {} seeds",
            bug.name(),
            totals.seeds
        );
        if caught == 0 {
            println!("vopr: FAILED: no seed found the planted bug as a {kind}");
            return false;
        }
        return true;
    }
    if let Some(bug) = options.planted_bug {
        println!(
            "vopr: planted bug {} made {} of {} seeds fail",
            bug.name(),
            totals.kinds.values().sum::<usize>(),
            totals.seeds
        );
    }
    totals.failed == 0
}
