//! A `BTreeMap` engine for MVCC and scheduler tests: one ordered map per column family,
//! snapshots by clone, modifications applied in order.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::txn::Modify;
use crate::env::{assert_scan_args, Cf, Direction, EngineError, KvPair, Snapshot};
use crate::types::KeyRange;

/// An in-memory engine that is its own snapshot (clone it to freeze a view).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemEngine {
    data: BTreeMap<Cf, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemEngine {
    /// An empty engine.
    pub fn new() -> MemEngine {
        MemEngine::default()
    }

    /// Applies `modifies` in order.
    pub fn apply(&mut self, modifies: &[Modify]) {
        for modify in modifies {
            match modify {
                Modify::Put { cf, key, value } => {
                    self.data
                        .entry(*cf)
                        .or_default()
                        .insert(key.clone(), value.clone());
                }
                Modify::Delete { cf, key } => {
                    self.data.entry(*cf).or_default().remove(key);
                }
                Modify::DeleteRange { cf, start, end } => {
                    let map = self.data.entry(*cf).or_default();
                    let doomed: Vec<Vec<u8>> = map
                        .range(start.clone()..end.clone())
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in doomed {
                        map.remove(&key);
                    }
                }
            }
        }
    }

    /// Sets a key directly (for planting raw data or garbage).
    pub fn put_raw(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.data
            .entry(cf)
            .or_default()
            .insert(key.to_vec(), value.to_vec());
    }

    /// Number of keys in `cf`.
    pub fn len(&self, cf: Cf) -> usize {
        self.data.get(&cf).map_or(0, BTreeMap::len)
    }

    /// Every pair of `cf`, in order.
    pub fn pairs(&self, cf: Cf) -> Vec<KvPair> {
        self.data
            .get(&cf)
            .map(|map| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

impl Snapshot for MemEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.data.get(&cf).and_then(|map| map.get(key)).cloned())
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<KvPair>, EngineError> {
        assert_scan_args(range, limit);
        let Some(map) = self.data.get(&cf) else {
            return Ok(Vec::new());
        };
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let end = if range.end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(range.end.clone())
        };
        let iter = map.range((Bound::Included(range.start.clone()), end));
        let pairs = |iter: &mut dyn Iterator<Item = (&Vec<u8>, &Vec<u8>)>| {
            iter.take(limit)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        Ok(match direction {
            Direction::Forward => pairs(&mut { iter }),
            Direction::Reverse => pairs(&mut iter.rev()),
        })
    }
}
