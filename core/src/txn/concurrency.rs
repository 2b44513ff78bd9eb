//! The concurrency manager (TiKV `components/concurrency_manager`): the largest timestamp
//! any read has used (`max_ts`) and the in-memory table of async-commit/1PC locks that are
//! decided but not yet applied.
//!
//! - **Inputs**: read timestamps (every Get/BatchGet/Scan/ScanLock, CheckTxnStatus, Cleanup,
//!   CheckSecondaryLocks raises max_ts first); async/1PC prewrites publishing their locks;
//!   applied writes releasing them; PD's timestamps taken after leader changes (`sync`).
//! - **Outputs**: `max_ts` for async-commit min_commit_ts; `KeyIsLocked` for reads that meet
//!   a published memory lock. Which regions may use max_ts (synced since their leader's
//!   election) is `MaxTsSync`'s business (`max_ts_sync.rs`).
//! - **Invariants**: `max_ts` never decreases, ignores `TimeStamp::MAX` (a "latest" read) and
//!   refuses timestamps above the configured limit (a bogus client ts must not push every
//!   later commit into the future, tikv#17917). The ordering contract with readers: a
//!   prewrite publishes its memory lock and reads max_ts in one exclusive call, and a reader
//!   raises max_ts before checking memory locks, so the reader either raised max_ts first
//!   (and the commit lands above it) or sees the lock. A multi-threaded server must hold
//!   this manager exclusively for each of those calls.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::ops::Bound;

use ferrokv_proto::kvrpcpb;

use crate::limits;
use crate::mvcc::reader::check_read_conflict;
use crate::mvcc::{self, Lock};
use crate::types::{KeyRange, TimeStamp};

/// Why max_ts could not be used or raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MaxTsError {
    /// A timestamp above the allowed limit: refused rather than trusted.
    #[error("timestamp {ts:?} above the max_ts limit {limit:?}")]
    AboveLimit { ts: TimeStamp, limit: TimeStamp },
    /// The memory lock table is full.
    #[error("in-memory lock table full")]
    TableFull,
}

/// max_ts plus the in-memory lock table.
#[derive(Debug)]
pub struct ConcurrencyManager {
    max_ts: TimeStamp,
    max_ts_limit: Option<TimeStamp>,
    memory_locks: BTreeMap<Vec<u8>, Lock>,
}

impl ConcurrencyManager {
    /// A manager whose max_ts starts at `initial`.
    pub fn new(initial: TimeStamp) -> ConcurrencyManager {
        ConcurrencyManager {
            max_ts: initial,
            max_ts_limit: None,
            memory_locks: BTreeMap::new(),
        }
    }

    /// The largest read timestamp seen.
    pub fn max_ts(&self) -> TimeStamp {
        self.max_ts
    }

    /// Refuse later timestamps above `limit` (PD's latest ts plus the allowed drift).
    pub fn set_max_ts_limit(&mut self, limit: TimeStamp) {
        assert!(limit < TimeStamp::MAX, "MAX is no limit");
        self.max_ts_limit = Some(limit);
    }

    /// Raises max_ts to `ts` (MAX is ignored: it is not a real timestamp).
    pub fn update_max_ts(&mut self, ts: TimeStamp) -> Result<(), MaxTsError> {
        if ts == TimeStamp::MAX {
            return Ok(());
        }
        if let Some(limit) = self.max_ts_limit.filter(|limit| ts > *limit) {
            return Err(MaxTsError::AboveLimit { ts, limit });
        }
        let before = self.max_ts;
        self.max_ts = self.max_ts.max(ts);
        assert!(self.max_ts >= before, "max_ts never decreases");
        Ok(())
    }

    /// Raises max_ts to a PD timestamp taken after a leader change: newer than every read
    /// the old leader served.
    pub fn sync(&mut self, pd_ts: TimeStamp) {
        assert!(pd_ts < TimeStamp::MAX, "MAX is no PD timestamp");
        let before = self.max_ts;
        self.max_ts = self.max_ts.max(pd_ts);
        assert!(self.max_ts >= before, "max_ts never decreases");
    }

    /// Publishes the lock of an async/1PC prewrite on `key` until its write is applied.
    pub fn lock_key(&mut self, key: &[u8], lock: Lock) -> Result<(), MaxTsError> {
        assert!(
            lock.min_commit_ts > lock.ts,
            "an async lock commits above its start_ts"
        );
        assert!(
            lock.min_commit_ts > self.max_ts
                || crate::planted::active(crate::planted::PlantedBug::AsyncCommitIgnoresMaxTs),
            "published after a read it must exceed"
        );
        if let Some(existing) = self.memory_locks.get(key) {
            // Latches serialize writers of a key: only the same transaction may republish.
            assert_eq!(
                existing.ts, lock.ts,
                "two txns published a memory lock on one key"
            );
        } else if self.memory_locks.len() >= limits::MEMORY_LOCKS_MAX {
            return Err(MaxTsError::TableFull);
        }
        self.memory_locks.insert(key.to_vec(), lock);
        Ok(())
    }

