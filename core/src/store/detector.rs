//! The cluster's deadlock detector (TiKV `server/lock_manager/deadlock.rs`): one wait-for
//! graph for every store's pessimistic-lock waits, kept by the store that leads the first
//! region (the one holding key `""`), so a cycle across stores is found as soon as its last
//! wait is reported, not only after its waits time out.
//!
//! - **Inputs**: batches of `DetectorCall`s from stores (this one included), each store's
//!   waits as they begin and end; whether this store leads the first region; the store's
//!   clock in ms.
//! - **Outputs**: per batch, `NotDetector` (with the first region's leader if known, for
//!   the caller to try next) or the calls whose wait would close a cycle, each with its
//!   `Deadlock` (the calling store answers that waiter with it).
//! - **Invariants**: a graph belongs to one leadership of the first region (its region id
//!   and term): a call served under another starts from an empty graph, so clean-ups the
//!   detector missed while it did not lead leave nothing behind (the waits it knew time
//!   out, as TiKV's do when the detector moves); a store's batches apply in the order it
//!   sent them (a batch older than one already served from the same store incarnation is
//!   ignored: a timed-out request may arrive late); edges expire after the longest lock
//!   wait; the graph is bounded (`WAIT_FOR_EDGES_MAX`, a full graph detects nothing new),
//!   and so is the table of senders.
//!
//! Each store keeps its own graph too (`lock_waits.rs`) and refuses a local cycle at
//! once; this one adds the cycles that span stores.

use std::collections::BTreeMap;

use crate::limits;
use crate::mvcc::WaitForEdge;
use crate::txn::{Deadlock, DeadlockDetector, DetectError};
use crate::types::{RegionId, StoreId};

/// Stores whose last batch the detector remembers.
const SENDERS_MAX: usize = 4_096;

/// A store's calls, in the order it sends them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectorBatch {
    /// The sending store.
    pub from_store: u64,
    /// Its process incarnation (a restarted store numbers its batches anew).
    pub incarnation: u64,
    /// Increases with every batch the incarnation sends.
    pub seq: u64,
    pub calls: Vec<DetectorCall>,
}

/// A call for the cluster's deadlock detector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetectorCall {
    /// A waiter of the calling store: `txn` waits for `wait_for_txn` on the key.
    Detect(WaitForEdge),
    /// That wait ended.
    CleanUpWaitFor(WaitForEdge),
}

/// The detector's answer to a batch of calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetectorAnswer {
    /// This store is not the detector; the first region's leader, if this store knows it.
    NotDetector { leader: Option<StoreId> },
    /// The `Detect` calls (by index in the batch) whose wait would close a cycle.
    Deadlocks(Vec<(usize, Deadlock)>),
}

/// The graph, held while this store leads the first region.
#[derive(Debug, Default)]
pub(crate) struct ClusterDetector {
    /// The graph and the leadership (first region, term) it belongs to.
    graph: Option<(DeadlockDetector, (RegionId, u64))>,
    /// Per sending store: its incarnation and the last batch served.
    senders: BTreeMap<u64, (u64, u64)>,
}

impl ClusterDetector {
    /// Serves `batch` at `now_ms`. `leading` is this store's leadership of the first region
    /// (region and term), if it leads it; `leader` the first region's leader as this store
    /// sees it.
    pub fn serve(
        &mut self,
        batch: &DetectorBatch,
        leading: Option<(RegionId, u64)>,
        leader: Option<StoreId>,
        now_ms: u64,
    ) -> DetectorAnswer {
        let Some(leadership) = leading else {
            self.graph = None;
            self.senders.clear();
            return DetectorAnswer::NotDetector { leader };
        };
        if self.graph.as_ref().is_some_and(|(_, of)| *of != leadership) {
            self.graph = None;
            self.senders.clear();
        }
        if !self.in_order(batch) {
            return DetectorAnswer::Deadlocks(Vec::new());
        }
        let (graph, _) = self.graph.get_or_insert_with(|| {
            let graph = DeadlockDetector::new(limits::LOCK_WAIT_TIMEOUT_MS_MAX);
            (graph, leadership)
        });
        graph.expire(now_ms);
        let mut deadlocks = Vec::new();
        for (index, call) in batch.calls.iter().enumerate() {
            match call {
                DetectorCall::Detect(edge) if edge.txn == edge.wait_for_txn => {}
                DetectorCall::Detect(edge) => {
                    match graph.detect(
                        edge.txn,
                        edge.wait_for_txn,
                        edge.key_hash,
                        &edge.key,
                        now_ms,
                    ) {
                        Ok(()) | Err(DetectError::Full) => {}
                        Err(DetectError::Deadlock(found)) => deadlocks.push((index, found)),
                    }
                }
                DetectorCall::CleanUpWaitFor(edge) => {
                    graph.clean_up_wait_for(edge.txn, edge.wait_for_txn, edge.key_hash)
                }
            }
        }
        assert!(
            graph.edge_count() <= limits::WAIT_FOR_EDGES_MAX,
            "the cluster graph stays bounded"
        );
        assert!(
            self.senders.len() <= SENDERS_MAX,
            "the sender table stays bounded"
        );
        DetectorAnswer::Deadlocks(deadlocks)
    }

