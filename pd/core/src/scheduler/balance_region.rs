//! Balance-region: when the peer counts of Up stores differ by more than
//! `region_balance_tolerance`, move one peer from the store with the most to one with
//! fewer (add learner -> promote -> remove; a leader being removed hands leadership over
//! first, see `operator::instruction`).
//!
//! Input: a `ClusterView`, randomness, fresh ids. Output: at most one `BalanceRegion`
//! operator. Eligible regions are balanceable and have no peer on the target store.

use ferrokv_core::env::Rng;
use ferrokv_core::types::{PeerId, RegionId, StoreId};

use super::balance_pairs;
use crate::checker::replace_peer_steps;
use crate::id_alloc::IdSource;
use crate::meta;
use crate::operator::{Operator, OperatorKind};
use crate::view::ClusterView;

/// Plans one peer move, if peers are unbalanced.
pub fn plan(view: &ClusterView<'_>, rng: &mut dyn Rng, ids: &mut dyn IdSource) -> Option<Operator> {
    let counts = view.region_counts();
    for (source, target) in balance_pairs(&counts, view.config.region_balance_tolerance) {
        let candidates = candidates(view, source, target);
        if candidates.is_empty() {
            continue;
        }
        let chosen = candidates[rng.below(candidates.len() as u64) as usize];
        let region = view.region(chosen).expect("candidate is registered");
        let old = meta::peer_on_store(region, source).expect("candidate has a source peer");
        let new_peer = PeerId(ids.next_id()?);
        let steps = replace_peer_steps(old, new_peer, target);
        return Some(Operator::new(
            region,
            OperatorKind::BalanceRegion,
            steps,
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
        .filter(|region| {
            meta::peer_on_store(region, source).is_some()
                && meta::peer_on_store(region, target).is_none()
        })
        .map(|region| RegionId(region.id))
        .filter(|id| view.is_balanceable(*id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::Step;
    use crate::testkit::{region, CountingIds, Fixture};
    use ferrokv_core::env::SeededRng;
    use ferrokv_proto::metapb::PeerRole::Voter;

    /// Three regions with three replicas each on stores 1-3, and an empty store 4.
    fn fixture() -> Fixture {
        let mut fixture = Fixture::new(4);
        fixture.config.max_replicas = 3;
        let ranges = [("", "h"), ("h", "p"), ("p", "")];
        for (index, range) in ranges.iter().enumerate() {
            let id = 10 + index as u64;
            let base = id * 10;
            fixture.put_region(region(
                id,
                *range,
                (3, 2),
                &[
                    (base + 1, 1, Voter),
                    (base + 2, 2, Voter),
                    (base + 3, 3, Voter),
                ],
            ));
        }
        fixture
    }

    #[test]
    fn a_peer_moves_to_the_empty_store() {
        let fixture = fixture();
        let mut ids = CountingIds(500);
        let operator = plan(&fixture.view(), &mut SeededRng::new(5), &mut ids).expect("moves");
        assert_eq!(operator.kind(), OperatorKind::BalanceRegion);
        let steps = operator.steps();
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[0],
            Step::AddLearner {
                peer_id: PeerId(501),
                store_id: StoreId(4)
            }
        );
        let Step::RemovePeer { store_id, .. } = steps[2] else {
            panic!("last step removes: {steps:?}");
        };
        assert_eq!(store_id, StoreId(1), "the fullest store, lowest id on ties");
    }

    #[test]
    fn balanced_stores_are_left_alone() {
        let mut fixture = fixture();
        fixture.config.region_balance_tolerance = 3;
        let mut ids = CountingIds(500);
        assert_eq!(
            plan(&fixture.view(), &mut SeededRng::new(5), &mut ids),
            None
        );
        assert_eq!(ids.0, 500, "no id spent");
    }
}
