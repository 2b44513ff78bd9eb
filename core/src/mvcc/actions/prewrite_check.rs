//! The checks a prewrite makes before writing its lock: the key's lock, newer versions,
//! data constraints (Insert/CheckNotExists), and the amend of a lost pessimistic lock.
//!
//! - **Inputs**: the transaction's properties, the mutation, a reader.
//! - **Outputs**: a [`LockStatus`] or the typed error that stops the prewrite.
//! - **Invariants**: pure reads: nothing here writes. The newer-version check follows TiKV:
//!   optimistic transactions conflict on *any* record above start_ts, pessimistic ones on a
//!   non-rollback record above for_update_ts; a record at start_ts that rolls us back is a
//!   `SelfRolledBack` conflict.

use super::prewrite::{LockStatus, Mutation, TxnKind, TxnProps};
use crate::env::Snapshot;
use crate::mvcc::error::{ConflictReason, Error, Result};
use crate::mvcc::lock::{Lock, LockType};
use crate::mvcc::reader::MvccReader;
use crate::mvcc::write::{Write, WriteType};
use crate::planted::{self, PlantedBug};
use crate::types::TimeStamp;

/// Classifies the lock found on the key.
pub(crate) fn check_lock(
    props: &TxnProps<'_>,
    key: &[u8],
    lock: Lock,
    is_pessimistic_lock: bool,
) -> Result<LockStatus> {
    let start_ts = props.start_ts;
    if lock.ts != start_ts {
        if is_pessimistic_lock {
            let key = key.to_vec();
            return Err(Error::PessimisticLockNotFound { start_ts, key });
        }
        let mut info = lock.to_lock_info(key);
        if props.is_pessimistic() {
            // Keys a pessimistic transaction did not lock conflict only briefly; TTL 0 lets
            // the client resolve at once (TiKV).
            info.lock_ttl = 0;
        }
        return Err(Error::KeyIsLocked(Box::new(info)));
    }
    if lock.lock_type == LockType::Pessimistic {
        if !props.is_pessimistic() {
            let key = key.to_vec();
            return Err(Error::LockTypeNotMatch {
                start_ts,
                key,
                pessimistic: true,
            });
        }
        return Ok(LockStatus::Pessimistic(lock));
    }
    // Duplicate prewrite: the lock is already there.
    let min_commit_ts = if lock.use_async_commit {
        lock.min_commit_ts
    } else {
        TimeStamp::ZERO
    };
    Ok(LockStatus::Locked(min_commit_ts))
}

/// Looks for records that forbid this prewrite, then checks data constraints against the
/// newest record that does not.
pub(crate) fn check_for_newer_version<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    props: &TxnProps<'_>,
    mutation: &Mutation,
) -> Result<()> {
    let mut seek_ts = TimeStamp::MAX;
    while let Some((commit_ts, write)) = reader.seek_write(&mutation.key, seek_ts)? {
        match props.kind {
            TxnKind::Optimistic { .. }
                if commit_ts > props.start_ts
                    && !planted::active(PlantedBug::PrewriteIgnoresNewerCommit) =>
            {
                return Err(conflict(
                    props,
                    mutation,
                    &write,
                    commit_ts,
                    ConflictReason::Optimistic,
                ));
            }
            TxnKind::Pessimistic { for_update_ts } if commit_ts > for_update_ts => {
                // Newer rollbacks can be written beside our pessimistic locks; they are not
                // conflicts.
                if write.write_type == WriteType::Rollback {
                    seek_ts = commit_ts.prev();
                    continue;
                }
                let key = mutation.key.clone();
                return Err(Error::PessimisticLockNotFound {
                    start_ts: props.start_ts,
                    key,
                });
            }
            _ => {}
        }
        let rolled_back = write.write_type == WriteType::Rollback || write.has_overlapped_rollback;
        if commit_ts == props.start_ts && rolled_back {
            let reason = ConflictReason::SelfRolledBack;
            return Err(conflict(props, mutation, &write, commit_ts, reason));
        }
        return check_data_constraint(reader, mutation, &write, commit_ts);
    }
    Ok(())
}

fn conflict(
    props: &TxnProps<'_>,
    mutation: &Mutation,
    write: &Write,
    commit_ts: TimeStamp,
    reason: ConflictReason,
) -> Error {
    Error::WriteConflict {
        start_ts: props.start_ts,
        conflict_start_ts: write.start_ts,
        conflict_commit_ts: commit_ts,
        key: mutation.key.clone(),
        primary: props.primary.to_vec(),
        reason,
    }
}

/// `AlreadyExist` if `mutation` requires absence and the key has a value as of `write`
/// (the newest record, committed at `commit_ts`).
pub(crate) fn check_data_constraint<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    mutation: &Mutation,
    write: &Write,
    commit_ts: TimeStamp,
) -> Result<()> {
    if !mutation.should_not_exist() || write.write_type == WriteType::Delete {
        return Ok(());
    }
    let exists = match write.write_type {
        WriteType::Put => true,
        // A Lock or Rollback says nothing: look at the newest data version below it.
        _ => matches!(
            reader.get_write(&mutation.key, commit_ts.prev())?,
            Some((_, older)) if older.write_type == WriteType::Put
        ),
    };
    if exists {
        return Err(Error::AlreadyExist {
            key: mutation.key.clone(),
        });
    }
    Ok(())
}

/// A pessimistic prewrite found no lock at all (it was lost, e.g. on leader change): amend it
/// as if optimistic, allowed only if nothing was written at or after start_ts (which is a
/// lower bound of the lost lock's for_update_ts).
pub(crate) fn amend_pessimistic_lock<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    props: &TxnProps<'_>,
    mutation: &Mutation,
) -> Result<()> {
    let Some((commit_ts, write)) = reader.seek_write(&mutation.key, TimeStamp::MAX)? else {
        return Ok(());
    };
    if commit_ts >= props.start_ts {
        let key = mutation.key.clone();
        return Err(Error::PessimisticLockNotFound {
            start_ts: props.start_ts,
            key,
        });
    }
    check_data_constraint(reader, mutation, &write, commit_ts)
}
