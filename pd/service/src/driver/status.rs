//! Watching the PD region: a task asks the member's node for the region's status every
//! `STATUS_INTERVAL` and publishes it, so the driver learns about leadership, term and the
//! leader lease without blocking its own loop.

use std::time::Duration;

use ferrokv_core::env::Instant;
use ferrokv_core::types::RegionEpoch;
use ferrokv_server::node::NodeHandle;
use tokio::sync::watch;

use crate::config::PD_REGION_ID;

/// How often the lease and leadership are refreshed. Well inside the lease (hundreds of
/// ms), so a leader keeps serving timestamps while its lease keeps being renewed.
pub const STATUS_INTERVAL: Duration = Duration::from_millis(20);

/// The PD region as this member's peer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionView {
    /// True if this member's peer leads.
    pub is_leader: bool,
    /// The peer's current term.
    pub term: u64,
    /// The leader's member id, if known.
    pub leader: Option<u64>,
    /// While leader: until when (member's monotonic clock) no other leader can exist.
    pub lease_until: Option<Instant>,
    /// The region's epoch (requests must carry it).
    pub epoch: RegionEpoch,
}

/// Polls the node until it stops or nobody watches; publishes every change.
pub async fn poll(node: NodeHandle, views: watch::Sender<Option<RegionView>>) {
    loop {
        let Ok(report) = node.report(false).await else {
            tracing::warn!("PD member's node stopped; status polling ends");
            return;
        };
        let view = report
            .regions
            .iter()
            .find(|region| region.status.region.id == PD_REGION_ID)
            .map(|region| {
                let status = &region.status;
                RegionView {
                    is_leader: status.is_leader,
                    term: status.term,
                    leader: status.leader.map(|peer| peer.store_id),
                    lease_until: status.lease_until,
                    epoch: status
                        .region
                        .region_epoch
                        .as_ref()
                        .map(RegionEpoch::from)
                        .unwrap_or_default(),
                }
            });
        if views.send(view).is_err() {
            return;
        }
        tokio::time::sleep(STATUS_INTERVAL).await;
    }
}
