//! FerroKV's Raft transport (`GrpcTransport`) over madsim's network, against a recording
//! `FerroRaft` server: batches never exceed their byte cap and lose nothing; heartbeats are
//! not queued behind a snapshot's chunks; a partition drops messages (Raft retransmits) and
//! sending works again after healing. Compiled only under `--cfg madsim`.
#![cfg(madsim)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_core::env::Transport;
use ferrokv_core::limits::{SNAPSHOT_CHUNK_BYTES, TRANSPORT_BATCH_BYTES_MAX};
use ferrokv_core::types::StoreId;
use ferrokv_proto::ferrokv_raftpb::ferro_raft_server::{FerroRaft, FerroRaftServer};
use ferrokv_proto::ferrokv_raftpb::{
    DetectRequest, DetectResponse, Done, RaftMessage, RaftMessageBatch, SnapshotChunk,
};
use ferrokv_server::transport::{GrpcTransport, StaticResolver};
use madsim::net::NetSim;
use madsim::runtime::Handle;
use prost::Message as _;
use protobuf::Message as _;
use tonic::{Request, Response, Status};

/// What the server saw, in arrival order.
#[derive(Default)]
struct Seen {
    /// `(region_id, batch size in bytes)` per message, in arrival order.
    messages: Vec<u64>,
    batch_bytes: Vec<usize>,
    /// Arrival order positions of snapshot chunks (`u64::MAX` marks a chunk).
    chunks: usize,
    order: Vec<&'static str>,
}

struct Recorder(Arc<Mutex<Seen>>);

#[tonic::async_trait]
impl FerroRaft for Recorder {
    async fn send_raft(
        &self,
        request: Request<RaftMessageBatch>,
    ) -> Result<Response<Done>, Status> {
        let batch = request.into_inner();
        let mut seen = self.0.lock().unwrap();
        seen.batch_bytes.push(batch.encoded_len());
        for message in batch.messages {
            seen.messages.push(message.region_id);
            seen.order.push("message");
        }
        Ok(Response::new(Done {}))
    }

    async fn send_snapshot_chunk(
        &self,
        _request: Request<SnapshotChunk>,
    ) -> Result<Response<Done>, Status> {
        // A slow receiver: each chunk takes a while to store.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut seen = self.0.lock().unwrap();
        seen.chunks += 1;
        seen.order.push("chunk");
        Ok(Response::new(Done {}))
    }

    async fn detect(
        &self,
        _request: Request<DetectRequest>,
    ) -> Result<Response<DetectResponse>, Status> {
        Err(Status::unimplemented(
            "a transport recorder detects nothing",
        ))
    }
}

fn message(region_id: u64, payload: usize) -> RaftMessage {
    RaftMessage {
        region_id,
        message: vec![7; payload],
        ..Default::default()
    }
}

fn snapshot_message(data: usize) -> RaftMessage {
    let mut wire = raft::eraftpb::Message::default();
    wire.set_msg_type(raft::eraftpb::MessageType::MsgSnapshot);
    wire.mut_snapshot().mut_metadata().index = 9;
    wire.mut_snapshot().data = vec![1u8; data].into();
    RaftMessage {
        region_id: 1,
        message: wire.write_to_bytes().unwrap(),
        is_snapshot: true,
        ..Default::default()
    }
}

#[madsim::test]
async fn the_transport_caps_batches_keeps_heartbeats_ahead_of_snapshots_and_survives_partitions() {
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
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorder = Recorder(seen.clone());
    server.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(FerroRaftServer::new(recorder).max_decoding_message_size(16 << 20))
            .serve(server_addr)
            .await
            .expect("server runs");
    });
    let (server_id, client_id) = (server.id(), client.id());
    let checks = seen.clone();
    client
        .spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let book: BTreeMap<u64, String> = [(1, server_addr.to_string())].into();
            let transport = GrpcTransport::new(Arc::new(StaticResolver(book)));
            // 1. Many messages whose total exceeds several batches.
            for i in 0..60 {
                transport
                    .send(StoreId(1), message(100 + i, 256 * 1024))
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            {
                let seen = checks.lock().unwrap();
                assert_eq!(seen.messages.len(), 60, "every message arrives");
                assert!(
                    seen.batch_bytes.len() >= 4,
                    "split into several calls: {:?}",
                    seen.batch_bytes
                );
                let cap = TRANSPORT_BATCH_BYTES_MAX + 64 * 1024;
                assert!(
                    seen.batch_bytes.iter().all(|b| *b <= cap),
                    "{:?}",
                    seen.batch_bytes
                );
            }
            // 2. A snapshot of many chunks, then heartbeats: they do not wait for it.
            transport
                .send(StoreId(1), snapshot_message(SNAPSHOT_CHUNK_BYTES * 8))
                .unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
            for i in 0..5 {
                transport.send(StoreId(1), message(900 + i, 64)).unwrap();
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            {
                let seen = checks.lock().unwrap();
                assert_eq!(seen.chunks, 8, "the snapshot arrived whole");
                let last_chunk = seen.order.iter().rposition(|o| *o == "chunk").unwrap();
                let last_message = seen.order.iter().rposition(|o| *o == "message").unwrap();
                assert!(
                    last_message < last_chunk,
                    "heartbeats overtook the snapshot: {:?}",
                    &seen.order[60..]
                );
            }
            // 3. A partition drops messages; after healing they flow again.
            NetSim::current().clog_link(client_id, server_id);
            for i in 0..3 {
                let _ = transport.send(StoreId(1), message(500 + i, 64));
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            let during = checks.lock().unwrap().messages.len();
            NetSim::current().unclog_link(client_id, server_id);
            assert_eq!(during, 65, "nothing crossed the partition");
            transport.send(StoreId(1), message(777, 64)).unwrap();
            tokio::time::sleep(Duration::from_secs(15)).await;
            let seen = checks.lock().unwrap();
            assert!(seen.messages.contains(&777), "sending works after healing");
        })
        .await
        .unwrap();
}
