//! A per-key linearizability checker for registers with get, put, delete and
//! compare-and-swap: Wing & Gong's search with Lowe's memoization, split by key
//! (P-compositionality, as Porcupine does).
//!
//! Calls whose outcome is unknown may take effect at any time after their invocation, or
//! never: they get an infinite completion time and match any result. Definite failures
//! are dropped (they had no effect). A search that exceeds its step budget reports
//! `Verdict::Exhausted`, which callers must treat as a failure to investigate.

use std::collections::{BTreeMap, HashSet};

use crate::history::{Event, History, Op, Outcome};

/// The checker's answer for one key or a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some total order explains every result.
    Linearizable,
    /// No order explains the results; the key and a description.
    Violation { key: u64, detail: String },
    /// The search budget ran out before an answer.
    Exhausted { key: u64 },
}

/// Search steps allowed per key.
pub const STEPS_PER_KEY_MAX: u64 = 5_000_000;

#[derive(Clone, Debug)]
struct Call {
    op: Op,
    outcome: Outcome,
    invoked: u64,
    completed: u64,
}

/// The register model: returns the next state if `call` can take effect in `state`.
fn step(state: Option<u64>, call: &Call) -> Option<Option<u64>> {
    let unknown = call.outcome == Outcome::Unknown;
    match (&call.op, &call.outcome) {
        (Op::Get, Outcome::Read(found)) => (*found == state).then_some(state),
        (Op::Get, _) => Some(state),
        (Op::Put(value), _) => Some(Some(*value)),
        (Op::Delete, _) => Some(None),
        (Op::Cas { expected, new }, _) if unknown => Some(if state == *expected {
            Some(*new)
        } else {
            state
        }),
        (Op::Cas { expected, new }, Outcome::Cas { swapped, found }) => {
            let matches = state == *expected;
            (*found == state && *swapped == matches).then_some(if matches {
                Some(*new)
            } else {
                state
            })
        }
        _ => None,
    }
}

fn calls_of(events: &[&Event]) -> Vec<Call> {
    events
        .iter()
        .filter(|event| event.outcome != Outcome::Failed)
        .filter(|event| !(event.op == Op::Get && event.outcome == Outcome::Unknown))
        .map(|event| Call {
            op: event.op.clone(),
            outcome: event.outcome.clone(),
            invoked: event.invoked_ns,
            completed: if event.outcome == Outcome::Unknown {
                u64::MAX
            } else {
                event.completed_ns
            },
        })
        .collect()
}

