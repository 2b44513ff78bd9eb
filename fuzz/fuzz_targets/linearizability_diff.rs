//! The linearizability checker against a brute force that tries every order, on small
//! histories of one key group whose shape the fuzzer chooses: gets, puts, deletes, CAS,
//! batch puts and scans, with definite, failed and unknown outcomes, overlapping in time,
//! and results naming values that were written (or one nobody wrote). The two verdicts agree.
#![no_main]

use arbitrary::Arbitrary;
use ferrokv_sim::checker::linearizability::{brute_force, check, Verdict};
use ferrokv_sim::history::{Event, History, Op, Outcome};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Shape {
    Get(u8),
    Put(u8),
    Delete(u8),
    Cas(u8, Option<u8>),
    BatchPut(u8),
    Scan(u8, bool),
}

#[derive(Arbitrary, Debug)]
struct Call {
    shape: Shape,
    /// 0: unknown, 1: failed, otherwise a result built from `pick`.
    outcome: u8,
    pick: u8,
    start: u8,
    length: u8,
}

const KEYS: u64 = 3;

/// One of the values written to `key`, or 999 (written by nobody) when `pick` says so.
fn value_of(written: &[(u64, u64)], key: u64, pick: u8) -> u64 {
    let values: Vec<u64> = written
        .iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .collect();
    if values.is_empty() || pick % 5 == 0 {
        return 999;
    }
    values[usize::from(pick / 5) % values.len()]
}

fn op_of(shape: &Shape, base: u64, written: &[(u64, u64)]) -> Op {
    let key = |k: &u8| u64::from(*k) % KEYS;
    match shape {
        Shape::Get(k) => Op::Get(key(k)),
        Shape::Put(k) => Op::Put(key(k), base),
        Shape::Delete(k) => Op::Delete(key(k)),
        Shape::Cas(k, expected) => Op::Cas {
            key: key(k),
            expected: expected.map(|pick| value_of(written, key(k), pick)),
            new: base,
        },
        Shape::BatchPut(mask) => {
            let keys = (0..KEYS).filter(|k| mask >> k & 1 == 1 || u64::from(*mask) % KEYS == *k);
            Op::BatchPut(
                keys.enumerate()
                    .map(|(j, k)| (k, base + j as u64))
                    .collect(),
            )
        }
        Shape::Scan(limit, reverse) => Op::Scan {
            keys: (0..KEYS).collect(),
            limit: 1 + usize::from(*limit) % 3,
            reverse: *reverse,
        },
    }
}

fn outcome_of(op: &Op, call: &Call, written: &[(u64, u64)]) -> Outcome {
    let pick = call.pick;
    match (call.outcome % 8, op) {
        (0, _) => Outcome::Unknown,
        (1, op) if !op.is_read() => Outcome::Failed,
        (_, Op::Get(k)) => Outcome::Read((pick % 3 != 0).then(|| value_of(written, *k, pick))),
        (_, Op::Cas { key, .. }) => Outcome::Cas {
            swapped: pick % 2 == 0,
            found: (pick % 3 != 0).then(|| value_of(written, *key, pick / 3)),
        },
        (_, Op::Scan { limit, reverse, .. }) => {
            let mut keys: Vec<u64> = (0..KEYS).filter(|k| pick >> k & 1 == 1).collect();
            if *reverse {
                keys.reverse();
            }
            keys.truncate(*limit);
            Outcome::Pairs(
                keys.into_iter()
                    .map(|k| (k, value_of(written, k, pick.rotate_left(k as u32))))
                    .collect(),
            )
        }
        _ => Outcome::Written,
    }
}

fn history(calls: &[Call]) -> Vec<Event> {
    let base = |i: usize| 100 + 10 * i as u64;
    let mut written = Vec::new();
    let ops: Vec<Op> = calls
        .iter()
        .enumerate()
        .map(|(i, call)| op_of(&call.shape, base(i), &[]))
        .collect();
    for op in &ops {
        match op {
            Op::Put(k, v) | Op::Cas { key: k, new: v, .. } => written.push((*k, *v)),
            Op::BatchPut(pairs) => written.extend(pairs.iter().copied()),
            _ => {}
        }
    }
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            // Expected values of CAS name written values, known only now.
            let op = op_of(&call.shape, base(i), &written);
            let outcome = outcome_of(&op, call, &written);
            let invoked_ns = u64::from(call.start);
            Event {
                process: i as u64,
                op,
                outcome,
                invoked_ns,
                completed_ns: invoked_ns + 1 + u64::from(call.length),
            }
        })
        .collect()
}

fuzz_target!(|calls: Vec<Call>| {
    if calls.is_empty() || calls.len() > brute_force::CALLS_MAX - 1 {
        return;
    }
    let events = history(&calls);
    let expected = brute_force::is_linearizable(&events);
    match check(&History {
        events: events.clone(),
    }) {
        Verdict::Linearizable => assert!(
            expected,
            "checker accepts a non-linearizable history: {events:?}"
        ),
        Verdict::Violation { .. } => assert!(
            !expected,
            "checker rejects a linearizable history: {events:?}"
        ),
        Verdict::Exhausted { .. } => {}
    }
});
