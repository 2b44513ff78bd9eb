//! Prewrite of one key (TiKV `actions/prewrite.rs`): the first phase of Percolator.
//!
//! - **Inputs**: the transaction's properties, one mutation, the async-commit secondaries
//!   (`Some` iff async commit; the list only on the primary), the key's pessimistic action,
//!   and `max_ts` (the concurrency manager's read-ts high-water mark, used for async/1PC).
//! - **Outputs**: a lock (or, for 1PC, a held-back lock) and a long value in the buffer;
//!   [`PrewriteOutcome`] with the key's min_commit_ts for async commit/1PC.
//! - **Invariants**: a foreign lock is never overwritten; an optimistic prewrite never
//!   succeeds over a record newer than its start_ts, nor over its own rollback; a
//!   pessimistic prewrite of a locked key requires its own pessimistic lock or an amend that
//!   proves no newer write; async/1PC locks get `min_commit_ts > max(max_ts, start_ts,
//!   for_update_ts)`. Re-prewriting an already prewritten key changes nothing.

use super::prewrite_check::{amend_pessimistic_lock, check_for_newer_version, check_lock};
use crate::env::Snapshot;
use crate::mvcc::error::{Error, Result};
use crate::mvcc::lock::{Lock, LockType, SHORT_VALUE_BYTES_MAX};
use crate::mvcc::reader::MvccReader;
use crate::mvcc::txn::MvccTxn;
use crate::planted::{self, PlantedBug};
use crate::types::TimeStamp;

/// Optimistic or pessimistic.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TxnKind {
    /// Conflicts are found at prewrite.
    Optimistic { skip_constraint_check: bool },
    /// Keys were locked beforehand at `for_update_ts`.
    Pessimistic { for_update_ts: TimeStamp },
}

/// How the transaction will commit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CommitKind {
    /// Ordinary two-phase commit: the client picks commit_ts.
    TwoPc,
    /// Async commit: the commit_ts is the max of the keys' min_commit_ts (0 max: no bound).
    Async { max_commit_ts: TimeStamp },
    /// One-phase commit: records are written directly at the computed commit_ts.
    OnePc { max_commit_ts: TimeStamp },
}

/// What every key of one prewrite request shares.
#[derive(Clone, Debug)]
pub struct TxnProps<'a> {
    /// The transaction's start_ts.
    pub start_ts: TimeStamp,
    /// Optimistic or pessimistic.
    pub kind: TxnKind,
    /// 2PC, async commit or 1PC.
    pub commit_kind: CommitKind,
    /// The primary key (raw).
    pub primary: &'a [u8],
    /// Keys of the transaction in this region.
    pub txn_size: u64,
    /// Lock TTL in ms.
    pub lock_ttl_ms: u64,
    /// The request's lower bound on commit_ts (0: none).
    pub min_commit_ts: TimeStamp,
}

impl TxnProps<'_> {
    /// True for pessimistic transactions.
    pub fn is_pessimistic(&self) -> bool {
        matches!(self.kind, TxnKind::Pessimistic { .. })
    }

    /// The pessimistic for_update_ts (zero for optimistic transactions).
    pub fn for_update_ts(&self) -> TimeStamp {
        match self.kind {
            TxnKind::Optimistic { .. } => TimeStamp::ZERO,
            TxnKind::Pessimistic { for_update_ts } => for_update_ts,
        }
    }
}

/// A mutation's operation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MutationOp {
    /// Write a value.
    Put(Vec<u8>),
    /// Delete.
    Delete,
    /// Lock without changing data.
    Lock,
    /// Write a value; the key must not exist.
    Insert(Vec<u8>),
    /// Check that the key does not exist; writes nothing.
    CheckNotExists,
}

/// One key of a prewrite.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Mutation {
    /// The raw user key.
    pub key: Vec<u8>,
    /// What to do.
    pub op: MutationOp,
}

impl Mutation {
    fn lock_type(&self) -> Option<LockType> {
        match self.op {
            MutationOp::Put(_) | MutationOp::Insert(_) => Some(LockType::Put),
            MutationOp::Delete => Some(LockType::Delete),
            MutationOp::Lock => Some(LockType::Lock),
            MutationOp::CheckNotExists => None,
        }
    }

    /// Insert and CheckNotExists require the key to be absent.
    pub fn should_not_exist(&self) -> bool {
        matches!(self.op, MutationOp::Insert(_) | MutationOp::CheckNotExists)
    }

    fn value(&self) -> Option<&[u8]> {
        match &self.op {
            MutationOp::Put(value) | MutationOp::Insert(value) => Some(value),
            _ => None,
        }
    }
}