    /// Drops the memory locks of `keys` (their writes were applied or abandoned).
    pub fn unlock_keys<K: AsRef<[u8]>>(&mut self, keys: &[K]) {
        for key in keys {
            self.memory_locks.remove(key.as_ref());
        }
    }

    /// Number of published memory locks.
    pub fn memory_lock_count(&self) -> usize {
        self.memory_locks.len()
    }

    /// `KeyIsLocked` if a memory lock on `key` blocks a read at `ts`.
    pub fn read_key_check(
        &self,
        key: &[u8],
        ts: TimeStamp,
        bypass_locks: &BTreeSet<TimeStamp>,
    ) -> mvcc::Result<()> {
        match self.memory_locks.get(key) {
            Some(lock) => check_read_conflict(lock, key, ts, bypass_locks),
            None => Ok(()),
        }
    }

    /// Published memory locks in `range` with ts ≤ `max_ts`, as `LockInfo`s (ScanLock).
    pub fn memory_locks_in(&self, range: &KeyRange, max_ts: TimeStamp) -> Vec<kvrpcpb::LockInfo> {
        let end = if range.end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(range.end.clone())
        };
        self.memory_locks
            .range((Bound::Included(range.start.clone()), end))
            .filter(|(_, lock)| lock.ts <= max_ts)
            .map(|(key, lock)| lock.to_lock_info(key))
            .collect()
    }

    /// `KeyIsLocked` for the first memory lock in the user-key `range` that blocks a read at
    /// `ts`.
    pub fn read_range_check(
        &self,
        range: &KeyRange,
        ts: TimeStamp,
        bypass_locks: &BTreeSet<TimeStamp>,
    ) -> mvcc::Result<()> {
        let end = if range.end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(range.end.clone())
        };
        let candidates = self
            .memory_locks
            .range((Bound::Included(range.start.clone()), end));
        for (key, lock) in candidates {
            check_read_conflict(lock, key, ts, bypass_locks)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::LockType;

    fn async_lock(ts: u64, min_commit_ts: u64) -> Lock {
        let mut lock = Lock::new(LockType::Put, b"p".to_vec(), TimeStamp(ts), 3000);
        lock.use_async_commit = true;
        lock.min_commit_ts = TimeStamp(min_commit_ts);
        lock
    }

    #[test]
    fn max_ts_only_grows_and_ignores_max() {
        let mut manager = ConcurrencyManager::new(TimeStamp(10));
        manager.update_max_ts(TimeStamp(5)).unwrap();
        assert_eq!(manager.max_ts(), TimeStamp(10));
        manager.update_max_ts(TimeStamp(20)).unwrap();
        manager.update_max_ts(TimeStamp::MAX).unwrap();
        assert_eq!(manager.max_ts(), TimeStamp(20));
        manager.set_max_ts_limit(TimeStamp(100));
        assert_eq!(
            manager.update_max_ts(TimeStamp(101)),
            Err(MaxTsError::AboveLimit {
                ts: TimeStamp(101),
                limit: TimeStamp(100)
            })
        );
        assert_eq!(manager.max_ts(), TimeStamp(20));
    }

    #[test]
    fn a_sync_only_raises_max_ts() {
        let mut manager = ConcurrencyManager::new(TimeStamp(10));
        manager.sync(TimeStamp(50));
        assert_eq!(manager.max_ts(), TimeStamp(50));
        manager.sync(TimeStamp(40));
        assert_eq!(manager.max_ts(), TimeStamp(50));
    }

    #[test]
    fn memory_locks_block_reads_until_released() {
        let mut manager = ConcurrencyManager::new(TimeStamp(10));
        manager.lock_key(b"k", async_lock(5, 11)).unwrap();
        let none = BTreeSet::new();
        assert!(
            manager.read_key_check(b"k", TimeStamp(10), &none).is_ok(),
            "commits above"
        );
        assert!(manager.read_key_check(b"k", TimeStamp(11), &none).is_err());
        let all = KeyRange::all();
        assert!(matches!(
            manager.read_range_check(&all, TimeStamp(12), &none),
            Err(mvcc::Error::KeyIsLocked(_))
        ));
        let elsewhere = KeyRange::new(b"l".to_vec(), vec![]);
        assert!(manager
            .read_range_check(&elsewhere, TimeStamp(12), &none)
            .is_ok());
        manager.unlock_keys(&[b"k"]);
        assert_eq!(manager.memory_lock_count(), 0);
        assert!(manager.read_key_check(b"k", TimeStamp(12), &none).is_ok());
    }
}
