//! Deadlock detection over the wait-for graph (TiKV `server/lock_manager/deadlock.rs`).
//!
//! - **Inputs**: "transaction `txn` waits for `wait_for_txn` on a key" edges, removals when a
//!   wait ends, and the current time in ms (an input, never read from a clock).
//! - **Outputs**: on an insert that would close a cycle, the [`Deadlock`] with the key hash
//!   of the edge that closes it and the whole wait chain (new edge first, then the path from
//!   `wait_for_txn` back to `txn`); the edge is then not inserted.
//! - **Invariants**: the graph never holds a cycle of live edges; an edge lives `ttl_ms`
//!   after its last insert (the longest lock wait), so lost clean-ups cannot leave ghosts
//!   forever; at most `WAIT_FOR_EDGES_MAX` edges; iteration is ordered (`BTreeMap`), so the
//!   reported cycle is deterministic.

use std::collections::{BTreeMap, BTreeSet};

use ferrokv_proto::kvrpcpb;

use crate::limits;
use crate::mvcc::{self, WaitForEdge};
use crate::types::TimeStamp;

/// A cycle was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadlock {
    /// Hash of the key on which the cycle's last transaction waits for the requester.
    pub deadlock_key_hash: u64,
    /// The new edge first, then the path back to the requester.
    pub wait_chain: Vec<WaitForEdge>,
}

impl Deadlock {
    /// The error the requester gets: `start_ts` waited for the holder of `lock_info`.
    pub fn into_error(self, start_ts: TimeStamp, lock_info: &kvrpcpb::LockInfo) -> mvcc::Error {
        assert_eq!(
            self.wait_chain[0].txn, start_ts,
            "the chain starts at the requester"
        );
        mvcc::Error::Deadlock {
            start_ts,
            lock_ts: TimeStamp(lock_info.lock_version),
            lock_key: lock_info.key.clone(),
            deadlock_key_hash: self.deadlock_key_hash,
            wait_chain: self.wait_chain,
        }
    }
}

/// Why an edge was not inserted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    /// Waiting would close a cycle.
    #[error("deadlock")]
    Deadlock(Deadlock),
    /// The graph is full; the caller should not wait.
    #[error("wait-for graph full")]
    Full,
}

#[derive(Clone, Debug)]
struct Edge {
    key: Vec<u8>,
    touched_ms: u64,
}

/// The wait-for graph: txn → (wait_for_txn → (key hash → edge)).
#[derive(Debug)]
pub struct DeadlockDetector {
    graph: BTreeMap<TimeStamp, BTreeMap<TimeStamp, BTreeMap<u64, Edge>>>,
    edges: usize,
    ttl_ms: u64,
}

impl DeadlockDetector {
    /// A detector whose edges expire `ttl_ms` after their last insert.
    pub fn new(ttl_ms: u64) -> DeadlockDetector {
        assert!(ttl_ms > 0);
        DeadlockDetector {
            graph: BTreeMap::new(),
            edges: 0,
            ttl_ms,
        }
    }

    /// Number of live or not yet expired edges.
    pub fn edge_count(&self) -> usize {
        self.edges
    }

    fn live(&self, edge: &Edge, now_ms: u64) -> bool {
        now_ms < edge.touched_ms.saturating_add(self.ttl_ms)
    }

    /// Records that `txn` waits for `wait_for_txn` on `key`, unless that closes a cycle.
    pub fn detect(
        &mut self,
        txn: TimeStamp,
        wait_for_txn: TimeStamp,
        key_hash: u64,
        key: &[u8],
        now_ms: u64,
    ) -> Result<(), DetectError> {
        assert_ne!(txn, wait_for_txn, "a txn never waits for itself");
        if let Some((deadlock_key_hash, path)) = self.find_path(wait_for_txn, txn, now_ms) {
            let first = WaitForEdge {
                txn,
                wait_for_txn,
                key_hash,
                key: key.to_vec(),
            };
            let mut wait_chain = vec![first];
            wait_chain.extend(path);
            return Err(DetectError::Deadlock(Deadlock {
                deadlock_key_hash,
                wait_chain,
            }));
        }
        let targets = self.graph.entry(txn).or_default();
        let edges = targets.entry(wait_for_txn).or_default();
        if !edges.contains_key(&key_hash) && self.edges >= limits::WAIT_FOR_EDGES_MAX {
            return Err(DetectError::Full);
        }
        let touched_ms = now_ms;
        let key = key.to_vec();
        if edges.insert(key_hash, Edge { key, touched_ms }).is_none() {
            self.edges += 1;
        }
        Ok(())
    }

    /// A path of live edges `from` → … → `to`: the key hash of its last edge and its edges.
    fn find_path(
        &self,
        from: TimeStamp,
        to: TimeStamp,
        now_ms: u64,
    ) -> Option<(u64, Vec<WaitForEdge>)> {
        let mut parent: BTreeMap<TimeStamp, WaitForEdge> = BTreeMap::new();
        let mut visited = BTreeSet::from([from]);
        let mut stack = vec![from];
        while let Some(node) = stack.pop() {
            for (&next, edges) in self.graph.get(&node).into_iter().flatten() {
                let Some((&hash, edge)) = edges.iter().find(|(_, e)| self.live(e, now_ms)) else {
                    continue;
                };
                let step = WaitForEdge {
                    txn: node,
                    wait_for_txn: next,
                    key_hash: hash,
                    key: edge.key.clone(),
                };
                if next == to {
                    return Some((hash, Self::chain(&parent, from, step)));
                }
                if visited.insert(next) {
                    parent.insert(next, step);
                    stack.push(next);
                }
            }
        }
        None
    }

