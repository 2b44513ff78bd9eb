//! Transactional requests through the store: latches, snapshot, proposal, apply.

use ferrokv_proto::kvrpcpb;

use super::*;
use crate::txn::{request, CommandResult, ReadResult};
use crate::types::RegionEpoch;

fn header() -> RequestHeader {
    RequestHeader {
        region_id: RegionId(1),
        epoch: RegionEpoch {
            conf_ver: 1,
            version: 1,
        },
    }
}

fn prewrite(keys: &[&[u8]], start_ts: u64) -> Request {
    let mutations = keys
        .iter()
        .map(|key| kvrpcpb::Mutation {
            op: kvrpcpb::Op::Put as i32,
            key: key.to_vec(),
            value: [b"v@".as_slice(), key].concat(),
            ..Default::default()
        })
        .collect();
    let wire = kvrpcpb::PrewriteRequest {
        mutations,
        primary_lock: keys[0].to_vec(),
        start_version: start_ts,
        lock_ttl: 3000,
        ..Default::default()
    };
    Request::TxnWrite {
        header: header(),
        command: request::prewrite(&wire).unwrap(),
    }
}

fn commit(keys: &[&[u8]], start_ts: u64, commit_ts: u64) -> Request {
    let wire = kvrpcpb::CommitRequest {
        keys: keys.iter().map(|k| k.to_vec()).collect(),
        start_version: start_ts,
        commit_version: commit_ts,
        ..Default::default()
    };
    Request::TxnWrite {
        header: header(),
        command: request::commit(&wire).unwrap(),
    }
}

fn get(key: &[u8], ts: u64) -> Request {
    let wire = kvrpcpb::GetRequest {
        key: key.to_vec(),
        version: ts,
        ..Default::default()
    };
    Request::TxnRead {
        header: header(),
        read: request::get(&wire).unwrap(),
    }
}

/// Sends `request` and drives the store until it is answered.
fn call(
    store: &mut Store<MemEngine>,
    transport: &Collect,
    token: u64,
    request: Request,
) -> Response {
    if let Some(now) = store.request(Token(token), request) {
        return now;
    }
    for _ in 0..50 {
        for (answered, response) in advance(store, transport, 1) {
            if answered == Token(token) {
                return response;
            }
        }
    }
    panic!("token {token} never answered");
}

fn value(response: Response) -> Option<Vec<u8>> {
    match response {
        Response::TxnRead(Ok(ReadResult::Value(found))) => found,
        other => panic!("not a value: {other:?}"),
    }
}

#[test]
fn a_transaction_prewrites_commits_and_is_read_at_its_timestamps() {
    let (_engine, mut store, transport) = leading_store();
    let prewritten = call(&mut store, &transport, 1, prewrite(&[b"a", b"b"], 10));
    assert!(
        matches!(&prewritten, Response::TxnWrite(Ok(CommandResult::Prewrite { errors, .. })) if errors.is_empty()),
        "{prewritten:?}"
    );
    let locked = call(&mut store, &transport, 2, get(b"a", 20));
    assert!(
        matches!(&locked, Response::TxnRead(Err(TxnFailure::Txn(_)))),
        "a read past the lock meets it: {locked:?}"
    );
    assert_eq!(value(call(&mut store, &transport, 3, get(b"a", 9))), None);
    let committed = call(&mut store, &transport, 4, commit(&[b"a", b"b"], 10, 15));
    assert_eq!(
        committed,
        Response::TxnWrite(Ok(CommandResult::Committed {
            commit_ts: crate::types::TimeStamp(15)
        }))
    );
    assert_eq!(
        value(call(&mut store, &transport, 5, get(b"a", 20))),
        Some(b"v@a".to_vec())
    );
    assert_eq!(
        value(call(&mut store, &transport, 6, get(b"b", 14))),
        None,
        "before the commit"
    );
    let conflict = call(&mut store, &transport, 7, prewrite(&[b"b"], 12));
    assert!(
        matches!(
            &conflict,
            Response::TxnWrite(Err(TxnFailure::Txn(crate::txn::Error::Mvcc(
                crate::mvcc::Error::WriteConflict { .. }
            ))))
        ),
        "a prewrite under a newer commit conflicts: {conflict:?}"
    );
    assert_eq!(
        store.txn.len(),
        0,
        "every task finished and released its latches"
    );
}

