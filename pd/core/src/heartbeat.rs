//! Validating a store's `RegionHeartbeatRequest` into a `RegionReport`.
//!
//! Input: the wire request and the replicated state (to check the reporting store).
//! Output: a `RegionReport` whose region passed `meta::validate_region` and whose leader is
//! one of its peers, or a typed `HeartbeatError` (the service answers it in the response
//! header and keeps the stream open, as PD does).

use ferrokv_core::types::StoreId;
use ferrokv_proto::metapb::{self, StoreState};
use ferrokv_proto::pdpb;

use crate::meta::{self, MetaError};
use crate::state::PdState;

/// One validated region heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionReport {
    /// The region as its leader sees it.
    pub region: metapb::Region,
    /// The reporting peer (the leader), one of `region.peers`.
    pub leader: metapb::Peer,
    /// Peers the leader considers down, with how long.
    pub down_peers: Vec<pdpb::PeerStats>,
    /// Peers still catching up (not yet usable as followers).
    pub pending_peers: Vec<metapb::Peer>,
    /// Approximate region size in bytes.
    pub approximate_size_bytes: u64,
    /// Approximate number of keys.
    pub approximate_keys: u64,
    /// The leader's Raft term (0 if not reported).
    pub term: u64,
}

impl RegionReport {
    /// True if the peer with `peer_id` is reported pending.
    pub fn is_pending(&self, peer_id: u64) -> bool {
        self.pending_peers.iter().any(|peer| peer.id == peer_id)
    }

    /// True if the peer with `peer_id` is reported down.
    pub fn is_down(&self, peer_id: u64) -> bool {
        self.down_peers
            .iter()
            .any(|stats| stats.peer.as_ref().is_some_and(|peer| peer.id == peer_id))
    }

    /// The leader's store.
    pub fn leader_store(&self) -> StoreId {
        StoreId(self.leader.store_id)
    }
}

/// Why a heartbeat was rejected before looking at its epoch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    /// The cluster is not bootstrapped.
    #[error("cluster is not bootstrapped")]
    NotBootstrapped,
    /// The request has no region.
    #[error("heartbeat carries no region")]
    MissingRegion,
    /// The request has no leader.
    #[error("heartbeat carries no leader")]
    MissingLeader,
    /// The region is structurally invalid.
    #[error("invalid region: {0}")]
    InvalidRegion(MetaError),
    /// The leader is not one of the region's peers.
    #[error("leader peer {0} is not in the region")]
    LeaderNotInRegion(u64),
    /// The leader's store is unknown.
    #[error("store {0} not found")]
    UnknownStore(StoreId),
    /// The leader's store is a tombstone.
    #[error("store {0} is a tombstone")]
    TombstoneStore(StoreId),
}

/// Validates `request` against `state`.
pub fn validate(
    state: &PdState,
    request: &pdpb::RegionHeartbeatRequest,
) -> Result<RegionReport, HeartbeatError> {
    if !state.is_bootstrapped() {
        return Err(HeartbeatError::NotBootstrapped);
    }
    let region = request
        .region
        .as_ref()
        .ok_or(HeartbeatError::MissingRegion)?;
    let leader = request
        .leader
        .as_ref()
        .ok_or(HeartbeatError::MissingLeader)?;
    meta::validate_region(region).map_err(HeartbeatError::InvalidRegion)?;
    if meta::peer_by_id(region, leader.id) != Some(leader) {
        return Err(HeartbeatError::LeaderNotInRegion(leader.id));
    }
    let store_id = StoreId(leader.store_id);
    match state.store(store_id) {
        None => return Err(HeartbeatError::UnknownStore(store_id)),
        Some(store) if store.state() == StoreState::Tombstone => {
            return Err(HeartbeatError::TombstoneStore(store_id));
        }
        Some(_) => {}
    }
    Ok(RegionReport {
        region: region.clone(),
        leader: *leader,
        down_peers: request.down_peers.clone(),
        pending_peers: request.pending_peers.clone(),
        approximate_size_bytes: request.approximate_size,
        approximate_keys: request.approximate_keys,
        term: request.term,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{bootstrapped, first_region};

    fn request() -> pdpb::RegionHeartbeatRequest {
        let region = first_region();
        pdpb::RegionHeartbeatRequest {
            leader: Some(region.peers[0]),
            region: Some(region),
            approximate_size: 10,
            term: 3,
            ..Default::default()
        }
    }

    #[test]
    fn a_good_heartbeat_becomes_a_report() {
        let report = validate(&bootstrapped(), &request()).unwrap();
        assert_eq!(report.leader_store(), StoreId(1));
        assert_eq!(report.approximate_size_bytes, 10);
        assert_eq!(report.term, 3);
        assert!(!report.is_pending(3));
    }

    #[test]
    fn malformed_heartbeats_are_typed_errors() {
        let state = bootstrapped();
        let mut no_leader = request();
        no_leader.leader = None;
        assert_eq!(
            validate(&state, &no_leader),
            Err(HeartbeatError::MissingLeader)
        );
        let mut stranger = request();
        stranger.leader.as_mut().unwrap().id = 99;
        assert_eq!(
            validate(&state, &stranger),
            Err(HeartbeatError::LeaderNotInRegion(99))
        );
        assert_eq!(
            validate(&crate::state::PdState::new(), &request()),
            Err(HeartbeatError::NotBootstrapped)
        );
        let mut unknown_store = request();
        unknown_store.region.as_mut().unwrap().peers[0].store_id = 5;
        unknown_store.leader.as_mut().unwrap().store_id = 5;
        assert_eq!(
            validate(&state, &unknown_store),
            Err(HeartbeatError::UnknownStore(StoreId(5)))
        );
    }
}
