//! The leader lease: when a leader may serve reads from its own state without a ReadIndex
//! round.
//!
//! A ReadIndex round issued at `issued_at` in term `t` and answered in term `t` proves that
//! a quorum heard from this leader after `issued_at`; no other peer can win an election
//! before `issued_at + lease` (`RaftConfig::validate` bounds `lease`). The lease is kept
//! only for the term that earned it and is cleared on every role or term change, on a
//! membership change or split (the quorum it was proven against changes), and it is never
//! used again in a term where a leader transfer started: a `MsgTimeoutNow` still in flight
//! lets the target win an election at once, whatever the lease says.

use crate::env::Instant;
use crate::planted::{self, PlantedBug};

/// Lease state of one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Lease {
    until: Option<Instant>,
    term: u64,
    no_lease_term: Option<u64>,
}

impl Lease {
    /// True if a local read at `now` is linearizable for a leader of `term`.
    pub fn valid(&self, now: Instant, term: u64) -> bool {
        let term_ok = self.term == term || planted::active(PlantedBug::LeaseKeptAfterStepDown);
        term_ok && self.no_lease_term != Some(term) && self.until.is_some_and(|until| now < until)
    }

    /// Extends the lease to `until`, earned by a round answered in `term`.
    pub fn extend(&mut self, term: u64, until: Instant) {
        let fenced = self.no_lease_term == Some(term);
        if fenced && !planted::active(PlantedBug::LeaseKeptAfterStepDown) {
            return;
        }
        if self.term != term {
            self.until = None;
            self.term = term;
        }
        self.until = Some(self.until.map_or(until, |old| old.max(until)));
    }

    /// Forgets the lease (role or term change, membership change, split).
    pub fn clear(&mut self) {
        if planted::active(PlantedBug::LeaseKeptAfterStepDown) {
            return;
        }
        self.until = None;
    }

    /// A leader transfer started in `term`: no lease for the rest of that term.
    pub fn forbid_term(&mut self, term: u64) {
        self.no_lease_term = Some(term);
        if !planted::active(PlantedBug::LeaseKeptAfterStepDown) {
            self.until = None;
        }
    }

    /// Under the planted bug `LeaseKeptAfterStepDown`: true while an old lease has not run
    /// out, whatever the role (a deposed leader that keeps serving local reads).
    pub fn kept_after_step_down(&self, now: Instant) -> bool {
        planted::active(PlantedBug::LeaseKeptAfterStepDown)
            && self.until.is_some_and(|until| now < until)
    }

    /// True if a round answered in `term` could extend the lease (not in a term where a
    /// transfer started): no point renewing otherwise.
    pub fn can_earn(&self, term: u64) -> bool {
        self.no_lease_term != Some(term)
    }

    /// The lease end, for assertions and status.
    pub fn until(&self) -> Option<Instant> {
        self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn lease_holds_only_in_its_term_and_before_its_end() {
        let mut lease = Lease::default();
        assert!(!lease.valid(at(0), 3));
        lease.extend(3, at(100));
        assert!(lease.valid(at(99), 3));
        assert!(!lease.valid(at(100), 3));
        assert!(!lease.valid(at(50), 4), "a lease never crosses terms");
        lease.extend(3, at(80));
        assert_eq!(lease.until(), Some(at(100)), "extending never shortens");
        lease.clear();
        assert!(!lease.valid(at(50), 3));
    }

    #[test]
    fn a_transfer_forbids_leases_for_the_rest_of_its_term() {
        let mut lease = Lease::default();
        lease.extend(5, at(100));
        lease.forbid_term(5);
        assert!(!lease.valid(at(10), 5));
        lease.extend(5, at(200));
        assert!(
            !lease.valid(at(10), 5),
            "a later round in that term earns nothing"
        );
        assert!(!lease.can_earn(5), "renewing in that term is pointless");
        lease.extend(6, at(200));
        assert!(lease.valid(at(10), 6), "the next term starts clean");
        assert!(lease.can_earn(6));
    }
}
