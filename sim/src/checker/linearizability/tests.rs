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

fn brute_force(calls: &[Call]) -> bool {
    fn search(calls: &[Call], done: &mut Vec<bool>, state: State) -> bool {
        if done
            .iter()
            .zip(calls)
            .all(|(d, c)| *d || c.completed == u64::MAX)
        {
            return true;
        }
        for i in 0..calls.len() {
            if done[i] {
                continue;
            }
            // `i` may go next only if no pending call finished before it was invoked.
            let blocked = (0..calls.len())
                .any(|j| !done[j] && j != i && calls[j].completed < calls[i].invoked);
            if blocked {
                continue;
            }
            if let Some(next) = step(&state, &calls[i]) {
                done[i] = true;
                if search(calls, done, next) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    let mut done = vec![false; calls.len()];
    search(calls, &mut done, [None; GROUP_KEYS as usize])
}

fn small_op() -> impl Strategy<Value = (Op, u8)> {
    let key = 0u64..3;
    let value = 1u64..4;
    prop_oneof![
        (key.clone(), 0u8..5).prop_map(|(k, r)| (Op::Get(k), r)),
        (key.clone(), value.clone()).prop_map(|(k, v)| (Op::Put(k, v), 0)),
        key.clone().prop_map(|k| (Op::Delete(k), 0)),
        (
            key.clone(),
            prop::option::of(value.clone()),
            value.clone(),
            0u8..5
        )
            .prop_map(|(k, e, n, r)| (
                Op::Cas {
                    key: k,
                    expected: e,
                    new: n
                },
                r
            )),
        (1usize..3, any::<bool>(), 0u8..5).prop_map(|(limit, reverse, r)| {
            (
                Op::Scan {
                    keys: vec![0, 1, 2],
                    limit,
                    reverse,
                },
                r,
            )
        }),
    ]
}

/// A random outcome for `op`, shaped like a real one.
fn outcome_of(op: &Op, roll: u8, value_roll: u64) -> Outcome {
    if roll == 4 {
        return Outcome::Unknown;
    }
    match op {
        Op::Get(_) => Outcome::Read(roll.is_multiple_of(2).then_some(1 + value_roll % 3)),
        Op::Cas { .. } => Outcome::Cas {
            swapped: roll.is_multiple_of(2),
            found: (roll < 2).then_some(1 + value_roll % 3),
        },
        Op::Scan { limit, .. } => {
            let n = (roll as usize % 3).min(*limit);
            Outcome::Pairs(
                (0..n as u64)
                    .map(|k| (k, 1 + (value_roll + k) % 3))
                    .collect(),
            )
        }
        _ => Outcome::Written,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn search_agrees_with_brute_force(
        ops in prop::collection::vec((small_op(), 0u64..40, 1u64..30, 0u64..9), 1..7)
    ) {
        let events: Vec<Event> = ops
            .iter()
            .enumerate()
            .map(|(i, ((op, roll), start, length, value_roll))| {
                event(i as u64, op.clone(), outcome_of(op, *roll, *value_roll), *start, start + length)
            })
            .collect();
        let refs: Vec<&Event> = events.iter().collect();
        let calls = calls_of(&refs);
        let expected = brute_force(&calls);
        let found = check_group(0, &calls) == Verdict::Linearizable;
        prop_assert_eq!(found, expected, "{:?}", events);
    }
}
