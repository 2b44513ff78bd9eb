//! Cluster-wide schedulers, run by the coordinator every `balance_interval_ms`:
//! `balance_leader` (spread leaders) and `balance_region` (spread peers). Each is a pure
//! function of a `ClusterView` returning at most one operator; this module holds the
//! source/target choice they share.

pub mod balance_leader;
pub mod balance_region;

use std::collections::BTreeMap;

use ferrokv_core::planted::{self, PlantedBug};
use ferrokv_core::types::StoreId;

/// `(source, target)` store pairs worth balancing, best first: every store against each
/// store whose count is more than `tolerance` lower; fuller sources first, then emptier
/// targets (ties to the lower store id). Every source is offered, not only the fullest: the
/// fullest may share no region with the emptiest store while another full one does (VOPR
/// seed 43 with PD: the joined store stayed at 1 leader beside stores holding 4, because
/// only the lowest-id store holding 4 was ever tried as a source).
pub fn balance_pairs(counts: &BTreeMap<StoreId, u64>, tolerance: u64) -> Vec<(StoreId, StoreId)> {
    assert!(tolerance > 0, "a zero tolerance flaps");
    let mut by_count: Vec<(u64, StoreId)> = counts.iter().map(|(id, c)| (*c, *id)).collect();
    // Fullest first; among equals, the lower id first.
    by_count.sort_by_key(|(count, id)| (std::cmp::Reverse(*count), *id));
    let mut pairs = Vec::new();
    for &(most, source) in &by_count {
        let mut targets: Vec<(u64, StoreId)> = by_count
            .iter()
            .filter(|(count, id)| *id != source && most.saturating_sub(*count) > tolerance)
            .filter(|(count, _)| {
                *count > 0 || !planted::active(PlantedBug::BalanceSkipsEmptyStores)
            })
            .copied()
            .collect();
        targets.sort();
        pairs.extend(targets.into_iter().map(|(_, target)| (source, target)));
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_full_store_is_offered_as_a_source_not_only_the_fullest() {
        // Stores 3, 4 and 10 hold 4 each, the joined store 1: each of them is a source.
        let counts: BTreeMap<StoreId, u64> = [
            (StoreId(2), 3),
            (StoreId(3), 4),
            (StoreId(4), 4),
            (StoreId(10), 4),
            (StoreId(11), 1),
        ]
        .into();
        assert_eq!(
            balance_pairs(&counts, 2),
            vec![
                (StoreId(3), StoreId(11)),
                (StoreId(4), StoreId(11)),
                (StoreId(10), StoreId(11)),
            ]
        );
    }

    #[test]
    fn pairs_start_at_the_fullest_store_and_respect_the_tolerance() {
        let counts: BTreeMap<StoreId, u64> = [
            (StoreId(1), 5),
            (StoreId(2), 1),
            (StoreId(3), 4),
            (StoreId(4), 3),
        ]
        .into();
        assert_eq!(
            balance_pairs(&counts, 1),
            vec![
                (StoreId(1), StoreId(2)),
                (StoreId(1), StoreId(4)),
                (StoreId(3), StoreId(2)),
                (StoreId(4), StoreId(2)),
            ]
        );
        assert_eq!(balance_pairs(&counts, 4), vec![]);
        let even: BTreeMap<StoreId, u64> = [(StoreId(1), 2), (StoreId(2), 2)].into();
        assert_eq!(balance_pairs(&even, 1), vec![]);
        assert_eq!(balance_pairs(&BTreeMap::new(), 1), vec![]);
    }
}
