//! The Prewrite command (TiKV `commands/prewrite.rs`): every mutation through the prewrite
//! action, then async-commit/1PC bookkeeping.
//!
//! - **Inputs**: a validated [`Prewrite`], a reader, the concurrency manager.
//! - **Outputs**: locks (or 1PC commit records) to write; per-key `KeyIsLocked` errors (then
//!   nothing is written); the async-commit min_commit_ts or the 1PC commit ts.
//! - **Invariants**: the caller refuses async commit and 1PC in a region whose max_ts is
//!   not synced (`store::max_ts_sync`); their commit ts exceeds every max_ts a read
//!   published before this call; before reporting a
//!   conflict the transaction's own commit record is looked up, so a prewrite retried after
//!   its commit succeeds (and writes nothing); `CommitTsTooLarge` fails the request instead
//!   of falling back to 2PC with min_commit_ts 0, which tikv-client 0.4 cannot handle.

use super::{CommandResult, WriteResult};
use crate::env::Snapshot;
use crate::mvcc::actions::{prewrite, CommitKind, PrewriteOutcome, TxnProps};
use crate::mvcc::reader::TxnCommitRecord;
use crate::mvcc::{self, Lock, MvccReader, MvccTxn, WriteType};
use crate::txn::command::Prewrite;
use crate::txn::concurrency::ConcurrencyManager;
use crate::txn::error::Error;
use crate::types::TimeStamp;

fn commit_kind(prewrite: &Prewrite) -> CommitKind {
    let max_commit_ts = prewrite.max_commit_ts;
    if prewrite.try_one_pc {
        CommitKind::OnePc { max_commit_ts }
    } else if prewrite.async_commit_secondaries.is_some() {
        CommitKind::Async { max_commit_ts }
    } else {
        CommitKind::TwoPc
    }
}

/// The transaction's own commit ts on `key`, if it committed there.
fn own_commit<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    key: &[u8],
    start_ts: TimeStamp,
) -> Result<Option<TimeStamp>, Error> {
    Ok(match reader.get_txn_commit_record(key, start_ts)? {
        TxnCommitRecord::SingleRecord { commit_ts, write }
            if write.write_type != WriteType::Rollback =>
        {
            Some(commit_ts)
        }
        _ => None,
    })
}

struct Collected {
    txn: MvccTxn,
    lock_errors: Vec<mvcc::Error>,
    final_min_commit_ts: TimeStamp,
    memory_locks: Vec<(Vec<u8>, Lock)>,
}

/// Runs the prewrite command.
pub(super) fn process_prewrite<S: Snapshot>(
    command: &Prewrite,
    reader: &MvccReader<'_, S>,
    manager: &mut ConcurrencyManager,
) -> Result<WriteResult, Error> {
    assert_eq!(command.mutations.len(), command.pessimistic_actions.len());
    let kind = commit_kind(command);
    let props = TxnProps {
        start_ts: command.start_ts,
        kind: command.kind,
        commit_kind: kind,
        primary: &command.primary,
        txn_size: command.txn_size,
        lock_ttl_ms: command.lock_ttl_ms,
        min_commit_ts: command.min_commit_ts,
    };
    let collected = match prewrite_all(command, &props, reader, manager.max_ts())? {
        Ok(collected) => collected,
        Err(commit_ts) => return Ok(already_committed(kind, commit_ts)),
    };
    finish(kind, collected, manager)
}

