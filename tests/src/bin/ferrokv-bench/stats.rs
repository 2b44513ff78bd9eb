//! Latency samples of one phase and the CPU time server processes used meanwhile.

use std::time::Duration;

/// Operations and their latencies over one phase.
#[derive(Default)]
pub struct Phase {
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    pub errors: usize,
    /// CPU seconds the measured system's processes used during the phase.
    pub cpu_seconds: f64,
}

impl Phase {
    pub fn ops(&self) -> usize {
        self.latencies.len()
    }

    pub fn ops_per_second(&self) -> f64 {
        self.ops() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency below which `fraction` of the operations finished.
    pub fn percentile(&mut self, fraction: f64) -> Duration {
        assert!((0.0..=1.0).contains(&fraction));
        self.latencies.sort_unstable();
        let index = ((self.latencies.len() as f64 * fraction) as usize)
            .min(self.latencies.len().saturating_sub(1));
        self.latencies.get(index).copied().unwrap_or_default()
    }

    /// The mean latency.
    pub fn mean(&self) -> Duration {
        let total: Duration = self.latencies.iter().sum();
        total / u32::try_from(self.ops().max(1)).unwrap_or(u32::MAX)
    }

    /// CPU seconds per 1,000 successful operations.
    pub fn cpu_per_kop(&self) -> f64 {
        if self.ops() == 0 {
            return 0.0;
        }
        self.cpu_seconds * 1000.0 / self.ops() as f64
    }
}

/// User + system CPU time of a set of processes, from `/proc/PID/stat`.
pub struct CpuMeter {
    pids: Vec<u32>,
    ticks_per_second: f64,
}

impl CpuMeter {
    pub fn new(pids: Vec<u32>) -> CpuMeter {
        // CLK_TCK is 100 on every Linux this runs on (the kernel's USER_HZ).
        CpuMeter {
            pids,
            ticks_per_second: 100.0,
        }
    }

    /// CPU seconds used so far by the processes still alive.
    pub fn seconds(&self) -> f64 {
        let ticks: u64 = self.pids.iter().filter_map(|pid| process_ticks(*pid)).sum();
        ticks as f64 / self.ticks_per_second
    }
}

/// utime + stime of `pid`, in clock ticks.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start past ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_cpu_per_kop() {
        let mut phase = Phase {
            elapsed: Duration::from_secs(2),
            latencies: (1..=100).map(Duration::from_millis).collect(),
            errors: 0,
            cpu_seconds: 0.5,
        };
        assert_eq!(phase.percentile(0.5), Duration::from_millis(51));
        assert_eq!(phase.percentile(0.99), Duration::from_millis(100));
        assert!((phase.ops_per_second() - 50.0).abs() < 1e-9);
        assert!((phase.cpu_per_kop() - 5.0).abs() < 1e-9);
    }

    #[test]
    fn a_busy_process_accumulates_cpu_time() {
        let meter = CpuMeter::new(vec![std::process::id()]);
        let before = meter.seconds();
        let began = std::time::Instant::now();
        let mut spin = 0u64;
        while meter.seconds() <= before && began.elapsed() < Duration::from_secs(5) {
            for i in 0..1_000_000u64 {
                spin = spin.wrapping_add(i ^ spin);
            }
        }
        assert!(meter.seconds() > before, "spun {spin}: no CPU time counted");
    }
}
