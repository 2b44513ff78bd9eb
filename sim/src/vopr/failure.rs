//! Why a seed failed. Each failure has a kind, so a planted bug can require the kind it is
//! meant to produce (a lease bug must show up as a checker violation, not as a search that
//! ran out of budget or a liveness timeout), and the seed runner prints it beside the seed.

use std::fmt;

/// The kind of a seed's failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// A checker found a history or a region layout no correct system produces.
    Violation,
    /// After healing, the cluster did not make progress within the budget (calls that did
    /// not complete definitely, regions without a leader, stores that do not answer).
    Liveness,
    /// Replicas of a region disagree, or did not converge on the newest epoch.
    Convergence,
    /// Something panicked: a production assertion, raft-rs, or the simulator itself.
    Panic,
    /// A budget ran out before an answer (the checker's search steps).
    Exhausted,
    /// Two runs of one seed differed (`--twice`).
    Nondeterminism,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Violation,
        FailureKind::Liveness,
        FailureKind::Convergence,
        FailureKind::Panic,
        FailureKind::Exhausted,
        FailureKind::Nondeterminism,
    ];

    /// The lowercase name (`--expect NAME`, logs).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Violation => "violation",
            FailureKind::Liveness => "liveness",
            FailureKind::Convergence => "convergence",
            FailureKind::Panic => "panic",
            FailureKind::Exhausted => "exhausted",
            FailureKind::Nondeterminism => "nondeterminism",
        }
    }

    /// The kind named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Result<FailureKind, String> {
        FailureKind::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let names: Vec<&str> = FailureKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown failure kind {name:?} (known: {})",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed check: its kind and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The kind.
    pub kind: FailureKind,
    /// What happened, for a human.
    pub detail: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
        }
    }

    /// A checker violation.
    pub fn violation(detail: impl Into<String>) -> Failure {
        Failure::new(FailureKind::Violation, detail)
    }

    /// A liveness failure.
    pub fn liveness(detail: impl Into<String>) -> Failure {
        Failure::new(FailureKind::Liveness, detail)
    }

    /// A convergence failure.
    pub fn convergence(detail: impl Into<String>) -> Failure {
        Failure::new(FailureKind::Convergence, detail)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in FailureKind::ALL {
            assert_eq!(FailureKind::from_name(kind.name()), Ok(kind));
        }
        assert_eq!(
            FailureKind::from_name("Violation"),
            Ok(FailureKind::Violation)
        );
        assert!(FailureKind::from_name("bad").is_err());
        let failure = Failure::liveness("client 2 stuck");
        assert_eq!(failure.to_string(), "liveness: client 2 stuck");
    }
}
