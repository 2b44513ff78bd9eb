//! The MVCC layer's one error type, and its mapping to `kvrpcpb::KeyError` (TiKV
//! `storage::errors::extract_key_error`).
//!
//! - **Inputs**: an expected failure found by an action or a reader.
//! - **Outputs**: [`Error`]; [`Error::to_key_error`] gives exactly the `KeyError` field TiKV
//!   sets for it, so tikv-client reacts as it does against TiKV.
//! - **Invariants**: none of these is a bug; bugs panic. Errors name raw user keys, never
//!   encoded storage keys.

use ferrokv_proto::{deadlock, kvrpcpb};

use super::encoding::RecordError;
use crate::env::EngineError;
use crate::types::codec::CodecError;
use crate::types::TimeStamp;

/// Why a write conflicted (kvrpcpb `WriteConflict.Reason`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConflictReason {
    /// Optimistic prewrite met a newer record.
    Optimistic,
    /// Pessimistic lock met a newer commit, or woke up after waiting: retry with a new
    /// for_update_ts.
    PessimisticRetry,
    /// The transaction itself was already rolled back on this key.
    SelfRolledBack,
}

impl ConflictReason {
    fn to_proto(self) -> kvrpcpb::write_conflict::Reason {
        match self {
            ConflictReason::Optimistic => kvrpcpb::write_conflict::Reason::Optimistic,
            ConflictReason::PessimisticRetry => kvrpcpb::write_conflict::Reason::PessimisticRetry,
            ConflictReason::SelfRolledBack => kvrpcpb::write_conflict::Reason::SelfRolledBack,
        }
    }
}

/// An edge of a deadlock cycle: `txn` waits for `wait_for_txn` on a key with `key_hash`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WaitForEdge {
    /// The waiting transaction's start_ts.
    pub txn: TimeStamp,
    /// The start_ts of the transaction holding the lock.
    pub wait_for_txn: TimeStamp,
    /// Hash of the key waited for.
    pub key_hash: u64,
    /// The key waited for.
    pub key: Vec<u8>,
}

impl WaitForEdge {
    /// The wire form (`deadlock.WaitForEntry`).
    pub fn to_entry(&self) -> deadlock::WaitForEntry {
        deadlock::WaitForEntry {
            txn: self.txn.get(),
            wait_for_txn: self.wait_for_txn.get(),
            key_hash: self.key_hash,
            key: self.key.clone(),
            ..Default::default()
        }
    }

    /// From the wire form.
    pub fn from_entry(entry: &deadlock::WaitForEntry) -> WaitForEdge {
        WaitForEdge {
            txn: TimeStamp(entry.txn),
            wait_for_txn: TimeStamp(entry.wait_for_txn),
            key_hash: entry.key_hash,
            key: entry.key.clone(),
        }
    }
}

