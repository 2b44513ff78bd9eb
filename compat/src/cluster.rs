//! A cluster of real processes on loopback: one `ferrokv-pd` and N `ferrokv-server --pd`,
//! each with its own data directory under a fresh temporary directory and its log in a
//! file there. Stores can be killed (SIGKILL) and restarted on the same data. Dropping the
//! cluster kills every process and removes the directory (after printing the tail of each
//! log if the test is failing).
//!
//! Binaries come from `FERROKV_BIN_DIR`, or `../target/debug` next to this crate (ci/test.sh
//! builds them there first). `FERROKV_COMPAT_LOG` sets the processes' `RUST_LOG` (default
//! `warn`); `FERROKV_COMPAT_KEEP=1` keeps the directory (data and logs) for inspection.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One process and how to start it again.
struct Process {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    fn start(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file opens");
        let child = Command::new(&self.program)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("FERROKV_COMPAT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::from(log.try_clone().expect("log clones")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.program.display()));
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The cluster.
pub struct Cluster {
    dir: PathBuf,
    bin_dir: PathBuf,
    /// PD's client address (`127.0.0.1:port`).
    pub pd: String,
    pd_process: Process,
    stores: Vec<Process>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

fn bin_dir() -> PathBuf {
    std::env::var_os("FERROKV_BIN_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
        PathBuf::from,
    )
}

impl Cluster {
    /// Starts PD and `stores` stores; regions split at `split_size` bytes.
    pub fn start(stores: usize, split_size: u64) -> Cluster {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("ferrokv-compat-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bin_dir = bin_dir();
        let pd = format!("127.0.0.1:{}", free_port());
        let peer = format!("127.0.0.1:{}", free_port());
        let mut pd_process = Process {
            name: "pd".into(),
            program: bin_dir.join("ferrokv-pd"),
            args: vec![
                "--data-dir".into(),
                dir.join("pd").display().to_string(),
                "--client-addr".into(),
                pd.clone(),
                "--peer-addr".into(),
                peer,
                "--region-split-size".into(),
                split_size.to_string(),
            ],
            log: dir.join("pd.log"),
            child: None,
        };
        pd_process.start();
        let mut cluster = Cluster {
            dir,
            bin_dir,
            pd,
            pd_process,
            stores: Vec::new(),
        };
        for index in 1..=stores {
            cluster.add_store(index, split_size);
        }
        cluster
    }

    fn add_store(&mut self, index: usize, split_size: u64) {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut store = Process {
            name: format!("store{index}"),
            program: self.bin_dir.join("ferrokv-server"),
            args: vec![
                "--pd".into(),
                self.pd.clone(),
                "--addr".into(),
                addr,
                "--data-dir".into(),
                self.dir.join(format!("store{index}")).display().to_string(),
                "--split-size".into(),
                split_size.to_string(),
            ],
            log: self.dir.join(format!("store{index}.log")),
            child: None,
        };
        store.start();
        self.stores.push(store);
    }

    /// Kills store `index` (1-based) with SIGKILL.
    pub fn kill_store(&mut self, index: usize) {
        self.stores[index - 1].kill();
    }

    /// Starts store `index` again on its data.
    pub fn restart_store(&mut self, index: usize) {
        self.stores[index - 1].start();
    }

    /// `ferrokv ctl ... --json` against this cluster's PD, parsed.
    pub fn ctl(&self, args: &[&str]) -> Option<serde_json::Value> {
        let output = Command::new(self.bin_dir.join("ferrokv"))
            .args(["ctl", "--pd", &self.pd, "--json", "--timeout", "5"])
            .args(args)
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// The number of regions PD knows (0 if it does not answer).
    pub fn region_count(&self) -> usize {
        self.ctl(&["regions"])
            .and_then(|value| value.as_array().map(Vec::len))
            .unwrap_or(0)
    }

    /// Waits up to `limit` for PD to know at least `regions` regions; returns the count.
    pub fn wait_for_regions(&self, regions: usize, limit: Duration) -> usize {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let count = self.region_count();
            if count >= regions || std::time::Instant::now() >= deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn print_state(&self) {
        for what in ["stores", "regions"] {
            match self.ctl(&[what]) {
                Some(value) => eprintln!("--- ferrokv ctl {what}: {value}"),
                None => eprintln!("--- ferrokv ctl {what}: no answer"),
            }
        }
    }

    fn print_logs(&self) {
        let logs = std::iter::once(&self.pd_process).chain(&self.stores);
        for process in logs {
            let text = std::fs::read_to_string(&process.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            eprintln!(
                "--- last lines of {} ({})",
                process.name,
                process.log.display()
            );
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_state();
            self.print_logs();
        }
        for store in &mut self.stores {
            store.kill();
        }
        self.pd_process.kill();
        if std::env::var_os("FERROKV_COMPAT_KEEP").is_some() {
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
