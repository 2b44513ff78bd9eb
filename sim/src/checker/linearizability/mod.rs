//! A linearizability checker for groups of registers: Wing & Gong's search with Lowe's
//! memoization, one group at a time (groups are independent objects, see `history`).
//!
//! The model of a group is `GROUP_KEYS` registers, each absent or holding a value. Every
//! operation of the workload is a step of that model: point reads and writes, CAS, atomic
//! batch reads and writes, scan pages (the first `limit` present keys of a key set, in
//! order) and delete-range pieces. Calls whose outcome is unknown may take effect at any
//! time after their invocation, or never: they get an infinite completion time, and unknown
//! reads are dropped. Definite failures are dropped (they had no effect), and so are unknown
//! writes that no call could have noticed (see `calls_of`). A search that exceeds its step
//! budget reports `Verdict::Exhausted`, which callers treat as a failure.

use std::collections::{BTreeMap, HashMap, HashSet};

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

/// Search steps allowed per group (about 10 s of checking per 100 M steps in release; seeds
/// 114 and 162 of a 256 x 5 min sweep needed more than 50 M).
pub const STEPS_PER_GROUP_MAX: u64 = 400_000_000;

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

/// Every value some call could have noticed: read back, listed by a scan or batch read,
/// found by a CAS, or named as a CAS's expected value. The last matters even when no result
/// shows the value: a CAS that expects `v` swaps only if `v` is present, so an unknown CAS
/// whose new value was seen depends on the (perhaps unknown) write of `v` having landed.
fn observed_values(events: &[&Event]) -> HashSet<u64> {
    let mut seen = HashSet::new();
    for event in events {
        if let Op::Cas {
            expected: Some(value),
            ..
        } = &event.op
        {
            seen.insert(*value);
        }
        match &event.outcome {
            Outcome::Read(Some(value)) => {
                seen.insert(*value);
            }
            Outcome::Pairs(pairs) => seen.extend(pairs.iter().map(|(_, value)| *value)),
            Outcome::Cas {
                found: Some(value), ..
            } => {
                seen.insert(*value);
            }
            _ => {}
        }
    }
    seen
}

/// For each value some definite call's result shows (a read, a scan page or batch read, a
/// CAS's found value), the earliest completion among those calls.
fn first_seen(events: &[&Event]) -> HashMap<u64, u64> {
    let mut first: HashMap<u64, u64> = HashMap::new();
    for event in events {
        let shown: Vec<u64> = match &event.outcome {
            Outcome::Read(Some(value)) => vec![*value],
            Outcome::Pairs(pairs) => pairs.iter().map(|(_, value)| *value).collect(),
            Outcome::Cas {
                found: Some(value), ..
            } => vec![*value],
            _ => Vec::new(),
        };
        for value in shown {
            let at = first.entry(value).or_insert(u64::MAX);
            *at = (*at).min(event.completed_ns);
        }
    }
    first
}

/// The values an unknown write could leave behind (None for a write whose effect is an
/// absence, which no unique value identifies).
fn written_values(op: &Op) -> Option<Vec<u64>> {
    match op {
        Op::Put(_, value) => Some(vec![*value]),
        Op::BatchPut(pairs) => Some(pairs.iter().map(|(_, value)| *value).collect()),
        Op::Cas { new, .. } => Some(vec![*new]),
        _ => None,
    }
}

/// The calls the search must place. Dropped: definite failures (no effect), reads with an
/// unknown outcome (no result to explain), and unknown writes whose values no call could
/// have noticed (`observed_values`: no read, scan page, batch read or CAS result shows
/// them, and no CAS expects them). The last is exact, not a heuristic, because values are
/// unique. Take a linearization that applies such a write W and remove W: until the next
/// write of each of its keys, those keys hold older values instead of W's. No definite call
/// in that window depended on them (a read, scan page or batch read that covered them, or a
/// definite CAS on them, would have returned W's value). An unknown CAS on them could now
/// swap where it was a no-op before (it did not expect W's value, or W would be kept), so
/// move it to the end of the order, where an unknown call may always go. What is left
/// linearizes the rest. Without the drop the search would try every subset of the unknown
/// writes.
///
/// An unknown write that is kept gets a return time: the earliest completion of a definite
/// call whose result shows one of its values. That call saw the value, only this write
/// writes it (values are unique), so every linearization puts the write before that call's
/// return; the window removes only orders that were invalid anyway. Without it an unknown
/// write stays open to the end of the history, and the search tries it at every point.
fn calls_of(events: &[&Event]) -> Vec<Call> {
    let observed = observed_values(events);
    let first_seen = first_seen(events);
    events
        .iter()
        .filter(|event| event.outcome != Outcome::Failed)
        .filter(|event| !(event.op.is_read() && event.outcome == Outcome::Unknown))
        .filter(|event| {
            let unseen = written_values(&event.op)
                .is_some_and(|values| values.iter().all(|v| !observed.contains(v)));
            !(event.outcome == Outcome::Unknown && unseen)
        })
        .map(|event| Call {
            op: event.op.clone(),
            outcome: event.outcome.clone(),
            invoked: event.invoked_ns,
            completed: if event.outcome == Outcome::Unknown {
                written_values(&event.op)
                    .into_iter()
                    .flatten()
                    .filter_map(|value| first_seen.get(&value).copied())
                    .min()
                    .unwrap_or(u64::MAX)
                    .max(event.invoked_ns)
            } else {
                event.completed_ns
            },
        })
        .collect()
}

