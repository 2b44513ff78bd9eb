//! Delivering a store's waits to the cluster's deadlock detector, the store that leads the
//! first region (`ferrokv_core::store` `detector.rs`), over `FerroRaft/Detect`.
//!
//! One task per store takes the batches of `DetectorCall`s its node queues, merges what is
//! waiting, and sends them to the detector: the store it last reached, else the first
//! region's leader as PD knows it, else this store, else every configured store in turn;
//! a store that is not the detector names the first region's leader when it knows it,
//! which is tried next. A `Deadlock` found for a call goes back to the node, which answers
//! that waiter. A batch no store accepted within `TRIES_MAX` attempts is dropped: its
//! waits then end by their timeouts, as they would with no detector at all.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ferrokv_client::pd::PdClient;
use ferrokv_core::mvcc::WaitForEdge;
use ferrokv_core::store::{DetectorAnswer, DetectorCall};
use ferrokv_core::txn::Deadlock;
use ferrokv_core::types::StoreId;
use ferrokv_proto::ferrokv_raftpb::ferro_raft_client::FerroRaftClient;
use ferrokv_proto::ferrokv_raftpb::{DetectCall, DetectRequest, DetectResponse, DetectedDeadlock};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::node::NodeHandle;
use crate::transport::{connect_store, StoreResolver};

/// Stores asked for one batch before it is dropped.
const TRIES_MAX: usize = 8;
/// Calls merged into one request at most.
const CALLS_PER_REQUEST_MAX: usize = 4_096;
/// Deadline of one `Detect` call.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Where this store's waits go.
pub struct DetectorClient {
    node: NodeHandle,
    own: StoreId,
    resolver: Arc<dyn StoreResolver>,
    /// PD, to find the first region's leader (stores run by PD).
    pd: Option<Arc<PdClient>>,
    /// Stores to try when nothing better is known (a static configuration's).
    configured: Vec<StoreId>,
    /// The store that last answered as the detector.
    detector: Option<StoreId>,
    clients: BTreeMap<StoreId, FerroRaftClient<Channel>>,
}

impl DetectorClient {
    /// A client for `own`'s node; `configured` are the stores of a static configuration
    /// (empty with PD).
    pub fn new(
        node: NodeHandle,
        own: StoreId,
        resolver: Arc<dyn StoreResolver>,
        pd: Option<Arc<PdClient>>,
        configured: Vec<StoreId>,
    ) -> DetectorClient {
        DetectorClient {
            node,
            own,
            resolver,
            pd,
            configured,
            detector: None,
            clients: BTreeMap::new(),
        }
    }

