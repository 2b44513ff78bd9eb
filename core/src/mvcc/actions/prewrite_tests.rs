//! Tests of prewrite: conflicts, idempotence, constraints, long values, pessimistic
//! upgrade and amend, async commit timestamps and 1PC.

use super::*;
use crate::env::Cf;
use crate::mvcc::actions::test_util::{TestEnv, TTL_MS};
use crate::mvcc::error::ConflictReason;
use crate::mvcc::write::WriteType;

fn mutation(key: &[u8], op: MutationOp) -> Mutation {
    Mutation {
        key: key.to_vec(),
        op,
    }
}

fn put(key: &[u8], value: &[u8]) -> Mutation {
    mutation(key, MutationOp::Put(value.to_vec()))
}

#[test]
fn optimistic_conflicts_with_any_newer_record() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", b"v1", b"k", 10);
    env.commit(b"k", 10, 20).unwrap();
    let error = env.try_prewrite_put(b"k", b"v2", b"k", 15).unwrap_err();
    let Error::WriteConflict {
        start_ts,
        conflict_start_ts,
        conflict_commit_ts,
        reason,
        ..
    } = error
    else {
        panic!("expected a write conflict, got {error:?}");
    };
    assert_eq!(
        (start_ts, conflict_start_ts),
        (TimeStamp(15), TimeStamp(10))
    );
    assert_eq!(conflict_commit_ts, TimeStamp(20));
    assert_eq!(reason, ConflictReason::Optimistic);
    // Another txn's rollback above start_ts conflicts too (TiKV: any record).
    env.rollback(b"k", 30).unwrap();
    assert!(matches!(
        env.try_prewrite_put(b"k", b"v", b"k", 25),
        Err(Error::WriteConflict {
            conflict_commit_ts: TimeStamp(30),
            ..
        })
    ));
    assert!(env.try_prewrite_put(b"k", b"v", b"k", 31).is_ok());
}

#[test]
fn own_rollback_is_self_rolled_back() {
    let mut env = TestEnv::new();
    env.rollback(b"k", 10).unwrap();
    assert!(matches!(
        env.try_prewrite_put(b"k", b"v", b"k", 10),
        Err(Error::WriteConflict {
            reason: ConflictReason::SelfRolledBack,
            ..
        })
    ));
    assert!(env.lock(b"k").is_none());
}

#[test]
fn foreign_lock_blocks_with_lock_info() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", b"v", b"p", 10);
    let Err(Error::KeyIsLocked(info)) = env.try_prewrite_put(b"k", b"w", b"k", 12) else {
        panic!("expected KeyIsLocked");
    };
    assert_eq!(info.lock_version, 10);
    assert_eq!(info.primary_lock, b"p");
    assert_eq!(info.key, b"k");
    assert_eq!(info.lock_ttl, TTL_MS);
    // A pessimistic txn sees TTL 0 so it resolves at once.
    let pessimistic = env.prewrite_pessimistic(
        b"k",
        b"w",
        b"k",
        12,
        12,
        PessimisticAction::SkipPessimisticCheck,
    );
    let Err(Error::KeyIsLocked(info)) = pessimistic else {
        panic!("expected KeyIsLocked");
    };
    assert_eq!(info.lock_ttl, 0);
}

#[test]
fn re_prewrite_is_idempotent() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", b"v", b"k", 10);
    let before = env.engine.clone();
    let outcome = env.try_prewrite_put(b"k", b"other", b"k", 10).unwrap();
    assert_eq!(outcome.min_commit_ts, TimeStamp::ZERO);
    assert_eq!(env.engine, before, "a duplicate prewrite writes nothing");
}

