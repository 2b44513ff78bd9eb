use proptest::prelude::*;

use super::*;
use crate::history::Event;

fn event(process: u64, op: Op, outcome: Outcome, invoked: u64, completed: u64) -> Event {
    Event {
        process,
        op,
        outcome,
        invoked_ns: invoked,
        completed_ns: completed,
    }
}

fn verdict(events: Vec<Event>) -> Verdict {
    check(&History { events })
}

fn is_violation(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Violation { .. })
}

fn cas(key: u64, expected: Option<u64>, new: u64) -> Op {
    Op::Cas { key, expected, new }
}

#[test]
fn sequential_history_is_linearizable() {
    let history = vec![
        event(1, Op::Put(1, 1), Outcome::Written, 0, 10),
        event(1, Op::Get(1), Outcome::Read(Some(1)), 20, 30),
        event(1, Op::Delete(1), Outcome::Written, 40, 50),
        event(1, Op::Get(1), Outcome::Read(None), 60, 70),
        event(
            1,
            cas(1, None, 5),
            Outcome::Cas {
                swapped: true,
                found: None,
            },
            80,
            90,
        ),
        event(
            1,
            cas(1, Some(4), 6),
            Outcome::Cas {
                swapped: false,
                found: Some(5),
            },
            100,
            110,
        ),
    ];
    assert_eq!(verdict(history), Verdict::Linearizable);
}

#[test]
fn concurrent_reads_may_see_either_side() {
    let history = vec![
        event(1, Op::Put(1, 1), Outcome::Written, 0, 100),
        event(2, Op::Get(1), Outcome::Read(None), 10, 20),
        event(3, Op::Get(1), Outcome::Read(Some(1)), 30, 40),
    ];
    assert_eq!(verdict(history), Verdict::Linearizable);
}

#[test]
fn stale_read_is_rejected() {
    let history = vec![
        event(1, Op::Put(1, 1), Outcome::Written, 0, 10),
        event(1, Op::Put(1, 2), Outcome::Written, 20, 30),
        event(2, Op::Get(1), Outcome::Read(Some(1)), 40, 50),
    ];
    assert!(is_violation(&verdict(history)));
}

#[test]
fn lost_write_is_rejected() {
    let history = vec![
        event(1, Op::Put(1, 1), Outcome::Written, 0, 10),
        event(2, Op::Get(1), Outcome::Read(None), 20, 30),
    ];
    assert!(is_violation(&verdict(history)));
}

#[test]
fn two_cas_winners_from_one_value_are_rejected() {
    let history = vec![
        event(1, Op::Put(1, 1), Outcome::Written, 0, 10),
        event(
            2,
            cas(1, Some(1), 2),
            Outcome::Cas {
                swapped: true,
                found: Some(1),
            },
            20,
            30,
        ),
        event(
            3,
            cas(1, Some(1), 3),
            Outcome::Cas {
                swapped: true,
                found: Some(1),
            },
            21,
            31,
        ),
    ];
    assert!(is_violation(&verdict(history)));
}

#[test]
fn unknown_writes_may_land_late_or_never_but_not_twice() {
    let late = vec![
        event(1, Op::Put(1, 1), Outcome::Unknown, 0, 5),
        event(2, Op::Get(1), Outcome::Read(None), 10, 20),
        event(2, Op::Get(1), Outcome::Read(Some(1)), 30, 40),
    ];
    assert_eq!(verdict(late), Verdict::Linearizable);
    let never = vec![
        event(1, Op::Put(1, 1), Outcome::Unknown, 0, 5),
        event(2, Op::Get(1), Outcome::Read(None), 10, 20),
    ];
    assert_eq!(verdict(never), Verdict::Linearizable);
    let twice = vec![
        event(1, Op::Put(1, 1), Outcome::Unknown, 0, 5),
        event(2, Op::Get(1), Outcome::Read(Some(1)), 10, 20),
        event(3, Op::Put(1, 2), Outcome::Written, 30, 40),
        event(2, Op::Get(1), Outcome::Read(Some(1)), 50, 60),
    ];
    assert!(
        is_violation(&verdict(twice)),
        "a write applies at most once"
    );
}

#[test]
fn an_unknown_write_a_cas_expects_is_kept() {
    // Put(1, 1) is never read back, but an unknown CAS expecting 1 swapped to 2, and 2 was
    // read: only the unknown put explains it. Dropping the put as "never observed" would
    // report a false violation.
    let history = vec![
        event(1, Op::Put(1, 1), Outcome::Unknown, 0, 5),
        event(2, cas(1, Some(1), 2), Outcome::Unknown, 10, 15),
        event(3, Op::Get(1), Outcome::Read(Some(2)), 20, 30),
    ];
    assert_eq!(verdict(history), Verdict::Linearizable);
    // Without the put nothing explains the read.
    let history = vec![
        event(2, cas(1, Some(1), 2), Outcome::Unknown, 10, 15),
        event(3, Op::Get(1), Outcome::Read(Some(2)), 20, 30),
    ];
    assert!(is_violation(&verdict(history)));
}

