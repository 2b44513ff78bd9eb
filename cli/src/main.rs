//! `ferrokv`: the operator's command-line entry point.
//!
//! - `ferrokv playground`: 1 PD + 3 stores on loopback (flags for more), data under
//!   `./data`, as tasks in this one process; Ctrl-C stops it, running it again restarts the
//!   same cluster on the same data.
//! - `ferrokv ctl ...`: put/get/delete/scan, stores, regions, region KEY, members, tso,
//!   split KEY, transfer-leader, operators; `--pd ADDR` (the playground's by default),
//!   `--json` for scripts.
//!
//! RocksDB never runs under madsim, so under `--cfg madsim` the binary only says so.

#[cfg(not(madsim))]
mod ctl;
#[cfg(not(madsim))]
mod playground;

#[cfg(not(madsim))]
mod real {
    use std::process::ExitCode;

    use clap::{Parser, Subcommand};

    use crate::ctl::{self, CtlArgs};
    use crate::playground::{self, PlaygroundArgs};

    #[derive(Parser)]
    #[command(
        name = "ferrokv",
        version,
        about = "FerroKV: a distributed transactional key-value store"
    )]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Start 1 PD + N stores on loopback, data under ./data (Ctrl-C stops).
        Playground(PlaygroundArgs),
        /// Data and cluster commands against PD and the stores.
        Ctl(CtlArgs),
    }

    fn init_logging(default: &str) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_writer(std::io::stderr)
            .try_init();
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
        let result = match cli.command {
            Command::Playground(args) => {
                init_logging("warn");
                runtime.block_on(playground::run(args))
            }
            Command::Ctl(args) => {
                init_logging("error");
                runtime.block_on(ctl::run(args))
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("ferrokv: {error}");
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    real::main()
}

#[cfg(madsim)]
fn main() {
    eprintln!("ferrokv runs on RocksDB and is not built for simulation");
    std::process::exit(2);
}
