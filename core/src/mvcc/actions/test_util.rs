//! Test helpers for actions: an in-memory engine and one-line versions of each action that
//! run it on a fresh snapshot and apply the result only on success (all or nothing, like a
//! command).

use super::{
    acquire_pessimistic_lock, cleanup, commit, prewrite, CommitKind, CommitOutcome, Mutation,
    MutationOp, PessimisticAction, PessimisticLockParams, PrewriteOutcome, TxnKind, TxnProps,
};
use crate::env::{Cf, Snapshot};
use crate::mvcc::error::Result;
use crate::mvcc::keys;
use crate::mvcc::lock::Lock;
use crate::mvcc::reader::{point_get, MvccReader};
use crate::mvcc::test_engine::MemEngine;
use crate::mvcc::txn::MvccTxn;
use crate::mvcc::write::Write;
use crate::types::TimeStamp;

/// Lock TTL the helpers prewrite with.
pub const TTL_MS: u64 = 3000;

/// An engine plus helpers.
#[derive(Default)]
pub struct TestEnv {
    /// The data.
    pub engine: MemEngine,
    /// The max_ts async-commit prewrites see.
    pub max_ts: TimeStamp,
}

impl TestEnv {
    /// An empty engine.
    pub fn new() -> TestEnv {
        TestEnv::default()
    }

