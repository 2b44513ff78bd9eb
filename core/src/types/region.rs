//! Region epochs and key ranges.
//!
//! A region's range is `[start_key, end_key)`; an empty `end_key` means "to the end of the key
//! space". Its epoch has two counters: `conf_ver` grows on every membership change and
//! `version` on every split or merge. A request whose epoch is older than the region's is
//! answered with `EpochNotMatch`.

use std::cmp::Ordering;

/// `(conf_ver, version)` of a region.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct RegionEpoch {
    /// Bumped by membership changes.
    pub conf_ver: u64,
    /// Bumped by splits and merges.
    pub version: u64,
}

impl RegionEpoch {
    /// True if `self` is older than `other` in either counter (so a holder of `self` has a
    /// stale view).
    pub fn is_stale_against(&self, other: &RegionEpoch) -> bool {
        self.conf_ver < other.conf_ver || self.version < other.version
    }
}

impl From<&ferrokv_proto::metapb::RegionEpoch> for RegionEpoch {
    fn from(epoch: &ferrokv_proto::metapb::RegionEpoch) -> Self {
        RegionEpoch {
            conf_ver: epoch.conf_ver,
            version: epoch.version,
        }
    }
}

/// A missing epoch (an uninitialized region) is the zero epoch.
impl From<Option<ferrokv_proto::metapb::RegionEpoch>> for RegionEpoch {
    fn from(epoch: Option<ferrokv_proto::metapb::RegionEpoch>) -> Self {
        epoch.as_ref().map(RegionEpoch::from).unwrap_or_default()
    }
}

impl From<RegionEpoch> for ferrokv_proto::metapb::RegionEpoch {
    fn from(epoch: RegionEpoch) -> Self {
        ferrokv_proto::metapb::RegionEpoch {
            conf_ver: epoch.conf_ver,
            version: epoch.version,
        }
    }
}

/// A half-open key range `[start, end)`; an empty `end` is unbounded.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct KeyRange {
    /// Inclusive lower bound.
    pub start: Vec<u8>,
    /// Exclusive upper bound; empty means unbounded.
    pub end: Vec<u8>,
}

impl KeyRange {
    /// A range; panics if a bounded `end` is below `start` (a caller bug).
    pub fn new(start: Vec<u8>, end: Vec<u8>) -> KeyRange {
        assert!(end.is_empty() || start <= end, "key range end below start");
        KeyRange { start, end }
    }

    /// The whole key space.
    pub fn all() -> KeyRange {
        KeyRange::default()
    }

    /// True if `key` lies inside.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && (self.end.is_empty() || key < self.end.as_slice())
    }

    /// True if no key lies inside.
    pub fn is_empty(&self) -> bool {
        !self.end.is_empty() && self.start >= self.end
    }

    /// Compares an exclusive end bound with another, treating empty as +infinity.
    pub fn cmp_end(a: &[u8], b: &[u8]) -> Ordering {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => a.cmp(b),
        }
    }

    /// True if the ranges share at least one key.
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        let self_starts_before_other_ends =
            other.end.is_empty() || self.start.as_slice() < other.end.as_slice();
        let other_starts_before_self_ends =
            self.end.is_empty() || other.start.as_slice() < self.end.as_slice();
        self_starts_before_other_ends && other_starts_before_self_ends
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbounded_end_contains_everything_above_start() {
        let range = KeyRange::new(b"b".to_vec(), vec![]);
        assert!(range.contains(b"b"));
        assert!(range.contains(b"\xff\xff"));
        assert!(!range.contains(b"a"));
        assert!(KeyRange::all().contains(b""));
    }

    #[test]
    fn end_is_exclusive() {
        let range = KeyRange::new(b"a".to_vec(), b"c".to_vec());
        assert!(range.contains(b"bzz"));
        assert!(!range.contains(b"c"));
        assert!(KeyRange::new(b"c".to_vec(), b"c".to_vec()).is_empty());
    }

    #[test]
    fn overlap_and_end_order() {
        let ab = KeyRange::new(b"a".to_vec(), b"b".to_vec());
        let bc = KeyRange::new(b"b".to_vec(), b"c".to_vec());
        let a_inf = KeyRange::new(b"a".to_vec(), vec![]);
        assert!(!ab.overlaps(&bc));
        assert!(a_inf.overlaps(&bc));
        assert_eq!(KeyRange::cmp_end(b"", b"z"), Ordering::Greater);
        assert_eq!(KeyRange::cmp_end(b"a", b"b"), Ordering::Less);
    }

    #[test]
    fn epoch_staleness() {
        let current = RegionEpoch {
            conf_ver: 2,
            version: 5,
        };
        assert!(RegionEpoch {
            conf_ver: 1,
            version: 5
        }
        .is_stale_against(&current));
        assert!(RegionEpoch {
            conf_ver: 2,
            version: 4
        }
        .is_stale_against(&current));
        assert!(!current.is_stale_against(&current));
    }
}
