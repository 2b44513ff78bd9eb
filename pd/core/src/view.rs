//! `ClusterView`: the read-only picture planners decide from.
//!
//! It joins the replicated state (stores, region metadata), leader memory (leaders, pending
//! and down peers, last heartbeats), the running operators and the time. Planners take a
//! view and return at most one operator; they never mutate anything.

use std::collections::BTreeMap;

use ferrokv_core::types::{RegionId, StoreId};
use ferrokv_proto::metapb::{self, StoreState};

use crate::config::Config;
use crate::memory::{LeaderMemory, RegionStats};
use crate::meta;
use crate::operator::controller::OperatorController;
use crate::state::PdState;

/// How a store looks to the schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreHealth {
    /// Up and heard from recently: may receive peers and leaders.
    Up,
    /// Up but silent for longer than `max_store_down_time_ms`: its peers are rebuilt.
    Down,
    /// Being drained by an operator's request: its peers move away.
    Offline,
    /// Gone for good.
    Tombstone,
    /// Not in the replicated state.
    Unknown,
}

impl StoreHealth {
    /// True if peers on this store should be moved away.
    pub fn is_lost(self) -> bool {
        !matches!(self, StoreHealth::Up)
    }
}

/// A read-only snapshot of everything planners need.
#[derive(Clone, Copy)]
pub struct ClusterView<'a> {
    /// The replicated state.
    pub state: &'a PdState,
    /// Leader memory.
    pub memory: &'a LeaderMemory,
    /// Running operators.
    pub operators: &'a OperatorController,
    /// Scheduling configuration.
    pub config: &'a Config,
    /// The current time.
    pub now_ms: u64,
}

impl<'a> ClusterView<'a> {
    /// The health of a store.
    pub fn store_health(&self, id: StoreId) -> StoreHealth {
        let Some(store) = self.state.store(id) else {
            return StoreHealth::Unknown;
        };
        match store.state() {
            StoreState::Tombstone => StoreHealth::Tombstone,
            StoreState::Offline => StoreHealth::Offline,
            StoreState::Up => {
                let silent_ms = self
                    .now_ms
                    .saturating_sub(self.memory.store_last_heartbeat_ms(id));
                if silent_ms > self.config.max_store_down_time_ms {
                    StoreHealth::Down
                } else {
                    StoreHealth::Up
                }
            }
        }
    }

    /// Stores that may receive peers or leaders, in id order.
    pub fn up_stores(&self) -> Vec<StoreId> {
        self.state
            .stores()
            .map(|store| StoreId(store.id))
            .filter(|id| self.store_health(*id) == StoreHealth::Up)
            .collect()
    }

    /// The region's metadata.
    pub fn region(&self, id: RegionId) -> Option<&'a metapb::Region> {
        self.state.regions().get(id)
    }

    /// The region's last heartbeat, if it matches the registered epoch (a report with another
    /// epoch describes metadata not yet applied, so it is not planned on).
    pub fn fresh_stats(&self, id: RegionId) -> Option<&'a RegionStats> {
        let region = self.region(id)?;
        let stats = self.memory.region(id)?;
        (meta::epoch(&stats.report.region) == meta::epoch(region)).then_some(stats)
    }

    /// True if the region has a running operator.
    pub fn is_busy(&self, id: RegionId) -> bool {
        self.operators.get(id).is_some()
    }

    /// True if the region is fit for a balancing move: a fresh heartbeat, no operator, no
    /// pending or down peers, every peer on an Up store and exactly `max_replicas` voters.
    pub fn is_balanceable(&self, id: RegionId) -> bool {
        let (Some(region), Some(stats)) = (self.region(id), self.fresh_stats(id)) else {
            return false;
        };
        let report = &stats.report;
        let peers_healthy = region.peers.iter().all(|peer| {
            self.store_health(StoreId(peer.store_id)) == StoreHealth::Up
                && !report.is_pending(peer.id)
                && !report.is_down(peer.id)
        });
        !self.is_busy(id)
            && peers_healthy
            && region.peers.len() == self.config.max_replicas
            && meta::voter_count(region) == self.config.max_replicas
    }

    /// Leaders per Up store (Up stores with no leader count 0).
    pub fn leader_counts(&self) -> BTreeMap<StoreId, u64> {
        let mut counts: BTreeMap<StoreId, u64> =
            self.up_stores().into_iter().map(|id| (id, 0)).collect();
        for region in self.state.regions().iter() {
            if let Some(stats) = self.fresh_stats(RegionId(region.id)) {
                if let Some(count) = counts.get_mut(&stats.report.leader_store()) {
                    *count += 1;
                }
            }
        }
        counts
    }

    /// Peers per Up store (Up stores with no peer count 0).
    pub fn region_counts(&self) -> BTreeMap<StoreId, u64> {
        let mut counts: BTreeMap<StoreId, u64> =
            self.up_stores().into_iter().map(|id| (id, 0)).collect();
        for region in self.state.regions().iter() {
            for peer in &region.peers {
                if let Some(count) = counts.get_mut(&StoreId(peer.store_id)) {
                    *count += 1;
                }
            }
        }
        counts
    }
}
