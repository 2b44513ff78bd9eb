//! The storage ceiling measured beside the systems in the same run: RocksDB's own
//! `db_bench` (Debian's `rocksdb-tools`) and the disk's fsync rate.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::etcd::which;
use crate::stats::Phase;

/// What one db_bench run reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DbBench {
    pub ops_per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

/// Runs db_bench `benchmark` (`fillrandom` synced, or `readrandom` over what the fill
/// left) with `threads` threads for `seconds`, keys and values of the bench's sizes;
/// `None` if db_bench is missing or its output is not understood.
pub fn db_bench(
    db: &Path,
    benchmark: &str,
    threads: usize,
    seconds: u64,
    key_bytes: usize,
    value_bytes: usize,
) -> Option<DbBench> {
    let binary = which("db_bench")?;
    let fill = benchmark == "fillrandom";
    let output = Command::new(binary)
        .arg(format!("--benchmarks={benchmark}"))
        .arg(format!("--db={}", db.display()))
        .arg(format!("--threads={threads}"))
        .arg(format!("--duration={seconds}"))
        .arg(format!("--key_size={key_bytes}"))
        .arg(format!("--value_size={value_bytes}"))
        .arg("--num=100000")
        .arg(format!("--sync={}", u8::from(fill)))
        .arg(format!("--use_existing_db={}", u8::from(!fill)))
        .arg("--histogram=1")
        .output()
        .ok()?;
    parse_db_bench(&String::from_utf8_lossy(&output.stdout), benchmark)
}

/// Reads `NAME : X micros/op Y ops/sec ...` and the `Percentiles:` line after it.
fn parse_db_bench(text: &str, benchmark: &str) -> Option<DbBench> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(benchmark) && l.contains("ops/sec"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "ops/sec")?;
    let ops_per_second = words.get(at.checked_sub(1)?)?.parse().ok()?;
    let percentiles = text.lines().find(|l| l.starts_with("Percentiles:"))?;
    let value = |name: &str| -> Option<f64> {
        let words: Vec<&str> = percentiles.split_whitespace().collect();
        let at = words.iter().position(|w| *w == name)?;
        words.get(at + 1)?.parse().ok()
    };
    Some(DbBench {
        ops_per_second,
        p50_us: value("P50:")?,
        p99_us: value("P99:")?,
        p999_us: value("P99.9:")?,
    })
}

/// Writes 4 KiB and `fdatasync`s it, over and over for `seconds`, in a file under `dir`.
pub fn fsync_probe(dir: &Path, seconds: u64) -> std::io::Result<Phase> {
    let mut file = std::fs::File::create(dir.join("fsync-probe"))?;
    let block = vec![0x5au8; 4096];
    let mut phase = Phase::default();
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(seconds) {
        let one = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        phase.latencies.push(one.elapsed());
    }
    phase.elapsed = began.elapsed();
    Ok(phase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_bench_output_is_read() {
        let text = "\
Initializing RocksDB Options from the specified file
fillrandom   :     512.345 micros/op 1951 ops/sec 10.001 seconds 19512 operations;    0.5 MB/s
Microseconds per write:
Count: 19512 Average: 512.3456  StdDev: 100.00
Percentiles: P50: 480.12 P75: 530.00 P99: 900.50 P99.9: 2100.75 P99.99: 5000.00
";
        let read = parse_db_bench(text, "fillrandom").expect("parsed");
        assert_eq!(
            read,
            DbBench {
                ops_per_second: 1951.0,
                p50_us: 480.12,
                p99_us: 900.5,
                p999_us: 2100.75
            }
        );
        assert_eq!(parse_db_bench(text, "readrandom"), None);
    }

    #[test]
    fn the_fsync_probe_counts_synced_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut phase = fsync_probe(dir.path(), 1).unwrap();
        assert!(phase.ops() > 0);
        assert!(phase.percentile(0.5) > Duration::ZERO);
        let written = std::fs::metadata(dir.path().join("fsync-probe"))
            .unwrap()
            .len();
        assert_eq!(written, 4096 * phase.ops() as u64);
    }
}
