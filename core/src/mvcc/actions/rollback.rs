//! Rolling back: rollback records, their protection and collapse, and `cleanup` (TiKV
//! `actions/cleanup.rs` and the rollback helpers of `actions/check_txn_status.rs`).
//!
//! - **Inputs**: the buffer of the transaction being rolled back (its start_ts), a reader,
//!   the key, and what is known about the key's lock.
//! - **Outputs**: modifications (lock removed, long value removed, rollback record written or
//!   folded into an overlapping commit record, older unprotected rollback collapsed); a
//!   [`TxnStatus`] when the lock was already gone.
//! - **Invariants**: a transaction that has committed on a key is never rolled back there
//!   (asserted); a rollback record sits at the transaction's own start_ts; a protected
//!   rollback is never deleted by a collapse; when another transaction's record occupies
//!   `key@start_ts`, a protected rollback survives as its `has_overlapped_rollback` flag, and
//!   when another transaction's lock sits on the key, our start_ts joins its `rollback_ts` so
//!   its commit at our start_ts sets that flag.

use crate::env::Snapshot;
use crate::mvcc::error::{Error, Result};
use crate::mvcc::lock::{Lock, LockType};
use crate::mvcc::reader::{MvccReader, TxnCommitRecord};
use crate::mvcc::txn::MvccTxn;
use crate::mvcc::write::{Write, WriteType};
use crate::planted::{self, PlantedBug};
use crate::types::TimeStamp;

/// What a status check or cleanup found or did (TiKV `TxnStatus`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TxnStatus {
    /// A rollback record already existed.
    RolledBack,
    /// The lock's TTL ran out and it was rolled back.
    TtlExpire,
    /// There was no lock and no record; a rollback record was written.
    LockNotExist,
    /// The transaction committed at `commit_ts`.
    Committed { commit_ts: TimeStamp },
    /// An expired pessimistic primary lock was removed (no rollback record).
    PessimisticRollBack,
    /// No lock and no record, and the caller resolves a pessimistic lock: nothing written.
    LockNotExistDoNothing,
    /// The transaction is still running.
    Uncommitted {
        /// Its primary lock (after any push).
        lock: Lock,
        /// The lock's min_commit_ts is above the caller's start_ts (or the caller reads at
        /// MAX), so the caller may read past this transaction's locks.
        min_commit_ts_pushed: bool,
    },
}

/// What to do when the lock is missing and no record exists.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MissingLockAction {
    /// Write an unprotected rollback and collapse the previous one.
    Rollback,
    /// Write a protected rollback.
    ProtectedRollback,
    /// Fail with `TxnNotFound`.
    ReturnError,
}

impl MissingLockAction {
    /// Cleanup's action.
    pub fn rollback_protect(protect_rollback: bool) -> MissingLockAction {
        if protect_rollback {
            MissingLockAction::ProtectedRollback
        } else {
            MissingLockAction::Rollback
        }
    }

    /// CheckTxnStatus's action.
    pub fn rollback(rollback_if_not_exist: bool) -> MissingLockAction {
        if rollback_if_not_exist {
            MissingLockAction::ProtectedRollback
        } else {
            MissingLockAction::ReturnError
        }
    }
}

/// The record that rolls back `start_ts`: a fresh rollback, or (protected) the overlapping
/// commit record with its flag set, or nothing (unprotected over an overlapping record).
pub fn make_rollback(
    start_ts: TimeStamp,
    protected: bool,
    overlapped_write: Option<Write>,
) -> Option<Write> {
    match overlapped_write {
        Some(mut write) => {
            assert!(
                start_ts > write.start_ts,
                "overlapping txn started before us"
            );
            assert_ne!(
                write.write_type,
                WriteType::Rollback,
                "a rollback never overlaps"
            );
            write.has_overlapped_rollback = true;
            protected.then_some(write)
        }
        None => Some(Write::new_rollback(start_ts, protected)),
    }
}

/// Writes the record `make_rollback` chose, at `key@start_ts`.
fn put_rollback(txn: &mut MvccTxn, key: &[u8], write: &Write) {
    if write.start_ts == txn.start_ts() {
        txn.put_write(key, txn.start_ts(), write);
    } else {
        txn.put_overlapped_write(key, write);
    }
}

/// Deletes the newest record at or below the transaction's start_ts if it is an unprotected
/// rollback, so rollbacks of a hot key do not pile up.
pub fn collapse_prev_rollback<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
) -> Result<()> {
    if let Some((commit_ts, write)) = reader.seek_write(key, txn.start_ts())? {
        if write.write_type == WriteType::Rollback && !write.is_protected_rollback() {
            assert_eq!(commit_ts, write.start_ts, "a rollback sits at its start_ts");
            txn.delete_write(key, commit_ts);
        }
    }
    Ok(())
}

