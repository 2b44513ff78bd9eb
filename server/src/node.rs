//! The node event loop: the async driver of one `Store`.
//!
//! Inputs arrive on one bounded mailbox (Raft messages from the transport, client requests
//! with a reply channel) and from a tick timer. Each iteration drains up to
//! `MAILBOX_BATCH_MAX` inputs, then calls `Store::drive`, which polls every peer that has
//! work and group-commits their Raft log writes with one sync. A storage error stops the
//! node: its memory may be ahead of its disk, so it must restart and recover.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrokv_core::env::{Clock, KvEngine, Transport};
use ferrokv_core::raft::region_data_hash;
use ferrokv_core::store::{RegionError, RegionStatus, Request, Response, Store, Token};
use ferrokv_proto::ferrokv_raftpb::RaftMessage;
use tokio::sync::{mpsc, oneshot};

/// Inputs a mailbox holds at most; beyond it senders get `ServerIsBusy` / dropped messages.
pub const MAILBOX_CAPACITY: usize = 4096;
/// Inputs handled per loop iteration before driving the store.
const MAILBOX_BATCH_MAX: usize = 256;

/// A region's status with a hash of its applied data.
#[derive(Clone, Debug)]
pub struct RegionReport {
    /// Status from the store.
    pub status: RegionStatus,
    /// `region_data_hash` of the applied data.
    pub data_hash: u64,
}

/// Everything a node reports about itself.
#[derive(Clone, Debug)]
pub struct NodeReport {
    /// Per-region status.
    pub regions: Vec<RegionReport>,
    /// `Store::trace_hash`.
    pub trace_hash: u64,
}

enum Input {
    Raft(RaftMessage),
    Request(Request, oneshot::Sender<Response>),
    Report(oneshot::Sender<NodeReport>),
}

/// A cheap handle for sending inputs to the node.
#[derive(Clone)]
pub struct NodeHandle {
    mailbox: mpsc::Sender<Input>,
}

/// Why a request got no answer from the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The mailbox is full: the node is overloaded.
    #[error("node mailbox is full")]
    Busy,
    /// The node stopped (storage failure or shutdown).
    #[error("node is not running")]
    Stopped,
    /// The node stopped after taking the request: its outcome is unknown.
    #[error("node stopped while serving the request; outcome unknown")]
    Lost,
}

impl NodeHandle {
    /// Delivers a Raft message; drops it when the node is overloaded (Raft retransmits).
    pub fn raft_message(&self, message: RaftMessage) -> Result<(), NodeError> {
        self.mailbox
            .try_send(Input::Raft(message))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => NodeError::Busy,
                mpsc::error::TrySendError::Closed(_) => NodeError::Stopped,
            })
    }

    /// Sends a request and waits for its response. A request the node never took answers
    /// `ServerIsBusy` (nothing happened, retry is safe); a request the node took but dropped
    /// when it stopped answers `NodeError::Lost`: it may have been proposed and may still
    /// commit, so its outcome is unknown.
    pub async fn request(&self, request: Request) -> Result<Response, NodeError> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .mailbox
            .try_send(Input::Request(request.clone(), reply));
        if let Err(error) = sent {
            let reason = match error {
                mpsc::error::TrySendError::Full(_) => "node mailbox full",
                mpsc::error::TrySendError::Closed(_) => "node stopped",
            };
            let busy = RegionError::ServerIsBusy(reason.into());
            return Ok(Response::error_for(&request, busy));
        }
        answer.await.map_err(|_| NodeError::Lost)
    }

    /// Every region's status and data hash, and the store's trace hash.
    pub async fn report(&self) -> Result<NodeReport, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.mailbox
            .send(Input::Report(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)
    }
}

/// The node: a store, its mailbox and its timers.
pub struct Node<E: KvEngine, T: Transport, C: Clock> {
    store: Store<E>,
    transport: T,
    clock: C,
    mailbox: mpsc::Receiver<Input>,
    waiting: BTreeMap<Token, oneshot::Sender<Response>>,
    next_token: u64,
    tick_interval: Duration,
}

impl<E: KvEngine, T: Transport, C: Clock> Node<E, T, C> {
    /// A node over `store`, and the handle to feed it.
    pub fn new(
        store: Store<E>,
        transport: T,
        clock: C,
        tick_interval: Duration,
    ) -> (Self, NodeHandle) {
        let (sender, mailbox) = mpsc::channel(MAILBOX_CAPACITY);
        let node = Node {
            store,
            transport,
            clock,
            mailbox,
            waiting: BTreeMap::new(),
            next_token: 1,
            tick_interval,
        };
        (node, NodeHandle { mailbox: sender })
    }

    /// Runs until every handle is dropped or storage fails.
    pub async fn run(mut self) -> Result<(), ferrokv_core::env::EngineError> {
        let mut ticker = tokio::time::interval(self.tick_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                input = self.mailbox.recv() => {
                    let Some(input) = input else { return Ok(()) };
                    self.handle(input);
                    for _ in 1..MAILBOX_BATCH_MAX {
                        match self.mailbox.try_recv() {
                            Ok(input) => self.handle(input),
                            Err(_) => break,
                        }
                    }
                }
                _ = ticker.tick() => {
                    self.store.set_now(self.clock.now());
                    self.store.tick();
                }
            }
            if buggify!() {
                // A slow disk or a descheduled thread.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            self.drive()?;
        }
    }

    fn handle(&mut self, input: Input) {
        self.store.set_now(self.clock.now());
        match input {
            Input::Raft(message) => self.store.on_raft_message(message),
            Input::Request(request, reply) => {
                let token = Token(self.next_token);
                self.next_token += 1;
                match self.store.request(token, request) {
                    Some(response) => {
                        let _ = reply.send(response);
                    }
                    None => {
                        self.waiting.insert(token, reply);
                    }
                }
            }
            Input::Report(reply) => {
                let _ = reply.send(self.report());
            }
        }
    }

    fn drive(&mut self) -> Result<(), ferrokv_core::env::EngineError> {
        let output = self.store.drive(&self.transport)?;
        for (token, response) in output.responses {
            if let Some(reply) = self.waiting.remove(&token) {
                let _ = reply.send(response);
            }
        }
        Ok(())
    }

    fn report(&self) -> NodeReport {
        let view = self.store.engine().snapshot();
        let regions = self
            .store
            .regions()
            .into_iter()
            .map(|status| {
                let data_hash = region_data_hash(&view, &status.region).unwrap_or(0);
                RegionReport { status, data_hash }
            })
            .collect();
        NodeReport {
            regions,
            trace_hash: self.store.trace_hash(),
        }
    }
}
