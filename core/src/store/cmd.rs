//! Requests a store accepts from its driver, and the responses it hands back.
//!
//! Every request carries a `Token` chosen by the driver; the response for it comes back
//! either immediately (rejected at the door) or later through `Effects::responses`.

use ferrokv_proto::ferrokv_raftpb::{AdminRequest, WriteOp};
use ferrokv_proto::metapb;

use crate::raw::{RawRead, RawReadResult};
use crate::txn::{self, Command, CommandResult, ReadCommand, ReadResult};
use crate::types::{RegionEpoch, RegionId};

use super::error::RegionError;

/// Correlates a request with its response.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Token(pub u64);

/// Which region a request is for and under which epoch the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    /// The target region.
    pub region_id: RegionId,
    /// The epoch the client believes current.
    pub epoch: RegionEpoch,
}

/// A request to a store.
#[derive(Clone, Debug)]
pub enum Request {
    /// Replicated writes, applied atomically.
    Write {
        header: RequestHeader,
        ops: Vec<WriteOp>,
    },
    /// A linearizable raw read at wall-clock `now_ms` (for TTL expiry).
    Read {
        header: RequestHeader,
        read: RawRead,
        now_ms: u64,
    },
    /// An operator command: split, membership change, leader transfer, log compaction.
    Admin(AdminRequest),
    /// A transactional read (KvGet, KvBatchGet, KvScan, KvScanLock, the read phase of a
    /// key-less KvResolveLock), served like a raw read once linearizable.
    TxnRead {
        header: RequestHeader,
        read: ReadCommand,
    },
    /// A transactional write command: run under the store's latches on a linearizable
    /// snapshot, its modifications proposed through Raft as one batch.
    TxnWrite {
        header: RequestHeader,
        command: Command,
    },
}

/// Why a transactional request failed: a region error (route, epoch, leadership: the
/// client retries elsewhere) or the transaction layer's own answer (a key error, busy,
/// invalid input).
#[derive(Clone, Debug, PartialEq)]
pub enum TxnFailure {
    /// The region could not serve it.
    Region(RegionError),
    /// The transaction layer refused or failed it.
    Txn(txn::Error),
}

/// The outcome of a write.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    /// For a compare-and-swap: whether it swapped, and the value it found.
    pub cas: Option<(bool, Option<Vec<u8>>)>,
}

/// The outcome of an admin command.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminOutcome {
    /// The region(s) after the command (two after a split: left, right).
    pub regions: Vec<metapb::Region>,
}

/// A response to a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// To `Request::Write`.
    Write(Result<WriteOutcome, RegionError>),
    /// To `Request::Read`.
    Read(Result<RawReadResult, RegionError>),
    /// To `Request::Admin`.
    Admin(Result<AdminOutcome, RegionError>),
    /// To `Request::TxnRead`.
    TxnRead(Result<ReadResult, TxnFailure>),
    /// To `Request::TxnWrite`.
    TxnWrite(Result<CommandResult, TxnFailure>),
}

impl Response {
    /// The error response of the same kind as `request`.
    pub fn error_for(request: &Request, error: RegionError) -> Response {
        match request {
            Request::Write { .. } => Response::Write(Err(error)),
            Request::Read { .. } => Response::Read(Err(error)),
            Request::Admin(_) => Response::Admin(Err(error)),
            Request::TxnRead { .. } => Response::TxnRead(Err(TxnFailure::Region(error))),
            Request::TxnWrite { .. } => Response::TxnWrite(Err(TxnFailure::Region(error))),
        }
    }
}
