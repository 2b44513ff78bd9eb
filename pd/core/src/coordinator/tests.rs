//! Tests of the coordinator: heartbeats through registry proposals, operators and checkers.

use ferrokv_core::env::SeededRng;
use ferrokv_core::types::{RegionId, StoreId};
use ferrokv_proto::eraftpb::ConfChangeType;
use ferrokv_proto::metapb::{self, PeerRole::Learner, PeerRole::Voter};
use ferrokv_proto::pdpb;

use super::*;
use crate::operator::OperatorKind;
use crate::proposals::Proposals;
use crate::registry::check::RegionChange;
use crate::testkit::{region, CountingIds, Fixture};

/// A coordinator over a fixture's state, applying proposals at once.
struct Harness {
    state: PdState,
    coordinator: Coordinator,
    rng: SeededRng,
    ids: CountingIds,
}

impl Harness {
    fn new(stores: u64) -> Harness {
        let fixture = Fixture::new(stores);
        let mut coordinator = Coordinator::new(Config::default(), 0);
        for store in fixture.state.stores() {
            let stats = pdpb::StoreStats {
                store_id: store.id,
                ..Default::default()
            };
            coordinator
                .on_store_heartbeat(&fixture.state, &stats, 0)
                .unwrap();
        }
        Harness {
            state: fixture.state,
            coordinator,
            rng: SeededRng::new(9),
            ids: CountingIds(1_000),
        }
    }

    fn heartbeat_with(
        &mut self,
        region: &metapb::Region,
        leader_store: u64,
        now_ms: u64,
        edit: impl FnOnce(&mut pdpb::RegionHeartbeatRequest),
    ) -> HeartbeatReply {
        let leader = *crate::meta::peer_on_store(region, StoreId(leader_store)).unwrap();
        let mut request = pdpb::RegionHeartbeatRequest {
            region: Some(region.clone()),
            leader: Some(leader),
            term: 5,
            ..Default::default()
        };
        edit(&mut request);
        let mut proposals = Proposals::new();
        let reply = self
            .coordinator
            .on_region_heartbeat(
                &self.state,
                &request,
                now_ms,
                &mut self.rng,
                &mut self.ids,
                &mut proposals,
            )
            .expect("valid heartbeat");
        for command in proposals.drain() {
            let outcome = self.state.apply(&command);
            self.coordinator.on_applied(&outcome);
        }
        reply
    }

    fn heartbeat(&mut self, region: &metapb::Region, leader_store: u64) -> HeartbeatReply {
        self.heartbeat_with(region, leader_store, 1, |_| {})
    }
}

fn three_voters(conf_ver: u64) -> metapb::Region {
    region(
        10,
        ("", ""),
        (conf_ver, 2),
        &[(11, 1, Voter), (12, 2, Voter), (13, 3, Voter)],
    )
}

#[test]
fn a_new_epoch_is_proposed_and_planning_waits_for_it() {
    let mut harness = Harness::new(3);
    let reply = harness.heartbeat(&three_voters(3), 1);
    assert_eq!(
        reply.outcome,
        HeartbeatOutcome::Accepted {
            change: RegionChange::New
        }
    );
    assert_eq!(reply.response, None);
    assert_eq!(
        harness.state.regions().get(RegionId(10)),
        Some(&three_voters(3))
    );
    let again = harness.heartbeat(&three_voters(3), 1);
    assert_eq!(
        again.outcome,
        HeartbeatOutcome::Accepted {
            change: RegionChange::Unchanged
        }
    );
    assert_eq!(again.response, None, "healthy: nothing to do");
    assert_eq!(harness.coordinator.counters().metadata_proposed, 1);
}

#[test]
fn stale_heartbeats_are_ignored_with_a_reason() {
    let mut harness = Harness::new(3);
    harness.heartbeat(&three_voters(3), 1);
    let reply = harness.heartbeat(&three_voters(2), 1);
    assert!(matches!(
        reply.outcome,
        HeartbeatOutcome::Stale(StaleReason::ConfVerBehind {
            current: 3,
            reported: 2,
            ..
        })
    ));
    assert_eq!(reply.response, None, "the leader is still a member");
    let deposed = harness.heartbeat_with(&three_voters(3), 2, 1, |request| request.term = 4);
    assert!(matches!(
        deposed.outcome,
        HeartbeatOutcome::Stale(StaleReason::TermBehind {
            current: 5,
            reported: 4,
            ..
        })
    ));
    assert_eq!(harness.coordinator.counters().stale, 2);
}

