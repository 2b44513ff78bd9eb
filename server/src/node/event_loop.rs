//! The node's event loop.
//!
//! Every iteration: wait for an input or the next tick deadline, drain a bounded batch of
//! Raft inputs and then of requests, tick if the deadline passed (checked on *every*
//! iteration, so a busy mailbox never starves heartbeats, check-quorum, lease renewal or log
//! GC), then drive the store. Ticks follow the node's own clock (`RuntimeClock`), which the
//! simulator makes drift.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrokv_core::env::{Clock, EngineError, KvEngine, Transport};
use ferrokv_core::store::{DetectorCall, Response, Store, Token};
use tokio::sync::{mpsc, oneshot};

use super::mailbox::{self, LaneReceiver, LaneSender};
use super::{
    hash_regions, NodeCounters, NodeHandle, NodeReport, RaftInput, RegionReport, RequestInput,
};
use crate::clock::RuntimeClock;

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Raft inputs handled per iteration before requests get their turn.
const RAFT_BATCH_MAX: usize = 512;
/// Requests handled per iteration.
const REQUEST_BATCH_MAX: usize = 256;
/// Batches of detector calls queued for the detector client before new ones are dropped
/// (a dropped wait is only detected by its timeout).
const DETECTOR_BATCHES_QUEUED_MAX: usize = 64;

/// The node: a store, its mailbox and its timers.
/// Consecutive loop passes that may skip waiting because the store has work left; a store
/// that reports work for longer is livelocked, and the loop sleeps until its next tick.
const WORK_PASSES_BEFORE_SLEEP: u32 = 1_000;

pub struct Node<E: KvEngine, T: Transport> {
    store: Store<E>,
    transport: T,
    clock: RuntimeClock,
    raft_lane: LaneReceiver<RaftInput>,
    request_lane: LaneReceiver<RequestInput>,
    raft_sender: LaneSender<RaftInput>,
    /// Requests the store took, with when the node took them.
    waiting: BTreeMap<Token, (oneshot::Sender<Response>, tokio::time::Instant)>,
    next_token: u64,
    tick_interval: Duration,
    counters: NodeCounters,
    /// Where this store's calls for the cluster's deadlock detector go (none: dropped).
    detector_calls: Option<mpsc::Sender<Vec<DetectorCall>>>,
    /// The runtime the node was made on: snapshot generation and data hashing run there,
    /// not on the node's own (`node::spawn`), which blocks in fsyncs and ends with the node.
    main: tokio::runtime::Handle,
}

impl<E: KvEngine, T: Transport> Node<E, T> {
    /// A node over `store`, and the handle to feed it.
    pub fn new(store: Store<E>, transport: T, clock: RuntimeClock) -> (Self, NodeHandle) {
        let ((raft, raft_lane), (requests, request_lane)) = mailbox::lanes(
            ferrokv_core::limits::MAILBOX_RAFT_BYTES_MAX,
            ferrokv_core::limits::MAILBOX_REQUEST_BYTES_MAX,
        );
        let tick_interval = store.config().tick_interval;
        let node = Node {
            store,
            transport,
            clock,
            raft_lane,
            request_lane,
            raft_sender: raft.clone(),
            waiting: BTreeMap::new(),
            next_token: 1,
            tick_interval,
            counters: NodeCounters::default(),
            detector_calls: None,
            main: tokio::runtime::Handle::current(),
        };
        (node, NodeHandle { raft, requests })
    }

    /// The store's calls for the cluster's deadlock detector, batched per loop pass, for a
    /// `crate::detector` client to deliver; without it they are dropped.
    pub fn detector_calls(&mut self) -> mpsc::Receiver<Vec<DetectorCall>> {
        let (sender, receiver) = mpsc::channel(DETECTOR_BATCHES_QUEUED_MAX);
        self.detector_calls = Some(sender);
        receiver
    }