/// Rolls back this transaction's `lock` on `key`. Only the primary of a pessimistic
/// transaction gets a protected rollback (TiKV): an optimistic late prewrite fails on any
/// newer record anyway.
pub fn rollback_lock<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    lock: &Lock,
    collapse_rollback: bool,
) -> Result<()> {
    assert_eq!(lock.ts, txn.start_ts(), "rolling back another txn's lock");
    let overlapped_write = match reader.get_txn_commit_record(key, lock.ts)? {
        TxnCommitRecord::None { overlapped_write } => overlapped_write,
        TxnCommitRecord::SingleRecord { write, commit_ts } => {
            assert_eq!(
                write.write_type,
                WriteType::Rollback,
                "txn {:?} committed at {commit_ts:?} but still locked",
                lock.ts
            );
            txn.unlock_key(key);
            return Ok(());
        }
        TxnCommitRecord::OverlappedRollback { .. } => {
            txn.unlock_key(key);
            return Ok(());
        }
    };
    if let Some(write) = &overlapped_write {
        assert_ne!(
            write.start_ts, lock.ts,
            "our own commit record cannot overlap us"
        );
    }
    if lock.short_value.is_none() && lock.lock_type == LockType::Put {
        txn.delete_value(key, lock.ts);
    }
    let protected = lock.is_pessimistic_txn() && key == lock.primary.as_slice();
    let record = make_rollback(lock.ts, protected, overlapped_write);
    if let Some(write) = record.filter(|_| !planted::active(PlantedBug::RollbackWithoutRecord)) {
        put_rollback(txn, key, &write);
    }
    if collapse_rollback {
        collapse_prev_rollback(txn, reader, key)?;
    }
    txn.unlock_key(key);
    Ok(())
}

/// The lock of this transaction is gone: report its record, or (per `action`) fail or
/// write a rollback. `mismatch_lock` is another transaction's lock found on the key.
pub fn check_txn_status_missing_lock<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    mismatch_lock: Option<Lock>,
    action: MissingLockAction,
    resolving_pessimistic_lock: bool,
) -> Result<TxnStatus> {
    let start_ts = txn.start_ts();
    let overlapped_write = match reader.get_txn_commit_record(key, start_ts)? {
        TxnCommitRecord::SingleRecord { commit_ts, write } => {
            return Ok(match write.write_type {
                WriteType::Rollback => TxnStatus::RolledBack,
                _ => TxnStatus::Committed { commit_ts },
            });
        }
        TxnCommitRecord::OverlappedRollback { .. } => return Ok(TxnStatus::RolledBack),
        TxnCommitRecord::None { overlapped_write } => overlapped_write,
    };
    if action == MissingLockAction::ReturnError {
        let key = key.to_vec();
        return Err(Error::TxnNotFound { start_ts, key });
    }
    if resolving_pessimistic_lock {
        return Ok(TxnStatus::LockNotExistDoNothing);
    }
    let protected = action == MissingLockAction::ProtectedRollback;
    if !protected {
        collapse_prev_rollback(txn, reader, key)?;
    }
    if let (Some(lock), None, true) = (mismatch_lock, overlapped_write.as_ref(), protected) {
        mark_rollback_on_mismatching_lock(txn, key, lock);
    }
    if let Some(write) = make_rollback(start_ts, protected, overlapped_write) {
        put_rollback(txn, key, &write);
    }
    Ok(TxnStatus::LockNotExist)
}

/// Records this transaction's protected rollback in another transaction's lock, so that
/// committing that lock at our start_ts keeps the rollback as a flag instead of overwriting it.
pub fn mark_rollback_on_mismatching_lock(txn: &mut MvccTxn, key: &[u8], mut lock: Lock) {
    assert_ne!(
        lock.ts,
        txn.start_ts(),
        "a mismatching lock belongs to another txn"
    );
    if !lock.rollback_ts.contains(&txn.start_ts()) {
        lock.rollback_ts.push(txn.start_ts());
    }
    txn.put_lock_with_rollback_ts(key, &lock);
}

/// Rolls back this transaction on `key` (BatchRollback with `current_ts` 0; Cleanup with a
/// current_ts checks the TTL first). Fails with `Committed` if it committed there.
pub fn cleanup<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    current_ts: TimeStamp,
    protect_rollback: bool,
) -> Result<()> {
    let lock = reader.load_lock(key)?;
    if let Some(lock) = lock.as_ref().filter(|lock| lock.ts == txn.start_ts()) {
        let alive = current_ts > TimeStamp::ZERO && !lock.is_expired(current_ts);
        if alive {
            return Err(Error::KeyIsLocked(Box::new(lock.to_lock_info(key))));
        }
        return rollback_lock(txn, reader, key, lock, !protect_rollback);
    }
    let action = MissingLockAction::rollback_protect(protect_rollback);
    match check_txn_status_missing_lock(txn, reader, key, lock, action, false)? {
        TxnStatus::Committed { commit_ts } => Err(Error::Committed {
            start_ts: txn.start_ts(),
            commit_ts,
            key: key.to_vec(),
        }),
        TxnStatus::RolledBack | TxnStatus::LockNotExist => Ok(()),
        other => unreachable!("cleanup of a missing lock cannot end in {other:?}"),
    }
}

#[cfg(test)]
#[path = "rollback_tests.rs"]
mod tests;
