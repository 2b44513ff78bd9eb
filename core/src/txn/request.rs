//! From kvrpcpb requests to validated commands: the checks every transactional request
//! passes before it reaches a latch or a snapshot.
//!
//! - **Inputs**: decoded kvrpcpb requests (the region check is the server's job).
//! - **Outputs**: a [`Command`] / [`ReadCommand`], or `Error::InvalidRequest` naming what is
//!   wrong (the server answers it as a gRPC invalid-argument status).
//! - **Invariants**: keys are non-empty (except scan bounds) and at most `KEY_BYTES_MAX`,
//!   values at most `VALUE_BYTES_MAX`, at most `BATCH_KEYS_MAX` keys, each written key named
//!   once per request; every transaction timestamp is non-zero; options tikv-client 0.4
//!   never sends and we do not implement (force-lock wake-up, check_existence,
//!   lock_only_if_exists, assertions other than NotExist on pessimistic locks) are refused
//!   rather than silently ignored.

use std::collections::BTreeSet;

use ferrokv_proto::kvrpcpb;
use kvrpcpb::prewrite_request::PessimisticAction as WireAction;

use super::command::{
    Command, PessimisticLock, Prewrite, ReadCommand, ScanOptionsCommand, TxnStatusMap,
};
use super::error::Error;
use super::lock_wait::wait_timeout_ms;
use crate::env::Direction;
use crate::limits;
use crate::mvcc::actions::{
    CheckTxnStatusParams, Mutation, MutationOp, PessimisticAction, TxnKind,
};
use crate::mvcc::reader::ScanOptions;
use crate::types::{KeyRange, TimeStamp};

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidRequest(message.into())
}

fn key(key: &[u8]) -> Result<Vec<u8>, Error> {
    if key.is_empty() {
        return Err(invalid("empty key"));
    }
    if key.len() > limits::KEY_BYTES_MAX {
        return Err(invalid(format!("key of {} bytes", key.len())));
    }
    Ok(key.to_vec())
}

fn keys(keys: &[Vec<u8>], unique: bool) -> Result<Vec<Vec<u8>>, Error> {
    if keys.is_empty() || keys.len() > limits::BATCH_KEYS_MAX {
        return Err(invalid(format!("{} keys", keys.len())));
    }
    let checked: Vec<Vec<u8>> = keys.iter().map(|k| key(k)).collect::<Result<_, _>>()?;
    if unique && checked.iter().collect::<BTreeSet<_>>().len() != checked.len() {
        return Err(invalid("a key appears twice"));
    }
    Ok(checked)
}

fn ts(raw: u64, what: &str) -> Result<TimeStamp, Error> {
    if raw == 0 {
        return Err(invalid(format!("{what} is zero")));
    }
    Ok(TimeStamp(raw))
}

fn bypass_locks(context: &Option<kvrpcpb::Context>) -> BTreeSet<TimeStamp> {
    let resolved = context
        .as_ref()
        .map(|c| c.resolved_locks.as_slice())
        .unwrap_or(&[]);
    resolved.iter().map(|&raw| TimeStamp(raw)).collect()
}

fn range(start: &[u8], end: &[u8]) -> Result<KeyRange, Error> {
    for bound in [start, end] {
        if bound.len() > limits::KEY_BYTES_MAX {
            return Err(invalid("range bound too long"));
        }
    }
    if !end.is_empty() && start > end {
        return Err(invalid("range end below start"));
    }
    Ok(KeyRange::new(start.to_vec(), end.to_vec()))
}

