//! Tests of the replica checker.

use ferrokv_core::env::SeededRng;
use ferrokv_proto::metapb::PeerRole::{Learner, Voter};

use super::*;
use crate::testkit::{region, CountingIds, Fixture};

const REGION: RegionId = RegionId(10);

fn plan_now(fixture: &Fixture) -> Option<Operator> {
    plan(
        &fixture.view(),
        REGION,
        &mut SeededRng::new(1),
        &mut CountingIds(100),
    )
}

fn three_replicas(fixture: &mut Fixture) {
    fixture.put_region(region(
        10,
        ("", ""),
        (3, 2),
        &[(11, 1, Voter), (12, 2, Voter), (13, 3, Voter)],
    ));
}

#[test]
fn a_healthy_region_needs_nothing() {
    let mut fixture = Fixture::new(4);
    three_replicas(&mut fixture);
    assert_eq!(plan_now(&fixture), None);
}

#[test]
fn a_down_store_gets_its_peer_rebuilt_elsewhere() {
    let mut fixture = Fixture::new(4);
    three_replicas(&mut fixture);
    let down_after = fixture.config.max_store_down_time_ms;
    fixture.now_ms = down_after + 1;
    for store in [1, 2, 4] {
        fixture.hear_store(StoreId(store), fixture.now_ms);
    }
    let report = crate::testkit::report_of(fixture.state.regions().get(REGION).unwrap());
    fixture.record(report);
    let operator = plan_now(&fixture).expect("repairs");
    assert_eq!(operator.kind(), OperatorKind::Replica);
    assert_eq!(
        operator.steps(),
        &[
            Step::AddLearner {
                peer_id: PeerId(101),
                store_id: StoreId(4)
            },
            Step::PromoteLearner {
                peer_id: PeerId(101),
                store_id: StoreId(4)
            },
            Step::RemovePeer {
                peer_id: PeerId(13),
                store_id: StoreId(3)
            },
        ]
    );
}

#[test]
fn a_store_silent_for_less_than_the_limit_is_not_down() {
    let mut fixture = Fixture::new(4);
    three_replicas(&mut fixture);
    fixture.now_ms = fixture.config.max_store_down_time_ms;
    assert_eq!(plan_now(&fixture), None);
}

#[test]
fn missing_voters_are_added_on_the_emptiest_store() {
    let mut fixture = Fixture::new(3);
    fixture.put_region(region(9, ("", "m"), (1, 2), &[(21, 2, Voter)]));
    fixture.put_region(region(10, ("m", ""), (1, 2), &[(11, 1, Voter)]));
    let operator = plan_now(&fixture).expect("adds");
    assert_eq!(
        operator.steps(),
        &[
            Step::AddLearner {
                peer_id: PeerId(101),
                store_id: StoreId(3)
            },
            Step::PromoteLearner {
                peer_id: PeerId(101),
                store_id: StoreId(3)
            },
        ]
    );
}

#[test]
fn an_extra_voter_that_is_not_the_leader_is_removed() {
    let mut fixture = Fixture::new(4);
    fixture.put_region(region(
        10,
        ("", ""),
        (4, 2),
        &[
            (11, 1, Voter),
            (12, 2, Voter),
            (13, 3, Voter),
            (14, 4, Voter),
        ],
    ));
    let operator = plan_now(&fixture).expect("removes");
    let [Step::RemovePeer { peer_id, .. }] = operator.steps() else {
        panic!("one removal expected: {operator:?}");
    };
    assert_ne!(*peer_id, PeerId(11), "never the leader");
}

#[test]
fn an_orphan_learner_is_promoted_when_caught_up_and_waited_for_otherwise() {
    let mut fixture = Fixture::new(3);
    let with_learner = region(
        10,
        ("", ""),
        (3, 2),
        &[(11, 1, Voter), (12, 2, Voter), (13, 3, Learner)],
    );
    let mut report = fixture.put_region(with_learner);
    let operator = plan_now(&fixture).expect("promotes");
    assert_eq!(
        operator.steps(),
        &[Step::PromoteLearner {
            peer_id: PeerId(13),
            store_id: StoreId(3)
        }]
    );
    report.pending_peers = vec![report.region.peers[2]];
    fixture.record(report);
    assert_eq!(plan_now(&fixture), None, "wait for the snapshot");
}

/// Seed 72 (`--pd`, 5 minutes): a learner added with a peer id below one its store had
/// already destroyed for the region was refused by the store forever; the region stayed at
/// two voters while PD waited for the learner's snapshot.
#[test]
fn a_learner_pending_longer_than_an_operator_may_take_is_removed() {
    let mut fixture = Fixture::new(3);
    let with_learner = region(
        10,
        ("", ""),
        (3, 2),
        &[(11, 1, Voter), (12, 2, Voter), (13, 3, Learner)],
    );
    let mut report = fixture.put_region(with_learner);
    report.pending_peers = vec![report.region.peers[2]];
    fixture.record(report.clone());
    let limit = fixture.config.operator_region_timeout_ms;
    fixture.now_ms += limit - 1;
    fixture.record(report.clone());
    assert_eq!(
        plan_now(&fixture),
        None,
        "still within the time a snapshot may take"
    );
    fixture.now_ms += 1;
    fixture.record(report.clone());
    let operator = plan_now(&fixture).expect("gives up on the learner");
    assert_eq!(
        operator.steps(),
        &[Step::RemovePeer {
            peer_id: PeerId(13),
            store_id: StoreId(3)
        }]
    );
    report.pending_peers.clear();
    fixture.record(report.clone());
    report.pending_peers = vec![report.region.peers[2]];
    fixture.record(report.clone());
    assert_eq!(
        plan_now(&fixture),
        None,
        "a healthy report in between restarts the clock"
    );
    // While an operator owns the region (the one adding the learner), the clock stands
    // still: the operator has its own timeout, and the learner gets a full span after it.
    fixture.operators.add(operator);
    fixture.now_ms += limit;
    fixture.record(report.clone());
    fixture.operators.cancel(REGION);
    fixture.now_ms += limit - 1;
    fixture.record(report.clone());
    assert_eq!(plan_now(&fixture), None, "owned time does not count");
    fixture.now_ms += 1;
    fixture.record(report);
    assert!(plan_now(&fixture).is_some(), "a full unowned span: removed");
}

#[test]
fn a_region_with_an_operator_or_without_a_fresh_report_is_left_alone() {
    let mut fixture = Fixture::new(3);
    let lonely = region(10, ("", ""), (1, 2), &[(11, 1, Voter)]);
    fixture.put_region(lonely.clone());
    let operator = plan_now(&fixture).expect("adds");
    fixture.operators.add(operator);
    assert_eq!(plan_now(&fixture), None);
    let mut fixture = Fixture::new(3);
    fixture.put_region(lonely);
    fixture.memory.forget_region(REGION);
    assert_eq!(plan_now(&fixture), None);
}
