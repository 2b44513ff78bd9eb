//! Cluster-wide schedulers, run by the coordinator every `balance_interval_ms`:
//! `balance_leader` (spread leaders) and `balance_region` (spread peers). Each is a pure
//! function of a `ClusterView` returning at most one operator; this module holds the
//! source/target choice they share.

pub mod balance_leader;
pub mod balance_region;

use std::collections::BTreeMap;

use ferrokv_core::planted::{self, PlantedBug};
use ferrokv_core::types::StoreId;

/// `(source, target)` store pairs worth balancing, best first: the store with the highest
/// count against each store whose count is more than `tolerance` lower, lowest count first.
/// Ties go to the lower store id.
pub fn balance_pairs(counts: &BTreeMap<StoreId, u64>, tolerance: u64) -> Vec<(StoreId, StoreId)> {
    assert!(tolerance > 0, "a zero tolerance flaps");
    let Some((&source, &most)) = counts
        .iter()
        .max_by_key(|(id, count)| (**count, std::cmp::Reverse(**id)))
    else {
        return Vec::new();
    };
    let mut targets: Vec<(u64, StoreId)> = counts
        .iter()
        .filter(|(id, count)| **id != source && most - **count > tolerance)
        .filter(|(_, count)| **count > 0 || !planted::active(PlantedBug::BalanceSkipsEmptyStores))
        .map(|(id, count)| (*count, *id))
        .collect();
    targets.sort();
    targets
        .into_iter()
        .map(|(_, target)| (source, target))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            vec![(StoreId(1), StoreId(2)), (StoreId(1), StoreId(4))]
        );
        assert_eq!(balance_pairs(&counts, 4), vec![]);
        let even: BTreeMap<StoreId, u64> = [(StoreId(1), 2), (StoreId(2), 2)].into();
        assert_eq!(balance_pairs(&even, 1), vec![]);
        assert_eq!(balance_pairs(&BTreeMap::new(), 1), vec![]);
    }
}
