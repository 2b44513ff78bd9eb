//! `ferrokv-pd`: one Placement Driver member on RocksDB.
//!
//! ```text
//! ferrokv-pd --data-dir DIR [--client-addr 127.0.0.1:2379] [--peer-addr 127.0.0.1:2380]
//! ferrokv-pd --id 2 --member 1=h1:2379/h1:2380 --member 2=h2:2379/h2:2380 \
//!            --member 3=h3:2379/h3:2380 --data-dir DIR
//! ```
//! Without `--member` it runs a single-member PD on the given addresses. SIGINT/SIGTERM
//! shut down gracefully.

#[cfg(not(madsim))]
mod real {
    use std::path::PathBuf;
    use std::process::ExitCode;

    use clap::Parser;
    use ferrokv_pd::config::{parse_member, PdConfig};
    use ferrokv_server::io::RocksEngine;

    #[derive(Parser)]
    #[command(
        name = "ferrokv-pd",
        version,
        about = "A FerroKV Placement Driver member"
    )]
    struct Flags {
        /// Data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// This member's id (with --member).
        #[arg(long, default_value_t = 1)]
        id: u64,
        /// Client address of a single-member PD.
        #[arg(long, default_value = "127.0.0.1:2379")]
        client_addr: String,
        /// Peer (Raft) address of a single-member PD.
        #[arg(long, default_value = "127.0.0.1:2380")]
        peer_addr: String,
        /// A member, `ID=CLIENT_ADDR/PEER_ADDR`; repeat for each (this one included).
        #[arg(long = "member")]
        members: Vec<String>,
        /// The cluster id (default: derived from the member list).
        #[arg(long)]
        cluster_id: Option<u64>,
        /// Regions reported at or above this many bytes are split by PD.
        #[arg(long)]
        region_split_size: Option<u64>,
        /// A store silent this long is down and its replicas are rebuilt elsewhere.
        #[arg(long)]
        max_store_down_time_ms: Option<u64>,
    }

    fn config(flags: Flags) -> Result<PdConfig, String> {
        let mut config = PdConfig::single(&flags.client_addr, &flags.peer_addr, flags.data_dir);
        if !flags.members.is_empty() {
            config.members = flags
                .members
                .iter()
                .map(|text| parse_member(text))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            config.member_id = flags.id;
        }
        config.cluster_id = flags.cluster_id;
        if let Some(bytes) = flags.region_split_size {
            config.schedule.region_split_size_bytes = bytes;
        }
        if let Some(ms) = flags.max_store_down_time_ms {
            config.schedule.max_store_down_time_ms = ms;
        }
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    pub fn main() -> ExitCode {
        ferrokv_server::logging::init();
        let config = match config(Flags::parse()) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("ferrokv-pd: {error}");
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
            ferrokv_pd::run_member(config, engine, seed(), clock, shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        });
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("ferrokv-pd: {error}");
                ExitCode::FAILURE
            }
        }
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
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    real::main()
}

#[cfg(madsim)]
fn main() {
    eprintln!("ferrokv-pd runs on RocksDB and is not built for simulation");
    std::process::exit(2);
}
