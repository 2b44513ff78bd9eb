//! Assembling a PD member: its Raft store (`member`), the driver, and the `pdpb.PD` service
//! on the client address. The same function runs in production (RocksEngine, tokio) and
//! inside madsim (SimEngine); the caller picks the engine, the seed and the clock.

use std::future::Future;

use ferrokv_core::env::KvEngine;
use ferrokv_core::limits::GRPC_MESSAGE_BYTES_MAX;
use ferrokv_proto::pdpb::pd_server::PdServer;
use ferrokv_server::clock::RuntimeClock;
use tokio::sync::watch;

use crate::config::PdConfig;
use crate::driver::{Driver, DriverParts};
use crate::member::{self, MemberError};
use crate::service::PdService;

/// Runs a PD member until `shutdown` resolves or its storage fails.
pub async fn run_member<E: KvEngine>(
    config: PdConfig,
    engine: E,
    seed: u64,
    clock: RuntimeClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MemberError> {
    config.validate()?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let when_stopped = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let store = member::start(
        &config,
        engine,
        seed,
        clock.clone(),
        when_stopped(stopped.clone()),
    )?;
    let (driver, handle, shared) = Driver::new(DriverParts {
        node: store.handle.clone(),
        clock,
        schedule: config.schedule.clone(),
        tick_interval: config.tick_interval,
        seed: seed.rotate_left(17) ^ 0x5044,
        cluster_id: config.derived_cluster_id(),
    });
    tokio::spawn(driver.run());
    let me = config.me().clone();
    let addr = me
        .client_addr
        .parse()
        .map_err(|_| MemberError::Address(me.client_addr.clone()))?;
    let max_replicas = config.schedule.max_replicas as u64;
    let service = PdService::new(handle, shared, config.members.clone(), max_replicas);
    let pd = PdServer::new(service)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    tracing::info!(member = me.id, client = %me.client_addr, peer = %me.peer_addr, "PD member serving");
    let grpc = tonic::transport::Server::builder()
        .add_service(pd)
        .serve_with_shutdown(addr, when_stopped(stopped));
    tokio::select! {
        served = grpc => served.map_err(|error| MemberError::Grpc(ferrokv_server::server::error_chain(&error))),
        ended = store.node_task => match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(MemberError::Storage(error)),
            Err(join) => Err(MemberError::Grpc(format!("node task ended: {join}"))),
        },
    }
}
