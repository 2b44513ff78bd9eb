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
//! - **Invariants**: only the first region's leader holds a graph: losing that leadership
//!   drops it (the waits it knew time out, as TiKV's do when the detector moves); edges
//!   expire after the longest lock wait, so lost clean-ups leave no ghost; the graph is
//!   bounded (`WAIT_FOR_EDGES_MAX`, a full graph detects nothing new).
//!
//! Each store keeps its own graph too (`lock_waits.rs`) and refuses a local cycle at
//! once; this one adds the cycles that span stores.

use crate::limits;
use crate::mvcc::WaitForEdge;
use crate::txn::{Deadlock, DeadlockDetector, DetectError};
use crate::types::StoreId;

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
    graph: Option<DeadlockDetector>,
}

impl ClusterDetector {
    /// Serves `calls` at `now_ms`. `leads_first_region` is this store's leadership of the
    /// first region; `leader` the first region's leader as this store sees it.
    pub fn serve(
        &mut self,
        calls: &[DetectorCall],
        leads_first_region: bool,
        leader: Option<StoreId>,
        now_ms: u64,
    ) -> DetectorAnswer {
        if !leads_first_region {
            self.graph = None;
            return DetectorAnswer::NotDetector { leader };
        }
        let graph = self
            .graph
            .get_or_insert_with(|| DeadlockDetector::new(limits::LOCK_WAIT_TIMEOUT_MS_MAX));
        graph.expire(now_ms);
        let mut deadlocks = Vec::new();
        for (index, call) in calls.iter().enumerate() {
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
        DetectorAnswer::Deadlocks(deadlocks)
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

    #[test]
    fn waits_reported_by_two_stores_close_a_cycle_on_the_detector() {
        let mut detector = ClusterDetector::default();
        // Store A reports 1 -> 2; store B reports 2 -> 1: the second closes the cycle.
        let from_a = [DetectorCall::Detect(edge(1, 2, b"b"))];
        assert_eq!(
            detector.serve(&from_a, true, None, 0),
            DetectorAnswer::Deadlocks(vec![])
        );
        let from_b = [
            DetectorCall::Detect(edge(3, 4, b"x")),
            DetectorCall::Detect(edge(2, 1, b"a")),
        ];
        let DetectorAnswer::Deadlocks(found) = detector.serve(&from_b, true, None, 10) else {
            panic!("the leader detects")
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 1, "the second call closed it");
        assert_eq!(found[0].1.wait_chain[0], edge(2, 1, b"a"));
        // A clean-up breaks the cycle.
        detector.serve(
            &[DetectorCall::CleanUpWaitFor(edge(1, 2, b"b"))],
            true,
            None,
            20,
        );
        assert_eq!(
            detector.serve(&from_b[1..], true, None, 30),
            DetectorAnswer::Deadlocks(vec![])
        );
    }

    #[test]
    fn only_the_first_regions_leader_keeps_a_graph() {
        let mut detector = ClusterDetector::default();
        detector.serve(&[DetectorCall::Detect(edge(1, 2, b"b"))], true, None, 0);
        let hint = Some(StoreId(7));
        assert_eq!(
            detector.serve(&[], false, hint, 1),
            DetectorAnswer::NotDetector { leader: hint }
        );
        // Leading again starts from an empty graph: the old edge is gone.
        assert_eq!(
            detector.serve(&[DetectorCall::Detect(edge(2, 1, b"a"))], true, None, 2),
            DetectorAnswer::Deadlocks(vec![])
        );
    }
}