#[test]
fn a_removed_peer_is_told_to_destroy_itself() {
    let mut harness = Harness::new(4);
    harness.heartbeat(&three_voters(3), 1);
    let old = region(10, ("", ""), (2, 2), &[(14, 4, Voter), (11, 1, Voter)]);
    let reply = harness.heartbeat(&old, 4);
    let response = reply.response.expect("destroy order");
    assert_eq!(response.target_peer.unwrap().id, 14);
    let change = response.change_peer.unwrap();
    assert_eq!(change.change_type, ConfChangeType::RemoveNode as i32);
    assert_eq!(response.region_epoch.unwrap().conf_ver, 3);
    assert_eq!(harness.coordinator.counters().stale_peers_destroyed, 1);
}

#[test]
fn a_missing_replica_is_added_step_by_step_until_finished() {
    let mut harness = Harness::new(3);
    let lonely = region(10, ("", ""), (1, 2), &[(11, 1, Voter)]);
    harness.heartbeat(&lonely, 1);
    let first = harness.heartbeat(&lonely, 1).response.expect("add learner");
    let change = first.change_peer.unwrap();
    assert_eq!(change.change_type, ConfChangeType::AddLearnerNode as i32);
    let learner = change.peer.unwrap();
    assert_eq!(learner.role, Learner as i32);
    let resent = harness.heartbeat(&lonely, 1).response.expect("re-sent");
    assert_eq!(
        resent.change_peer.unwrap().peer,
        Some(learner),
        "same step again"
    );
    let mut with_learner = lonely.clone();
    with_learner.peers.push(learner);
    with_learner.region_epoch.as_mut().unwrap().conf_ver = 2;
    let promote = harness
        .heartbeat(&with_learner, 1)
        .response
        .expect("promote");
    let change = promote.change_peer.unwrap();
    assert_eq!(change.change_type, ConfChangeType::AddNode as i32);
    assert_eq!(change.peer.unwrap().id, learner.id);
    let mut promoted = with_learner.clone();
    promoted.peers[1].role = Voter as i32;
    promoted.region_epoch.as_mut().unwrap().conf_ver = 3;
    harness.heartbeat(&promoted, 1);
    let counters = harness
        .coordinator
        .operators()
        .counters(OperatorKind::Replica);
    assert_eq!(counters.created, 1);
    assert_eq!(counters.finished, 1);
}

#[test]
fn an_operator_fails_when_the_region_moves_under_it() {
    let mut harness = Harness::new(3);
    let lonely = region(10, ("", ""), (1, 2), &[(11, 1, Voter)]);
    harness.heartbeat(&lonely, 1);
    assert!(harness.heartbeat(&lonely, 1).response.is_some());
    let mut split = lonely.clone();
    split.end_key = b"m".to_vec();
    split.region_epoch.as_mut().unwrap().version = 3;
    let reply = harness.heartbeat(&split, 1);
    assert_eq!(reply.response, None);
    let counters = harness.coordinator.operators().totals();
    assert_eq!((counters.created, counters.failed), (1, 1));
    assert!(harness.coordinator.operator(RegionId(10)).is_none());
}

#[test]
fn operators_time_out_on_tick() {
    let mut harness = Harness::new(3);
    let lonely = region(10, ("", ""), (1, 2), &[(11, 1, Voter)]);
    harness.heartbeat(&lonely, 1);
    harness.heartbeat(&lonely, 1);
    assert!(harness.coordinator.operator(RegionId(10)).is_some());
    let late = Config::default().operator_region_timeout_ms + 10;
    let state = harness.state.clone();
    harness
        .coordinator
        .tick(&state, late, &mut harness.rng, &mut harness.ids);
    assert_eq!(harness.coordinator.operators().totals().timed_out, 1);
    assert!(harness.coordinator.operator(RegionId(10)).is_none());
}

