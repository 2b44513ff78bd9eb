//! The node loop of real store nodes inside madsim: ticks keep coming while the mailbox is
//! flooded with requests (heartbeats, check-quorum and lease renewal never starve), and
//! routing reports are cheap (no data hashing unless asked). Compiled only under
//! `--cfg madsim`.
#![cfg(madsim)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrokv_client::admin::{region_reports, region_routes, store_report};
use ferrokv_server::config::RaftSection;
use ferrokv_sim::cluster::{raw_client, SimCluster};

async fn leader(cluster: &SimCluster) -> u64 {
    loop {
        for store in cluster.stores() {
            if let Some(infos) = region_routes(&store.addr).await {
                if let Some(leader) = infos.iter().find_map(|i| i.leader) {
                    return leader.store_id;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A node whose mailbox is never empty when its loop looks (five hundred tasks, each sending
/// its next request the moment the last is answered; compute takes no simulated time, so
/// only this keeps a mailbox full inside madsim) still ticks once per tick interval: ticks
/// are due by deadline, checked on every iteration, not a branch that input can starve.
#[madsim::test]
async fn a_node_with_a_mailbox_that_is_never_empty_still_ticks() {
    use ferrokv_core::env::{KvEngine, SeededRng};
    use ferrokv_core::raw::RawRead;
    use ferrokv_core::store::{bootstrap_region, Request, RequestHeader, Store};
    use ferrokv_core::types::{RegionEpoch, RegionId, StoreId};
    use ferrokv_proto::metapb;
    use ferrokv_server::clock::RuntimeClock;
    use ferrokv_server::node::Node;
    use ferrokv_sim::engine::{SimDisk, SimEngine};

    struct Nowhere;
    impl ferrokv_core::env::Transport for Nowhere {
        fn send(
            &self,
            _: StoreId,
            _: ferrokv_proto::ferrokv_raftpb::RaftMessage,
        ) -> Result<(), ferrokv_core::env::SendError> {
            Ok(())
        }
    }
    let engine = SimEngine::open(&SimDisk::new()).unwrap();
    let region = metapb::Region {
        id: 1,
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![metapb::Peer {
            id: 1,
            store_id: 1,
            ..Default::default()
        }],
        ..Default::default()
    };
    bootstrap_region(&engine, &region).unwrap();
    let config = ferrokv_core::raft::RaftConfig::default();
    let store = Store::load(engine.clone(), StoreId(1), config, SeededRng::new(1)).unwrap();
    let (node, handle) = Node::new(store, Nowhere, RuntimeClock::new());
    madsim::task::spawn(node.run());
    tokio::time::sleep(Duration::from_secs(3)).await; // the single voter elects itself
    let before = handle.report(false).await.unwrap().counters.ticks;
    let stop = Arc::new(AtomicBool::new(false));
    let header = RequestHeader {
        region_id: RegionId(1),
        epoch: RegionEpoch {
            conf_ver: 1,
            version: 1,
        },
    };
    let mut floods = Vec::new();
    for _ in 0..500 {
        let (handle, stop, header) = (handle.clone(), stop.clone(), header.clone());
        floods.push(madsim::task::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let read = RawRead::Get { key: b"k".to_vec() };
                let _ = handle
                    .request(Request::Read {
                        header: header.clone(),
                        read,
                        now_ms: 0,
                    })
                    .await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let after = handle.report(false).await.unwrap().counters.ticks;
    for flood in floods {
        flood.await.unwrap();
    }
    assert!(
        after - before >= 45,
        "{} ticks in 5 s of 100 ms ticks",
        after - before
    );
    drop(engine.snapshot());
}

/// Sixty-four clients keep the leader's mailbox busy for ten seconds over the network: its
/// loop keeps ticking, and the followers (which hear its heartbeats) never start an
/// election.
#[madsim::test]
async fn ticks_keep_coming_while_the_mailbox_is_flooded() {
    let cluster = Arc::new(SimCluster::start(3, 3, RaftSection::default()));
    let control = cluster.client_node("control", 200);
    let config = cluster.client_config();
    let check = cluster.clone();
    control
        .spawn(async move {
            let leader_id = leader(&check).await;
            let addr = check.store(leader_id).addr.clone();
            let before = store_report(&addr, false).await.unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let mut floods = Vec::new();
            for n in 0..64u64 {
                let (config, stop) = (config.clone(), stop.clone());
                floods.push(madsim::task::spawn(async move {
                    let client = raw_client(config);
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let key = format!("k{}", (n * 7 + i) % 50).into_bytes();
                        let _ = if i.is_multiple_of(2) {
                            client.get(&key).await.map(|_| ())
                        } else {
                            client.put(&key, &i.to_be_bytes(), 0).await
                        };
                    }
                }));
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
            stop.store(true, Ordering::Relaxed);
            for flood in floods {
                flood.await.unwrap();
            }
            let after = store_report(&addr, false).await.unwrap();
            let ticks = after.counters.unwrap().ticks - before.counters.unwrap().ticks;
            assert!(ticks >= 90, "{ticks} ticks in 10 s of 100 ms ticks");
            let term = |r: &ferrokv_proto::ferrokv_raftpb::RegionInfoResponse| r.regions[0].term;
            assert_eq!(term(&before), term(&after), "no election under load");
            assert_eq!(leader(&check).await, leader_id, "the leader kept its lead");
        })
        .await
        .unwrap();
}

/// Routing reports leave data hashes out (a full scan of every region, inside the node
/// loop, on every route miss, is what it used to cost); check reports include them.
#[madsim::test]
async fn routing_reports_do_not_hash_data() {
    let cluster = Arc::new(SimCluster::start(3, 3, RaftSection::default()));
    let control = cluster.client_node("control", 200);
    let config = cluster.client_config();
    let check = cluster.clone();
    control
        .spawn(async move {
            let client = raw_client(config);
            for i in 0..20u32 {
                client
                    .put(format!("k{i}").as_bytes(), b"v", 0)
                    .await
                    .unwrap();
            }
            let addr = check.store(leader(&check).await).addr.clone();
            let routes = region_routes(&addr).await.unwrap();
            assert!(routes.iter().all(|info| info.data_hash == 0), "{routes:?}");
            let reports = region_reports(&addr).await.unwrap();
            assert!(
                reports.iter().all(|info| info.data_hash != 0),
                "{reports:?}"
            );
        })
        .await
        .unwrap();
}
