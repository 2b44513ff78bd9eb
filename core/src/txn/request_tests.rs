//! Tests of request validation.

use std::collections::BTreeMap;

use super::*;

fn put(key: &[u8]) -> kvrpcpb::Mutation {
    kvrpcpb::Mutation {
        op: kvrpcpb::Op::Put as i32,
        key: key.to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    }
}

#[test]
fn prewrite_kinds_and_actions() {
    let mut request = kvrpcpb::PrewriteRequest {
        mutations: vec![put(b"a"), put(b"b")],
        primary_lock: b"a".to_vec(),
        start_version: 10,
        lock_ttl: 3000,
        use_async_commit: true,
        secondaries: vec![b"b".to_vec()],
        ..Default::default()
    };
    let Command::Prewrite(prewrite) = prewrite(&request).unwrap() else {
        panic!()
    };
    assert_eq!(
        prewrite.kind,
        TxnKind::Optimistic {
            skip_constraint_check: false
        }
    );
    assert_eq!(prewrite.async_commit_secondaries, Some(vec![b"b".to_vec()]));
    request.for_update_ts = 12;
    request.pessimistic_actions = vec![WireAction::DoPessimisticCheck as i32; 2];
    let Command::Prewrite(prewrite) = super::prewrite(&request).unwrap() else {
        panic!()
    };
    assert_eq!(
        prewrite.kind,
        TxnKind::Pessimistic {
            for_update_ts: TimeStamp(12)
        }
    );
    assert_eq!(
        prewrite.pessimistic_actions,
        vec![PessimisticAction::DoPessimisticCheck; 2]
    );
    request.pessimistic_actions.pop();
    assert!(
        super::prewrite(&request).is_err(),
        "actions must match mutations"
    );
}

#[test]
fn bad_prewrites_are_refused() {
    let good = kvrpcpb::PrewriteRequest {
        mutations: vec![put(b"a")],
        primary_lock: b"a".to_vec(),
        start_version: 10,
        ..Default::default()
    };
    assert!(prewrite(&good).is_ok());
    let mut zero_ts = good.clone();
    zero_ts.start_version = 0;
    let mut duplicate = good.clone();
    duplicate.mutations.push(put(b"a"));
    let mut empty_key = good.clone();
    empty_key.mutations[0].key.clear();
    let mut huge_value = good.clone();
    huge_value.mutations[0].value = vec![0; limits::VALUE_BYTES_MAX + 1];
    let mut rollback_op = good.clone();
    rollback_op.mutations[0].op = kvrpcpb::Op::Rollback as i32;
    let mut stale_for_update = good.clone();
    stale_for_update.for_update_ts = 5;
    for bad in [
        zero_ts,
        duplicate,
        empty_key,
        huge_value,
        rollback_op,
        stale_for_update,
    ] {
        assert!(
            matches!(prewrite(&bad), Err(Error::InvalidRequest(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn pessimistic_lock_options() {
    let mut request = kvrpcpb::PessimisticLockRequest {
        mutations: vec![kvrpcpb::Mutation {
            op: kvrpcpb::Op::PessimisticLock as i32,
            key: b"k".to_vec(),
            assertion: kvrpcpb::Assertion::NotExist as i32,
            ..Default::default()
        }],
        primary_lock: b"k".to_vec(),
        start_version: 10,
        for_update_ts: 11,
        wait_timeout: -1,
        ..Default::default()
    };
    let Command::PessimisticLock(lock) = pessimistic_lock(&request).unwrap() else {
        panic!()
    };
    assert_eq!(lock.keys, vec![(b"k".to_vec(), true)]);
    assert_eq!(lock.wait_timeout_ms, None);
    request.check_existence = true;
    assert!(
        pessimistic_lock(&request).is_err(),
        "unsupported options are refused"
    );
}

#[test]
fn scans_swap_bounds_when_reverse() {
    let request = kvrpcpb::ScanRequest {
        start_key: b"z".to_vec(),
        end_key: b"a".to_vec(),
        limit: 5,
        version: 9,
        reverse: true,
        context: Some(kvrpcpb::Context {
            resolved_locks: vec![3],
            ..Default::default()
        }),
        ..Default::default()
    };
    let ReadCommand::Scan(ScanOptionsCommand(options)) = scan(&request).unwrap() else {
        panic!()
    };
    assert_eq!(options.range, KeyRange::new(b"a".to_vec(), b"z".to_vec()));
    assert_eq!(options.direction, Direction::Reverse);
    assert_eq!(options.bypass_locks, BTreeSet::from([TimeStamp(3)]));
    let mut too_many = request.clone();
    too_many.limit = limits::SCAN_LIMIT_MAX as u32 + 1;
    assert!(scan(&too_many).is_err());
}

#[test]
fn resolve_lock_status_map() {
    let request = kvrpcpb::ResolveLockRequest {
        start_version: 10,
        commit_version: 12,
        ..Default::default()
    };
    let (status, keys) = resolve_lock(&request).unwrap();
    assert_eq!(status, BTreeMap::from([(TimeStamp(10), TimeStamp(12))]));
    assert!(keys.is_empty());
    let bad = kvrpcpb::ResolveLockRequest {
        txn_infos: vec![kvrpcpb::TxnInfo {
            txn: 10,
            status: 9,
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(resolve_lock(&bad).is_err());
}