#[test]
fn the_replica_limit_caps_running_operators() {
    let mut harness = Harness::new(3);
    harness.coordinator.config.replica_schedule_limit = 1;
    let left = region(10, ("", "m"), (1, 2), &[(11, 1, Voter)]);
    let right = region(20, ("m", ""), (1, 2), &[(21, 1, Voter)]);
    for region in [&left, &right] {
        harness.heartbeat(region, 1);
    }
    assert!(harness.heartbeat(&left, 1).response.is_some());
    assert_eq!(harness.heartbeat(&right, 1).response, None, "limit reached");
    assert_eq!(harness.coordinator.operators().running_total(), 1);
}

#[test]
fn a_tick_balances_leaders_and_dispatches_to_the_leader_store() {
    let mut harness = Harness::new(3);
    let ranges = [("", "d"), ("d", "h"), ("h", "p"), ("p", "")];
    for (index, range) in ranges.iter().enumerate() {
        let id = 10 + index as u64 * 10;
        let region = region(
            id,
            *range,
            (3, 2),
            &[(id + 1, 1, Voter), (id + 2, 2, Voter), (id + 3, 3, Voter)],
        );
        harness.heartbeat(&region, 1);
        harness.heartbeat(&region, 1);
    }
    let state = harness.state.clone();
    let dispatches = harness
        .coordinator
        .tick(&state, 2, &mut harness.rng, &mut harness.ids);
    assert_eq!(dispatches.len(), 1, "{dispatches:?}");
    assert_eq!(dispatches[0].store_id, StoreId(1));
    let target = dispatches[0].response.transfer_leader.as_ref().unwrap();
    assert_ne!(target.peer.unwrap().store_id, 1);
    let again = harness
        .coordinator
        .tick(&state, 3, &mut harness.rng, &mut harness.ids);
    assert!(again.is_empty(), "balance runs once per interval");
    assert_eq!(
        harness
            .coordinator
            .operators()
            .counters(OperatorKind::BalanceLeader)
            .created,
        1
    );
}

#[test]
fn store_heartbeats_from_unknown_stores_are_refused() {
    let mut harness = Harness::new(1);
    let stats = pdpb::StoreStats {
        store_id: 9,
        ..Default::default()
    };
    assert_eq!(
        harness
            .coordinator
            .on_store_heartbeat(&harness.state, &stats, 5),
        Err(crate::heartbeat::HeartbeatError::UnknownStore(StoreId(9)))
    );
    let known = pdpb::StoreStats {
        store_id: 1,
        ..Default::default()
    };
    harness
        .coordinator
        .on_store_heartbeat(&harness.state, &known, 5)
        .unwrap();
    assert_eq!(
        harness
            .coordinator
            .memory()
            .store_last_heartbeat_ms(StoreId(1)),
        5
    );
}

#[test]
fn a_split_child_reporting_first_finishes_the_split_operator() {
    let mut harness = Harness::new(1);
    let whole = region(10, ("", ""), (1, 2), &[(11, 1, Voter)]);
    harness.heartbeat(&whole, 1);
    let big = Config::default().region_split_size_bytes;
    let order = harness.heartbeat_with(&whole, 1, 1, |request| request.approximate_size = big);
    assert!(order.response.unwrap().split_region.is_some());
    let right = region(30, ("m", ""), (1, 3), &[(31, 1, Voter)]);
    harness.heartbeat(&right, 1);
    let counters = harness
        .coordinator
        .operators()
        .counters(OperatorKind::Split);
    assert_eq!(
        (counters.created, counters.finished, counters.failed),
        (1, 1, 0)
    );
    assert!(
        harness.coordinator.memory().region(RegionId(10)).is_none(),
        "forgotten"
    );
}

#[test]
fn a_replica_operator_on_a_displaced_region_fails() {
    let mut harness = Harness::new(3);
    let lonely = region(10, ("", ""), (1, 2), &[(11, 1, Voter)]);
    harness.heartbeat(&lonely, 1);
    assert!(harness.heartbeat(&lonely, 1).response.is_some());
    let right = region(30, ("m", ""), (1, 3), &[(31, 1, Voter)]);
    harness.heartbeat(&right, 1);
    let counters = harness
        .coordinator
        .operators()
        .counters(OperatorKind::Replica);
    assert_eq!((counters.created, counters.failed), (1, 1));
}