    fn chain(
        parent: &BTreeMap<TimeStamp, WaitForEdge>,
        from: TimeStamp,
        last: WaitForEdge,
    ) -> Vec<WaitForEdge> {
        let mut chain = vec![last];
        let mut node = chain[0].txn;
        while node != from {
            let step = parent[&node].clone();
            node = step.txn;
            chain.push(step);
            assert!(chain.len() <= parent.len() + 1, "parent links form a path");
        }
        chain.reverse();
        chain
    }

    /// `txn` stopped waiting for `wait_for_txn` on the key with `key_hash`.
    pub fn clean_up_wait_for(&mut self, txn: TimeStamp, wait_for_txn: TimeStamp, key_hash: u64) {
        let Some(targets) = self.graph.get_mut(&txn) else {
            return;
        };
        if let Some(edges) = targets.get_mut(&wait_for_txn) {
            if edges.remove(&key_hash).is_some() {
                self.edges -= 1;
            }
            if edges.is_empty() {
                targets.remove(&wait_for_txn);
            }
        }
        if targets.is_empty() {
            self.graph.remove(&txn);
        }
    }

    /// `txn` finished: it waits for nothing any more.
    pub fn clean_up(&mut self, txn: TimeStamp) {
        if let Some(targets) = self.graph.remove(&txn) {
            let removed: usize = targets.values().map(BTreeMap::len).sum();
            assert!(removed <= self.edges);
            self.edges -= removed;
        }
    }

    /// Drops every edge not refreshed within the TTL.
    pub fn expire(&mut self, now_ms: u64) {
        let ttl_ms = self.ttl_ms;
        let mut removed = 0;
        self.graph.retain(|_, targets| {
            targets.retain(|_, edges| {
                let before = edges.len();
                edges.retain(|_, edge| now_ms < edge.touched_ms.saturating_add(ttl_ms));
                removed += before - edges.len();
                !edges.is_empty()
            });
            !targets.is_empty()
        });
        assert!(removed <= self.edges);
        self.edges -= removed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(raw: u64) -> TimeStamp {
        TimeStamp(raw)
    }

    #[test]
    fn two_party_cycle_is_found() {
        let mut detector = DeadlockDetector::new(1000);
        detector.detect(ts(1), ts(2), 11, b"k2", 0).unwrap();
        let Err(DetectError::Deadlock(found)) = detector.detect(ts(2), ts(1), 22, b"k1", 5) else {
            panic!("expected a deadlock");
        };
        assert_eq!(found.deadlock_key_hash, 11);
        let pairs: Vec<_> = found
            .wait_chain
            .iter()
            .map(|e| (e.txn, e.wait_for_txn))
            .collect();
        assert_eq!(pairs, vec![(ts(2), ts(1)), (ts(1), ts(2))]);
        assert_eq!(found.wait_chain[0].key, b"k1");
        assert_eq!(detector.edge_count(), 1, "the closing edge is not inserted");
    }

    #[test]
    fn longer_cycle_reports_the_whole_chain() {
        let mut detector = DeadlockDetector::new(1000);
        detector.detect(ts(1), ts(2), 12, b"b", 0).unwrap();
        detector.detect(ts(2), ts(3), 23, b"c", 0).unwrap();
        detector.detect(ts(4), ts(3), 43, b"c", 0).unwrap();
        let Err(DetectError::Deadlock(found)) = detector.detect(ts(3), ts(1), 31, b"a", 1) else {
            panic!("expected a deadlock");
        };
        let pairs: Vec<_> = found
            .wait_chain
            .iter()
            .map(|e| (e.txn, e.wait_for_txn))
            .collect();
        assert_eq!(pairs, vec![(ts(3), ts(1)), (ts(1), ts(2)), (ts(2), ts(3))]);
        assert_eq!(found.deadlock_key_hash, 23);
    }

    #[test]
    fn clean_up_and_expiry_break_cycles() {
        let mut detector = DeadlockDetector::new(100);
        detector.detect(ts(1), ts(2), 1, b"x", 0).unwrap();
        detector.clean_up_wait_for(ts(1), ts(2), 1);
        assert_eq!(detector.edge_count(), 0);
        detector.detect(ts(2), ts(1), 2, b"y", 0).unwrap();
        detector
            .detect(ts(1), ts(2), 1, b"x", 50)
            .expect_err("cycle while live");
        assert!(
            detector.detect(ts(1), ts(2), 1, b"x", 100).is_ok(),
            "expired edge ignored"
        );
        detector.clean_up(ts(1));
        detector.expire(1_000);
        assert_eq!(detector.edge_count(), 0);
        assert!(detector.graph.is_empty());
    }
}
