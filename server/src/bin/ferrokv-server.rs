//! `ferrokv-server`: one FerroKV store node on RocksDB.
//!
//! ```text
//! ferrokv-server --config store1.toml [--store-id N] [--addr host:port] [--data-dir DIR]
//! ```
//! Flags override the file. SIGINT/SIGTERM shut down gracefully; a storage failure stops the
//! process with a non-zero status so a supervisor restarts it and it recovers from disk.

#[cfg(not(madsim))]
mod real {
    use std::path::PathBuf;
    use std::process::ExitCode;

    use clap::Parser;
    use ferrokv_server::config::ServerConfig;
    use ferrokv_server::io::RocksEngine;

    #[derive(Parser)]
    #[command(name = "ferrokv-server", version, about = "A FerroKV store node")]
    struct Flags {
        /// TOML configuration file.
        #[arg(long)]
        config: PathBuf,
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

    fn load(flags: Flags) -> Result<ServerConfig, String> {
        let mut config = ServerConfig::from_file(flags.config).map_err(|e| e.to_string())?;
        if let Some(store_id) = flags.store_id {
            config.store_id = store_id;
        }
        if let Some(addr) = flags.addr {
            config.addr = addr;
        }
        if let Some(data_dir) = flags.data_dir {
            config.data_dir = data_dir;
        }
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
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
        let config = match load(Flags::parse()) {
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
            ferrokv_server::run(config, engine, seed(), shutdown_signal())
                .await
                .map_err(|e| e.to_string())
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
