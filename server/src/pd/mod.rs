//! A store that joins its cluster through the Placement Driver (`ferrokv-server --pd`).
//!
//! - `ident`: the store identity persisted in the data directory (same id after restart);
//! - `join`: getting an id, bootstrapping the cluster (first store), registering;
//! - `resolver`: other stores' addresses from PD, cached, instead of a static table;
//! - `worker`, `size`, `operator`: heartbeats, sizes, automatic splits, PD's instructions.
//!
//! `run_with_pd` wires them around the same node, transport and services as `server::run`.
//! A store with an identity starts serving its regions without waiting for PD; a new store
//! must reach PD first (it retries until it does or is shut down).

mod gc;
mod ident;
pub mod join;
mod operator;
mod resolver;
pub mod size;
mod worker;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_client::pd::PdClient;
use ferrokv_core::env::{KvEngine, SeededRng};
use ferrokv_core::store::Store;
use ferrokv_core::types::StoreId;
use tokio::sync::watch;

pub use resolver::PdResolver;
pub use worker::PdWorker;

use crate::clock::RuntimeClock;
use crate::config::ServerConfig;
use crate::detector::DetectorClient;
use crate::node::Node;
use crate::server::ServerError;
use crate::service::KvService;
use crate::transport::{GrpcTransport, StoreResolver};

/// How a store works with PD.
#[derive(Clone, Debug)]
pub struct PdOptions {
    /// PD member client addresses (`host:port`).
    pub endpoints: Vec<String>,
    /// Deadline of one PD call, retries included.
    pub call_timeout: Duration,
    /// Period of store heartbeats.
    pub store_heartbeat_interval: Duration,
    /// Period of region heartbeats (every region this store leads).
    pub region_heartbeat_interval: Duration,
    /// Period of region size measurement.
    pub size_check_interval: Duration,
    /// A region this store leads is split once it holds this many bytes.
    pub split_size_bytes: u64,
    /// ... or this many keys.
    pub split_keys: u64,
    /// Period of GC rounds (PD's safe point read, stale locks resolved, old versions
    /// collected).
    pub gc_interval: Duration,
}

impl PdOptions {
    /// Defaults (TiKV-like split size of 96 MiB) for the given PD endpoints.
    pub fn new(endpoints: Vec<String>) -> PdOptions {
        PdOptions {
            endpoints,
            call_timeout: Duration::from_secs(5),
            store_heartbeat_interval: Duration::from_secs(2),
            region_heartbeat_interval: Duration::from_secs(2),
            size_check_interval: Duration::from_secs(2),
            split_size_bytes: 96 << 20,
            split_keys: 960_000,
            gc_interval: Duration::from_secs(10),
        }
    }
}

