//! Tests of rollback, cleanup, collapse of unprotected rollbacks, and rollbacks that meet
//! a commit record or a foreign lock at their start_ts.

use super::*;
use crate::env::Cf;
use crate::mvcc::actions::test_util::TestEnv;

fn cleanup_at(
    env: &mut TestEnv,
    key: &[u8],
    start_ts: u64,
    current_ts: TimeStamp,
    protect: bool,
) -> Result<()> {
    env.run(start_ts, |txn, reader| {
        cleanup(txn, reader, key, current_ts, protect)
    })
}

#[test]
fn rollback_removes_lock_and_value() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", &[3; 300], b"k", 10);
    assert_eq!(env.engine.len(Cf::Default), 1);
    env.rollback(b"k", 10).unwrap();
    assert!(env.lock(b"k").is_none());
    assert_eq!(env.engine.len(Cf::Default), 0);
    let write = env.write_at(b"k", 10).unwrap();
    assert_eq!(write.write_type, WriteType::Rollback);
    assert!(
        !write.is_protected_rollback(),
        "optimistic rollbacks are collapsible"
    );
    // Rolling back again is fine and changes nothing.
    let before = env.engine.clone();
    env.rollback(b"k", 10).unwrap();
    assert_eq!(env.engine, before);
}

#[test]
fn pessimistic_primary_rollback_is_protected() {
    let mut env = TestEnv::new();
    env.pessimistic_lock(b"p", b"p", 10, 10).unwrap();
    env.pessimistic_lock(b"s", b"p", 10, 10).unwrap();
    env.rollback(b"p", 10).unwrap();
    env.rollback(b"s", 10).unwrap();
    assert!(env.write_at(b"p", 10).unwrap().is_protected_rollback());
    assert!(!env.write_at(b"s", 10).unwrap().is_protected_rollback());
}

#[test]
fn unprotected_rollbacks_collapse_protected_ones_stay() {
    let mut env = TestEnv::new();
    env.rollback(b"k", 10).unwrap();
    env.rollback(b"k", 20).unwrap();
    assert!(
        env.write_at(b"k", 10).is_none(),
        "collapsed by the newer rollback"
    );
    assert!(env.write_at(b"k", 20).is_some());
    cleanup_at(&mut env, b"k", 30, TimeStamp::ZERO, true).unwrap();
    assert!(env.write_at(b"k", 30).unwrap().is_protected_rollback());
    env.rollback(b"k", 40).unwrap();
    assert!(
        env.write_at(b"k", 30).is_some(),
        "protected rollbacks never collapse"
    );
}

#[test]
fn rollback_of_committed_txn_fails() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", b"v", b"k", 10);
    env.commit(b"k", 10, 15).unwrap();
    assert!(matches!(
        env.rollback(b"k", 10),
        Err(Error::Committed {
            commit_ts: TimeStamp(15),
            ..
        })
    ));
}

#[test]
fn cleanup_respects_ttl() {
    let mut env = TestEnv::new();
    let start = TimeStamp::compose(1000, 0).get();
    env.prewrite_put(b"k", b"v", b"k", start);
    let alive = TimeStamp::compose(1000 + 3000, 0);
    let result = cleanup_at(&mut env, b"k", start, alive, true);
    assert!(
        matches!(result, Err(Error::KeyIsLocked(_))),
        "TTL not yet over"
    );
    let expired = TimeStamp::compose(1000 + 3001, 0);
    cleanup_at(&mut env, b"k", start, expired, true).unwrap();
    assert!(env.lock(b"k").is_none());
}

#[test]
fn rollback_over_a_commit_at_the_same_ts() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", b"v", b"k", 10);
    env.commit(b"k", 10, 20).unwrap();
    // Unprotected: nothing to write (the commit record holds the slot).
    let before = env.engine.clone();
    env.rollback(b"k", 20).unwrap();
    assert_eq!(env.engine, before);
    // Protected: the commit record carries the rollback as a flag.
    cleanup_at(&mut env, b"k", 20, TimeStamp::ZERO, true).unwrap();
    let write = env.write_at(b"k", 20).unwrap();
    assert_eq!(write.start_ts, TimeStamp(10));
    assert!(write.has_overlapped_rollback);
    assert_eq!(
        env.get(b"k", 25),
        Ok(Some(b"v".to_vec())),
        "the value is still visible"
    );
    // A late prewrite of txn 20 now fails as rolled back.
    assert!(env.try_prewrite_put(b"k", b"x", b"k", 20).is_err());
}

#[test]
fn protected_rollback_under_a_foreign_lock_is_recorded_in_it() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", b"v", b"k", 10);
    cleanup_at(&mut env, b"k", 20, TimeStamp::ZERO, true).unwrap();
    assert_eq!(env.lock(b"k").unwrap().rollback_ts, vec![TimeStamp(20)]);
    assert!(env.write_at(b"k", 20).unwrap().is_protected_rollback());
    env.commit(b"k", 10, 20).unwrap();
    assert!(env.write_at(b"k", 20).unwrap().has_overlapped_rollback);
}

#[test]
fn make_rollback_cases() {
    let fresh = make_rollback(TimeStamp(5), true, None).unwrap();
    assert!(fresh.is_protected_rollback());
    let other = Write::new(WriteType::Put, TimeStamp(3), None);
    assert_eq!(
        make_rollback(TimeStamp(5), false, Some(other.clone())),
        None
    );
    let flagged = make_rollback(TimeStamp(5), true, Some(other)).unwrap();
    assert!(flagged.has_overlapped_rollback);
    assert_eq!(flagged.start_ts, TimeStamp(3));
}

#[test]
fn protected_primary_rollback_outlives_collapse() {
    // A pessimistic txn rolled back by a resolver must never lock its primary again, even
    // after a later rollback on the key would collapse an unprotected record (tikv#7364).
    let mut env = TestEnv::new();
    env.pessimistic_lock(b"p", b"p", 10, 10).unwrap();
    env.rollback(b"p", 10).unwrap();
    env.rollback(b"p", 20).unwrap();
    assert!(env.write_at(b"p", 10).is_some(), "not collapsed");
    let late = env.pessimistic_lock(b"p", b"p", 10, 30);
    assert!(matches!(late, Err(Error::PessimisticLockRolledBack { .. })));
    // A secondary's unprotected rollback does collapse.
    env.pessimistic_lock(b"s", b"p", 10, 10).unwrap();
    env.rollback(b"s", 10).unwrap();
    env.rollback(b"s", 20).unwrap();
    assert!(env.write_at(b"s", 10).is_none());
}
