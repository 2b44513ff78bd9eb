//! The timestamp checker: every timestamp any client received must be strictly greater
//! than every timestamp any client received from a call that *completed before this call
//! was invoked* (real-time order, across PD failovers), and no timestamp is handed out
//! twice.
//!
//! Input: one `TsoCall` per successful call (invoke and complete times on the simulator's
//! clock, the largest timestamp of the batch and the batch size: a batch of `count`
//! covers `ts - count + 1 ..= ts`). Output: the first violation found, or `Ok`.
//! O(n log n): calls sorted by completion, swept against calls sorted by invocation.

use std::collections::BTreeMap;

/// One successful timestamp request as a client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TsoCall {
    /// When the client asked (simulated ns).
    pub invoked_ns: u64,
    /// When the answer arrived.
    pub completed_ns: u64,
    /// The largest timestamp of the batch (`physical << 18 | logical`).
    pub ts: u64,
    /// How many timestamps the batch holds (>= 1).
    pub count: u32,
}

impl TsoCall {
    fn first(&self) -> u64 {
        self.ts + 1 - u64::from(self.count)
    }
}

/// A broken timestamp guarantee.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TsoViolation {
    /// A call got a timestamp not above one handed out by a call that finished before it began.
    #[error("WentBack: timestamp went back: {later:?} began after {earlier:?} completed")]
    WentBack { earlier: TsoCall, later: TsoCall },
    /// Two calls received overlapping timestamps.
    #[error("Duplicate: timestamps handed out twice: {a:?} and {b:?}")]
    Duplicate { a: TsoCall, b: TsoCall },
    /// A call's record is impossible (completed before invoked, empty batch).
    #[error("Malformed: impossible call record {0:?}")]
    Malformed(TsoCall),
}

/// Checks a history of successful calls.
pub fn check(calls: &[TsoCall]) -> Result<(), TsoViolation> {
    for call in calls {
        if call.completed_ns < call.invoked_ns
            || call.count == 0
            || u64::from(call.count) > call.ts + 1
        {
            return Err(TsoViolation::Malformed(*call));
        }
    }
    check_unique(calls)?;
    let mut by_completion: Vec<&TsoCall> = calls.iter().collect();
    by_completion.sort_by_key(|call| call.completed_ns);
    let mut by_invocation: Vec<&TsoCall> = calls.iter().collect();
    by_invocation.sort_by_key(|call| call.invoked_ns);
    let mut done = 0;
    let mut highest: Option<&TsoCall> = None;
    for later in by_invocation {
        while done < by_completion.len() && by_completion[done].completed_ns < later.invoked_ns {
            let finished = by_completion[done];
            if highest.is_none_or(|best| finished.ts > best.ts) {
                highest = Some(finished);
            }
            done += 1;
        }
        if let Some(earlier) = highest {
            if later.first() <= earlier.ts {
                return Err(TsoViolation::WentBack {
                    earlier: *earlier,
                    later: *later,
                });
            }
        }
    }
    Ok(())
}

fn check_unique(calls: &[TsoCall]) -> Result<(), TsoViolation> {
    let mut by_first: BTreeMap<u64, &TsoCall> = BTreeMap::new();
    for call in calls {
        if let Some(other) = by_first.insert(call.first(), call) {
            return Err(TsoViolation::Duplicate {
                a: *other,
                b: *call,
            });
        }
    }
    let ordered: Vec<&&TsoCall> = by_first.values().collect();
    for pair in ordered.windows(2) {
        if pair[1].first() <= pair[0].ts {
            return Err(TsoViolation::Duplicate {
                a: **pair[0],
                b: **pair[1],
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(invoked_ns: u64, completed_ns: u64, ts: u64) -> TsoCall {
        TsoCall {
            invoked_ns,
            completed_ns,
            ts,
            count: 1,
        }
    }

    #[test]
    fn increasing_and_concurrent_histories_pass() {
        let history = [
            call(0, 10, 5),
            call(20, 30, 9),
            call(25, 40, 7),
            call(50, 60, 100),
        ];
        assert_eq!(
            check(&history),
            Ok(()),
            "7 overlaps 9: either order is fine"
        );
        assert_eq!(check(&[]), Ok(()));
    }

    #[test]
    fn a_timestamp_below_an_earlier_one_is_caught() {
        // A new leader restarting from a wall clock behind the old leader's timestamps.
        let history = [call(0, 10, 1_000 << 18), call(20, 30, 400 << 18)];
        let violation = check(&history).unwrap_err();
        assert!(
            matches!(violation, TsoViolation::WentBack { .. }),
            "{violation}"
        );
        let equal = [call(0, 10, 7), call(11, 12, 7)];
        assert!(check(&equal).is_err(), "equal is not strictly greater");
    }

    #[test]
    fn overlapping_batches_are_duplicates() {
        let mut a = call(0, 10, 10);
        a.count = 5; // 6..=10
        let b = call(0, 10, 8); // inside a, concurrent
        assert!(matches!(
            check(&[a, b]),
            Err(TsoViolation::Duplicate { .. })
        ));
        let mut c = call(20, 30, 20);
        c.count = 10; // 11..=20
        assert_eq!(check(&[a, c]), Ok(()));
    }

    #[test]
    fn malformed_records_are_rejected() {
        assert!(matches!(
            check(&[call(10, 5, 1)]),
            Err(TsoViolation::Malformed(_))
        ));
        let mut empty = call(0, 1, 1);
        empty.count = 0;
        assert!(matches!(check(&[empty]), Err(TsoViolation::Malformed(_))));
    }
}
