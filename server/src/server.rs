//! Assembling a store node: bootstrap if configured, load the store, start the node loop,
//! serve gRPC. The same function runs in production (RocksEngine, tokio) and inside madsim
//! (SimEngine); the caller picks the engine and the seed of the store's random stream.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use ferrokv_core::env::{EngineError, KvEngine, SeededRng};
use ferrokv_core::limits::GRPC_MESSAGE_BYTES_MAX;
use ferrokv_core::store::{bootstrap_region, Store, StoreLoadError};
use ferrokv_core::types::StoreId;
use ferrokv_proto::ferrokv_raftpb::ferro_admin_server::FerroAdminServer;
use ferrokv_proto::ferrokv_raftpb::ferro_raft_server::FerroRaftServer;
use ferrokv_proto::tikvpb::tikv_server::TikvServer;

use crate::clock::RuntimeClock;
use crate::config::{ConfigError, ServerConfig};
use crate::detector::DetectorClient;
use crate::node::Node;
use crate::service::{AdminService, KvService, RaftService};
use crate::transport::{GrpcTransport, StaticResolver, StoreResolver};

/// Why a server stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not start from its data.
    #[error(transparent)]
    Load(#[from] StoreLoadError),
    /// Storage failed; the node stopped to protect data.
    #[error("storage failure: {0}")]
    Storage(#[from] EngineError),
    /// The listen address is not `host:port`.
    #[error("bad listen address {0:?}")]
    Address(String),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Grpc(String),
    /// Joining the cluster through PD failed for good (another cluster's data, a corrupt
    /// identity).
    #[error("joining through PD: {0}")]
    Pd(String),
}

/// An error with every cause under it ("transport error: Address already in use (os error
/// 98)"): tonic's own messages name only the outermost layer.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

/// Runs a store node until `shutdown` resolves or storage fails.
pub async fn run<E: KvEngine>(
    config: ServerConfig,
    engine: E,
    seed: u64,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_with_clock(config, engine, seed, RuntimeClock::new(), shutdown).await
}

/// `run` with a given clock (the simulator skews wall clocks per node).
pub async fn run_with_clock<E: KvEngine>(
    config: ServerConfig,
    engine: E,
    seed: u64,
    clock: RuntimeClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let raft = config.validate()?;
    let addr: SocketAddr = config
        .addr
        .parse()
        .map_err(|_| ServerError::Address(config.addr.clone()))?;
    if let Some(region) = config.bootstrap_region() {
        if bootstrap_region(&engine, &region)? {
            tracing::info!(region_id = region.id, "bootstrapped region");
        }
    }
    let store_id = StoreId(config.store_id);
    let store = Store::load(engine, store_id, raft.clone(), SeededRng::new(seed))?;
    let resolver: Arc<dyn StoreResolver> = Arc::new(StaticResolver(config.stores.clone()));
    let transport = GrpcTransport::new(resolver.clone());
    let (mut node, handle) = Node::new(store, transport.clone(), clock.clone());
    transport.set_reporter(handle.raft_lane());
    let configured = config.stores.keys().map(|id| StoreId(*id)).collect();
    let detector = DetectorClient::new(handle.clone(), store_id, resolver, None, configured);
    tokio::spawn(detector.run(node.detector_calls()));
    let node_task = crate::node::spawn(node);
    let kv = TikvServer::new(KvService::new(handle.clone(), clock))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let raft_service = FerroRaftServer::new(RaftService::new(handle.clone()))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let admin = FerroAdminServer::new(AdminService::new(handle, store_id.get()));
    tracing::info!(%store_id, %addr, "store serving");
    let grpc = tonic::transport::Server::builder()
        .add_service(kv)
        .add_service(raft_service)
        .add_service(admin)
        .serve_with_shutdown(addr, shutdown);
    tokio::select! {
        served = grpc => served.map_err(|e| ServerError::Grpc(error_chain(&e))),
        stopped = node_task => match stopped {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(ServerError::Storage(error)),
            Err(join) => Err(ServerError::Grpc(format!("node task ended: {join}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("transport error")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Review finding (issue 11): a store whose address was taken said only "transport
    /// error" (tonic's message for a failed bind); the cause under it names the problem.
    #[test]
    fn errors_name_their_causes() {
        let bind = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let text = error_chain(&Outer(bind));
        assert_eq!(text, "transport error: Address already in use");
    }
}