    /// Runs until every handle is dropped or storage fails.
    pub async fn run(mut self) -> Result<(), EngineError> {
        let mut next_tick = self.clock.now() + self.tick_interval;
        let mut passes_with_work = 0u32;
        loop {
            let mut handled = 0;
            if self.store.has_work() && passes_with_work < WORK_PASSES_BEFORE_SLEEP {
                // Work left over from the last drive runs at once, after any queued inputs
                // (a zero sleep would wait for the timer's next millisecond).
                passes_with_work += 1;
                tokio::task::yield_now().await;
            } else {
                if passes_with_work >= WORK_PASSES_BEFORE_SLEEP {
                    tracing::warn!(
                        passes_with_work,
                        "store keeps reporting work; sleeping a tick"
                    );
                }
                passes_with_work = 0;
                let wait = self.clock.runtime_until(next_tick);
                tokio::select! {
                    biased;
                    _ = tokio::time::sleep(wait) => {}
                    input = self.raft_lane.recv() => {
                        if let Some(input) = input {
                            self.on_raft(input);
                            handled += 1;
                        }
                    }
                    input = self.request_lane.recv() => {
                        let Some(input) = input else { return Ok(()) };
                        self.on_request(input);
                        handled += 1;
                    }
                }
            }
            handled += self.drain();
            crate::offload::charge(handled).await;
            next_tick = self.tick_if_due(next_tick);
            if buggify!() {
                // A slow disk or a descheduled thread.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            self.drive()?;
        }
    }

    /// Handles queued inputs, Raft first, each lane up to its batch bound; returns how many.
    fn drain(&mut self) -> usize {
        let mut handled = 0;
        for _ in 0..RAFT_BATCH_MAX {
            let Some(input) = self.raft_lane.try_recv() else {
                break;
            };
            self.on_raft(input);
            handled += 1;
        }
        for _ in 0..REQUEST_BATCH_MAX {
            let Some(input) = self.request_lane.try_recv() else {
                break;
            };
            self.on_request(input);
            handled += 1;
        }
        handled
    }

    /// Ticks if `next_tick` passed; returns the next deadline (at most one tick per
    /// iteration: after a stall the loop resumes its rhythm instead of bursting).
    fn tick_if_due(&mut self, next_tick: ferrokv_core::env::Instant) -> ferrokv_core::env::Instant {
        let now = self.clock.now();
        self.store.set_now(now);
        if now < next_tick {
            return next_tick;
        }
        self.store.tick();
        self.counters.ticks += 1;
        let following = next_tick + self.tick_interval;
        if following <= now {
            now + self.tick_interval
        } else {
            following
        }
    }

    fn on_raft(&mut self, input: RaftInput) {
        self.store.set_now(self.clock.now());
        match input {
            RaftInput::Message(message) => self.store.on_raft_message(message),
            RaftInput::SnapshotGenerated(region, result) => {
                self.store.on_snapshot_generated(region, result)
            }
            RaftInput::SnapshotReport {
                region,
                to_peer,
                delivered,
            } => self.store.report_snapshot(region, to_peer, delivered),
        }
    }

    fn on_request(&mut self, input: RequestInput) {
        self.store.set_now(self.clock.now());
        match input {
            RequestInput::Request(request, reply) => {
                let token = Token(self.next_token);
                self.next_token += 1;
                match self.store.request(token, request) {
                    Some(response) => {
                        let _ = reply.send(response);
                    }
                    None => {
                        self.waiting
                            .insert(token, (reply, tokio::time::Instant::now()));
                    }
                }
            }
            RequestInput::Report(with_hash, reply) => self.report(with_hash, reply),
            RequestInput::MaxTsUnsynced(reply) => {
                let _ = reply.send(self.store.max_ts_unsynced());
            }
            RequestInput::MaxTsSynced(listed, pd_ts) => self.store.max_ts_synced(&listed, pd_ts),
            RequestInput::Detect(batch, reply) => {
                let _ = reply.send(self.store.serve_detector(&batch));
            }
            RequestInput::RemoteDeadlocks(found) => {
                for (edge, deadlock) in found {
                    self.store.on_remote_deadlock(&edge, deadlock);
                }
            }
        }
    }

    fn drive(&mut self) -> Result<(), EngineError> {
        let began = tokio::time::Instant::now();
        let output = self.store.drive(&self.transport)?;
        if output.syncs > 0 {
            self.counters.sync_drives += 1;
            self.counters.sync_drive_ns += nanos(began.elapsed());
        }
        // While the detector client is behind, calls wait in the store's bounded queue
        // (where a clean-up cancels its detect and detects are dropped first).
        match &self.detector_calls {
            Some(sender) if sender.capacity() == 0 => {}
            Some(sender) => {
                let calls = self.store.take_detector_calls();
                if !calls.is_empty() {
                    let sent = sender.try_send(calls);
                    assert!(sent.is_ok() || sender.is_closed(), "room was checked");
                }
            }
            None => drop(self.store.take_detector_calls()),
        }
        for (token, response) in output.responses {
            if let Some((reply, taken)) = self.waiting.remove(&token) {
                self.counters.requests_answered += 1;
                self.counters.request_ns += nanos(taken.elapsed());
                let _ = reply.send(response);
            }
        }
        for task in output.snapshot_tasks {
            self.counters.snapshots_generated += 1;
            let lane = self.raft_sender.clone();
            self.main.spawn(async move {
                let region = task.region_id;
                let result = crate::offload::run(move || task.run())
                    .await
                    .unwrap_or_else(|error| Err(EngineError::Io(error)));
                let _ = lane
                    .send(RaftInput::SnapshotGenerated(region, result))
                    .await;
            });
        }
        Ok(())
    }

    /// Answers a status request; data hashes (a full read of every region) are computed
    /// off the loop on a consistent engine view.
    fn report(&self, with_hash: bool, reply: oneshot::Sender<NodeReport>) {
        let regions = self
            .store
            .regions()
            .into_iter()
            .map(|status| RegionReport {
                status,
                data_hash: 0,
            })
            .collect();
        let mut counters = self.counters;
        counters.store = self.store.stats();
        let mut report = NodeReport {
            regions,
            trace_hash: self.store.trace_hash(),
            counters,
        };
        if !with_hash {
            let _ = reply.send(report);
            return;
        }
        let view = self.store.engine().snapshot();
        self.main.spawn(async move {
            let hashed = crate::offload::run(move || {
                hash_regions(&mut report, &view);
                report
            })
            .await;
            if let Ok(report) = hashed {
                let _ = reply.send(report);
            }
        });
    }
}
