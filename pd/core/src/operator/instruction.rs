//! What to send back in a `RegionHeartbeatResponse`: a pure mapping from a step (or a stale
//! peer to destroy) and the region's latest report to the pdpb message.
//!
//! Mapping (PD's `GetCmd`, single-step conf changes, no joint consensus):
//! - `AddLearner`      -> `change_peer { peer (Learner), AddLearnerNode }`
//! - `AddVoter`        -> `change_peer { peer (Voter), AddNode }`
//! - `PromoteLearner`  -> `change_peer { peer (Voter), AddNode }` on the existing learner
//! - `RemovePeer`      -> `change_peer { peer, RemoveNode }`; if the peer is the leader,
//!   `transfer_leader` to another healthy voter first (a leader cannot remove itself): every
//!   healthy voter is offered in `peers`, and the leader takes the first it finds ready
//! - `TransferLeader`  -> `transfer_leader { peer, peers: [peer] }`
//! - `SplitRegion`     -> `split_region { policy: APPROXIMATE, keys: [] }` (the store picks
//!   the key, then asks for ids with `AskBatchSplit`)
//!
//! Every response carries `header.cluster_id`, `region_id`, PD's view of `region_epoch` (the
//! report's) and `target_peer` (the reporting leader); the store proposes the command with
//! that epoch, so a command built on a stale view fails the store's epoch check.

use ferrokv_proto::eraftpb::ConfChangeType;
use ferrokv_proto::metapb::{self, PeerRole};
use ferrokv_proto::pdpb;

use super::step::Step;
use crate::heartbeat::RegionReport;
use crate::meta;

/// A peer whose region moved on without it, and the region as PD knows it now.
#[derive(Debug, Clone, PartialEq)]
pub struct StalePeer {
    /// The peer to destroy (it reported itself as leader).
    pub peer: metapb::Peer,
    /// The region's current metadata, which no longer contains `peer`.
    pub current: metapb::Region,
}

/// The response that carries `step` to the region's leader, or `None` if the step cannot
/// be expressed now (e.g. its target peer is missing); the operator then waits or times out.
pub fn for_step(
    step: &Step,
    report: &RegionReport,
    cluster_id: u64,
) -> Option<pdpb::RegionHeartbeatResponse> {
    let mut response = base(report, cluster_id);
    match step {
        Step::AddLearner { peer_id, store_id } => {
            let peer = meta::peer(peer_id.0, store_id.0, PeerRole::Learner);
            response.change_peer = Some(change(peer, ConfChangeType::AddLearnerNode));
        }
        Step::AddVoter { peer_id, store_id } | Step::PromoteLearner { peer_id, store_id } => {
            let peer = meta::peer(peer_id.0, store_id.0, PeerRole::Voter);
            response.change_peer = Some(change(peer, ConfChangeType::AddNode));
        }
        Step::RemovePeer { peer_id, .. } => {
            if peer_id.0 == report.leader.id {
                response.transfer_leader = Some(transfer_to_any(successors(report))?);
            } else {
                let peer = *meta::peer_by_id(&report.region, peer_id.0)?;
                response.change_peer = Some(change(peer, ConfChangeType::RemoveNode));
            }
        }
        Step::TransferLeader { to_store, .. } => {
            let target = meta::peer_on_store(&report.region, *to_store)?;
            if !meta::is_voter(target) {
                return None;
            }
            response.transfer_leader = Some(transfer(*target));
        }
        Step::SplitRegion { .. } => {
            response.split_region = Some(pdpb::SplitRegion {
                policy: pdpb::CheckPolicy::Approximate as i32,
                keys: vec![],
            });
        }
    }
    assert!(exactly_one_command(&response));
    Some(response)
}

/// The response telling a stale peer's store to remove it: `change_peer { peer,
/// RemoveNode }` aimed at that peer (`target_peer`) with the region's *current* epoch, which
/// is newer than the stale peer's own. FerroKV stores treat a removal of themselves under a
/// newer epoch that no longer lists them as "destroy this peer".
pub fn destroy_stale_peer(stale: &StalePeer, cluster_id: u64) -> pdpb::RegionHeartbeatResponse {
    assert!(meta::peer_by_id(&stale.current, stale.peer.id).is_none());
    pdpb::RegionHeartbeatResponse {
        header: Some(header(cluster_id)),
        region_id: stale.current.id,
        region_epoch: stale.current.region_epoch,
        target_peer: Some(stale.peer),
        change_peer: Some(change(stale.peer, ConfChangeType::RemoveNode)),
        ..Default::default()
    }
}

fn base(report: &RegionReport, cluster_id: u64) -> pdpb::RegionHeartbeatResponse {
    pdpb::RegionHeartbeatResponse {
        header: Some(header(cluster_id)),
        region_id: report.region.id,
        region_epoch: report.region.region_epoch,
        target_peer: Some(report.leader),
        ..Default::default()
    }
}

fn header(cluster_id: u64) -> pdpb::ResponseHeader {
    assert!(cluster_id != 0, "never answer with cluster id 0");
    pdpb::ResponseHeader {
        cluster_id,
        error: None,
    }
}

fn change(peer: metapb::Peer, change_type: ConfChangeType) -> pdpb::ChangePeer {
    pdpb::ChangePeer {
        peer: Some(peer),
        change_type: change_type as i32,
    }
}

fn transfer(peer: metapb::Peer) -> pdpb::TransferLeader {
    pdpb::TransferLeader {
        peer: Some(peer),
        peers: vec![peer],
    }
}

/// A transfer to the first of `candidates` the leader finds ready (`peer` is the first,
/// as clients of the single-target field expect); `None` if there is none.
fn transfer_to_any(candidates: Vec<metapb::Peer>) -> Option<pdpb::TransferLeader> {
    Some(pdpb::TransferLeader {
        peer: Some(*candidates.first()?),
        peers: candidates,
    })
}

/// The voters (lowest store id first) that may take over before the leader removes
/// itself: not the leader, not pending, not down. All are offered: the leader refuses one
/// it has not heard from lately or that trails its log, and takes the next.
fn successors(report: &RegionReport) -> Vec<metapb::Peer> {
    let mut candidates: Vec<metapb::Peer> = report
        .region
        .peers
        .iter()
        .filter(|peer| peer.id != report.leader.id && meta::is_voter(peer))
        .filter(|peer| !report.is_pending(peer.id) && !report.is_down(peer.id))
        .copied()
        .collect();
    candidates.sort_by_key(|peer| peer.store_id);
    candidates
}

fn exactly_one_command(response: &pdpb::RegionHeartbeatResponse) -> bool {
    let commands = [
        response.change_peer.is_some(),
        response.transfer_leader.is_some(),
        response.split_region.is_some(),
        response.merge.is_some(),
        response.change_peer_v2.is_some(),
    ];
    commands.iter().filter(|set| **set).count() == 1
}

#[cfg(test)]
mod tests;