#[test]
fn insert_checks_existence() {
    let mut env = TestEnv::new();
    let insert = mutation(b"k", MutationOp::Insert(b"v".to_vec()));
    env.prewrite_full(&insert, b"k", 10, CommitKind::TwoPc, None)
        .unwrap();
    env.commit(b"k", 10, 11).unwrap();
    // A Lock record on top does not hide the older Put.
    env.prewrite_full(
        &mutation(b"k", MutationOp::Lock),
        b"k",
        12,
        CommitKind::TwoPc,
        None,
    )
    .unwrap();
    env.commit(b"k", 12, 13).unwrap();
    let again = env.prewrite_full(&insert, b"k", 20, CommitKind::TwoPc, None);
    assert!(matches!(again, Err(Error::AlreadyExist { .. })));
    let check = mutation(b"k", MutationOp::CheckNotExists);
    let checked = env.prewrite_full(&check, b"k", 20, CommitKind::TwoPc, None);
    assert!(matches!(checked, Err(Error::AlreadyExist { .. })));
    env.prewrite_full(
        &mutation(b"k", MutationOp::Delete),
        b"k",
        21,
        CommitKind::TwoPc,
        None,
    )
    .unwrap();
    env.commit(b"k", 21, 22).unwrap();
    env.prewrite_full(&insert, b"k", 30, CommitKind::TwoPc, None)
        .unwrap();
}

#[test]
fn check_not_exists_writes_nothing() {
    let mut env = TestEnv::new();
    let check = mutation(b"k", MutationOp::CheckNotExists);
    env.prewrite_full(&check, b"k", 10, CommitKind::TwoPc, None)
        .unwrap();
    assert_eq!(env.engine, Default::default());
}

#[test]
fn long_value_goes_to_cf_default() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", &[1; 256], b"k", 10);
    assert!(env.lock(b"k").unwrap().short_value.is_none());
    assert_eq!(env.engine.len(Cf::Default), 1);
    env.prewrite_put(b"s", &[1; 255], b"s", 10);
    assert_eq!(env.lock(b"s").unwrap().short_value.unwrap().len(), 255);
    assert_eq!(env.engine.len(Cf::Default), 1);
}

#[test]
fn pessimistic_lock_is_upgraded() {
    let mut env = TestEnv::new();
    env.pessimistic_lock(b"k", b"k", 10, 12).unwrap();
    // A foreign rollback recorded on the pessimistic lock must survive the upgrade.
    let mut lock = env.lock(b"k").unwrap();
    lock.rollback_ts = vec![TimeStamp(11)];
    lock.ttl_ms = 50_000;
    env.engine
        .put_raw(Cf::Lock, &crate::mvcc::keys::lock_key(b"k"), &lock.encode());
    let action = PessimisticAction::DoPessimisticCheck;
    env.prewrite_pessimistic(b"k", b"v", b"k", 10, 11, action)
        .unwrap();
    let upgraded = env.lock(b"k").unwrap();
    assert_eq!(upgraded.lock_type, crate::mvcc::lock::LockType::Put);
    assert_eq!(upgraded.ttl_ms, 50_000);
    assert_eq!(upgraded.for_update_ts, TimeStamp(12));
    assert_eq!(upgraded.rollback_ts, vec![TimeStamp(11)]);
}

#[test]
fn pessimistic_check_needs_own_lock_or_a_clean_amend() {
    let mut env = TestEnv::new();
    let action = PessimisticAction::DoPessimisticCheck;
    env.prewrite_put(b"f", b"v", b"f", 5);
    let foreign = env.prewrite_pessimistic(b"f", b"v", b"p", 10, 10, action);
    assert!(matches!(
        foreign,
        Err(Error::PessimisticLockNotFound { .. })
    ));
    // No lock and nothing written since start_ts: amended.
    env.prewrite_pessimistic(b"a", b"v", b"p", 10, 10, action)
        .unwrap();
    assert!(env.lock(b"a").is_some());
    // A commit at or after start_ts makes the amend impossible.
    env.prewrite_put(b"b", b"v", b"b", 8);
    env.commit(b"b", 8, 10).unwrap();
    let late = env.prewrite_pessimistic(b"b", b"v", b"p", 10, 12, action);
    assert!(matches!(late, Err(Error::PessimisticLockNotFound { .. })));
    // Our own rollback also sits at start_ts.
    env.rollback(b"c", 10).unwrap();
    let rolled = env.prewrite_pessimistic(b"c", b"v", b"p", 10, 12, action);
    assert!(matches!(rolled, Err(Error::PessimisticLockNotFound { .. })));
}

