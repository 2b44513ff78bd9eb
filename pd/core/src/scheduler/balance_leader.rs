//! Balance-leader: when the leader counts of Up stores differ by more than
//! `leader_balance_tolerance`, move one leader from the store with the most to one with
//! fewer, choosing among eligible regions with `rng`.
//!
//! Input: a `ClusterView`. Output: at most one `BalanceLeader` operator with a single
//! `TransferLeader` step. Eligible regions are balanceable (fresh heartbeat, healthy, full
//! replica count, no operator) and have a voter on the target store.

use ferrokv_core::env::Rng;
use ferrokv_core::types::{RegionId, StoreId};

use super::balance_pairs;
use crate::meta;
use crate::operator::{Operator, OperatorKind, Step};
use crate::view::ClusterView;

/// Plans one leader transfer, if leaders are unbalanced.
pub fn plan(view: &ClusterView<'_>, rng: &mut dyn Rng) -> Option<Operator> {
    let counts = view.leader_counts();
    for (source, target) in balance_pairs(&counts, view.config.leader_balance_tolerance) {
        let candidates = candidates(view, source, target);
        if candidates.is_empty() {
            continue;
        }
        let chosen = candidates[rng.below(candidates.len() as u64) as usize];
        let region = view.region(chosen).expect("candidate is registered");
        let step = Step::TransferLeader {
            from_store: source,
            to_store: target,
        };
        return Some(Operator::new(
            region,
            OperatorKind::BalanceLeader,
            vec![step],
            view.now_ms,
            view.config,
        ));
    }
    None
}

fn candidates(view: &ClusterView<'_>, source: StoreId, target: StoreId) -> Vec<RegionId> {
    view.state
        .regions()
        .iter()
        .map(|region| RegionId(region.id))
        .filter(|id| view.is_balanceable(*id))
        .filter(|id| {
            let stats = view
                .fresh_stats(*id)
                .expect("balanceable regions are fresh");
            let region = view.region(*id).expect("registered");
            stats.report.leader_store() == source
                && meta::peer_on_store(region, target).is_some_and(meta::is_voter)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{region, report_of, Fixture};
    use ferrokv_core::env::SeededRng;
    use ferrokv_proto::metapb::PeerRole::Voter;

    /// Four regions on stores 1-3, all led by `leaders[i]`.
    fn fixture(leaders: [u64; 4]) -> Fixture {
        let mut fixture = Fixture::new(3);
        let ranges = [("", "d"), ("d", "h"), ("h", "p"), ("p", "")];
        for (index, range) in ranges.iter().enumerate() {
            let id = 10 + index as u64;
            let base = id * 10;
            let region = region(
                id,
                *range,
                (3, 2),
                &[
                    (base + 1, 1, Voter),
                    (base + 2, 2, Voter),
                    (base + 3, 3, Voter),
                ],
            );
            fixture.put_region(region.clone());
            let mut report = report_of(&region);
            report.leader = *meta::peer_on_store(&region, StoreId(leaders[index])).unwrap();
            fixture.record(report);
        }
        fixture
    }

    #[test]
    fn leaders_move_from_the_busiest_store_to_an_idle_one() {
        let fixture = fixture([1, 1, 1, 2]);
        let operator = plan(&fixture.view(), &mut SeededRng::new(3)).expect("balances");
        assert_eq!(operator.kind(), OperatorKind::BalanceLeader);
        assert_eq!(
            operator.steps(),
            &[Step::TransferLeader {
                from_store: StoreId(1),
                to_store: StoreId(3)
            }]
        );
        let view = fixture.view();
        let region = operator.region_id();
        assert_eq!(
            view.fresh_stats(region).unwrap().report.leader_store(),
            StoreId(1)
        );
    }

    #[test]
    fn a_full_store_sharing_no_region_with_the_emptiest_does_not_block_the_others() {
        // Store 1 leads 3 regions on stores 1-3, store 2 leads 3 on stores 2-4, store 3
        // leads 2; store 4 leads none. Store 1 (the fullest, lowest id) has no voter on
        // store 4: store 2 must hand one over instead (VOPR seed 43 with PD).
        let mut fixture = Fixture::new(4);
        let layout = [
            (1, [1, 2, 3]),
            (1, [1, 2, 3]),
            (1, [1, 2, 3]),
            (2, [2, 3, 4]),
            (2, [2, 3, 4]),
            (2, [2, 3, 4]),
            (3, [1, 2, 3]),
            (3, [1, 2, 3]),
        ];
        let bounds = ["", "b", "c", "d", "e", "f", "g", "h", ""];
        for (index, (leader, stores)) in layout.iter().enumerate() {
            let id = 20 + index as u64;
            let peers: Vec<_> = stores
                .iter()
                .map(|store| (id * 10 + store, *store, Voter))
                .collect();
            let range = (bounds[index], bounds[index + 1]);
            let region = region(id, range, (3, 2), &peers);
            fixture.put_region(region.clone());
            let mut report = report_of(&region);
            report.leader = *meta::peer_on_store(&region, StoreId(*leader)).unwrap();
            fixture.record(report);
        }
        let tolerance = fixture.config.leader_balance_tolerance;
        assert!(
            3 > tolerance,
            "store 1 and 2 are out of balance with store 4"
        );
        let operator = plan(&fixture.view(), &mut SeededRng::new(3)).expect("balances");
        assert_eq!(
            operator.steps(),
            &[Step::TransferLeader {
                from_store: StoreId(2),
                to_store: StoreId(4)
            }]
        );
    }

    #[test]
    fn a_spread_within_tolerance_is_left_alone() {
        let fixture = fixture([1, 1, 2, 3]);
        assert_eq!(plan(&fixture.view(), &mut SeededRng::new(3)), None);
    }

    #[test]
    fn busy_regions_are_not_candidates() {
        let mut fixture = fixture([1, 1, 1, 1]);
        for id in 10..14 {
            let region = fixture.state.regions().get(RegionId(id)).unwrap().clone();
            let split = Step::SplitRegion {
                start_key: region.start_key.clone(),
                end_key: region.end_key.clone(),
            };
            let config = fixture.config.clone();
            fixture.operators.add(Operator::new(
                &region,
                OperatorKind::Split,
                vec![split],
                0,
                &config,
            ));
        }
        assert_eq!(plan(&fixture.view(), &mut SeededRng::new(3)), None);
    }
}
