//! Garbage collection of old versions (TiKV `actions/gc.rs`) and range deletion of
//! transactional data.
//!
//! - **Inputs**: a buffer with start_ts zero (GC acts for no transaction), a reader, a key
//!   and the safe point (no transaction with start_ts below it is still running, and no read
//!   below it will come).
//! - **Outputs**: deletions of write records (and their CF default values).
//! - **Invariants**: every read at a ts ≥ safe point returns the same result before and after
//!   GC: among records ≤ safe point the newest `Put` is kept and everything older removed; a
//!   newest `Delete` goes too (nothing older remains for it to hide); `Lock` and `Rollback`
//!   records ≤ safe point go. Records above the safe point and locks are never touched.

use std::ops::ControlFlow;

use crate::env::{Cf, Direction, Snapshot};
use crate::limits;
use crate::mvcc::error::Result;
use crate::mvcc::keys;
use crate::mvcc::reader::{for_each_paged, MvccReader};
use crate::mvcc::txn::MvccTxn;
use crate::mvcc::write::{Write, WriteType};
use crate::planted::{self, PlantedBug};
use crate::types::{KeyRange, TimeStamp};

/// What GC did on one key.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct GcInfo {
    /// Records at or below the safe point that were looked at.
    pub found_versions: usize,
    /// Records deleted.
    pub deleted_versions: usize,
}

/// Collects the versions of `key` that the safe point makes unreachable.
pub fn gc<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    key: &[u8],
    safe_point: TimeStamp,
) -> Result<GcInfo> {
    assert_eq!(
        txn.start_ts(),
        TimeStamp::ZERO,
        "GC acts for no transaction"
    );
    assert!(safe_point > TimeStamp::ZERO);
    let mut info = GcInfo::default();
    let mut remove_older = false;
    let range = keys::versions_at_or_below(key, safe_point);
    let page_keys = limits::MVCC_VERSION_PAGE_KEYS;
    for_each_paged(
        reader.snapshot(),
        Cf::Write,
        &range,
        page_keys,
        Direction::Forward,
        |k, v| {
            let commit_ts = keys::version_ts(k)?;
            assert!(commit_ts <= safe_point);
            let write = Write::decode(v)?;
            info.found_versions += 1;
            let delete = remove_older
                || write.write_type != WriteType::Put
                || planted::active(PlantedBug::GcDropsNewestVersion);
            remove_older |= write.write_type.is_data();
            if delete {
                delete_version(txn, key, commit_ts, &write);
                info.deleted_versions += 1;
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    assert!(info.deleted_versions <= info.found_versions);
    Ok(info)
}

fn delete_version(txn: &mut MvccTxn, key: &[u8], commit_ts: TimeStamp, write: &Write) {
    if write.write_type == WriteType::Put && write.short_value.is_none() {
        txn.delete_value(key, write.start_ts);
    }
    txn.delete_write(key, commit_ts);
}

/// Removes all transactional data (locks, records, values) of the user keys in `range`.
pub fn delete_range(txn: &mut MvccTxn, range: &KeyRange) {
    let storage = keys::storage_range(range);
    if storage.is_empty() {
        return;
    }
    for cf in [Cf::Default, Cf::Lock, Cf::Write] {
        txn.delete_range(cf, storage.start.clone(), storage.end.clone());
    }
}

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;
