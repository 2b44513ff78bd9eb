//! `PdLeader`: everything the PD leader keeps in memory, behind the API the service and the
//! Raft driver call.
//!
//! Lifecycle: when this member becomes Raft leader, the driver first applies every entry of
//! earlier terms (commit a no-op of the new term and apply up to it), then calls `start`
//! with the applied `PdState`. From then on: requests go to `alloc_id`, `get_timestamp`,
//! `on_region_heartbeat`, `on_store_heartbeat`, `ask_batch_split`; the driver calls `tick`
//! every few tens of ms; every command it proposes is, once committed, applied to the state
//! and then passed to `on_applied` (or, if Raft dropped it, to `on_proposal_dropped`). On
//! losing leadership the driver drops the `PdLeader`; nothing in it must survive.
//!
//! Invariants: no id is handed out at or above the replicated id limit and no timestamp at
//! or above the replicated TSO limit, so a later leader, starting from the replicated
//! limits, never repeats either, whatever its wall clock says.

use ferrokv_core::env::Rng;
use ferrokv_core::types::TimeStamp;
use ferrokv_proto::pdpb;

use crate::ask_split::{self, AskSplitError};
use crate::config::Config;
use crate::coordinator::{Coordinator, Dispatch, HeartbeatReply};
use crate::heartbeat::HeartbeatError;
use crate::id_alloc::{IdAllocator, IdError, LeaderIds};
use crate::proposals::Proposals;
use crate::state::{PdCommand, PdOutcome, PdState};
use crate::tso::{Tso, TsoError};

/// The PD leader's memory.
#[derive(Debug, Clone)]
pub struct PdLeader {
    tso: Tso,
    ids: IdAllocator,
    coordinator: Coordinator,
}

impl PdLeader {
    /// Takes over leadership at `now_ms` from the applied `state`. The proposals it returns
    /// (the first id and TSO windows) must commit before ids or timestamps are served.
    pub fn start(
        state: &PdState,
        config: Config,
        now_ms: u64,
        proposals: &mut Proposals,
    ) -> PdLeader {
        assert_eq!(config.validate(), Ok(()));
        let (tso, tso_limit_ms) = Tso::start(state.tso_limit_ms(), now_ms);
        assert!(tso_limit_ms > state.tso_limit_ms());
        proposals.push(PdCommand::SetTsoLimit {
            limit_ms: tso_limit_ms,
        });
        let ids = IdAllocator::start(state.id_limit(), config.id_batch, proposals);
        PdLeader {
            tso,
            ids,
            coordinator: Coordinator::new(config, now_ms),
        }
    }

    /// Periodic work: move TSO time forward (proposing a new window when the current one
    /// nears its end), top up the id window, expire operators, run the balance schedulers.
    pub fn tick(
        &mut self,
        state: &PdState,
        now_ms: u64,
        rng: &mut dyn Rng,
        proposals: &mut Proposals,
    ) -> Vec<Dispatch> {
        if let Some(limit_ms) = self.tso.update(now_ms) {
            proposals.push(PdCommand::SetTsoLimit { limit_ms });
        }
        self.ids.refill(proposals);
        let mut ids = LeaderIds {
            allocator: &mut self.ids,
            proposals,
        };
        self.coordinator.tick(state, now_ms, rng, &mut ids)
    }

    /// A command this leader (or an earlier one) proposed was applied to `state`.
    pub fn on_applied(&mut self, state: &PdState, command: &PdCommand, outcome: &PdOutcome) {
        self.ids.on_applied(command, outcome, state.id_limit());
        if let PdCommand::SetTsoLimit { limit_ms } = command {
            if matches!(outcome, PdOutcome::Refused(_)) {
                self.tso.on_window_request_lost(*limit_ms);
            }
        }
        if state.tso_limit_ms() > self.tso.persisted_limit_ms() {
            self.tso.on_window_persisted(state.tso_limit_ms());
        }
        self.coordinator.on_applied(outcome);
    }

    /// Raft dropped a proposal before it committed.
    pub fn on_proposal_dropped(&mut self, command: &PdCommand) {
        self.ids.on_proposal_dropped(command);
        if let PdCommand::SetTsoLimit { limit_ms } = command {
            self.tso.on_window_request_lost(*limit_ms);
        }
    }

    /// `count` consecutive timestamps; returns the largest (the `Tso` RPC's answer).
    pub fn get_timestamp(&mut self, count: u32) -> Result<TimeStamp, TsoError> {
        self.tso.allocate(u64::from(count))
    }

    /// One fresh id (the `AllocID` RPC).
    pub fn alloc_id(&mut self, proposals: &mut Proposals) -> Result<u64, IdError> {
        self.ids.alloc(proposals)
    }

    /// Handles a region heartbeat (see `Coordinator::on_region_heartbeat`).
    pub fn on_region_heartbeat(
        &mut self,
        state: &PdState,
        request: &pdpb::RegionHeartbeatRequest,
        now_ms: u64,
        rng: &mut dyn Rng,
        proposals: &mut Proposals,
    ) -> Result<HeartbeatReply, HeartbeatError> {
        let mut staged = Proposals::new();
        let reply = {
            let mut ids = LeaderIds {
                allocator: &mut self.ids,
                proposals: &mut *proposals,
            };
            self.coordinator
                .on_region_heartbeat(state, request, now_ms, rng, &mut ids, &mut staged)
        };
        for command in staged.drain() {
            proposals.push(command);
        }
        reply
    }

    /// Records a store heartbeat.
    pub fn on_store_heartbeat(
        &mut self,
        state: &PdState,
        stats: &pdpb::StoreStats,
        now_ms: u64,
    ) -> Result<(), HeartbeatError> {
        self.coordinator.on_store_heartbeat(state, stats, now_ms)
    }

    /// The scheduling coordinator (memory, operators, counters).
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// The id allocator.
    pub fn ids(&self) -> &IdAllocator {
        &self.ids
    }

    /// Ids for a batch split (the `AskBatchSplit` RPC): per new region, one region id and
    /// one peer id per peer of the splitting region.
    pub fn ask_batch_split(
        &mut self,
        state: &PdState,
        request: &pdpb::AskBatchSplitRequest,
        proposals: &mut Proposals,
    ) -> Result<Vec<pdpb::SplitId>, AskSplitError> {
        let mut ids = LeaderIds {
            allocator: &mut self.ids,
            proposals,
        };
        ask_split::ask_batch_split(state, request, &mut ids)
    }
}