#[test]
fn failed_writes_have_no_effect() {
    let history = vec![
        event(1, Op::Put(1, 1), Outcome::Failed, 0, 5),
        event(2, Op::Get(1), Outcome::Read(Some(1)), 10, 20),
    ];
    assert!(is_violation(&verdict(history)));
}

#[test]
fn groups_are_checked_independently() {
    let history = vec![
        event(1, Op::Put(5, 9), Outcome::Written, 0, 10),
        event(2, Op::Get(1), Outcome::Read(None), 20, 30),
    ];
    assert_eq!(verdict(history), Verdict::Linearizable);
}

#[test]
fn a_torn_batch_read_is_rejected() {
    // A batch put of two keys is atomic: no read may see one key new and the other old.
    let history = vec![
        event(
            1,
            Op::BatchPut(vec![(0, 1), (1, 1)]),
            Outcome::Written,
            0,
            10,
        ),
        event(
            1,
            Op::BatchPut(vec![(0, 2), (1, 2)]),
            Outcome::Written,
            20,
            30,
        ),
        event(
            2,
            Op::BatchGet(vec![0, 1]),
            Outcome::Pairs(vec![(0, 2), (1, 1)]),
            25,
            35,
        ),
    ];
    assert!(is_violation(&verdict(history)));
    let whole = vec![
        event(
            1,
            Op::BatchPut(vec![(0, 1), (1, 1)]),
            Outcome::Written,
            0,
            10,
        ),
        event(
            1,
            Op::BatchPut(vec![(0, 2), (1, 2)]),
            Outcome::Written,
            20,
            30,
        ),
        event(
            2,
            Op::BatchGet(vec![0, 1]),
            Outcome::Pairs(vec![(0, 1), (1, 1)]),
            25,
            35,
        ),
    ];
    assert_eq!(verdict(whole), Verdict::Linearizable);
}

#[test]
fn scans_see_the_first_present_keys_in_order() {
    let setup = || {
        vec![event(
            1,
            Op::BatchPut(vec![(0, 1), (2, 3), (3, 4)]),
            Outcome::Written,
            0,
            10,
        )]
    };
    let scan = |limit, reverse, found: Vec<(u64, u64)>| {
        let op = Op::Scan {
            keys: vec![0, 1, 2, 3],
            limit,
            reverse,
        };
        event(2, op, Outcome::Pairs(found), 20, 30)
    };
    let mut ok = setup();
    ok.push(scan(2, false, vec![(0, 1), (2, 3)]));
    ok.push(scan(1, true, vec![(3, 4)]));
    assert_eq!(verdict(ok), Verdict::Linearizable);
    let mut skipped = setup();
    skipped.push(scan(2, false, vec![(0, 1), (3, 4)]));
    assert!(
        is_violation(&verdict(skipped)),
        "a scan cannot skip a present key"
    );
    let mut wrong_order = setup();
    wrong_order.push(scan(2, true, vec![(2, 3), (3, 4)]));
    assert!(is_violation(&verdict(wrong_order)));
}

#[test]
fn delete_range_clears_every_key_at_once() {
    let history = vec![
        event(
            1,
            Op::BatchPut(vec![(0, 1), (1, 2)]),
            Outcome::Written,
            0,
            10,
        ),
        event(
            1,
            Op::DeleteRange(vec![0, 1, 2, 3]),
            Outcome::Written,
            20,
            30,
        ),
        event(
            2,
            Op::BatchGet(vec![0, 1]),
            Outcome::Pairs(vec![(1, 2)]),
            40,
            50,
        ),
    ];
    assert!(is_violation(&verdict(history)));
}

// ---- differential check against a brute-force search over orders -----------------------
//
// The brute force sees the history unfiltered: every call except definite failures, with
// unknown calls optional (placed anywhere after their invocation, or never). The search
// under test sees what `calls_of` keeps, so the differential also checks that dropping
// unknown reads and unnoticeable unknown writes never changes the verdict. Values are
// unique per write, as in the workload; reads and CAS expectations name written values (or
// one nobody wrote).

/// An operation shape; `Put` and `Cas` get their unique new values later.
#[derive(Clone, Debug)]
enum Shape {
    Get(u64),
    Put(u64),
    Delete(u64),
    Cas(u64, Option<u8>),
    BatchPut(Vec<u64>),
    Scan(usize, bool),
}

fn small_shape() -> impl Strategy<Value = Shape> {
    let key = 0u64..2;
    prop_oneof![
        key.clone().prop_map(Shape::Get),
        key.clone().prop_map(Shape::Put),
        key.clone().prop_map(Shape::Delete),
        (key.clone(), prop::option::of(any::<u8>())).prop_map(|(k, e)| Shape::Cas(k, e)),
        prop::sample::subsequence(vec![0u64, 1, 2], 1..3).prop_map(Shape::BatchPut),
        (1usize..3, any::<bool>()).prop_map(|(limit, reverse)| Shape::Scan(limit, reverse)),
    ]
}