#[test]
fn optimistic_prewrite_over_pessimistic_lock_mismatches() {
    let mut env = TestEnv::new();
    env.pessimistic_lock(b"k", b"k", 10, 10).unwrap();
    let result = env.try_prewrite_put(b"k", b"v", b"k", 10);
    assert!(matches!(
        result,
        Err(Error::LockTypeNotMatch {
            pessimistic: true,
            ..
        })
    ));
}

#[test]
fn constraint_check_in_pessimistic_txn() {
    let mut env = TestEnv::new();
    let action = PessimisticAction::DoConstraintCheck;
    env.prewrite_put(b"k", b"v", b"k", 5);
    env.commit(b"k", 5, 15).unwrap();
    let newer = env.prewrite_pessimistic(b"k", b"v", b"p", 10, 12, action);
    assert!(matches!(newer, Err(Error::PessimisticLockNotFound { .. })));
    assert!(env
        .prewrite_pessimistic(b"k", b"v", b"p", 10, 15, action)
        .is_ok());
    // A newer rollback is not a conflict for pessimistic transactions.
    env.rollback(b"r", 20).unwrap();
    assert!(env
        .prewrite_pessimistic(b"r", b"v", b"p", 10, 12, action)
        .is_ok());
    let check = Mutation {
        key: b"x".to_vec(),
        op: MutationOp::CheckNotExists,
    };
    let mut props = crate::mvcc::actions::test_util::optimistic_props(b"p", 30);
    props.kind = TxnKind::Pessimistic {
        for_update_ts: TimeStamp(30),
    };
    let result = env.run(30, |txn, reader| {
        prewrite(txn, reader, &props, &check, None, action, TimeStamp::ZERO)
    });
    assert!(matches!(result, Err(Error::BadRequest(_))));
}

#[test]
fn async_commit_min_commit_ts_comes_from_max_ts() {
    let mut env = TestEnv::new();
    env.max_ts = TimeStamp(100);
    let kind = CommitKind::Async {
        max_commit_ts: TimeStamp::ZERO,
    };
    let secondaries = vec![b"s".to_vec()];
    let primary = env.prewrite_full(&put(b"p", b"v"), b"p", 10, kind, Some(&secondaries));
    let primary = primary.unwrap();
    assert_eq!(primary.min_commit_ts, TimeStamp(101));
    assert_eq!(primary.memory_lock.unwrap().min_commit_ts, TimeStamp(101));
    let lock = env.lock(b"p").unwrap();
    assert!(lock.use_async_commit);
    assert_eq!(lock.secondaries, secondaries);
    env.max_ts = TimeStamp(5);
    let secondary = env
        .prewrite_full(&put(b"s", b"v"), b"p", 10, kind, Some(&[]))
        .unwrap();
    assert_eq!(
        secondary.min_commit_ts,
        TimeStamp(11),
        "never at or below start_ts"
    );
    // A duplicate prewrite reports the stored min_commit_ts.
    let again = env.prewrite_full(&put(b"p", b"v"), b"p", 10, kind, Some(&secondaries));
    assert_eq!(again.unwrap().min_commit_ts, TimeStamp(101));
    let bounded = CommitKind::Async {
        max_commit_ts: TimeStamp(50),
    };
    env.max_ts = TimeStamp(60);
    let too_large = env.prewrite_full(&put(b"q", b"v"), b"q", 20, bounded, Some(&[]));
    assert!(matches!(too_large, Err(Error::CommitTsTooLarge { .. })));
}

#[test]
fn one_pc_writes_records_directly() {
    let mut env = TestEnv::new();
    env.max_ts = TimeStamp(40);
    let kind = CommitKind::OnePc {
        max_commit_ts: TimeStamp::ZERO,
    };
    let outcome = env
        .prewrite_full(&put(b"k", b"v"), b"k", 30, kind, None)
        .unwrap();
    assert_eq!(outcome.min_commit_ts, TimeStamp(41));
    assert!(env.lock(b"k").is_none());
    let write = env.write_at(b"k", 41).unwrap();
    assert_eq!(write.write_type, WriteType::Put);
    assert_eq!(write.start_ts, TimeStamp(30));
    assert_eq!(env.get(b"k", 41), Ok(Some(b"v".to_vec())));
    assert_eq!(env.get(b"k", 40), Ok(None));
}