/// Every expected failure of an MVCC action or read.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
pub enum Error {
    /// Another transaction's lock blocks the operation.
    #[error("key is locked by txn {}", .0.lock_version)]
    KeyIsLocked(Box<kvrpcpb::LockInfo>),
    /// A newer record exists.
    #[error(
        "write conflict: txn {start_ts:?} vs {conflict_start_ts:?} \
         committed at {conflict_commit_ts:?} ({reason:?})"
    )]
    WriteConflict {
        start_ts: TimeStamp,
        conflict_start_ts: TimeStamp,
        conflict_commit_ts: TimeStamp,
        key: Vec<u8>,
        primary: Vec<u8>,
        reason: ConflictReason,
    },
    /// Insert or CheckNotExists on a key that has a value.
    #[error("key already exists")]
    AlreadyExist { key: Vec<u8> },
    /// Commit below the lock's min_commit_ts: retry with a newer commit_ts.
    #[error("commit_ts {commit_ts:?} of txn {start_ts:?} below min_commit_ts {min_commit_ts:?}")]
    CommitTsExpired {
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
        key: Vec<u8>,
        min_commit_ts: TimeStamp,
    },
    /// Async commit or 1PC would need a commit_ts above the request's max_commit_ts.
    #[error("min_commit_ts {min_commit_ts:?} of txn {start_ts:?} exceeds max {max_commit_ts:?}")]
    CommitTsTooLarge {
        start_ts: TimeStamp,
        min_commit_ts: TimeStamp,
        max_commit_ts: TimeStamp,
    },
    /// Commit found neither this transaction's lock nor its commit record.
    #[error("txn {start_ts:?} lock not found at commit {commit_ts:?}")]
    TxnLockNotFound {
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
        key: Vec<u8>,
    },
    /// CheckTxnStatus / heartbeat found no trace of the transaction.
    #[error("txn {start_ts:?} not found")]
    TxnNotFound { start_ts: TimeStamp, key: Vec<u8> },
    /// Rollback of a transaction that has committed.
    #[error("txn {start_ts:?} already committed at {commit_ts:?}")]
    Committed {
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
        key: Vec<u8>,
    },
    /// A pessimistic lock request of a transaction already rolled back on this key.
    #[error("pessimistic lock of txn {start_ts:?} rolled back")]
    PessimisticLockRolledBack { start_ts: TimeStamp, key: Vec<u8> },
    /// Pessimistic prewrite found no pessimistic lock of its own and could not amend.
    #[error("pessimistic lock of txn {start_ts:?} not found")]
    PessimisticLockNotFound { start_ts: TimeStamp, key: Vec<u8> },
    /// The transaction's own lock has the wrong kind for the request.
    #[error("lock type mismatch for txn {start_ts:?} (pessimistic lock: {pessimistic})")]
    LockTypeNotMatch {
        start_ts: TimeStamp,
        key: Vec<u8>,
        pessimistic: bool,
    },
    /// CheckTxnStatus with `verify_is_primary` found a lock whose primary is another key.
    #[error("lock is not the primary")]
    PrimaryMismatch(Box<kvrpcpb::LockInfo>),
    /// A commit_ts not above start_ts, or a resolve status that is neither 0 nor above the
    /// lock's ts.
    #[error("invalid timestamps: start {start_ts:?}, commit {commit_ts:?}")]
    InvalidTxnTso {
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    },
    /// Waiting for the lock would close a wait-for cycle.
    #[error("deadlock: txn {start_ts:?} waiting for {lock_ts:?}")]
    Deadlock {
        start_ts: TimeStamp,
        lock_ts: TimeStamp,
        lock_key: Vec<u8>,
        deadlock_key_hash: u64,
        wait_chain: Vec<WaitForEdge>,
    },
    /// A request the layer cannot serve (e.g. CheckNotExists in a pessimistic prewrite).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A stored record or key failed to decode.
    #[error("corrupt MVCC data: {0}")]
    Corruption(String),
    /// A write record points at a value that CF default does not hold.
    #[error("value of txn {start_ts:?} missing from CF default")]
    DefaultNotFound { key: Vec<u8>, start_ts: TimeStamp },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<RecordError> for Error {
    fn from(error: RecordError) -> Self {
        Error::Corruption(error.to_string())
    }
}

impl From<CodecError> for Error {
    fn from(error: CodecError) -> Self {
        Error::Corruption(error.to_string())
    }
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The `KeyError` TiKV sends for this error; everything without a dedicated field becomes
    /// `abort`, as in TiKV.
    pub fn to_key_error(&self) -> kvrpcpb::KeyError {
        let mut key_error = kvrpcpb::KeyError::default();
        match self {
            Error::KeyIsLocked(info) => key_error.locked = Some((**info).clone()),
            Error::WriteConflict { .. } => {
                key_error.conflict = Some(self.write_conflict());
                // Older clients read only `retryable`; TiKV sets both.
                key_error.retryable = self.to_string();
            }
            Error::AlreadyExist { key } => {
                key_error.already_exist = Some(kvrpcpb::AlreadyExist { key: key.clone() })
            }
            Error::TxnLockNotFound { .. } => key_error.retryable = self.to_string(),
            Error::TxnNotFound { start_ts, key } => {
                key_error.txn_not_found = Some(kvrpcpb::TxnNotFound {
                    start_ts: start_ts.get(),
                    primary_key: key.clone(),
                })
            }
            Error::CommitTsExpired { .. } => key_error.commit_ts_expired = self.commit_ts_expired(),
            Error::CommitTsTooLarge { min_commit_ts, .. } => {
                key_error.commit_ts_too_large = Some(kvrpcpb::CommitTsTooLarge {
                    commit_ts: min_commit_ts.get(),
                })
            }
            Error::Deadlock { .. } => key_error.deadlock = self.deadlock(),
            Error::PrimaryMismatch(info) => {
                key_error.primary_mismatch = Some(kvrpcpb::PrimaryMismatch {
                    lock_info: Some((**info).clone()),
                })
            }
            _ => key_error.abort = self.to_string(),
        }
        key_error
    }

