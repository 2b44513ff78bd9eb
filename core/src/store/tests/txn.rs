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
