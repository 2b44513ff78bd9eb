//! The node: the async driver of one `Store`.
//!
//! Inputs arrive on a two-lane mailbox (`mailbox.rs`): Raft traffic first, client requests
//! second. The event loop (`event_loop.rs`) ticks by deadline on every iteration, drains
//! bounded batches of inputs, and calls `Store::drive`, which group-commits every peer's
//! Raft log writes with one sync. Snapshot generation and data hashing run in tasks off the
//! loop. A storage error stops the node: its memory may be ahead of its disk, so it must
//! restart and recover.

mod event_loop;
pub mod mailbox;

use ferrokv_core::env::EngineError;
use ferrokv_core::mvcc::WaitForEdge;
use ferrokv_core::raft::region_data_hash;
use ferrokv_core::store::{
    DetectorAnswer, DetectorBatch, RegionError, RegionStatus, Request, Response,
};
use ferrokv_core::txn::Deadlock;
use ferrokv_core::types::{RegionId, TimeStamp};
use ferrokv_proto::ferrokv_raftpb::RaftMessage;
use prost::Message as _;
use tokio::sync::oneshot;

pub use event_loop::Node;

use mailbox::{LaneSender, Refused};

/// Runs `node` until it stops. In production on a thread of its own, with its own
/// current-thread runtime (TiKV's store thread): its drives block in the Raft log's fsync,
/// and meanwhile the transport's sender tasks, on the caller's runtime, send the messages
/// the drive queued before it (a leader replicates while its own log syncs; sharing a
/// worker, they would wait for the fsync). Under madsim, an ordinary task.
pub fn spawn<E, T>(node: Node<E, T>) -> tokio::task::JoinHandle<Result<(), EngineError>>
where
    E: ferrokv_core::env::KvEngine,
    T: ferrokv_core::env::Transport + Send + 'static,
{
    #[cfg(not(madsim))]
    {
        tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| EngineError::Io(format!("store thread runtime: {error}")))?;
            runtime.block_on(node.run())
        })
    }
    #[cfg(madsim)]
    {
        tokio::spawn(node.run())
    }
}

/// A region's status with a hash of its applied data (0 unless asked for).
#[derive(Clone, Debug)]
pub struct RegionReport {
    /// Status from the store.
    pub status: RegionStatus,
    /// `region_data_hash` of the applied data.
    pub data_hash: u64,
}

/// Counters a node reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeCounters {
    /// Store event counters.
    pub store: ferrokv_core::store::StoreStats,
    /// Ticks the loop produced.
    pub ticks: u64,
    /// Snapshot generation tasks run.
    pub snapshots_generated: u64,
    /// Requests the store answered later than when it took them (proposals, reads
    /// waiting for ReadIndex or a lease), on the runtime clock, not the simulated store
    /// clock. Requests answered at once are not counted.
    pub requests_answered: u64,
    /// Their total time from the node taking them to answering them.
    pub request_ns: u64,
    /// `Store::drive` calls that synced the Raft log.
    pub sync_drives: u64,
    /// Their total time (the fsync and whatever else the call did).
    pub sync_drive_ns: u64,
}

/// Everything a node reports about itself.
#[derive(Clone, Debug)]
pub struct NodeReport {
    /// Per-region status.
    pub regions: Vec<RegionReport>,
    /// `Store::trace_hash`.
    pub trace_hash: u64,
    /// Counters.
    pub counters: NodeCounters,
}

/// Raft-lane inputs.
pub(crate) enum RaftInput {
    Message(RaftMessage),
    SnapshotGenerated(RegionId, Result<raft::eraftpb::Snapshot, EngineError>),
    SnapshotReport {
        region: RegionId,
        to_peer: u64,
        delivered: bool,
    },
}

/// Request-lane inputs.
pub(crate) enum RequestInput {
    Request(Request, oneshot::Sender<Response>),
    Report(bool, oneshot::Sender<NodeReport>),
    /// `Store::max_ts_unsynced`.
    MaxTsUnsynced(oneshot::Sender<Vec<(RegionId, u64)>>),
    /// `Store::max_ts_synced` with a PD timestamp taken after the listing.
    MaxTsSynced(Vec<(RegionId, u64)>, TimeStamp),
    /// `Store::serve_detector` (a store's waits, for the cluster's detector).
    Detect(DetectorBatch, oneshot::Sender<DetectorAnswer>),
    /// `Store::on_remote_deadlock` for each wait the cluster's detector refused.
    RemoteDeadlocks(Vec<(WaitForEdge, Deadlock)>),
}

