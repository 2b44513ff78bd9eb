//! The scheduler's error: an MVCC error for the client's `KeyError`, or a refusal the
//! server turns into a region error (`ServerIsBusy`, `MaxTimestampNotSynced`) or a gRPC
//! invalid-argument status.
//!
//! - **Inputs**: failures of the pieces in `txn` and of MVCC actions.
//! - **Outputs**: one enum; `key_error()` for the variants that travel as a `KeyError`.
//! - **Invariants**: nothing here was written when an error is returned.

use ferrokv_proto::kvrpcpb;

use super::concurrency::MaxTsError;
use super::flow_control::Busy;
use super::latches::LatchBusy;
use crate::mvcc;

/// Every failure of a command.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// An MVCC failure (answered as a `KeyError`).
    #[error(transparent)]
    Mvcc(#[from] mvcc::Error),
    /// A bound was hit: answer `ServerIsBusy` and let the client back off.
    #[error("server is busy: {0}")]
    ServerIsBusy(String),
    /// Async commit/1PC while max_ts is not synced: region error `MaxTimestampNotSynced`.
    #[error("max timestamp not synced")]
    MaxTimestampNotSynced,
    /// The request is malformed: a gRPC invalid-argument status.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl From<Busy> for Error {
    fn from(busy: Busy) -> Self {
        Error::ServerIsBusy(busy.to_string())
    }
}

impl From<LatchBusy> for Error {
    fn from(busy: LatchBusy) -> Self {
        Error::ServerIsBusy(busy.to_string())
    }
}

impl From<MaxTsError> for Error {
    fn from(error: MaxTsError) -> Self {
        match error {
            MaxTsError::TableFull => Error::ServerIsBusy(error.to_string()),
            MaxTsError::AboveLimit { .. } => Error::InvalidRequest(error.to_string()),
        }
    }
}

impl Error {
    /// The `KeyError` of an MVCC failure; `None` for region-level and request errors.
    pub fn key_error(&self) -> Option<kvrpcpb::KeyError> {
        match self {
            Error::Mvcc(error) => Some(error.to_key_error()),
            _ => None,
        }
    }
}
