//! The official `tikv-client` 0.4 `TransactionClient`, unmodified, against FerroKV: one PD
//! and three stores as real processes, the transactional key space split into regions at
//! transactional keys (`ferrokv ctl split --txn`), and every read checked against a model.
//!
//! Covered: an optimistic transaction over every region, scans across regions, a snapshot
//! read at an old timestamp, async commit across regions and one-phase commit, a write
//! conflict (exactly one of two conflicting transactions
//! commits), a pessimistic transaction, lock resolution after a client abandons a
//! transaction holding a lock, and a store killed and restarted mid-workload.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferrokv_compat::cluster::Cluster;
use tikv_client::{CheckLevel, TransactionClient, TransactionOptions};

const KEYS: u64 = 150;
const SPLITS: [u64; 2] = [50, 100];

fn key(i: u64) -> Vec<u8> {
    format!("tk{i:04}").into_bytes()
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Runs `body` in a fresh optimistic transaction until it commits (a failed attempt wrote
/// nothing a later read could see: the client rolled it back), at most for a minute.
macro_rules! commit_retrying {
    ($client:expr, |$txn:ident| $body:expr) => {
        commit_retrying!($client, TransactionOptions::new_optimistic(), |$txn| $body)
    };
    ($client:expr, $options:expr, |$txn:ident| $body:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let attempt = async {
                let mut $txn = $client.begin_with_options($options.clone()).await?;
                $body;
                $txn.commit().await
            };
            match attempt.await {
                Ok(_) => break,
                Err(error) if Instant::now() < deadline => {
                    eprintln!("transaction failed: {error}; retrying");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(error) => panic!("transaction never committed: {error}"),
            }
        }
    }};
}

/// Every pair, read in one snapshot at a fresh timestamp across all regions (retried on
/// failure).
async fn read_all(client: &TransactionClient) -> Model {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let now = client.current_timestamp().await?;
            let mut snapshot = client.snapshot(now, TransactionOptions::new_optimistic());
            let found = snapshot.scan(key(0)..key(KEYS), KEYS as u32 + 10).await?;
            let pairs: Model = found
                .map(|pair| (pair.key().clone().into(), pair.value().clone()))
                .collect();
            Ok::<_, tikv_client::Error>(pairs)
        };
        match attempt.await {
            Ok(pairs) => return pairs,
            Err(error) if Instant::now() < deadline => {
                eprintln!("scan failed: {error}; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(error) => panic!("scan never succeeded: {error}"),
        }
    }
}

async fn run(cluster: &mut Cluster) {
    for split in SPLITS {
        let at = String::from_utf8(key(split)).unwrap();
        let mut done = false;
        for _ in 0..60 {
            if cluster.ctl(&["split", "--txn", &at]).is_some() {
                done = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(done, "split at transactional key {at} failed");
    }
    let regions = cluster.wait_for_regions(3, Duration::from_secs(60));
    assert!(
        regions >= 3,
        "three regions for the transactional keys, PD knows {regions}"
    );
    let client = TransactionClient::new(vec![cluster.pd.clone()])
        .await
        .unwrap();
    let mut model = Model::new();

    // An optimistic transaction writing into every region; scans across regions.
    commit_retrying!(client, |txn| for i in 0..KEYS {
        txn.put(key(i), format!("v1-{i}").into_bytes()).await?;
    });
    for i in 0..KEYS {
        model.insert(key(i), format!("v1-{i}").into_bytes());
    }
    assert_eq!(read_all(&client).await, model, "every pair, across regions");
    let before_overwrite = client.current_timestamp().await.unwrap();

    // A snapshot at an old timestamp sees the old value.
    commit_retrying!(client, |txn| txn.put(key(10), b"v2".to_vec()).await?);
    model.insert(key(10), b"v2".to_vec());
    let mut old = client.snapshot(before_overwrite, TransactionOptions::new_optimistic());
    assert_eq!(old.get(key(10)).await.unwrap(), Some(b"v1-10".to_vec()));
    assert_eq!(read_all(&client).await, model);

    // Async commit across every region, then one-phase commit within one region: both
    // commit at a timestamp the stores compute, above every read they served (a new
    // leader syncs its max_ts with PD first, within a heartbeat poll of its election).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let async_commit = TransactionOptions::new_optimistic().use_async_commit();
    commit_retrying!(client, async_commit, |txn| for i in [5, 55, 105] {
        txn.put(key(i), format!("async-{i}").into_bytes()).await?;
    });
    for i in [5, 55, 105] {
        model.insert(key(i), format!("async-{i}").into_bytes());
    }
    assert_eq!(
        read_all(&client).await,
        model,
        "async commit across regions"
    );
    let one_pc = TransactionOptions::new_optimistic().try_one_pc();
    commit_retrying!(client, one_pc, |txn| for i in [6, 7] {
        txn.put(key(i), format!("one-pc-{i}").into_bytes()).await?;
    });
    for i in [6, 7] {
        model.insert(key(i), format!("one-pc-{i}").into_bytes());
    }
    assert_eq!(read_all(&client).await, model, "one-phase commit");

    // A write conflict: the second to commit fails, the first one's value stays.
    let mut first = client.begin_optimistic().await.unwrap();
    let mut second = client.begin_optimistic().await.unwrap();
    first.put(key(20), b"first".to_vec()).await.unwrap();
    second.put(key(20), b"second".to_vec()).await.unwrap();
    first.commit().await.expect("the first commit wins");
    let refused = second
        .commit()
        .await
        .expect_err("the second commit meets the newer write");
    let shown = format!("{refused:?}").to_lowercase();
    assert!(
        shown.contains("conflict"),
        "refused as a write conflict, not for another reason: {refused:?}"
    );
    model.insert(key(20), b"first".to_vec());
    assert_eq!(
        read_all(&client).await,
        model,
        "exactly one of the two committed"
    );

    // A pessimistic transaction.
    let mut pessimistic = client.begin_pessimistic().await.unwrap();
    let current = pessimistic.get_for_update(key(30)).await.unwrap();
    assert_eq!(current, Some(b"v1-30".to_vec()));
    pessimistic
        .put(key(30), b"pessimistic".to_vec())
        .await
        .unwrap();
    pessimistic.commit().await.unwrap();
    model.insert(key(30), b"pessimistic".to_vec());
    assert_eq!(read_all(&client).await, model);

    // A client abandons a transaction holding a lock: others resolve it once its TTL ran
    // out and go on.
    let options = TransactionOptions::new_pessimistic()
        .drop_check(CheckLevel::None)
        .heartbeat_option(tikv_client::transaction::HeartbeatOption::NoHeartbeat);
    let mut abandoned = client.begin_with_options(options).await.unwrap();
    abandoned.lock_keys(vec![key(40)]).await.unwrap();
    drop(abandoned);
    let started = Instant::now();
    commit_retrying!(client, |txn| txn
        .put(key(40), b"after-abandon".to_vec())
        .await?);
    eprintln!(
        "the abandoned lock was resolved after {:?}",
        started.elapsed()
    );
    model.insert(key(40), b"after-abandon".to_vec());
    assert_eq!(read_all(&client).await, model);

    // A store killed mid-workload, then restarted.
    cluster.kill_store(1);
    for round in 0..10u64 {
        let i = 60 + round * 7;
        let value = format!("killed-{round}").into_bytes();
        commit_retrying!(client, |txn| txn.put(key(i), value.clone()).await?);
        model.insert(key(i), value);
    }
    cluster.restart_store(1);
    for round in 0..5u64 {
        let i = 120 + round;
        let value = format!("restarted-{round}").into_bytes();
        commit_retrying!(client, |txn| txn.put(key(i), value.clone()).await?);
        model.insert(key(i), value);
    }
    assert_eq!(
        read_all(&client).await,
        model,
        "nothing lost across the kill"
    );
    eprintln!("txn compat: {} keys checked", model.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_transaction_client_against_ferrokv() {
    let mut cluster = Cluster::start(3, 64 * 1024 * 1024);
    let outcome = tokio::time::timeout(Duration::from_secs(600), run(&mut cluster)).await;
    assert!(
        outcome.is_ok(),
        "the transaction compatibility run did not finish in 10 minutes"
    );
}