/// A cheap handle for sending inputs to the node.
#[derive(Clone)]
pub struct NodeHandle {
    raft: LaneSender<RaftInput>,
    requests: LaneSender<RequestInput>,
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

fn request_bytes(request: &Request) -> usize {
    match request {
        Request::Write { ops, .. } => ops.iter().map(|op| op.encoded_len()).sum(),
        Request::Read { .. } => 64,
        Request::Admin(admin) => admin.encoded_len(),
        Request::TxnRead { read, .. } => 64 + ranges_bytes(&read.user_ranges()),
        Request::TxnWrite { command, .. } => 64 + command.bytes(),
    }
}

fn ranges_bytes(ranges: &[ferrokv_core::types::KeyRange]) -> usize {
    ranges.iter().map(|r| r.start.len() + r.end.len()).sum()
}

impl NodeHandle {
    /// Delivers a Raft message; drops it when the node is overloaded (Raft retransmits).
    pub fn raft_message(&self, message: RaftMessage) -> Result<(), NodeError> {
        let size = message.encoded_len();
        self.raft
            .try_send(RaftInput::Message(message), size)
            .map_err(|refused| match refused {
                Refused::Full => NodeError::Busy,
                Refused::Closed => NodeError::Stopped,
            })
    }

    /// Reports how sending a snapshot to `to_peer` ended.
    pub async fn report_snapshot(&self, region: RegionId, to_peer: u64, delivered: bool) {
        let report = RaftInput::SnapshotReport {
            region,
            to_peer,
            delivered,
        };
        let _ = self.raft.send(report).await;
    }

    pub(crate) fn raft_lane(&self) -> LaneSender<RaftInput> {
        self.raft.clone()
    }

    /// Sends a request and waits for its response. A request the node never took answers
    /// `ServerIsBusy` (nothing happened, retry is safe); a request the node took but dropped
    /// when it stopped answers `NodeError::Lost`: it may have been proposed and may still
    /// commit, so its outcome is unknown.
    pub async fn request(&self, request: Request) -> Result<Response, NodeError> {
        let (reply, answer) = oneshot::channel();
        let size = request_bytes(&request);
        let input = RequestInput::Request(request.clone(), reply);
        if let Err(refused) = self.requests.try_send(input, size) {
            let reason = match refused {
                Refused::Full => "node mailbox full",
                Refused::Closed => "node stopped",
            };
            let busy = RegionError::ServerIsBusy(reason.into());
            return Ok(Response::error_for(&request, busy));
        }
        answer.await.map_err(|_| NodeError::Lost)
    }

    /// The leaders here (region, term) whose max_ts is not synced for async commit and
    /// 1PC: take a PD timestamp after this answer and hand it to `max_ts_synced`.
    pub async fn max_ts_unsynced(&self) -> Result<Vec<(RegionId, u64)>, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(RequestInput::MaxTsUnsynced(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)
    }

    /// `pd_ts` was requested from PD after `listed` came from `max_ts_unsynced`.
    pub async fn max_ts_synced(
        &self,
        listed: Vec<(RegionId, u64)>,
        pd_ts: TimeStamp,
    ) -> Result<(), NodeError> {
        self.requests
            .send(RequestInput::MaxTsSynced(listed, pd_ts))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Serves another store's waits as the cluster's deadlock detector (`NotDetector` unless
    /// this store leads the first region).
    pub async fn detect(&self, batch: DetectorBatch) -> Result<DetectorAnswer, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(RequestInput::Detect(batch, reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)
    }

    /// The cluster's detector refused these waits of this store.
    pub async fn remote_deadlocks(
        &self,
        found: Vec<(WaitForEdge, Deadlock)>,
    ) -> Result<(), NodeError> {
        self.requests
            .send(RequestInput::RemoteDeadlocks(found))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Every region's status, the store's trace hash and counters; with `with_data_hash`,
    /// also a hash of each region's applied data (computed off the node loop).
    pub async fn report(&self, with_data_hash: bool) -> Result<NodeReport, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(RequestInput::Report(with_data_hash, reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)
    }
}

/// Fills in data hashes from a consistent engine view (run off the node loop).
pub(crate) fn hash_regions<S: ferrokv_core::env::Snapshot>(report: &mut NodeReport, view: &S) {
    for region in &mut report.regions {
        region.data_hash = region_data_hash(view, &region.status.region).unwrap_or(0);
    }
}
