//! Commit of one key (TiKV `actions/commit.rs`): the second phase of Percolator.
//!
//! - **Inputs**: the transaction's buffer (its start_ts), a reader, the key, commit_ts.
//! - **Outputs**: a write record at `key@commit_ts` and the lock removed; or nothing for a
//!   duplicate commit.
//! - **Invariants**: `commit_ts > start_ts` (asserted; the command layer turns a bad request
//!   into `InvalidTxnTso` first); only this transaction's own lock is committed, and never
//!   below its min_commit_ts; a lock whose start_ts appears in its `rollback_ts` and commits
//!   at one of them keeps that rollback as the overlapped flag; a pessimistic lock is never
//!   committed, only removed (tikv#14551).

use crate::env::Snapshot;
use crate::mvcc::error::{Error, Result};
use crate::mvcc::lock::LockType;
use crate::mvcc::reader::MvccReader;
use crate::mvcc::txn::MvccTxn;
use crate::mvcc::write::{Write, WriteType};
use crate::planted::{self, PlantedBug};
use crate::types::TimeStamp;

/// What a commit did on one key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CommitOutcome {
    /// The lock became a write record.
    Committed,
    /// A leftover pessimistic lock was removed without a record.
    PessimisticLockRemoved,
    /// The transaction had already committed here.
    AlreadyCommitted,
}

/// Commits this transaction's lock on `key` at `commit_ts`.
pub fn commit<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    commit_ts: TimeStamp,
) -> Result<CommitOutcome> {
    let start_ts = txn.start_ts();
    assert!(commit_ts > start_ts, "commit_ts must exceed start_ts");
    let lock = match reader.load_lock(key)? {
        Some(lock) if lock.ts == start_ts || planted::active(PlantedBug::CommitSkipsLockCheck) => {
            lock
        }
        _ => return check_committed(reader, key, start_ts, commit_ts),
    };
    if commit_ts < lock.min_commit_ts {
        return Err(Error::CommitTsExpired {
            start_ts,
            commit_ts,
            key: key.to_vec(),
            min_commit_ts: lock.min_commit_ts,
        });
    }
    if lock.lock_type == LockType::Pessimistic {
        // Left by a lost pessimistic rollback; the key was never prewritten.
        txn.unlock_key(key);
        return Ok(CommitOutcome::PessimisticLockRemoved);
    }
    assert!(commit_ts >= lock.min_commit_ts, "checked above");
    let write_type = WriteType::from_lock_type(lock.lock_type).expect("not pessimistic");
    let mut write = Write::new(write_type, start_ts, lock.short_value);
    write.has_overlapped_rollback = lock.rollback_ts.contains(&commit_ts);
    txn.put_write(key, commit_ts, &write);
    txn.unlock_key(key);
    Ok(CommitOutcome::Committed)
}

/// The lock is gone or foreign: succeed only if our commit record exists.
fn check_committed<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    key: &[u8],
    start_ts: TimeStamp,
    commit_ts: TimeStamp,
) -> Result<CommitOutcome> {
    match reader.get_txn_commit_record(key, start_ts)?.info() {
        Some((_, WriteType::Put | WriteType::Delete | WriteType::Lock)) => {
            Ok(CommitOutcome::AlreadyCommitted)
        }
        Some((_, WriteType::Rollback)) | None => Err(Error::TxnLockNotFound {
            start_ts,
            commit_ts,
            key: key.to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::actions::test_util::TestEnv;

    #[test]
    fn commit_writes_record_and_removes_lock() {
        let mut env = TestEnv::new();
        env.prewrite_put(b"k", b"v", b"k", 10);
        assert_eq!(env.commit(b"k", 10, 15), Ok(CommitOutcome::Committed));
        assert!(env.lock(b"k").is_none());
        let write = env.write_at(b"k", 15).unwrap();
        assert_eq!(write.write_type, WriteType::Put);
        assert_eq!(write.short_value.as_deref(), Some(&b"v"[..]));
        assert_eq!(env.get(b"k", 15), Ok(Some(b"v".to_vec())));
        assert_eq!(env.get(b"k", 14), Ok(None));
        // Duplicate commit succeeds without writing.
        assert_eq!(
            env.commit(b"k", 10, 15),
            Ok(CommitOutcome::AlreadyCommitted)
        );
    }

    #[test]
    fn commit_without_lock_fails() {
        let mut env = TestEnv::new();
        assert!(matches!(
            env.commit(b"k", 1, 2),
            Err(Error::TxnLockNotFound { .. })
        ));
        env.prewrite_put(b"k", b"v", b"k", 5);
        // Another txn's lock is not ours to commit.
        assert!(matches!(
            env.commit(b"k", 4, 6),
            Err(Error::TxnLockNotFound { .. })
        ));
        env.rollback(b"k", 5).unwrap();
        assert!(matches!(
            env.commit(b"k", 5, 6),
            Err(Error::TxnLockNotFound { .. })
        ));
    }

    #[test]
    fn commit_below_min_commit_ts_expires() {
        let mut env = TestEnv::new();
        env.prewrite_with(b"k", b"v", b"k", 10, |props| {
            props.min_commit_ts = TimeStamp(20)
        });
        let error = env.commit(b"k", 10, 19).unwrap_err();
        assert!(matches!(
            error,
            Error::CommitTsExpired {
                min_commit_ts: TimeStamp(20),
                ..
            }
        ));
        assert_eq!(env.commit(b"k", 10, 20), Ok(CommitOutcome::Committed));
    }

    #[test]
    fn long_values_commit_from_cf_default() {
        let mut env = TestEnv::new();
        let long = vec![9u8; 1000];
        env.prewrite_put(b"k", &long, b"k", 10);
        env.commit(b"k", 10, 11).unwrap();
        assert!(env.write_at(b"k", 11).unwrap().short_value.is_none());
        assert_eq!(env.get(b"k", 12), Ok(Some(long)));
    }

    #[test]
    fn pessimistic_lock_is_removed_not_committed() {
        let mut env = TestEnv::new();
        env.pessimistic_lock(b"k", b"k", 10, 10).unwrap();
        assert_eq!(
            env.commit(b"k", 10, 12),
            Ok(CommitOutcome::PessimisticLockRemoved)
        );
        assert!(env.lock(b"k").is_none());
        assert!(env.write_at(b"k", 12).is_none());
    }
}