/// kvrpcpb `PrewriteRequest.PessimisticAction` of one key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PessimisticAction {
    /// No lock was taken; no checks.
    SkipPessimisticCheck,
    /// The key must carry this transaction's pessimistic lock.
    DoPessimisticCheck,
    /// No lock was taken, but constraints are checked.
    DoConstraintCheck,
}

/// What the lock check found.
#[derive(Clone, Debug)]
pub(crate) enum LockStatus {
    /// No lock of ours.
    None,
    /// Our pessimistic lock, to be upgraded.
    Pessimistic(Lock),
    /// Already prewritten: the min_commit_ts to report.
    Locked(TimeStamp),
}

/// The result of prewriting one key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PrewriteOutcome {
    /// Async commit/1PC: this key's min_commit_ts; zero otherwise.
    pub min_commit_ts: TimeStamp,
    /// Async commit/1PC: the lock to publish in the in-memory lock table until the write is
    /// applied, so concurrent readers see it.
    pub memory_lock: Option<Lock>,
}

/// Per-key state carried from the checks to the lock write.
struct Prewrite<'p, 'a> {
    props: &'p TxnProps<'a>,
    mutation: &'p Mutation,
    lock_ttl_ms: u64,
    min_commit_ts: TimeStamp,
    for_update_ts: TimeStamp,
}

/// Prewrites `mutation` (see the module doc).
pub fn prewrite<S: Snapshot>(
    txn: &mut MvccTxn,
    reader: &MvccReader<'_, S>,
    props: &TxnProps<'_>,
    mutation: &Mutation,
    secondaries: Option<&[Vec<u8>]>,
    action: PessimisticAction,
    max_ts: TimeStamp,
) -> Result<PrewriteOutcome> {
    assert_eq!(txn.start_ts(), props.start_ts, "buffer of another txn");
    assert!(props.for_update_ts() == TimeStamp::ZERO || props.for_update_ts() >= props.start_ts);
    let should_not_write = mutation.op == MutationOp::CheckNotExists;
    if props.is_pessimistic() && should_not_write {
        return Err(Error::BadRequest(
            "CheckNotExists in a pessimistic prewrite",
        ));
    }
    let is_pessimistic_lock = action == PessimisticAction::DoPessimisticCheck;
    let status = match reader.load_lock(&mutation.key)? {
        Some(lock) => check_lock(props, &mutation.key, lock, is_pessimistic_lock)?,
        None if is_pessimistic_lock => {
            if !planted::active(PlantedBug::PrewriteSkipsPessimisticCheck) {
                amend_pessimistic_lock(reader, props, mutation)?;
            }
            LockStatus::None
        }
        None => LockStatus::None,
    };
    if let LockStatus::Locked(min_commit_ts) = status {
        // The transaction's own lock: a duplicate prewrite, unless the lock was written in
        // another commit mode (its commit ts would be zero, or 1PC would answer a commit
        // while the lock stays).
        let same_mode = match props.commit_kind {
            CommitKind::TwoPc => true,
            CommitKind::Async { .. } => min_commit_ts > TimeStamp::ZERO,
            CommitKind::OnePc { .. } => false,
        };
        if !same_mode {
            return Err(Error::BadRequest(
                "prewrite in another commit mode than the transaction's lock on the key",
            ));
        }
        return Ok(PrewriteOutcome {
            min_commit_ts,
            memory_lock: None,
        });
    }
    if !skip_constraint_check(props, action) {
        check_for_newer_version(reader, props, mutation)?;
    }
    let needs_timestamps = !matches!(props.commit_kind, CommitKind::TwoPc);
    if should_not_write {
        let min_commit_ts = if needs_timestamps {
            props.min_commit_ts.max(props.start_ts.next())
        } else {
            TimeStamp::ZERO
        };
        return Ok(PrewriteOutcome {
            min_commit_ts,
            memory_lock: None,
        });
    }
    let prewrite = Prewrite::new(props, mutation, &status);
    prewrite.write_lock(txn, status, secondaries, max_ts)
}

fn skip_constraint_check(props: &TxnProps<'_>, action: PessimisticAction) -> bool {
    match props.kind {
        TxnKind::Optimistic {
            skip_constraint_check,
        } => skip_constraint_check,
        TxnKind::Pessimistic { .. } => action != PessimisticAction::DoConstraintCheck,
    }
}

