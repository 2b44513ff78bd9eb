//! A cluster of real `ferrokv-server` processes on loopback, for real-process tests and
//! benchmarks. Every process is killed when the cluster is dropped.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrokv_client::RawConfig;

/// The `ferrokv-server` binary: `$FERROKV_SERVER_BIN`, or next to the running test binary.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FERROKV_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join("ferrokv-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "ferrokv-server binary not found near {exe:?}: run `cargo build -p ferrokv-server` \
         first or set FERROKV_SERVER_BIN (ci/test.sh does both)"
    );
}

/// A port nothing listens on now (the OS picks it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

struct Process {
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Store processes sharing one bootstrapped region.
pub struct ProcessCluster {
    dir: PathBuf,
    binary: PathBuf,
    /// Store id -> address.
    pub addrs: BTreeMap<u64, String>,
    processes: BTreeMap<u64, Process>,
}

fn write_config(dir: &Path, id: u64, addrs: &BTreeMap<u64, String>, tick_ms: u64) -> PathBuf {
    let stores: String = addrs
        .iter()
        .map(|(id, addr)| format!("{id} = \"{addr}\"\n"))
        .collect();
    let peers: Vec<String> = addrs.keys().map(|id| format!("[{id}, {id}]")).collect();
    let text = format!(
        "store_id = {id}\naddr = \"{addr}\"\ndata_dir = \"{data}\"\n\n[raft]\ntick_interval_ms = {tick_ms}\n\n\
         [stores]\n{stores}\n[bootstrap]\nregion_id = 1\npeers = [{peers}]\n",
        addr = addrs[&id],
        data = dir.join(format!("store{id}")).display(),
        peers = peers.join(", "),
    );
    let path = dir.join(format!("store{id}.toml"));
    std::fs::write(&path, text).expect("write store config");
    path
}

impl ProcessCluster {
    /// Starts `count` stores with data under `dir`.
    pub fn start(dir: &Path, count: u64, tick_ms: u64) -> ProcessCluster {
        let addrs: BTreeMap<u64, String> = (1..=count)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        let mut cluster = ProcessCluster {
            dir: dir.to_path_buf(),
            binary: server_binary(),
            addrs: addrs.clone(),
            processes: BTreeMap::new(),
        };
        for id in 1..=count {
            let config = write_config(dir, id, &addrs, tick_ms);
            let log = dir.join(format!("store{id}.log"));
            cluster.processes.insert(
                id,
                Process {
                    config,
                    log,
                    child: None,
                },
            );
            cluster.spawn(id);
        }
        cluster
    }

    fn spawn(&mut self, id: u64) {
        let process = self.processes.get_mut(&id).expect("known store");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&process.log)
            .expect("log file");
        let child = Command::new(&self.binary)
            .arg("--config")
            .arg(&process.config)
            .env(
                "RUST_LOG",
                std::env::var("FERROKV_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn ferrokv-server");
        process.child = Some(child);
    }

    /// The process ids of the running stores.
    pub fn pids(&self) -> Vec<u32> {
        self.processes
            .values()
            .filter_map(|p| p.child.as_ref().map(std::process::Child::id))
            .collect()
    }

    /// SIGKILLs store `id` (no shutdown, no flush).
    pub fn kill(&mut self, id: u64) {
        let process = self.processes.get_mut(&id).expect("known store");
        if let Some(mut child) = process.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts store `id` again on its data directory.
    pub fn restart(&mut self, id: u64) {
        assert!(self.processes[&id].child.is_none(), "store {id} is running");
        self.spawn(id);
    }

    /// The resident set size of store `id`'s process in KiB (`VmRSS` from `/proc`), if it
    /// runs.
    pub fn rss_kib(&self, id: u64) -> Option<u64> {
        let pid = self.processes[&id].child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// True if store `id`'s process is alive.
    pub fn is_running(&mut self, id: u64) -> bool {
        let process = self.processes.get_mut(&id).expect("known store");
        match process.child.as_mut() {
            Some(child) => child
                .try_wait()
                .map(|status| status.is_none())
                .unwrap_or(false),
            None => false,
        }
    }

    /// The last lines of store `id`'s log, for failure messages.
    pub fn log_tail(&self, id: u64) -> String {
        let text = std::fs::read_to_string(&self.processes[&id].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// A client configuration for this cluster.
    pub fn client_config(&self, timeout: Duration) -> RawConfig {
        RawConfig::new(self.addrs.clone(), timeout, Duration::from_secs(2))
    }

    /// The data directory root.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.processes.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }
}
