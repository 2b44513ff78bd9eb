//! The store's command line: flags, and how they combine with the config file. In the
//! library (not the binary) so tests and the fuzzer reach the same code the binary runs.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{ConfigError, ServerConfig};
use crate::pd::PdOptions;

/// `ferrokv-server` flags. Flags override the config file.
#[derive(Parser, Debug)]
#[command(name = "ferrokv-server", version, about = "A FerroKV store node")]
pub struct StoreFlags {
    /// TOML configuration file (required without --pd).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// PD endpoints, comma-separated (`host:port,...`): join the cluster through PD.
    #[arg(long, value_delimiter = ',')]
    pub pd: Vec<String>,
    /// With --pd: split a region this store leads once it holds this many bytes.
    #[arg(long)]
    pub split_size: Option<u64>,
    /// Override `store_id`.
    #[arg(long)]
    pub store_id: Option<u64>,
    /// Override `addr` (gRPC listen address).
    #[arg(long)]
    pub addr: Option<String>,
    /// Override `peer_addr` (listen address for other stores' Raft traffic).
    #[arg(long)]
    pub peer_addr: Option<String>,
    /// Override `data_dir`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// The configuration `flags` ask for; `read_file` reads `--config` (the binary passes
/// `ServerConfig::from_file`). Without `--pd` the result is validated.
pub fn resolve_config(
    flags: &StoreFlags,
    read_file: impl FnOnce(PathBuf) -> Result<ServerConfig, ConfigError>,
) -> Result<ServerConfig, String> {
    let mut config = match (&flags.config, flags.pd.is_empty()) {
        (Some(path), _) => read_file(path.clone()).map_err(|e| e.to_string())?,
        (None, false) => ServerConfig {
            store_id: 0,
            addr: "127.0.0.1:20160".into(),
            peer_addr: None,
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
    if let Some(peer_addr) = &flags.peer_addr {
        config.peer_addr = Some(peer_addr.clone());
    }
    if let Some(data_dir) = &flags.data_dir {
        config.data_dir = data_dir.clone();
    }
    if flags.pd.is_empty() {
        config.validate().map_err(|e| e.to_string())?;
    }
    Ok(config)
}

/// PD options from the flags, if the store joins through PD.
pub fn pd_options(flags: &StoreFlags) -> Option<PdOptions> {
    if flags.pd.is_empty() {
        return None;
    }
    let mut options = PdOptions::new(flags.pd.clone());
    if let Some(bytes) = flags.split_size {
        options.split_size_bytes = bytes.max(1);
    }
    Some(options)
}
