//! Tests of pessimistic locks and their rollback.

use super::*;
use crate::mvcc::actions::test_util::{TestEnv, TTL_MS};

fn lock_with(
    env: &mut TestEnv,
    key: &[u8],
    start_ts: u64,
    for_update_ts: u64,
    tweak: impl FnOnce(&mut PessimisticLockParams<'_>),
) -> Result<LockedValue> {
    let mut params = PessimisticLockParams {
        primary: b"p",
        lock_ttl_ms: TTL_MS,
        for_update_ts: TimeStamp(for_update_ts),
        should_not_exist: false,
        need_value: false,
        min_commit_ts: TimeStamp::ZERO,
    };
    tweak(&mut params);
    env.run(start_ts, |txn, reader| {
        acquire_pessimistic_lock(txn, reader, key, &params)
    })
}

fn rollback(env: &mut TestEnv, key: &[u8], start_ts: u64, for_update_ts: u64) -> bool {
    env.run(start_ts, |txn, reader| {
        pessimistic_rollback(txn, reader, key, TimeStamp(for_update_ts))
    })
    .unwrap()
}

#[test]
fn lock_is_written_without_value() {
    let mut env = TestEnv::new();
    assert_eq!(env.pessimistic_lock(b"k", b"p", 10, 11), Ok(None));
    let lock = env.lock(b"k").unwrap();
    assert_eq!(lock.lock_type, LockType::Pessimistic);
    assert_eq!(lock.for_update_ts, TimeStamp(11));
    assert_eq!(lock.primary, b"p");
    assert!(lock.short_value.is_none());
    // Readers are never blocked by a pessimistic lock.
    assert_eq!(env.get(b"k", 20), Ok(None));
}

#[test]
fn newer_commit_is_a_retryable_conflict() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", b"v", b"k", 12);
    env.commit(b"k", 12, 15).unwrap();
    let result = env.pessimistic_lock(b"k", b"p", 10, 14);
    let Err(Error::WriteConflict {
        reason,
        conflict_commit_ts,
        ..
    }) = result
    else {
        panic!("expected a conflict, got {result:?}");
    };
    assert_eq!(reason, ConflictReason::PessimisticRetry);
    assert_eq!(conflict_commit_ts, TimeStamp(15));
    assert!(env.lock(b"k").is_none());
    assert!(
        env.pessimistic_lock(b"k", b"p", 10, 15).is_ok(),
        "retry with newer for_update_ts"
    );
}

#[test]
fn rolled_back_txn_never_relocks() {
    let mut env = TestEnv::new();
    env.rollback(b"k", 10).unwrap();
    assert!(matches!(
        env.pessimistic_lock(b"k", b"p", 10, 10),
        Err(Error::PessimisticLockRolledBack { .. })
    ));
    // Also when a newer commit (≤ for_update_ts) sits above the rollback.
    env.prewrite_put(b"k", b"v", b"k", 11);
    env.commit(b"k", 11, 12).unwrap();
    assert!(matches!(
        env.pessimistic_lock(b"k", b"p", 10, 13),
        Err(Error::PessimisticLockRolledBack { .. })
    ));
}

#[test]
fn existing_locks() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"f", b"v", b"f", 5);
    assert!(matches!(
        env.pessimistic_lock(b"f", b"p", 10, 10),
        Err(Error::KeyIsLocked(_))
    ));
    env.prewrite_put(b"o", b"v", b"o", 10);
    assert!(matches!(
        env.pessimistic_lock(b"o", b"p", 10, 10),
        Err(Error::LockTypeNotMatch {
            pessimistic: false,
            ..
        })
    ));
    env.pessimistic_lock(b"k", b"p", 10, 12).unwrap();
    env.pessimistic_lock(b"k", b"p", 10, 11).unwrap();
    assert_eq!(
        env.lock(b"k").unwrap().for_update_ts,
        TimeStamp(12),
        "stale relock ignored"
    );
    env.pessimistic_lock(b"k", b"p", 10, 14).unwrap();
    assert_eq!(env.lock(b"k").unwrap().for_update_ts, TimeStamp(14));
}

#[test]
fn values_and_existence() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", &[7; 400], b"k", 5);
    env.commit(b"k", 5, 6).unwrap();
    env.prewrite_full(
        &crate::mvcc::actions::Mutation {
            key: b"k".to_vec(),
            op: crate::mvcc::actions::MutationOp::Lock,
        },
        b"k",
        7,
        crate::mvcc::actions::CommitKind::TwoPc,
        None,
    )
    .unwrap();
    env.commit(b"k", 7, 8).unwrap();
    let exists = lock_with(&mut env, b"k", 9, 9, |p| p.should_not_exist = true);
    assert!(matches!(exists, Err(Error::AlreadyExist { .. })));
    assert!(env.lock(b"k").is_none());
    let value = lock_with(&mut env, b"k", 10, 10, |p| p.need_value = true).unwrap();
    assert_eq!(value, Some(vec![7; 400]), "Lock records are skipped");
    let absent = lock_with(&mut env, b"z", 10, 10, |p| p.need_value = true).unwrap();
    assert_eq!(absent, None);
}

#[test]
fn pessimistic_rollback_removes_only_own_older_locks() {
    let mut env = TestEnv::new();
    env.pessimistic_lock(b"k", b"p", 10, 12).unwrap();
    assert!(!rollback(&mut env, b"k", 11, 20), "another txn");
    assert!(
        !rollback(&mut env, b"k", 10, 11),
        "lock is newer than the request"
    );
    assert!(env.lock(b"k").is_some());
    assert!(rollback(&mut env, b"k", 10, 12));
    assert!(env.lock(b"k").is_none());
    env.prewrite_put(b"q", b"v", b"q", 10);
    assert!(
        !rollback(&mut env, b"q", 10, 99),
        "a prewrite lock is not pessimistic"
    );
    assert!(env.lock(b"q").is_some());
}
