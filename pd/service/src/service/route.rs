//! Region lookups (`GetRegion`, `GetPrevRegion`, `GetRegionByID`, `ScanRegions`), split ids
//! (`AskBatchSplit`, `ReportBatchSplit`) and operator status (`GetOperator`).
//!
//! Lookups answer from the leader's adopted state joined with its memory (leader, down and
//! pending peers). A key no region covers gets an OK answer without a region (the client
//! retries). `ReportBatchSplit` needs at least two regions; FerroKV also proposes their
//! metadata (newer epochs win, stale ones are refused by the state machine), which closes
//! the post-split routing hole upstream has until each new region's first heartbeat.
//!
//! Leader hints: a region whose leader PD has not heard from yet (a split child, or every
//! region right after a PD failover) is answered by `GetRegion`/`GetPrevRegion`/
//! `GetRegionByID` with its first voter as the leader. Upstream answers no leader, and
//! tikv-client 0.4 then caches the region without one; its scan path returns
//! `LeaderNotFound` without invalidating that entry, so every later scan over the region
//! fails until the client is recreated. A wrong hint costs one `NotLeader` redirect.
//! `ScanRegions` (tools) reports only leaders PD heard from.

use ferrokv_core::types::RegionId;
use ferrokv_pd_core::ask_split::AskSplitError;
use ferrokv_pd_core::{PdCommand, PdOutcome};
use ferrokv_proto::metapb;
use ferrokv_proto::pdpb::{self, ErrorType, OperatorStatus};
use tonic::Status;

use super::{header, validate, PdService};
use crate::driver::Serving;

/// The leader to name for a region: the one heartbeats reported, else its first voter as a
/// hint (see the module note).
fn leader_or_hint(region: &metapb::Region, leader: Option<metapb::Peer>) -> Option<metapb::Peer> {
    if leader.is_none() {
        tracing::debug!(
            region_id = region.id,
            "no leader heard yet; answering a hint"
        );
    }
    leader.or_else(|| {
        let voter = |peer: &&metapb::Peer| peer.role == metapb::PeerRole::Voter as i32;
        region.peers.iter().find(voter).copied()
    })
}

fn described(serving: &Serving<'_>, region: Option<&metapb::Region>) -> pdpb::GetRegionResponse {
    let Some(region) = region else {
        return pdpb::GetRegionResponse::default();
    };
    let described = serving.leader.coordinator().describe(region);
    pdpb::GetRegionResponse {
        region: described.region,
        leader: leader_or_hint(region, described.leader),
        down_peers: described.down_peers,
        pending_peers: described.pending_peers,
        ..Default::default()
    }
}

impl PdService {
    pub(super) async fn do_get_region(
        &self,
        request: pdpb::GetRegionRequest,
        previous: bool,
    ) -> Result<pdpb::GetRegionResponse, Status> {
        self.check(request.header.as_ref())?;
        let key = request.region_key;
        let mut response = self
            .driver
            .query(move |serving| {
                let regions = serving.state.regions();
                let found = if previous {
                    regions.prev_region(&key)
                } else {
                    regions.region_by_key(&key)
                };
                described(serving, found)
            })
            .await
            .map_err(header::status)?;
        response.header = header::ok(self.cluster_id());
        Ok(response)
    }

    pub(super) async fn do_get_region_by_id(
        &self,
        request: pdpb::GetRegionByIdRequest,
    ) -> Result<pdpb::GetRegionResponse, Status> {
        self.check(request.header.as_ref())?;
        let region_id = RegionId(request.region_id);
        let mut response = self
            .driver
            .query(move |serving| described(serving, serving.state.regions().get(region_id)))
            .await
            .map_err(header::status)?;
        response.header = header::ok(self.cluster_id());
        Ok(response)
    }

