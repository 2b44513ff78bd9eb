//! The coordinator's region-heartbeat path (see the module above for the order of work).

use ferrokv_core::env::Rng;
use ferrokv_core::types::RegionId;
use ferrokv_proto::pdpb;

use super::{Coordinator, HeartbeatOutcome, HeartbeatReply};
use crate::checker::{peer_gc, replica, split};
use crate::heartbeat::{self, HeartbeatError, RegionReport};
use crate::id_alloc::IdSource;
use crate::operator::{instruction, OperatorKind, Progress};
use crate::proposals::Proposals;
use crate::registry::check::{classify, RegionChange, StaleReason};
use crate::state::{PdCommand, PdState};

impl Coordinator {
    /// Handles one region heartbeat.
    pub fn on_region_heartbeat(
        &mut self,
        state: &PdState,
        request: &pdpb::RegionHeartbeatRequest,
        now_ms: u64,
        rng: &mut dyn Rng,
        ids: &mut dyn IdSource,
        proposals: &mut Proposals,
    ) -> Result<HeartbeatReply, HeartbeatError> {
        let report = heartbeat::validate(state, request)?;
        let change = match self.freshness(state, &report) {
            Ok(change) => change,
            Err(reason) => return Ok(self.on_stale(state, &report, reason)),
        };
        self.counters.accepted += 1;
        let owned = self.operators.get(RegionId(report.region.id)).is_some();
        self.memory.record_region(report.clone(), now_ms, owned);
        if change != RegionChange::Unchanged {
            self.counters.metadata_proposed += 1;
            proposals.push(PdCommand::PutRegion {
                region: report.region.clone(),
            });
        }
        let mut response = self.drive_operator(state, &report, now_ms);
        let settled = change == RegionChange::Unchanged;
        let region_id = RegionId(report.region.id);
        let idle = response.is_none() && settled && self.operators.get(region_id).is_none();
        if idle && self.check_region(state, region_id, now_ms, rng, ids) {
            response = self.drive_operator(state, &report, now_ms);
        }
        Ok(HeartbeatReply {
            outcome: HeartbeatOutcome::Accepted { change },
            response,
        })
    }

    /// The registry's verdict, plus PD's term rule: a report from an older Raft term than
    /// the last one heard for the region comes from a deposed leader.
    fn freshness(
        &self,
        state: &PdState,
        report: &RegionReport,
    ) -> Result<RegionChange, StaleReason> {
        let change = classify(state.regions(), &report.region)?;
        let region_id = RegionId(report.region.id);
        if let Some(last) = self.memory.region(region_id) {
            let current = last.report.term;
            if report.term > 0 && report.term < current {
                return Err(StaleReason::TermBehind {
                    region_id,
                    current,
                    reported: report.term,
                });
            }
        }
        Ok(change)
    }

    fn on_stale(
        &mut self,
        state: &PdState,
        report: &RegionReport,
        reason: StaleReason,
    ) -> HeartbeatReply {
        self.counters.stale += 1;
        let response = peer_gc::stale_peer(state, report).map(|stale| {
            self.counters.stale_peers_destroyed += 1;
            instruction::destroy_stale_peer(&stale, state.cluster_id())
        });
        HeartbeatReply {
            outcome: HeartbeatOutcome::Stale(reason),
            response,
        }
    }

    /// Advances the region's operator; returns the current step's instruction while it runs.
    fn drive_operator(
        &mut self,
        state: &PdState,
        report: &RegionReport,
        now_ms: u64,
    ) -> Option<pdpb::RegionHeartbeatResponse> {
        match self.operators.on_report(report, now_ms)? {
            (Progress::Running, Some(step)) => {
                instruction::for_step(&step, report, state.cluster_id())
            }
            (progress, _) => {
                assert_ne!(progress, Progress::Running);
                None
            }
        }
    }

    /// Runs the per-region checkers; returns true if an operator was added.
    fn check_region(
        &mut self,
        state: &PdState,
        region_id: RegionId,
        now_ms: u64,
        rng: &mut dyn Rng,
        ids: &mut dyn IdSource,
    ) -> bool {
        let view = self.view(state, now_ms);
        let replica_room = self.operators.running(OperatorKind::Replica)
            < OperatorKind::Replica.limit(&self.config);
        let split_room =
            self.operators.running(OperatorKind::Split) < OperatorKind::Split.limit(&self.config);
        let mut planned = None;
        if replica_room {
            planned = replica::plan(&view, region_id, rng, ids);
        }
        if planned.is_none() && split_room {
            planned = split::plan(&view, region_id);
        }
        let Some(operator) = planned else {
            return false;
        };
        assert_eq!(operator.region_id(), region_id);
        self.operators.add(operator);
        true
    }
}
