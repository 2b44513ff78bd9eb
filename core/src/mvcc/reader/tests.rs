//! Tests of the reader: read-conflict rules, point gets, scans in both directions with
//! per-key errors, paging, lock scans, corruption and raw/txn separation.

use std::collections::BTreeSet;

use super::*;
use crate::env::Direction;
use crate::limits;
use crate::mvcc::actions::test_util::TestEnv;
use crate::mvcc::lock::{Lock, LockType};
use crate::mvcc::test_engine::MemEngine;

fn scan_all(
    env: &TestEnv,
    range: KeyRange,
    ts: u64,
    limit: usize,
    direction: Direction,
) -> Vec<ScanResult> {
    let reader = MvccReader::new(&env.engine);
    let options = ScanOptions {
        range,
        ts: TimeStamp(ts),
        limit,
        key_only: false,
        direction,
        bypass_locks: BTreeSet::new(),
    };
    scan(&reader, &options).unwrap()
}

fn keys_of(results: &[ScanResult]) -> Vec<(Vec<u8>, bool)> {
    results
        .iter()
        .map(|entry| match entry {
            Ok((key, _)) => (key.clone(), true),
            Err(Error::KeyIsLocked(info)) => (info.key.clone(), false),
            Err(other) => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn read_conflict_rules_follow_tikv() {
    let none = BTreeSet::new();
    let mut lock = Lock::new(LockType::Put, b"p".to_vec(), TimeStamp(10), 100);
    assert!(
        check_read_conflict(&lock, b"k", TimeStamp(9), &none).is_ok(),
        "newer lock"
    );
    assert!(check_read_conflict(&lock, b"k", TimeStamp(10), &none).is_err());
    let bypass: BTreeSet<_> = [TimeStamp(10)].into();
    assert!(check_read_conflict(&lock, b"k", TimeStamp(20), &bypass).is_ok());
    lock.min_commit_ts = TimeStamp(21);
    assert!(
        check_read_conflict(&lock, b"k", TimeStamp(20), &none).is_ok(),
        "commits above"
    );
    assert!(check_read_conflict(&lock, b"k", TimeStamp(21), &none).is_err());
    // Reading the latest version of a primary at MAX ignores its (non-async) lock.
    assert!(check_read_conflict(&lock, b"p", TimeStamp::MAX, &none).is_ok());
    assert!(check_read_conflict(&lock, b"k", TimeStamp::MAX, &none).is_err());
    lock.use_async_commit = true;
    assert!(check_read_conflict(&lock, b"p", TimeStamp::MAX, &none).is_err());
    for lock_type in [LockType::Lock, LockType::Pessimistic] {
        let other = Lock::new(lock_type, b"p".to_vec(), TimeStamp(1), 100);
        assert!(check_read_conflict(&other, b"k", TimeStamp(50), &none).is_ok());
    }
}

#[test]
fn point_get_sees_commits_at_or_below_ts() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", b"v1", b"k", 10);
    env.commit(b"k", 10, 20).unwrap();
    env.rollback(b"k", 25).unwrap();
    assert_eq!(env.get(b"k", 19), Ok(None));
    assert_eq!(env.get(b"k", 20), Ok(Some(b"v1".to_vec())));
    assert_eq!(
        env.get(b"k", 30),
        Ok(Some(b"v1".to_vec())),
        "rollback records are skipped"
    );
    env.prewrite_put(b"k", b"v2", b"k", 30);
    assert!(matches!(env.get(b"k", 30), Err(Error::KeyIsLocked(_))));
    assert_eq!(env.get(b"k", 29), Ok(Some(b"v1".to_vec())));
}

#[test]
fn scans_forward_and_reverse_with_per_key_errors() {
    let mut env = TestEnv::new();
    for (index, key) in [&b"a"[..], b"b", b"c", b"d"].iter().enumerate() {
        let start = 10 + index as u64 * 2;
        env.prewrite_put(key, &[index as u8; 300], key, start);
        env.commit(key, start, start + 1).unwrap();
    }
    env.prewrite_put(b"bb", b"x", b"bb", 30); // a locked key with no committed version
    env.prewrite_put(b"c", b"y", b"c", 31);
    let all = scan_all(&env, KeyRange::all(), 40, 100, Direction::Forward);
    let expected: Vec<(Vec<u8>, bool)> = vec![
        (b"a".to_vec(), true),
        (b"b".to_vec(), true),
        (b"bb".to_vec(), false),
        (b"c".to_vec(), false),
        (b"d".to_vec(), true),
    ];
    assert_eq!(keys_of(&all), expected);
    assert_eq!(all[0].as_ref().unwrap().1, vec![0; 300]);
    let reverse = scan_all(&env, KeyRange::all(), 40, 100, Direction::Reverse);
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(keys_of(&reverse), reversed);
    // Limits count error entries; ranges are half-open; old reads skip newer locks.
    let limited = scan_all(
        &env,
        KeyRange::new(b"b".to_vec(), b"d".to_vec()),
        40,
        2,
        Direction::Forward,
    );
    assert_eq!(keys_of(&limited), expected[1..3].to_vec());
    let early = scan_all(&env, KeyRange::all(), 13, 100, Direction::Reverse);
    assert_eq!(
        keys_of(&early),
        vec![(b"b".to_vec(), true), (b"a".to_vec(), true)]
    );
    assert!(scan_all(&env, KeyRange::all(), 40, 0, Direction::Forward).is_empty());
}

#[test]
fn key_only_scan_reads_no_values() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", &[5; 300], b"k", 10);
    env.commit(b"k", 10, 11).unwrap();
    // Remove the long value: a key-only scan must not notice.
    let value_key = crate::mvcc::keys::version_key(b"k", TimeStamp(10));
    let mut engine = env.engine.clone();
    engine.apply(&[crate::mvcc::txn::Modify::Delete {
        cf: Cf::Default,
        key: value_key,
    }]);
    let reader = MvccReader::new(&engine);
    let mut options = ScanOptions {
        range: KeyRange::all(),
        ts: TimeStamp(20),
        limit: 10,
        key_only: true,
        direction: Direction::Forward,
        bypass_locks: BTreeSet::new(),
    };
    let results = scan(&reader, &options).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].as_ref().unwrap(), &(b"k".to_vec(), Vec::new()));
    options.key_only = false;
    assert!(matches!(
        scan(&reader, &options),
        Err(Error::DefaultNotFound { .. })
    ));
}

