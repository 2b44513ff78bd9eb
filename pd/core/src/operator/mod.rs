//! Operators: a short sequence of steps that changes one region.
//!
//! Input: the region's heartbeats. Output: progress (running, finished, failed, timed out)
//! and, while running, the step whose instruction goes back to the leader. Invariants: the
//! step index only moves forward; a heartbeat an operator checks is never older than the
//! epoch the operator was planned on; an operator fails as soon as the region's epoch moved
//! in a way its own steps cannot explain (someone else split it or changed membership).

pub mod controller;
pub mod instruction;
pub mod step;

use ferrokv_core::types::{RegionEpoch, RegionId};
use ferrokv_proto::metapb;

use crate::config::Config;
use crate::heartbeat::RegionReport;
use crate::meta;
pub use step::Step;

/// Which planner made an operator (for limits and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OperatorKind {
    /// Replica checker: repair a down or offline peer, or fix the replica count.
    Replica,
    /// Split checker: split an oversized region.
    Split,
    /// Balance-leader: move one leader.
    BalanceLeader,
    /// Balance-region: move one peer.
    BalanceRegion,
}

impl OperatorKind {
    /// The running-operator limit for this kind.
    pub fn limit(self, config: &Config) -> usize {
        match self {
            OperatorKind::Replica => config.replica_schedule_limit,
            OperatorKind::Split => config.split_schedule_limit,
            OperatorKind::BalanceLeader => config.leader_schedule_limit,
            OperatorKind::BalanceRegion => config.region_schedule_limit,
        }
    }
}

/// Where an operator stands after a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the current step.
    Running,
    /// Every step is done.
    Finished,
    /// The region's epoch moved incompatibly.
    Failed(OperatorFailure),
    /// It ran longer than its timeout.
    TimedOut,
}

/// Why an operator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OperatorFailure {
    /// The region split or merged under an operator that does not split.
    #[error("region version moved from {planned} to {reported}")]
    VersionChanged { planned: u64, reported: u64 },
    /// More membership changes happened than the operator's steps made.
    #[error("region conf_ver {reported} is above the {expected_max} the steps explain")]
    ConfVerChanged { expected_max: u64, reported: u64 },
    /// The region left the registry (another region's report replaced it).
    #[error("the region was replaced in the registry")]
    RegionRemoved,
}

/// A running operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    region_id: RegionId,
    kind: OperatorKind,
    epoch: RegionEpoch,
    steps: Vec<Step>,
    current: usize,
    created_ms: u64,
    timeout_ms: u64,
}

impl Operator {
    /// An operator for `region` as registered now.
    pub fn new(
        region: &metapb::Region,
        kind: OperatorKind,
        steps: Vec<Step>,
        now_ms: u64,
        config: &Config,
    ) -> Operator {
        assert!(!steps.is_empty(), "an operator has at least one step");
        let moves_peers = steps.iter().any(|step| step.conf_ver_delta() > 0);
        let timeout_ms = if moves_peers || kind == OperatorKind::Split {
            config.operator_region_timeout_ms
        } else {
            config.operator_leader_timeout_ms
        };
        assert!(timeout_ms > 0);
        Operator {
            region_id: meta::region_id(region),
            kind,
            epoch: meta::epoch(region),
            steps,
            current: 0,
            created_ms: now_ms,
            timeout_ms,
        }
    }

    /// The region it changes.
    pub fn region_id(&self) -> RegionId {
        self.region_id
    }

    /// The planner that made it.
    pub fn kind(&self) -> OperatorKind {
        self.kind
    }

    /// All steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The step in progress (`None` once all are done).
    pub fn current_step(&self) -> Option<&Step> {
        self.steps.get(self.current)
    }

    /// True if it has run for longer than its timeout.
    pub fn is_timed_out(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.created_ms) > self.timeout_ms
    }

    /// Advances past every step `report` shows done and says where the operator stands.
    pub fn check(&mut self, report: &RegionReport, now_ms: u64) -> Progress {
        assert_eq!(report.region.id, self.region_id.0);
        let before = self.current;
        while self
            .current_step()
            .is_some_and(|step| step.is_finished(report))
        {
            self.current += 1;
        }
        assert!(self.current >= before && self.current <= self.steps.len());
        if self.current == self.steps.len() {
            return Progress::Finished;
        }
        if let Err(failure) = self.check_epoch(meta::epoch(&report.region)) {
            return Progress::Failed(failure);
        }
        if self.is_timed_out(now_ms) {
            return Progress::TimedOut;
        }
        Progress::Running
    }

    fn check_epoch(&self, reported: RegionEpoch) -> Result<(), OperatorFailure> {
        assert!(
            reported.version >= self.epoch.version,
            "stale report reached an operator"
        );
        assert!(
            reported.conf_ver >= self.epoch.conf_ver,
            "stale report reached an operator"
        );
        let begun = &self.steps[..=self.current];
        let may_split = begun.iter().any(Step::changes_version);
        if !may_split && reported.version != self.epoch.version {
            return Err(OperatorFailure::VersionChanged {
                planned: self.epoch.version,
                reported: reported.version,
            });
        }
        let expected_max =
            self.epoch.conf_ver + begun.iter().map(Step::conf_ver_delta).sum::<u64>();
        if reported.conf_ver > expected_max {
            return Err(OperatorFailure::ConfVerChanged {
                expected_max,
                reported: reported.conf_ver,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
