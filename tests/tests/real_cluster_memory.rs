//! Memory after a restart, on real processes with RocksDB: eight writers of 128-byte values
//! run against three stores; one store is SIGKILLed for three seconds while the load goes
//! on, then restarted, and catches up under load. The peak resident set of every store,
//! sampled from `/proc` every 50 ms, must stay under `RSS_BOUND_MIB`: a store once reached
//! 0.7-1 GB within seconds of such a restart (unbounded catch-up appends and queues).
#![cfg(not(madsim))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrokv_client::RawClient;
use ferrokv_tests::process_cluster::ProcessCluster;

/// The bound this test states for any store's resident set, in MiB.
const RSS_BOUND_MIB: u64 = 256;

fn spawn_writers(config: ferrokv_client::RawConfig, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..8u64)
        .map(|writer| {
            let (config, stop) = (config.clone(), stop.clone());
            tokio::spawn(async move {
                let client = RawClient::new(config);
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{writer}-{}", done % 5000);
                    if client.put(key.as_bytes(), &[b'v'; 128], 0).await.is_ok() {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect()
}

/// Samples every store's RSS every 50 ms for `secs` seconds, keeping the peaks.
async fn sample_for(cluster: &ProcessCluster, peak: &mut [u64; 4], secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        for id in 1..=3u64 {
            if let Some(rss) = cluster.rss_kib(id) {
                peak[id as usize] = peak[id as usize].max(rss);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restarted_under_load_stays_within_its_memory_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = ProcessCluster::start(dir.path(), 3, 100);
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(cluster.client_config(Duration::from_secs(10)), stop.clone());
    let mut peak = [0u64; 4];
    sample_for(&cluster, &mut peak, 8).await;
    cluster.kill(2);
    sample_for(&cluster, &mut peak, 3).await;
    cluster.restart(2);
    sample_for(&cluster, &mut peak, 15).await;
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for writer in writers {
        written += writer.await.expect("writer");
    }
    assert!(written > 500, "the load ran: {written} puts");
    assert!(cluster.is_running(2), "the restarted store runs:\n{}", cluster.log_tail(2));
    let peaks_mib: Vec<u64> = peak[1..].iter().map(|kib| kib / 1024).collect();
    println!("peak RSS per store (MiB): {peaks_mib:?}; {written} puts");
    for (store, mib) in peaks_mib.iter().enumerate() {
        assert!(
            *mib < RSS_BOUND_MIB,
            "store {} peaked at {mib} MiB (bound {RSS_BOUND_MIB} MiB)",
            store + 1
        );
    }
}
