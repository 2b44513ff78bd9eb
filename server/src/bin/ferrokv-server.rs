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
    use std::path::PathBuf;
    use std::process::ExitCode;

    use clap::Parser;
    use ferrokv_server::config::ServerConfig;
    use ferrokv_server::io::RocksEngine;
    use ferrokv_server::pd::{run_with_pd, PdOptions};

    #[derive(Parser)]
    #[command(name = "ferrokv-server", version, about = "A FerroKV store node")]
    struct Flags {
        /// TOML configuration file (required without --pd).
        #[arg(long)]
        config: Option<PathBuf>,
        /// PD endpoints, comma-separated (`host:port,...`): join the cluster through PD.
        #[arg(long, value_delimiter = ',')]
        pd: Vec<String>,
        /// With --pd: split a region this store leads once it holds this many bytes.
        #[arg(long)]
        split_size: Option<u64>,
        /// Override `store_id`.
        #[arg(long)]
        store_id: Option<u64>,
        /// Override `addr` (gRPC listen address).
        #[arg(long)]
        addr: Option<String>,
        /// Override `data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    }

    fn load(flags: &Flags) -> Result<ServerConfig, String> {
        let mut config = match (&flags.config, flags.pd.is_empty()) {
            (Some(path), _) => ServerConfig::from_file(path.clone()).map_err(|e| e.to_string())?,
            (None, false) => ServerConfig {
                store_id: 0,
                addr: "127.0.0.1:20160".into(),
                data_dir: "data/store".into(),
                raft: Default::default(),
                stores: Default::default(),
                bootstrap: None,
            },
            (None, true) => return Err("give --config FILE, or --pd ADDR to join via PD".into()),
        };
        if let Some(store_id) = flags.store_id {
            config.store_id = store_id;
        }
        if let Some(addr) = &flags.addr {
            config.addr = addr.clone();
        }
        if let Some(data_dir) = &flags.data_dir {
            config.data_dir = data_dir.clone();
        }
        if flags.pd.is_empty() {
            config.validate().map_err(|e| e.to_string())?;
        }
        Ok(config)
    }

    fn pd_options(flags: &Flags) -> Option<PdOptions> {
        if flags.pd.is_empty() {
            return None;
        }
        let mut options = PdOptions::new(flags.pd.clone());
        if let Some(bytes) = flags.split_size {
            options.split_size_bytes = bytes.max(1);
        }
        Some(options)
    }

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
        let flags = Flags::parse();
        let pd = pd_options(&flags);
        let config = match load(&flags) {
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