/// One of the values written to `key` (or, one time in five, a value nobody wrote).
fn some_value(written: &[(u64, u64)], key: u64, roll: u64) -> u64 {
    let values: Vec<u64> = written
        .iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .collect();
    if values.is_empty() || roll.is_multiple_of(5) {
        return 999;
    }
    values[(roll as usize / 5) % values.len()]
}

/// A random outcome for `op`, shaped like a real one.
fn outcome_of(op: &Op, roll: u8, written: &[(u64, u64)], value_roll: u64) -> Outcome {
    let value = |k: u64| some_value(written, k, value_roll.wrapping_add(k * 7));
    match (roll, op) {
        (4, _) | (5, _) => Outcome::Unknown,
        (6, op) if !op.is_read() => Outcome::Failed,
        (_, Op::Get(k)) => Outcome::Read(roll.is_multiple_of(2).then(|| value(*k))),
        (_, Op::Cas { key, .. }) => Outcome::Cas {
            swapped: roll.is_multiple_of(2),
            found: (roll < 2).then(|| value(*key)),
        },
        (_, Op::Scan { limit, .. }) => {
            let n = (roll as usize % 3).min(*limit);
            Outcome::Pairs((0..n as u64).map(|k| (k, value(k))).collect())
        }
        _ => Outcome::Written,
    }
}

/// Turns shapes into a history: unique values for writes, results naming written values.
fn history_of(shapes: &[(Shape, u8, u64, u64, u64)]) -> Vec<Event> {
    let mut written = Vec::new();
    for (i, (shape, ..)) in shapes.iter().enumerate() {
        let base = 100 + 10 * i as u64;
        match shape {
            Shape::Put(k) | Shape::Cas(k, _) => written.push((*k, base)),
            Shape::BatchPut(keys) => {
                written.extend(keys.iter().enumerate().map(|(j, k)| (*k, base + j as u64)))
            }
            _ => {}
        }
    }
    shapes
        .iter()
        .enumerate()
        .map(|(i, (shape, roll, start, length, value_roll))| {
            let base = 100 + 10 * i as u64;
            let op = match shape {
                Shape::Get(k) => Op::Get(*k),
                Shape::Put(k) => Op::Put(*k, base),
                Shape::Delete(k) => Op::Delete(*k),
                Shape::Cas(k, expected) => Op::Cas {
                    key: *k,
                    expected: expected.map(|e| some_value(&written, *k, u64::from(e))),
                    new: base,
                },
                Shape::BatchPut(keys) => Op::BatchPut(
                    keys.iter()
                        .enumerate()
                        .map(|(j, k)| (*k, base + j as u64))
                        .collect(),
                ),
                Shape::Scan(limit, reverse) => Op::Scan {
                    keys: vec![0, 1, 2],
                    limit: *limit,
                    reverse: *reverse,
                },
            };
            let outcome = outcome_of(&op, *roll, &written, *value_roll);
            event(i as u64, op, outcome, *start, start + length)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn search_agrees_with_brute_force(
        shapes in prop::collection::vec(
            (small_shape(), 0u8..7, 0u64..40, 1u64..30, any::<u64>()),
            1..7,
        )
    ) {
        let events = history_of(&shapes);
        let expected = super::brute_force::is_linearizable(&events);
        let found = verdict(events.clone()) == Verdict::Linearizable;
        prop_assert_eq!(found, expected, "{:?}", events);
    }
}

#[test]
fn an_observed_unknown_write_must_land_before_its_first_observer_returns() {
    let events = [
        event(1, Op::Put(1, 7), Outcome::Unknown, 0, 5),
        event(2, Op::Get(1), Outcome::Read(Some(7)), 40, 50),
        event(
            3,
            Op::BatchGet(vec![1]),
            Outcome::Pairs(vec![(1, 7)]),
            20,
            30,
        ),
        event(4, Op::Put(2, 8), Outcome::Unknown, 10, 15),
        event(4, cas(2, Some(9), 10), Outcome::Unknown, 60, 70),
    ];
    let refs: Vec<&Event> = events.iter().collect();
    let calls = calls_of(&refs);
    let window = |op: &Op| calls.iter().find(|c| &c.op == op).map(|c| c.completed);
    assert_eq!(
        window(&Op::Put(1, 7)),
        Some(30),
        "ends at the earliest observer's return"
    );
    assert_eq!(
        window(&Op::Put(2, 8)),
        None,
        "an unseen unknown write is dropped"
    );
    // The unknown CAS wrote 10, which no call saw: dropped like any unseen write.
    assert_eq!(
        window(&cas(2, Some(9), 10)),
        None,
        "its new value is unseen too"
    );
}
