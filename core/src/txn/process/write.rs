//! Write commands other than Prewrite: each runs its action over every key in one buffer.
//!
//! - **Inputs**: a validated [`Command`], a reader, the concurrency manager.
//! - **Outputs**: a [`WriteResult`]; errors abort the whole command (nothing written).
//! - **Invariants**: commands that decide a transaction's fate (CheckTxnStatus, Cleanup,
//!   CheckSecondaryLocks) first raise max_ts to the timestamps they carry, so no async
//!   commit can later land on the rollback they write; Commit refuses `commit_ts ≤ start_ts`.

use super::{CommandResult, WriteResult};
use crate::env::Snapshot;
use crate::mvcc::actions::{
    acquire_pessimistic_lock, check_secondary_lock, check_txn_status, cleanup, commit,
    delete_range, gc, pessimistic_rollback, resolve_lock, txn_heart_beat, PessimisticLockParams,
    SecondaryLockStatus,
};
use crate::mvcc::{self, Modify, MvccReader, MvccTxn};
use crate::txn::command::{Command, PessimisticLock};
use crate::txn::concurrency::ConcurrencyManager;
use crate::txn::error::Error;
use crate::types::TimeStamp;

/// Runs any write command but Prewrite.
pub(super) fn process_other<S: Snapshot>(
    command: &Command,
    reader: &MvccReader<'_, S>,
    manager: &mut ConcurrencyManager,
) -> Result<WriteResult, Error> {
    match command {
        Command::Prewrite(_) => unreachable!("handled by process_prewrite"),
        Command::Commit {
            start_ts,
            commit_ts,
            keys,
        } => process_commit(reader, *start_ts, *commit_ts, keys),
        Command::BatchRollback { start_ts, keys } => {
            let mut txn = MvccTxn::new(*start_ts);
            for key in keys {
                cleanup(&mut txn, reader, key, TimeStamp::ZERO, false)?;
            }
            Ok(WriteResult::new(txn.into_modifies(), CommandResult::Done))
        }
        Command::Cleanup {
            key,
            start_ts,
            current_ts,
        } => process_cleanup(reader, manager, key, *start_ts, *current_ts),
        Command::CheckTxnStatus {
            primary,
            lock_ts,
            params,
        } => {
            let carried = [*lock_ts, params.current_ts, params.caller_start_ts];
            let highest = carried.into_iter().filter(|ts| *ts != TimeStamp::MAX).max();
            manager.update_max_ts(highest.unwrap_or(TimeStamp::ZERO))?;
            let mut txn = MvccTxn::new(*lock_ts);
            let status = check_txn_status(&mut txn, reader, primary, params)?;
            Ok(WriteResult::new(
                txn.into_modifies(),
                CommandResult::TxnStatus(status),
            ))
        }
        Command::CheckSecondaryLocks { start_ts, keys } => {
            manager.update_max_ts(*start_ts)?;
            process_check_secondary(reader, *start_ts, keys)
        }
        Command::PessimisticLock(lock) => {
            // Returned values and existence checks are reads at for_update_ts.
            if lock.return_values || lock.keys.iter().any(|(_, not_exist)| *not_exist) {
                manager.update_max_ts(lock.for_update_ts)?;
            }
            process_pessimistic_lock(lock, reader)
        }
        other => process_rest(other, reader),
    }
}

fn process_rest<S: Snapshot>(
    command: &Command,
    reader: &MvccReader<'_, S>,
) -> Result<WriteResult, Error> {
    match command {
        Command::ResolveLock { txn_status, keys } => {
            let mut modifies = Vec::new();
            for key in keys {
                let Some(lock) = reader.load_lock(key)? else {
                    continue;
                };
                let Some(&commit_ts) = txn_status.get(&lock.ts) else {
                    continue;
                };
                let mut txn = MvccTxn::new(lock.ts);
                resolve_lock(&mut txn, reader, key, &lock, commit_ts)?;
                modifies.extend(txn.into_modifies());
            }
            Ok(WriteResult::new(modifies, CommandResult::Done))
        }
        Command::TxnHeartBeat {
            primary,
            start_ts,
            advise_ttl_ms,
        } => {
            let mut txn = MvccTxn::new(*start_ts);
            let lock_ttl_ms = txn_heart_beat(&mut txn, reader, primary, *advise_ttl_ms)?;
            let result = CommandResult::HeartBeat { lock_ttl_ms };
            Ok(WriteResult::new(txn.into_modifies(), result))
        }
        Command::PessimisticRollback {
            start_ts,
            for_update_ts,
            keys,
        } => {
            let mut txn = MvccTxn::new(*start_ts);
            for key in keys {
                pessimistic_rollback(&mut txn, reader, key, *for_update_ts)?;
            }
            Ok(WriteResult::new(txn.into_modifies(), CommandResult::Done))
        }
        Command::Gc { safe_point, keys } => {
            let mut txn = MvccTxn::new(TimeStamp::ZERO);
            for key in keys {
                gc(&mut txn, reader, key, *safe_point)?;
            }
            Ok(WriteResult::new(txn.into_modifies(), CommandResult::Done))
        }
        Command::DeleteRange { range } => {
            let mut txn = MvccTxn::new(TimeStamp::ZERO);
            delete_range(&mut txn, range);
            Ok(WriteResult::new(txn.into_modifies(), CommandResult::Done))
        }
        _ => unreachable!("dispatched above"),
    }
}

