//! One real PD member in-process (RocksDB in a temp dir, tonic on loopback), driven over
//! gRPC as stores and clients drive it: members and the cluster id, the cluster-id check,
//! timestamps, ids, bootstrap, stores, regions, split ids, the GC safe point, and bad
//! requests answered with typed pdpb errors (never a panic).
#![cfg(not(madsim))]

use std::net::TcpListener;
use std::time::Duration;

use ferrokv_pd::PdConfig;
use ferrokv_proto::metapb;
use ferrokv_proto::pdpb::pd_client::PdClient as PdGrpc;
use ferrokv_proto::pdpb::{self, ErrorType};
use ferrokv_server::clock::RuntimeClock;
use ferrokv_server::io::RocksEngine;
use tonic::transport::Channel;

fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().to_string()
}

async fn start_pd(dir: &std::path::Path) -> (PdGrpc<Channel>, tokio::sync::oneshot::Sender<()>) {
    let (client, peer) = (free_addr(), free_addr());
    let config = PdConfig::single(&client, &peer, dir.to_path_buf());
    let engine = RocksEngine::open(&dir.join("db")).expect("rocksdb opens");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    tokio::spawn(ferrokv_pd::run_member(
        config,
        engine,
        7,
        RuntimeClock::new(),
        shutdown,
    ));
    for _ in 0..100 {
        if let Ok(mut rpc) = PdGrpc::connect(format!("http://{client}")).await {
            let members = rpc.get_members(pdpb::GetMembersRequest::default()).await;
            if members.is_ok_and(|m| m.into_inner().leader.is_some()) {
                return (rpc, stop);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("PD did not elect itself");
}

fn header(cluster_id: u64) -> Option<pdpb::RequestHeader> {
    Some(pdpb::RequestHeader {
        cluster_id,
        sender_id: 0,
    })
}

fn error_type(header: &Option<pdpb::ResponseHeader>) -> Option<ErrorType> {
    let error = header.as_ref()?.error.as_ref()?;
    ErrorType::try_from(error.r#type).ok()
}

async fn cluster_id(rpc: &mut PdGrpc<Channel>) -> u64 {
    let members = rpc
        .get_members(pdpb::GetMembersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let id = members.header.unwrap().cluster_id;
    assert_ne!(id, 0, "never an OK header with cluster id 0");
    assert_eq!(members.members.len(), 1);
    assert_eq!(members.leader.unwrap().member_id, 1);
    id
}

async fn tso(
    rpc: &mut PdGrpc<Channel>,
    id: u64,
    count: u32,
) -> Result<pdpb::TsoResponse, tonic::Status> {
    let request = pdpb::TsoRequest {
        header: header(id),
        count,
        dc_location: String::new(),
    };
    let mut stream = rpc
        .tso(futures::stream::iter(vec![request]))
        .await?
        .into_inner();
    stream
        .message()
        .await?
        .ok_or_else(|| tonic::Status::unknown("stream ended"))
}

async fn alloc_id(rpc: &mut PdGrpc<Channel>, id: u64) -> u64 {
    let response = rpc
        .alloc_id(pdpb::AllocIdRequest { header: header(id) })
        .await
        .unwrap();
    response.into_inner().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_ids_and_the_cluster_id_check() {
    let dir = tempfile::tempdir().unwrap();
    let (mut rpc, _stop) = start_pd(dir.path()).await;
    let id = cluster_id(&mut rpc).await;
    let mut last = 0u64;
    for count in [1u32, 5, 64, 3] {
        let response = tso(&mut rpc, id, count).await.expect("tso");
        assert_eq!(response.count, count);
        let ts = response.timestamp.unwrap();
        assert_eq!(ts.suffix_bits, 0);
        assert!(
            ts.logical >= i64::from(count),
            "the answer is the batch's largest"
        );
        let composed = ((ts.physical as u64) << 18) | ts.logical as u64;
        assert!(
            composed - u64::from(count) + 1 > last,
            "batches never overlap"
        );
        last = composed;
    }
    let wrong = tso(&mut rpc, id + 1, 1).await.unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        tso(&mut rpc, id, 0).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    let ids: Vec<u64> = futures::future::join_all((0..20).map(|_| {
        let mut rpc = rpc.clone();
        async move { alloc_id(&mut rpc, id).await }
    }))
    .await;
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 20, "ids never repeat: {ids:?}");
    assert!(!ids.contains(&0));
    let mismatch = rpc
        .alloc_id(pdpb::AllocIdRequest {
            header: header(id ^ 1),
        })
        .await;
    assert_eq!(
        mismatch.unwrap_err().code(),
        tonic::Code::FailedPrecondition
    );
}

fn store(id: u64, address: &str) -> metapb::Store {
    metapb::Store {
        id,
        address: address.into(),
        ..Default::default()
    }
}

fn first_region(region_id: u64, peer_id: u64, store_id: u64) -> metapb::Region {
    metapb::Region {
        id: region_id,
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![metapb::Peer {
            id: peer_id,
            store_id,
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn bootstrap(
    rpc: &mut PdGrpc<Channel>,
    id: u64,
    region: metapb::Region,
) -> Option<ErrorType> {
    let request = pdpb::BootstrapRequest {
        header: header(id),
        store: Some(store(1, "s1:1")),
        region: Some(region),
    };
    error_type(&rpc.bootstrap(request).await.unwrap().into_inner().header)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_stores_and_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (mut rpc, _stop) = start_pd(dir.path()).await;
    let id = cluster_id(&mut rpc).await;
    let put = pdpb::PutStoreRequest {
        header: header(id),
        store: Some(store(9, "s9:1")),
    };
    let early = rpc.put_store(put.clone()).await.unwrap().into_inner();
    assert_eq!(error_type(&early.header), Some(ErrorType::NotBootstrapped));
    let bad = first_region(0, 2, 1);
    assert_eq!(
        bootstrap(&mut rpc, id, bad).await,
        Some(ErrorType::InvalidValue)
    );
    assert_eq!(bootstrap(&mut rpc, id, first_region(3, 2, 1)).await, None);
    assert_eq!(
        bootstrap(&mut rpc, id, first_region(3, 2, 1)).await,
        Some(ErrorType::AlreadyBootstrapped)
    );
    let bootstrapped = rpc
        .is_bootstrapped(pdpb::IsBootstrappedRequest { header: header(id) })
        .await;
    assert!(bootstrapped.unwrap().into_inner().bootstrapped);
    assert_eq!(
        error_type(&rpc.put_store(put).await.unwrap().into_inner().header),
        None
    );
    let huge = pdpb::PutStoreRequest {
        header: header(id),
        store: Some(store(u64::MAX, "s:1")),
    };
    let refused = rpc.put_store(huge).await.unwrap().into_inner();
    assert_eq!(error_type(&refused.header), Some(ErrorType::InvalidValue));
    assert_ne!(
        alloc_id(&mut rpc, id).await,
        0,
        "PD still serves after a bad request"
    );
    let unknown = rpc
        .get_store(pdpb::GetStoreRequest {
            header: header(id),
            store_id: 77,
        })
        .await;
    assert_eq!(
        error_type(&unknown.unwrap().into_inner().header),
        Some(ErrorType::Unknown)
    );
    let known = rpc
        .get_store(pdpb::GetStoreRequest {
            header: header(id),
            store_id: 9,
        })
        .await;
    assert_eq!(known.unwrap().into_inner().store.unwrap().address, "s9:1");
    let all = rpc
        .get_all_stores(pdpb::GetAllStoresRequest {
            header: header(id),
            exclude_tombstone_stores: true,
        })
        .await;
    assert_eq!(all.unwrap().into_inner().stores.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_and_split_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (mut rpc, _stop) = start_pd(dir.path()).await;
    let id = cluster_id(&mut rpc).await;
    assert_eq!(bootstrap(&mut rpc, id, first_region(3, 2, 1)).await, None);
    let region = rpc
        .get_region(pdpb::GetRegionRequest {
            header: header(id),
            region_key: b"any".to_vec(),
            need_buckets: false,
        })
        .await;
    let region = region.unwrap().into_inner();
    assert_eq!(
        region.region.unwrap().id,
        3,
        "the first region covers every key"
    );
    let hint = region.leader.expect("a leader hint before any heartbeat");
    assert_eq!(
        (hint.id, hint.store_id),
        (2, 1),
        "the first voter is the hint"
    );
    let by_id = rpc
        .get_region_by_id(pdpb::GetRegionByIdRequest {
            header: header(id),
            region_id: 4,
            need_buckets: false,
        })
        .await;
    assert!(by_id.unwrap().into_inner().region.is_none());
    let ask = |count| pdpb::AskBatchSplitRequest {
        header: header(id),
        region: Some(first_region(3, 2, 1)),
        split_count: count,
    };
    let refused = rpc.ask_batch_split(ask(0)).await.unwrap().into_inner();
    assert_eq!(error_type(&refused.header), Some(ErrorType::Unknown));
    let ids = rpc.ask_batch_split(ask(2)).await.unwrap().into_inner();
    assert_eq!(ids.ids.len(), 2);
    assert!(ids
        .ids
        .iter()
        .all(|split| split.new_peer_ids.len() == 1 && split.new_region_id > 3));
    let report = pdpb::ReportBatchSplitRequest {
        header: header(id),
        regions: vec![first_region(3, 2, 1)],
    };
    let report = rpc.report_batch_split(report).await.unwrap().into_inner();
    assert_eq!(error_type(&report.header), Some(ErrorType::InvalidValue));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gc_safe_point_never_moves_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut rpc, _stop) = start_pd(dir.path()).await;
    let id = cluster_id(&mut rpc).await;
    assert_eq!(bootstrap(&mut rpc, id, first_region(3, 2, 1)).await, None);
    let update = |safe_point| pdpb::UpdateGcSafePointRequest {
        header: header(id),
        safe_point,
    };
    let raised = rpc
        .update_gc_safe_point(update(100))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(raised.new_safe_point, 100);
    let lower = rpc
        .update_gc_safe_point(update(50))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (error_type(&lower.header), lower.new_safe_point),
        (None, 100)
    );
    let read = rpc
        .get_gc_safe_point(pdpb::GetGcSafePointRequest { header: header(id) })
        .await;
    assert_eq!(read.unwrap().into_inner().safe_point, 100);
    let config = rpc
        .get_cluster_config(pdpb::GetClusterConfigRequest { header: header(id) })
        .await;
    assert_eq!(
        config.unwrap().into_inner().cluster.unwrap().max_peer_count,
        3
    );
    let unserved = rpc
        .scatter_region(pdpb::ScatterRegionRequest {
            header: header(id),
            ..Default::default()
        })
        .await;
    assert_eq!(unserved.unwrap_err().code(), tonic::Code::Unimplemented);
}
