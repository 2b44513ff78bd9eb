//! Three real store nodes (SimEngine) on one region inside madsim: a write load runs while
//! the leader and then a follower are killed (losing unsynced writes) and restarted, and a
//! node is partitioned. Afterwards every acknowledged put is readable and all replicas hold
//! byte-identical applied state. Compiled only under `--cfg madsim`.
#![cfg(madsim)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_server::config::RaftSection;
use ferrokv_sim::cluster::{raw_client, region_reports, SimCluster};
use ferrokv_sim::engine::CrashTail;

const KEYS: u64 = 50;

fn key(i: u64) -> Vec<u8> {
    format!("key{i:04}").into_bytes()
}

async fn leader_store(cluster: &SimCluster) -> Option<u64> {
    for store in cluster.stores() {
        if let Some(reports) = region_reports(&store.addr).await {
            if let Some(leader) = reports.iter().find_map(|r| r.leader) {
                return Some(leader.store_id);
            }
        }
    }
    None
}

#[madsim::test]
async fn replicas_survive_kills_restarts_and_a_partition_under_load() {
    let raft = RaftSection {
        log_gc_count_threshold: 64,
        ..RaftSection::default()
    };
    let cluster = Arc::new(SimCluster::start(3, 3, raft));
    let client_node = cluster.client_node("client", 1);
    let acked: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let load = {
        let config = cluster.client_config();
        let acked = acked.clone();
        client_node.spawn(async move {
            let client = raw_client(config);
            for round in 0..400u64 {
                let i = round % KEYS;
                if client.put(&key(i), &round.to_be_bytes(), 0).await.is_ok() {
                    acked.lock().unwrap().insert(i, round);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let chaos = {
        let cluster = cluster.clone();
        client_node.spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let leader = leader_store(&cluster).await.expect("a leader");
            cluster.kill(leader, CrashTail::DropAll);
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.restart(leader);
            tokio::time::sleep(Duration::from_secs(3)).await;
            let leader = leader_store(&cluster).await.expect("a leader");
            let follower = (1..=3).find(|id| *id != leader).unwrap();
            cluster.kill(follower, CrashTail::KeepPrefix(100));
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.restart(follower);
            tokio::time::sleep(Duration::from_secs(2)).await;
            let victim = (1..=3).find(|id| *id != follower).unwrap();
            cluster.isolate(victim);
            tokio::time::sleep(Duration::from_secs(4)).await;
            cluster.reconnect(victim);
        })
    };
    load.await.unwrap();
    chaos.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() as u64 == KEYS,
        "every key got at least one acknowledged put"
    );
    let config = cluster.client_config();
    let cluster_for_check = cluster.clone();
    let (reads, reports) = client_node
        .spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let client = raw_client(config);
            let mut reads = BTreeMap::new();
            for i in 0..KEYS {
                reads.insert(i, client.get(&key(i)).await.expect("read after healing"));
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            let mut reports = Vec::new();
            for store in cluster_for_check.stores() {
                reports.push(region_reports(&store.addr).await.expect("store reports"));
            }
            (reads, reports)
        })
        .await
        .unwrap();
    for (i, round) in &acked {
        let found = reads[i]
            .as_ref()
            .map(|v| u64::from_be_bytes(v.as_slice().try_into().unwrap()));
        assert!(
            found >= Some(*round),
            "key {i}: acknowledged round {round}, read {found:?}"
        );
    }
    let states: Vec<(u64, u64)> = reports
        .iter()
        .map(|r| (r[0].applied_index, r[0].data_hash))
        .collect();
    assert!(
        states.windows(2).all(|w| w[0] == w[1]),
        "replicas diverged: {states:?}"
    );
}
