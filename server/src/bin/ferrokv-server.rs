//! `ferrokv-server`: one FerroKV store node on RocksDB.
//!
//! ```text
//! ferrokv-server --pd 127.0.0.1:2379 --addr 127.0.0.1:20160 --data-dir DIR   # join via PD
//! ferrokv-server --config store1.toml [--store-id N] [--addr host:port] [--data-dir DIR]
//! ```
//! With `--pd` the store gets its id from PD (kept in the data directory), finds other
//! stores through PD and follows PD's scheduling; a config file is optional then. Without
//! it, the file's static store table and bootstrap section are used (tests). Flags override
//! the file. SIGINT/SIGTERM shut down gracefully; a storage failure stops the process with a
//! non-zero status so a supervisor restarts it and it recovers from disk.

#[cfg(not(madsim))]
mod real {
    use std::process::ExitCode;

    use clap::Parser;
    use ferrokv_server::cli::{pd_options, resolve_config, StoreFlags};
    use ferrokv_server::config::ServerConfig;
    use ferrokv_server::io::RocksEngine;
    use ferrokv_server::pd::run_with_pd;

    fn seed() -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ u64::from(std::process::id()).rotate_left(32)
    }

    async fn shutdown_signal() {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutdown requested");
    }

    pub fn main() -> ExitCode {
        ferrokv_server::logging::init();
        let flags = StoreFlags::parse();
        let pd = pd_options(&flags);
        let config = match resolve_config(&flags, ServerConfig::from_file) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("ferrokv-server: {error}");
                return ExitCode::from(2);
            }
        };
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
        let result = runtime.block_on(async move {
            std::fs::create_dir_all(&config.data_dir)
                .map_err(|e| format!("creating {}: {e}", config.data_dir.display()))?;
            let engine =
                RocksEngine::open(&config.data_dir.join("db")).map_err(|e| e.to_string())?;
            let clock = ferrokv_server::clock::RuntimeClock::new();
            let result = match pd {
                Some(pd) => run_with_pd(config, pd, engine, seed(), clock, shutdown_signal()).await,
                None => ferrokv_server::run(config, engine, seed(), shutdown_signal()).await,
            };
            result.map_err(|e| e.to_string())
        });
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "ferrokv-server stopped");
                eprintln!("ferrokv-server: {error}");
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
    eprintln!("ferrokv-server runs on RocksDB and is not built for simulation");
    std::process::exit(2);
}
