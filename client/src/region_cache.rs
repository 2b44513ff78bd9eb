//! A cache of region routes: key -> region (range, epoch, peers) and its last known leader.
//!
//! Regions are kept by start key; inserting a region evicts every cached region it overlaps,
//! so the cache never holds two answers for one key. Stale entries are corrected by region
//! errors: a `NotLeader` hint updates the leader, `EpochNotMatch` replaces the regions.

use std::collections::BTreeMap;
use std::ops::Bound;

use ferrokv_core::types::{KeyRange, RegionId};
use ferrokv_proto::metapb::{Peer, Region};

/// A cached route.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// The region as last reported.
    pub region: Region,
    /// The leader, if known.
    pub leader: Option<Peer>,
}

impl Route {
    fn range(&self) -> KeyRange {
        KeyRange::new(self.region.start_key.clone(), self.region.end_key.clone())
    }

    /// True if `key` lies in this route's region.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.range().contains(key)
    }
}

/// Routes by start key.
#[derive(Clone, Debug, Default)]
pub struct RegionCache {
    by_start: BTreeMap<Vec<u8>, Route>,
}

impl RegionCache {
    /// An empty cache.
    pub fn new() -> RegionCache {
        RegionCache::default()
    }

    /// The route for the region holding `key`, if cached.
    pub fn locate(&self, key: &[u8]) -> Option<&Route> {
        let (_, route) = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        route.range().contains(key).then_some(route)
    }

    /// The route for the region holding the keys just below `bound` (an empty bound means
    /// the end of the key space: the last region), for reverse scans.
    pub fn locate_before(&self, bound: &[u8]) -> Option<&Route> {
        if bound.is_empty() {
            let (_, route) = self.by_start.iter().next_back()?;
            return route.region.end_key.is_empty().then_some(route);
        }
        let (_, route) = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(bound)))
            .next_back()?;
        let end = &route.region.end_key;
        (end.is_empty() || end.as_slice() >= bound).then_some(route)
    }

    /// Caches `region` with `leader`, evicting every overlapping entry and any other route
    /// of the same region (a region has one range at a time; the newest report wins).
    /// A region whose range is inverted or empty is a malformed report (from a store, PD or
    /// an error) and is not cached: returns false.
    pub fn insert(&mut self, region: Region, leader: Option<Peer>) -> bool {
        if !region.end_key.is_empty() && region.start_key >= region.end_key {
            tracing::warn!(
                region_id = region.id,
                "a region with an empty or inverted range was reported; not cached"
            );
            return false;
        }
        let route = Route { region, leader };
        let range = route.range();
        let id = route.region.id;
        self.by_start
            .retain(|_, cached| !cached.range().overlaps(&range) && cached.region.id != id);
        self.by_start.insert(range.start, route);
        true
    }

    /// Records a new leader for `region_id`; returns false if the region is not cached or the
    /// peer is not one of its members.
    pub fn update_leader(&mut self, region_id: RegionId, leader: Peer) -> bool {
        let Some(route) = self
            .by_start
            .values_mut()
            .find(|r| r.region.id == region_id.get())
        else {
            return false;
        };
        if !route.region.peers.iter().any(|peer| peer.id == leader.id) {
            return false;
        }
        route.leader = Some(leader);
        true
    }

    /// Forgets `region_id`.
    pub fn invalidate(&mut self, region_id: RegionId) {
        self.by_start
            .retain(|_, route| route.region.id != region_id.get());
    }

    /// Number of cached regions.
    pub fn len(&self) -> usize {
        self.by_start.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.by_start.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &[u8], end: &[u8]) -> Region {
        Region {
            id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            peers: vec![Peer {
                id: id * 10,
                store_id: 1,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn locates_by_range() {
        let mut cache = RegionCache::new();
        cache.insert(region(1, b"", b"m"), None);
        cache.insert(region(2, b"m", b""), None);
        assert_eq!(cache.locate(b"a").unwrap().region.id, 1);
        assert_eq!(cache.locate(b"m").unwrap().region.id, 2);
        assert_eq!(cache.locate(b"\xff").unwrap().region.id, 2);
    }

    #[test]
    fn locate_before_finds_the_region_below_a_bound() {
        let mut cache = RegionCache::new();
        cache.insert(region(1, b"", b"m"), None);
        cache.insert(region(2, b"m", b""), None);
        assert_eq!(cache.locate_before(b"").unwrap().region.id, 2);
        assert_eq!(cache.locate_before(b"m").unwrap().region.id, 1);
        assert_eq!(cache.locate_before(b"m\0").unwrap().region.id, 2);
        assert_eq!(cache.locate_before(b"b").unwrap().region.id, 1);
        assert!(cache.locate_before(b"").is_some());
    }

    #[test]
    fn gaps_are_misses() {
        let mut cache = RegionCache::new();
        cache.insert(region(1, b"b", b"d"), None);
        assert!(cache.locate(b"a").is_none());
        assert!(cache.locate(b"d").is_none());
    }

    #[test]
    fn a_split_region_replaces_the_old_route() {
        let mut cache = RegionCache::new();
        cache.insert(region(1, b"", b""), None);
        cache.insert(region(2, b"k", b""), None);
        assert_eq!(cache.len(), 1, "the overlapping parent is evicted");
        assert!(cache.locate(b"a").is_none());
        cache.insert(region(1, b"", b"k"), None);
        assert_eq!(cache.locate(b"a").unwrap().region.id, 1);
        assert_eq!(cache.locate(b"z").unwrap().region.id, 2);
    }

    /// Found by the `region_cache` fuzz target: a region reported with an inverted range
    /// panicked the client (`KeyRange::new`), and one with an empty range silently replaced
    /// the route starting at the same key. Both are refused; a newer report of a region
    /// replaces its older route even where the ranges do not overlap.
    #[test]
    fn malformed_reports_are_not_cached_and_a_region_has_one_route() {
        let mut cache = RegionCache::new();
        assert!(cache.insert(region(1, b"a", b"m"), None));
        assert!(!cache.insert(region(2, b"z", b"b"), None), "inverted");
        assert!(!cache.insert(region(3, b"a", b"a"), None), "empty");
        assert_eq!(cache.locate(b"c").unwrap().region.id, 1);
        assert!(cache.insert(region(1, b"p", b"t"), None));
        assert_eq!(cache.len(), 1, "region 1's older route is gone");
        assert!(cache.locate(b"c").is_none());
    }

    #[test]
    fn leader_updates_only_for_members() {
        let mut cache = RegionCache::new();
        cache.insert(region(1, b"", b""), None);
        let member = Peer {
            id: 10,
            store_id: 1,
            ..Default::default()
        };
        let stranger = Peer {
            id: 99,
            store_id: 3,
            ..Default::default()
        };
        assert!(cache.update_leader(RegionId(1), member));
        assert!(!cache.update_leader(RegionId(1), stranger));
        assert!(!cache.update_leader(RegionId(5), member));
        assert_eq!(cache.locate(b"x").unwrap().leader, Some(member));
        cache.invalidate(RegionId(1));
        assert!(cache.is_empty());
    }
}