#[test]
fn version_walks_page_past_many_records() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"k", b"old", b"k", 1);
    env.commit(b"k", 1, 2).unwrap();
    let rollbacks = limits::MVCC_VERSION_PAGE_KEYS as u64 * 2 + 3;
    for start in 0..rollbacks {
        // Protected, so they do not collapse each other.
        env.run(10 + start, |txn, reader| {
            crate::mvcc::actions::cleanup(txn, reader, b"k", TimeStamp::ZERO, true)
        })
        .unwrap();
    }
    assert_eq!(env.write_count() as u64, rollbacks + 1);
    assert_eq!(env.get(b"k", 1000), Ok(Some(b"old".to_vec())));
    let reader = MvccReader::new(&env.engine);
    let record = reader.get_txn_commit_record(b"k", TimeStamp(1)).unwrap();
    assert_eq!(record.info(), Some((TimeStamp(2), WriteType::Put)));
    assert_eq!(
        reader
            .scan_writes(b"k", TimeStamp::MAX, 1000)
            .unwrap()
            .len() as u64,
        rollbacks + 1
    );
}

#[test]
fn scan_locks_filters_and_pages() {
    let mut env = TestEnv::new();
    let count = limits::MVCC_LOCK_PAGE_KEYS + 10;
    for index in 0..count {
        let key = format!("k{index:05}").into_bytes();
        env.prewrite_put(&key, b"v", &key, 10 + (index as u64 % 2));
    }
    let reader = MvccReader::new(&env.engine);
    let (even, more) = reader
        .scan_locks(&KeyRange::all(), 10_000, |lock| lock.ts <= TimeStamp(10))
        .unwrap();
    assert_eq!(even.len(), count.div_ceil(2));
    assert!(!more);
    assert!(even.iter().all(|(_, lock)| lock.ts == TimeStamp(10)));
    let (first, more) = reader.scan_locks(&KeyRange::all(), 3, |_| true).unwrap();
    assert!(more);
    assert_eq!(first[2].0, b"k00002");
    let range = KeyRange::new(b"k00001".to_vec(), b"k00003".to_vec());
    let (ranged, _) = reader.scan_locks(&range, 100, |_| true).unwrap();
    assert_eq!(ranged.len(), 2);
}

#[test]
fn garbage_is_corruption_not_panic() {
    let mut engine = MemEngine::new();
    engine.put_raw(Cf::Lock, &crate::mvcc::keys::lock_key(b"k"), b"garbage");
    let mut bad_version = crate::mvcc::keys::lock_key(b"w");
    bad_version.extend_from_slice(b"\x01\x02\x03");
    engine.put_raw(Cf::Write, &bad_version, b"P\x01");
    let reader = MvccReader::new(&engine);
    assert!(matches!(reader.load_lock(b"k"), Err(Error::Corruption(_))));
    assert!(matches!(
        reader.seek_write(b"w", TimeStamp::MAX),
        Err(Error::Corruption(_))
    ));
    let none = BTreeSet::new();
    assert!(point_get(&reader, b"k", TimeStamp(5), &none, true).is_err());
}

#[test]
fn raw_data_is_invisible_to_txn_reads() {
    let mut env = TestEnv::new();
    // A raw key that equals an encoded MVCC key without the prefix, and one inside it.
    let unprefixed = crate::types::codec::mvcc_key(b"k", TimeStamp(10));
    env.engine.put_raw(Cf::Default, &unprefixed, b"raw");
    env.engine.put_raw(Cf::Default, b"k", b"raw");
    env.prewrite_put(b"k", &[1; 300], b"k", 10);
    env.commit(b"k", 10, 11).unwrap();
    assert_eq!(env.get(b"k", 20), Ok(Some(vec![1; 300])));
    let all = scan_all(&env, KeyRange::all(), 20, 10, Direction::Forward);
    assert_eq!(keys_of(&all), vec![(b"k".to_vec(), true)]);
    assert_eq!(env.engine.len(Cf::Default), 3, "raw pairs untouched");
}
