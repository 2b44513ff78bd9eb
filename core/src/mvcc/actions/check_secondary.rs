//! CheckSecondaryLocks for async commit (TiKV `commands/check_secondary_locks.rs`): decides
//! an async-commit transaction by looking at its secondaries.
//!
//! - **Inputs**: the transaction's buffer (its start_ts), a reader, one secondary key.
//! - **Outputs**: [`SecondaryLockStatus`] for the key, and modifications: a pessimistic lock
//!   of the transaction is removed and a protected rollback written; a key with neither lock
//!   nor record gets a protected rollback (so a late prewrite can never succeed).
//! - **Invariants**: once this reports `RolledBack` for a key, that key can never be
//!   prewritten or committed by the transaction (the rollback is protected and never
//!   collapsed); a `Locked` report changes nothing.

use super::rollback::{collapse_prev_rollback, make_rollback, mark_rollback_on_mismatching_lock};
use crate::env::Snapshot;
use crate::mvcc::error::Result;
use crate::mvcc::lock::{Lock, LockType};
use crate::mvcc::reader::{MvccReader, TxnCommitRecord};
use crate::mvcc::txn::MvccTxn;
use crate::mvcc::write::{Write, WriteType};
use crate::types::TimeStamp;

/// What one secondary key says about the transaction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SecondaryLockStatus {
    /// The key carries the transaction's prewrite lock.
    Locked(Lock),
    /// The transaction committed at this ts.
    Committed(TimeStamp),
    /// The transaction is (now) rolled back on this key.
    RolledBack,
}

/// Checks one secondary key of the async-commit transaction `txn.start_ts()`.
pub fn check_secondary_lock<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
) -> Result<SecondaryLockStatus> {
    let start_ts = txn.start_ts();
    let lock = reader.load_lock(key)?;
    let overlapped_write = match lock {
        Some(lock) if lock.ts == start_ts && lock.lock_type != LockType::Pessimistic => {
            return Ok(SecondaryLockStatus::Locked(lock));
        }
        Some(lock) if lock.ts == start_ts => {
            txn.unlock_key(key);
            overlapped_write_of(reader.get_txn_commit_record(key, start_ts)?)
        }
        mismatch => match reader.get_txn_commit_record(key, start_ts)? {
            TxnCommitRecord::SingleRecord { commit_ts, write } => {
                // A record is final: no rollback needed (a Rollback here is either protected
                // already or written by the client's own rollback).
                return Ok(match write.write_type {
                    WriteType::Rollback => SecondaryLockStatus::RolledBack,
                    _ => SecondaryLockStatus::Committed(commit_ts),
                });
            }
            TxnCommitRecord::OverlappedRollback { .. } => {
                return Ok(SecondaryLockStatus::RolledBack);
            }
            TxnCommitRecord::None { overlapped_write } => {
                if let Some(lock) = mismatch {
                    mark_rollback_on_mismatching_lock(txn, key, lock);
                }
                overlapped_write
            }
        },
    };
    write_protected_rollback(txn, reader, key, overlapped_write)?;
    Ok(SecondaryLockStatus::RolledBack)
}

fn overlapped_write_of(record: TxnCommitRecord) -> Option<Write> {
    match record {
        TxnCommitRecord::None { overlapped_write } => overlapped_write,
        other => panic!("a locked txn has a record on the same key: {other:?}"),
    }
}

/// Protected, so that a stale pessimistic lock or prewrite cannot succeed after a collapse.
fn write_protected_rollback<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    overlapped_write: Option<Write>,
) -> Result<()> {
    let Some(write) = make_rollback(txn.start_ts(), true, overlapped_write) else {
        unreachable!("a protected rollback is always written");
    };
    if write.start_ts == txn.start_ts() {
        txn.put_write(key, txn.start_ts(), &write);
    } else {
        txn.put_overlapped_write(key, &write);
    }
    collapse_prev_rollback(txn, reader, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::actions::test_util::TestEnv;
    use crate::mvcc::actions::{CommitKind, Mutation, MutationOp};

    fn check(env: &mut TestEnv, key: &[u8], start_ts: u64) -> SecondaryLockStatus {
        env.run(start_ts, |txn, reader| {
            check_secondary_lock(txn, reader, key)
        })
        .unwrap()
    }

    #[test]
    fn async_lock_is_reported_unchanged() {
        let mut env = TestEnv::new();
        let mutation = Mutation {
            key: b"s".to_vec(),
            op: MutationOp::Put(b"v".to_vec()),
        };
        let async_commit = CommitKind::Async {
            max_commit_ts: TimeStamp::ZERO,
        };
        env.prewrite_full(&mutation, b"p", 10, async_commit, Some(&[]))
            .unwrap();
        let before = env.engine.clone();
        match check(&mut env, b"s", 10) {
            SecondaryLockStatus::Locked(lock) => assert!(lock.use_async_commit),
            other => panic!("expected a lock, got {other:?}"),
        }
        assert_eq!(env.engine, before, "a Locked report writes nothing");
    }

    #[test]
    fn missing_lock_gets_a_protected_rollback() {
        let mut env = TestEnv::new();
        assert_eq!(check(&mut env, b"s", 10), SecondaryLockStatus::RolledBack);
        assert!(env.write_at(b"s", 10).unwrap().is_protected_rollback());
        // A late prewrite of the key now fails.
        let late = env.try_prewrite_put(b"s", b"v", b"p", 10);
        assert!(late.is_err());
    }

    #[test]
    fn committed_key_reports_commit_ts() {
        let mut env = TestEnv::new();
        env.prewrite_put(b"s", b"v", b"p", 10);
        env.commit(b"s", 10, 13).unwrap();
        assert_eq!(
            check(&mut env, b"s", 10),
            SecondaryLockStatus::Committed(TimeStamp(13))
        );
    }

    #[test]
    fn pessimistic_lock_is_rolled_back() {
        let mut env = TestEnv::new();
        env.pessimistic_lock(b"s", b"p", 10, 10).unwrap();
        assert_eq!(check(&mut env, b"s", 10), SecondaryLockStatus::RolledBack);
        assert!(env.lock(b"s").is_none());
        assert!(env.write_at(b"s", 10).unwrap().is_protected_rollback());
    }

    #[test]
    fn foreign_lock_records_the_rollback() {
        let mut env = TestEnv::new();
        env.prewrite_put(b"s", b"v", b"s", 5);
        assert_eq!(check(&mut env, b"s", 10), SecondaryLockStatus::RolledBack);
        assert_eq!(env.lock(b"s").unwrap().rollback_ts, vec![TimeStamp(10)]);
        // The other txn commits exactly at our start_ts: our rollback survives as the flag.
        env.commit(b"s", 5, 10).unwrap();
        let write = env.write_at(b"s", 10).unwrap();
        assert_eq!(write.write_type, WriteType::Put);
        assert!(write.has_overlapped_rollback);
        assert_eq!(check(&mut env, b"s", 10), SecondaryLockStatus::RolledBack);
    }
}