impl<'p, 'a> Prewrite<'p, 'a> {
    fn new(props: &'p TxnProps<'a>, mutation: &'p Mutation, status: &LockStatus) -> Self {
        let mut prewrite = Prewrite {
            props,
            mutation,
            lock_ttl_ms: props.lock_ttl_ms,
            min_commit_ts: props.min_commit_ts,
            for_update_ts: props.for_update_ts(),
        };
        if let LockStatus::Pessimistic(lock) = status {
            // The pessimistic lock's TTL and min_commit_ts may have been pushed meanwhile.
            prewrite.lock_ttl_ms = prewrite.lock_ttl_ms.max(lock.ttl_ms);
            prewrite.min_commit_ts = prewrite.min_commit_ts.max(lock.min_commit_ts);
            prewrite.for_update_ts = prewrite.for_update_ts.max(lock.for_update_ts);
        }
        prewrite
    }

    fn build_lock(&self, status: &LockStatus) -> Lock {
        let lock_type = self
            .mutation
            .lock_type()
            .expect("CheckNotExists writes no lock");
        let primary = self.props.primary.to_vec();
        let mut lock = Lock::new(lock_type, primary, self.props.start_ts, self.lock_ttl_ms);
        lock.for_update_ts = self.for_update_ts;
        lock.txn_size = self.props.txn_size;
        lock.min_commit_ts = self.min_commit_ts;
        if let LockStatus::Pessimistic(pessimistic) = status {
            // Rollbacks recorded on the pessimistic lock must survive the upgrade.
            lock.rollback_ts = pessimistic.rollback_ts.clone();
        }
        lock
    }

    fn write_lock(
        self,
        txn: &mut MvccTxn,
        status: LockStatus,
        secondaries: Option<&[Vec<u8>]>,
        max_ts: TimeStamp,
    ) -> Result<PrewriteOutcome> {
        let mut lock = self.build_lock(&status);
        assert_eq!(lock.ts, self.props.start_ts);
        assert_eq!(lock.primary, self.props.primary);
        assert!(
            lock.for_update_ts >= self.props.for_update_ts(),
            "an upgrade never lowers it"
        );
        assert!(lock.short_value.is_none(), "the value is placed below");
        match self.mutation.value() {
            Some(value) if value.len() <= SHORT_VALUE_BYTES_MAX => {
                lock.short_value = Some(value.to_vec())
            }
            Some(value) => txn.put_value(&self.mutation.key, value),
            None => {}
        }
        if let Some(secondaries) = secondaries {
            lock.use_async_commit = true;
            lock.secondaries = secondaries.to_vec();
        }
        let one_pc = matches!(self.props.commit_kind, CommitKind::OnePc { .. });
        if !lock.use_async_commit && !one_pc {
            txn.put_lock(&self.mutation.key, &lock);
            return Ok(PrewriteOutcome {
                min_commit_ts: TimeStamp::ZERO,
                memory_lock: None,
            });
        }
        let min_commit_ts = self.async_commit_ts(&lock, max_ts)?;
        lock.min_commit_ts = min_commit_ts;
        let had_pessimistic_lock = matches!(status, LockStatus::Pessimistic(_));
        if one_pc {
            txn.put_lock_for_1pc(&self.mutation.key, lock.clone(), had_pessimistic_lock);
        } else {
            txn.put_lock(&self.mutation.key, &lock);
        }
        Ok(PrewriteOutcome {
            min_commit_ts,
            memory_lock: Some(lock),
        })
    }

    /// `max(max_ts, start_ts, for_update_ts) + 1`, at least the lock's min_commit_ts.
    fn async_commit_ts(&self, lock: &Lock, max_ts: TimeStamp) -> Result<TimeStamp> {
        let seen = if planted::active(PlantedBug::AsyncCommitIgnoresMaxTs) {
            TimeStamp::ZERO
        } else {
            max_ts
        };
        let floor = seen.max(self.props.start_ts).max(self.for_update_ts);
        let min_commit_ts = floor.next().max(lock.min_commit_ts);
        let max_commit_ts = match self.props.commit_kind {
            CommitKind::Async { max_commit_ts } | CommitKind::OnePc { max_commit_ts } => {
                max_commit_ts
            }
            CommitKind::TwoPc => unreachable!("2PC computes no commit ts"),
        };
        if max_commit_ts > TimeStamp::ZERO && min_commit_ts > max_commit_ts {
            return Err(Error::CommitTsTooLarge {
                start_ts: self.props.start_ts,
                min_commit_ts,
                max_commit_ts,
            });
        }
        assert!(min_commit_ts > self.props.start_ts);
        assert!(
            min_commit_ts > seen,
            "async commit ts must exceed every read ts seen"
        );
        Ok(min_commit_ts)
    }
}

#[cfg(test)]
#[path = "prewrite_tests.rs"]
mod tests;
