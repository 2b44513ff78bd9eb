//! Two simulated nodes exchange a gRPC call generated from `proto/`, through madsim's
//! simulated network; a partition makes the call fail, healing makes it work again.
//! Compiled only under `RUSTFLAGS="--cfg madsim"`.
#![cfg(madsim)]

use std::net::SocketAddr;
use std::time::Duration;

use ferrokv_proto::ferrokv_raftpb::ferro_raft_client::FerroRaftClient;
use ferrokv_proto::ferrokv_raftpb::ferro_raft_server::{FerroRaft, FerroRaftServer};
use ferrokv_proto::ferrokv_raftpb::{Done, RaftMessage, RaftMessageBatch, SnapshotChunk};
use madsim::net::NetSim;
use madsim::runtime::Handle;
use tonic::{Request, Response, Status};

/// Answers every batch with `Done`; counts nothing, checks the payload arrived intact.
struct EchoRaft;

#[tonic::async_trait]
impl FerroRaft for EchoRaft {
    async fn send_raft(
        &self,
        request: Request<RaftMessageBatch>,
    ) -> Result<Response<Done>, Status> {
        let batch = request.into_inner();
        match batch.messages.first() {
            Some(message) if message.region_id == 42 && message.message == b"hello" => {
                Ok(Response::new(Done {}))
            }
            _ => Err(Status::invalid_argument("unexpected payload")),
        }
    }

    async fn send_snapshot_chunk(
        &self,
        _request: Request<SnapshotChunk>,
    ) -> Result<Response<Done>, Status> {
        Err(Status::unimplemented("not used by this test"))
    }
}

fn batch() -> RaftMessageBatch {
    let message = RaftMessage {
        region_id: 42,
        message: b"hello".to_vec(),
        ..Default::default()
    };
    RaftMessageBatch {
        messages: vec![message],
    }
}

async fn call(client: &mut FerroRaftClient<tonic::transport::Channel>) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(3), client.send_raft(batch())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(format!("rpc error: {status}")),
        Err(_) => Err("timed out".to_string()),
    }
}

#[madsim::test]
async fn rpc_crosses_the_network_and_partitions_break_it() {
    let handle = Handle::current();
    let server_addr: SocketAddr = "10.0.0.1:20160".parse().unwrap();
    let server = handle
        .create_node()
        .name("server")
        .ip(server_addr.ip())
        .build();
    let client = handle
        .create_node()
        .name("client")
        .ip("10.0.0.2".parse().unwrap())
        .build();
    server.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(FerroRaftServer::new(EchoRaft))
            .serve(server_addr)
            .await
            .expect("server runs");
    });
    let (server_id, client_id) = (server.id(), client.id());
    let outcome = client
        .spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let endpoint = format!("http://{server_addr}");
            let mut rpc = FerroRaftClient::connect(endpoint).await.expect("connects");
            let healthy = call(&mut rpc).await;
            NetSim::current().clog_link(client_id, server_id);
            let partitioned = call(&mut rpc).await;
            NetSim::current().unclog_link(client_id, server_id);
            let healed = call(&mut rpc).await;
            (healthy, partitioned, healed)
        })
        .await
        .unwrap();
    assert_eq!(outcome.0, Ok(()), "the call succeeds on a healthy network");
    assert!(
        outcome.1.is_err(),
        "a partitioned call must fail, got {:?}",
        outcome.1
    );
    assert_eq!(outcome.2, Ok(()), "the call succeeds again after healing");
}
