//! `vopr`: runs simulation seeds and reports failures with the command that replays them.
//!
//! ```text
//! vopr --seeds 64 [--first-seed 1] [--sim-minutes 5] [--jobs 2] [--planted-bug stale-reads]
//! vopr --seed 17 [--sim-minutes 5]            # replay one seed bit for bit
//! vopr --seed 17 --twice                      # run a seed twice; fail if the traces differ
//! vopr --seeds 64 --swarm                     # each seed enables a random subset of faults
//! ```
//! Failing seeds leave their history (Jepsen EDN) and nemesis log under `--out`
//! (default `target/vopr`). Build with `RUSTFLAGS="--cfg madsim"`; `ci/sim.sh` does.

#[cfg(madsim)]
mod runner {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use ferrokv_core::raft::PlantedBug;
    use ferrokv_sim::vopr::{run_seed, FaultMask, SeedConfig, SeedReport};

    /// Command-line options.
    #[derive(Clone, Debug)]
    pub struct Options {
        first_seed: u64,
        seeds: u64,
        sim_minutes: f64,
        jobs: usize,
        planted_bug: Option<PlantedBug>,
        swarm: bool,
        twice: bool,
        verbose: bool,
        no_buggify: bool,
        out: PathBuf,
    }

    fn parse_bug(name: &str) -> Result<PlantedBug, String> {
        match name {
            "stale-reads" => Ok(PlantedBug::StaleLocalReads),
            "skip-log-sync" => Ok(PlantedBug::SkipRaftLogSync),
            other => Err(format!(
                "unknown planted bug {other:?} (stale-reads, skip-log-sync)"
            )),
        }
    }

    pub fn parse(args: Vec<String>) -> Result<Options, String> {
        let mut options = Options {
            first_seed: 1,
            seeds: 1,
            sim_minutes: 1.0,
            jobs: 1,
            planted_bug: None,
            swarm: false,
            twice: false,
            verbose: false,
            no_buggify: false,
            out: PathBuf::from("target/vopr"),
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--seed" => {
                    options.first_seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?;
                    options.seeds = 1;
                }
                "--first-seed" => {
                    options.first_seed =
                        value()?.parse().map_err(|e| format!("--first-seed: {e}"))?
                }
                "--seeds" => {
                    options.seeds = value()?.parse().map_err(|e| format!("--seeds: {e}"))?
                }
                "--sim-minutes" => {
                    options.sim_minutes = value()?
                        .parse()
                        .map_err(|e| format!("--sim-minutes: {e}"))?
                }
                "--jobs" => options.jobs = value()?.parse().map_err(|e| format!("--jobs: {e}"))?,
                "--planted-bug" => options.planted_bug = Some(parse_bug(&value()?)?),
                "--out" => options.out = PathBuf::from(value()?),
                "--swarm" => options.swarm = true,
                "--twice" => options.twice = true,
                "--verbose" => options.verbose = true,
                "--no-buggify" => options.no_buggify = true,
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        Ok(options)
    }

    fn replay_command(options: &Options, seed: u64) -> String {
        let mut command = format!(
            "ci/sim.sh --seed {seed} --sim-minutes {}",
            options.sim_minutes
        );
        if options.swarm {
            command.push_str(" --swarm");
        }
        match options.planted_bug {
            Some(PlantedBug::StaleLocalReads) => command.push_str(" --planted-bug stale-reads"),
            Some(PlantedBug::SkipRaftLogSync) => command.push_str(" --planted-bug skip-log-sync"),
            None => {}
        }
        command
    }

    fn run_guarded(config: &SeedConfig) -> SeedReport {
        match catch_unwind(AssertUnwindSafe(|| run_seed(config))) {
            Ok(report) => report,
            Err(panic) => {
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
                    simulated_secs: 0.0,
                    trace_hash: 0,
                    failure: Some(format!("panic: {message}")),
                    history: Default::default(),
                    nemesis_log: Vec::new(),
                }
            }
        }
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

    fn run_one(options: &Options, seed: u64) -> (bool, SeedReport, Duration) {
        let config = SeedConfig {
            seed,
            safety: Duration::from_secs_f64(options.sim_minutes * 60.0),
            faults: (!options.swarm).then(FaultMask::all),
            planted_bug: options.planted_bug,
            no_buggify: options.no_buggify,
        };
        let began = Instant::now();
        let mut report = run_guarded(&config);
        if options.twice && report.failure.is_none() {
            let again = run_guarded(&config);
            if again.trace_hash != report.trace_hash {
                report.failure = Some(format!(
                    "nondeterminism: trace {:#018x} then {:#018x}",
                    report.trace_hash, again.trace_hash
                ));
            }
        }
        (report.failure.is_none(), report, began.elapsed())
    }

    pub fn run(options: Options) -> bool {
        let next = Arc::new(AtomicU64::new(options.first_seed));
        let end = options.first_seed + options.seeds;
        let results = Arc::new(Mutex::new(Vec::new()));
        let began = Instant::now();
        let workers: Vec<_> = (0..options.jobs.max(1))
            .map(|_| {
                let (next, results, options) = (next.clone(), results.clone(), options.clone());
                std::thread::spawn(move || loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= end {
                        return;
                    }
                    let (ok, report, wall) = run_one(&options, seed);
                    let status = if ok { "ok".to_string() } else { format!("FAILED: {}", report.failure.clone().unwrap_or_default()) };
                    println!(
                        "seed {seed}: {status} ({} stores, {} calls checked, {:.0} sim-s in {:.1} s, trace {:#018x})",
                        report.stores, report.calls, report.simulated_secs, wall.as_secs_f64(), report.trace_hash
                    );
                    if options.verbose {
                        print_details(&report);
                    }
                    if !ok {
                        println!("    replay: {}", replay_command(&options, seed));
                    }
                    if !ok || options.verbose {
                        save(&options, &report);
                    }
                    results.lock().expect("results").push((ok, report.simulated_secs, report.calls));
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("vopr worker");
        }
        let results = results.lock().expect("results").clone();
        summarize(&results, began.elapsed())
    }

    fn print_details(report: &SeedReport) {
        let mut outcomes = std::collections::BTreeMap::new();
        for event in &report.history.events {
            let kind = format!("{:?}", event.outcome)
                .split(['(', ' '])
                .next()
                .unwrap_or("")
                .to_string();
            *outcomes.entry(kind).or_insert(0usize) += 1;
        }
        println!("    outcomes: {outcomes:?}");
        for line in &report.nemesis_log {
            println!("    {line}");
        }
    }

    fn summarize(results: &[(bool, f64, usize)], wall: Duration) -> bool {
        let failed = results.iter().filter(|(ok, _, _)| !ok).count();
        let sim_secs: f64 = results.iter().map(|(_, secs, _)| secs).sum();
        let calls: usize = results.iter().map(|(_, _, calls)| calls).sum();
        println!(
            "vopr: {} seeds, {failed} failed; {:.1} simulated minutes in {:.1} s wall ({:.2} sim-min per wall-s); {:.0} calls checked per seed",
            results.len(),
            sim_secs / 60.0,
            wall.as_secs_f64(),
            sim_secs / 60.0 / wall.as_secs_f64().max(1e-9),
            calls as f64 / results.len().max(1) as f64,
        );
        failed == 0
    }
}

#[cfg(madsim)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match runner::parse(args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("vopr: {error}");
            std::process::exit(2);
        }
    };
    if !runner::run(options) {
        std::process::exit(1);
    }
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("vopr runs the simulator: build it with RUSTFLAGS=\"--cfg madsim\" (ci/sim.sh does)");
    std::process::exit(2);
}
