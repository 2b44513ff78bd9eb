//! Reading MVCC data from one engine snapshot.
//!
//! - **Inputs**: a `Snapshot`, raw user keys, timestamps.
//! - **Outputs**: decoded locks and write records, values, commit records of a transaction,
//!   and (in `point`/`scanner`) what a transactional read at a timestamp sees.
//! - **Invariants**: every engine scan is bounded by a page size at most
//!   `limits::ENGINE_SCAN_KEYS_MAX`, and every paging loop strictly advances its cursor; every
//!   key read back is checked to belong to the user key asked for; nothing is cached, so two
//!   calls on one snapshot always agree.

mod point;
mod scanner;

pub use point::{check_read_conflict, point_get};
pub use scanner::{scan, ScanOptions, ScanResult};

use std::ops::ControlFlow;

use super::error::{Error, Result};
use super::keys;
use super::lock::Lock;
use super::write::{Write, WriteType};
use crate::env::{Cf, Direction, Snapshot};
use crate::limits;
use crate::types::{KeyRange, TimeStamp};

/// Where (if anywhere) a transaction left its commit or rollback record on a key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TxnCommitRecord {
    /// No record. `overlapped_write` is another transaction's record committed at exactly
    /// this start_ts (where our rollback would have to go).
    None {
        /// That record and its commit_ts (always the start_ts asked for).
        overlapped_write: Option<Write>,
    },
    /// The transaction's own record.
    SingleRecord {
        /// Where it sits (the start_ts for a rollback).
        commit_ts: TimeStamp,
        /// The record.
        write: Write,
    },
    /// Another transaction committed at this start_ts and carries our rollback as a flag.
    OverlappedRollback {
        /// Equal to the start_ts asked for.
        commit_ts: TimeStamp,
    },
}

impl TxnCommitRecord {
    /// `(commit_ts, type)` if the transaction left a record; overlapped rollbacks count as
    /// rollbacks.
    pub fn info(&self) -> Option<(TimeStamp, WriteType)> {
        match self {
            TxnCommitRecord::None { .. } => None,
            TxnCommitRecord::SingleRecord { commit_ts, write } => {
                Some((*commit_ts, write.write_type))
            }
            TxnCommitRecord::OverlappedRollback { commit_ts } => {
                Some((*commit_ts, WriteType::Rollback))
            }
        }
    }
}

/// Visits the pairs of `range` in `direction`, reading pages of at most `page_keys`, until
/// `visit` breaks or the range is exhausted.
pub(crate) fn for_each_paged<S, F>(
    snapshot: &S,
    cf: Cf,
    range: &KeyRange,
    page_keys: usize,
    direction: Direction,
    mut visit: F,
) -> Result<()>
where
    S: Snapshot,
    F: FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>,
{
    assert!(page_keys > 0, "a page holds at least one pair");
    assert!(page_keys <= limits::ENGINE_SCAN_KEYS_MAX);
    let mut remaining = range.clone();
    while !remaining.is_empty() {
        let page = snapshot.scan(cf, &remaining, page_keys, direction)?;
        assert!(page.len() <= page_keys, "engine returned more than asked");
        for (key, value) in &page {
            assert!(
                remaining.contains(key),
                "engine returned a key outside the range"
            );
            if visit(key, value)?.is_break() {
                return Ok(());
            }
        }
        let Some((last, _)) = page.last().filter(|_| page.len() == page_keys) else {
            return Ok(());
        };
        match direction {
            Direction::Forward => {
                let mut next = last.clone();
                next.push(0);
                remaining.start = next;
            }
            Direction::Reverse if last.is_empty() => return Ok(()),
            Direction::Reverse => remaining.end = last.clone(),
        }
    }
    Ok(())
}

/// A user key and the lock on it.
pub type KeyLock = (Vec<u8>, Lock);

/// Decoding reads over one snapshot.
pub struct MvccReader<'a, S: Snapshot> {
    snapshot: &'a S,
}

impl<'a, S: Snapshot> MvccReader<'a, S> {
    /// A reader of `snapshot`.
    pub fn new(snapshot: &'a S) -> MvccReader<'a, S> {
        MvccReader { snapshot }
    }

    /// The snapshot read.
    pub fn snapshot(&self) -> &'a S {
        self.snapshot
    }

    /// The lock on `key`, if any.
    pub fn load_lock(&self, key: &[u8]) -> Result<Option<Lock>> {
        let stored = self.snapshot.get(Cf::Lock, &keys::lock_key(key))?;
        stored.map(|bytes| Ok(Lock::decode(&bytes)?)).transpose()
    }

    /// The newest write record of `key` with commit_ts ≤ `ts`, of any type.
    pub fn seek_write(&self, key: &[u8], ts: TimeStamp) -> Result<Option<(TimeStamp, Write)>> {
        let range = keys::versions_at_or_below(key, ts);
        let page = self
            .snapshot
            .scan(Cf::Write, &range, 1, Direction::Forward)?;
        let Some((stored_key, value)) = page.into_iter().next() else {
            return Ok(None);
        };
        let commit_ts = decode_own_version(key, &stored_key)?;
        assert!(commit_ts <= ts, "seek returned a newer version");
        Ok(Some((commit_ts, Write::decode(&value)?)))
    }

