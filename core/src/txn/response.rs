//! From command outcomes to kvrpcpb responses, exactly as TiKV's service layer fills them
//! (src/server/service/kv.rs), so tikv-client reacts as it does against TiKV.
//!
//! - **Inputs**: the `Result` of `process_write` / `process_read` (or of a finished lock
//!   wait).
//! - **Outputs**: the response message; `Err` hands back errors that are not key errors
//!   (busy, unsynced max_ts, invalid request): the server answers them as region errors or
//!   gRPC statuses.
//! - **Invariants**: a whole-request key error of BatchGet/Scan is also copied into
//!   `pairs[0]` (TiKV's backward compatibility, which tikv-client 0.4 relies on); a
//!   CheckTxnStatus answer is always one of (0, 0, none), (commit_ts, 0, none) or
//!   (0, ttl > 0, lock_info): the client panics on any other combination.

use ferrokv_proto::kvrpcpb::{self, Action};

use super::error::Error;
use super::process::{CommandResult, ReadResult};
use crate::mvcc::actions::TxnStatus;
use crate::mvcc::reader::ScanResult;
use crate::mvcc::{self, Lock};

type Answer<T> = Result<T, Error>;
type PairsAndError = (Vec<kvrpcpb::KvPair>, Option<kvrpcpb::KeyError>);

fn key_error(error: Error) -> Answer<kvrpcpb::KeyError> {
    match error {
        Error::Mvcc(error) => Ok(error.to_key_error()),
        other => Err(other),
    }
}

fn pairs(found: Vec<ScanResult>) -> Vec<kvrpcpb::KvPair> {
    let pair = |entry| match entry {
        Ok((key, value)) => kvrpcpb::KvPair {
            key,
            value,
            error: None,
        },
        Err(error) => kvrpcpb::KvPair {
            key: match &error {
                mvcc::Error::KeyIsLocked(info) => info.key.clone(),
                _ => Vec::new(),
            },
            value: Vec::new(),
            error: Some(mvcc::Error::to_key_error(&error)),
        },
    };
    found.into_iter().map(pair).collect()
}

/// KvGet.
pub fn get(result: Answer<ReadResult>) -> Answer<kvrpcpb::GetResponse> {
    let mut response = kvrpcpb::GetResponse::default();
    match result {
        Ok(ReadResult::Value(Some(value))) => response.value = value,
        Ok(ReadResult::Value(None)) => response.not_found = true,
        Ok(other) => unreachable!("a get answers a value, not {other:?}"),
        Err(error) => response.error = Some(key_error(error)?),
    }
    Ok(response)
}

/// KvBatchGet and KvScan share this shape: pairs, or a whole-request error also copied into
/// the first pair.
fn pairs_or_error(result: Answer<ReadResult>) -> Answer<PairsAndError> {
    match result {
        Ok(ReadResult::Pairs(found)) => Ok((pairs(found), None)),
        Ok(other) => unreachable!("a batch read answers pairs, not {other:?}"),
        Err(error) => {
            let key_error = key_error(error)?;
            let first = kvrpcpb::KvPair {
                error: Some(key_error.clone()),
                ..Default::default()
            };
            Ok((vec![first], Some(key_error)))
        }
    }
}

/// KvBatchGet.
pub fn batch_get(result: Answer<ReadResult>) -> Answer<kvrpcpb::BatchGetResponse> {
    let (pairs, error) = pairs_or_error(result)?;
    Ok(kvrpcpb::BatchGetResponse {
        pairs,
        error,
        ..Default::default()
    })
}

/// KvScan.
pub fn scan(result: Answer<ReadResult>) -> Answer<kvrpcpb::ScanResponse> {
    let (pairs, error) = pairs_or_error(result)?;
    Ok(kvrpcpb::ScanResponse {
        pairs,
        error,
        ..Default::default()
    })
}

/// KvScanLock.
pub fn scan_lock(result: Answer<ReadResult>) -> Answer<kvrpcpb::ScanLockResponse> {
    let mut response = kvrpcpb::ScanLockResponse::default();
    match result {
        Ok(ReadResult::Locks(locks)) => response.locks = locks,
        Ok(other) => unreachable!("scan lock answers locks, not {other:?}"),
        Err(error) => response.error = Some(key_error(error)?),
    }
    Ok(response)
}