fn process_commit<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    start_ts: TimeStamp,
    commit_ts: TimeStamp,
    keys: &[Vec<u8>],
) -> Result<WriteResult, Error> {
    if commit_ts <= start_ts {
        return Err(mvcc::Error::InvalidTxnTso {
            start_ts,
            commit_ts,
        }
        .into());
    }
    let mut txn = MvccTxn::new(start_ts);
    for key in keys {
        commit(&mut txn, reader, key, commit_ts)?;
    }
    let modifies: Vec<Modify> = txn.into_modifies();
    Ok(WriteResult::new(
        modifies,
        CommandResult::Committed { commit_ts },
    ))
}

fn process_cleanup<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    manager: &mut ConcurrencyManager,
    key: &[u8],
    start_ts: TimeStamp,
    current_ts: TimeStamp,
) -> Result<WriteResult, Error> {
    manager.update_max_ts(start_ts)?;
    let mut txn = MvccTxn::new(start_ts);
    match cleanup(&mut txn, reader, key, current_ts, true) {
        Ok(()) => {
            let result = CommandResult::Cleanup {
                commit_ts: TimeStamp::ZERO,
            };
            Ok(WriteResult::new(txn.into_modifies(), result))
        }
        Err(mvcc::Error::Committed { commit_ts, .. }) => Ok(WriteResult::new(
            Vec::new(),
            CommandResult::Cleanup { commit_ts },
        )),
        Err(error) => Err(error.into()),
    }
}

fn process_check_secondary<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    start_ts: TimeStamp,
    keys: &[Vec<u8>],
) -> Result<WriteResult, Error> {
    let mut txn = MvccTxn::new(start_ts);
    let mut locks = Vec::new();
    let mut commit_ts = TimeStamp::ZERO;
    for key in keys {
        match check_secondary_lock(&mut txn, reader, key)? {
            SecondaryLockStatus::Locked(lock) => locks.push(lock.to_lock_info(key)),
            SecondaryLockStatus::Committed(ts) => {
                commit_ts = ts;
                locks.clear();
                break;
            }
            SecondaryLockStatus::RolledBack => {
                locks.clear();
                break;
            }
        }
    }
    assert!(commit_ts == TimeStamp::ZERO || locks.is_empty());
    let result = CommandResult::SecondaryLocks { locks, commit_ts };
    Ok(WriteResult::new(txn.into_modifies(), result))
}

fn process_pessimistic_lock<S: Snapshot>(
    command: &PessimisticLock,
    reader: &MvccReader<'_, S>,
) -> Result<WriteResult, Error> {
    let mut txn = MvccTxn::new(command.start_ts);
    let mut values = Vec::new();
    for (key, should_not_exist) in &command.keys {
        let params = PessimisticLockParams {
            primary: &command.primary,
            lock_ttl_ms: command.lock_ttl_ms,
            for_update_ts: command.for_update_ts,
            should_not_exist: *should_not_exist,
            need_value: command.return_values,
            min_commit_ts: command.min_commit_ts,
        };
        match acquire_pessimistic_lock(&mut txn, reader, key, &params) {
            Ok(value) => values.push(value),
            Err(mvcc::Error::KeyIsLocked(lock_info)) => {
                let Some(wait_timeout_ms) = command.wait_timeout_ms else {
                    return Err(mvcc::Error::KeyIsLocked(lock_info).into());
                };
                let result = CommandResult::WaitForLock {
                    lock_info,
                    wait_timeout_ms,
                };
                return Ok(WriteResult::new(Vec::new(), result));
            }
            Err(error) => return Err(error.into()),
        }
    }
    if !command.return_values {
        values.clear();
    }
    let result = CommandResult::PessimisticLocked { values };
    Ok(WriteResult::new(txn.into_modifies(), result))
}
