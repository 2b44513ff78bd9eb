//! The coordinator: the scheduling driver on the PD leader.
//!
//! Inputs: region heartbeats, store heartbeats, ticks, applied outcomes. Outputs: the
//! `RegionHeartbeatResponse` to send back (or push to a store), `PutRegion` proposals for
//! metadata that changed, and counters. Per region heartbeat it (1) validates the report and
//! rejects stale ones, telling a removed peer to destroy itself; (2) records the report in
//! leader memory and proposes the metadata if the epoch moved; (3) advances that region's
//! operator, or (4) if none runs and the metadata is settled, asks the replica and split
//! checkers for one, within the per-kind running limits. A tick expires operators and runs
//! the balance schedulers every `balance_interval_ms`.

mod heartbeat;
mod route;
mod tick;

use ferrokv_core::types::{RegionId, StoreId};
use ferrokv_proto::pdpb;

use crate::config::Config;
use crate::memory::LeaderMemory;
use crate::operator::controller::OperatorController;
use crate::registry::check::{RegionChange, StaleReason};
use crate::state::{PdOutcome, PdState};
use crate::view::ClusterView;

/// What became of a region heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub enum HeartbeatOutcome {
    /// Recorded; `change` says whether metadata was proposed.
    Accepted { change: RegionChange },
    /// Ignored as older than the registry (a stale peer may get a destroy order).
    Stale(StaleReason),
}

/// The coordinator's answer to one region heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatReply {
    /// What happened to the report.
    pub outcome: HeartbeatOutcome,
    /// The instruction for the reporting store, if any.
    pub response: Option<pdpb::RegionHeartbeatResponse>,
}

/// An instruction to push to a store's heartbeat stream outside a heartbeat reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    /// The store leading the region.
    pub store_id: StoreId,
    /// The instruction.
    pub response: pdpb::RegionHeartbeatResponse,
}

/// Counters beyond the operator controller's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartbeatCounters {
    /// Region heartbeats accepted.
    pub accepted: u64,
    /// Region heartbeats ignored as stale.
    pub stale: u64,
    /// Destroy orders sent to removed peers.
    pub stale_peers_destroyed: u64,
    /// `PutRegion` proposals made.
    pub metadata_proposed: u64,
}

/// The leader's scheduling state.
#[derive(Debug, Clone)]
pub struct Coordinator {
    config: Config,
    memory: LeaderMemory,
    operators: OperatorController,
    counters: HeartbeatCounters,
    last_balance_ms: Option<u64>,
}

impl Coordinator {
    /// A coordinator for a leader that took over at `now_ms`.
    pub fn new(config: Config, now_ms: u64) -> Coordinator {
        assert_eq!(config.validate(), Ok(()));
        Coordinator {
            config,
            memory: LeaderMemory::new(now_ms),
            operators: OperatorController::new(),
            counters: HeartbeatCounters::default(),
            last_balance_ms: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Leader memory (leaders, pending and down peers, store statistics).
    pub fn memory(&self) -> &LeaderMemory {
        &self.memory
    }

    /// Running operators and their counters.
    pub fn operators(&self) -> &OperatorController {
        &self.operators
    }

    /// Heartbeat counters.
    pub fn counters(&self) -> HeartbeatCounters {
        self.counters
    }

    /// The view planners take.
    pub fn view<'a>(&'a self, state: &'a PdState, now_ms: u64) -> ClusterView<'a> {
        ClusterView {
            state,
            memory: &self.memory,
            operators: &self.operators,
            config: &self.config,
            now_ms,
        }
    }

    /// Keeps leader memory and operators in step with applied commands: regions displaced
    /// from the registry are forgotten and their operators cancelled.
    pub fn on_applied(&mut self, outcome: &PdOutcome) {
        if let PdOutcome::RegionPut { displaced, .. } = outcome {
            for region_id in displaced {
                self.memory.forget_region(*region_id);
                self.operators.cancel(*region_id);
                assert!(self.operators.get(*region_id).is_none());
            }
        }
    }

    /// Records a store heartbeat.
    pub fn on_store_heartbeat(
        &mut self,
        state: &PdState,
        stats: &pdpb::StoreStats,
        now_ms: u64,
    ) -> Result<(), crate::heartbeat::HeartbeatError> {
        use crate::heartbeat::HeartbeatError;
        use ferrokv_proto::metapb::StoreState;
        if !state.is_bootstrapped() {
            return Err(HeartbeatError::NotBootstrapped);
        }
        let store_id = StoreId(stats.store_id);
        match state.store(store_id) {
            None => Err(HeartbeatError::UnknownStore(store_id)),
            Some(store) if store.state() == StoreState::Tombstone => {
                Err(HeartbeatError::TombstoneStore(store_id))
            }
            Some(_) => {
                self.memory.record_store(stats.clone(), now_ms);
                Ok(())
            }
        }
    }

    /// The operator running on a region, for reporting (`GetOperator`).
    pub fn operator(&self, region_id: RegionId) -> Option<&crate::operator::Operator> {
        self.operators.get(region_id)
    }
}

#[cfg(test)]
mod tests;