/// KvPrewrite.
pub fn prewrite(result: Answer<CommandResult>) -> Answer<kvrpcpb::PrewriteResponse> {
    let mut response = kvrpcpb::PrewriteResponse::default();
    match result {
        Ok(CommandResult::Prewrite {
            errors,
            min_commit_ts,
            one_pc_commit_ts,
        }) => {
            response.errors = errors.iter().map(mvcc::Error::to_key_error).collect();
            response.min_commit_ts = min_commit_ts.get();
            response.one_pc_commit_ts = one_pc_commit_ts.get();
        }
        Ok(other) => unreachable!("prewrite answers a prewrite result, not {other:?}"),
        Err(error) => response.errors = vec![key_error(error)?],
    }
    Ok(response)
}

/// KvCommit.
pub fn commit(result: Answer<CommandResult>) -> Answer<kvrpcpb::CommitResponse> {
    let mut response = kvrpcpb::CommitResponse::default();
    match result {
        Ok(CommandResult::Committed { commit_ts }) => response.commit_version = commit_ts.get(),
        Ok(other) => unreachable!("commit answers a commit, not {other:?}"),
        Err(error) => response.error = Some(key_error(error)?),
    }
    Ok(response)
}

/// The `error` of commands that answer nothing else (BatchRollback, ResolveLock, GC).
pub fn done(result: Answer<CommandResult>) -> Answer<Option<kvrpcpb::KeyError>> {
    match result {
        Ok(CommandResult::Done) => Ok(None),
        Ok(other) => unreachable!("expected Done, not {other:?}"),
        Err(error) => Ok(Some(key_error(error)?)),
    }
}

/// KvCleanup.
pub fn cleanup(result: Answer<CommandResult>) -> Answer<kvrpcpb::CleanupResponse> {
    let mut response = kvrpcpb::CleanupResponse::default();
    match result {
        Ok(CommandResult::Cleanup { commit_ts }) => response.commit_version = commit_ts.get(),
        Ok(other) => unreachable!("cleanup answers a cleanup, not {other:?}"),
        Err(error) => response.error = Some(key_error(error)?),
    }
    Ok(response)
}

/// KvCheckTxnStatus.
pub fn check_txn_status(result: Answer<CommandResult>) -> Answer<kvrpcpb::CheckTxnStatusResponse> {
    let mut response = kvrpcpb::CheckTxnStatusResponse::default();
    let status = match result {
        Ok(CommandResult::TxnStatus(status)) => status,
        Ok(other) => unreachable!("check_txn_status answers a status, not {other:?}"),
        Err(error) => {
            response.error = Some(key_error(error)?);
            return Ok(response);
        }
    };
    let action = match status {
        TxnStatus::RolledBack => Action::NoAction,
        TxnStatus::TtlExpire => Action::TtlExpireRollback,
        TxnStatus::LockNotExist => Action::LockNotExistRollback,
        TxnStatus::PessimisticRollBack => Action::TtlExpirePessimisticRollback,
        TxnStatus::LockNotExistDoNothing => Action::LockNotExistDoNothing,
        TxnStatus::Committed { commit_ts } => {
            assert!(commit_ts.get() > 0);
            response.commit_version = commit_ts.get();
            Action::NoAction
        }
        TxnStatus::Uncommitted {
            lock,
            min_commit_ts_pushed,
        } => {
            fill_uncommitted(&mut response, &lock);
            if min_commit_ts_pushed {
                Action::MinCommitTsPushed
            } else {
                Action::NoAction
            }
        }
    };
    response.action = action as i32;
    Ok(response)
}

fn fill_uncommitted(response: &mut kvrpcpb::CheckTxnStatusResponse, lock: &Lock) {
    // A live lock must read as "locked": ttl > 0 with lock_info (tikv-client 0.4 panics on
    // lock_info with ttl 0). A lock prewritten with ttl 0 is live for its first ms only.
    response.lock_ttl = lock.ttl_ms.max(1);
    response.lock_info = Some(lock.to_lock_info(&lock.primary));
    assert_eq!(response.commit_version, 0);
}

/// KvCheckSecondaryLocks.
pub fn check_secondary_locks(
    result: Answer<CommandResult>,
) -> Answer<kvrpcpb::CheckSecondaryLocksResponse> {
    let mut response = kvrpcpb::CheckSecondaryLocksResponse::default();
    match result {
        Ok(CommandResult::SecondaryLocks { locks, commit_ts }) => {
            response.locks = locks;
            response.commit_ts = commit_ts.get();
        }
        Ok(other) => unreachable!("expected secondary locks, not {other:?}"),
        Err(error) => response.error = Some(key_error(error)?),
    }
    Ok(response)
}

