//! Every served raw request of `tikvpb.Tikv`, decoded from arbitrary bytes and sent through
//! the real service (validation, node loop, Raft, store) of a single-store node. Each answer
//! is either an error and nothing written, or what a model of the raw key space answers;
//! after every request the store holds exactly the model's pairs.
#![no_main]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use arbitrary::Arbitrary;
use ferrokv_core::env::{Cf, Direction, KvEngine, Snapshot};
use ferrokv_core::raw::value;
use ferrokv_core::types::KeyRange;
use ferrokv_fuzz::served::{store, Served};
use ferrokv_proto::kvrpcpb::*;
use ferrokv_proto::tikvpb::tikv_server::Tikv;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Arbitrary, Debug)]
struct Call {
    /// Which request type the bytes decode as.
    kind: u8,
    /// Keep the decoded context (usually invalid) instead of the region's real one.
    keep_context: bool,
    bytes: Vec<u8>,
}

/// Set when an answer said the outcome is unknown (the request may or may not have
/// applied, e.g. it timed out on a busy machine): the model then takes the store's pairs.
static AMBIGUOUS: AtomicBool = AtomicBool::new(false);

/// Whether a request failed: a gRPC status, a region error or an error string.
fn failed<T>(
    answer: &Result<tonic::Response<T>, tonic::Status>,
    errors: impl Fn(&T) -> bool,
) -> bool {
    let unknown = |status: &tonic::Status| status.code() == tonic::Code::Unavailable;
    if answer.as_ref().is_err_and(unknown) {
        AMBIGUOUS.store(true, Ordering::Relaxed);
    }
    answer
        .as_ref()
        .map_or(true, |response| errors(response.get_ref()))
}

macro_rules! decode {
    ($type:ty, $call:expr, $served:expr) => {{
        let mut request = <$type>::decode($call.bytes.as_slice()).ok()?;
        if !$call.keep_context {
            request.context = Some($served.context());
        }
        request
    }};
}

