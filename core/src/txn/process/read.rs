//! Read commands: snapshot reads with no latch (TiKV `storage/mod.rs` get/batch_get/scan/
//! scan_lock, and the read phases of ResolveLock and GC).
//!
//! - **Inputs**: a validated [`ReadCommand`], a reader, the concurrency manager.
//! - **Outputs**: a [`ReadResult`].
//! - **Invariants**: every read raises max_ts to its timestamp *before* checking the
//!   memory lock table and reading, so an async commit either lands above the read or is
//!   seen as a lock. BatchGet reports locked keys per key and still returns the others
//!   (tikv#9069); a memory lock in a scan's range fails the whole scan, as in TiKV.

use std::ops::ControlFlow;

use super::ReadResult;
use crate::env::{Cf, Direction, Snapshot};
use crate::limits;
use crate::mvcc::reader::{for_each_paged, point_get, scan};
use crate::mvcc::{self, keys, MvccReader};
use crate::txn::command::ReadCommand;
use crate::txn::concurrency::ConcurrencyManager;
use crate::txn::error::Error;
use crate::types::{KeyRange, TimeStamp};

/// Runs a read command against `reader`'s snapshot.
pub fn process_read<S: Snapshot>(
    command: &ReadCommand,
    reader: &MvccReader<'_, S>,
    manager: &mut ConcurrencyManager,
) -> Result<ReadResult, Error> {
    match command {
        ReadCommand::Get {
            key,
            ts,
            bypass_locks,
        } => {
            manager.update_max_ts(*ts)?;
            manager.read_key_check(key, *ts, bypass_locks)?;
            Ok(ReadResult::Value(point_get(
                reader,
                key,
                *ts,
                bypass_locks,
                true,
            )?))
        }
        ReadCommand::BatchGet {
            keys,
            ts,
            bypass_locks,
        } => {
            manager.update_max_ts(*ts)?;
            let mut pairs = Vec::with_capacity(keys.len());
            for key in keys {
                let found = manager
                    .read_key_check(key, *ts, bypass_locks)
                    .and_then(|()| point_get(reader, key, *ts, bypass_locks, true));
                match found {
                    Ok(Some(value)) => pairs.push(Ok((key.clone(), value))),
                    Ok(None) => {}
                    Err(error @ mvcc::Error::KeyIsLocked(_)) => pairs.push(Err(error)),
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(ReadResult::Pairs(pairs))
        }
        ReadCommand::Scan(options) => {
            let options = &options.0;
            manager.update_max_ts(options.ts)?;
            manager.read_range_check(&options.range, options.ts, &options.bypass_locks)?;
            Ok(ReadResult::Pairs(scan(reader, options)?))
        }
        ReadCommand::ScanLock {
            max_ts,
            range,
            limit,
        } => scan_lock(reader, manager, *max_ts, range, *limit),
        ReadCommand::ResolveLockScan { txn_status, range } => {
            let batch = limits::RESOLVE_LOCK_BATCH_KEYS;
            let (locks, more) =
                reader.scan_locks(range, batch, |l| txn_status.contains_key(&l.ts))?;
            let keys: Vec<Vec<u8>> = locks.into_iter().map(|(key, _)| key).collect();
            let next_start = more.then(|| next_key(keys.last().expect("a full batch")));
            Ok(ReadResult::Keys { keys, next_start })
        }
        ReadCommand::GcScan { range } => gc_scan(reader, range),
    }
}

fn next_key(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// Locks with ts ≤ `max_ts`: stored ones and published memory ones, in key order.
fn scan_lock<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    manager: &mut ConcurrencyManager,
    max_ts: TimeStamp,
    range: &KeyRange,
    limit: usize,
) -> Result<ReadResult, Error> {
    assert!(limit > 0 && limit <= limits::SCAN_LOCK_LIMIT_MAX);
    manager.update_max_ts(max_ts)?;
    let (stored, _) = reader.scan_locks(range, limit, |lock| lock.ts <= max_ts)?;
    let mut locks: Vec<_> = stored
        .iter()
        .map(|(key, lock)| lock.to_lock_info(key))
        .collect();
    let memory = manager.memory_locks_in(range, max_ts);
    for info in memory {
        if !locks.iter().any(|stored| stored.key == info.key) {
            locks.push(info);
        }
    }
    locks.sort_by(|a, b| a.key.cmp(&b.key));
    locks.truncate(limit);
    Ok(ReadResult::Locks(locks))
}

/// Distinct user keys with write records in `range`, a batch at a time.
fn gc_scan<S: Snapshot>(reader: &MvccReader<'_, S>, range: &KeyRange) -> Result<ReadResult, Error> {
    let storage = keys::storage_range(range);
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut more = false;
    let page = limits::MVCC_VERSION_PAGE_KEYS;
    for_each_paged(
        reader.snapshot(),
        Cf::Write,
        &storage,
        page,
        Direction::Forward,
        |k, _| {
            let (user_key, _) = keys::decode_version_key(k)?;
            if found.last() == Some(&user_key) {
                return Ok(ControlFlow::Continue(()));
            }
            if found.len() == limits::GC_BATCH_KEYS {
                more = true;
                return Ok(ControlFlow::Break(()));
            }
            found.push(user_key);
            Ok(ControlFlow::Continue(()))
        },
    )?;
    let next_start = more.then(|| next_key(found.last().expect("a full batch")));
    Ok(ReadResult::Keys {
        keys: found,
        next_start,
    })
}
