//! `ferrokv-bench compare`: FerroKV's 3-replica cluster beside a 3-member etcd cluster,
//! on the same loopback and disk, in one run: put, linearizable get and a 50/50 mix at
//! 1, 16, 64 and 256 clients, each phase run on etcd and then on FerroKV; plus the
//! storage ceiling (RocksDB's db_bench, the disk's fsync rate). One table, and the same
//! rows as JSON with `--json FILE`.
//!
//! `ferrokv-bench txn`: 2-key transfer transactions (read both, write both, two-phase
//! commit; timestamps from a local oracle in the bench process, as the cluster runs
//! without PD) beside raw put on the same cluster, at 1 and 64 clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrokv_client::txn::{Oracle, TxnClient, TxnError};
use ferrokv_client::RawClient;
use ferrokv_core::env::{Rng, SeededRng};
use ferrokv_core::types::TimeStamp;
use ferrokv_proto::ferrokv_raftpb::StoreCounters;
use ferrokv_tests::process_cluster::{free_port, ProcessCluster};

use crate::etcd::{EtcdClient, EtcdCluster};
use crate::peers::{db_bench, fsync_probe};
use crate::stats::{CpuMeter, Phase};
use crate::table::{Row, Table};

/// Keys written and read: 16 bytes each.
const KEYS: u64 = 10_000;
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 256;

/// What the load tool sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Put,
    Get,
    /// Half puts, half gets.
    Mix,
    /// A transaction moving 1 from one key to another (FerroKV only).
    Transfer,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::Mix => "mix 50/50",
            Workload::Transfer => "2-key transfer",
        }
    }
}

/// A system under load.
#[derive(Clone)]
enum System {
    Ferro(Arc<RawClient>, Arc<TxnClient>),
    /// Worker `w` talks to member `w % members`, as etcd's client balances.
    Etcd(Arc<Vec<EtcdClient>>),
}

impl System {
    fn name(&self) -> &'static str {
        match self {
            System::Ferro(..) => "ferrokv",
            System::Etcd(_) => "etcd",
        }
    }

    async fn put(&self, worker: usize, key: &[u8], value: &[u8]) -> bool {
        match self {
            System::Ferro(client, _) => client.put(key, value, 0).await.is_ok(),
            System::Etcd(members) => members[worker % members.len()]
                .put(key, value)
                .await
                .is_ok(),
        }
    }

    async fn get(&self, worker: usize, key: &[u8]) -> bool {
        match self {
            System::Ferro(client, _) => client.get(key).await.is_ok(),
            System::Etcd(members) => members[worker % members.len()].get(key).await.is_ok(),
        }
    }

    /// One transfer between two random keys; a write conflict counts as an error (not
    /// retried).
    async fn transfer(&self, rng: &mut SeededRng) -> bool {
        let System::Ferro(_, txn) = self else {
            return false;
        };
        let (from, to) = (key(rng.below(KEYS)), key(rng.below(KEYS)));
        from == to || transfer(txn, from, to).await.is_ok()
    }
}