async fn join<E: KvEngine>(
    engine: &E,
    pd: &PdClient,
    addresses: &crate::config::Addresses,
) -> Result<ferrokv_proto::ferrokv_raftpb::StoreIdent, ServerError> {
    let fatal = |error: join::JoinError| ServerError::Pd(error.to_string());
    loop {
        let attempt = async {
            let ident = join::identity(engine, pd).await?;
            join::register(engine, pd, &ident, addresses).await?;
            Ok::<_, join::JoinError>(ident)
        };
        match attempt.await {
            Ok(ident) => return Ok(ident),
            Err(join::JoinError::Pd(error)) => {
                tracing::warn!(%error, "joining through PD failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(fatal(error)),
        }
    }
}

/// A store with an identity re-registers before loading (finishing a bootstrap a crash
/// interrupted), but serves its regions anyway if PD does not answer within `wait`.
async fn rejoin<E: KvEngine>(
    engine: &E,
    pd: &PdClient,
    ident: &ferrokv_proto::ferrokv_raftpb::StoreIdent,
    addresses: &crate::config::Addresses,
    wait: Duration,
) -> Result<(), ServerError> {
    match tokio::time::timeout(wait, join::register(engine, pd, ident, addresses)).await {
        Ok(Ok(())) | Err(_) => Ok(()),
        Ok(Err(join::JoinError::Pd(error))) => {
            tracing::warn!(%error, "PD did not answer at start; serving local regions");
            Ok(())
        }
        Ok(Err(error)) => Err(ServerError::Pd(error.to_string())),
    }
}

/// The store's identity: the data directory's (re-registering, bounded by `wait`), or a new
/// one from PD (retried until PD answers).
async fn identity<E: KvEngine>(
    engine: &E,
    pd: &PdClient,
    addresses: &crate::config::Addresses,
    wait: Duration,
) -> Result<ferrokv_proto::ferrokv_raftpb::StoreIdent, ServerError> {
    match ident::load(engine).map_err(|e| ServerError::Pd(e.to_string()))? {
        Some(ident) => {
            rejoin(engine, pd, &ident, addresses, wait).await?;
            Ok(ident)
        }
        None => join(engine, pd, addresses).await,
    }
}

/// Runs a store node that joins through PD until `shutdown` resolves or storage fails.
/// `config.store_id` is ignored: the id comes from the data directory or from PD.
pub async fn run_with_pd<E: KvEngine>(
    mut config: ServerConfig,
    options: PdOptions,
    engine: E,
    seed: u64,
    clock: RuntimeClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // Bad listen addresses fail here, before anything reaches PD.
    let listen = config.listen_addresses()?;
    let (stop, stopped) = watch::channel(false);
    let stop = Arc::new(stop);
    let stop_on_shutdown = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_on_shutdown.send(true);
    });
    let pd = Arc::new(PdClient::new(
        options.endpoints.clone(),
        options.call_timeout,
    ));
    let addresses = config.addresses();
    let joining = identity(&engine, &pd, &addresses, options.call_timeout);
    let mut stop_joining = stopped.clone();
    let ident = tokio::select! {
        joined = joining => joined?,
        _ = stop_joining.wait_for(|stop| *stop) => return Ok(()),
    };
    config.store_id = ident.store_id;
    let raft = config.validate()?;
    let store_id = StoreId(ident.store_id);
    let store = Store::load(engine.clone(), store_id, raft, SeededRng::new(seed))?;
    let resolver: Arc<dyn StoreResolver> = Arc::new(PdResolver::new(pd.clone()));
    let transport = GrpcTransport::new(resolver.clone());
    let (mut node, handle) = Node::new(store, transport.clone(), clock.clone());
    transport.attach(&handle);
    let detector = DetectorClient::new(
        handle.clone(),
        store_id,
        resolver,
        Some(pd.clone()),
        Vec::new(),
    );
    tokio::spawn(detector.run(node.detector_calls()));
    let node_task = crate::node::spawn(node);
    let gc_safe_point = Arc::new(AtomicU64::new(0));
    let kv_service = KvService::new(handle.clone(), clock).with_pd(gc_safe_point.clone());
    PdWorker {
        pd,
        node: handle.clone(),
        engine,
        store_id: ident.store_id,
        addresses: addresses.clone(),
        options,
        sizes: Mutex::new(Default::default()),
        kv: kv_service.clone(),
        gc_safe_point,
    }
    .spawn(stopped.clone());
    let grpc = crate::server::serve(handle, kv_service, store_id, listen, stopped);
    let mut node_task = node_task;
    let served = tokio::select! {
        served = grpc => served,
        stopped = &mut node_task => return node_ended(stopped),
    };
    // A listener that failed (a port taken) stops the worker and the detector too, so the
    // node's mailbox closes and it stops.
    let _ = stop.send(true);
    // The services and the worker are gone: the node stops once its mailbox closes.
    match tokio::time::timeout(NODE_STOP_WAIT, node_task).await {
        Ok(stopped) => node_ended(stopped).and(served),
        Err(_) => {
            tracing::warn!("node did not stop in time");
            served
        }
    }
}

/// How long a stopping store waits for its node loop to finish.
const NODE_STOP_WAIT: Duration = Duration::from_secs(5);

fn node_ended(
    stopped: Result<Result<(), ferrokv_core::env::EngineError>, tokio::task::JoinError>,
) -> Result<(), ServerError> {
    match stopped {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(ServerError::Storage(error)),
        Err(join) => Err(ServerError::Grpc(format!("node task ended: {join}"))),
    }
}
