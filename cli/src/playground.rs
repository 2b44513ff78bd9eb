//! `ferrokv playground`: 1 PD member and N stores on loopback, as tasks in this one process
//! (one RocksDB per process directory under the data directory: `pd/`, `store1/`, ...).
//!
//! Stores join through PD like separately started `ferrokv-server --pd` processes would:
//! the first bootstraps the cluster, each keeps its PD-assigned id in its directory, so
//! Ctrl-C and the same command again restart the same cluster on the same data. Split
//! thresholds are small by default (`--split-size`) so a few MiB of data make many regions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use ferrokv_pd::PdConfig;
use ferrokv_server::clock::RuntimeClock;
use ferrokv_server::config::ServerConfig;
use ferrokv_server::io::RocksEngine;
use ferrokv_server::pd::{run_with_pd, PdOptions};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Playground flags.
#[derive(Args, Debug, Clone)]
pub struct PlaygroundArgs {
    /// Number of stores.
    #[arg(long, default_value_t = 3)]
    pub stores: u16,
    /// Data directory (one subdirectory per process).
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Loopback host to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// PD client port (its Raft peer port is the next one).
    #[arg(long, default_value_t = 2379)]
    pub pd_port: u16,
    /// First store port (store i listens on this + i - 1).
    #[arg(long, default_value_t = 20160)]
    pub store_port: u16,
    /// First store peer port, for Raft between stores (store i on this + i - 1).
    #[arg(long, default_value_t = 20260)]
    pub peer_port: u16,
    /// Split a region once it holds this many bytes (small, so a few MiB give many regions).
    #[arg(long, default_value_t = 128 * 1024)]
    pub split_size: u64,
    /// A store silent this long (ms) is declared down and its replicas are rebuilt.
    #[arg(long, default_value_t = 60_000)]
    pub max_store_down_time_ms: u64,
}

fn pd_config(args: &PlaygroundArgs) -> PdConfig {
    let client = format!("{}:{}", args.host, args.pd_port);
    let peer = format!("{}:{}", args.host, args.pd_port.wrapping_add(1));
    let mut config = PdConfig::single(&client, &peer, args.data.join("pd"));
    config.schedule.max_replicas = usize::from(args.stores.clamp(1, 3));
    config.schedule.region_split_size_bytes = args.split_size;
    config.schedule.max_store_down_time_ms = args.max_store_down_time_ms;
    config.schedule.balance_interval_ms = 2_000;
    config
}

fn store_options(args: &PlaygroundArgs, pd: &str) -> PdOptions {
    let mut options = PdOptions::new(vec![pd.to_string()]);
    options.split_size_bytes = args.split_size;
    options.store_heartbeat_interval = Duration::from_secs(1);
    options.region_heartbeat_interval = Duration::from_secs(1);
    options.size_check_interval = Duration::from_secs(1);
    options
}

fn open(dir: &Path) -> Result<RocksEngine, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    RocksEngine::open(&dir.join("db")).map_err(|e| format!("{}: {e}", dir.display()))
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

/// Starts the stores, each joining through the PD at `pd_endpoint`.
fn spawn_stores<S, F>(
    args: &PlaygroundArgs,
    pd_endpoint: &str,
    tasks: &mut JoinSet<Result<(), String>>,
    when_stopped: &S,
) -> Result<(), String>
where
    S: Fn() -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    for index in 1..=args.stores {
        let dir = args.data.join(format!("store{index}"));
        let port = args.store_port.checked_add(index - 1);
        let port = port.ok_or("store ports run past 65535")?;
        let addr = format!("{}:{port}", args.host);
        let peer_port = args.peer_port.checked_add(index - 1);
        let peer_port = peer_port.ok_or("store peer ports run past 65535")?;
        let peer_addr = format!("{}:{peer_port}", args.host);
        let config = ServerConfig {
            store_id: 0,
            addr: addr.clone(),
            peer_addr: Some(peer_addr.clone()),
            data_dir: dir.clone(),
            raft: Default::default(),
            stores: Default::default(),
            bootstrap: None,
        };
        let engine = open(&dir)?;
        let options = store_options(args, pd_endpoint);
        let shutdown = when_stopped();
        tasks.spawn(async move {
            let result = run_with_pd(
                config,
                options,
                engine,
                seed(),
                RuntimeClock::new(),
                shutdown,
            );
            let result = result.await.map_err(|e| format!("store {index}: {e}"));
            tracing::info!(?result, index, "store stopped");
            result
        });
        println!(
            "store {index}:      {addr}  peers {peer_addr}  ({})",
            dir.display()
        );
    }
    Ok(())
}

/// Runs the playground until Ctrl-C (or until a process fails).
pub async fn run(args: PlaygroundArgs) -> Result<(), String> {
    if args.stores == 0 {
        return Err("a playground needs at least one store".into());
    }
    let (stop, stopped) = watch::channel(false);
    let when_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let mut tasks = JoinSet::new();
    let pd = pd_config(&args);
    let pd_endpoint = pd.me().client_addr.clone();
    let engine = open(&pd.data_dir)?;
    let shutdown = when_stopped();
    tasks.spawn(async move {
        let result = ferrokv_pd::run_member(pd, engine, seed(), RuntimeClock::new(), shutdown);
        let result = result.await.map_err(|e| format!("PD: {e}"));
        tracing::info!(?result, "PD stopped");
        result
    });
    println!("FerroKV playground: data under {}", args.data.display());
    println!("PD endpoint:  {pd_endpoint}");
    spawn_stores(&args, &pd_endpoint, &mut tasks, &when_stopped)?;
    println!("Try: ferrokv ctl put hello world && ferrokv ctl get hello   (Ctrl-C stops; run again to restart on the same data)");
    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        Some(ended) = tasks.join_next() => match ended {
            Ok(Ok(())) => Err("a playground process stopped".to_string()),
            Ok(Err(error)) => Err(error),
            Err(join) => Err(join.to_string()),
        },
    };
    println!("stopping...");
    let _ = stop.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        eprintln!("some processes did not stop within 10 s");
    }
    outcome
}
