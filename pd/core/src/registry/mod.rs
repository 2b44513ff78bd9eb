//! The region registry: the replicated map of region metadata (range, epoch, peers) that
//! routing answers from and schedulers plan over.
//!
//! Inputs: regions that passed `meta::validate_region` and `check::classify`. Outputs:
//! lookups (`route`) and the ids an insert displaced. Invariants, asserted on every insert:
//! the two indexes hold the same regions, and no two regions' ranges overlap. The registry
//! does not promise to tile the key space: after a split the parent is replaced by whichever
//! child reports first, and the other child's range is a hole until it reports.

pub mod check;
mod route;

use std::collections::BTreeMap;

use ferrokv_core::types::RegionId;
use ferrokv_proto::metapb;

use crate::meta;

/// Region metadata indexed by id and by start key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionRegistry {
    by_id: BTreeMap<RegionId, metapb::Region>,
    by_start: BTreeMap<Vec<u8>, RegionId>,
}

impl RegionRegistry {
    /// An empty registry.
    pub fn new() -> RegionRegistry {
        RegionRegistry::default()
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        assert_eq!(self.by_id.len(), self.by_start.len());
        self.by_id.len()
    }

    /// True if no region is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The region with this id.
    pub fn get(&self, id: RegionId) -> Option<&metapb::Region> {
        self.by_id.get(&id)
    }

    /// All regions in id order.
    pub fn iter(&self) -> impl Iterator<Item = &metapb::Region> {
        self.by_id.values()
    }

    /// All regions in key order.
    pub fn iter_by_key(&self) -> impl Iterator<Item = &metapb::Region> {
        self.by_start.values().map(|id| &self.by_id[id])
    }

    /// Ids of the regions (other than `region` itself) whose ranges overlap `region`'s.
    pub fn overlapping(&self, region: &metapb::Region) -> Vec<RegionId> {
        let mut found = Vec::new();
        let before = self.by_start.range(..=region.start_key.clone()).next_back();
        if let Some((_, id)) = before {
            let candidate = &self.by_id[id];
            if meta::range(candidate).overlaps(&meta::range(region)) {
                found.push(*id);
            }
        }
        let after = self.by_start.range(region.start_key.clone()..);
        for (start, id) in after {
            if !region.end_key.is_empty() && start.as_slice() >= region.end_key.as_slice() {
                break;
            }
            if !found.contains(id) {
                found.push(*id);
            }
        }
        found.retain(|id| id.0 != region.id);
        found
    }

    /// Inserts or replaces `region`, removing its previous version and every region its
    /// range overlaps. Returns the removed ids other than `region`'s own. The caller has
    /// decided (with `check::classify`) that `region` is newer than all of them.
    pub fn put(&mut self, region: metapb::Region) -> Vec<RegionId> {
        assert_eq!(meta::validate_region(&region), Ok(()));
        let id = meta::region_id(&region);
        let displaced = self.overlapping(&region);
        for other in &displaced {
            self.remove(*other);
        }
        self.remove(id);
        self.by_start.insert(region.start_key.clone(), id);
        self.by_id.insert(id, region);
        self.assert_neighbours_disjoint(id);
        assert_eq!(self.by_id.len(), self.by_start.len());
        displaced
    }

    fn remove(&mut self, id: RegionId) -> Option<metapb::Region> {
        let region = self.by_id.remove(&id)?;
        let indexed = self.by_start.remove(&region.start_key);
        assert_eq!(indexed, Some(id), "start-key index out of step");
        Some(region)
    }

    /// Panics if the region at `id` overlaps its key-order neighbours (O(log n)).
    fn assert_neighbours_disjoint(&self, id: RegionId) {
        let region = &self.by_id[&id];
        let start = region.start_key.clone();
        if let Some((_, prev)) = self.by_start.range(..start.clone()).next_back() {
            let prev = &self.by_id[prev];
            assert!(
                !prev.end_key.is_empty() && prev.end_key <= region.start_key,
                "region {} overlaps its predecessor {}",
                region.id,
                prev.id
            );
        }
        let next = self.by_start.range(start..).nth(1);
        if let Some((next_start, _)) = next {
            assert!(
                !region.end_key.is_empty() && region.end_key <= *next_start,
                "region {} overlaps its successor",
                region.id
            );
        }
    }

    /// Checks every invariant over the whole registry (O(n)); for tests and restores.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.by_id.len() != self.by_start.len() {
            return Err("index sizes differ".into());
        }
        let mut prev_end: Option<&[u8]> = None;
        for (start, id) in &self.by_start {
            let region = self.by_id.get(id).ok_or("start index names a missing id")?;
            if region.start_key != *start {
                return Err(format!("region {id} indexed under a wrong start key"));
            }
            meta::validate_region(region).map_err(|error| error.to_string())?;
            if let Some(end) = prev_end {
                if end.is_empty() || end > start.as_slice() {
                    return Err(format!("region {id} overlaps its predecessor"));
                }
            }
            prev_end = Some(region.end_key.as_slice());
        }
        Ok(())
    }

    /// True if the regions cover the whole key space with no gap.
    pub fn tiles_key_space(&self) -> bool {
        let mut expected_start: &[u8] = b"";
        for region in self.iter_by_key() {
            if region.start_key != expected_start {
                return false;
            }
            if region.end_key.is_empty() {
                return true;
            }
            expected_start = &region.end_key;
        }
        false
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ferrokv_proto::metapb::PeerRole;

    pub(crate) fn region(id: u64, start: &str, end: &str, version: u64) -> metapb::Region {
        metapb::Region {
            id,
            start_key: start.as_bytes().to_vec(),
            end_key: end.as_bytes().to_vec(),
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version,
            }),
            peers: vec![meta::peer(id * 100, 1, PeerRole::Voter)],
            ..Default::default()
        }
    }

    #[test]
    fn a_split_child_replaces_its_parent() {
        let mut registry = RegionRegistry::new();
        assert!(registry.put(region(1, "", "", 1)).is_empty());
        assert!(registry.tiles_key_space());
        let displaced = registry.put(region(2, "m", "", 2));
        assert_eq!(displaced, vec![RegionId(1)]);
        assert_eq!(registry.len(), 1);
        assert!(!registry.tiles_key_space(), "left half is a hole");
        assert!(registry.put(region(1, "", "m", 2)).is_empty());
        assert!(registry.tiles_key_space());
        assert_eq!(registry.check_invariants(), Ok(()));
    }

    #[test]
    fn overlapping_lists_every_region_in_the_range() {
        let mut registry = RegionRegistry::new();
        registry.put(region(1, "", "c", 3));
        registry.put(region(2, "c", "f", 3));
        registry.put(region(3, "f", "", 3));
        let wide = region(9, "b", "g", 4);
        assert_eq!(
            registry.overlapping(&wide),
            vec![RegionId(1), RegionId(2), RegionId(3)]
        );
        let narrow = region(9, "c", "f", 4);
        assert_eq!(registry.overlapping(&narrow), vec![RegionId(2)]);
        let own = region(2, "c", "e", 4);
        assert!(registry.overlapping(&own).is_empty());
    }
}