/// Two prewrites of one key from different transactions in one round: latches make the
/// second compute on a snapshot holding the first's lock, so exactly one locks the key.
#[test]
fn latches_serialize_commands_on_one_key() {
    let (_engine, mut store, transport) = leading_store();
    assert!(store.request(Token(1), prewrite(&[b"k"], 10)).is_none());
    assert!(store.request(Token(2), prewrite(&[b"k"], 11)).is_none());
    assert_eq!(store.txn.len(), 2);
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..50 {
        answers.extend(advance(&mut store, &transport, 1));
        if answers.len() == 2 {
            break;
        }
    }
    let errors = |token| match &answers[&Token(token)] {
        Response::TxnWrite(Ok(CommandResult::Prewrite { errors, .. })) => errors.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(errors(1), 0, "the first locks the key");
    assert_eq!(errors(2), 1, "the second meets the first's lock");
    assert_eq!(store.txn.len(), 0);
}

/// A transactional key outside the region (by its encoded form) is refused at the door.
#[test]
fn keys_outside_the_region_are_refused() {
    let engine = MemEngine::new();
    let encoded_m = crate::types::codec::encode_bytes(b"m");
    bootstrap_region(&engine, &region(1, b"", &encoded_m, vec![peer(1, 1)])).unwrap();
    let mut store = load(&engine);
    let transport = Collect::default();
    for _ in 0..40 {
        advance(&mut store, &transport, 1);
    }
    let refused = call(&mut store, &transport, 1, prewrite(&[b"z"], 10));
    assert!(
        matches!(
            refused,
            Response::TxnWrite(Err(TxnFailure::Region(RegionError::KeyNotInRegion { .. })))
        ),
        "{refused:?}"
    );
    let served = call(&mut store, &transport, 2, prewrite(&[b"a"], 10));
    assert!(matches!(served, Response::TxnWrite(Ok(_))), "{served:?}");
}

fn pessimistic_lock(key: &[u8], start_ts: u64, wait_timeout: i64, first: bool) -> Request {
    let wire = kvrpcpb::PessimisticLockRequest {
        mutations: vec![kvrpcpb::Mutation {
            op: kvrpcpb::Op::PessimisticLock as i32,
            key: key.to_vec(),
            ..Default::default()
        }],
        primary_lock: key.to_vec(),
        start_version: start_ts,
        for_update_ts: start_ts,
        lock_ttl: 20_000,
        wait_timeout,
        is_first_lock: first,
        ..Default::default()
    };
    Request::TxnWrite {
        header: header(),
        command: request::pessimistic_lock(&wire).unwrap(),
    }
}

fn pessimistic_rollback(key: &[u8], start_ts: u64) -> Request {
    let wire = kvrpcpb::PessimisticRollbackRequest {
        keys: vec![key.to_vec()],
        start_version: start_ts,
        for_update_ts: start_ts,
        ..Default::default()
    };
    Request::TxnWrite {
        header: header(),
        command: request::pessimistic_rollback(&wire).unwrap(),
    }
}

/// Sends `request` and drives the store until it is answered; every answer that came out
/// meanwhile (woken waiters among them), by token.
fn call_all(
    store: &mut Store<MemEngine>,
    transport: &Collect,
    token: u64,
    request: Request,
) -> std::collections::BTreeMap<Token, Response> {
    let mut answers = std::collections::BTreeMap::new();
    if let Some(now) = store.request(Token(token), request) {
        answers.insert(Token(token), now);
    }
    for _ in 0..50 {
        if answers.contains_key(&Token(token)) {
            return answers;
        }
        answers.extend(advance(store, transport, 1));
    }
    panic!("token {token} never answered");
}

/// Drives the store until `token` is answered or `ticks` pass; the ticks it took.
fn answer_within(
    store: &mut Store<MemEngine>,
    transport: &Collect,
    token: u64,
    ticks: u64,
) -> Option<(Response, u64)> {
    for tick in 1..=ticks {
        for (answered, response) in advance(store, transport, 1) {
            if answered == Token(token) {
                return Some((response, tick));
            }
        }
    }
    None
}

fn mvcc_error(response: &Response) -> &crate::mvcc::Error {
    match response {
        Response::TxnWrite(Err(TxnFailure::Txn(crate::txn::Error::Mvcc(error)))) => error,
        other => panic!("not an MVCC error: {other:?}"),
    }
}

fn locked(response: &Response) -> bool {
    matches!(
        response,
        Response::TxnWrite(Ok(CommandResult::PessimisticLocked { .. }))
    )
}

/// A pessimistic lock on a locked key waits: woken with WriteConflict (retry with a new
/// for_update_ts) as soon as the holder's lock goes, KeyIsLocked once its wait_timeout
/// passes, KeyIsLocked at once with a negative wait_timeout.
#[test]
fn a_pessimistic_lock_waits_for_the_lock_and_is_woken_or_times_out() {
    use crate::mvcc::{ConflictReason, Error};
    let (_engine, mut store, transport) = leading_store();
    assert!(locked(&call(
        &mut store,
        &transport,
        1,
        pessimistic_lock(b"k", 10, 0, true)
    )));
    let immediate = call(
        &mut store,
        &transport,
        2,
        pessimistic_lock(b"k", 20, -1, true),
    );
    assert!(
        matches!(mvcc_error(&immediate), Error::KeyIsLocked(_)),
        "{immediate:?}"
    );

    assert!(store
        .request(Token(3), pessimistic_lock(b"k", 30, 0, true))
        .is_none());
    assert!(
        answer_within(&mut store, &transport, 3, 3).is_none(),
        "it waits"
    );
    assert_eq!(store.txn.waiting(), 1);
    let answers = call_all(&mut store, &transport, 4, pessimistic_rollback(b"k", 10));
    assert_eq!(
        answers[&Token(4)],
        Response::TxnWrite(Ok(CommandResult::Done))
    );
    let woken = &answers[&Token(3)];
    assert_eq!(store.txn.waiting(), 0, "woken with the release, not later");
    assert!(
        matches!(
            mvcc_error(woken),
            Error::WriteConflict {
                reason: ConflictReason::PessimisticRetry,
                ..
            }
        ),
        "{woken:?}"
    );
    assert!(locked(&call(
        &mut store,
        &transport,
        5,
        pessimistic_lock(b"k", 31, 0, true)
    )));

    assert!(store
        .request(Token(6), pessimistic_lock(b"k", 40, 300, true))
        .is_none());
    let (timed_out, ticks) = answer_within(&mut store, &transport, 6, 20).expect("times out");
    assert!(
        matches!(mvcc_error(&timed_out), Error::KeyIsLocked(_)),
        "{timed_out:?}"
    );
    assert!(
        (3..=5).contains(&ticks),
        "300 ms of 100 ms ticks, took {ticks}"
    );
    assert_eq!(store.txn.waiting(), 0);
    store.txn.check_invariants();
    let counts = store.stats().lock_waits;
    assert_eq!((counts.waited, counts.woken, counts.timed_out), (2, 1, 1));
}

/// T1 holds a and waits for b; T2 holds b and asks for a: T2 closes a cycle and is refused
/// with Deadlock at once, and T1 is woken when T2 rolls b back.
#[test]
fn a_wait_that_closes_a_cycle_is_refused_with_deadlock() {
    use crate::mvcc::Error;
    let (_engine, mut store, transport) = leading_store();
    assert!(locked(&call(
        &mut store,
        &transport,
        1,
        pessimistic_lock(b"a", 10, 0, true)
    )));
    assert!(locked(&call(
        &mut store,
        &transport,
        2,
        pessimistic_lock(b"b", 20, 0, true)
    )));
    assert!(store
        .request(Token(3), pessimistic_lock(b"b", 10, 0, false))
        .is_none());
    assert!(
        answer_within(&mut store, &transport, 3, 2).is_none(),
        "T1 waits for b"
    );
    let deadlock = call(
        &mut store,
        &transport,
        4,
        pessimistic_lock(b"a", 20, 0, false),
    );
    let Error::Deadlock { .. } = mvcc_error(&deadlock) else {
        panic!("T2 closes the cycle: {deadlock:?}");
    };
    let proto = mvcc_error(&deadlock)
        .to_key_error()
        .deadlock
        .expect("deadlock");
    assert_eq!(proto.lock_ts, 10, "T2 waited for T1");
    let answers = call_all(&mut store, &transport, 5, pessimistic_rollback(b"b", 20));
    let woken = &answers[&Token(3)];
    assert!(
        matches!(mvcc_error(woken), Error::WriteConflict { .. }),
        "{woken:?}"
    );
    store.txn.check_invariants();
    let counts = store.stats().lock_waits;
    assert_eq!((counts.waited, counts.woken, counts.deadlocks), (1, 1, 1));
}

/// A lock request sent again (its first answer cut off by the client's attempt timeout)
/// replaces its earlier self, which is answered at once; when the lock goes, the first
/// waiter in line is woken with the release and the next one after the wake-up delay.
#[test]
fn a_resent_lock_request_replaces_its_earlier_self_and_later_waiters_wake_after_a_delay() {
    use crate::mvcc::Error;
    let (_engine, mut store, transport) = leading_store();
    assert!(locked(&call(
        &mut store,
        &transport,
        1,
        pessimistic_lock(b"k", 10, 0, true)
    )));
    assert!(store
        .request(Token(2), pessimistic_lock(b"k", 20, 0, false))
        .is_none());
    assert!(advance(&mut store, &transport, 1).is_empty(), "T20 waits");
    assert!(store
        .request(Token(3), pessimistic_lock(b"k", 30, 0, false))
        .is_none());
    assert!(advance(&mut store, &transport, 1).is_empty(), "T30 waits");
    assert!(store
        .request(Token(4), pessimistic_lock(b"k", 20, 0, false))
        .is_none());
    let replaced = advance(&mut store, &transport, 1);
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert_eq!(replaced[0].0, Token(2), "T20's earlier request is answered");
    assert!(matches!(mvcc_error(&replaced[0].1), Error::KeyIsLocked(_)));
    assert_eq!(store.txn.waiting(), 2);
    store.txn.check_invariants();
    let released = call_all(&mut store, &transport, 5, pessimistic_rollback(b"k", 10));
    let first = &released[&Token(3)];
    assert!(
        matches!(mvcc_error(first), Error::WriteConflict { .. }),
        "{first:?}"
    );
    assert!(
        !released.contains_key(&Token(4)),
        "the next waits for the delay"
    );
    let (later, ticks) = answer_within(&mut store, &transport, 4, 3).expect("after the delay");
    assert!(
        matches!(mvcc_error(&later), Error::WriteConflict { .. }),
        "{later:?}"
    );
    assert_eq!(ticks, 1, "the 20 ms delay ends by the next tick");
    assert_eq!(store.txn.waiting(), 0);
    store.txn.check_invariants();
    let counts = store.stats().lock_waits;
    assert_eq!(
        (
            counts.waited,
            counts.woken,
            counts.timed_out,
            counts.replaced
        ),
        (3, 2, 0, 1)
    );
}

fn async_prewrite(keys: &[&[u8]], start_ts: u64, one_pc: bool) -> Request {
    let Request::TxnWrite { header, .. } = prewrite(keys, start_ts) else {
        unreachable!()
    };
    let wire = kvrpcpb::PrewriteRequest {
        mutations: keys
            .iter()
            .map(|key| kvrpcpb::Mutation {
                op: kvrpcpb::Op::Put as i32,
                key: key.to_vec(),
                value: b"async".to_vec(),
                ..Default::default()
            })
            .collect(),
        primary_lock: keys[0].to_vec(),
        start_version: start_ts,
        lock_ttl: 3000,
        use_async_commit: !one_pc,
        try_one_pc: one_pc,
        secondaries: keys[1..].iter().map(|k| k.to_vec()).collect(),
        ..Default::default()
    };
    Request::TxnWrite {
        header,
        command: request::prewrite(&wire).unwrap(),
    }
}

fn assert_unsynced(response: &Response) {
    let unsynced = TxnFailure::Txn(crate::txn::Error::MaxTimestampNotSynced);
    assert_eq!(*response, Response::TxnWrite(Err(unsynced)));
}

/// A new leader computes no commit ts from max_ts before a PD timestamp taken after its
/// election raised it (reads its predecessor served may be above max_ts); then its async
/// and 1PC commits land above that timestamp. A new term needs a new timestamp.
#[test]
fn async_commit_and_one_pc_wait_for_max_ts_synced_after_the_election() {
    let (engine, mut store, transport) = leading_store();
    let unsynced = store.max_ts_unsynced();
    assert_eq!(unsynced.len(), 1, "the new leader is listed");
    for (token, one_pc) in [(1, false), (2, true)] {
        let refused = call(
            &mut store,
            &transport,
            token,
            async_prewrite(&[b"a", b"b"], 10, one_pc),
        );
        assert_unsynced(&refused);
    }
    // Two-phase commit does not wait.
    let plain = call(&mut store, &transport, 3, prewrite(&[b"c"], 10));
    assert!(matches!(plain, Response::TxnWrite(Ok(_))), "{plain:?}");
    store.max_ts_synced(&unsynced, crate::types::TimeStamp(500));
    assert!(store.max_ts_unsynced().is_empty());
    let answer = call(
        &mut store,
        &transport,
        4,
        async_prewrite(&[b"a", b"b"], 20, false),
    );
    let Response::TxnWrite(Ok(CommandResult::Prewrite { min_commit_ts, .. })) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(min_commit_ts, crate::types::TimeStamp(501));
    let answer = call(
        &mut store,
        &transport,
        5,
        async_prewrite(&[b"x", b"y"], 30, true),
    );
    let Response::TxnWrite(Ok(CommandResult::Prewrite {
        one_pc_commit_ts, ..
    })) = answer
    else {
        panic!("{answer:?}")
    };
    assert_eq!(one_pc_commit_ts, crate::types::TimeStamp(501));
    assert_eq!(
        value(call(&mut store, &transport, 6, get(b"x", 501))),
        Some(b"async".to_vec())
    );
    // Restarted, the store leads again in a new term: it must sync again.
    let old_term = unsynced[0].1;
    drop(store);
    let mut store = load(&engine);
    for _ in 0..40 {
        advance(&mut store, &transport, 1);
        if store.regions()[0].is_leader {
            break;
        }
    }
    let listed = store.max_ts_unsynced();
    assert!(listed.len() == 1 && listed[0].1 > old_term, "{listed:?}");
    let refused = call(
        &mut store,
        &transport,
        7,
        async_prewrite(&[b"m"], 600, false),
    );
    assert_unsynced(&refused);
}

/// T10 locks `a` and T20 `b` (tokens 1, 2; first locks report nothing to the cluster's
/// detector); then T20 asks for `a` (token 3) and waits for T10.
fn t10_holds_a_and_t20_waits_for_it(store: &mut Store<MemEngine>, transport: &Collect) {
    for (token, key, ts) in [(1, b"a", 10), (2, b"b", 20)] {
        let first = call(store, transport, token, pessimistic_lock(key, ts, 0, true));
        assert!(locked(&first));
    }
    assert!(
        store.take_detector_calls().is_empty(),
        "first locks report nothing"
    );
    assert!(store
        .request(Token(3), pessimistic_lock(b"a", 20, 0, false))
        .is_none());
}

/// A cycle that spans stores: this store's waiter (T20 waits for T10 on `a`) is reported
/// to the cluster's detector, which this store is (it leads the first region); another
/// store's report that T10 waits for T20 came first, so the detector finds the cycle and
/// the waiter here is answered Deadlock. A store that does not lead the first region is no
/// detector.
#[test]
fn a_cycle_across_stores_is_found_by_the_first_regions_leader() {
    use crate::mvcc::{Error, WaitForEdge};
    use crate::store::{DetectorAnswer, DetectorBatch, DetectorCall};
    let (_engine, mut store, transport) = leading_store();
    let batch = |from_store, calls| DetectorBatch {
        from_store,
        incarnation: 1,
        seq: 1,
        calls,
    };
    t10_holds_a_and_t20_waits_for_it(&mut store, &transport);
    assert!(
        answer_within(&mut store, &transport, 3, 1).is_none(),
        "T20 waits"
    );
    let edge = |txn, wait_for_txn, key: &[u8]| WaitForEdge {
        txn: crate::types::TimeStamp(txn),
        wait_for_txn: crate::types::TimeStamp(wait_for_txn),
        key_hash: crate::txn::key_hash(key),
        key: key.to_vec(),
    };
    let ours = edge(20, 10, b"a");
    let calls = store.take_detector_calls();
    assert_eq!(calls, vec![DetectorCall::Detect(ours.clone())]);
    let elsewhere = DetectorCall::Detect(edge(10, 20, b"z"));
    assert_eq!(
        store.serve_detector(&batch(2, vec![elsewhere])),
        DetectorAnswer::Deadlocks(vec![])
    );
    let DetectorAnswer::Deadlocks(found) = store.serve_detector(&batch(1, calls)) else {
        panic!("the first region's leader is the detector")
    };
    assert_eq!(found.len(), 1);
    let (index, deadlock) = found.into_iter().next().unwrap();
    assert_eq!(index, 0);
    store.on_remote_deadlock(&ours, deadlock);
    let (answer, _) = answer_within(&mut store, &transport, 3, 1).expect("answered at once");
    let Error::Deadlock {
        lock_ts,
        wait_chain,
        ..
    } = mvcc_error(&answer)
    else {
        panic!("{answer:?}")
    };
    assert_eq!(*lock_ts, crate::types::TimeStamp(10));
    assert_eq!(wait_chain.len(), 2, "both stores' waits");
    assert_eq!(
        store.take_detector_calls(),
        vec![DetectorCall::CleanUpWaitFor(ours)],
        "the ended wait is cleaned up on the detector"
    );
    store.txn.check_invariants();
    let counts = store.stats().lock_waits;
    assert_eq!((counts.deadlocks, counts.remote_deadlocks), (1, 1));
}

#[test]
fn a_store_without_the_first_region_is_no_detector() {
    use crate::store::DetectorAnswer;
    let engine = MemEngine::new();
    let bounded = region(2, b"m", b"", vec![peer(2, 1)]);
    bootstrap_region(&engine, &bounded).unwrap();
    let mut other = load(&engine);
    let empty = crate::store::DetectorBatch {
        from_store: 1,
        incarnation: 1,
        seq: 1,
        calls: Vec::new(),
    };
    assert_eq!(
        other.serve_detector(&empty),
        DetectorAnswer::NotDetector { leader: None }
    );
}

/// A wait that ends before the driver took its detect cancels it: the detector hears of
/// neither, so no clean-up can be lost behind a delivered detect.
#[test]
fn a_wait_ended_before_its_detect_left_reports_nothing() {
    let (_engine, mut store, transport) = leading_store();
    t10_holds_a_and_t20_waits_for_it(&mut store, &transport);
    let answers = call_all(&mut store, &transport, 4, pessimistic_rollback(b"a", 10));
    assert!(answers.contains_key(&Token(3)), "the waiter was woken");
    assert!(store.take_detector_calls().is_empty());
    store.txn.check_invariants();
}
