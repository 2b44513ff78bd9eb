//! The `pdpb.PD` gRPC service: validates each request at the edge (cluster id, required
//! fields), asks the driver, and answers in upstream PD's terms (`header.rs`).
//!
//! One file per family: `members.rs` (GetMembers, cluster config), `tso.rs` (the Tso
//! stream), `cluster.rs` (bootstrap, ids, stores, GC safe point), `heartbeat.rs` (store
//! heartbeats and the RegionHeartbeat stream), `route.rs` (region lookups, split ids,
//! operators). Methods FerroKV does not serve answer `Unimplemented`.

mod cluster;
mod header;
mod heartbeat;
mod members;
mod route;
mod tso;
mod validate;

use std::pin::Pin;
use std::sync::Arc;

use ferrokv_proto::pdpb::pd_server::Pd;
use ferrokv_proto::pdpb::*;
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::config::Member;
use crate::driver::{DriverHandle, Shared};

/// A server stream of `T`s (the type tonic's generated code names `BoxStream`).
pub type PdStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The PD service of one member.
#[derive(Clone)]
pub struct PdService {
    driver: DriverHandle,
    shared: Arc<Shared>,
    members: Arc<Vec<Member>>,
    max_replicas: u64,
}

impl PdService {
    /// A service answering through `driver`.
    pub fn new(
        driver: DriverHandle,
        shared: Arc<Shared>,
        members: Vec<Member>,
        max_replicas: u64,
    ) -> PdService {
        PdService {
            driver,
            shared,
            members: Arc::new(members),
            max_replicas,
        }
    }

    fn cluster_id(&self) -> u64 {
        self.shared.cluster_id()
    }

    fn check(&self, header: Option<&RequestHeader>) -> Result<(), Status> {
        header::check(self.cluster_id(), header)
    }
}

type Answer<T> = Result<Response<T>, Status>;

macro_rules! not_served {
    ($($method:ident($request:ident) -> $response:ident;)*) => {
        $(
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                _: Request<$request>,
            ) -> Pin<Box<dyn std::future::Future<Output = Answer<$response>>
                + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                let method = concat!("pdpb.PD/", stringify!($method), " is not served");
                Box::pin(async move { Err(Status::unimplemented(method)) })
            }
        )*
    };
}

#[tonic::async_trait]
impl Pd for PdService {
    // madsim's generated trait names its stream types; tonic's uses `BoxStream` directly.
    #[cfg(madsim)]
    type TsoStream = PdStream<TsoResponse>;
    #[cfg(madsim)]
    type RegionHeartbeatStream = PdStream<RegionHeartbeatResponse>;

    not_served! {
        ask_split(AskSplitRequest) -> AskSplitResponse;
        report_split(ReportSplitRequest) -> ReportSplitResponse;
        put_cluster_config(PutClusterConfigRequest) -> PutClusterConfigResponse;
        scatter_region(ScatterRegionRequest) -> ScatterRegionResponse;
        update_service_gc_safe_point(UpdateServiceGcSafePointRequest)
            -> UpdateServiceGcSafePointResponse;
    }

    async fn get_members(&self, _: Request<GetMembersRequest>) -> Answer<GetMembersResponse> {
        Ok(Response::new(self.members_response()))
    }

    async fn tso(&self, request: Request<Streaming<TsoRequest>>) -> Answer<PdStream<TsoResponse>> {
        Ok(Response::new(self.tso_stream(request.into_inner())))
    }

    async fn bootstrap(&self, request: Request<BootstrapRequest>) -> Answer<BootstrapResponse> {
        self.do_bootstrap(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn is_bootstrapped(
        &self,
        request: Request<IsBootstrappedRequest>,
    ) -> Answer<IsBootstrappedResponse> {
        self.check(request.get_ref().header.as_ref())?;
        self.do_is_bootstrapped().await.map(Response::new)
    }

    async fn alloc_id(&self, request: Request<AllocIdRequest>) -> Answer<AllocIdResponse> {
        self.check(request.get_ref().header.as_ref())?;
        self.do_alloc_id().await.map(Response::new)
    }

    async fn get_store(&self, request: Request<GetStoreRequest>) -> Answer<GetStoreResponse> {
        self.do_get_store(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn put_store(&self, request: Request<PutStoreRequest>) -> Answer<PutStoreResponse> {
        self.do_put_store(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_all_stores(
        &self,
        request: Request<GetAllStoresRequest>,
    ) -> Answer<GetAllStoresResponse> {
        self.do_get_all_stores(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn store_heartbeat(
        &self,
        request: Request<StoreHeartbeatRequest>,
    ) -> Answer<StoreHeartbeatResponse> {
        self.do_store_heartbeat(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn region_heartbeat(
        &self,
        request: Request<Streaming<RegionHeartbeatRequest>>,
    ) -> Answer<PdStream<RegionHeartbeatResponse>> {
        Ok(Response::new(self.heartbeat_stream(request.into_inner())))
    }

    async fn get_region(&self, request: Request<GetRegionRequest>) -> Answer<GetRegionResponse> {
        self.do_get_region(request.into_inner(), false)
            .await
            .map(Response::new)
    }

    async fn get_prev_region(
        &self,
        request: Request<GetRegionRequest>,
    ) -> Answer<GetRegionResponse> {
        self.do_get_region(request.into_inner(), true)
            .await
            .map(Response::new)
    }

    async fn get_region_by_id(
        &self,
        request: Request<GetRegionByIdRequest>,
    ) -> Answer<GetRegionResponse> {
        self.do_get_region_by_id(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn scan_regions(
        &self,
        request: Request<ScanRegionsRequest>,
    ) -> Answer<ScanRegionsResponse> {
        self.do_scan_regions(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn ask_batch_split(
        &self,
        request: Request<AskBatchSplitRequest>,
    ) -> Answer<AskBatchSplitResponse> {
        self.do_ask_batch_split(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn report_batch_split(
        &self,
        request: Request<ReportBatchSplitRequest>,
    ) -> Answer<ReportBatchSplitResponse> {
        self.do_report_batch_split(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_cluster_config(
        &self,
        request: Request<GetClusterConfigRequest>,
    ) -> Answer<GetClusterConfigResponse> {
        self.check(request.get_ref().header.as_ref())?;
        Ok(Response::new(self.cluster_config()))
    }

    async fn get_gc_safe_point(
        &self,
        request: Request<GetGcSafePointRequest>,
    ) -> Answer<GetGcSafePointResponse> {
        self.check(request.get_ref().header.as_ref())?;
        self.do_get_gc_safe_point().await.map(Response::new)
    }

    async fn update_gc_safe_point(
        &self,
        request: Request<UpdateGcSafePointRequest>,
    ) -> Answer<UpdateGcSafePointResponse> {
        self.do_update_gc_safe_point(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_operator(
        &self,
        request: Request<GetOperatorRequest>,
    ) -> Answer<GetOperatorResponse> {
        self.do_get_operator(request.into_inner())
            .await
            .map(Response::new)
    }
}
