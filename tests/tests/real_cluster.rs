//! Three `ferrokv-server` processes on loopback with RocksDB: raw puts, gets and scans over
//! gRPC; one store is SIGKILLed, the cluster keeps serving, the store restarts and catches
//! up to byte-identical applied state.
#![cfg(not(madsim))]

use std::time::{Duration, Instant};

use ferrokv_client::admin::region_reports;
use ferrokv_client::RawClient;
use ferrokv_tests::process_cluster::ProcessCluster;

fn key(i: u32) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

/// Puts until acknowledged. The client reports an ambiguous outcome instead of retrying a
/// write itself; this test only checks final values, so retrying here is harmless.
async fn put(client: &RawClient, i: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.put(&key(i), format!("v{i}").as_bytes(), 0).await {
            Ok(()) => return,
            Err(error) => assert!(Instant::now() < deadline, "put {i}: {error}"),
        }
    }
}

async fn converged(cluster: &ProcessCluster) -> Option<Vec<(u64, u64)>> {
    let mut states = Vec::new();
    for addr in cluster.addrs.values() {
        let reports = region_reports(addr).await?;
        let region = reports.first()?;
        states.push((region.applied_index, region.data_hash));
    }
    states.windows(2).all(|w| w[0] == w[1]).then_some(states)
}

async fn leader(cluster: &ProcessCluster) -> Option<u64> {
    for addr in cluster.addrs.values() {
        if let Some(leader) = region_reports(addr)
            .await
            .and_then(|r| r.first().and_then(|r| r.leader))
        {
            return Some(leader.store_id);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_serve_survive_sigkill_and_catch_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = ProcessCluster::start(dir.path(), 3, 100);
    let client = RawClient::new(cluster.client_config(Duration::from_secs(30)));
    for i in 0..200 {
        put(&client, i).await;
    }
    for i in (0..200).step_by(17) {
        assert_eq!(
            client.get(&key(i)).await.unwrap(),
            Some(format!("v{i}").into_bytes())
        );
    }
    let scanned = client.scan(&key(10), &key(20), 100).await.unwrap();
    assert_eq!(
        scanned.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        (10..20).map(key).collect::<Vec<_>>()
    );

    let victim = leader(&cluster).await.expect("a leader is known");
    cluster.kill(victim);
    for i in 200..400 {
        put(&client, i).await;
    }
    assert_eq!(client.get(&key(399)).await.unwrap(), Some(b"v399".to_vec()));

    cluster.restart(victim);
    let deadline = Instant::now() + Duration::from_secs(60);
    let states = loop {
        if let Some(states) = converged(&cluster).await {
            break states;
        }
        assert!(
            Instant::now() < deadline,
            "store {victim} did not catch up:\n{}",
            cluster.log_tail(victim)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        states[0].0 > 400,
        "applied index covers every write: {states:?}"
    );
    assert!(cluster.is_running(victim));
    for i in 0..400 {
        assert_eq!(
            client.get(&key(i)).await.unwrap(),
            Some(format!("v{i}").into_bytes()),
            "key {i}"
        );
    }
}
