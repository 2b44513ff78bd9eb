//! Point reads at a timestamp (TiKV `PointGetter` under snapshot isolation).
//!
//! - **Inputs**: a reader, a user key, the read timestamp, start timestamps whose locks the
//!   reader may ignore (`Context.resolved_locks`).
//! - **Outputs**: the value of the newest `Put` with commit_ts ≤ ts, `None` for a newest
//!   `Delete` or no version, or `KeyIsLocked` with the `LockInfo` a client resolves.
//! - **Invariants**: `Lock` and `Rollback` records are skipped; the lock check follows TiKV's
//!   `check_ts_conflict_si` exactly, so this read and TiKV's block on the same locks.

use std::collections::BTreeSet;

use super::MvccReader;
use crate::env::Snapshot;
use crate::mvcc::error::{Error, Result};
use crate::mvcc::lock::{Lock, LockType};
use crate::mvcc::write::WriteType;
use crate::types::TimeStamp;

/// Fails with `KeyIsLocked` if `lock` on `key` must block a snapshot read at `ts`.
///
/// A lock is ignored when it started after `ts`, is a `Lock` or pessimistic lock (neither
/// changes data), has min_commit_ts above `ts` (it will commit above the read), belongs to a
/// transaction in `bypass_locks`, or is a non-async primary lock read at `TimeStamp::MAX`
/// (reading the latest committed version of a primary).
pub fn check_read_conflict(
    lock: &Lock,
    key: &[u8],
    ts: TimeStamp,
    bypass_locks: &BTreeSet<TimeStamp>,
) -> Result<()> {
    if lock.ts > ts || matches!(lock.lock_type, LockType::Lock | LockType::Pessimistic) {
        return Ok(());
    }
    if lock.min_commit_ts > ts || bypass_locks.contains(&lock.ts) {
        return Ok(());
    }
    if ts == TimeStamp::MAX && key == lock.primary.as_slice() && !lock.use_async_commit {
        return Ok(());
    }
    Err(Error::KeyIsLocked(Box::new(lock.to_lock_info(key))))
}

/// What a snapshot read of `key` at `ts` returns. With `load_value` false a present value is
/// returned empty (key-only scans) and CF default is not read.
pub fn point_get<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    key: &[u8],
    ts: TimeStamp,
    bypass_locks: &BTreeSet<TimeStamp>,
    load_value: bool,
) -> Result<Option<Vec<u8>>> {
    assert!(ts > TimeStamp::ZERO, "a read needs a timestamp");
    if let Some(lock) = reader.load_lock(key)? {
        check_read_conflict(&lock, key, ts, bypass_locks)?;
    }
    let Some((commit_ts, write)) = reader.get_write(key, ts)? else {
        return Ok(None);
    };
    assert!(commit_ts <= ts, "read saw a version above its timestamp");
    assert!(
        write.start_ts < commit_ts,
        "a data version commits after it starts"
    );
    match write.write_type {
        WriteType::Put if load_value => Ok(Some(reader.load_data(key, &write)?)),
        WriteType::Put => Ok(Some(Vec::new())),
        WriteType::Delete => Ok(None),
        WriteType::Lock | WriteType::Rollback => unreachable!("get_write skips these"),
    }
}
