//! The running operators, at most one per region, and the counters for reporting.
//!
//! Inputs: new operators from planners, region reports, the time. Outputs: the step to send
//! for a region, and counters of operators created, finished, failed and timed out per
//! kind. Invariant: an operator leaves the map exactly once, counted as exactly one of
//! finished, failed or timed out, so `created == running + finished + failed + timed_out`.

use std::collections::BTreeMap;

use ferrokv_core::types::RegionId;

use super::{Operator, OperatorKind, Progress, Step};
use crate::heartbeat::RegionReport;

/// Operator counts of one kind (or of all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperatorCounters {
    /// Operators added.
    pub created: u64,
    /// Operators whose steps all completed.
    pub finished: u64,
    /// Operators cancelled because the region's epoch moved incompatibly.
    pub failed: u64,
    /// Operators cancelled by their timeout.
    pub timed_out: u64,
}

impl OperatorCounters {
    fn ended(&self) -> u64 {
        self.finished + self.failed + self.timed_out
    }
}

/// Running operators by region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorController {
    running: BTreeMap<RegionId, Operator>,
    counters: BTreeMap<OperatorKind, OperatorCounters>,
}

impl OperatorController {
    /// No operators.
    pub fn new() -> OperatorController {
        OperatorController::default()
    }

    /// The operator running on a region.
    pub fn get(&self, region_id: RegionId) -> Option<&Operator> {
        self.running.get(&region_id)
    }

    /// Every running operator, by region id.
    pub fn iter(&self) -> impl Iterator<Item = &Operator> {
        self.running.values()
    }

    /// Running operators of `kind`.
    pub fn running(&self, kind: OperatorKind) -> usize {
        self.running.values().filter(|op| op.kind() == kind).count()
    }

    /// Running operators of every kind.
    pub fn running_total(&self) -> usize {
        self.running.len()
    }

    /// Counters of one kind.
    pub fn counters(&self, kind: OperatorKind) -> OperatorCounters {
        self.counters.get(&kind).copied().unwrap_or_default()
    }

    /// Counters summed over every kind.
    pub fn totals(&self) -> OperatorCounters {
        let mut total = OperatorCounters::default();
        for counters in self.counters.values() {
            total.created += counters.created;
            total.finished += counters.finished;
            total.failed += counters.failed;
            total.timed_out += counters.timed_out;
        }
        assert_eq!(total.created, total.ended() + self.running.len() as u64);
        total
    }

    /// Starts `operator`; its region must have none running.
    pub fn add(&mut self, operator: Operator) {
        let region_id = operator.region_id();
        assert!(
            !self.running.contains_key(&region_id),
            "region {region_id} already has an operator"
        );
        self.counters.entry(operator.kind()).or_default().created += 1;
        tracing::info!(
            region_id = region_id.0,
            kind = ?operator.kind(),
            steps = ?operator.steps(),
            "operator created"
        );
        self.running.insert(region_id, operator);
    }

    /// Checks the region's operator against `report`; returns its progress and, while it
    /// runs, the current step. An ended operator is removed and counted.
    pub fn on_report(
        &mut self,
        report: &RegionReport,
        now_ms: u64,
    ) -> Option<(Progress, Option<Step>)> {
        let region_id = RegionId(report.region.id);
        let operator = self.running.get_mut(&region_id)?;
        let progress = operator.check(report, now_ms);
        if progress == Progress::Running {
            let step = operator.current_step().cloned();
            assert!(step.is_some());
            return Some((progress, step));
        }
        self.end(region_id, &progress);
        Some((progress, None))
    }

    /// Removes and counts every operator past its timeout; returns their regions.
    pub fn expire(&mut self, now_ms: u64) -> Vec<RegionId> {
        let expired: Vec<RegionId> = self
            .running
            .values()
            .filter(|operator| operator.is_timed_out(now_ms))
            .map(Operator::region_id)
            .collect();
        for region_id in &expired {
            self.end(*region_id, &Progress::TimedOut);
        }
        expired
    }

    /// Removes the operator of a region that left the registry because a newer overlapping
    /// region replaced it. For a split operator that is the split taking effect (a child
    /// reported first), counted as finished; any other operator counts as failed.
    pub fn cancel(&mut self, region_id: RegionId) {
        let Some(operator) = self.running.get(&region_id) else {
            return;
        };
        let progress = if operator.kind() == OperatorKind::Split {
            Progress::Finished
        } else {
            Progress::Failed(super::OperatorFailure::RegionRemoved)
        };
        self.end(region_id, &progress);
    }

    fn end(&mut self, region_id: RegionId, progress: &Progress) {
        let operator = self
            .running
            .remove(&region_id)
            .expect("ending a running operator");
        let counters = self.counters.entry(operator.kind()).or_default();
        match progress {
            Progress::Finished => counters.finished += 1,
            Progress::Failed(_) => counters.failed += 1,
            Progress::TimedOut => counters.timed_out += 1,
            Progress::Running => unreachable!("a running operator does not end"),
        }
        tracing::info!(region_id = region_id.0, kind = ?operator.kind(), ?progress, "operator ended");
        assert!(counters.ended() <= counters.created);
    }
}