fn mutation(wire: &kvrpcpb::Mutation) -> Result<Mutation, Error> {
    if wire.value.len() > limits::VALUE_BYTES_MAX {
        return Err(invalid(format!("value of {} bytes", wire.value.len())));
    }
    let op = match kvrpcpb::Op::try_from(wire.op) {
        Ok(kvrpcpb::Op::Put) => MutationOp::Put(wire.value.clone()),
        Ok(kvrpcpb::Op::Del) => MutationOp::Delete,
        Ok(kvrpcpb::Op::Lock) => MutationOp::Lock,
        Ok(kvrpcpb::Op::Insert) => MutationOp::Insert(wire.value.clone()),
        Ok(kvrpcpb::Op::CheckNotExists) => MutationOp::CheckNotExists,
        _ => return Err(invalid(format!("op {} in a prewrite", wire.op))),
    };
    Ok(Mutation {
        key: key(&wire.key)?,
        op,
    })
}

fn pessimistic_actions(
    request: &kvrpcpb::PrewriteRequest,
    pessimistic: bool,
) -> Result<Vec<PessimisticAction>, Error> {
    let count = request.mutations.len();
    if !pessimistic || request.pessimistic_actions.is_empty() {
        return Ok(vec![PessimisticAction::SkipPessimisticCheck; count]);
    }
    if request.pessimistic_actions.len() != count {
        return Err(invalid("pessimistic_actions do not match mutations"));
    }
    let convert = |raw: &i32| match WireAction::try_from(*raw) {
        Ok(WireAction::SkipPessimisticCheck) => Ok(PessimisticAction::SkipPessimisticCheck),
        Ok(WireAction::DoPessimisticCheck) => Ok(PessimisticAction::DoPessimisticCheck),
        Ok(WireAction::DoConstraintCheck) => Ok(PessimisticAction::DoConstraintCheck),
        Err(_) => Err(invalid(format!("pessimistic action {raw}"))),
    };
    request.pessimistic_actions.iter().map(convert).collect()
}

/// KvPrewrite.
pub fn prewrite(request: &kvrpcpb::PrewriteRequest) -> Result<Command, Error> {
    let start_ts = ts(request.start_version, "start_version")?;
    if request.mutations.is_empty() || request.mutations.len() > limits::BATCH_KEYS_MAX {
        return Err(invalid(format!("{} mutations", request.mutations.len())));
    }
    let mutations: Vec<Mutation> = request
        .mutations
        .iter()
        .map(mutation)
        .collect::<Result<_, _>>()?;
    let written: Vec<Vec<u8>> = mutations.iter().map(|m| m.key.clone()).collect();
    keys(&written, true)?;
    let pessimistic = request.for_update_ts != 0;
    let kind = if pessimistic {
        if request.for_update_ts < start_ts.get() {
            return Err(invalid("for_update_ts below start_version"));
        }
        TxnKind::Pessimistic {
            for_update_ts: TimeStamp(request.for_update_ts),
        }
    } else {
        TxnKind::Optimistic {
            skip_constraint_check: request.skip_constraint_check,
        }
    };
    let async_commit_secondaries = if request.use_async_commit {
        Some(keys_or_empty(&request.secondaries)?)
    } else {
        None
    };
    Ok(Command::Prewrite(Prewrite {
        pessimistic_actions: pessimistic_actions(request, pessimistic)?,
        mutations,
        primary: key(&request.primary_lock)?,
        start_ts,
        lock_ttl_ms: request.lock_ttl,
        txn_size: request.txn_size,
        kind,
        min_commit_ts: TimeStamp(request.min_commit_ts),
        max_commit_ts: TimeStamp(request.max_commit_ts),
        async_commit_secondaries,
        try_one_pc: request.try_one_pc,
    }))
}

fn keys_or_empty(list: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Error> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    keys(list, false)
}