    pub(super) async fn do_scan_regions(
        &self,
        request: pdpb::ScanRegionsRequest,
    ) -> Result<pdpb::ScanRegionsResponse, Status> {
        self.check(request.header.as_ref())?;
        let limit = usize::try_from(request.limit.max(0)).unwrap_or(0);
        let (start, end) = (request.start_key, request.end_key);
        let regions = self
            .driver
            .query(move |serving| {
                let coordinator = serving.leader.coordinator();
                let found = serving.state.regions().scan(&start, &end, limit);
                found
                    .into_iter()
                    .map(|region| coordinator.describe(region))
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(header::status)?;
        Ok(pdpb::ScanRegionsResponse {
            header: header::ok(self.cluster_id()),
            region_metas: regions.iter().filter_map(|r| r.region.clone()).collect(),
            leaders: regions
                .iter()
                .map(|r| r.leader.unwrap_or_default())
                .collect(),
            regions,
        })
    }

    pub(super) async fn do_ask_batch_split(
        &self,
        request: pdpb::AskBatchSplitRequest,
    ) -> Result<pdpb::AskBatchSplitResponse, Status> {
        self.check(request.header.as_ref())?;
        let result = self
            .driver
            .ask_batch_split(request)
            .await
            .map_err(header::status)?;
        let (header, ids) = match result {
            Ok(ids) => (header::ok(self.cluster_id()), ids),
            Err(error) => {
                let kind = match error {
                    AskSplitError::NotBootstrapped => ErrorType::NotBootstrapped,
                    AskSplitError::RegionNotFound => ErrorType::RegionNotFound,
                    _ => ErrorType::Unknown,
                };
                let header = header::error(self.cluster_id(), kind, error.to_string());
                (header, Vec::new())
            }
        };
        Ok(pdpb::AskBatchSplitResponse { header, ids })
    }

    pub(super) async fn do_report_batch_split(
        &self,
        request: pdpb::ReportBatchSplitRequest,
    ) -> Result<pdpb::ReportBatchSplitResponse, Status> {
        self.check(request.header.as_ref())?;
        if !request.regions.iter().all(validate::region_ids_ok) {
            let message = validate::ID_OUT_OF_RANGE;
            return Ok(pdpb::ReportBatchSplitResponse {
                header: header::error(self.cluster_id(), ErrorType::InvalidValue, message),
            });
        }
        if request.regions.len() < 2 {
            let message = "a batch split report needs at least two regions";
            return Ok(pdpb::ReportBatchSplitResponse {
                header: header::error(self.cluster_id(), ErrorType::InvalidValue, message),
            });
        }
        for region in request.regions {
            let outcome = self
                .driver
                .propose(PdCommand::PutRegion { region })
                .await
                .map_err(header::status)?;
            if let PdOutcome::Refused(error) = outcome {
                tracing::debug!(%error, "split report region not stored");
            }
        }
        Ok(pdpb::ReportBatchSplitResponse {
            header: header::ok(self.cluster_id()),
        })
    }

    pub(super) async fn do_get_operator(
        &self,
        request: pdpb::GetOperatorRequest,
    ) -> Result<pdpb::GetOperatorResponse, Status> {
        self.check(request.header.as_ref())?;
        let region_id = RegionId(request.region_id);
        let running = self
            .driver
            .query(move |serving| {
                let operator = serving.leader.coordinator().operator(region_id)?;
                let kind = format!("{:?}", operator.kind());
                let desc = format!("{:?}", operator.steps());
                Some((kind, desc))
            })
            .await
            .map_err(header::status)?;
        let Some((kind, desc)) = running else {
            let message = format!("no operator runs on region {}", request.region_id);
            return Ok(pdpb::GetOperatorResponse {
                header: header::error(self.cluster_id(), ErrorType::RegionNotFound, message),
                region_id: request.region_id,
                ..Default::default()
            });
        };
        Ok(pdpb::GetOperatorResponse {
            header: header::ok(self.cluster_id()),
            region_id: request.region_id,
            desc: desc.into_bytes(),
            status: OperatorStatus::Running as i32,
            kind: kind.into_bytes(),
        })
    }
}
