//! The store's PD worker: store heartbeats, the region heartbeat stream, size measurement
//! and automatic splits, and execution of PD's instructions.
//!
//! Loops (each a task; none blocks the node loop):
//! - `store_heartbeats`: re-registers the store (`PutStore`, idempotent) until it succeeds
//!   once, then sends `StoreHeartbeat` every `store_heartbeat_interval`;
//! - `region_heartbeats`: keeps one `RegionHeartbeat` stream open to the PD leader
//!   (reopened after any error), sends a heartbeat for every region this store leads every
//!   `region_heartbeat_interval` and at once when one's leader, epoch, pending peers or
//!   down peers change, and hands each instruction PD sends back to `operator.rs`;
//! - `measure_and_split`: every `size_check_interval`, measures the regions this store
//!   leads (`size.rs`, off the node loop) and splits those that reached the split size or key
//!   count (up to `SPLITS_PER_ROUND_MAX` a round), at a key near its middle (`AskBatchSplit`,
//!   admin split, `ReportBatchSplit`);
//! - `sync_max_ts`: folds a PD timestamp into max_ts for every region this store came to
//!   lead (async commit and 1PC wait for it; see `ferrokv_core::store` `max_ts_sync`);
//! - `gc` (`gc.rs`): follows PD's GC safe point and collects old versions in the regions
//!   this store leads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_client::pd::PdClient;
use ferrokv_core::env::KvEngine;
use ferrokv_core::store::RegionStatus;
use ferrokv_proto::pdpb;
use tokio::sync::{mpsc, watch};

use super::size::{self, RegionSize};
use super::PdOptions;
use crate::node::NodeHandle;

/// Heartbeats queued on the stream before the rest of a round is skipped.
const HEARTBEAT_QUEUE_MAX: usize = 4_096;
/// How often leadership changes are looked for (a new leader reports at once, as TiKV's
/// does, so PD and clients learn it without waiting for the next full round).
const CHANGE_POLL: Duration = Duration::from_millis(100);
/// Most automatic splits one measuring round starts.
const SPLITS_PER_ROUND_MAX: usize = 16;
/// Wait before reopening a failed heartbeat stream.
const REOPEN_BACKOFF: Duration = Duration::from_millis(500);

/// Aborts a task when dropped (also when the future owning it is cancelled).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What the worker shares between its loops.
pub struct PdWorker<E: KvEngine> {
    pub(super) pd: Arc<PdClient>,
    pub(super) node: NodeHandle,
    pub(super) engine: E,
    pub(super) store_id: u64,
    pub(super) addresses: crate::config::Addresses,
    pub(super) options: PdOptions,
    /// Last measurement per region id, with the region version it was taken at.
    pub(super) sizes: Mutex<BTreeMap<u64, (u64, RegionSize)>>,
    /// The store's KV service (GC of the regions it leads goes through it).
    pub(super) kv: crate::service::kv::KvService,
    /// The GC safe point last heard of from PD, shared with the KV service.
    pub(super) gc_safe_point: Arc<std::sync::atomic::AtomicU64>,
}

/// What a region heartbeat reports that PD must hear about at once when it changes.
type Signature = (
    u64,
    Option<ferrokv_proto::metapb::RegionEpoch>,
    Vec<u64>,
    Vec<u64>,
);

fn signature(status: &RegionStatus) -> Signature {
    let pending = status.pending_peers.iter().map(|peer| peer.id).collect();
    let down = status.down_peers.iter().map(|(peer, _)| peer.id).collect();
    (status.term, status.region.region_epoch, pending, down)
}

fn version(region: &ferrokv_proto::metapb::Region) -> u64 {
    region.region_epoch.map_or(0, |epoch| epoch.version)
}

