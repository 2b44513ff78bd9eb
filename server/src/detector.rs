//! Delivering a store's waits to the cluster's deadlock detector, the store that leads the
//! first region (`ferrokv_core::store` `detector.rs`), over `FerroRaft/Detect`.
//!
//! One task per store takes the calls its node queues, merges what is waiting, cuts it
//! into requests of at most `CALLS_PER_REQUEST_MAX` calls and `REQUEST_BYTES_MAX` bytes,
//! numbered in order (`seq`, per process `incarnation`: the detector ignores a late
//! request), and sends them to the detector: the store it last reached, else the first
//! region's leader as PD knows it, else this store, else every configured store in turn;
//! a store that is not the detector names the first region's leader when it knows it,
//! which is tried next. A `Deadlock` found for a call goes back to the node, which answers
//! that waiter. A request no store accepted within `TRIES_MAX` attempts is dropped, but
//! its clean-ups are kept for the next one (a lost clean-up leaves an edge that could
//! refuse a later wait); lost detects only miss cycles, whose waits then end by their
//! timeouts.
//!
//! The serving side (`FerroRaft/Detect`) refuses a request with too many calls, an
//! oversized key or a zero timestamp (`batch_from_wire`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ferrokv_client::pd::PdClient;
use ferrokv_core::limits;
use ferrokv_core::mvcc::WaitForEdge;
use ferrokv_core::store::{DetectorAnswer, DetectorBatch, DetectorCall};
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
/// Calls in one request at most (the serving side refuses more).
pub const CALLS_PER_REQUEST_MAX: usize = 4_096;
/// Bytes of keys in one request at most (well under the gRPC message limit).
const REQUEST_BYTES_MAX: usize = 1 << 20;
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
    /// This process's incarnation and the last request number it used.
    incarnation: u64,
    seq: u64,
    /// Clean-ups of requests no store accepted, sent with the next calls.
    retry: Vec<DetectorCall>,
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
            incarnation: incarnation(),
            seq: 0,
            retry: Vec::new(),
        }
    }

    /// Delivers the batches `calls` yields until the node stops.
    pub async fn run(mut self, mut calls: mpsc::Receiver<Vec<DetectorCall>>) {
        while let Some(first) = calls.recv().await {
            let mut merged = std::mem::take(&mut self.retry);
            merged.extend(first);
            while merged.len() < CALLS_PER_REQUEST_MAX {
                match calls.try_recv() {
                    Ok(more) => merged.extend(more),
                    Err(_) => break,
                }
            }
            for request in split(merged) {
                self.seq += 1;
                let batch = DetectorBatch {
                    from_store: self.own.get(),
                    incarnation: self.incarnation,
                    seq: self.seq,
                    calls: request,
                };
                if !self.deliver(&batch).await {
                    let clean_ups = batch
                        .calls
                        .into_iter()
                        .filter(|c| matches!(c, DetectorCall::CleanUpWaitFor(_)));
                    self.retry.extend(clean_ups);
                    let over = self
                        .retry
                        .len()
                        .saturating_sub(limits::DETECTOR_CALLS_QUEUED_MAX);
                    self.retry.drain(..over);
                }
            }
        }
    }

    /// Sends `batch` to the detector; false if no store took it.
    async fn deliver(&mut self, batch: &DetectorBatch) -> bool {
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
                    self.report(&batch.calls, found).await;
                    return true;
                }
                Some(DetectorAnswer::NotDetector {
                    leader: Some(leader),
                }) if !tried.contains(&leader) => queue.push_front(leader),
                Some(DetectorAnswer::NotDetector { .. }) | None => {}
            }
        }
        self.detector = None;
        let calls = batch.calls.len();
        tracing::debug!(calls, "no deadlock detector reached; waits time out");
        false
    }

    async fn first_region_leader(&self) -> Option<StoreId> {
        let pd = self.pd.as_ref()?;
        let route = pd.get_region(b"").await.ok()??;
        route.leader.map(|leader| StoreId(leader.store_id))
    }

    /// `store`'s answer, `None` if it gave none.
    async fn ask(&mut self, store: StoreId, batch: &DetectorBatch) -> Option<DetectorAnswer> {
        if store == self.own {
            return self.node.detect(batch.clone()).await.ok();
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
        let request = batch_to_wire(batch);
        let answered = tokio::time::timeout(CALL_TIMEOUT, client.detect(request)).await;
        match answered {
            Ok(Ok(response)) => answer_from_wire(&response.into_inner(), batch.calls.len()),
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

/// A process incarnation: the wall clock at start, in ns (simulated under madsim).
fn incarnation() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The bytes a call takes in a request (its key, and room for the rest).
fn call_bytes(call: &DetectorCall) -> usize {
    match call {
        DetectorCall::Detect(edge) => edge.key.len() + 64,
        DetectorCall::CleanUpWaitFor(_) => 64,
    }
}

/// `calls` cut into requests of at most `CALLS_PER_REQUEST_MAX` calls and
/// `REQUEST_BYTES_MAX` bytes, in order.
fn split(calls: Vec<DetectorCall>) -> Vec<Vec<DetectorCall>> {
    let mut requests: Vec<Vec<DetectorCall>> = Vec::new();
    let mut bytes = 0;
    for call in calls {
        let size = call_bytes(&call);
        let full = requests.last().is_none_or(|last| {
            last.len() >= CALLS_PER_REQUEST_MAX || bytes + size > REQUEST_BYTES_MAX
        });
        if full {
            requests.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        requests.last_mut().expect("pushed").push(call);
    }
    requests
}

/// The wire form of a batch; a clean-up carries no key (the detector needs its hash only).
pub fn batch_to_wire(batch: &DetectorBatch) -> DetectRequest {
    let calls = batch
        .calls
        .iter()
        .map(|call| match call {
            DetectorCall::Detect(edge) => DetectCall {
                clean_up: false,
                entry: Some(edge.to_entry()),
            },
            DetectorCall::CleanUpWaitFor(edge) => {
                let mut entry = edge.to_entry();
                entry.key.clear();
                DetectCall {
                    clean_up: true,
                    entry: Some(entry),
                }
            }
        })
        .collect();
    DetectRequest {
        calls,
        from_store: batch.from_store,
        incarnation: batch.incarnation,
        seq: batch.seq,
    }
}

/// A batch from the wire, or why it is refused: too many calls, a call without entry, a
/// zero timestamp, a key longer than any key a store holds.
pub fn batch_from_wire(request: DetectRequest) -> Result<DetectorBatch, String> {
    if request.calls.len() > CALLS_PER_REQUEST_MAX {
        return Err(format!(
            "{} detect calls in one request; at most {CALLS_PER_REQUEST_MAX}",
            request.calls.len()
        ));
    }
    let mut calls = Vec::with_capacity(request.calls.len());
    for call in &request.calls {
        let entry = call.entry.as_ref().ok_or("a detect call without entry")?;
        if entry.txn == 0 || entry.wait_for_txn == 0 {
            return Err("a detect call with a zero timestamp".into());
        }
        if entry.key.len() > limits::KEY_BYTES_MAX {
            return Err(format!("a detect call's key of {} bytes", entry.key.len()));
        }
        let edge = WaitForEdge::from_entry(entry);
        calls.push(if call.clean_up {
            DetectorCall::CleanUpWaitFor(edge)
        } else {
            DetectorCall::Detect(edge)
        });
    }
    Ok(DetectorBatch {
        from_store: request.from_store,
        incarnation: request.incarnation,
        seq: request.seq,
        calls,
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

    fn edge(txn: u64, wait_for: u64, key_bytes: usize) -> WaitForEdge {
        WaitForEdge {
            txn: TimeStamp(txn),
            wait_for_txn: TimeStamp(wait_for),
            key_hash: 7,
            key: vec![b'k'; key_bytes],
        }
    }

    fn batch(calls: Vec<DetectorCall>) -> DetectorBatch {
        DetectorBatch {
            from_store: 3,
            incarnation: 9,
            seq: 4,
            calls,
        }
    }

    #[test]
    fn batches_round_trip_and_clean_ups_travel_without_keys() {
        let detect = DetectorCall::Detect(edge(1, 2, 5));
        let clean_up = DetectorCall::CleanUpWaitFor(edge(3, 4, 5));
        let wire = batch_to_wire(&batch(vec![detect.clone(), clean_up]));
        assert!(wire.calls[1].entry.as_ref().unwrap().key.is_empty());
        let back = batch_from_wire(wire).unwrap();
        assert_eq!((back.from_store, back.incarnation, back.seq), (3, 9, 4));
        assert_eq!(back.calls[0], detect);
        assert_eq!(back.calls[1], DetectorCall::CleanUpWaitFor(edge(3, 4, 0)));
    }

    #[test]
    fn bad_remote_batches_are_refused() {
        let too_many = vec![DetectorCall::Detect(edge(1, 2, 1)); CALLS_PER_REQUEST_MAX + 1];
        assert!(batch_from_wire(batch_to_wire(&batch(too_many))).is_err());
        let zero = vec![DetectorCall::Detect(edge(0, 2, 1))];
        assert!(batch_from_wire(batch_to_wire(&batch(zero))).is_err());
        let long = vec![DetectorCall::Detect(edge(1, 2, limits::KEY_BYTES_MAX + 1))];
        assert!(batch_from_wire(batch_to_wire(&batch(long))).is_err());
        let mut missing = batch_to_wire(&batch(vec![DetectorCall::Detect(edge(1, 2, 1))]));
        missing.calls[0].entry = None;
        assert!(batch_from_wire(missing).is_err());
    }

    #[test]
    fn merged_calls_are_cut_by_count_and_bytes_in_order() {
        let small: Vec<_> = (1..=CALLS_PER_REQUEST_MAX as u64 + 1)
            .map(|n| DetectorCall::Detect(edge(n, n + 1, 1)))
            .collect();
        let cut = split(small.clone());
        assert_eq!(cut.len(), 2);
        assert_eq!(cut.concat(), small, "nothing lost or reordered");
        let big: Vec<_> = (1..=300)
            .map(|n| DetectorCall::Detect(edge(n, n + 1, limits::KEY_BYTES_MAX)))
            .collect();
        let cut = split(big);
        assert!(cut.len() >= 2);
        for request in &cut {
            let bytes: usize = request.iter().map(call_bytes).sum();
            assert!(bytes <= REQUEST_BYTES_MAX);
        }
    }

    #[test]
    fn answers_round_trip_and_bad_indexes_are_dropped() {
        let found = vec![(
            1,
            Deadlock {
                deadlock_key_hash: 9,
                wait_chain: vec![edge(2, 1, 1), edge(1, 2, 1)],
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