/// KvPessimisticLock.
pub fn pessimistic_lock(request: &kvrpcpb::PessimisticLockRequest) -> Result<Command, Error> {
    let start_ts = ts(request.start_version, "start_version")?;
    let for_update_ts = ts(request.for_update_ts, "for_update_ts")?;
    if for_update_ts < start_ts {
        return Err(invalid("for_update_ts below start_version"));
    }
    let force_lock = kvrpcpb::PessimisticLockWakeUpMode::WakeUpModeForceLock as i32;
    if request.check_existence || request.lock_only_if_exists || request.wake_up_mode == force_lock
    {
        return Err(invalid("unsupported pessimistic lock option"));
    }
    let mut locked = Vec::with_capacity(request.mutations.len());
    for wire in &request.mutations {
        if wire.op != kvrpcpb::Op::PessimisticLock as i32 {
            return Err(invalid(format!("op {} in a pessimistic lock", wire.op)));
        }
        let should_not_exist = match kvrpcpb::Assertion::try_from(wire.assertion) {
            Ok(kvrpcpb::Assertion::None) => false,
            Ok(kvrpcpb::Assertion::NotExist) => true,
            _ => return Err(invalid("unsupported assertion")),
        };
        locked.push((key(&wire.key)?, should_not_exist));
    }
    let written: Vec<Vec<u8>> = locked.iter().map(|(k, _)| k.clone()).collect();
    keys(&written, true)?;
    Ok(Command::PessimisticLock(PessimisticLock {
        keys: locked,
        primary: key(&request.primary_lock)?,
        start_ts,
        for_update_ts,
        lock_ttl_ms: request.lock_ttl,
        return_values: request.return_values,
        min_commit_ts: TimeStamp(request.min_commit_ts),
        wait_timeout_ms: wait_timeout_ms(request.wait_timeout),
        is_first_lock: request.is_first_lock,
    }))
}

/// KvCommit.
pub fn commit(request: &kvrpcpb::CommitRequest) -> Result<Command, Error> {
    Ok(Command::Commit {
        start_ts: ts(request.start_version, "start_version")?,
        commit_ts: ts(request.commit_version, "commit_version")?,
        keys: keys(&request.keys, false)?,
    })
}

/// KvBatchRollback.
pub fn batch_rollback(request: &kvrpcpb::BatchRollbackRequest) -> Result<Command, Error> {
    Ok(Command::BatchRollback {
        start_ts: ts(request.start_version, "start_version")?,
        keys: keys(&request.keys, false)?,
    })
}

/// KvCleanup.
pub fn cleanup(request: &kvrpcpb::CleanupRequest) -> Result<Command, Error> {
    Ok(Command::Cleanup {
        key: key(&request.key)?,
        start_ts: ts(request.start_version, "start_version")?,
        current_ts: TimeStamp(request.current_ts),
    })
}

/// KvCheckTxnStatus.
pub fn check_txn_status(request: &kvrpcpb::CheckTxnStatusRequest) -> Result<Command, Error> {
    let params = CheckTxnStatusParams {
        caller_start_ts: TimeStamp(request.caller_start_ts),
        current_ts: TimeStamp(request.current_ts),
        rollback_if_not_exist: request.rollback_if_not_exist,
        force_sync_commit: request.force_sync_commit,
        resolving_pessimistic_lock: request.resolving_pessimistic_lock,
        verify_is_primary: request.verify_is_primary,
    };
    Ok(Command::CheckTxnStatus {
        primary: key(&request.primary_key)?,
        lock_ts: ts(request.lock_ts, "lock_ts")?,
        params,
    })
}

/// KvCheckSecondaryLocks.
pub fn check_secondary_locks(
    request: &kvrpcpb::CheckSecondaryLocksRequest,
) -> Result<Command, Error> {
    Ok(Command::CheckSecondaryLocks {
        start_ts: ts(request.start_version, "start_version")?,
        keys: keys(&request.keys, false)?,
    })
}

