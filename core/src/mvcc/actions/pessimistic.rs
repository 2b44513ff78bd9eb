//! Pessimistic locks (TiKV `actions/acquire_pessimistic_lock.rs` and
//! `commands/pessimistic_rollback.rs`).
//!
//! - **Inputs**: the transaction's buffer (its start_ts), a reader, the key and
//!   [`PessimisticLockParams`].
//! - **Outputs**: a lock of type `Pessimistic` (no value) in the buffer, and (if asked) the
//!   key's newest value; or a typed error: `KeyIsLocked` (the scheduler may then wait),
//!   `WriteConflict(PessimisticRetry)` when a commit newer than for_update_ts exists,
//!   `PessimisticLockRolledBack`, `AlreadyExist`, `LockTypeNotMatch`.
//! - **Invariants**: a lock is only taken if no record is newer than for_update_ts; a
//!   transaction rolled back on the key never locks it again; relocking only raises
//!   for_update_ts; a pessimistic rollback removes only this transaction's pessimistic lock
//!   with for_update_ts ≤ the request's.

use super::prewrite::{Mutation, MutationOp};
use super::prewrite_check::check_data_constraint;
use crate::env::Snapshot;
use crate::mvcc::error::{ConflictReason, Error, Result};
use crate::mvcc::lock::{Lock, LockType};
use crate::mvcc::reader::MvccReader;
use crate::mvcc::txn::MvccTxn;
use crate::mvcc::write::{Write, WriteType};
use crate::types::TimeStamp;

/// One key of a PessimisticLock request.
#[derive(Clone, Debug)]
pub struct PessimisticLockParams<'a> {
    /// The transaction's primary key.
    pub primary: &'a [u8],
    /// Lock TTL in ms.
    pub lock_ttl_ms: u64,
    /// This statement's for_update_ts (≥ start_ts).
    pub for_update_ts: TimeStamp,
    /// Fail with `AlreadyExist` if the key has a value (assertion NotExist).
    pub should_not_exist: bool,
    /// Return the key's newest value.
    pub need_value: bool,
    /// The lock's min_commit_ts (0: none).
    pub min_commit_ts: TimeStamp,
}

/// The newest value of a locked key, when asked for (`None`: absent).
pub type LockedValue = Option<Vec<u8>>;

/// Takes (or re-takes) this transaction's pessimistic lock on `key`.
pub fn acquire_pessimistic_lock<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    params: &PessimisticLockParams<'_>,
) -> Result<LockedValue> {
    let start_ts = txn.start_ts();
    assert!(
        params.for_update_ts >= start_ts,
        "for_update_ts below start_ts"
    );
    if let Some(lock) = reader.load_lock(key)? {
        return relock(txn, reader, key, lock, params);
    }
    let newest = reader.seek_write(key, TimeStamp::MAX)?;
    if let Some((commit_ts, write)) = &newest {
        check_newest_write(reader, key, params, start_ts, *commit_ts, write)?;
    }
    let value = if params.need_value {
        newest_value(reader, key, TimeStamp::MAX)?
    } else {
        None
    };
    txn.put_lock(key, &new_lock(start_ts, params, Vec::new()));
    Ok(value)
}

fn new_lock(
    start_ts: TimeStamp,
    params: &PessimisticLockParams<'_>,
    rollback_ts: Vec<TimeStamp>,
) -> Lock {
    let primary = params.primary.to_vec();
    let mut lock = Lock::new(LockType::Pessimistic, primary, start_ts, params.lock_ttl_ms);
    lock.for_update_ts = params.for_update_ts;
    lock.min_commit_ts = params.min_commit_ts;
    lock.rollback_ts = rollback_ts;
    assert!(
        lock.for_update_ts >= lock.ts,
        "for_update_ts below start_ts"
    );
    assert!(
        lock.short_value.is_none(),
        "a pessimistic lock carries no value"
    );
    lock
}

/// A lock is already on the key: ours (pessimistic) is refreshed, anything else fails.
fn relock<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    lock: Lock,
    params: &PessimisticLockParams<'_>,
) -> Result<LockedValue> {
    let start_ts = txn.start_ts();
    if lock.ts != start_ts {
        return Err(Error::KeyIsLocked(Box::new(lock.to_lock_info(key))));
    }
    if lock.lock_type != LockType::Pessimistic {
        let key = key.to_vec();
        return Err(Error::LockTypeNotMatch {
            start_ts,
            key,
            pessimistic: false,
        });
    }
    let value = if params.need_value {
        newest_value(reader, key, params.for_update_ts)?
    } else {
        None
    };
    // Only a newer statement moves the lock forward; a stale request changes nothing.
    if params.for_update_ts > lock.for_update_ts {
        txn.put_lock(key, &new_lock(start_ts, params, lock.rollback_ts));
    }
    Ok(value)
}

/// Conflict, rollback and constraint checks against the newest record.
fn check_newest_write<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    key: &[u8],
    params: &PessimisticLockParams<'_>,
    start_ts: TimeStamp,
    commit_ts: TimeStamp,
    write: &Write,
) -> Result<()> {
    if commit_ts > params.for_update_ts {
        return Err(Error::WriteConflict {
            start_ts,
            conflict_start_ts: write.start_ts,
            conflict_commit_ts: commit_ts,
            key: key.to_vec(),
            primary: params.primary.to_vec(),
            reason: ConflictReason::PessimisticRetry,
        });
    }
    let rolls_us_back = |commit_ts: TimeStamp, write: &Write| {
        commit_ts == start_ts
            && (write.write_type == WriteType::Rollback || write.has_overlapped_rollback)
    };
    let mut rolled_back = rolls_us_back(commit_ts, write);
    if !rolled_back && commit_ts > start_ts {
        if let Some((older_ts, older)) = reader.seek_write(key, start_ts)? {
            rolled_back = rolls_us_back(older_ts, &older);
        }
    }
    if rolled_back {
        let key = key.to_vec();
        return Err(Error::PessimisticLockRolledBack { start_ts, key });
    }
    let op = if params.should_not_exist {
        MutationOp::CheckNotExists
    } else {
        MutationOp::Lock
    };
    let mutation = Mutation {
        key: key.to_vec(),
        op,
    };
    check_data_constraint(reader, &mutation, write, commit_ts)
}

/// The newest committed value of `key` at or below `ts`, ignoring locks.
fn newest_value<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    key: &[u8],
    ts: TimeStamp,
) -> Result<LockedValue> {
    match reader.get_write(key, ts)? {
        Some((_, write)) if write.write_type == WriteType::Put => {
            Ok(Some(reader.load_data(key, &write)?))
        }
        _ => Ok(None),
    }
}

/// Removes this transaction's pessimistic lock on `key` if its for_update_ts is at most
/// `for_update_ts`; anything else is left alone. Returns whether a lock was removed.
pub fn pessimistic_rollback<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    for_update_ts: TimeStamp,
) -> Result<bool> {
    let Some(lock) = reader.load_lock(key)? else {
        return Ok(false);
    };
    let ours = lock.ts == txn.start_ts() && lock.lock_type == LockType::Pessimistic;
    if ours && lock.for_update_ts <= for_update_ts {
        txn.unlock_key(key);
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
#[path = "pessimistic_tests.rs"]
mod tests;
