//! What the service asks the driver, and the handle it asks through.
//!
//! Every call carries a oneshot reply. The queue into the driver is bounded
//! (`CALL_QUEUE_MAX`): a full queue answers `PdError::Busy` at once rather than growing.

use ferrokv_core::types::TimeStamp;
use ferrokv_pd_core::ask_split::AskSplitError;
use ferrokv_pd_core::coordinator::HeartbeatReply;
use ferrokv_pd_core::heartbeat::HeartbeatError;
use ferrokv_pd_core::{PdCommand, PdLeader, PdOutcome, PdState};
use ferrokv_proto::pdpb;
use tokio::sync::{mpsc, oneshot};

/// Calls queued into the driver before new ones are refused as busy.
pub const CALL_QUEUE_MAX: usize = 16_384;

/// Why the driver could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdError {
    /// This member is not the PD leader (`leader` is the member id it knows, if any).
    #[error("not leader (leader is member {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// This member leads but has not finished taking over (reading the state, persisting
    /// the first windows) or cannot prove its lease right now.
    #[error("PD leader is not ready to serve yet")]
    NotReady,
    /// The driver's queues are full.
    #[error("PD is busy: {0}")]
    Busy(&'static str),
    /// The driver stopped.
    #[error("PD driver stopped")]
    Stopped,
    /// The state change was not replicated; it may or may not have applied.
    #[error("proposal failed: {0}")]
    ProposalFailed(String),
    /// The request is malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// The reply channel of a call.
pub type Reply<T> = oneshot::Sender<Result<T, PdError>>;

/// What a query sees: the leader's adopted state and memory, and the wall-clock time.
pub struct Serving<'a> {
    /// The replicated state as this leader adopted it.
    pub state: &'a PdState,
    /// The leader's memory (coordinator, allocators).
    pub leader: &'a PdLeader,
    /// Wall-clock ms.
    pub now_ms: u64,
}

/// A read-only question answered on the driver's task.
pub type Query = Box<dyn FnOnce(Result<Serving<'_>, PdError>) + Send>;

/// One request to the driver.
pub enum Call {
    /// `count` timestamps; the largest comes back.
    Tso { count: u32, reply: Reply<TimeStamp> },
    /// One fresh id.
    AllocId { reply: Reply<u64> },
    /// Replicate a command; the reply carries its outcome once applied.
    Propose {
        command: Box<PdCommand>,
        reply: Reply<PdOutcome>,
    },
    /// A region heartbeat.
    RegionHeartbeat {
        request: Box<pdpb::RegionHeartbeatRequest>,
        reply: Reply<Result<HeartbeatReply, HeartbeatError>>,
    },
    /// A store heartbeat.
    StoreHeartbeat {
        stats: Box<pdpb::StoreStats>,
        reply: Reply<Result<(), HeartbeatError>>,
    },
    /// Ids for a batch split.
    AskBatchSplit {
        request: Box<pdpb::AskBatchSplitRequest>,
        reply: Reply<Result<Vec<pdpb::SplitId>, AskSplitError>>,
    },
    /// A read-only question.
    Query(Query),
}

impl Call {
    /// Answers the call with `error`.
    pub fn fail(self, error: PdError) {
        match self {
            Call::Tso { reply, .. } => drop(reply.send(Err(error))),
            Call::AllocId { reply } => drop(reply.send(Err(error))),
            Call::Propose { reply, .. } => drop(reply.send(Err(error))),
            Call::RegionHeartbeat { reply, .. } => drop(reply.send(Err(error))),
            Call::StoreHeartbeat { reply, .. } => drop(reply.send(Err(error))),
            Call::AskBatchSplit { reply, .. } => drop(reply.send(Err(error))),
            Call::Query(query) => query(Err(error)),
        }
    }
}

/// The service's handle on the driver.
#[derive(Clone)]
pub struct DriverHandle {
    calls: mpsc::Sender<Call>,
}

impl DriverHandle {
    /// A handle and the receiving end the driver reads.
    pub fn channel() -> (DriverHandle, mpsc::Receiver<Call>) {
        let (calls, receiver) = mpsc::channel(CALL_QUEUE_MAX);
        (DriverHandle { calls }, receiver)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Call) -> Result<T, PdError> {
        let (reply, answer) = oneshot::channel();
        self.calls
            .try_send(make(reply))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => PdError::Busy("call queue full"),
                mpsc::error::TrySendError::Closed(_) => PdError::Stopped,
            })?;
        answer.await.map_err(|_| PdError::Stopped)?
    }

    /// `count` timestamps; returns the largest.
    pub async fn tso(&self, count: u32) -> Result<TimeStamp, PdError> {
        self.ask(|reply| Call::Tso { count, reply }).await
    }

    /// One fresh id.
    pub async fn alloc_id(&self) -> Result<u64, PdError> {
        self.ask(|reply| Call::AllocId { reply }).await
    }

    /// Replicates `command` and returns its outcome.
    pub async fn propose(&self, command: PdCommand) -> Result<PdOutcome, PdError> {
        let command = Box::new(command);
        self.ask(|reply| Call::Propose { command, reply }).await
    }

    /// Handles a region heartbeat.
    pub async fn region_heartbeat(
        &self,
        request: pdpb::RegionHeartbeatRequest,
    ) -> Result<Result<HeartbeatReply, HeartbeatError>, PdError> {
        let request = Box::new(request);
        self.ask(|reply| Call::RegionHeartbeat { request, reply })
            .await
    }

    /// Handles a store heartbeat.
    pub async fn store_heartbeat(
        &self,
        stats: pdpb::StoreStats,
    ) -> Result<Result<(), HeartbeatError>, PdError> {
        let stats = Box::new(stats);
        self.ask(|reply| Call::StoreHeartbeat { stats, reply })
            .await
    }

    /// Ids for a batch split.
    pub async fn ask_batch_split(
        &self,
        request: pdpb::AskBatchSplitRequest,
    ) -> Result<Result<Vec<pdpb::SplitId>, AskSplitError>, PdError> {
        let request = Box::new(request);
        self.ask(|reply| Call::AskBatchSplit { request, reply })
            .await
    }

    /// Runs `question` over the leader's state and memory.
    pub async fn query<T: Send + 'static>(
        &self,
        question: impl FnOnce(&Serving<'_>) -> T + Send + 'static,
    ) -> Result<T, PdError> {
        self.ask(|reply: Reply<T>| {
            Call::Query(Box::new(move |serving| {
                let _ = reply.send(serving.map(|serving| question(&serving)));
            }))
        })
        .await
    }
}