async fn transfer(client: &TxnClient, from: Vec<u8>, to: Vec<u8>) -> Result<(), TxnError> {
    let balance = |found: Option<Vec<u8>>| {
        found
            .and_then(|v| <[u8; 8]>::try_from(v).ok())
            .map_or(0, i64::from_be_bytes)
    };
    let mut txn = client.begin().await?;
    let (a, b) = (balance(txn.get(&from).await?), balance(txn.get(&to).await?));
    txn.put(from, (a - 1).to_be_bytes().to_vec());
    txn.put(to, (b + 1).to_be_bytes().to_vec());
    txn.commit().await.map(|_| ())
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

impl System {
    /// FerroKV's clients over `cluster`.
    fn ferro(cluster: &ProcessCluster) -> System {
        let config = cluster.client_config(Duration::from_secs(10));
        let txn = TxnClient::new(RawClient::new(config.clone()), local_oracle());
        System::Ferro(Arc::new(RawClient::new(config)), Arc::new(txn))
    }
}

fn key(i: u64) -> Vec<u8> {
    let key = format!("bench{i:011}").into_bytes();
    assert_eq!(key.len(), KEY_BYTES);
    key
}

/// Runs `workload` with `clients` concurrent clients for `seconds`.
async fn phase(
    system: &System,
    workload: Workload,
    clients: usize,
    seconds: u64,
    cpu: &CpuMeter,
) -> Phase {
    let cpu_before = cpu.seconds();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let began = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let system = system.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = SeededRng::new(worker as u64 + 1);
            let value = vec![b'v'; VALUE_BYTES];
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let k = key(rng.below(KEYS));
                let put = match workload {
                    Workload::Put => true,
                    Workload::Get | Workload::Transfer => false,
                    Workload::Mix => rng.ratio(1, 2),
                };
                let one = Instant::now();
                let ok = if workload == Workload::Transfer {
                    system.transfer(&mut rng).await
                } else if put {
                    system.put(worker, &k, &value).await
                } else {
                    system.get(worker, &k).await
                };
                if ok {
                    latencies.push(one.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut merged = Phase::default();
    for task in tasks {
        let (latencies, errors) = task.await.expect("bench worker");
        merged.latencies.extend(latencies);
        merged.errors += errors;
    }
    merged.elapsed = began.elapsed();
    merged.cpu_seconds = cpu.seconds() - cpu_before;
    merged
}

/// Writes every key once (64 clients), so gets find values.
async fn preload(system: &System) {
    let mut tasks = Vec::new();
    for worker in 0..64usize {
        let system = system.clone();
        tasks.push(tokio::spawn(async move {
            let value = vec![b'v'; VALUE_BYTES];
            for i in (worker as u64..KEYS).step_by(64) {
                for _ in 0..10 {
                    if system.put(worker, &key(i), &value).await {
                        break;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("preload worker");
    }
}

/// The node counters of every store, by address (`None` for a store that did not answer).
async fn node_counters(addrs: &[String]) -> Vec<Option<StoreCounters>> {
    let mut all = Vec::new();
    for addr in addrs {
        let report = ferrokv_client::admin::store_report(addr, false).await;
        all.push(report.and_then(|r| r.counters));
    }
    all
}

/// Where a single-client put's time went, from the stores' node counters over the phase:
/// the leader's node time per request and per log-sync drive, the followers' log-sync
/// drives, and what is left outside the leader's node.
fn write_path(
    phase: &Phase,
    before: &[Option<StoreCounters>],
    after: &[Option<StoreCounters>],
) -> Option<String> {
    let ms = |ns: u64, n: u64| ns as f64 / n.max(1) as f64 / 1e6;
    let deltas: Vec<(u64, u64, u64, u64)> = before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            let (b, a) = ((*b)?, (*a)?);
            Some((
                a.requests_answered - b.requests_answered,
                a.request_ns - b.request_ns,
                a.sync_drives - b.sync_drives,
                a.sync_drive_ns - b.sync_drive_ns,
            ))
        })
        .collect::<Option<_>>()?;
    let leader = (0..deltas.len()).max_by_key(|i| deltas[*i].0)?;
    let (requests, request_ns, syncs, sync_ns) = deltas[leader];
    let follower_syncs: (u64, u64) = deltas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .fold((0, 0), |(n, ns), (_, d)| (n + d.2, ns + d.3));
    let client = phase.mean().as_secs_f64() * 1e3;
    let in_node = ms(request_ns, requests);
    Some(format!(
        "write path, put c=1: client mean {client:.3} ms; in the leader's node {in_node:.3} ms \
         per request, its log-sync drives {:.3} ms ({syncs} of them), the followers' \
         {:.3} ms; outside the leader's node (gRPC, loopback, client, scheduling) {:.3} ms",
        ms(sync_ns, syncs),
        ms(follower_syncs.1, follower_syncs.0),
        client - in_node
    ))
}

/// Options of a compare run.
#[derive(Debug)]
pub struct Options {
    pub seconds: u64,
    pub clients: Vec<usize>,
    pub json: Option<std::path::PathBuf>,
}

/// The storage ceiling rows: fsync rate and db_bench.
fn storage_rows(dir: &std::path::Path, seconds: u64, table: &mut Table) {
    match fsync_probe(dir, seconds.min(5)) {
        Ok(mut fsync) => table.push(Row::of("disk", "4 KiB write + fdatasync", 1, &mut fsync)),
        Err(error) => eprintln!("fsync probe failed: {error}"),
    }
    let db = dir.join("db_bench");
    for (benchmark, label) in [
        ("fillrandom", "fillrandom sync=1"),
        ("readrandom", "readrandom"),
    ] {
        for threads in [1usize, 64] {
            match db_bench(&db, benchmark, threads, seconds, KEY_BYTES, VALUE_BYTES) {
                Some(found) => table.push(Row::db_bench(label, threads, &found)),
                None => {
                    eprintln!("db_bench {benchmark} unavailable (apt-get install rocksdb-tools)")
                }
            }
        }
    }
}

pub fn run(options: &Options) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut table = Table::default();
    println!(
        "storage ceiling: fsync probe and db_bench ({} s each)",
        options.seconds
    );
    storage_rows(dir.path(), options.seconds, &mut table);
    let ports = [(); 3].map(|()| (free_port(), free_port()));
    let etcd = EtcdCluster::start(dir.path(), &ports);
    let ferro = ProcessCluster::start(dir.path(), 3, 100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut notes = Vec::new();
    runtime.block_on(async {
        let mut systems = Vec::new();
        if let Some(etcd) = &etcd {
            match etcd.wait_ready(Duration::from_secs(30)).await {
                Ok(()) => {
                    let mut members = Vec::new();
                    for address in &etcd.clients {
                        members.push(EtcdClient::connect(address).await.expect("etcd client"));
                    }
                    systems.push((System::Etcd(Arc::new(members)), CpuMeter::new(etcd.pids())));
                }
                Err(error) => eprintln!("{error}"),
            }
        } else {
            eprintln!("etcd not installed (apt-get install etcd-server): FerroKV alone");
        }
        let system = System::ferro(&ferro);
        assert!(system.put(0, b"warmup", b"1").await, "FerroKV comes up");
        systems.push((system, CpuMeter::new(ferro.pids())));
        for (system, _) in &systems {
            preload(system).await;
        }
        let addrs: Vec<String> = ferro.addrs.values().cloned().collect();
        for workload in [Workload::Put, Workload::Get, Workload::Mix] {
            for &clients in &options.clients {
                for (system, cpu) in &systems {
                    let breakdown = matches!(system, System::Ferro(..))
                        && workload == Workload::Put
                        && clients == 1;
                    let before = node_counters(&addrs).await;
                    let mut done = phase(system, workload, clients, options.seconds, cpu).await;
                    if breakdown {
                        let after = node_counters(&addrs).await;
                        notes.extend(write_path(&done, &before, &after));
                    }
                    let row = Row::of(system.name(), workload.name(), clients, &mut done);
                    println!("{}", row.line(None));
                    table.push(row);
                }
            }
        }
    });
    drop(ferro);
    drop(etcd);
    println!();
    table.print();
    for note in &notes {
        println!("{note}");
    }
    if let Some(path) = &options.json {
        std::fs::write(path, table.json()).expect("write the JSON rows");
        println!("rows written to {}", path.display());
    }
}

/// `ferrokv-bench txn`: raw put, then transfers, at 1 and 64 clients, on one cluster.
pub fn run_txn(seconds: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = ProcessCluster::start(dir.path(), 3, 100);
    let cpu = CpuMeter::new(cluster.pids());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let system = System::ferro(&cluster);
        assert!(system.put(0, b"warmup", b"1").await, "FerroKV comes up");
        for clients in [1usize, 64] {
            let mut puts = phase(&system, Workload::Put, clients, seconds, &cpu).await;
            let put = Row::of("ferrokv", "put", clients, &mut puts);
            let mut done = phase(&system, Workload::Transfer, clients, seconds, &cpu).await;
            let transfers = Row::of("ferrokv", "2-key transfer", clients, &mut done);
            println!("{}", put.line(None));
            println!(
                "{}  {:.3}x raw put",
                transfers.line(None),
                transfers.ops_per_second / put.ops_per_second.max(1e-9)
            );
        }
    });
    drop(cluster);
}
