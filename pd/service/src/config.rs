//! PD member configuration: who the members are, where this one listens, where its data
//! lives, the Raft knobs of the PD region and the scheduling configuration.
//!
//! Members are fixed at first start (a static bootstrap of the PD region: peer id = member
//! id = store id of the member's Raft store). The cluster id, unless given, is a hash of the
//! member list, so every member derives the same id without talking to the others; once the
//! cluster is bootstrapped the replicated state's id is authoritative.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ferrokv_server::config::{BootstrapSection, RaftSection, ServerConfig};

/// The region holding the replicated PD state on the members' Raft stores.
pub const PD_REGION_ID: u64 = 1;

/// One PD member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Member id (non-zero): also its Raft peer id and store id in the PD region.
    pub id: u64,
    /// Display name (`pd{id}` unless given).
    pub name: String,
    /// Where clients and stores reach its `pdpb.PD` service (`host:port`).
    pub client_addr: String,
    /// Where the other members reach its Raft service (`host:port`).
    pub peer_addr: String,
}

/// A member's whole configuration.
#[derive(Clone, Debug)]
pub struct PdConfig {
    /// This member's id.
    pub member_id: u64,
    /// Every member, this one included.
    pub members: Vec<Member>,
    /// Data directory (the member's Raft store).
    pub data_dir: PathBuf,
    /// The cluster id; `None` derives it from the member list.
    pub cluster_id: Option<u64>,
    /// Raft knobs of the PD region.
    pub raft: RaftSection,
    /// Scheduling configuration of the leader.
    pub schedule: ferrokv_pd_core::Config,
    /// How often the leader runs its periodic work (TSO window, ids, schedulers).
    pub tick_interval: Duration,
}

/// A configuration problem, named precisely.
#[derive(Debug, thiserror::Error)]
pub enum PdConfigError {
    /// A `--member` value does not parse.
    #[error("bad member {0:?}: expected ID=CLIENT_ADDR/PEER_ADDR")]
    BadMember(String),
    /// Something is inconsistent.
    #[error("invalid PD configuration: {0}")]
    Invalid(String),
}

/// Parses `ID=CLIENT_ADDR/PEER_ADDR` (e.g. `1=127.0.0.1:2379/127.0.0.1:2380`).
pub fn parse_member(text: &str) -> Result<Member, PdConfigError> {
    let bad = || PdConfigError::BadMember(text.to_string());
    let (id, addrs) = text.split_once('=').ok_or_else(bad)?;
    let (client_addr, peer_addr) = addrs.split_once('/').ok_or_else(bad)?;
    let id: u64 = id.trim().parse().map_err(|_| bad())?;
    if id == 0 || client_addr.is_empty() || peer_addr.is_empty() {
        return Err(bad());
    }
    Ok(Member {
        id,
        name: format!("pd{id}"),
        client_addr: client_addr.to_string(),
        peer_addr: peer_addr.to_string(),
    })
}

impl PdConfig {
    /// A single-member PD (the playground's).
    pub fn single(client_addr: &str, peer_addr: &str, data_dir: PathBuf) -> PdConfig {
        PdConfig {
            member_id: 1,
            members: vec![Member {
                id: 1,
                name: "pd1".into(),
                client_addr: client_addr.into(),
                peer_addr: peer_addr.into(),
            }],
            data_dir,
            cluster_id: None,
            raft: RaftSection::default(),
            schedule: ferrokv_pd_core::Config::default(),
            tick_interval: Duration::from_millis(50),
        }
    }

    /// This member.
    pub fn me(&self) -> &Member {
        self.members
            .iter()
            .find(|member| member.id == self.member_id)
            .expect("validated: this member is listed")
    }

    /// Checks ids, addresses and the scheduling configuration.
    pub fn validate(&self) -> Result<(), PdConfigError> {
        let invalid = |message: String| Err(PdConfigError::Invalid(message));
        let mut ids: Vec<u64> = self.members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.members.len() || ids.contains(&0) {
            return invalid("member ids must be distinct and non-zero".into());
        }
        if !ids.contains(&self.member_id) {
            return invalid(format!(
                "member {} is not in the member list",
                self.member_id
            ));
        }
        if self.cluster_id == Some(0) {
            return invalid("the cluster id must be non-zero".into());
        }
        if self.tick_interval.is_zero() {
            return invalid("tick interval must be positive".into());
        }
        if let Err(error) = self.schedule.validate() {
            return invalid(error.to_string());
        }
        self.store_config()
            .validate()
            .map(|_| ())
            .map_err(|error| PdConfigError::Invalid(error.to_string()))
    }

    /// The cluster id this member starts with (FNV-1a over the sorted member list unless
    /// configured; never 0).
    pub fn derived_cluster_id(&self) -> u64 {
        if let Some(id) = self.cluster_id {
            return id;
        }
        let mut members: Vec<&Member> = self.members.iter().collect();
        members.sort_by_key(|member| member.id);
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for member in members {
            let text = format!("{}={};", member.id, member.peer_addr);
            for byte in text.bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        (hash >> 1).max(1)
    }

    /// The configuration of this member's Raft store: the PD region bootstrapped on every
    /// member, peers reached at their peer addresses.
    pub fn store_config(&self) -> ServerConfig {
        let stores: BTreeMap<u64, String> = self
            .members
            .iter()
            .map(|member| (member.id, member.peer_addr.clone()))
            .collect();
        let peer_addr = self
            .members
            .iter()
            .find(|member| member.id == self.member_id)
            .map_or_else(String::new, |member| member.peer_addr.clone());
        ServerConfig {
            store_id: self.member_id,
            addr: peer_addr,
            peer_addr: None,
            data_dir: self.data_dir.clone(),
            raft: self.raft.clone(),
            stores,
            bootstrap: Some(BootstrapSection {
                region_id: PD_REGION_ID,
                peers: self.members.iter().map(|m| [m.id, m.id]).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> PdConfig {
        let mut config = PdConfig::single("a:1", "a:2", "d".into());
        config.members = (1..=3)
            .map(|id| parse_member(&format!("{id}=h{id}:2379/h{id}:2380")).unwrap())
            .collect();
        config
    }

    #[test]
    fn members_parse_and_bad_ones_are_named() {
        let member = parse_member("2=127.0.0.1:2379/127.0.0.1:2380").unwrap();
        assert_eq!(member.id, 2);
        assert_eq!(member.name, "pd2");
        assert_eq!(member.peer_addr, "127.0.0.1:2380");
        for bad in ["", "x=a/b", "0=a/b", "1=a", "1=/b"] {
            assert!(parse_member(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_member_derives_the_same_cluster_id() {
        let mut config = three();
        let first = config.derived_cluster_id();
        config.member_id = 3;
        config.members.reverse();
        assert_eq!(config.derived_cluster_id(), first);
        assert_ne!(first, 0);
        config.members[0].peer_addr = "elsewhere:1".into();
        assert_ne!(config.derived_cluster_id(), first);
        config.cluster_id = Some(7);
        assert_eq!(config.derived_cluster_id(), 7);
    }

    #[test]
    fn validation_names_mistakes() {
        let mut config = three();
        assert!(config.validate().is_ok());
        let region = config.store_config().bootstrap_region().unwrap();
        assert_eq!(region.peers.len(), 3);
        config.member_id = 9;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("member 9"));
        config.member_id = 1;
        config.members.push(config.members[0].clone());
        assert!(config.validate().is_err());
    }
}
