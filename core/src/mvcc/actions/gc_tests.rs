//! Tests of GC (reads at or above the safe point are unchanged) and range deletion.

use super::*;
use crate::mvcc::actions::test_util::TestEnv;
use crate::mvcc::actions::{CommitKind, Mutation, MutationOp};

fn run_gc(env: &mut TestEnv, key: &[u8], safe_point: u64) -> GcInfo {
    env.run(0, |txn, reader| gc(txn, reader, key, TimeStamp(safe_point)))
        .unwrap()
}

fn prewrite_commit(env: &mut TestEnv, key: &[u8], op: MutationOp, start: u64, commit: u64) {
    let mutation = Mutation {
        key: key.to_vec(),
        op,
    };
    env.prewrite_full(&mutation, key, start, CommitKind::TwoPc, None)
        .unwrap();
    env.commit(key, start, commit).unwrap();
}

#[test]
fn keeps_newest_put_below_safe_point() {
    let mut env = TestEnv::new();
    prewrite_commit(&mut env, b"k", MutationOp::Put(b"a".to_vec()), 5, 6);
    prewrite_commit(&mut env, b"k", MutationOp::Put(vec![1; 300]), 8, 9);
    prewrite_commit(&mut env, b"k", MutationOp::Lock, 10, 11);
    env.rollback(b"k", 12).unwrap();
    prewrite_commit(&mut env, b"k", MutationOp::Put(b"c".to_vec()), 14, 15);
    let before: Vec<_> = (12..=16).map(|ts| env.get(b"k", ts).unwrap()).collect();
    let info = run_gc(&mut env, b"k", 12);
    assert_eq!(
        info,
        GcInfo {
            found_versions: 4,
            deleted_versions: 3
        }
    );
    let after: Vec<_> = (12..=16).map(|ts| env.get(b"k", ts).unwrap()).collect();
    assert_eq!(
        before, after,
        "reads at or above the safe point are unchanged"
    );
    assert!(env.write_at(b"k", 9).is_some());
    assert!(env.write_at(b"k", 6).is_none());
    assert!(env.write_at(b"k", 11).is_none());
    assert!(env.write_at(b"k", 12).is_none());
    assert_eq!(env.engine.len(Cf::Default), 1, "the kept long value stays");
    assert_eq!(run_gc(&mut env, b"k", 12).deleted_versions, 0, "idempotent");
}

#[test]
fn newest_delete_goes_with_everything_older() {
    let mut env = TestEnv::new();
    prewrite_commit(&mut env, b"k", MutationOp::Put(vec![2; 300]), 5, 6);
    prewrite_commit(&mut env, b"k", MutationOp::Delete, 7, 8);
    let info = run_gc(&mut env, b"k", 10);
    assert_eq!(info.deleted_versions, 2);
    assert_eq!(env.write_count(), 0);
    assert_eq!(env.engine.len(Cf::Default), 0);
    assert_eq!(env.get(b"k", 20), Ok(None));
}

#[test]
fn delete_range_clears_only_the_range() {
    let mut env = TestEnv::new();
    for key in [&b"a"[..], b"b", b"c"] {
        prewrite_commit(&mut env, key, MutationOp::Put(vec![3; 300]), 5, 6);
        env.prewrite_put(key, b"v", key, 10);
    }
    let range = KeyRange::new(b"b".to_vec(), b"c".to_vec());
    env.run(0, |txn, _| {
        delete_range(txn, &range);
        Ok(())
    })
    .unwrap();
    assert!(env.lock(b"b").is_none());
    assert!(env.lock(b"a").is_some());
    assert!(env.lock(b"c").is_some());
    assert_eq!(env.write_count(), 2);
    assert_eq!(env.engine.len(Cf::Default), 2);
    // Raw data outside the txn key space is untouched.
    env.engine.put_raw(Cf::Default, b"b", b"raw");
    env.run(0, |txn, _| {
        delete_range(txn, &KeyRange::all());
        Ok(())
    })
    .unwrap();
    assert_eq!(
        env.engine.pairs(Cf::Default),
        vec![(b"b".to_vec(), b"raw".to_vec())]
    );
}