    /// The newest `Put` or `Delete` of `key` with commit_ts ≤ `ts`, skipping `Lock` and
    /// `Rollback` records (the version a read at `ts` sees).
    pub fn get_write(&self, key: &[u8], ts: TimeStamp) -> Result<Option<(TimeStamp, Write)>> {
        let range = keys::versions_at_or_below(key, ts);
        let mut found = None;
        let page_keys = limits::MVCC_VERSION_PAGE_KEYS;
        for_each_paged(
            self.snapshot,
            Cf::Write,
            &range,
            page_keys,
            Direction::Forward,
            |k, v| {
                let write = Write::decode(v)?;
                if !write.write_type.is_data() {
                    return Ok(ControlFlow::Continue(()));
                }
                found = Some((decode_own_version(key, k)?, write));
                Ok(ControlFlow::Break(()))
            },
        )?;
        Ok(found)
    }

    /// The record the transaction `start_ts` left on `key`: searched from the newest version
    /// down to `start_ts`, because a pessimistic transaction can commit above a newer one.
    pub fn get_txn_commit_record(
        &self,
        key: &[u8],
        start_ts: TimeStamp,
    ) -> Result<TxnCommitRecord> {
        assert!(start_ts > TimeStamp::ZERO);
        let mut end = keys::version_key(key, start_ts);
        end.push(0);
        let range = KeyRange::new(keys::lock_key(key), end);
        let mut record = TxnCommitRecord::None {
            overlapped_write: None,
        };
        let page_keys = limits::MVCC_VERSION_PAGE_KEYS;
        for_each_paged(
            self.snapshot,
            Cf::Write,
            &range,
            page_keys,
            Direction::Forward,
            |k, v| {
                let commit_ts = decode_own_version(key, k)?;
                assert!(commit_ts >= start_ts);
                let write = Write::decode(v)?;
                if write.start_ts > commit_ts {
                    let message = format!("record at {commit_ts:?} of txn {:?}", write.start_ts);
                    return Err(Error::Corruption(message));
                }
                record = if write.start_ts == start_ts {
                    TxnCommitRecord::SingleRecord { commit_ts, write }
                } else if commit_ts == start_ts && write.has_overlapped_rollback {
                    TxnCommitRecord::OverlappedRollback { commit_ts }
                } else if commit_ts == start_ts {
                    let overlapped_write = Some(write);
                    TxnCommitRecord::None { overlapped_write }
                } else {
                    return Ok(ControlFlow::Continue(()));
                };
                Ok(ControlFlow::Break(()))
            },
        )?;
        Ok(record)
    }

    /// The value a `Put` record stands for: inline, or from CF default at `key@start_ts`.
    pub fn load_data(&self, key: &[u8], write: &Write) -> Result<Vec<u8>> {
        assert_eq!(write.write_type, WriteType::Put, "only a Put has a value");
        if let Some(value) = &write.short_value {
            return Ok(value.clone());
        }
        let stored_key = keys::version_key(key, write.start_ts);
        let value = self.snapshot.get(Cf::Default, &stored_key)?;
        let value = value.ok_or_else(|| Error::DefaultNotFound {
            key: key.to_vec(),
            start_ts: write.start_ts,
        })?;
        assert!(
            value.len() > super::lock::SHORT_VALUE_BYTES_MAX,
            "short value in CF default"
        );
        Ok(value)
    }

    /// Up to `limit` locks in the user-key `range` for which `keep` holds, in key order, and
    /// whether the scan stopped at the limit (more may follow).
    pub fn scan_locks<F>(
        &self,
        range: &KeyRange,
        limit: usize,
        mut keep: F,
    ) -> Result<(Vec<KeyLock>, bool)>
    where
        F: FnMut(&Lock) -> bool,
    {
        assert!(limit > 0, "an unbounded lock scan is a caller bug");
        let mut locks = Vec::new();
        let storage = keys::storage_range(range);
        let page_keys = limit.min(limits::MVCC_LOCK_PAGE_KEYS);
        for_each_paged(
            self.snapshot,
            Cf::Lock,
            &storage,
            page_keys,
            Direction::Forward,
            |k, v| {
                let lock = Lock::decode(v)?;
                if keep(&lock) {
                    locks.push((keys::decode_lock_key(k)?, lock));
                }
                Ok(if locks.len() == limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            },
        )?;
        let has_more = locks.len() == limit;
        Ok((locks, has_more))
    }

    /// Every write record of `key` with commit_ts ≤ `ts`, newest first, at most `limit`.
    pub fn scan_writes(
        &self,
        key: &[u8],
        ts: TimeStamp,
        limit: usize,
    ) -> Result<Vec<(TimeStamp, Write)>> {
        let mut writes = Vec::new();
        let range = keys::versions_at_or_below(key, ts);
        let page_keys = limit.clamp(1, limits::MVCC_VERSION_PAGE_KEYS);
        for_each_paged(
            self.snapshot,
            Cf::Write,
            &range,
            page_keys,
            Direction::Forward,
            |k, v| {
                writes.push((decode_own_version(key, k)?, Write::decode(v)?));
                Ok(if writes.len() >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            },
        )?;
        Ok(writes)
    }
}

/// The timestamp of a version key, checking that it belongs to `key` (a malformed key inside
/// the key's range is corruption, not a bug).
fn decode_own_version(key: &[u8], stored: &[u8]) -> Result<TimeStamp> {
    let prefix = keys::version_key_prefix(stored)?;
    if prefix != keys::lock_key(key) {
        return Err(Error::Corruption(format!(
            "malformed version key of {} bytes",
            stored.len()
        )));
    }
    Ok(keys::version_ts(stored)?)
}

#[cfg(test)]
mod tests;