    /// Runs `action` for the transaction `start_ts` on a snapshot; applies its modifications
    /// only if it succeeds.
    pub fn run<T>(
        &mut self,
        start_ts: u64,
        action: impl FnOnce(&mut MvccTxn, &MvccReader<'_, MemEngine>) -> Result<T>,
    ) -> Result<T> {
        let snapshot = self.engine.clone();
        let reader = MvccReader::new(&snapshot);
        let mut txn = MvccTxn::new(TimeStamp(start_ts));
        let out = action(&mut txn, &reader)?;
        self.engine.apply(&txn.into_modifies());
        Ok(out)
    }

    /// Optimistic 2PC prewrite with the props adjusted by `tweak`.
    pub fn prewrite_with(
        &mut self,
        key: &[u8],
        value: &[u8],
        primary: &[u8],
        start_ts: u64,
        tweak: impl FnOnce(&mut TxnProps<'_>),
    ) -> PrewriteOutcome {
        let mut props = optimistic_props(primary, start_ts);
        tweak(&mut props);
        let mutation = Mutation {
            key: key.to_vec(),
            op: MutationOp::Put(value.to_vec()),
        };
        self.run(start_ts, |txn, reader| {
            prewrite(
                txn,
                reader,
                &props,
                &mutation,
                None,
                PessimisticAction::SkipPessimisticCheck,
                TimeStamp::ZERO,
            )
        })
        .unwrap()
    }

    /// Optimistic 2PC prewrite of a put.
    pub fn try_prewrite_put(
        &mut self,
        key: &[u8],
        value: &[u8],
        primary: &[u8],
        start_ts: u64,
    ) -> Result<PrewriteOutcome> {
        let mutation = Mutation {
            key: key.to_vec(),
            op: MutationOp::Put(value.to_vec()),
        };
        self.prewrite_full(&mutation, primary, start_ts, CommitKind::TwoPc, None)
    }

    /// `try_prewrite_put`, which must succeed.
    pub fn prewrite_put(&mut self, key: &[u8], value: &[u8], primary: &[u8], start_ts: u64) {
        self.try_prewrite_put(key, value, primary, start_ts)
            .unwrap();
    }

    /// Optimistic prewrite of any mutation with any commit kind.
    pub fn prewrite_full(
        &mut self,
        mutation: &Mutation,
        primary: &[u8],
        start_ts: u64,
        commit_kind: CommitKind,
        secondaries: Option<&[Vec<u8>]>,
    ) -> Result<PrewriteOutcome> {
        let mut props = optimistic_props(primary, start_ts);
        props.commit_kind = commit_kind;
        let max_ts = self.max_ts;
        self.run(start_ts, |txn, reader| {
            let action = PessimisticAction::SkipPessimisticCheck;
            let outcome = prewrite(txn, reader, &props, mutation, secondaries, action, max_ts)?;
            if let CommitKind::OnePc { .. } = commit_kind {
                txn.commit_1pc_locks(outcome.min_commit_ts);
            }
            Ok(outcome)
        })
    }

    /// Pessimistic prewrite (`action` for the key) of a put.
    pub fn prewrite_pessimistic(
        &mut self,
        key: &[u8],
        value: &[u8],
        primary: &[u8],
        start_ts: u64,
        for_update_ts: u64,
        action: PessimisticAction,
    ) -> Result<PrewriteOutcome> {
        let mut props = optimistic_props(primary, start_ts);
        props.kind = TxnKind::Pessimistic {
            for_update_ts: TimeStamp(for_update_ts),
        };
        let mutation = Mutation {
            key: key.to_vec(),
            op: MutationOp::Put(value.to_vec()),
        };
        self.run(start_ts, |txn, reader| {
            prewrite(
                txn,
                reader,
                &props,
                &mutation,
                None,
                action,
                TimeStamp::ZERO,
            )
        })
    }

    /// Commit.
    pub fn commit(&mut self, key: &[u8], start_ts: u64, commit_ts: u64) -> Result<CommitOutcome> {
        self.run(start_ts, |txn, reader| {
            commit(txn, reader, key, TimeStamp(commit_ts))
        })
    }

    /// BatchRollback of one key.
    pub fn rollback(&mut self, key: &[u8], start_ts: u64) -> Result<()> {
        self.run(start_ts, |txn, reader| {
            cleanup(txn, reader, key, TimeStamp::ZERO, false)
        })
    }

    /// A pessimistic lock with default parameters.
    pub fn pessimistic_lock(
        &mut self,
        key: &[u8],
        primary: &[u8],
        start_ts: u64,
        for_update_ts: u64,
    ) -> Result<Option<Vec<u8>>> {
        let params = PessimisticLockParams {
            primary,
            lock_ttl_ms: TTL_MS,
            for_update_ts: TimeStamp(for_update_ts),
            should_not_exist: false,
            need_value: false,
            min_commit_ts: TimeStamp::ZERO,
        };
        self.run(start_ts, |txn, reader| {
            acquire_pessimistic_lock(txn, reader, key, &params)
        })
    }

    /// A snapshot read.
    pub fn get(&self, key: &[u8], ts: u64) -> Result<Option<Vec<u8>>> {
        let reader = MvccReader::new(&self.engine);
        point_get(&reader, key, TimeStamp(ts), &Default::default(), true)
    }

    /// The lock on `key`.
    pub fn lock(&self, key: &[u8]) -> Option<Lock> {
        MvccReader::new(&self.engine).load_lock(key).unwrap()
    }

    /// The write record exactly at `key@ts`.
    pub fn write_at(&self, key: &[u8], ts: u64) -> Option<Write> {
        let stored = self
            .engine
            .get(Cf::Write, &keys::version_key(key, TimeStamp(ts)));
        stored.unwrap().map(|bytes| Write::decode(&bytes).unwrap())
    }

    /// Number of write records of all keys.
    pub fn write_count(&self) -> usize {
        self.engine.len(Cf::Write)
    }
}

/// Optimistic 2PC properties.
pub fn optimistic_props(primary: &[u8], start_ts: u64) -> TxnProps<'_> {
    TxnProps {
        start_ts: TimeStamp(start_ts),
        kind: TxnKind::Optimistic {
            skip_constraint_check: false,
        },
        commit_kind: CommitKind::TwoPc,
        primary,
        txn_size: 1,
        lock_ttl_ms: TTL_MS,
        min_commit_ts: TimeStamp::ZERO,
    }
}
