//! A PD member's Raft store: FerroKV's own `Store` and node loop holding exactly one region
//! (the PD region, the whole key space) whose peers are the PD members. No second Raft
//! implementation: the PD state is one value in this region, written with `Request::Write`
//! and read with a linearizable `Request::Read`.
//!
//! The region is bootstrapped statically from the member list on first start (the same on
//! every member); the members reach each other through `GrpcTransport` and serve
//! `RaftService` on their peer addresses.

use std::future::Future;
use std::sync::Arc;

use ferrokv_core::env::{EngineError, KvEngine, SeededRng};
use ferrokv_core::limits::GRPC_MESSAGE_BYTES_MAX;
use ferrokv_core::store::{bootstrap_region, Store, StoreLoadError};
use ferrokv_core::types::StoreId;
use ferrokv_proto::ferrokv_raftpb::ferro_raft_server::FerroRaftServer;
use ferrokv_server::clock::RuntimeClock;
use ferrokv_server::node::{Node, NodeHandle};
use ferrokv_server::service::RaftService;
use ferrokv_server::transport::{GrpcTransport, StaticResolver};

use crate::config::{PdConfig, PD_REGION_ID};

/// Why a member's Raft store could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::PdConfigError),
    /// The store's configuration was refused.
    #[error("raft store configuration: {0}")]
    Store(String),
    /// The store could not load its data.
    #[error(transparent)]
    Load(#[from] StoreLoadError),
    /// Storage failed.
    #[error("storage failure: {0}")]
    Storage(#[from] EngineError),
    /// A listen address is not `host:port`.
    #[error("bad listen address {0:?}")]
    Address(String),
    /// A gRPC server failed.
    #[error("grpc server: {0}")]
    Grpc(String),
}

/// The running Raft store of one member.
pub struct MemberStore {
    /// The node's handle (requests, reports).
    pub handle: NodeHandle,
    /// Resolves when the node loop stops (storage failure or every handle dropped).
    pub node_task: tokio::task::JoinHandle<Result<(), EngineError>>,
}

/// Bootstraps (first start) and loads the member's store, starts its node loop and serves
/// Raft traffic on the peer address until `shutdown`.
pub fn start<E: KvEngine>(
    config: &PdConfig,
    engine: E,
    seed: u64,
    clock: RuntimeClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<MemberStore, MemberError> {
    config.validate()?;
    let store_config = config.store_config();
    let raft = store_config
        .validate()
        .map_err(|error| MemberError::Store(error.to_string()))?;
    let region = store_config
        .bootstrap_region()
        .expect("the PD region is always configured");
    assert_eq!(region.id, PD_REGION_ID);
    if bootstrap_region(&engine, &region)? {
        tracing::info!(member = config.member_id, "bootstrapped the PD region");
    }
    let store_id = StoreId(config.member_id);
    let store = Store::load(engine, store_id, raft, SeededRng::new(seed))?;
    let resolver = StaticResolver(store_config.stores.clone());
    let transport = GrpcTransport::new(Arc::new(resolver));
    let (node, handle) = Node::new(store, transport.clone(), clock);
    transport.attach(&handle);
    let node_task = ferrokv_server::node::spawn(node);
    let addr = store_config
        .addr
        .parse()
        .map_err(|_| MemberError::Address(store_config.addr.clone()))?;
    let raft_service = FerroRaftServer::new(RaftService::new(handle.clone()))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(raft_service)
            .serve_with_shutdown(addr, shutdown)
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "PD peer service stopped");
        }
    });
    Ok(MemberStore { handle, node_task })
}
