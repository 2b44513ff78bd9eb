//! Routing lookups over the registry: region by key, previous region, by id, range scans.
//!
//! Inputs: keys as the client sends them (raw or memcomparable; PD does not interpret them).
//! Outputs: borrowed regions in key order. Empty `end_key` means +infinity everywhere.

use ferrokv_proto::metapb;

use super::RegionRegistry;
use crate::limits::SCAN_REGIONS_MAX;
use crate::meta;

impl RegionRegistry {
    /// The region whose range contains `key`, if the registry knows one (PD's `GetRegion`).
    pub fn region_by_key(&self, key: &[u8]) -> Option<&metapb::Region> {
        let (_, id) = self.by_start.range(..=key.to_vec()).next_back()?;
        let region = &self.by_id[id];
        meta::contains_key(region, key).then_some(region)
    }

    /// The region ordered just before the one containing `key` (PD's `GetPrevRegion`); `None`
    /// if no region contains `key` or it is the first.
    pub fn prev_region(&self, key: &[u8]) -> Option<&metapb::Region> {
        let containing = self.region_by_key(key)?;
        let (_, id) = self
            .by_start
            .range(..containing.start_key.clone())
            .next_back()?;
        Some(&self.by_id[id])
    }

    /// Regions overlapping `[start, end)` in key order, at most `limit` of them (0 means
    /// `SCAN_REGIONS_MAX`), beginning with the one containing `start` if any.
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<&metapb::Region> {
        let limit = if limit == 0 {
            SCAN_REGIONS_MAX
        } else {
            limit.min(SCAN_REGIONS_MAX)
        };
        let mut found = Vec::new();
        if let Some(first) = self.region_by_key(start) {
            found.push(first);
        }
        let later = self
            .by_start
            .range::<[u8], _>((std::ops::Bound::Excluded(start), std::ops::Bound::Unbounded));
        for (region_start, id) in later {
            if found.len() >= limit {
                break;
            }
            if !end.is_empty() && region_start.as_slice() >= end {
                break;
            }
            found.push(&self.by_id[id]);
        }
        found.truncate(limit);
        assert!(found.len() <= limit);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::tests::region;

    fn three() -> RegionRegistry {
        let mut registry = RegionRegistry::new();
        registry.put(region(1, "", "c", 3));
        registry.put(region(2, "c", "f", 3));
        registry.put(region(3, "h", "", 3));
        registry
    }

    fn ids(regions: Vec<&metapb::Region>) -> Vec<u64> {
        regions.into_iter().map(|region| region.id).collect()
    }

    #[test]
    fn key_lookup_respects_bounds_and_holes() {
        let registry = three();
        assert_eq!(registry.region_by_key(b"").unwrap().id, 1);
        assert_eq!(registry.region_by_key(b"c").unwrap().id, 2);
        assert_eq!(registry.region_by_key(b"zzz").unwrap().id, 3);
        assert!(registry.region_by_key(b"g").is_none(), "[f, h) is a hole");
    }

    #[test]
    fn previous_region_is_the_key_order_predecessor() {
        let registry = three();
        assert_eq!(registry.prev_region(b"d").unwrap().id, 1);
        assert_eq!(registry.prev_region(b"x").unwrap().id, 2);
        assert!(registry.prev_region(b"a").is_none());
        assert!(registry.prev_region(b"g").is_none());
    }

    #[test]
    fn scan_is_bounded_by_end_and_limit() {
        let registry = three();
        assert_eq!(ids(registry.scan(b"b", b"", 0)), vec![1, 2, 3]);
        assert_eq!(ids(registry.scan(b"b", b"c", 0)), vec![1]);
        assert_eq!(ids(registry.scan(b"d", b"i", 0)), vec![2, 3]);
        assert_eq!(ids(registry.scan(b"", b"", 2)), vec![1, 2]);
        assert_eq!(ids(registry.scan(b"g", b"", 5)), vec![3]);
    }
}
