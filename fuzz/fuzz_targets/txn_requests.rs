//! Every served transactional request of `tikvpb.Tikv` (reads, prewrite, commit, rollback,
//! cleanup, lock resolution, pessimistic locks, heartbeats, GC, delete range), decoded from
//! arbitrary bytes and sent through the real service of a single-store node. Nothing panics;
//! a request refused with a gRPC status or a region error writes nothing; and whatever the
//! transactional column families hold afterwards decodes (every key and every lock and
//! write record), so no request can leave a record a later reader would choke on.
#![no_main]

use arbitrary::Arbitrary;
use ferrokv_core::env::{Cf, Direction, KvEngine, Snapshot};
use ferrokv_core::mvcc::keys::{decode_lock_key, decode_version_key};
use ferrokv_core::mvcc::{Lock, Write};
use ferrokv_core::types::KeyRange;
use ferrokv_fuzz::served::{store, Served};
use ferrokv_proto::kvrpcpb::*;
use ferrokv_proto::tikvpb::tikv_server::Tikv;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

const TXN_CFS: [Cf; 3] = [Cf::Default, Cf::Lock, Cf::Write];

#[derive(Arbitrary, Debug)]
struct Call {
    kind: u8,
    keep_context: bool,
    bytes: Vec<u8>,
}

type Pairs = Vec<(Cf, Vec<u8>, Vec<u8>)>;

fn txn_contents(served: &Served) -> Pairs {
    let view = served.engine.snapshot();
    let mut pairs = Pairs::new();
    for cf in TXN_CFS {
        let limit = ferrokv_core::limits::ENGINE_SCAN_KEYS_MAX;
        let found = view
            .scan(cf, &KeyRange::all(), limit, Direction::Forward)
            .expect("reads");
        pairs.extend(found.into_iter().map(|(key, value)| (cf, key, value)));
    }
    pairs
}

fn check_records(pairs: &Pairs) {
    for (cf, key, value) in pairs {
        match cf {
            Cf::Lock => {
                decode_lock_key(key).expect("lock keys decode");
                Lock::decode(value).expect("locks decode");
            }
            Cf::Write => {
                decode_version_key(key).expect("write keys decode");
                Write::decode(value).expect("write records decode");
            }
            _ => drop(decode_version_key(key).expect("value keys decode")),
        }
    }
}

/// Decodes `call` as request type `$type`, sends it with `$method`, and tells whether it
/// was refused with a status or a region error.
macro_rules! send {
    ($served:expr, $call:expr, $type:ty, $method:ident) => {{
        let Ok(mut request) = <$type>::decode($call.bytes.as_slice()) else {
            return None;
        };
        if !$call.keep_context {
            request.context = Some($served.context());
        }
        let answer = $served
            .runtime
            .block_on($served.service.$method(tonic::Request::new(request)));
        Some(answer.map_or(true, |response| response.get_ref().region_error.is_some()))
    }};
}

/// Sends one call; Some(refused) if the bytes were a request.
fn call(served: &Served, call: &Call) -> Option<bool> {
    match call.kind % 17 {
        0 => send!(served, call, GetRequest, kv_get),
        1 => send!(served, call, BatchGetRequest, kv_batch_get),
        2 => send!(served, call, ScanRequest, kv_scan),
        3 => send!(served, call, ScanLockRequest, kv_scan_lock),
        4 => send!(served, call, PrewriteRequest, kv_prewrite),
        5 => send!(served, call, CommitRequest, kv_commit),
        6 => send!(served, call, BatchRollbackRequest, kv_batch_rollback),
        7 => send!(served, call, CleanupRequest, kv_cleanup),
        8 => send!(served, call, CheckTxnStatusRequest, kv_check_txn_status),
        9 => send!(
            served,
            call,
            CheckSecondaryLocksRequest,
            kv_check_secondary_locks
        ),
        10 => send!(served, call, TxnHeartBeatRequest, kv_txn_heart_beat),
        11 => {
            let Ok(mut request) = PessimisticLockRequest::decode(call.bytes.as_slice()) else {
                return None;
            };
            // Never wait on a lock: the harness runs one request at a time, so nobody would
            // release it and the input would only time out.
            request.wait_timeout = -1;
            if !call.keep_context {
                request.context = Some(served.context());
            }
            let answer = served.runtime.block_on(
                served
                    .service
                    .kv_pessimistic_lock(tonic::Request::new(request)),
            );
            Some(answer.map_or(true, |response| response.get_ref().region_error.is_some()))
        }
        12 => send!(
            served,
            call,
            PessimisticRollbackRequest,
            kv_pessimistic_rollback
        ),
        13 => send!(served, call, ResolveLockRequest, kv_resolve_lock),
        14 => send!(served, call, GcRequest, kv_gc),
        15 => send!(served, call, DeleteRangeRequest, kv_delete_range),
        _ => send!(served, call, BatchGetRequest, kv_batch_get),
    }
}

fn clear(served: &Served) {
    let request = DeleteRangeRequest {
        context: Some(served.context()),
        end_key: vec![0xff; 32],
        ..Default::default()
    };
    let answer = served
        .runtime
        .block_on(served.service.kv_delete_range(tonic::Request::new(request)));
    let response = answer.expect("clearing is answered").into_inner();
    assert!(
        response.region_error.is_none() && response.error.is_empty(),
        "clearing failed: {response:?}"
    );
}

fuzz_target!(|calls: Vec<Call>| {
    let served = store();
    clear(served);
    for one in calls.iter().take(12) {
        let before = txn_contents(served);
        let Some(refused) = call(served, one) else {
            continue;
        };
        let after = txn_contents(served);
        if refused {
            assert_eq!(before, after, "a refused request wrote: {one:?}");
        }
        check_records(&after);
    }
});
