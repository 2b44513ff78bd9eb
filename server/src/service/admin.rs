//! The `FerroAdmin` service: operator commands (split, membership, leader transfer, log
//! compaction) and region status, until PD drives them.

use ferrokv_core::store::{Request as StoreRequest, Response as StoreResponse};
use ferrokv_proto::ferrokv_raftpb::ferro_admin_server::FerroAdmin;
use ferrokv_proto::ferrokv_raftpb::{
    AdminRequest, AdminResponse, RegionInfo, RegionInfoRequest, RegionInfoResponse, StoreCounters,
};
use tonic::{Request, Response, Status};

use crate::node::NodeHandle;

/// Operator access to one node.
pub struct AdminService {
    node: NodeHandle,
    store_id: u64,
}

impl AdminService {
    /// A service over `node`.
    pub fn new(node: NodeHandle, store_id: u64) -> AdminService {
        AdminService { node, store_id }
    }
}

#[tonic::async_trait]
impl FerroAdmin for AdminService {
    async fn admin(
        &self,
        request: Request<AdminRequest>,
    ) -> Result<Response<AdminResponse>, Status> {
        let request = request.into_inner();
        if request.region_id == 0 || request.cmd.is_none() {
            return Err(Status::invalid_argument(
                "admin request needs a region_id and a command",
            ));
        }
        let answer = self.node.request(StoreRequest::Admin(request)).await;
        let answer = answer.map_err(|error| Status::unavailable(error.to_string()))?;
        let response = match answer {
            StoreResponse::Admin(Ok(outcome)) => AdminResponse {
                error: String::new(),
                region: outcome.regions.first().cloned(),
                leader: None,
            },
            StoreResponse::Admin(Err(error)) | StoreResponse::Write(Err(error)) => {
                let leader = match &error {
                    ferrokv_core::store::RegionError::NotLeader { leader, .. } => *leader,
                    _ => None,
                };
                AdminResponse {
                    error: error.to_string(),
                    region: None,
                    leader,
                }
            }
            other => AdminResponse {
                error: format!("unexpected answer {other:?}"),
                region: None,
                leader: None,
            },
        };
        Ok(Response::new(response))
    }

    async fn regions(
        &self,
        request: Request<RegionInfoRequest>,
    ) -> Result<Response<RegionInfoResponse>, Status> {
        let with_data_hash = request.into_inner().with_data_hash;
        let report = self
            .node
            .report(with_data_hash)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let regions = report
            .regions
            .into_iter()
            .map(|report| {
                let status = report.status;
                RegionInfo {
                    region: Some(status.region),
                    leader: status.leader,
                    applied_index: status.applied_index,
                    term: status.term,
                    data_hash: report.data_hash,
                    applied_term: status.applied_term,
                    commit_index: status.commit_index,
                    truncated_index: status.truncated.0,
                    truncated_term: status.truncated.1,
                }
            })
            .collect();
        let counters = report.counters;
        Ok(Response::new(RegionInfoResponse {
            store_id: self.store_id,
            regions,
            trace_hash: report.trace_hash,
            counters: Some(StoreCounters {
                snapshots_installed: counters.store.snapshots_installed,
                stale_peers_destroyed: counters.store.stale_peers_destroyed,
                requests_timed_out: counters.store.requests_timed_out,
                override_misses: counters.store.override_misses,
                ticks: counters.ticks,
                snapshots_generated: counters.snapshots_generated,
                lock_waits: counters.store.lock_waits.waited,
                lock_waits_woken: counters.store.lock_waits.woken,
                lock_waits_timed_out: counters.store.lock_waits.timed_out,
                deadlocks: counters.store.lock_waits.deadlocks,
                remote_deadlocks: counters.store.lock_waits.remote_deadlocks,
                requests_answered: counters.requests_answered,
                request_ns: counters.request_ns,
                sync_drives: counters.sync_drives,
                sync_drive_ns: counters.sync_drive_ns,
                detector_calls_dropped: counters.store.lock_waits.detector_calls_dropped,
                raft_messages_refused: counters.store.raft_messages_refused,
            }),
        }))
    }
}
