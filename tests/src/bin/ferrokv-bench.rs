//! `ferrokv-bench raw`: raw put and get throughput and latency on a 3-replica cluster of
//! real `ferrokv-server` processes on loopback, with 1 and 64 concurrent clients.
//! `ferrokv-bench txn`: 2-key transfer transactions (read both, write both, two-phase
//! commit) beside raw puts, with 1 and 64 clients, each also as a ratio to raw put.
//!
//! Every figure is also given as a ratio against a baseline measured in the same run on the
//! same disk: single-node RocksDB synced puts from one thread (what one fsync per write
//! costs here). Run it through `ci/bench.sh raw|txn`. Transactions take their timestamps
//! from a local oracle in the bench process (the cluster runs without PD): a PD TSO adds
//! one round trip for start_ts and one for commit_ts.

#[cfg(not(madsim))]
mod bench {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use ferrokv_client::txn::{Oracle, TxnClient, TxnError};
    use ferrokv_client::RawClient;
    use ferrokv_core::env::{Cf, KvEngine, Rng, SeededRng, WriteBatch, WriteOptions};
    use ferrokv_core::types::TimeStamp;
    use ferrokv_server::io::RocksEngine;
    use ferrokv_tests::process_cluster::ProcessCluster;

    const KEYS: u64 = 10_000;
    const VALUE_BYTES: usize = 128;

    /// Operations and their latencies over one phase.
    pub struct Phase {
        ops: usize,
        elapsed: Duration,
        latencies: Vec<Duration>,
        errors: usize,
    }

    impl Phase {
        fn ops_per_second(&self) -> f64 {
            self.ops as f64 / self.elapsed.as_secs_f64()
        }

        fn percentile(&mut self, fraction: f64) -> Duration {
            self.latencies.sort_unstable();
            let index = ((self.latencies.len() as f64 * fraction) as usize)
                .min(self.latencies.len().saturating_sub(1));
            self.latencies.get(index).copied().unwrap_or_default()
        }
    }

    fn key(i: u64) -> Vec<u8> {
        format!("bench{i:08}").into_bytes()
    }

    fn baseline(seconds: u64) -> Phase {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = RocksEngine::open(dir.path()).expect("open rocksdb");
        let value = vec![7u8; VALUE_BYTES];
        let mut rng = SeededRng::new(1);
        let mut latencies = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(seconds) {
            let mut batch = WriteBatch::new();
            batch.put(Cf::Raw, &key(rng.below(KEYS)), &value);
            let began = Instant::now();
            engine
                .write(&batch, WriteOptions::SYNC)
                .expect("sync write");
            latencies.push(began.elapsed());
        }
        Phase {
            ops: latencies.len(),
            elapsed: start.elapsed(),
            latencies,
            errors: 0,
        }
    }