    /// Records `batch` as its sender's latest; false if a later one of the same incarnation
    /// was already served (a late, timed-out request).
    fn in_order(&mut self, batch: &DetectorBatch) -> bool {
        let known = self.senders.get(&batch.from_store).copied();
        if let Some((incarnation, seq)) = known {
            if incarnation == batch.incarnation && batch.seq <= seq {
                return false;
            }
        } else if self.senders.len() >= SENDERS_MAX {
            self.senders.pop_first();
        }
        self.senders
            .insert(batch.from_store, (batch.incarnation, batch.seq));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TimeStamp;

    fn edge(txn: u64, wait_for: u64, key: &[u8]) -> WaitForEdge {
        WaitForEdge {
            txn: TimeStamp(txn),
            wait_for_txn: TimeStamp(wait_for),
            key_hash: crate::txn::key_hash(key),
            key: key.to_vec(),
        }
    }

    fn batch(from_store: u64, seq: u64, calls: Vec<DetectorCall>) -> DetectorBatch {
        DetectorBatch {
            from_store,
            incarnation: 1,
            seq,
            calls,
        }
    }

    const LEADING: Option<(RegionId, u64)> = Some((RegionId(1), 5));
    const NONE: DetectorAnswer = DetectorAnswer::Deadlocks(Vec::new());

    #[test]
    fn waits_reported_by_two_stores_close_a_cycle_on_the_detector() {
        let mut detector = ClusterDetector::default();
        // Store A reports 1 -> 2; store B reports 2 -> 1: the second closes the cycle.
        let from_a = batch(1, 1, vec![DetectorCall::Detect(edge(1, 2, b"b"))]);
        assert_eq!(detector.serve(&from_a, LEADING, None, 0), NONE);
        let closing = DetectorCall::Detect(edge(2, 1, b"a"));
        let from_b = batch(
            2,
            1,
            vec![DetectorCall::Detect(edge(3, 4, b"x")), closing.clone()],
        );
        let DetectorAnswer::Deadlocks(found) = detector.serve(&from_b, LEADING, None, 10) else {
            panic!("the leader detects")
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 1, "the second call closed it");
        assert_eq!(found[0].1.wait_chain[0], edge(2, 1, b"a"));
        // A clean-up breaks the cycle.
        let clean_up = batch(1, 2, vec![DetectorCall::CleanUpWaitFor(edge(1, 2, b"b"))]);
        detector.serve(&clean_up, LEADING, None, 20);
        assert_eq!(
            detector.serve(&batch(2, 2, vec![closing]), LEADING, None, 30),
            NONE
        );
    }

    #[test]
    fn a_graph_belongs_to_one_leadership_of_the_first_region() {
        let mut detector = ClusterDetector::default();
        let detect = batch(1, 1, vec![DetectorCall::Detect(edge(1, 2, b"b"))]);
        detector.serve(&detect, LEADING, None, 0);
        let hint = Some(StoreId(7));
        let empty = batch(1, 2, vec![]);
        assert_eq!(
            detector.serve(&empty, None, hint, 1),
            DetectorAnswer::NotDetector { leader: hint }
        );
        // Leading again, or leading in a new term without a call in between, starts
        // from an empty graph: the old edge (whose clean-up went elsewhere) is gone.
        let closing = |seq| batch(2, seq, vec![DetectorCall::Detect(edge(2, 1, b"a"))]);
        assert_eq!(detector.serve(&closing(1), LEADING, None, 2), NONE);
        let retry = batch(1, 3, vec![DetectorCall::Detect(edge(1, 2, b"b"))]);
        assert!(matches!(
            detector.serve(&retry, LEADING, None, 3),
            DetectorAnswer::Deadlocks(found) if found.len() == 1
        ));
        let new_term = Some((RegionId(1), 6));
        assert_eq!(detector.serve(&closing(2), new_term, None, 4), NONE);
    }

    #[test]
    fn a_late_batch_of_a_store_is_ignored() {
        let mut detector = ClusterDetector::default();
        let detect = DetectorCall::Detect(edge(1, 2, b"b"));
        let clean_up = DetectorCall::CleanUpWaitFor(edge(1, 2, b"b"));
        detector.serve(&batch(1, 2, vec![clean_up]), LEADING, None, 0);
        // Batch 1 (the detect) timed out and arrives after batch 2: applied, it would leave
        // an edge whose clean-up already passed.
        detector.serve(&batch(1, 1, vec![detect]), LEADING, None, 1);
        let closing = batch(2, 1, vec![DetectorCall::Detect(edge(2, 1, b"a"))]);
        assert_eq!(detector.serve(&closing, LEADING, None, 2), NONE);
        // A restarted store (new incarnation) numbers from 1 again.
        let restarted = DetectorBatch {
            incarnation: 2,
            ..batch(1, 1, vec![DetectorCall::Detect(edge(1, 2, b"b"))])
        };
        assert!(matches!(
            detector.serve(&restarted, LEADING, None, 3),
            DetectorAnswer::Deadlocks(found) if found.len() == 1
        ));
    }
}
