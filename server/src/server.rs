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
use crate::node::{Node, NodeHandle};
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
    let listen = config.listen_addresses()?;
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
    let kv_service = KvService::new(handle.clone(), clock);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let grpc = serve(handle, kv_service, store_id, listen, stopped);
    tokio::select! {
        served = grpc => served,
        stopped = node_task => match stopped {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(ServerError::Storage(error)),
            Err(join) => Err(ServerError::Grpc(format!("node task ended: {join}"))),
        },
    }
}

async fn until_stopped(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Serves the store's gRPC endpoints until `stopped` turns true: the client services
/// (`tikvpb.Tikv`, admin) at the client address, and `FerroRaft` (Raft messages,
/// snapshots, deadlock detection) at the peer address, which is a listener of its own
/// unless it is the client address. A listener that fails ends both (`try_join!`), and
/// the error names it.
pub(crate) async fn serve(
    handle: NodeHandle,
    kv: KvService,
    store_id: StoreId,
    (client, peer): (SocketAddr, SocketAddr),
    stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let kv = TikvServer::new(kv)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let raft = FerroRaftServer::new(RaftService::new(handle.clone()))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let admin = FerroAdminServer::new(AdminService::new(handle, store_id.get()));
    let failed = |role: &'static str, address: SocketAddr| {
        move |e: tonic::transport::Error| {
            ServerError::Grpc(format!("{role} listener {address}: {}", error_chain(&e)))
        }
    };
    let router = tonic::transport::Server::builder()
        .add_service(kv)
        .add_service(admin);
    if peer == client {
        tracing::info!(%store_id, %client, "store serving clients and peers");
        let router = router.add_service(raft);
        let served = router
            .serve_with_shutdown(client, until_stopped(stopped))
            .await;
        return served.map_err(failed("client", client));
    }
    tracing::info!(%store_id, %client, %peer, "store serving clients, and peers on their own address");
    let peers = async {
        let listener = tonic::transport::Server::builder().add_service(raft);
        let served = listener
            .serve_with_shutdown(peer, until_stopped(stopped.clone()))
            .await;
        served.map_err(failed("peer", peer))
    };
    let clients = async {
        let served = router
            .serve_with_shutdown(client, until_stopped(stopped.clone()))
            .await;
        served.map_err(failed("client", client))
    };
    tokio::try_join!(clients, peers).map(|_| ())
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