    /// Delivers the batches `calls` yields until the node stops.
    pub async fn run(mut self, mut calls: mpsc::Receiver<Vec<DetectorCall>>) {
        while let Some(mut batch) = calls.recv().await {
            while batch.len() < CALLS_PER_REQUEST_MAX {
                match calls.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            self.deliver(&batch).await;
        }
    }

    async fn deliver(&mut self, batch: &[DetectorCall]) {
        let mut queue: VecDeque<StoreId> = self.detector.into_iter().collect();
        if queue.is_empty() {
            queue.extend(self.first_region_leader().await);
        }
        queue.push_back(self.own);
        queue.extend(self.configured.iter().copied());
        let mut tried = BTreeSet::new();
        while let Some(store) = queue.pop_front() {
            if tried.len() >= TRIES_MAX {
                break;
            }
            if !tried.insert(store) {
                continue;
            }
            match self.ask(store, batch).await {
                Some(DetectorAnswer::Deadlocks(found)) => {
                    self.detector = Some(store);
                    self.report(batch, found).await;
                    return;
                }
                Some(DetectorAnswer::NotDetector {
                    leader: Some(leader),
                }) if !tried.contains(&leader) => queue.push_front(leader),
                Some(DetectorAnswer::NotDetector { .. }) | None => {}
            }
        }
        self.detector = None;
        tracing::debug!(
            calls = batch.len(),
            "no deadlock detector reached; waits time out"
        );
    }

    async fn first_region_leader(&self) -> Option<StoreId> {
        let pd = self.pd.as_ref()?;
        let route = pd.get_region(b"").await.ok()??;
        route.leader.map(|leader| StoreId(leader.store_id))
    }

    /// `store`'s answer, `None` if it gave none.
    async fn ask(&mut self, store: StoreId, batch: &[DetectorCall]) -> Option<DetectorAnswer> {
        if store == self.own {
            return self.node.detect(batch.to_vec()).await.ok();
        }
        let mut client = match self.clients.get(&store) {
            Some(client) => client.clone(),
            None => {
                let address = self.resolver.resolve(store)?;
                let client = connect_store(&address).await.ok()?;
                self.clients.insert(store, client.clone());
                client
            }
        };
        let request = DetectRequest {
            calls: batch.iter().map(call_to_wire).collect(),
        };
        let answered = tokio::time::timeout(CALL_TIMEOUT, client.detect(request)).await;
        match answered {
            Ok(Ok(response)) => answer_from_wire(&response.into_inner(), batch.len()),
            _ => {
                self.clients.remove(&store);
                None
            }
        }
    }

    async fn report(&self, batch: &[DetectorCall], found: Vec<(usize, Deadlock)>) {
        let refused: Vec<(WaitForEdge, Deadlock)> = found
            .into_iter()
            .filter_map(|(index, deadlock)| match batch.get(index) {
                Some(DetectorCall::Detect(edge)) => Some((edge.clone(), deadlock)),
                _ => None,
            })
            .collect();
        if !refused.is_empty() {
            tracing::debug!(
                waits = refused.len(),
                "the cluster's detector found deadlocks"
            );
            let _ = self.node.remote_deadlocks(refused).await;
        }
    }
}

/// The wire form of a call.
pub fn call_to_wire(call: &DetectorCall) -> DetectCall {
    let (clean_up, edge) = match call {
        DetectorCall::Detect(edge) => (false, edge),
        DetectorCall::CleanUpWaitFor(edge) => (true, edge),
    };
    DetectCall {
        clean_up,
        entry: Some(edge.to_entry()),
    }
}

/// A call from the wire; `None` without an entry.
pub fn call_from_wire(call: &DetectCall) -> Option<DetectorCall> {
    let edge = WaitForEdge::from_entry(call.entry.as_ref()?);
    Some(if call.clean_up {
        DetectorCall::CleanUpWaitFor(edge)
    } else {
        DetectorCall::Detect(edge)
    })
}

/// The wire form of an answer.
pub fn answer_to_wire(answer: DetectorAnswer) -> DetectResponse {
    match answer {
        DetectorAnswer::NotDetector { leader } => DetectResponse {
            not_detector: true,
            leader_store_id: leader.map_or(0, StoreId::get),
            deadlocks: Vec::new(),
        },
        DetectorAnswer::Deadlocks(found) => DetectResponse {
            deadlocks: found
                .into_iter()
                .map(|(index, deadlock)| DetectedDeadlock {
                    call: u32::try_from(index).expect("batches are bounded"),
                    deadlock_key_hash: deadlock.deadlock_key_hash,
                    wait_chain: deadlock
                        .wait_chain
                        .iter()
                        .map(WaitForEdge::to_entry)
                        .collect(),
                })
                .collect(),
            ..Default::default()
        },
    }
}

/// An answer from the wire to a batch of `calls` calls; deadlocks naming no call of the
/// batch or with an empty chain are dropped.
pub fn answer_from_wire(response: &DetectResponse, calls: usize) -> Option<DetectorAnswer> {
    if response.not_detector {
        let leader = (response.leader_store_id != 0).then_some(StoreId(response.leader_store_id));
        return Some(DetectorAnswer::NotDetector { leader });
    }
    let found = response
        .deadlocks
        .iter()
        .filter_map(|d| {
            let index = usize::try_from(d.call).ok().filter(|i| *i < calls)?;
            let wait_chain: Vec<WaitForEdge> =
                d.wait_chain.iter().map(WaitForEdge::from_entry).collect();
            (!wait_chain.is_empty()).then_some((
                index,
                Deadlock {
                    deadlock_key_hash: d.deadlock_key_hash,
                    wait_chain,
                },
            ))
        })
        .collect();
    Some(DetectorAnswer::Deadlocks(found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrokv_core::types::TimeStamp;

    fn edge(txn: u64, wait_for: u64) -> WaitForEdge {
        WaitForEdge {
            txn: TimeStamp(txn),
            wait_for_txn: TimeStamp(wait_for),
            key_hash: 7,
            key: b"k".to_vec(),
        }
    }

    #[test]
    fn calls_and_answers_round_trip_and_bad_indexes_are_dropped() {
        for call in [
            DetectorCall::Detect(edge(1, 2)),
            DetectorCall::CleanUpWaitFor(edge(3, 4)),
        ] {
            assert_eq!(call_from_wire(&call_to_wire(&call)), Some(call));
        }
        assert_eq!(call_from_wire(&DetectCall::default()), None);
        let found = vec![(
            1,
            Deadlock {
                deadlock_key_hash: 9,
                wait_chain: vec![edge(2, 1), edge(1, 2)],
            },
        )];
        let wire = answer_to_wire(DetectorAnswer::Deadlocks(found.clone()));
        assert_eq!(
            answer_from_wire(&wire, 2),
            Some(DetectorAnswer::Deadlocks(found))
        );
        assert_eq!(
            answer_from_wire(&wire, 1),
            Some(DetectorAnswer::Deadlocks(vec![])),
            "a deadlock naming a call the batch does not have"
        );
        let not = DetectorAnswer::NotDetector {
            leader: Some(StoreId(3)),
        };
        assert_eq!(answer_from_wire(&answer_to_wire(not.clone()), 0), Some(not));
    }
}
