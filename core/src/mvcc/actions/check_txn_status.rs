//! CheckTxnStatus on a primary key (TiKV `commands/check_txn_status.rs` +
//! `actions/check_txn_status.rs`): decides whether a transaction is committed, rolled back
//! or alive, rolling back an expired one and pushing the min_commit_ts of a live one.
//!
//! - **Inputs**: the checked transaction's buffer (start_ts = `lock_ts`), a reader, and
//!   [`CheckTxnStatusParams`]. Times are TSO timestamps; TTLs compare physical ms.
//! - **Outputs**: a [`TxnStatus`] and modifications (rollback, removed pessimistic lock, or
//!   the primary lock rewritten with a larger min_commit_ts).
//! - **Invariants**: an async-commit lock is never rolled back or pushed here unless
//!   `force_sync_commit`; a push only raises min_commit_ts and only for locks that already
//!   have one (2PC locks with 0 are never pushed); a lock not yet expired is never rolled back.
//!   The caller raises max_ts to `max(lock_ts, current_ts, caller_start_ts)` (MAX excluded)
//!   before calling, so no async commit can land on the rollback written here.

use super::rollback::{check_txn_status_missing_lock, rollback_lock, MissingLockAction, TxnStatus};
use crate::env::Snapshot;
use crate::mvcc::error::{Error, Result};
use crate::mvcc::lock::{Lock, LockType};
use crate::mvcc::reader::MvccReader;
use crate::mvcc::txn::MvccTxn;
use crate::types::TimeStamp;

/// The request's knobs (kvrpcpb `CheckTxnStatusRequest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckTxnStatusParams {
    /// The reader's start_ts (0 from GC, MAX from an autocommit point get).
    pub caller_start_ts: TimeStamp,
    /// "Now", for the TTL check (MAX forces expiry).
    pub current_ts: TimeStamp,
    /// No lock and no record: write a protected rollback instead of `TxnNotFound`.
    pub rollback_if_not_exist: bool,
    /// Treat an async-commit lock as a 2PC lock (the transaction fell back).
    pub force_sync_commit: bool,
    /// The caller resolves a pessimistic lock: an expired pessimistic primary is only
    /// removed, and a missing one leaves no rollback.
    pub resolving_pessimistic_lock: bool,
    /// Fail with `PrimaryMismatch` if the lock's primary is another key.
    pub verify_is_primary: bool,
}

/// Checks the transaction `txn.start_ts()` through its primary `key`.
pub fn check_txn_status<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    params: &CheckTxnStatusParams,
) -> Result<TxnStatus> {
    match reader.load_lock(key)? {
        Some(lock) if lock.ts == txn.start_ts() => {
            if params.verify_is_primary && lock.primary != key {
                return Err(Error::PrimaryMismatch(Box::new(lock.to_lock_info(key))));
            }
            check_txn_status_lock_exists(txn, reader, key, lock, params)
        }
        other => {
            let action = MissingLockAction::rollback(params.rollback_if_not_exist);
            let resolving = params.resolving_pessimistic_lock;
            check_txn_status_missing_lock(txn, reader, key, other, action, resolving)
        }
    }
}

/// The transaction's lock is on its primary: expire, push, or report it.
fn check_txn_status_lock_exists<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    mut lock: Lock,
    params: &CheckTxnStatusParams,
) -> Result<TxnStatus> {
    assert_eq!(lock.ts, txn.start_ts());
    if lock.use_async_commit && !params.force_sync_commit {
        // Async-commit transactions are decided by CheckSecondaryLocks + ResolveLock.
        let min_commit_ts_pushed = false;
        return Ok(TxnStatus::Uncommitted {
            lock,
            min_commit_ts_pushed,
        });
    }
    assert!(
        !lock.use_async_commit || params.force_sync_commit,
        "async locks returned above"
    );
    if lock.is_expired(params.current_ts) {
        if params.resolving_pessimistic_lock && lock.lock_type == LockType::Pessimistic {
            txn.unlock_key(key);
            return Ok(TxnStatus::PessimisticRollBack);
        }
        rollback_lock(txn, reader, key, &lock, true)?;
        return Ok(TxnStatus::TtlExpire);
    }
    let caller = params.caller_start_ts;
    let pushable = lock.min_commit_ts > TimeStamp::ZERO && caller != TimeStamp::MAX;
    if pushable && caller >= lock.min_commit_ts {
        let old_min_commit_ts = lock.min_commit_ts;
        lock.min_commit_ts = caller.next().max(params.current_ts);
        assert!(
            lock.min_commit_ts > old_min_commit_ts,
            "a push only raises min_commit_ts"
        );
        txn.put_pushed_lock(key, &lock);
    }
    // Readers at caller_start_ts may now read past this transaction's locks.
    let min_commit_ts_pushed =
        (caller > TimeStamp::ZERO && lock.min_commit_ts > caller) || caller == TimeStamp::MAX;
    Ok(TxnStatus::Uncommitted {
        lock,
        min_commit_ts_pushed,
    })
}

#[cfg(test)]
#[path = "check_txn_status_tests.rs"]
mod tests;
