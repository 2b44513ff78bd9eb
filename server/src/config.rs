//! Server configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! store_id = 1
//! addr = "127.0.0.1:20160"
//! data_dir = "data/store1"
//!
//! [raft]
//! tick_interval_ms = 100
//! election_tick = 10
//!
//! # Until PD exists: where the other stores are, and the region to bootstrap.
//! [stores]
//! 1 = "127.0.0.1:20160"
//! 2 = "127.0.0.1:20161"
//!
//! [bootstrap]
//! region_id = 1
//! peers = [[1, 1], [2, 2]]   # [peer_id, store_id]
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferrokv_core::raft::RaftConfig;
use ferrokv_proto::metapb;
use serde::Deserialize;

/// Raft tuning knobs exposed in the file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSection {
    /// Base tick in milliseconds.
    pub tick_interval_ms: u64,
    /// Election timeout in ticks.
    pub election_tick: usize,
    /// Heartbeat interval in ticks.
    pub heartbeat_tick: usize,
    /// Compact the log once this many applied entries are kept.
    pub log_gc_count_threshold: u64,
    /// Largest clock-rate difference between nodes the leader lease tolerates, in parts per
    /// thousand (the lease is derived from it and the election timeout).
    pub max_clock_drift_permille: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        let defaults = RaftConfig::default();
        RaftSection {
            tick_interval_ms: defaults.tick_interval.as_millis() as u64,
            election_tick: defaults.election_tick,
            heartbeat_tick: defaults.heartbeat_tick,
            log_gc_count_threshold: defaults.log_gc_count_threshold,
            max_clock_drift_permille: defaults.max_clock_drift_permille,
        }
    }
}

/// A statically bootstrapped region (used until PD exists, and by tests).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSection {
    /// The region id.
    pub region_id: u64,
    /// `[peer_id, store_id]` pairs.
    pub peers: Vec<[u64; 2]>,
}

/// Where a store serves: clients (and PD's record of the store) at `client`, other stores'
/// Raft traffic at `peer` (the same address unless the store was given its own peer port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addresses {
    /// The client address (`tikvpb.Tikv`, admin).
    pub client: String,
    /// The peer address (`FerroRaft`: Raft messages, snapshots, deadlock detection).
    pub peer: String,
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// This store's id (non-zero).
    pub store_id: u64,
    /// gRPC listen address for clients (`tikvpb.Tikv`, admin).
    pub addr: String,
    /// gRPC listen address for other stores' Raft traffic (`FerroRaft`), if not `addr`: a
    /// port of its own can be firewalled from clients (peers are not authenticated).
    #[serde(default)]
    pub peer_addr: Option<String>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Raft tuning.
    #[serde(default)]
    pub raft: RaftSection,
    /// Other stores' Raft addresses by id (their `peer_addr`, or `addr` if they have none;
    /// static routing until PD).
    #[serde(default, deserialize_with = "numeric_keys")]
    pub stores: BTreeMap<u64, String>,
    /// A region to create on first start.
    pub bootstrap: Option<BootstrapSection>,
}

/// TOML table keys are strings; store ids are numbers.
fn numeric_keys<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<u64, String>, D::Error> {
    let raw = BTreeMap::<String, String>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|(key, value)| {
            let id = key.parse::<u64>().map_err(|_| {
                serde::de::Error::custom(format!("store id {key:?} is not a number"))
            })?;
            Ok((id, value))
        })
        .collect()
}

/// A configuration problem, named precisely.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ServerConfig {
    /// Parses TOML text.
    pub fn from_toml(text: &str, path: PathBuf) -> Result<ServerConfig, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse { path, source })
    }

    /// Reads and parses a file.
    pub fn from_file(path: PathBuf) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        ServerConfig::from_toml(&text, path)
    }

    /// Checks values and relations; returns the Raft configuration.
    pub fn validate(&self) -> Result<RaftConfig, ConfigError> {
        if self.store_id == 0 {
            return Err(ConfigError::Invalid("store_id must be non-zero".into()));
        }
        if let Some(bootstrap) = &self.bootstrap {
            check_bootstrap_ids(bootstrap)?;
            let here = bootstrap
                .peers
                .iter()
                .any(|[_, store]| *store == self.store_id);
            if bootstrap.region_id == 0 || !here {
                return Err(ConfigError::Invalid(
                    "bootstrap needs a non-zero region_id and a peer on this store".into(),
                ));
            }
            for [_, store] in &bootstrap.peers {
                if *store != self.store_id && !self.stores.contains_key(store) {
                    return Err(ConfigError::Invalid(format!(
                        "no address for store {store}"
                    )));
                }
            }
        }
        let raft = RaftConfig {
            tick_interval: Duration::from_millis(self.raft.tick_interval_ms),
            election_tick: self.raft.election_tick,
            heartbeat_tick: self.raft.heartbeat_tick,
            log_gc_count_threshold: self.raft.log_gc_count_threshold,
            log_gc_count_limit: self
                .raft
                .log_gc_count_threshold
                .max(RaftConfig::default().log_gc_count_limit),
            max_clock_drift_permille: self.raft.max_clock_drift_permille,
            ..RaftConfig::default()
        }
        .with_safe_lease();
        raft.validate().map_err(ConfigError::Invalid)?;
        Ok(raft)
    }

    /// The client and peer listen addresses: each `ip:port` with a non-zero port, and a
    /// separate peer address never the client port under another spelling (`0.0.0.0:P`
    /// and `127.0.0.1:P` would be two binds of one port).
    pub fn listen_addresses(&self) -> Result<(SocketAddr, SocketAddr), ConfigError> {
        let parse = |what: &str, text: &str| {
            let address: SocketAddr = text.parse().map_err(|_| {
                ConfigError::Invalid(format!("{what} {text:?} is not an ip:port address"))
            })?;
            if address.port() == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{what} {text:?} needs a port"
                )));
            }
            Ok(address)
        };
        let client = parse("addr", &self.addr)?;
        let peer = match &self.peer_addr {
            Some(text) => parse("peer_addr", text)?,
            None => client,
        };
        if peer != client && peer.port() == client.port() {
            let overlap = peer.ip() == client.ip()
                || peer.ip().is_unspecified()
                || client.ip().is_unspecified();
            if overlap {
                return Err(ConfigError::Invalid(format!(
                    "peer_addr {peer} and addr {client} are the same port"
                )));
            }
        }
        Ok((client, peer))
    }

    /// Where this store serves clients and peers.
    pub fn addresses(&self) -> Addresses {
        Addresses {
            client: self.addr.clone(),
            peer: self.peer_addr.clone().unwrap_or_else(|| self.addr.clone()),
        }
    }

    /// The bootstrap region, if configured.
    pub fn bootstrap_region(&self) -> Option<metapb::Region> {
        let bootstrap = self.bootstrap.as_ref()?;
        let peers = bootstrap
            .peers
            .iter()
            .map(|[id, store_id]| metapb::Peer {
                id: *id,
                store_id: *store_id,
                ..Default::default()
            })
            .collect();
        Some(metapb::Region {
            id: bootstrap.region_id,
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers,
            ..Default::default()
        })
    }
}