/// A fixed-size bit set over call indexes.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// Checks one key's calls.
fn check_key(key: u64, calls: &[Call]) -> Verdict {
    // Events ordered by time: (time, is_return, call). Invocations sort before returns at
    // equal times, so touching calls count as concurrent.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(calls.len() * 2);
    for (i, call) in calls.iter().enumerate() {
        events.push((call.invoked, false, i));
        events.push((call.completed, true, i));
    }
    events.sort();
    let mut invoke_position = vec![0usize; calls.len()];
    for (position, &(_, is_return, call)) in events.iter().enumerate() {
        if !is_return {
            invoke_position[call] = position;
        }
    }
    let mut done = Bits::new(calls.len());
    let mut cache: HashSet<(Bits, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    let mut steps = 0u64;
    let mut cursor = 0usize;
    let total = calls.len();
    while stack.len() < total {
        steps += 1;
        if steps > STEPS_PER_KEY_MAX {
            return Verdict::Exhausted { key };
        }
        let next = (cursor..events.len()).find(|&e| !done.get(events[e].2));
        let Some(position) = next else {
            unreachable!("unlinearized calls remain")
        };
        let (_, is_return, call) = events[position];
        if !is_return {
            if let Some(next_state) = step(state, &calls[call]) {
                let mut lifted = done.clone();
                lifted.set(call);
                if cache.insert((lifted.clone(), next_state)) {
                    stack.push((call, state));
                    done = lifted;
                    state = next_state;
                    cursor = 0;
                    continue;
                }
            }
            cursor = position + 1;
            continue;
        }
        // A call returned before any linearization of it was possible here: backtrack.
        let Some((undone, previous)) = stack.pop() else {
            return Verdict::Violation {
                key,
                detail: describe(calls, call),
            };
        };
        done.clear(undone);
        state = previous;
        cursor = invoke_position[undone] + 1;
    }
    Verdict::Linearizable
}

fn describe(calls: &[Call], call: usize) -> String {
    let c = &calls[call];
    format!(
        "no linearization reaches {:?} -> {:?} (invoked {} ns, completed {} ns)",
        c.op, c.outcome, c.invoked, c.completed
    )
}

/// Checks every key of `history` independently; the first non-linearizable key wins.
pub fn check(history: &History) -> Verdict {
    let mut by_key: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
    for event in &history.events {
        by_key.entry(event.key).or_default().push(event);
    }
    for (key, events) in by_key {
        let verdict = check_key(key, &calls_of(&events));
        if verdict != Verdict::Linearizable {
            return verdict;
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(process: u64, op: Op, outcome: Outcome, invoked: u64, completed: u64) -> Event {
        Event {
            process,
            key: 1,
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
        matches!(verdict, Verdict::Violation { key: 1, .. })
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let history = vec![
            event(1, Op::Put(1), Outcome::Written, 0, 10),
            event(1, Op::Get, Outcome::Read(Some(1)), 20, 30),
            event(1, Op::Delete, Outcome::Written, 40, 50),
            event(1, Op::Get, Outcome::Read(None), 60, 70),
            event(
                1,
                Op::Cas {
                    expected: None,
                    new: 5,
                },
                Outcome::Cas {
                    swapped: true,
                    found: None,
                },
                80,
                90,
            ),
            event(
                1,
                Op::Cas {
                    expected: Some(4),
                    new: 6,
                },
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
            event(1, Op::Put(1), Outcome::Written, 0, 100),
            event(2, Op::Get, Outcome::Read(None), 10, 20),
            event(3, Op::Get, Outcome::Read(Some(1)), 30, 40),
        ];
        assert_eq!(verdict(history), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_is_rejected() {
        let history = vec![
            event(1, Op::Put(1), Outcome::Written, 0, 10),
            event(1, Op::Put(2), Outcome::Written, 20, 30),
            event(2, Op::Get, Outcome::Read(Some(1)), 40, 50),
        ];
        assert!(is_violation(&verdict(history)));
    }

    #[test]
    fn lost_write_is_rejected() {
        let history = vec![
            event(1, Op::Put(1), Outcome::Written, 0, 10),
            event(2, Op::Get, Outcome::Read(None), 20, 30),
        ];
        assert!(is_violation(&verdict(history)));
    }

    #[test]
    fn two_cas_winners_from_one_value_are_rejected() {
        let history = vec![
            event(1, Op::Put(1), Outcome::Written, 0, 10),
            event(
                2,
                Op::Cas {
                    expected: Some(1),
                    new: 2,
                },
                Outcome::Cas {
                    swapped: true,
                    found: Some(1),
                },
                20,
                30,
            ),
            event(
                3,
                Op::Cas {
                    expected: Some(1),
                    new: 3,
                },
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
    fn unknown_writes_may_land_late_or_never() {
        let late = vec![
            event(1, Op::Put(1), Outcome::Unknown, 0, 5),
            event(2, Op::Get, Outcome::Read(None), 10, 20),
            event(2, Op::Get, Outcome::Read(Some(1)), 30, 40),
        ];
        assert_eq!(verdict(late), Verdict::Linearizable);
        let never = vec![
            event(1, Op::Put(1), Outcome::Unknown, 0, 5),
            event(2, Op::Get, Outcome::Read(None), 10, 20),
        ];
        assert_eq!(verdict(never), Verdict::Linearizable);
        let flicker = vec![
            event(1, Op::Put(1), Outcome::Unknown, 0, 5),
            event(2, Op::Get, Outcome::Read(Some(1)), 10, 20),
            event(2, Op::Get, Outcome::Read(None), 30, 40),
        ];
        assert!(
            is_violation(&verdict(flicker)),
            "a write cannot be undone without a delete"
        );
    }

    #[test]
    fn failed_writes_have_no_effect() {
        let history = vec![
            event(1, Op::Put(1), Outcome::Failed, 0, 5),
            event(2, Op::Get, Outcome::Read(Some(1)), 10, 20),
        ];
        assert!(is_violation(&verdict(history)));
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut other = event(1, Op::Put(9), Outcome::Written, 0, 10);
        other.key = 2;
        let history = vec![other, event(2, Op::Get, Outcome::Read(None), 20, 30)];
        assert_eq!(verdict(history), Verdict::Linearizable);
    }
}
