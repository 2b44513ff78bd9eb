//! A linearizability checker for groups of registers: Wing & Gong's search with Lowe's
//! memoization, one group at a time (groups are independent objects, see `history`).
//!
//! The model of a group is `GROUP_KEYS` registers, each absent or holding a value. Every
//! operation of the workload is a step of that model: point reads and writes, CAS, atomic
//! batch reads and writes, scan pages (the first `limit` present keys of a key set, in
//! order) and delete-range pieces. Calls whose outcome is unknown may take effect at any
//! time after their invocation, or never: they get an infinite completion time, and unknown
//! reads are dropped. Definite failures are dropped (they had no effect). A search that
//! exceeds its step budget reports `Verdict::Exhausted`, which callers treat as a failure.

use std::collections::{BTreeMap, HashSet};

use crate::history::{Event, History, Op, Outcome, GROUP_KEYS};

/// The checker's answer for one group or a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some total order explains every result.
    Linearizable,
    /// No order explains the results; the group and a description.
    Violation { group: u64, detail: String },
    /// The search budget ran out before an answer.
    Exhausted { group: u64 },
}

/// Search steps allowed per group.
pub const STEPS_PER_GROUP_MAX: u64 = 20_000_000;

/// The registers of one group.
type State = [Option<u64>; GROUP_KEYS as usize];

fn slot(key: u64) -> usize {
    (key % GROUP_KEYS) as usize
}

#[derive(Clone, Debug)]
struct Call {
    op: Op,
    outcome: Outcome,
    invoked: u64,
    completed: u64,
}

fn present(state: &State, keys: &[u64]) -> Vec<(u64, u64)> {
    keys.iter()
        .filter_map(|key| state[slot(*key)].map(|value| (*key, value)))
        .collect()
}

fn apply_writes(state: &State, op: &Op) -> State {
    let mut next = *state;
    match op {
        Op::Put(key, value) => next[slot(*key)] = Some(*value),
        Op::Delete(key) => next[slot(*key)] = None,
        Op::BatchPut(pairs) => pairs.iter().for_each(|(k, v)| next[slot(*k)] = Some(*v)),
        Op::BatchDelete(keys) | Op::DeleteRange(keys) => {
            keys.iter().for_each(|k| next[slot(*k)] = None)
        }
        Op::Cas { key, expected, new } => {
            if state[slot(*key)] == *expected {
                next[slot(*key)] = Some(*new);
            }
        }
        Op::Get(_) | Op::BatchGet(_) | Op::Scan { .. } => {}
    }
    next
}

fn read_matches(state: &State, op: &Op, outcome: &Outcome) -> bool {
    match (op, outcome) {
        (Op::Get(key), Outcome::Read(found)) => *found == state[slot(*key)],
        (Op::BatchGet(keys), Outcome::Pairs(found)) => {
            let mut expected = present(state, keys);
            let mut found = found.clone();
            expected.sort_unstable();
            found.sort_unstable();
            expected == found
        }
        (
            Op::Scan {
                keys,
                limit,
                reverse,
            },
            Outcome::Pairs(found),
        ) => {
            let mut ordered = keys.clone();
            ordered.sort_unstable();
            if *reverse {
                ordered.reverse();
            }
            let mut expected = present(state, &ordered);
            expected.truncate(*limit);
            expected == *found
        }
        _ => false,
    }
}

/// The next state if `call` can take effect in `state`.
fn step(state: &State, call: &Call) -> Option<State> {
    match (&call.op, &call.outcome) {
        (op, outcome) if op.is_read() => read_matches(state, op, outcome).then_some(*state),
        (Op::Cas { key, expected, new }, Outcome::Cas { swapped, found }) => {
            let current = state[slot(*key)];
            let matches = current == *expected;
            let ok = *found == current && *swapped == matches;
            ok.then(|| {
                let mut next = *state;
                if matches {
                    next[slot(*key)] = Some(*new);
                }
                next
            })
        }
        (op, Outcome::Written | Outcome::Unknown) => Some(apply_writes(state, op)),
        _ => None,
    }
}

fn calls_of(events: &[&Event]) -> Vec<Call> {
    events
        .iter()
        .filter(|event| event.outcome != Outcome::Failed)
        .filter(|event| !(event.op.is_read() && event.outcome == Outcome::Unknown))
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

/// Checks one group's calls.
fn check_group(group: u64, calls: &[Call]) -> Verdict {
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
    let mut cache: HashSet<(Bits, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = [None; GROUP_KEYS as usize];
    let mut steps = 0u64;
    let mut cursor = 0usize;
    while stack.len() < calls.len() {
        steps += 1;
        if steps > STEPS_PER_GROUP_MAX {
            return Verdict::Exhausted { group };
        }
        let position = (cursor..events.len())
            .find(|&e| !done.get(events[e].2))
            .expect("unlinearized calls remain");
        let (_, is_return, call) = events[position];
        if !is_return {
            if let Some(next_state) = step(&state, &calls[call]) {
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
                group,
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

/// Checks every group of `history` independently; the first non-linearizable group wins.
pub fn check(history: &History) -> Verdict {
    let mut by_group: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
    for event in &history.events {
        if let Some(group) = event.op.group() {
            by_group.entry(group).or_default().push(event);
        }
    }
    for (group, events) in by_group {
        let verdict = check_group(group, &calls_of(&events));
        if verdict != Verdict::Linearizable {
            return verdict;
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests;