/// Prewrites every mutation; `Ok(Err(commit_ts))` when the transaction turned out committed.
fn prewrite_all<S: Snapshot>(
    command: &Prewrite,
    props: &TxnProps<'_>,
    reader: &MvccReader<'_, S>,
    max_ts: TimeStamp,
) -> Result<Result<Collected, TimeStamp>, Error> {
    let mut collected = Collected {
        txn: MvccTxn::new(command.start_ts),
        lock_errors: Vec::new(),
        final_min_commit_ts: TimeStamp::ZERO,
        memory_locks: Vec::new(),
    };
    let pairs = command.mutations.iter().zip(&command.pessimistic_actions);
    for (mutation, &action) in pairs {
        let secondaries = secondaries_of(command, &mutation.key);
        let outcome = prewrite(
            &mut collected.txn,
            reader,
            props,
            mutation,
            secondaries,
            action,
            max_ts,
        );
        match outcome {
            Ok(PrewriteOutcome {
                min_commit_ts,
                memory_lock,
            }) => {
                collected.final_min_commit_ts = collected.final_min_commit_ts.max(min_commit_ts);
                if let Some(lock) = memory_lock {
                    collected.memory_locks.push((mutation.key.clone(), lock));
                }
            }
            Err(error) if checks_commit_record(&error) => {
                if let Some(commit_ts) = own_commit(reader, &mutation.key, command.start_ts)? {
                    return Ok(Err(commit_ts));
                }
                if !matches!(error, mvcc::Error::KeyIsLocked(_)) {
                    return Err(error.into());
                }
                collected.lock_errors.push(error);
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Ok(collected))
}

fn checks_commit_record(error: &mvcc::Error) -> bool {
    matches!(
        error,
        mvcc::Error::KeyIsLocked(_)
            | mvcc::Error::WriteConflict { .. }
            | mvcc::Error::PessimisticLockNotFound { .. }
            | mvcc::Error::CommitTsTooLarge { .. }
    )
}

/// Async commit: the primary carries the secondaries, every other key an empty list.
fn secondaries_of<'a>(command: &'a Prewrite, key: &[u8]) -> Option<&'a [Vec<u8>]> {
    let secondaries = command.async_commit_secondaries.as_deref()?;
    let is_primary = key == command.primary.as_slice() && !secondaries.is_empty();
    Some(if is_primary { secondaries } else { &[] })
}

fn already_committed(kind: CommitKind, commit_ts: TimeStamp) -> WriteResult {
    let (min_commit_ts, one_pc_commit_ts) = match kind {
        CommitKind::TwoPc => (TimeStamp::ZERO, TimeStamp::ZERO),
        CommitKind::Async { .. } => (commit_ts, TimeStamp::ZERO),
        CommitKind::OnePc { .. } => (TimeStamp::ZERO, commit_ts),
    };
    let result = CommandResult::Prewrite {
        errors: Vec::new(),
        min_commit_ts,
        one_pc_commit_ts,
    };
    WriteResult::new(Vec::new(), result)
}

/// Either reports the lock errors (writing nothing) or commits the 1PC locks and publishes
/// the memory locks.
fn finish(
    kind: CommitKind,
    mut collected: Collected,
    manager: &mut ConcurrencyManager,
) -> Result<WriteResult, Error> {
    if !collected.lock_errors.is_empty() {
        let result = CommandResult::Prewrite {
            errors: collected.lock_errors,
            min_commit_ts: TimeStamp::ZERO,
            one_pc_commit_ts: TimeStamp::ZERO,
        };
        return Ok(WriteResult::new(Vec::new(), result));
    }
    let final_ts = collected.final_min_commit_ts;
    let (min_commit_ts, one_pc_commit_ts) = match kind {
        CommitKind::TwoPc => (TimeStamp::ZERO, TimeStamp::ZERO),
        CommitKind::Async { .. } => (final_ts, TimeStamp::ZERO),
        CommitKind::OnePc { .. } => {
            collected.txn.commit_1pc_locks(final_ts);
            (TimeStamp::ZERO, final_ts)
        }
    };
    if kind != CommitKind::TwoPc {
        assert!(
            final_ts > collected.txn.start_ts(),
            "async/1PC answers a real commit ts"
        );
    }
    let mut memory_keys = Vec::with_capacity(collected.memory_locks.len());
    for (key, lock) in collected.memory_locks {
        if let Err(error) = manager.lock_key(&key, lock) {
            manager.unlock_keys(&memory_keys);
            return Err(error.into());
        }
        memory_keys.push(key);
    }
    let result = CommandResult::Prewrite {
        errors: Vec::new(),
        min_commit_ts,
        one_pc_commit_ts,
    };
    let mut write = WriteResult::new(collected.txn.into_modifies(), result);
    write.memory_locks = memory_keys;
    Ok(write)
}