/// Bootstrap peers need non-zero, distinct peer ids and one peer per store.
fn check_bootstrap_ids(bootstrap: &BootstrapSection) -> Result<(), ConfigError> {
    let mut peer_ids: Vec<u64> = bootstrap.peers.iter().map(|[peer, _]| *peer).collect();
    let mut store_ids: Vec<u64> = bootstrap.peers.iter().map(|[_, store]| *store).collect();
    if peer_ids.contains(&0) || store_ids.contains(&0) {
        return Err(ConfigError::Invalid(
            "bootstrap peer and store ids must be non-zero".into(),
        ));
    }
    peer_ids.sort_unstable();
    peer_ids.dedup();
    store_ids.sort_unstable();
    store_ids.dedup();
    if peer_ids.len() != bootstrap.peers.len() || store_ids.len() != bootstrap.peers.len() {
        return Err(ConfigError::Invalid(
            "bootstrap peers need distinct peer ids and one peer per store".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review findings (issue 11): listen addresses were checked only when the listeners
    /// started (after joining PD), and one port spelled two ways was bound twice.
    #[test]
    fn listen_addresses_are_checked_up_front() {
        let config = |addr: &str, peer: Option<&str>| ServerConfig {
            store_id: 1,
            addr: addr.into(),
            peer_addr: peer.map(str::to_string),
            data_dir: "d".into(),
            raft: Default::default(),
            stores: Default::default(),
            bootstrap: None,
        };
        let (client, peer) = config("127.0.0.1:20160", Some("127.0.0.1:20260"))
            .listen_addresses()
            .unwrap();
        assert_eq!((client.port(), peer.port()), (20160, 20260));
        let same = config("127.0.0.1:20160", None).listen_addresses().unwrap();
        assert_eq!(same.0, same.1, "no peer_addr: one listener");
        let refused = [
            config("localhost:20160", None),
            config("127.0.0.1:0", None),
            config("127.0.0.1:20160", Some("0.0.0.0:20160")),
            config("127.0.0.1:20160", Some("peer")),
        ];
        for bad in refused {
            let error = bad.listen_addresses().unwrap_err().to_string();
            assert!(error.contains("addr"), "{error}");
        }
    }

    const EXAMPLE: &str = r#"
        store_id = 1
        addr = "127.0.0.1:20160"
        data_dir = "data/store1"
        [raft]
        tick_interval_ms = 50
        [stores]
        2 = "127.0.0.1:20161"
        [bootstrap]
        region_id = 1
        peers = [[1, 1], [2, 2]]
    "#;

    #[test]
    fn example_parses_and_validates() {
        let config = ServerConfig::from_toml(EXAMPLE, "example".into()).unwrap();
        let raft = config.validate().unwrap();
        assert_eq!(raft.tick_interval, Duration::from_millis(50));
        let region = config.bootstrap_region().unwrap();
        assert_eq!(region.peers.len(), 2);
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = EXAMPLE.replace("tick_interval_ms", "tick_ms");
        let error = ServerConfig::from_toml(&unknown, "x".into())
            .unwrap_err()
            .to_string();
        assert!(error.contains("tick_ms"), "{error}");
        let no_address = EXAMPLE.replace("2 = \"127.0.0.1:20161\"", "");
        let error = ServerConfig::from_toml(&no_address, "x".into())
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            error.to_string().contains("no address for store 2"),
            "{error}"
        );
        for bad in [
            "peers = [[0, 1], [2, 2]]",
            "peers = [[1, 1], [1, 2]]",
            "peers = [[1, 1], [2, 1]]",
        ] {
            let text = EXAMPLE.replace("peers = [[1, 1], [2, 2]]", bad);
            let error = ServerConfig::from_toml(&text, "x".into())
                .unwrap()
                .validate()
                .unwrap_err();
            assert!(error.to_string().contains("bootstrap"), "{bad}: {error}");
        }
    }

    #[test]
    fn lease_is_derived_from_the_election_bound() {
        let config = ServerConfig::from_toml(EXAMPLE, "example".into()).unwrap();
        let raft = config.validate().unwrap();
        assert_eq!(raft.lease, raft.lease_bound());
        assert!(raft.lease < raft.tick_interval * (raft.election_tick as u32 - 1));
    }
}