/// The time-ordered list of invocations and returns, with O(1) removal and re-insertion
/// of a call's two entries (Porcupine's "lift"). Index 0 is the head sentinel.
struct Entries {
    call: Vec<usize>,
    is_return: Vec<bool>,
    prev: Vec<usize>,
    next: Vec<usize>,
    /// The entry of each call's invocation and return.
    of_call: Vec<(usize, usize)>,
}

const END: usize = usize::MAX;

impl Entries {
    fn new(calls: &[Call]) -> Entries {
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(calls.len() * 2);
        for (i, call) in calls.iter().enumerate() {
            order.push((call.invoked, false, i));
            order.push((call.completed, true, i));
        }
        // Invocations sort before returns at equal times: touching calls are concurrent.
        order.sort();
        let n = order.len() + 1;
        let mut entries = Entries {
            call: vec![usize::MAX; n],
            is_return: vec![false; n],
            prev: vec![END; n],
            next: vec![END; n],
            of_call: vec![(0, 0); calls.len()],
        };
        for (position, &(_, is_return, call)) in order.iter().enumerate() {
            let node = position + 1;
            entries.call[node] = call;
            entries.is_return[node] = is_return;
            entries.prev[node] = node - 1;
            entries.next[node - 1] = node;
            let slot = &mut entries.of_call[call];
            if is_return {
                slot.1 = node;
            } else {
                slot.0 = node;
            }
        }
        entries
    }

    fn first(&self) -> usize {
        self.next[0]
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != END {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != END {
            self.prev[next] = node;
        }
    }

    /// Removes a call's invocation and return from the list.
    fn lift(&mut self, call: usize) {
        let (invoke, ret) = self.of_call[call];
        self.unlink(invoke);
        self.unlink(ret);
    }

    /// Puts them back (in the reverse order of `lift`).
    fn unlift(&mut self, call: usize) {
        let (invoke, ret) = self.of_call[call];
        self.relink(ret);
        self.relink(invoke);
    }
}

/// A per-call random 128-bit tag; the set of linearized calls is the xor of its tags
/// (Zobrist hashing), so the memo key is updated in O(1).
fn tag(call: usize) -> u128 {
    let mut x = (call as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut mix = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (u128::from(mix()) << 64) | u128::from(mix())
}

/// Checks one group's calls (Wing & Gong with Lowe's memo, over Porcupine's entry list).
fn check_group(group: u64, calls: &[Call]) -> Verdict {
    let mut entries = Entries::new(calls);
    let tags: Vec<u128> = (0..calls.len()).map(tag).collect();
    let mut linearized: u128 = 0;
    let mut cache: HashSet<(u128, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = [None; GROUP_KEYS as usize];
    let mut steps = 0u64;
    // The return that stopped the deepest partial linearization: the most useful culprit.
    let mut deepest: (usize, usize) = (0, usize::MAX);
    let mut node = entries.first();
    while entries.first() != END {
        steps += 1;
        if steps > STEPS_PER_GROUP_MAX {
            return Verdict::Exhausted { group };
        }
        assert!(node != END, "a return entry always ends the scan first");
        let call = entries.call[node];
        if !entries.is_return[node] {
            if let Some(next_state) = step(&state, &calls[call]) {
                let lifted = linearized ^ tags[call];
                if cache.insert((lifted, next_state)) {
                    stack.push((call, state));
                    linearized = lifted;
                    state = next_state;
                    entries.lift(call);
                    node = entries.first();
                    continue;
                }
            }
            node = entries.next[node];
            continue;
        }
        // A call returned before any linearization of it was possible here: backtrack.
        if stack.len() >= deepest.0 {
            deepest = (stack.len(), call);
        }
        let Some((undone, previous)) = stack.pop() else {
            let culprit = if deepest.1 == usize::MAX {
                call
            } else {
                deepest.1
            };
            return Verdict::Violation {
                group,
                detail: format!(
                    "{} (after {} calls linearized at best)",
                    describe(calls, culprit),
                    deepest.0
                ),
            };
        };
        linearized ^= tags[undone];
        state = previous;
        entries.unlift(undone);
        node = entries.next[entries.of_call[undone].0];
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

pub mod brute_force;

#[cfg(test)]
mod tests;
