//! Helpers over the wire metadata types (`metapb::Region`, `metapb::Peer`): epoch and range
//! views, role tests, and the structural validation every region must pass before it enters
//! the replicated state. Inputs: wire messages. Outputs: typed views or a `MetaError`.
//! Invariant: a region that passed `validate_region` has an epoch, a non-empty range, at
//! least one peer, and no two peers sharing an id or a store.

use std::collections::BTreeSet;

use ferrokv_core::types::{KeyRange, RegionEpoch, RegionId, StoreId};
use ferrokv_proto::metapb::{self, PeerRole};

use crate::limits::REGION_PEERS_MAX;

/// Why a region or peer from the wire is structurally unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// Region id 0 is reserved.
    #[error("region id is 0")]
    ZeroRegionId,
    /// The region carries no epoch.
    #[error("region {0} has no epoch")]
    MissingEpoch(RegionId),
    /// `end_key` is bounded and not above `start_key`.
    #[error("region {0} has an empty or inverted key range")]
    BadRange(RegionId),
    /// No peers, or more than `REGION_PEERS_MAX`.
    #[error("region {region_id} has {count} peers")]
    PeerCount { region_id: RegionId, count: usize },
    /// A peer has id 0 or store id 0.
    #[error("region {0} has a peer with a zero id or store id")]
    ZeroPeerId(RegionId),
    /// Two peers share an id or a store.
    #[error("region {0} has duplicate peer ids or stores")]
    DuplicatePeer(RegionId),
    /// A peer role outside the `PeerRole` enum.
    #[error("region {0} has a peer with an unknown role")]
    UnknownRole(RegionId),
}

/// The region's id as a newtype.
pub fn region_id(region: &metapb::Region) -> RegionId {
    RegionId(region.id)
}

/// The region's epoch; a missing epoch reads as zero (validated regions always have one).
pub fn epoch(region: &metapb::Region) -> RegionEpoch {
    RegionEpoch::from(region.region_epoch)
}

/// The region's key range.
pub fn range(region: &metapb::Region) -> KeyRange {
    KeyRange {
        start: region.start_key.clone(),
        end: region.end_key.clone(),
    }
}

/// True if `key` lies in `[start_key, end_key)`.
pub fn contains_key(region: &metapb::Region, key: &[u8]) -> bool {
    key >= region.start_key.as_slice()
        && (region.end_key.is_empty() || key < region.end_key.as_slice())
}

/// True for peers that vote (a plain voter, or one entering a joint configuration).
pub fn is_voter(peer: &metapb::Peer) -> bool {
    matches!(
        PeerRole::try_from(peer.role),
        Ok(PeerRole::Voter | PeerRole::IncomingVoter)
    )
}

/// True for learners (non-voting peers).
pub fn is_learner(peer: &metapb::Peer) -> bool {
    !is_voter(peer)
}

/// The peer of `region` on `store_id`, if any.
pub fn peer_on_store(region: &metapb::Region, store_id: StoreId) -> Option<&metapb::Peer> {
    region.peers.iter().find(|peer| peer.store_id == store_id.0)
}

/// The peer of `region` with id `peer_id`, if any.
pub fn peer_by_id(region: &metapb::Region, peer_id: u64) -> Option<&metapb::Peer> {
    region.peers.iter().find(|peer| peer.id == peer_id)
}

/// Number of voting peers.
pub fn voter_count(region: &metapb::Region) -> usize {
    region.peers.iter().filter(|peer| is_voter(peer)).count()
}

/// The largest id (region or peer) the region mentions.
pub fn max_id(region: &metapb::Region) -> u64 {
    let peer_max = region.peers.iter().map(|peer| peer.id).max().unwrap_or(0);
    peer_max.max(region.id)
}

/// Checks the structural rules every stored region obeys.
pub fn validate_region(region: &metapb::Region) -> Result<(), MetaError> {
    let id = region_id(region);
    if region.id == 0 {
        return Err(MetaError::ZeroRegionId);
    }
    if region.region_epoch.is_none() {
        return Err(MetaError::MissingEpoch(id));
    }
    if !region.end_key.is_empty() && region.start_key >= region.end_key {
        return Err(MetaError::BadRange(id));
    }
    let count = region.peers.len();
    if count == 0 || count > REGION_PEERS_MAX {
        return Err(MetaError::PeerCount {
            region_id: id,
            count,
        });
    }
    validate_peers(id, &region.peers)
}

fn validate_peers(id: RegionId, peers: &[metapb::Peer]) -> Result<(), MetaError> {
    let mut peer_ids = BTreeSet::new();
    let mut store_ids = BTreeSet::new();
    for peer in peers {
        if peer.id == 0 || peer.store_id == 0 {
            return Err(MetaError::ZeroPeerId(id));
        }
        if PeerRole::try_from(peer.role).is_err() {
            return Err(MetaError::UnknownRole(id));
        }
        if !peer_ids.insert(peer.id) || !store_ids.insert(peer.store_id) {
            return Err(MetaError::DuplicatePeer(id));
        }
    }
    assert_eq!(peer_ids.len(), peers.len());
    Ok(())
}

/// Builds a peer (test and planner helper).
pub fn peer(id: u64, store_id: u64, role: PeerRole) -> metapb::Peer {
    assert!(id != 0 && store_id != 0, "peer ids are never 0");
    metapb::Peer {
        id,
        store_id,
        role: role as i32,
        is_witness: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> metapb::Region {
        metapb::Region {
            id: 2,
            start_key: b"a".to_vec(),
            end_key: b"m".to_vec(),
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: vec![peer(3, 1, PeerRole::Voter), peer(4, 2, PeerRole::Learner)],
            ..Default::default()
        }
    }

    #[test]
    fn a_well_formed_region_passes_and_reports_its_views() {
        let region = region();
        assert_eq!(validate_region(&region), Ok(()));
        assert_eq!(voter_count(&region), 1);
        assert!(is_learner(peer_on_store(&region, StoreId(2)).unwrap()));
        assert!(contains_key(&region, b"b"));
        assert!(!contains_key(&region, b"m"));
        assert_eq!(max_id(&region), 4);
    }

    #[test]
    fn structural_faults_are_typed() {
        let mut bad = region();
        bad.end_key = b"a".to_vec();
        assert_eq!(validate_region(&bad), Err(MetaError::BadRange(RegionId(2))));
        let mut bad = region();
        bad.peers[1].store_id = 1;
        assert_eq!(
            validate_region(&bad),
            Err(MetaError::DuplicatePeer(RegionId(2)))
        );
        let mut bad = region();
        bad.region_epoch = None;
        assert_eq!(
            validate_region(&bad),
            Err(MetaError::MissingEpoch(RegionId(2)))
        );
        let mut bad = region();
        bad.peers.clear();
        assert!(matches!(
            validate_region(&bad),
            Err(MetaError::PeerCount { count: 0, .. })
        ));
        let mut bad = region();
        bad.peers[0].role = 9;
        assert_eq!(
            validate_region(&bad),
            Err(MetaError::UnknownRole(RegionId(2)))
        );
    }
}