/// KvResolveLock: the status map and the keys to resolve. No keys means "every lock of
/// those transactions in the region": run `ReadCommand::ResolveLockScan` over the region
/// and feed each batch of keys to `Command::ResolveLock`.
pub fn resolve_lock(
    request: &kvrpcpb::ResolveLockRequest,
) -> Result<(TxnStatusMap, Vec<Vec<u8>>), Error> {
    let mut txn_status = TxnStatusMap::new();
    if request.txn_infos.is_empty() {
        txn_status.insert(
            ts(request.start_version, "start_version")?,
            TimeStamp(request.commit_version),
        );
    }
    for info in &request.txn_infos {
        txn_status.insert(ts(info.txn, "txn")?, TimeStamp(info.status));
    }
    for (start_ts, commit_ts) in &txn_status {
        if *commit_ts != TimeStamp::ZERO && commit_ts <= start_ts {
            return Err(invalid("commit_version not above start_version"));
        }
    }
    let keys = keys_or_empty(&request.keys)?;
    Ok((txn_status, keys))
}

/// KvTxnHeartBeat.
pub fn txn_heart_beat(request: &kvrpcpb::TxnHeartBeatRequest) -> Result<Command, Error> {
    Ok(Command::TxnHeartBeat {
        primary: key(&request.primary_lock)?,
        start_ts: ts(request.start_version, "start_version")?,
        advise_ttl_ms: request.advise_lock_ttl,
    })
}

/// KvPessimisticRollback.
pub fn pessimistic_rollback(
    request: &kvrpcpb::PessimisticRollbackRequest,
) -> Result<Command, Error> {
    Ok(Command::PessimisticRollback {
        start_ts: ts(request.start_version, "start_version")?,
        for_update_ts: ts(request.for_update_ts, "for_update_ts")?,
        keys: keys(&request.keys, false)?,
    })
}

/// KvDeleteRange.
pub fn delete_range(request: &kvrpcpb::DeleteRangeRequest) -> Result<Command, Error> {
    Ok(Command::DeleteRange {
        range: range(&request.start_key, &request.end_key)?,
    })
}

/// KvGet.
pub fn get(request: &kvrpcpb::GetRequest) -> Result<ReadCommand, Error> {
    Ok(ReadCommand::Get {
        key: key(&request.key)?,
        ts: ts(request.version, "version")?,
        bypass_locks: bypass_locks(&request.context),
    })
}

/// KvBatchGet.
pub fn batch_get(request: &kvrpcpb::BatchGetRequest) -> Result<ReadCommand, Error> {
    Ok(ReadCommand::BatchGet {
        keys: keys(&request.keys, false)?,
        ts: ts(request.version, "version")?,
        bypass_locks: bypass_locks(&request.context),
    })
}

/// KvScan: a reverse scan reads `[end_key, start_key)` descending.
pub fn scan(request: &kvrpcpb::ScanRequest) -> Result<ReadCommand, Error> {
    if request.limit as usize > limits::SCAN_LIMIT_MAX {
        return Err(invalid(format!("scan limit {}", request.limit)));
    }
    if request.sample_step > 1 {
        return Err(invalid("sample_step is not supported"));
    }
    let (range, direction) = if request.reverse {
        (
            range(&request.end_key, &request.start_key)?,
            Direction::Reverse,
        )
    } else {
        (
            range(&request.start_key, &request.end_key)?,
            Direction::Forward,
        )
    };
    Ok(ReadCommand::Scan(ScanOptionsCommand(ScanOptions {
        range,
        ts: ts(request.version, "version")?,
        limit: request.limit as usize,
        key_only: request.key_only,
        direction,
        bypass_locks: bypass_locks(&request.context),
    })))
}

/// KvScanLock (limit 0 means the largest allowed).
pub fn scan_lock(request: &kvrpcpb::ScanLockRequest) -> Result<ReadCommand, Error> {
    let limit = match request.limit as usize {
        0 => limits::SCAN_LOCK_LIMIT_MAX,
        limit => limit.min(limits::SCAN_LOCK_LIMIT_MAX),
    };
    Ok(ReadCommand::ScanLock {
        max_ts: ts(request.max_version, "max_version")?,
        range: range(&request.start_key, &request.end_key)?,
        limit,
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
