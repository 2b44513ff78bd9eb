//! ResolveLock of one key (TiKV `commands/resolve_lock.rs`): commits or rolls back a lock
//! whose transaction's fate is known.
//!
//! - **Inputs**: the lock owner's buffer (start_ts = lock.ts), a reader, the key and its lock,
//!   and the owner's commit_ts (zero: rolled back).
//! - **Outputs**: the commit or rollback modifications for that key.
//! - **Invariants**: a status that is neither zero nor above the lock's start_ts is
//!   `InvalidTxnTso`; a pessimistic lock of a committed transaction is simply removed.

use super::commit::commit;
use super::rollback::cleanup;
use crate::env::Snapshot;
use crate::mvcc::error::{Error, Result};
use crate::mvcc::lock::Lock;
use crate::mvcc::reader::MvccReader;
use crate::mvcc::txn::MvccTxn;
use crate::types::TimeStamp;

/// Resolves `lock` on `key` for a transaction decided at `commit_ts` (0 = rolled back).
pub fn resolve_lock<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    lock: &Lock,
    commit_ts: TimeStamp,
) -> Result<()> {
    assert_eq!(
        lock.ts,
        txn.start_ts(),
        "a lock is resolved in its own txn's buffer"
    );
    if commit_ts == TimeStamp::ZERO {
        return cleanup(txn, reader, key, TimeStamp::ZERO, false);
    }
    if commit_ts <= lock.ts {
        return Err(Error::InvalidTxnTso {
            start_ts: lock.ts,
            commit_ts,
        });
    }
    commit(txn, reader, key, commit_ts).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::actions::test_util::TestEnv;

    fn resolve(env: &mut TestEnv, key: &[u8], start_ts: u64, commit_ts: u64) -> Result<()> {
        let lock = env.lock(key).unwrap();
        env.run(start_ts, |txn, reader| {
            resolve_lock(txn, reader, key, &lock, TimeStamp(commit_ts))
        })
    }

    #[test]
    fn commits_or_rolls_back() {
        let mut env = TestEnv::new();
        env.prewrite_put(b"a", b"1", b"a", 10);
        env.prewrite_put(b"b", b"2", b"a", 10);
        resolve(&mut env, b"a", 10, 12).unwrap();
        assert_eq!(env.get(b"a", 20), Ok(Some(b"1".to_vec())));
        resolve(&mut env, b"b", 10, 0).unwrap();
        assert!(env.lock(b"b").is_none());
        assert_eq!(env.get(b"b", 20), Ok(None));
        assert_eq!(
            env.write_at(b"b", 10).unwrap().write_type,
            crate::mvcc::write::WriteType::Rollback
        );
    }

    #[test]
    fn status_at_or_below_start_is_invalid() {
        let mut env = TestEnv::new();
        env.prewrite_put(b"a", b"1", b"a", 10);
        assert!(matches!(
            resolve(&mut env, b"a", 10, 10),
            Err(Error::InvalidTxnTso { .. })
        ));
        assert!(env.lock(b"a").is_some());
    }
}
