//! Operator calls to one store (`FerroAdmin`): region status, until PD serves it.

use std::time::Duration;

use ferrokv_proto::ferrokv_raftpb::ferro_admin_client::FerroAdminClient;
use ferrokv_proto::ferrokv_raftpb::{
    AdminRequest, AdminResponse, RegionInfo, RegionInfoRequest, RegionInfoResponse,
};
use tonic::transport::{Channel, Endpoint};

const TIMEOUT: Duration = Duration::from_secs(2);

async fn connect(addr: &str) -> Option<FerroAdminClient<Channel>> {
    let endpoint = Endpoint::new(format!("http://{addr}"))
        .ok()?
        .connect_timeout(TIMEOUT);
    let channel = tokio::time::timeout(TIMEOUT, endpoint.connect())
        .await
        .ok()?
        .ok()?;
    Some(FerroAdminClient::new(channel))
}

/// The full report of the store at `addr` (regions, trace hash, counters); with
/// `with_data_hash` each region's applied data is hashed too (a full read: checks only).
/// `None` if the store does not answer in time.
pub async fn store_report(addr: &str, with_data_hash: bool) -> Option<RegionInfoResponse> {
    let mut admin = connect(addr).await?;
    let call = admin.regions(RegionInfoRequest { with_data_hash });
    let reply = tokio::time::timeout(TIMEOUT, call).await.ok()?.ok()?;
    Some(reply.into_inner())
}

/// Every region the store at `addr` holds, with leader, applied index and data hash;
/// `None` if the store does not answer in time.
pub async fn region_reports(addr: &str) -> Option<Vec<RegionInfo>> {
    Some(store_report(addr, true).await?.regions)
}

/// Every region the store at `addr` holds, with leader and applied index but no data hash
/// (cheap: for routing).
pub async fn region_routes(addr: &str) -> Option<Vec<RegionInfo>> {
    Some(store_report(addr, false).await?.regions)
}

/// Sends an admin command to the store at `addr`.
pub async fn admin(addr: &str, request: AdminRequest) -> Result<AdminResponse, String> {
    let mut admin = connect(addr)
        .await
        .ok_or_else(|| format!("store {addr} unreachable"))?;
    let call = admin.admin(request);
    let reply = tokio::time::timeout(TIMEOUT, call)
        .await
        .map_err(|_| "timed out".to_string())?;
    reply
        .map(|r| r.into_inner())
        .map_err(|status| status.to_string())
}

/// The store's trace hash (determinism fingerprint), `None` if it does not answer.
pub async fn store_trace(addr: &str) -> Option<u64> {
    Some(store_report(addr, false).await?.trace_hash)
}
