//! Tests of the step-to-pdpb mapping.

use ferrokv_core::types::{PeerId, StoreId};
use ferrokv_proto::metapb::PeerRole;

use super::*;
use crate::meta::peer;
use crate::operator::tests::report;

fn three_voters() -> RegionReport {
    report(
        5,
        2,
        vec![
            peer(1, 1, PeerRole::Voter),
            peer(2, 2, PeerRole::Voter),
            peer(3, 3, PeerRole::Voter),
        ],
    )
}

#[test]
fn add_learner_and_promote_map_to_change_peer() {
    let report = three_voters();
    let add = Step::AddLearner {
        peer_id: PeerId(9),
        store_id: StoreId(4),
    };
    let response = for_step(&add, &report, 7).unwrap();
    assert_eq!(response.header.unwrap().cluster_id, 7);
    assert_eq!(response.region_id, 1);
    assert_eq!(response.region_epoch.unwrap().conf_ver, 5);
    assert_eq!(response.target_peer, Some(report.leader));
    let change = response.change_peer.unwrap();
    assert_eq!(change.change_type, ConfChangeType::AddLearnerNode as i32);
    assert_eq!(change.peer, Some(peer(9, 4, PeerRole::Learner)));
    let promote = Step::PromoteLearner {
        peer_id: PeerId(9),
        store_id: StoreId(4),
    };
    let change = for_step(&promote, &report, 7).unwrap().change_peer.unwrap();
    assert_eq!(change.change_type, ConfChangeType::AddNode as i32);
    assert_eq!(change.peer, Some(peer(9, 4, PeerRole::Voter)));
}

#[test]
fn removing_the_leader_transfers_leadership_first() {
    let mut report = three_voters();
    report.pending_peers = vec![peer(2, 2, PeerRole::Voter)];
    let remove_leader = Step::RemovePeer {
        peer_id: PeerId(1),
        store_id: StoreId(1),
    };
    let response = for_step(&remove_leader, &report, 7).unwrap();
    assert!(response.change_peer.is_none());
    let transfer = response.transfer_leader.unwrap();
    assert_eq!(
        transfer.peer,
        Some(peer(3, 3, PeerRole::Voter)),
        "skips the pending peer"
    );
    assert_eq!(transfer.peers, vec![peer(3, 3, PeerRole::Voter)]);
    report.pending_peers.clear();
    let offered = for_step(&remove_leader, &report, 7)
        .unwrap()
        .transfer_leader
        .unwrap();
    assert_eq!(
        offered.peers,
        vec![peer(2, 2, PeerRole::Voter), peer(3, 3, PeerRole::Voter)],
        "every healthy voter is offered, lowest store first: the leader takes the first ready one"
    );
    assert_eq!(offered.peer, Some(peer(2, 2, PeerRole::Voter)));
    let remove_follower = Step::RemovePeer {
        peer_id: PeerId(3),
        store_id: StoreId(3),
    };
    let change = for_step(&remove_follower, &report, 7)
        .unwrap()
        .change_peer
        .unwrap();
    assert_eq!(change.change_type, ConfChangeType::RemoveNode as i32);
    assert_eq!(change.peer, Some(peer(3, 3, PeerRole::Voter)));
}

#[test]
fn transfer_and_split_instructions() {
    let report = three_voters();
    let to_two = Step::TransferLeader {
        from_store: StoreId(1),
        to_store: StoreId(2),
    };
    let transfer = for_step(&to_two, &report, 7)
        .unwrap()
        .transfer_leader
        .unwrap();
    assert_eq!(transfer.peer, Some(peer(2, 2, PeerRole::Voter)));
    assert_eq!(transfer.peers, vec![peer(2, 2, PeerRole::Voter)]);
    let to_missing = Step::TransferLeader {
        from_store: StoreId(1),
        to_store: StoreId(8),
    };
    assert_eq!(for_step(&to_missing, &report, 7), None);
    let split = Step::SplitRegion {
        start_key: vec![],
        end_key: vec![],
    };
    let split = for_step(&split, &report, 7).unwrap().split_region.unwrap();
    assert_eq!(split.policy, pdpb::CheckPolicy::Approximate as i32);
    assert!(split.keys.is_empty());
}

#[test]
fn a_stale_peer_is_told_to_remove_itself_under_the_current_epoch() {
    let current = three_voters().region;
    let stale = StalePeer {
        peer: peer(8, 8, PeerRole::Voter),
        current: current.clone(),
    };
    let response = destroy_stale_peer(&stale, 7);
    assert_eq!(response.target_peer, Some(peer(8, 8, PeerRole::Voter)));
    assert_eq!(response.region_epoch, current.region_epoch);
    let change = response.change_peer.unwrap();
    assert_eq!(change.change_type, ConfChangeType::RemoveNode as i32);
    assert_eq!(change.peer, Some(peer(8, 8, PeerRole::Voter)));
}
