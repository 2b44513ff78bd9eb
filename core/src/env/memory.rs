//! `MemEngine`: an in-memory `KvEngine` with no durability, for unit tests of the core (the
//! simulator's `SimEngine` adds crash and fault semantics on top of the same contract).
//! Snapshots copy the maps they need, which is fine for test-sized data.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::engine::{
    assert_scan_args, Cf, Direction, EngineError, KvEngine, KvPair, Mutation, Snapshot, WriteBatch,
    WriteOptions,
};
use crate::types::KeyRange;

type Tables = BTreeMap<Cf, BTreeMap<Vec<u8>, Vec<u8>>>;

/// An in-memory engine. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct MemEngine {
    tables: Arc<Mutex<Tables>>,
    writes: Arc<Mutex<Vec<(WriteBatch, bool)>>>,
}

/// A copy of a `MemEngine`'s data at one moment.
#[derive(Clone, Debug)]
pub struct MemSnapshot {
    tables: Tables,
}

impl MemEngine {
    /// An empty engine.
    pub fn new() -> MemEngine {
        MemEngine::default()
    }

    /// Every batch written so far, with its sync flag (for tests that inspect writes).
    pub fn writes(&self) -> Vec<(WriteBatch, bool)> {
        self.writes.lock().expect("mem engine lock").clone()
    }
}

impl KvEngine for MemEngine {
    type Snap = MemSnapshot;

    fn snapshot(&self) -> MemSnapshot {
        MemSnapshot {
            tables: self.tables.lock().expect("mem engine lock").clone(),
        }
    }

    fn write(&self, batch: &WriteBatch, options: WriteOptions) -> Result<(), EngineError> {
        let mut tables = self.tables.lock().expect("mem engine lock");
        for mutation in batch.mutations() {
            match mutation {
                Mutation::Put { cf, key, value } => {
                    tables
                        .entry(*cf)
                        .or_default()
                        .insert(key.clone(), value.clone());
                }
                Mutation::Delete { cf, key } => {
                    tables.entry(*cf).or_default().remove(key);
                }
                Mutation::DeleteRange { cf, start, end } => {
                    let table = tables.entry(*cf).or_default();
                    let doomed: Vec<Vec<u8>> = table
                        .range(start.clone()..end.clone())
                        .map(|(key, _)| key.clone())
                        .collect();
                    for key in doomed {
                        table.remove(&key);
                    }
                }
            }
        }
        self.writes
            .lock()
            .expect("mem engine lock")
            .push((batch.clone(), options.sync));
        Ok(())
    }
}

impl Snapshot for MemSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.tables.get(&cf).and_then(|t| t.get(key)).cloned())
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<KvPair>, EngineError> {
        assert_scan_args(range, limit);
        let Some(table) = self.tables.get(&cf) else {
            return Ok(Vec::new());
        };
        let inside = table
            .range(range.start.clone()..)
            .take_while(|(key, _)| range.end.is_empty() || key.as_slice() < range.end.as_slice())
            .map(|(k, v)| (k.clone(), v.clone()));
        Ok(match direction {
            Direction::Forward => inside.take(limit).collect(),
            Direction::Reverse => {
                let all: Vec<KvPair> = inside.collect();
                all.into_iter().rev().take(limit).collect()
            }
        })
    }
}