fn model_range(model: &Model, start: &[u8], end: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .iter()
        .filter(|(key, _)| key.as_slice() >= start && (end.is_empty() || key.as_slice() < end))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn scan_model(model: &Model, request: &RawScanRequest) -> Vec<KvPair> {
    let mut found = if request.reverse {
        // Reverse: `start_key` is the exclusive upper bound, `end_key` the inclusive lower.
        let mut pairs = model_range(model, &request.end_key, &request.start_key);
        pairs.reverse();
        pairs
    } else {
        model_range(model, &request.start_key, &request.end_key)
    };
    found.truncate(request.limit as usize);
    found
        .into_iter()
        .map(|(key, value)| KvPair {
            key,
            value: if request.key_only { Vec::new() } else { value },
            ..Default::default()
        })
        .collect()
}

/// Sends one call; applies what it did to `model`. None: the bytes were not a request.
fn call(served: &Served, call: &Call, model: &mut Model) -> Option<()> {
    let service = &served.service;
    match call.kind % 11 {
        0 => {
            let request = decode!(RawGetRequest, call, served);
            let key = request.key.clone();
            let answer = served
                .runtime
                .block_on(service.raw_get(tonic::Request::new(request)));
            if !failed(&answer, |r| r.region_error.is_some() || !r.error.is_empty()) {
                let response = answer.expect("ok").into_inner();
                assert_eq!(
                    response.not_found,
                    !model.contains_key(&key),
                    "get: presence"
                );
                if !response.not_found {
                    assert_eq!(response.value, model[&key], "get: value");
                }
            }
        }
        1 => {
            let request = decode!(RawBatchGetRequest, call, served);
            let keys = request.keys.clone();
            let answer = served
                .runtime
                .block_on(service.raw_batch_get(tonic::Request::new(request)));
            if !failed(&answer, |r| r.region_error.is_some()) {
                let pairs = answer.expect("ok").into_inner().pairs;
                let mut expected: Vec<&Vec<u8>> =
                    keys.iter().filter(|k| model.contains_key(*k)).collect();
                expected.sort();
                expected.dedup();
                let mut got: Vec<&Vec<u8>> = pairs.iter().map(|p| &p.key).collect();
                got.sort();
                got.dedup();
                assert_eq!(got, expected, "batch get: keys found");
                for pair in &pairs {
                    assert_eq!(pair.value, model[&pair.key], "batch get: value");
                }
            }
        }
        2 => {
            let request = decode!(RawPutRequest, call, served);
            let (key, value) = (request.key.clone(), request.value.clone());
            let answer = served
                .runtime
                .block_on(service.raw_put(tonic::Request::new(request)));
            if !failed(&answer, |r| r.region_error.is_some() || !r.error.is_empty()) {
                model.insert(key, value);
            }
        }
        3 => {
            let request = decode!(RawBatchPutRequest, call, served);
            let pairs = request.pairs.clone();
            let answer = served
                .runtime
                .block_on(service.raw_batch_put(tonic::Request::new(request)));
            if !failed(&answer, |r| r.region_error.is_some() || !r.error.is_empty()) {
                model.extend(pairs.into_iter().map(|pair| (pair.key, pair.value)));
            }
        }
        4 => {
            let request = decode!(RawDeleteRequest, call, served);
            let key = request.key.clone();
            let answer = served
                .runtime
                .block_on(service.raw_delete(tonic::Request::new(request)));
            if !failed(&answer, |r| r.region_error.is_some() || !r.error.is_empty()) {
                model.remove(&key);
            }
        }
        5 => {
            let request = decode!(RawBatchDeleteRequest, call, served);
            let keys = request.keys.clone();
            let answer = served
                .runtime
                .block_on(service.raw_batch_delete(tonic::Request::new(request)));
            if !failed(&answer, |r| r.region_error.is_some() || !r.error.is_empty()) {
                keys.iter().for_each(|key| drop(model.remove(key)));
            }
        }
        6 => {
            let request = decode!(RawScanRequest, call, served);
            let expected = scan_model(model, &request);
            let answer = served
                .runtime
                .block_on(service.raw_scan(tonic::Request::new(request)));
            if !failed(&answer, |r| r.region_error.is_some()) {
                let kvs = answer.expect("ok").into_inner().kvs;
                assert_eq!(kvs, expected, "scan: pairs");
            }
        }
        7 => {
            let request = decode!(RawBatchScanRequest, call, served);
            let answer = served
                .runtime
                .block_on(service.raw_batch_scan(tonic::Request::new(request)));
            let _ = failed(&answer, |r| r.region_error.is_some());
        }
        8 => {
            let request = decode!(RawDeleteRangeRequest, call, served);
            let (start, end) = (request.start_key.clone(), request.end_key.clone());
            let answer = served
                .runtime
                .block_on(service.raw_delete_range(tonic::Request::new(request)));
            if !failed(&answer, |r| r.region_error.is_some() || !r.error.is_empty()) {
                for (key, _) in model_range(model, &start, &end) {
                    model.remove(&key);
                }
            }
        }
        9 => {
            let request = decode!(RawGetKeyTtlRequest, call, served);
            let key = request.key.clone();
            let answer = served
                .runtime
                .block_on(service.raw_get_key_ttl(tonic::Request::new(request)));
            if !failed(&answer, |r| r.region_error.is_some() || !r.error.is_empty()) {
                let response = answer.expect("ok").into_inner();
                assert_eq!(
                    response.not_found,
                    !model.contains_key(&key),
                    "ttl: presence"
                );
            }
        }
        _ => {
            let request = decode!(RawCasRequest, call, served);
            let before = model.get(&request.key).cloned();
            let (key, value) = (request.key.clone(), request.value.clone());
            let expected_hit = if request.previous_not_exist {
                before.is_none()
            } else {
                before.as_ref() == Some(&request.previous_value)
            };
            let answer = served
                .runtime
                .block_on(service.raw_compare_and_swap(tonic::Request::new(request)));
            if !failed(&answer, |r| r.region_error.is_some() || !r.error.is_empty()) {
                let response = answer.expect("ok").into_inner();
                assert_eq!(response.succeed, expected_hit, "cas: outcome");
                assert_eq!(
                    response.previous_not_exist,
                    before.is_none(),
                    "cas: previous presence"
                );
                if let Some(before) = before {
                    assert_eq!(response.previous_value, before, "cas: previous value");
                }
                if response.succeed {
                    model.insert(key, value);
                }
            }
        }
    }
    Some(())
}

/// The live raw pairs the store holds.
fn stored(served: &Served) -> Model {
    let pairs = served
        .engine
        .snapshot()
        .scan(
            Cf::Raw,
            &KeyRange::all(),
            ferrokv_core::limits::ENGINE_SCAN_KEYS_MAX,
            Direction::Forward,
        )
        .expect("engine reads");
    pairs
        .into_iter()
        .map(|(key, stored)| {
            (
                key,
                value::decode(&stored).expect("stored values decode").value,
            )
        })
        .collect()
}

fn clear(served: &Served) {
    let request = RawDeleteRangeRequest {
        context: Some(served.context()),
        ..Default::default()
    };
    let answer = served.runtime.block_on(
        served
            .service
            .raw_delete_range(tonic::Request::new(request)),
    );
    let response = answer
        .expect("clearing the key space is answered")
        .into_inner();
    assert!(
        response.region_error.is_none() && response.error.is_empty(),
        "clearing failed: {response:?}"
    );
}

fuzz_target!(|calls: Vec<Call>| {
    let served = store();
    clear(served);
    let mut model = Model::new();
    for one in calls.iter().take(16) {
        if call(served, one, &mut model).is_some() {
            if AMBIGUOUS.swap(false, Ordering::Relaxed) {
                model = stored(served);
            }
            assert_eq!(
                stored(served),
                model,
                "the store differs from the model after {one:?}"
            );
        }
    }
});