/// KvTxnHeartBeat.
pub fn txn_heart_beat(result: Answer<CommandResult>) -> Answer<kvrpcpb::TxnHeartBeatResponse> {
    let mut response = kvrpcpb::TxnHeartBeatResponse::default();
    match result {
        Ok(CommandResult::HeartBeat { lock_ttl_ms }) => response.lock_ttl = lock_ttl_ms,
        Ok(other) => unreachable!("expected a heartbeat, not {other:?}"),
        Err(error) => response.error = Some(key_error(error)?),
    }
    Ok(response)
}

/// KvPessimisticLock, once the command is done (a `WaitForLock` result is not an answer:
/// the server waits, then answers with the waiter's `wake_error`).
pub fn pessimistic_lock(result: Answer<CommandResult>) -> Answer<kvrpcpb::PessimisticLockResponse> {
    let mut response = kvrpcpb::PessimisticLockResponse::default();
    match result {
        Ok(CommandResult::PessimisticLocked { values }) => {
            response.not_founds = values.iter().map(Option::is_none).collect();
            response.values = values.into_iter().map(Option::unwrap_or_default).collect();
        }
        Ok(other) => unreachable!("expected a pessimistic lock result, not {other:?}"),
        Err(error) => response.errors = vec![key_error(error)?],
    }
    Ok(response)
}

/// KvPessimisticRollback.
pub fn pessimistic_rollback(
    result: Answer<CommandResult>,
) -> Answer<kvrpcpb::PessimisticRollbackResponse> {
    let errors = done(result)?.into_iter().collect();
    Ok(kvrpcpb::PessimisticRollbackResponse {
        errors,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::LockType;
    use crate::types::TimeStamp;

    #[test]
    fn check_txn_status_combinations_are_the_three_the_client_knows() {
        let committed = TxnStatus::Committed {
            commit_ts: TimeStamp(9),
        };
        let response = check_txn_status(Ok(CommandResult::TxnStatus(committed))).unwrap();
        assert_eq!((response.commit_version, response.lock_ttl), (9, 0));
        assert!(response.lock_info.is_none());
        let rolled = check_txn_status(Ok(CommandResult::TxnStatus(TxnStatus::TtlExpire))).unwrap();
        assert_eq!((rolled.commit_version, rolled.lock_ttl), (0, 0));
        assert_eq!(rolled.action, Action::TtlExpireRollback as i32);
        let lock = Lock::new(LockType::Put, b"p".to_vec(), TimeStamp(5), 0);
        let uncommitted = TxnStatus::Uncommitted {
            lock,
            min_commit_ts_pushed: true,
        };
        let live = check_txn_status(Ok(CommandResult::TxnStatus(uncommitted))).unwrap();
        assert_eq!(live.lock_ttl, 1, "never lock_info with ttl 0");
        assert_eq!(live.lock_info.unwrap().key, b"p");
        assert_eq!(live.action, Action::MinCommitTsPushed as i32);
    }

    #[test]
    fn whole_request_errors_are_copied_into_the_first_pair() {
        let locked = mvcc::Error::KeyIsLocked(Box::new(kvrpcpb::LockInfo {
            key: b"k".to_vec(),
            ..Default::default()
        }));
        let response = batch_get(Err(Error::Mvcc(locked))).unwrap();
        assert!(response.error.is_some());
        assert!(response.pairs[0].error.as_ref().unwrap().locked.is_some());
        let busy = scan(Err(Error::ServerIsBusy("full".into())));
        assert_eq!(
            busy,
            Err(Error::ServerIsBusy("full".into())),
            "not a key error"
        );
        let found = ReadResult::Value(None);
        assert!(get(Ok(found)).unwrap().not_found);
    }

    #[test]
    fn pessimistic_values_and_not_founds() {
        let values = vec![Some(b"v".to_vec()), None];
        let result = CommandResult::PessimisticLocked { values };
        let response = pessimistic_lock(Ok(result)).unwrap();
        assert_eq!(response.values, vec![b"v".to_vec(), Vec::new()]);
        assert_eq!(response.not_founds, vec![false, true]);
    }
}
