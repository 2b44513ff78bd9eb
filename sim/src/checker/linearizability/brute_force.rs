//! A brute-force linearizability check, for differential testing of `check` (the unit
//! tests' proptest and the `linearizability_diff` fuzz target): it tries every order of
//! every call, so it is exact and only usable on a handful of calls.
//!
//! It sees the history unfiltered: every call except definite failures, with unknown calls
//! optional (placed anywhere after their invocation, or never). `check` sees what
//! `calls_of` keeps, so the differential also checks that dropping unknown reads and
//! unnoticeable unknown writes never changes the verdict.

use super::{step, Call, State};
use crate::history::{Event, Outcome, GROUP_KEYS};

/// Calls above which the brute force refuses (its cost is factorial).
pub const CALLS_MAX: usize = 8;

/// True if the events (one group) have a linearization. Panics above `CALLS_MAX` calls.
pub fn is_linearizable(events: &[Event]) -> bool {
    let calls = unfiltered(events);
    assert!(
        calls.len() <= CALLS_MAX,
        "too many calls for the brute force"
    );
    brute_force(&calls)
}

/// Every call the brute force must consider, and whether it may be left out.
fn unfiltered(events: &[Event]) -> Vec<(Call, bool)> {
    events
        .iter()
        .filter(|event| event.outcome != Outcome::Failed)
        .map(|event| {
            let unknown = event.outcome == Outcome::Unknown;
            let call = Call {
                op: event.op.clone(),
                outcome: event.outcome.clone(),
                invoked: event.invoked_ns,
                completed: if unknown {
                    u64::MAX
                } else {
                    event.completed_ns
                },
            };
            (call, unknown)
        })
        .collect()
}

/// A brute-force step: unknown reads match any state; everything else as `step`.
fn brute_step(state: &State, call: &Call) -> Option<State> {
    if call.op.is_read() && call.outcome == Outcome::Unknown {
        return Some(*state);
    }
    step(state, call)
}

fn brute_force(calls: &[(Call, bool)]) -> bool {
    fn search(calls: &[(Call, bool)], done: &mut Vec<bool>, state: State) -> bool {
        if done
            .iter()
            .zip(calls)
            .all(|(d, (_, optional))| *d || *optional)
        {
            return true;
        }
        for i in 0..calls.len() {
            if done[i] {
                continue;
            }
            // `i` may go next only if no pending call finished before it was invoked.
            let blocked = (0..calls.len())
                .any(|j| !done[j] && j != i && calls[j].0.completed < calls[i].0.invoked);
            if blocked {
                continue;
            }
            if let Some(next) = brute_step(&state, &calls[i].0) {
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
