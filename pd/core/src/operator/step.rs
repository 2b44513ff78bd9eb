//! One step of an operator and the test that a heartbeat shows it done.
//!
//! The completion rules are PD's (`pkg/schedule/operator/step.go` `IsFinish`): a new peer
//! counts once it exists in the wanted role and is no longer pending (it caught up), a
//! removal once the peer is gone, a leader transfer once the wanted store leads, and a split
//! once the region's range changed.

use ferrokv_core::types::{PeerId, StoreId};

use crate::heartbeat::RegionReport;
use crate::meta;

/// What one step asks the region's leader to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Move leadership to the voter on `to_store`.
    TransferLeader {
        from_store: StoreId,
        to_store: StoreId,
    },
    /// Add a learner `peer_id` on `store_id`.
    AddLearner { peer_id: PeerId, store_id: StoreId },
    /// Turn learner `peer_id` into a voter.
    PromoteLearner { peer_id: PeerId, store_id: StoreId },
    /// Add a voter `peer_id` on `store_id` directly.
    AddVoter { peer_id: PeerId, store_id: StoreId },
    /// Remove peer `peer_id` from `store_id`.
    RemovePeer { peer_id: PeerId, store_id: StoreId },
    /// Split the region; the store picks the key. Done once the range is no longer
    /// `[start_key, end_key)`.
    SplitRegion {
        start_key: Vec<u8>,
        end_key: Vec<u8>,
    },
}

impl Step {
    /// True if `report` shows this step done.
    pub fn is_finished(&self, report: &RegionReport) -> bool {
        let region = &report.region;
        match self {
            Step::TransferLeader { to_store, .. } => report.leader_store() == *to_store,
            Step::AddLearner { peer_id, store_id } => meta::peer_by_id(region, peer_id.0)
                .is_some_and(|peer| peer.store_id == store_id.0 && !report.is_pending(peer_id.0)),
            Step::PromoteLearner { peer_id, .. } => {
                meta::peer_by_id(region, peer_id.0).is_some_and(meta::is_voter)
            }
            Step::AddVoter { peer_id, store_id } => meta::peer_by_id(region, peer_id.0)
                .is_some_and(|peer| {
                    meta::is_voter(peer)
                        && peer.store_id == store_id.0
                        && !report.is_pending(peer_id.0)
                }),
            Step::RemovePeer { peer_id, .. } => meta::peer_by_id(region, peer_id.0).is_none(),
            Step::SplitRegion { start_key, end_key } => {
                region.start_key != *start_key || region.end_key != *end_key
            }
        }
    }

    /// How much this step raises the region's `conf_ver` when it is done.
    pub fn conf_ver_delta(&self) -> u64 {
        match self {
            Step::AddLearner { .. }
            | Step::PromoteLearner { .. }
            | Step::AddVoter { .. }
            | Step::RemovePeer { .. } => 1,
            Step::TransferLeader { .. } | Step::SplitRegion { .. } => 0,
        }
    }

    /// True if this step changes the region's `version` (a split does).
    pub fn changes_version(&self) -> bool {
        matches!(self, Step::SplitRegion { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::peer;
    use ferrokv_proto::metapb::{self, PeerRole};

    fn report(peers: Vec<metapb::Peer>, pending: Vec<metapb::Peer>) -> RegionReport {
        RegionReport {
            region: metapb::Region {
                id: 1,
                end_key: b"m".to_vec(),
                region_epoch: Some(metapb::RegionEpoch {
                    conf_ver: 3,
                    version: 2,
                }),
                peers: peers.clone(),
                ..Default::default()
            },
            leader: peers[0],
            down_peers: vec![],
            pending_peers: pending,
            approximate_size_bytes: 0,
            approximate_keys: 0,
            term: 1,
        }
    }

    #[test]
    fn a_learner_counts_once_it_caught_up() {
        let learner = peer(9, 4, PeerRole::Learner);
        let step = Step::AddLearner {
            peer_id: PeerId(9),
            store_id: StoreId(4),
        };
        let voter = peer(1, 1, PeerRole::Voter);
        assert!(!step.is_finished(&report(vec![voter], vec![])));
        assert!(!step.is_finished(&report(vec![voter, learner], vec![learner])));
        assert!(step.is_finished(&report(vec![voter, learner], vec![])));
        let promote = Step::PromoteLearner {
            peer_id: PeerId(9),
            store_id: StoreId(4),
        };
        assert!(!promote.is_finished(&report(vec![voter, learner], vec![])));
        let promoted = peer(9, 4, PeerRole::Voter);
        assert!(promote.is_finished(&report(vec![voter, promoted], vec![])));
    }

    #[test]
    fn removal_transfer_and_split_completion() {
        let a = peer(1, 1, PeerRole::Voter);
        let b = peer(2, 2, PeerRole::Voter);
        let remove = Step::RemovePeer {
            peer_id: PeerId(2),
            store_id: StoreId(2),
        };
        assert!(!remove.is_finished(&report(vec![a, b], vec![])));
        assert!(remove.is_finished(&report(vec![a], vec![])));
        let transfer = Step::TransferLeader {
            from_store: StoreId(1),
            to_store: StoreId(2),
        };
        assert!(!transfer.is_finished(&report(vec![a, b], vec![])));
        assert!(transfer.is_finished(&report(vec![b, a], vec![])));
        let split = Step::SplitRegion {
            start_key: vec![],
            end_key: b"m".to_vec(),
        };
        assert!(!split.is_finished(&report(vec![a], vec![])));
        let mut shrunk = report(vec![a], vec![]);
        shrunk.region.end_key = b"f".to_vec();
        assert!(split.is_finished(&shrunk));
        assert_eq!(remove.conf_ver_delta(), 1);
        assert_eq!(transfer.conf_ver_delta(), 0);
    }
}