    /// What a bench worker does, one operation at a time.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Op {
        Put,
        Get,
        /// A transaction moving 1 from one account to another.
        Transfer,
    }

    /// The clients a phase uses.
    struct Clients {
        raw: RawClient,
        txn: TxnClient,
    }

    /// Timestamps from the bench process's clock: physical milliseconds since the epoch,
    /// strictly increasing.
    fn local_oracle() -> Oracle {
        let last = Arc::new(std::sync::Mutex::new(0u64));
        Oracle::Local(Arc::new(move || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970");
            let physical = u64::try_from(now.as_millis()).expect("ms fit");
            let mut last = last.lock().expect("oracle lock");
            *last = (*last + 1).max(TimeStamp::compose(physical, 0).get());
            TimeStamp(*last)
        }))
    }

    fn balance(found: Option<Vec<u8>>) -> i64 {
        found
            .and_then(|v| v.try_into().ok())
            .map_or(0, i64::from_be_bytes)
    }

    /// One transfer; a write conflict counts as an error (the bench does not retry).
    async fn transfer(client: &TxnClient, rng: &mut SeededRng) -> Result<(), TxnError> {
        let from = key(rng.below(KEYS));
        let to = key(rng.below(KEYS));
        if from == to {
            return Ok(());
        }
        let mut txn = client.begin().await?;
        let (a, b) = (balance(txn.get(&from).await?), balance(txn.get(&to).await?));
        txn.put(from, (a - 1).to_be_bytes().to_vec());
        txn.put(to, (b + 1).to_be_bytes().to_vec());
        txn.commit().await.map(|_| ())
    }

    async fn phase(clients_of: Arc<Clients>, clients: usize, seconds: u64, op: Op) -> Phase {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..clients {
            let both = clients_of.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = SeededRng::new(worker as u64 + 100);
                let value = vec![9u8; VALUE_BYTES];
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < deadline {
                    let k = key(rng.below(KEYS));
                    let began = Instant::now();
                    let ok = match op {
                        Op::Put => both.raw.put(&k, &value, 0).await.is_ok(),
                        Op::Get => both.raw.get(&k).await.is_ok(),
                        Op::Transfer => transfer(&both.txn, &mut rng).await.is_ok(),
                    };
                    if ok {
                        latencies.push(began.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            }));
        }
        let mut merged = Phase {
            ops: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
            errors: 0,
        };
        for task in tasks {
            let (latencies, errors) = task.await.expect("bench worker");
            merged.latencies.extend(latencies);
            merged.errors += errors;
        }
        merged.elapsed = start.elapsed();
        merged.ops = merged.latencies.len();
        merged
    }

    /// Prints a phase; returns its throughput. `peer` adds a ratio to another phase of
    /// the same run (name, ops/s).
    fn report(name: &str, mut phase: Phase, baseline_ops: f64, peer: Option<(&str, f64)>) -> f64 {
        let ops = phase.ops_per_second();
        let p50 = phase.percentile(0.50);
        let p99 = phase.percentile(0.99);
        let versus = peer.map_or(String::new(), |(peer, peer_ops)| {
            format!("  {:>6.3}x {peer}", ops / peer_ops)
        });
        println!(
            "{name:<22} {ops:>10.0} ops/s  {ratio:>6.2}x baseline  p50 {p50:>9.3?}  p99 {p99:>9.3?}  errors {errors}{versus}",
            ratio = ops / baseline_ops,
            errors = phase.errors,
        );
        ops
    }

    pub fn run(seconds: u64, transactions: bool) {
        let mut base = baseline(seconds);
        let base_ops = base.ops_per_second();
        println!("baseline: single-node RocksDB synced put, 1 thread, same disk");
        println!(
            "{:<22} {base_ops:>10.0} ops/s  {:>6.2}x baseline  p50 {:>9.3?}  p99 {:>9.3?}",
            "rocksdb sync put",
            1.0,
            base.percentile(0.5),
            base.percentile(0.99)
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = ProcessCluster::start(dir.path(), 3, 100);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let config = cluster.client_config(Duration::from_secs(10));
            let client = Arc::new(Clients {
                raw: RawClient::new(config.clone()),
                txn: TxnClient::new(RawClient::new(config), local_oracle()),
            });
            client
                .raw
                .put(b"warmup", b"1", 0)
                .await
                .expect("cluster comes up");
            for clients in [1usize, 64] {
                let puts = phase(client.clone(), clients, seconds, Op::Put).await;
                let put_name = format!("3-replica put, c={clients}");
                let put_ops = report(&put_name, puts, base_ops, None);
                let (second, name) = if transactions {
                    (Op::Transfer, format!("2-key transfer, c={clients}"))
                } else {
                    (Op::Get, format!("3-replica get, c={clients}"))
                };
                let done = phase(client.clone(), clients, seconds, second).await;
                report(&name, done, base_ops, Some(("raw put", put_ops)));
            }
        });
        drop(cluster);
    }
}

#[cfg(not(madsim))]
fn main() {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_default();
    let seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    match workload.as_str() {
        "raw" => bench::run(seconds, false),
        "txn" => bench::run(seconds, true),
        other => {
            eprintln!(
                "usage: ferrokv-bench raw|txn [seconds-per-phase]   (unknown workload {other:?})"
            );
            std::process::exit(2);
        }
    }
}

#[cfg(madsim)]
fn main() {
    eprintln!("ferrokv-bench runs real processes and is not built for simulation");
    std::process::exit(2);
}
