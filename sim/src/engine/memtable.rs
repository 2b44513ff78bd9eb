//! SimEngine's in-memory state: a multi-version ordered map, so snapshots are cheap and stay
//! consistent while writes go on.
//!
//! Every write gets the next sequence number; a snapshot reads the newest version at or below
//! its sequence. Versions no live snapshot can see are pruned as keys are written, and in a
//! full sweep when garbage outgrows live data.

use std::collections::BTreeMap;
use std::ops::Bound;

use ferrokv_core::env::{Cf, Direction, KvPair, Mutation, WriteBatch};
use ferrokv_core::types::KeyRange;

/// One version of a key: `None` is a deletion.
type Version = (u64, Option<Vec<u8>>);

/// The multi-version map plus live-snapshot bookkeeping.
#[derive(Debug, Default)]
pub struct Memtable {
    versions: BTreeMap<Vec<u8>, Vec<Version>>,
    seq: u64,
    live_snapshots: BTreeMap<u64, usize>,
    garbage: usize,
}

fn internal_key(cf: Cf, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(cf as u8);
    out.extend_from_slice(key);
    out
}

fn visible(chain: &[Version], seq: u64) -> Option<&Vec<u8>> {
    chain
        .iter()
        .rev()
        .find(|(version_seq, _)| *version_seq <= seq)?
        .1
        .as_ref()
}

impl Memtable {
    /// The sequence number of the latest write.
    #[cfg(test)]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Registers a snapshot at the current sequence and returns it.
    pub fn acquire_snapshot(&mut self) -> u64 {
        *self.live_snapshots.entry(self.seq).or_insert(0) += 1;
        self.seq
    }

    /// Releases a snapshot taken by `acquire_snapshot`.
    pub fn release_snapshot(&mut self, seq: u64) {
        let count = self
            .live_snapshots
            .get_mut(&seq)
            .expect("releasing an unknown snapshot");
        *count -= 1;
        if *count == 0 {
            self.live_snapshots.remove(&seq);
        }
    }

    /// Applies every mutation of `batch` under one new sequence number.
    pub fn apply(&mut self, batch: &WriteBatch) {
        self.seq += 1;
        for mutation in batch.mutations() {
            match mutation {
                Mutation::Put { cf, key, value } => {
                    self.push(internal_key(*cf, key), Some(value.clone()));
                }
                Mutation::Delete { cf, key } => self.push(internal_key(*cf, key), None),
                Mutation::DeleteRange { cf, start, end } => {
                    let range = internal_key(*cf, start)..internal_key(*cf, end);
                    let keys: Vec<Vec<u8>> = self
                        .versions
                        .range(range)
                        .map(|(key, _)| key.clone())
                        .collect();
                    for key in keys {
                        self.push(key, None);
                    }
                }
            }
        }
        if self.garbage > self.versions.len().max(1024) {
            self.sweep();
        }
    }

    fn oldest_visible_seq(&self) -> u64 {
        self.live_snapshots
            .keys()
            .next()
            .copied()
            .unwrap_or(self.seq)
    }

    fn push(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let oldest = self.oldest_visible_seq();
        let seq = self.seq;
        let chain = self.versions.entry(key).or_default();
        match chain.last_mut() {
            Some(last) if last.0 == seq => last.1 = value, // same batch writes the key twice
            _ => chain.push((seq, value)),
        }
        let before = chain.len();
        prune(chain, oldest);
        self.garbage = self.garbage.saturating_sub(before - chain.len());
        if chain.len() > 1 || chain.last().is_some_and(|(_, value)| value.is_none()) {
            self.garbage += 1;
        }
    }

    /// Drops every version no live snapshot can see, and keys that are only tombstones.
    pub fn sweep(&mut self) {
        let oldest = self.oldest_visible_seq();
        self.versions.retain(|_, chain| {
            prune(chain, oldest);
            !(chain.len() == 1 && chain[0].1.is_none())
        });
        self.garbage = 0;
    }

