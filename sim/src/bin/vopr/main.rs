//! `vopr`: runs simulation seeds and reports failures with the command that replays them.
//!
//! ```text
//! vopr --seeds 64 [--first-seed 1] [--sim-minutes 5] [--jobs 2] [--swarm]
//! vopr --seed 17 [--sim-minutes 5]            # replay one seed bit for bit
//! vopr --seed 17 --twice                      # run a seed twice; fail if the traces differ
//! vopr --list-planted-bugs                    # one planted bug name per line
//! vopr --seeds 8 --planted-bug stale-reads --expect violation
//! vopr --seeds 16 --pd                        # every seed with a Placement Driver
//! ```
//! By default each seed picks whether its stores join through a Placement Driver (3 real PD
//! members, PD faults, the TSO checker) with probability 1/2; `--pd` forces it on,
//! `--no-pd` off (a seed without PD runs exactly as it did before PD mode existed).
//! Every failure has a kind: violation (a checker), liveness, convergence, panic, exhausted
//! (a budget ran out) or nondeterminism (`--twice`). With `--expect KIND` (for a planted
//! bug; `--expect-violation` is `--expect violation`) the run passes only if at least one
//! seed fails with that kind (and, with `--expect-detail TEXT`, a detail containing TEXT, so
//! a planted bug caught as a panic is caught by its own assertion): CI uses it to show the checkers can fail, and that each
//! planted bug is caught the way it should be. Failing seeds leave their history (EDN) and
//! nemesis log under `--out` (default `target/vopr`). Build with `RUSTFLAGS="--cfg madsim"`;
//! `ci/sim.sh` does.

#[cfg(madsim)]
mod runner;

#[cfg(madsim)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list-planted-bugs") {
        for bug in ferrokv_core::planted::PlantedBug::ALL {
            println!("{}", bug.name());
        }
        return;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
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
    if std::env::args().any(|a| a == "--list-planted-bugs") {
        for bug in ferrokv_core::planted::PlantedBug::ALL {
            println!("{}", bug.name());
        }
        return;
    }
    eprintln!("vopr runs the simulator: build it with RUSTFLAGS=\"--cfg madsim\" (ci/sim.sh does)");
    std::process::exit(2);
}
