//! Tests of operator progress.

use ferrokv_core::types::{PeerId, StoreId};
use ferrokv_proto::metapb::{self, PeerRole};

use super::*;
use crate::meta::peer;

pub(crate) fn report(conf_ver: u64, version: u64, peers: Vec<metapb::Peer>) -> RegionReport {
    RegionReport {
        region: metapb::Region {
            id: 1,
            region_epoch: Some(metapb::RegionEpoch { conf_ver, version }),
            peers: peers.clone(),
            ..Default::default()
        },
        leader: peers[0],
        down_peers: vec![],
        pending_peers: vec![],
        approximate_size_bytes: 0,
        approximate_keys: 0,
        term: 1,
    }
}

fn replace_operator() -> Operator {
    let start = report(
        1,
        1,
        vec![peer(1, 1, PeerRole::Voter), peer(2, 2, PeerRole::Voter)],
    );
    let steps = vec![
        Step::AddLearner {
            peer_id: PeerId(9),
            store_id: StoreId(3),
        },
        Step::PromoteLearner {
            peer_id: PeerId(9),
            store_id: StoreId(3),
        },
        Step::RemovePeer {
            peer_id: PeerId(2),
            store_id: StoreId(2),
        },
    ];
    Operator::new(
        &start.region,
        OperatorKind::Replica,
        steps,
        0,
        &Config::default(),
    )
}

#[test]
fn steps_advance_with_heartbeats_and_finish() {
    let mut operator = replace_operator();
    let a = peer(1, 1, PeerRole::Voter);
    let b = peer(2, 2, PeerRole::Voter);
    assert_eq!(
        operator.check(&report(1, 1, vec![a, b]), 1),
        Progress::Running
    );
    assert!(matches!(
        operator.current_step(),
        Some(Step::AddLearner { .. })
    ));
    let learner = peer(9, 3, PeerRole::Learner);
    assert_eq!(
        operator.check(&report(2, 1, vec![a, b, learner]), 2),
        Progress::Running
    );
    assert!(matches!(
        operator.current_step(),
        Some(Step::PromoteLearner { .. })
    ));
    let voter = peer(9, 3, PeerRole::Voter);
    assert_eq!(
        operator.check(&report(3, 1, vec![a, b, voter]), 3),
        Progress::Running
    );
    assert!(matches!(
        operator.current_step(),
        Some(Step::RemovePeer { .. })
    ));
    assert_eq!(
        operator.check(&report(4, 1, vec![a, voter]), 4),
        Progress::Finished
    );
}

#[test]
fn several_steps_may_finish_in_one_heartbeat() {
    let mut operator = replace_operator();
    let a = peer(1, 1, PeerRole::Voter);
    let voter = peer(9, 3, PeerRole::Voter);
    assert_eq!(
        operator.check(&report(4, 1, vec![a, voter]), 1),
        Progress::Finished
    );
}

#[test]
fn foreign_epoch_changes_fail_the_operator() {
    let a = peer(1, 1, PeerRole::Voter);
    let b = peer(2, 2, PeerRole::Voter);
    let mut split_under_us = replace_operator();
    assert_eq!(
        split_under_us.check(&report(1, 2, vec![a, b]), 1),
        Progress::Failed(OperatorFailure::VersionChanged {
            planned: 1,
            reported: 2
        })
    );
    let mut extra_change = replace_operator();
    let c = peer(5, 5, PeerRole::Voter);
    assert_eq!(
        extra_change.check(&report(3, 1, vec![a, b, c]), 1),
        Progress::Failed(OperatorFailure::ConfVerChanged {
            expected_max: 2,
            reported: 3
        })
    );
}

#[test]
fn operators_time_out() {
    let mut operator = replace_operator();
    let a = peer(1, 1, PeerRole::Voter);
    let b = peer(2, 2, PeerRole::Voter);
    let timeout = Config::default().operator_region_timeout_ms;
    assert_eq!(
        operator.check(&report(1, 1, vec![a, b]), timeout),
        Progress::Running
    );
    assert_eq!(
        operator.check(&report(1, 1, vec![a, b]), timeout + 1),
        Progress::TimedOut
    );
    let transfer = Operator::new(
        &report(1, 1, vec![a, b]).region,
        OperatorKind::BalanceLeader,
        vec![Step::TransferLeader {
            from_store: StoreId(1),
            to_store: StoreId(2),
        }],
        0,
        &Config::default(),
    );
    assert!(transfer.is_timed_out(Config::default().operator_leader_timeout_ms + 1));
}