    fn write_conflict(&self) -> kvrpcpb::WriteConflict {
        let Error::WriteConflict {
            start_ts,
            conflict_start_ts,
            conflict_commit_ts,
            key,
            primary,
            reason,
        } = self
        else {
            unreachable!("called on a write conflict")
        };
        kvrpcpb::WriteConflict {
            start_ts: start_ts.get(),
            conflict_ts: conflict_start_ts.get(),
            key: key.clone(),
            primary: primary.clone(),
            conflict_commit_ts: conflict_commit_ts.get(),
            reason: reason.to_proto() as i32,
        }
    }

    fn commit_ts_expired(&self) -> Option<kvrpcpb::CommitTsExpired> {
        let Error::CommitTsExpired {
            start_ts,
            commit_ts,
            key,
            min_commit_ts,
        } = self
        else {
            return None;
        };
        Some(kvrpcpb::CommitTsExpired {
            start_ts: start_ts.get(),
            attempted_commit_ts: commit_ts.get(),
            key: key.clone(),
            min_commit_ts: min_commit_ts.get(),
        })
    }

    fn deadlock(&self) -> Option<kvrpcpb::Deadlock> {
        let Error::Deadlock {
            lock_ts,
            lock_key,
            deadlock_key_hash,
            wait_chain,
            ..
        } = self
        else {
            return None;
        };
        let wait_chain = wait_chain.iter().map(WaitForEdge::to_entry).collect();
        Some(kvrpcpb::Deadlock {
            lock_ts: lock_ts.get(),
            lock_key: lock_key.clone(),
            deadlock_key_hash: *deadlock_key_hash,
            wait_chain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_lands_in_its_key_error_field() {
        let locked = Error::KeyIsLocked(Box::new(kvrpcpb::LockInfo {
            lock_version: 7,
            ..Default::default()
        }));
        assert_eq!(locked.to_key_error().locked.unwrap().lock_version, 7);
        let conflict = Error::WriteConflict {
            start_ts: TimeStamp(1),
            conflict_start_ts: TimeStamp(2),
            conflict_commit_ts: TimeStamp(3),
            key: b"k".to_vec(),
            primary: b"p".to_vec(),
            reason: ConflictReason::Optimistic,
        }
        .to_key_error();
        let proto = conflict.conflict.unwrap();
        assert_eq!(
            (proto.start_ts, proto.conflict_ts, proto.conflict_commit_ts),
            (1, 2, 3)
        );
        assert_eq!(
            proto.reason,
            kvrpcpb::write_conflict::Reason::Optimistic as i32
        );
        assert!(!conflict.retryable.is_empty());
        let not_found = Error::TxnNotFound {
            start_ts: TimeStamp(4),
            key: b"p".to_vec(),
        };
        assert_eq!(not_found.to_key_error().txn_not_found.unwrap().start_ts, 4);
        let lock_not_found = Error::TxnLockNotFound {
            start_ts: TimeStamp(4),
            commit_ts: TimeStamp(5),
            key: vec![],
        };
        assert!(!lock_not_found.to_key_error().retryable.is_empty());
        assert!(lock_not_found.to_key_error().abort.is_empty());
        let deadlock = Error::Deadlock {
            start_ts: TimeStamp(1),
            lock_ts: TimeStamp(2),
            lock_key: b"k".to_vec(),
            deadlock_key_hash: 9,
            wait_chain: vec![WaitForEdge {
                txn: TimeStamp(1),
                wait_for_txn: TimeStamp(2),
                key_hash: 9,
                key: b"k".to_vec(),
            }],
        };
        let proto = deadlock.to_key_error().deadlock.unwrap();
        assert_eq!((proto.lock_ts, proto.deadlock_key_hash), (2, 9));
        assert_eq!(proto.wait_chain[0].wait_for_txn, 2);
    }

    #[test]
    fn unmapped_errors_abort() {
        for error in [
            Error::Committed {
                start_ts: TimeStamp(1),
                commit_ts: TimeStamp(2),
                key: vec![],
            },
            Error::PessimisticLockNotFound {
                start_ts: TimeStamp(1),
                key: vec![],
            },
            Error::Corruption("x".into()),
        ] {
            let key_error = error.to_key_error();
            assert!(!key_error.abort.is_empty(), "{error:?}");
            assert!(key_error.retryable.is_empty());
            assert!(key_error.locked.is_none());
        }
        let expired = Error::CommitTsExpired {
            start_ts: TimeStamp(1),
            commit_ts: TimeStamp(2),
            key: b"k".to_vec(),
            min_commit_ts: TimeStamp(3),
        };
        let proto = expired.to_key_error().commit_ts_expired.unwrap();
        assert_eq!((proto.attempted_commit_ts, proto.min_commit_ts), (2, 3));
    }
}