impl<E: KvEngine> PdWorker<E> {
    /// Starts every loop; they end when the node stops or `stop` turns true.
    pub fn spawn(self, stop: watch::Receiver<bool>) {
        let worker = Arc::new(self);
        let until_stopped = |work: BoxFuture| {
            let mut stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.wait_for(|stopped| *stopped) => {}
                    _ = work => {}
                }
            })
        };
        until_stopped(Box::pin(worker.clone().store_heartbeats()));
        until_stopped(Box::pin(worker.clone().region_heartbeats()));
        until_stopped(Box::pin(worker.clone().measure_and_split()));
        until_stopped(Box::pin(worker.clone().sync_max_ts()));
        until_stopped(Box::pin(worker.gc()));
    }

    /// The regions this store holds, or `None` once the node stopped.
    pub(super) async fn regions(&self) -> Option<Vec<RegionStatus>> {
        let report = self.node.report(false).await.ok()?;
        Some(report.regions.into_iter().map(|r| r.status).collect())
    }

    /// Every `CHANGE_POLL`, lists the leaders here whose max_ts is not synced since their
    /// election, takes a PD timestamp after the listing and hands it back: async commit and
    /// 1PC in those regions then compute commit timestamps above every read their previous
    /// leader served.
    async fn sync_max_ts(self: Arc<Self>) {
        loop {
            tokio::time::sleep(CHANGE_POLL).await;
            let Ok(listed) = self.node.max_ts_unsynced().await else {
                return;
            };
            if listed.is_empty() {
                continue;
            }
            match self.pd.tso(1).await {
                Ok(pd_ts) => {
                    tracing::debug!(regions = listed.len(), ?pd_ts, "max_ts synced with PD");
                    if self.node.max_ts_synced(listed, pd_ts).await.is_err() {
                        return;
                    }
                }
                Err(error) => tracing::debug!(%error, "no PD timestamp to sync max_ts"),
            }
        }
    }

    async fn store_heartbeats(self: Arc<Self>) {
        let store = super::join::store_meta(self.store_id, &self.addresses);
        while let Err(error) = self.pd.put_store(store.clone()).await {
            tracing::warn!(%error, "registering the store with PD failed; retrying");
            tokio::time::sleep(self.options.store_heartbeat_interval).await;
        }
        loop {
            let Some(regions) = self.regions().await else {
                return;
            };
            let stats = pdpb::StoreStats {
                store_id: self.store_id,
                region_count: regions.len() as u32,
                ..Default::default()
            };
            if let Err(error) = self.pd.store_heartbeat(stats).await {
                tracing::debug!(%error, "store heartbeat failed");
            }
            tokio::time::sleep(self.options.store_heartbeat_interval).await;
        }
    }

    async fn region_heartbeats(self: Arc<Self>) {
        loop {
            if let Err(error) = self.clone().heartbeat_session().await {
                tracing::debug!(%error, "region heartbeat stream ended");
                self.pd.reconnect();
            }
            if self.node.report(false).await.is_err() {
                return;
            }
            tokio::time::sleep(REOPEN_BACKOFF).await;
        }
    }

    /// One stream's life: send rounds of heartbeats, execute what comes back.
    async fn heartbeat_session(self: Arc<Self>) -> Result<(), String> {
        let (sender, receiver) = mpsc::channel(HEARTBEAT_QUEUE_MAX);
        let outbound = futures::stream::unfold(receiver, |mut receiver| async move {
            let request = receiver.recv().await?;
            Some((request, receiver))
        });
        let mut inbound = self
            .pd
            .region_heartbeat(outbound)
            .await
            .map_err(|e| e.to_string())?;
        let cluster_id = self.pd.cluster_id().await.map_err(|e| e.to_string())?;
        let rounds = AbortOnDrop(tokio::spawn(
            self.clone().heartbeat_rounds(sender, cluster_id),
        ));
        let result = loop {
            match inbound.message().await {
                Ok(Some(response)) => {
                    let worker = self.clone();
                    tokio::spawn(async move { worker.execute(response).await });
                }
                Ok(None) => break Err("PD closed the stream".to_string()),
                Err(status) => break Err(status.to_string()),
            }
        };
        drop(rounds);
        result
    }

    /// Sends a heartbeat for a region this store leads as soon as its leadership, epoch or
    /// pending peers change (checked every `CHANGE_POLL`), and for every such region each
    /// `region_heartbeat_interval` (sizes, liveness).
    async fn heartbeat_rounds(
        self: Arc<Self>,
        sender: mpsc::Sender<pdpb::RegionHeartbeatRequest>,
        cluster_id: u64,
    ) {
        let mut sent: BTreeMap<u64, Signature> = BTreeMap::new();
        let mut last_full: Option<tokio::time::Instant> = None;
        loop {
            let Some(regions) = self.regions().await else {
                return;
            };
            let now = tokio::time::Instant::now();
            let full = last_full
                .is_none_or(|at| now.duration_since(at) >= self.options.region_heartbeat_interval);
            if full {
                last_full = Some(now);
                sent.clear();
            }
            for status in regions.iter().filter(|status| status.is_leader) {
                let signature = signature(status);
                if sent.get(&status.region.id) == Some(&signature) {
                    continue;
                }
                if sender
                    .try_send(self.heartbeat_of(status, cluster_id))
                    .is_err()
                {
                    break;
                }
                sent.insert(status.region.id, signature);
            }
            tokio::time::sleep(CHANGE_POLL).await;
        }
    }

    fn heartbeat_of(&self, status: &RegionStatus, cluster_id: u64) -> pdpb::RegionHeartbeatRequest {
        let region = &status.region;
        let measured = self
            .sizes
            .lock()
            .expect("sizes lock")
            .get(&region.id)
            .cloned();
        let size = measured
            .filter(|(at_version, _)| *at_version == version(region))
            .map(|(_, size)| size)
            .unwrap_or_default();
        pdpb::RegionHeartbeatRequest {
            header: Some(pdpb::RequestHeader {
                cluster_id,
                sender_id: self.store_id,
            }),
            region: Some(region.clone()),
            // The leader as the region's peer list has it (role included): PD checks that
            // the reporting leader is exactly one of the region's peers.
            leader: status
                .leader
                .and_then(|leader| region.peers.iter().find(|p| p.id == leader.id).copied()),
            pending_peers: status.pending_peers.clone(),
            down_peers: status
                .down_peers
                .iter()
                .map(|(peer, silent)| pdpb::PeerStats {
                    peer: Some(*peer),
                    down_seconds: silent.as_secs(),
                })
                .collect(),
            approximate_size: size.bytes,
            approximate_keys: size.keys,
            term: status.term,
            ..Default::default()
        }
    }

    async fn measure_and_split(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.options.size_check_interval).await;
            let Some(regions) = self.regions().await else {
                return;
            };
            let mut oversized = Vec::new();
            for status in regions.into_iter().filter(|status| status.is_leader) {
                let region = status.region;
                let Some(measured) = self.measure(&region).await else {
                    continue;
                };
                let big = measured.bytes >= self.options.split_size_bytes
                    || measured.keys >= self.options.split_keys;
                if let Some(key) = measured.split_key.clone().filter(|_| big) {
                    oversized.push((region.clone(), key));
                }
                let entry = (version(&region), measured);
                self.sizes
                    .lock()
                    .expect("sizes lock")
                    .insert(region.id, entry);
            }
            for (region, key) in oversized.into_iter().take(SPLITS_PER_ROUND_MAX) {
                if let Err(error) = self.split(region, key).await {
                    tracing::info!(%error, "automatic split failed; will retry");
                }
            }
        }
    }

    pub(super) async fn measure(
        &self,
        region: &ferrokv_proto::metapb::Region,
    ) -> Option<RegionSize> {
        let view = self.engine.snapshot();
        let region = region.clone();
        let cap = self.options.split_size_bytes.saturating_mul(2).max(1);
        let measured = crate::offload::run(move || size::measure(&view, &region, cap)).await;
        match measured {
            Ok(Ok(size)) => Some(size),
            Ok(Err(error)) => {
                tracing::warn!(%error, "measuring a region failed");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "measuring task failed");
                None
            }
        }
    }
}
