//! The deadlock detector against a model wait-for graph (edges with their last refresh
//! time), and its wire form: detects, clean-ups, whole-transaction clean-ups, time passing
//! and expiry in any order. The detector reports a deadlock exactly when a path of live
//! edges leads back to the waiter, every chain it reports is such a path, and its edge count
//! after expiry is the model's. Detect requests decoded from arbitrary bytes are refused or
//! taken, never a panic, and answers survive the wire.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use ferrokv_core::store::{DetectorAnswer, DetectorCall};
use ferrokv_core::txn::{DeadlockDetector, DetectError};
use ferrokv_core::types::TimeStamp;
use ferrokv_proto::ferrokv_raftpb::DetectRequest;
use ferrokv_server::detector::{answer_from_wire, answer_to_wire, batch_from_wire};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

const TTL_MS: u64 = 100;

#[derive(Arbitrary, Debug)]
enum Op {
    Detect { txn: u8, wait_for: u8, hash: u8 },
    CleanUpWaitFor { txn: u8, wait_for: u8, hash: u8 },
    CleanUp(u8),
    Advance(u8),
    Expire,
    Wire(Vec<u8>),
}

/// (txn, wait_for, key hash) -> last refresh.
type Model = BTreeMap<(u64, u64, u64), u64>;

fn live(model: &Model, now: u64) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
    model
        .iter()
        .filter(move |(_, touched)| now < *touched + TTL_MS)
        .map(|(edge, _)| *edge)
}

fn reachable(model: &Model, now: u64, from: u64, to: u64) -> bool {
    let mut seen = vec![from];
    let mut stack = vec![from];
    while let Some(node) = stack.pop() {
        for (txn, next, _) in live(model, now) {
            if txn == node && !seen.contains(&next) {
                if next == to {
                    return true;
                }
                seen.push(next);
                stack.push(next);
            }
        }
    }
    false
}

/// One of 8 transactions (timestamps 1..=8): small, so cycles are common.
fn transaction(byte: u8) -> u64 {
    u64::from(byte % 8) + 1
}

/// A wait-for edge among the 8 transactions, on one of 4 keys.
fn edge(txn: u8, wait_for: u8, hash: u8) -> (u64, u64, u64) {
    (transaction(txn), transaction(wait_for), u64::from(hash % 4))
}

fn wire_round_trip(bytes: &[u8]) {
    let Ok(request) = DetectRequest::decode(bytes) else {
        return;
    };
    let Ok(batch) = batch_from_wire(request) else {
        return;
    };
    for call in &batch.calls {
        let edge = match call {
            DetectorCall::Detect(edge) | DetectorCall::CleanUpWaitFor(edge) => edge,
        };
        assert!(
            edge.txn != TimeStamp(0) && edge.wait_for_txn != TimeStamp(0),
            "a zero timestamp passed"
        );
    }
    let answer = DetectorAnswer::Deadlocks(Vec::new());
    let back = answer_from_wire(&answer_to_wire(answer.clone()), batch.calls.len());
    assert_eq!(back, Some(answer));
}

fuzz_target!(|ops: Vec<Op>| {
    let mut detector = DeadlockDetector::new(TTL_MS);
    let mut model = Model::new();
    let mut now = 0u64;
    for op in ops.iter().take(128) {
        match *op {
            Op::Detect {
                txn,
                wait_for,
                hash,
            } => {
                let (txn, wait_for, hash) = edge(txn, wait_for, hash);
                if txn == wait_for {
                    continue;
                }
                let expected = reachable(&model, now, wait_for, txn);
                let key = hash.to_be_bytes();
                match detector.detect(TimeStamp(txn), TimeStamp(wait_for), hash, &key, now) {
                    Ok(()) => {
                        assert!(!expected, "a cycle {txn} -> {wait_for} went unreported");
                        model.insert((txn, wait_for, hash), now);
                    }
                    Err(DetectError::Deadlock(found)) => {
                        assert!(expected, "a deadlock reported without a cycle");
                        let chain = &found.wait_chain;
                        let first = &chain[0];
                        assert_eq!(
                            (first.txn.0, first.wait_for_txn.0, first.key_hash),
                            (txn, wait_for, hash)
                        );
                        for pair in chain.windows(2) {
                            assert_eq!(pair[0].wait_for_txn, pair[1].txn, "the chain is a path");
                        }
                        assert_eq!(
                            chain.last().expect("chain").wait_for_txn.0,
                            txn,
                            "the chain closes"
                        );
                        for edge in &chain[1..] {
                            let touched =
                                model.get(&(edge.txn.0, edge.wait_for_txn.0, edge.key_hash));
                            assert!(
                                touched.is_some_and(|t| now < t + TTL_MS),
                                "a chain edge is not live"
                            );
                        }
                        assert_eq!(
                            found.deadlock_key_hash,
                            chain.last().expect("chain").key_hash
                        );
                    }
                    Err(DetectError::Full) => panic!("a graph of at most 8 transactions is full"),
                }
            }
            Op::CleanUpWaitFor {
                txn,
                wait_for,
                hash,
            } => {
                let (txn, wait_for, hash) = edge(txn, wait_for, hash);
                detector.clean_up_wait_for(TimeStamp(txn), TimeStamp(wait_for), hash);
                model.remove(&(txn, wait_for, hash));
            }
            Op::CleanUp(txn) => {
                let txn = transaction(txn);
                detector.clean_up(TimeStamp(txn));
                model.retain(|(from, _, _), _| *from != txn);
            }
            Op::Advance(ms) => now += u64::from(ms),
            Op::Expire => {
                detector.expire(now);
                model.retain(|_, touched| now < *touched + TTL_MS);
                assert_eq!(detector.edge_count(), model.len(), "edges after expiry");
            }
            Op::Wire(ref bytes) => wire_round_trip(bytes),
        }
    }
});
