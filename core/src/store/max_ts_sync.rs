//! Which regions may hand out commit timestamps from max_ts (async commit and 1PC).
//!
//! max_ts is the store's largest read timestamp. Reads served by a region's previous
//! leader, on another store, never raised it, so a new leader's async-commit prewrite could
//! commit below a read that missed it. TiKV's rule (tikv#8468): after a peer becomes leader
//! in term T, its region refuses async commit and 1PC with `MaxTimestampNotSynced` until a
//! PD timestamp requested after the election was folded into max_ts. Every read the old
//! leader served carried a timestamp PD issued before this election: a lease read is
//! served before the lease ends, which is before any other peer can win; a ReadIndex read
//! needs a quorum's acknowledgement in the old term, which no longer comes once a quorum
//! voted for the new one, and the client took its timestamp before sending. A timestamp
//! requested after the election is newer than all of them.
//!
//! - **Inputs**: the leaders of this store with their terms (`unsynced`), and a PD
//!   timestamp requested after those leaders were listed (`synced`).
//! - **Outputs**: per region and term, whether max_ts may be used.
//! - **Invariants**: a region counts as synced only for the term it was listed in: a later
//!   election (here or elsewhere and back) needs a new timestamp; a restarted store syncs
//!   everything again (nothing here is persisted).

use std::collections::BTreeMap;

use crate::types::RegionId;

/// Regions synced, by the term their leadership was synced for.
#[derive(Debug, Default)]
pub(crate) struct MaxTsSync {
    synced_term: BTreeMap<RegionId, u64>,
}

impl MaxTsSync {
    /// True if `region`'s leader in `term` may compute commit timestamps from max_ts.
    pub fn is_synced(&self, region: RegionId, term: u64) -> bool {
        self.synced_term.get(&region) == Some(&term)
    }

    /// Of `leaders` (region, term), those not synced for their term.
    pub fn unsynced(&self, leaders: impl Iterator<Item = (RegionId, u64)>) -> Vec<(RegionId, u64)> {
        leaders
            .filter(|(region, term)| !self.is_synced(*region, *term))
            .collect()
    }

    /// A PD timestamp requested after `listed` was taken has been folded into max_ts: each
    /// listed leader whose term is still `current(region)` is synced. Regions absent from
    /// `current` (no longer led here) are forgotten.
    pub fn synced(&mut self, listed: &[(RegionId, u64)], current: &BTreeMap<RegionId, u64>) {
        for (region, term) in listed {
            if current.get(region) == Some(term) {
                self.synced_term.insert(*region, *term);
            }
        }
        self.synced_term
            .retain(|region, term| current.get(region) == Some(term));
        assert!(
            self.synced_term.len() <= current.len(),
            "only current leaders are remembered"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_is_synced_for_the_term_it_was_listed_in_only() {
        let mut sync = MaxTsSync::default();
        let (a, b) = (RegionId(1), RegionId(2));
        let leaders = [(a, 5), (b, 7)];
        assert_eq!(sync.unsynced(leaders.into_iter()), leaders.to_vec());
        // Region b moved to term 8 between the listing and the timestamp: not synced.
        let current = BTreeMap::from([(a, 5), (b, 8)]);
        sync.synced(&leaders, &current);
        assert!(sync.is_synced(a, 5));
        assert!(!sync.is_synced(b, 7) && !sync.is_synced(b, 8));
        assert_eq!(sync.unsynced(current.clone().into_iter()), vec![(b, 8)]);
        // A new election of a needs a new timestamp; a region no longer led is forgotten.
        assert!(!sync.is_synced(a, 6));
        sync.synced(&[], &BTreeMap::from([(b, 8)]));
        assert!(!sync.is_synced(a, 5));
    }
}
