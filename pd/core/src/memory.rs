//! Leader memory: what the leader learns from heartbeats and does not replicate.
//!
//! Like upstream PD, region leaders, pending and down peers, approximate sizes and store
//! statistics are rebuilt from heartbeats after a failover rather than replicated. Inputs:
//! validated reports with the time they arrived. Outputs: per-region and per-store views.
//! A store never heard from since this leader started counts as last heard at the start,
//! so a failover does not declare every store down at once.

use std::collections::BTreeMap;

use ferrokv_core::types::{RegionId, StoreId};
use ferrokv_proto::pdpb;

use crate::heartbeat::RegionReport;

/// The last heartbeat of one region.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionStats {
    /// The last report.
    pub report: RegionReport,
    /// When it arrived.
    pub last_heartbeat_ms: u64,
    /// For each peer the reports have named pending or down without a break while no operator owned the region: since when (the
    /// first such report this leader saw). An operator's own peers are timed by the
    /// operator, so the clock starts only once it finished or timed out.
    pub unhealthy_since_ms: BTreeMap<u64, u64>,
}

impl RegionStats {
    /// How long the peer has been reported pending or down without a break and without an
    /// operator on the region (0 if healthy).
    pub fn unhealthy_for_ms(&self, peer_id: u64, now_ms: u64) -> u64 {
        self.unhealthy_since_ms
            .get(&peer_id)
            .map_or(0, |since| now_ms.saturating_sub(*since))
    }
}

/// The last heartbeat of one store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStats {
    /// The store's statistics.
    pub stats: pdpb::StoreStats,
    /// When they arrived.
    pub last_heartbeat_ms: u64,
}

/// Everything the leader keeps only in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderMemory {
    started_ms: u64,
    regions: BTreeMap<RegionId, RegionStats>,
    stores: BTreeMap<StoreId, StoreStats>,
}

impl LeaderMemory {
    /// Empty memory for a leader that took over at `started_ms`.
    pub fn new(started_ms: u64) -> LeaderMemory {
        LeaderMemory {
            started_ms,
            regions: BTreeMap::new(),
            stores: BTreeMap::new(),
        }
    }

    /// When this leader started.
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// Records a region report; a peer that stays pending or down keeps its first time,
    /// unless an operator owns the region (`owned`: then no clock runs).
    pub fn record_region(&mut self, report: RegionReport, now_ms: u64, owned: bool) {
        let id = RegionId(report.region.id);
        assert!(id.0 != 0);
        let before = self
            .regions
            .get(&id)
            .map(|stats| &stats.unhealthy_since_ms)
            .filter(|_| !owned);
        let unhealthy_since_ms: BTreeMap<u64, u64> = report
            .region
            .peers
            .iter()
            .filter(|peer| report.is_pending(peer.id) || report.is_down(peer.id))
            .map(|peer| {
                let since = before.and_then(|b| b.get(&peer.id)).copied();
                (peer.id, since.unwrap_or(now_ms).min(now_ms))
            })
            .collect();
        self.regions.insert(
            id,
            RegionStats {
                report,
                last_heartbeat_ms: now_ms,
                unhealthy_since_ms,
            },
        );
    }

    /// Forgets a region (it was merged into or replaced by others).
    pub fn forget_region(&mut self, id: RegionId) {
        self.regions.remove(&id);
    }

    /// The last report of a region.
    pub fn region(&self, id: RegionId) -> Option<&RegionStats> {
        self.regions.get(&id)
    }

    /// Records a store heartbeat.
    pub fn record_store(&mut self, stats: pdpb::StoreStats, now_ms: u64) {
        let id = StoreId(stats.store_id);
        assert!(id.0 != 0);
        self.stores.insert(
            id,
            StoreStats {
                stats,
                last_heartbeat_ms: now_ms,
            },
        );
    }

    /// The last statistics of a store.
    pub fn store(&self, id: StoreId) -> Option<&StoreStats> {
        self.stores.get(&id)
    }

    /// When the store was last heard from (the leader's start if never).
    pub fn store_last_heartbeat_ms(&self, id: StoreId) -> u64 {
        self.stores
            .get(&id)
            .map_or(self.started_ms, |stats| stats.last_heartbeat_ms)
    }
}
