//! Range reads at a timestamp (TiKV `Scanner` + `Store::scan`), forward or reverse.
//!
//! - **Inputs**: a reader and [`ScanOptions`] (user-key range, read ts, limit, key_only,
//!   direction, locks to bypass).
//! - **Outputs**: up to `limit` entries in key order (descending for reverse): a visible pair,
//!   or a per-key `KeyIsLocked` error (TiKV reports a locked key as a pair with an error and
//!   keeps scanning; error entries count toward the limit, as in TiKV).
//! - **Invariants**: each step finds the next user key that has a lock or a write record
//!   with two bounded one-pair engine scans, reads it with the point getter, then moves the
//!   cursor strictly past that key, so a scan ends after at most one step per user key in
//!   the range. Output keys are strictly monotonic in the scan direction.

use std::collections::BTreeSet;

use super::point::point_get;
use super::MvccReader;
use crate::env::{Cf, Direction, KvPair, Snapshot};
use crate::mvcc::error::{Error, Result};
use crate::mvcc::keys;
use crate::types::{KeyRange, TimeStamp};

/// A validated scan request.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// User keys `[start, end)`; an empty end is unbounded.
    pub range: KeyRange,
    /// The read timestamp.
    pub ts: TimeStamp,
    /// Most entries (pairs and per-key errors) to return.
    pub limit: usize,
    /// Return keys with empty values (and skip reading long values).
    pub key_only: bool,
    /// Ascending from `range.start`, or descending from `range.end`.
    pub direction: Direction,
    /// Start timestamps whose locks this read may ignore.
    pub bypass_locks: BTreeSet<TimeStamp>,
}

/// One entry of a scan: a visible pair, or the error of a locked key.
pub type ScanResult = std::result::Result<KvPair, Error>;

/// The lock-key form of the first (forward) or last (reverse) user key in `range` that has a
/// record in `cf`.
fn boundary_key<S: Snapshot>(
    snapshot: &S,
    cf: Cf,
    range: &KeyRange,
    direction: Direction,
) -> Result<Option<Vec<u8>>> {
    let page = snapshot.scan(cf, range, 1, direction)?;
    let Some((stored, _)) = page.into_iter().next() else {
        return Ok(None);
    };
    Ok(Some(match cf {
        Cf::Lock => stored,
        _ => keys::version_key_prefix(&stored)?.to_vec(),
    }))
}

/// The next user key with a lock or a write record inside the storage range `cursor`.
fn next_user_key<S: Snapshot>(
    snapshot: &S,
    cursor: &KeyRange,
    direction: Direction,
) -> Result<Option<Vec<u8>>> {
    let lock = boundary_key(snapshot, Cf::Lock, cursor, direction)?;
    let write = boundary_key(snapshot, Cf::Write, cursor, direction)?;
    let next = match (lock, write, direction) {
        (None, None, _) => return Ok(None),
        (Some(key), None, _) | (None, Some(key), _) => key,
        (Some(a), Some(b), Direction::Forward) => a.min(b),
        (Some(a), Some(b), Direction::Reverse) => a.max(b),
    };
    Ok(Some(keys::decode_lock_key(&next)?))
}

/// Scans `options.range` at `options.ts`.
pub fn scan<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    options: &ScanOptions,
) -> Result<Vec<ScanResult>> {
    assert!(options.ts > TimeStamp::ZERO, "a read needs a timestamp");
    let mut cursor = keys::storage_range(&options.range);
    let mut results: Vec<ScanResult> = Vec::with_capacity(options.limit.min(256));
    while results.len() < options.limit && !cursor.is_empty() {
        let Some(user_key) = next_user_key(reader.snapshot(), &cursor, options.direction)? else {
            break;
        };
        assert!(options.range.contains(&user_key), "scan left its range");
        let load_value = !options.key_only;
        match point_get(
            reader,
            &user_key,
            options.ts,
            &options.bypass_locks,
            load_value,
        ) {
            Ok(Some(value)) => results.push(Ok((user_key.clone(), value))),
            Ok(None) => {}
            Err(error @ Error::KeyIsLocked(_)) => results.push(Err(error)),
            Err(error) => return Err(error),
        }
        let before = cursor.clone();
        match options.direction {
            Direction::Forward => cursor.start = keys::versions_end(&user_key),
            Direction::Reverse => cursor.end = keys::lock_key(&user_key),
        }
        assert!(
            cursor.start > before.start || cursor.end < before.end,
            "scan must advance"
        );
    }
    debug_assert!(is_monotonic(&results, options.direction));
    Ok(results)
}

fn is_monotonic(results: &[ScanResult], direction: Direction) -> bool {
    let keys: Vec<&[u8]> = results
        .iter()
        .map(|entry| match entry {
            Ok((key, _)) => key.as_slice(),
            Err(Error::KeyIsLocked(info)) => info.key.as_slice(),
            Err(_) => unreachable!("only locked keys are reported per key"),
        })
        .collect();
    keys.windows(2).all(|pair| match direction {
        Direction::Forward => pair[0] < pair[1],
        Direction::Reverse => pair[0] > pair[1],
    })
}