    /// The value of `key` at snapshot `seq`.
    pub fn get(&self, seq: u64, cf: Cf, key: &[u8]) -> Option<Vec<u8>> {
        visible(self.versions.get(&internal_key(cf, key))?, seq).cloned()
    }

    /// Up to `limit` pairs of `cf` inside `range` at snapshot `seq`.
    pub fn scan(
        &self,
        seq: u64,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        direction: Direction,
    ) -> Vec<KvPair> {
        let lower = Bound::Included(internal_key(cf, &range.start));
        let upper = if range.end.is_empty() {
            Bound::Excluded(vec![cf as u8 + 1])
        } else {
            Bound::Excluded(internal_key(cf, &range.end))
        };
        let items = self.versions.range((lower, upper));
        let pick = |(key, chain): (&Vec<u8>, &Vec<Version>)| {
            visible(chain, seq).map(|value| (key[1..].to_vec(), value.clone()))
        };
        match direction {
            Direction::Forward => items.filter_map(pick).take(limit).collect(),
            Direction::Reverse => items.rev().filter_map(pick).take(limit).collect(),
        }
    }

    /// The latest value of every live key, for checkpoints.
    pub fn latest_image(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let seq = self.seq;
        let pick = |(key, chain): (&Vec<u8>, &Vec<Version>)| {
            visible(chain, seq).map(|value| (key.clone(), value.clone()))
        };
        self.versions.iter().filter_map(pick).collect()
    }

    /// Rebuilds a memtable from a checkpoint image (internal keys).
    pub fn from_image(image: &[(Vec<u8>, Vec<u8>)]) -> Memtable {
        let mut table = Memtable {
            seq: 1,
            ..Memtable::default()
        };
        for (key, value) in image {
            table
                .versions
                .insert(key.clone(), vec![(1, Some(value.clone()))]);
        }
        table
    }
}

/// Keeps the versions newer than `oldest` plus the newest one at or below it.
fn prune(chain: &mut Vec<Version>, oldest: u64) {
    let keep_from = chain
        .iter()
        .rposition(|(seq, _)| *seq <= oldest)
        .unwrap_or(0);
    chain.drain(..keep_from);
    debug_assert!(
        !chain.is_empty(),
        "a written key keeps at least one version"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(table: &mut Memtable, key: &[u8], value: &[u8]) {
        let mut batch = WriteBatch::new();
        batch.put(Cf::Default, key, value);
        table.apply(&batch);
    }

    #[test]
    fn snapshot_keeps_old_versions_until_released() {
        let mut table = Memtable::default();
        put(&mut table, b"k", b"1");
        let snap = table.acquire_snapshot();
        put(&mut table, b"k", b"2");
        put(&mut table, b"k", b"3");
        assert_eq!(table.get(snap, Cf::Default, b"k"), Some(b"1".to_vec()));
        assert_eq!(
            table.get(table.seq(), Cf::Default, b"k"),
            Some(b"3".to_vec())
        );
        table.release_snapshot(snap);
        put(&mut table, b"k", b"4");
        assert_eq!(table.versions[&internal_key(Cf::Default, b"k")].len(), 1);
    }

    #[test]
    fn sweep_drops_tombstone_only_keys() {
        let mut table = Memtable::default();
        put(&mut table, b"a", b"1");
        let mut batch = WriteBatch::new();
        batch.delete(Cf::Default, b"a");
        table.apply(&batch);
        table.sweep();
        assert!(table.versions.is_empty());
    }

    #[test]
    fn column_families_do_not_mix() {
        let mut table = Memtable::default();
        let mut batch = WriteBatch::new();
        batch.put(Cf::Lock, b"k", b"lock");
        batch.put(Cf::Default, b"k", b"data");
        table.apply(&batch);
        let all = KeyRange::all();
        let seq = table.seq();
        assert_eq!(
            table
                .scan(seq, Cf::Lock, &all, 10, Direction::Forward)
                .len(),
            1
        );
        assert_eq!(table.get(seq, Cf::Write, b"k"), None);
    }
}
