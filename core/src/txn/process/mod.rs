//! `process_write` / `process_read`: one validated command against one snapshot.
//!
//! - **Inputs**: the command, a reader of a snapshot taken after the command's latches were
//!   acquired (write) or at request time (read), and the concurrency manager.
//! - **Outputs**: [`WriteResult`] (modifications to propose, the typed result, memory locks
//!   to release once applied, locks released for waking waiters) or [`ReadResult`].
//! - **Invariants**: all or nothing: on `Err`, or on a result that reports per-key lock
//!   errors (`Prewrite` with `errors`, `WaitForLock`), `modifies` is empty; modifications
//!   of one command touch only the command's latched keys (range commands aside).

mod prewrite;
mod read;
mod write;

use std::collections::BTreeSet;

use ferrokv_proto::kvrpcpb;

pub use read::process_read;

use super::command::Command;
use super::concurrency::ConcurrencyManager;
use super::error::Error;
use crate::env::{Cf, Snapshot};
use crate::mvcc::actions::TxnStatus;
use crate::mvcc::reader::ScanResult;
use crate::mvcc::{self, keys, Modify, MvccReader};
use crate::types::TimeStamp;

/// What a write command decided.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandResult {
    /// Prewrite: per-key lock errors (then nothing was written), the async-commit
    /// min_commit_ts (0 unless async commit), the 1PC commit ts (0 unless 1PC committed).
    Prewrite {
        errors: Vec<mvcc::Error>,
        min_commit_ts: TimeStamp,
        one_pc_commit_ts: TimeStamp,
    },
    /// Commit succeeded.
    Committed { commit_ts: TimeStamp },
    /// Cleanup: `commit_ts` non-zero if the transaction had committed (nothing written).
    Cleanup { commit_ts: TimeStamp },
    /// CheckTxnStatus.
    TxnStatus(TxnStatus),
    /// CheckSecondaryLocks: the locks found, or the commit ts (both empty/zero: rolled back).
    SecondaryLocks {
        locks: Vec<kvrpcpb::LockInfo>,
        commit_ts: TimeStamp,
    },
    /// TxnHeartBeat: the lock's TTL now.
    HeartBeat { lock_ttl_ms: u64 },
    /// PessimisticLock acquired; values in request order if asked for.
    PessimisticLocked { values: Vec<Option<Vec<u8>>> },
    /// PessimisticLock met a lock and should wait (nothing was written).
    WaitForLock {
        lock_info: Box<kvrpcpb::LockInfo>,
        wait_timeout_ms: u64,
    },
    /// Rollback, pessimistic rollback, resolve, GC, delete range: done.
    Done,
}

/// A write command's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteResult {
    /// Modifications to propose through Raft as one batch.
    pub modifies: Vec<Modify>,
    /// The decision to answer with once applied.
    pub result: CommandResult,
    /// Keys published in the memory lock table; release after apply (or on failure).
    pub memory_locks: Vec<Vec<u8>>,
    /// `(key, lock start_ts)` of every lock the modifications remove, to wake its waiters.
    pub released_locks: Vec<(Vec<u8>, TimeStamp)>,
}

impl WriteResult {
    fn new(modifies: Vec<Modify>, result: CommandResult) -> WriteResult {
        WriteResult {
            modifies,
            result,
            memory_locks: Vec::new(),
            released_locks: Vec::new(),
        }
    }
}

/// What a read command found.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadResult {
    /// KvGet: the value, if any.
    Value(Option<Vec<u8>>),
    /// KvBatchGet and KvScan: found pairs and per-key lock errors, in key (scan) order.
    Pairs(Vec<ScanResult>),
    /// KvScanLock.
    Locks(Vec<kvrpcpb::LockInfo>),
    /// Read phases of ResolveLock and GC: keys for the write command, and where the next
    /// batch starts (`None`: the range is done).
    Keys {
        keys: Vec<Vec<u8>>,
        next_start: Option<Vec<u8>>,
    },
}

/// Runs a write command against `reader`'s snapshot.
pub fn process_write<S: Snapshot>(
    command: &Command,
    reader: &MvccReader<'_, S>,
    manager: &mut ConcurrencyManager,
) -> Result<WriteResult, Error> {
    let mut result = match command {
        Command::Prewrite(prewrite) => prewrite::process_prewrite(prewrite, reader, manager)?,
        other => write::process_other(other, reader, manager)?,
    };
    let reports_lock_errors = matches!(
        &result.result,
        CommandResult::Prewrite { errors, .. } if !errors.is_empty()
    ) || matches!(result.result, CommandResult::WaitForLock { .. });
    assert!(
        !reports_lock_errors || result.modifies.is_empty(),
        "lock errors write nothing"
    );
    assert_within_latches(command, &result.modifies);
    result.released_locks = released_locks(reader, &result.modifies)?;
    Ok(result)
}

/// A command changes only keys it holds latches for (range deletes aside): the guarantee
/// that makes latches serialize every conflicting pair of commands.
fn assert_within_latches(command: &Command, modifies: &[Modify]) {
    if matches!(command, Command::DeleteRange { .. }) {
        return;
    }
    let latched: BTreeSet<Vec<u8>> = command
        .latch_keys()
        .iter()
        .map(|key| keys::lock_key(key))
        .collect();
    for modify in modifies {
        let stored = modify.key();
        let user_part = match modify {
            Modify::DeleteRange { .. } => unreachable!("only DeleteRange deletes ranges"),
            _ if modify.cf() == Cf::Lock => stored,
            _ => keys::version_key_prefix(stored).expect("we built this key"),
        };
        assert!(
            latched.contains(user_part),
            "a command wrote a key it did not latch"
        );
    }
}

/// The locks a batch removes, as `(user key, lock start_ts)` read from the snapshot.
fn released_locks<S: Snapshot>(
    reader: &MvccReader<'_, S>,
    modifies: &[Modify],
) -> Result<Vec<(Vec<u8>, TimeStamp)>, Error> {
    let mut released = Vec::new();
    for modify in modifies {
        let Modify::Delete { cf: Cf::Lock, key } = modify else {
            continue;
        };
        let user_key = keys::decode_lock_key(key).map_err(mvcc::Error::from)?;
        if let Some(lock) = reader.load_lock(&user_key)? {
            released.push((user_key, lock.ts));
        }
    }
    Ok(released)
}

#[cfg(test)]
mod tests;
