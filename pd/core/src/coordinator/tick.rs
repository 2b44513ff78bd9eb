//! The coordinator's periodic work: expire operators and run the balance schedulers.

use ferrokv_core::env::Rng;
use ferrokv_proto::pdpb;

use super::{Coordinator, Dispatch};
use crate::id_alloc::IdSource;
use crate::operator::{instruction, Operator, OperatorKind};
use crate::scheduler::{balance_leader, balance_region};
use crate::state::PdState;

impl Coordinator {
    /// Expires operators past their timeout and, every `balance_interval_ms`, runs the
    /// balance schedulers. Returns instructions for new operators, addressed to the store
    /// leading each region (PD pushes them on that store's heartbeat stream).
    pub fn tick(
        &mut self,
        state: &PdState,
        now_ms: u64,
        rng: &mut dyn Rng,
        ids: &mut dyn IdSource,
    ) -> Vec<Dispatch> {
        self.operators.expire(now_ms);
        let due = self
            .last_balance_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= self.config.balance_interval_ms);
        if !due || !state.is_bootstrapped() {
            return Vec::new();
        }
        self.last_balance_ms = Some(now_ms);
        let mut dispatches = Vec::new();
        if self.has_room(OperatorKind::BalanceLeader) {
            let planned = balance_leader::plan(&self.view(state, now_ms), rng);
            dispatches.extend(planned.and_then(|op| self.start(state, op)));
        }
        if self.has_room(OperatorKind::BalanceRegion) {
            let planned = balance_region::plan(&self.view(state, now_ms), rng, ids);
            dispatches.extend(planned.and_then(|op| self.start(state, op)));
        }
        dispatches
    }

    fn has_room(&self, kind: OperatorKind) -> bool {
        self.operators.running(kind) < kind.limit(&self.config)
    }

    /// Adds `operator` and builds its first instruction from the region's last report.
    fn start(&mut self, state: &PdState, operator: Operator) -> Option<Dispatch> {
        let region_id = operator.region_id();
        let step = operator
            .current_step()
            .cloned()
            .expect("a new operator has steps");
        self.operators.add(operator);
        let report = &self.memory.region(region_id)?.report;
        let response: pdpb::RegionHeartbeatResponse =
            instruction::for_step(&step, report, state.cluster_id())?;
        Some(Dispatch {
            store_id: report.leader_store(),
            response,
        })
    }
}
