//! The result table of a compare run: one row per system, workload and client count, the
//! ratio FerroKV / etcd beside each FerroKV row, the targets checked at the end,
//! and the same rows as JSON.

use std::time::Duration;

use crate::peers::DbBench;
use crate::stats::Phase;

/// One measured phase.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub system: String,
    pub workload: String,
    pub clients: usize,
    pub ops_per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub errors: usize,
    /// CPU seconds of the system's processes per 1,000 operations (servers only).
    pub cpu_per_kop: Option<f64>,
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

impl Row {
    /// The row of a phase run against `system`.
    pub fn of(system: &str, workload: &str, clients: usize, phase: &mut Phase) -> Row {
        Row {
            system: system.into(),
            workload: workload.into(),
            clients,
            ops_per_second: phase.ops_per_second(),
            p50_us: micros(phase.percentile(0.50)),
            p99_us: micros(phase.percentile(0.99)),
            p999_us: micros(phase.percentile(0.999)),
            errors: phase.errors,
            cpu_per_kop: (phase.cpu_seconds > 0.0).then(|| phase.cpu_per_kop()),
        }
    }

    /// The row of a db_bench run.
    pub fn db_bench(benchmark: &str, threads: usize, found: &DbBench) -> Row {
        Row {
            system: "rocksdb db_bench".into(),
            workload: benchmark.into(),
            clients: threads,
            ops_per_second: found.ops_per_second,
            p50_us: found.p50_us,
            p99_us: found.p99_us,
            p999_us: found.p999_us,
            errors: 0,
            cpu_per_kop: None,
        }
    }

    /// The printed line; `versus` the etcd row of the same workload and clients.
    pub fn line(&self, versus: Option<&Row>) -> String {
        let ms = |us: f64| us / 1000.0;
        let cpu = self
            .cpu_per_kop
            .map_or("-".to_string(), |cpu| format!("{cpu:.3}"));
        let ratio = versus.map_or(String::new(), |etcd| {
            format!(
                "  {:.2}x ops, {:.2}x p99",
                self.ops_per_second / etcd.ops_per_second.max(1e-9),
                self.p99_us / etcd.p99_us.max(1e-9)
            )
        });
        format!(
            "{:<17} {:<24} {:>4} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>6} {:>8}{ratio}",
            self.system,
            self.workload,
            self.clients,
            self.ops_per_second,
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.p999_us),
            self.errors,
            cpu
        )
    }
}

/// Every row of a run.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    fn find(&self, system: &str, workload: &str, clients: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.system == system && r.workload == workload && r.clients == clients)
    }

    /// Prints the table, FerroKV's rows with their ratio to etcd's, then the targets.
    pub fn print(&self) {
        println!(
            "{:<17} {:<24} {:>4} {:>10} {:>9} {:>9} {:>9} {:>6} {:>8}  ferrokv / etcd",
            "system",
            "workload",
            "cli",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "cpu s/kop"
        );
        for row in &self.rows {
            let versus = (row.system == "ferrokv")
                .then(|| self.find("etcd", &row.workload, row.clients))
                .flatten();
            println!("{}", row.line(versus));
        }
        println!();
        for line in self.targets() {
            println!("{line}");
        }
    }

    /// The performance issue's targets, each reached or missed, with the figures.
    pub fn targets(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut check = |name: &str, reached: Option<bool>, detail: String| {
            let verdict = match reached {
                Some(true) => "reached",
                Some(false) => "MISSED",
                None => "not measured",
            };
            lines.push(format!("target {name}: {verdict} ({detail})"));
        };
        let pair = |workload: &str, clients: usize| {
            Some((
                self.find("ferrokv", workload, clients)?,
                self.find("etcd", workload, clients)?,
            ))
        };
        let put64 = pair("put", 64);
        check(
            "put c=64 >= 1.5x etcd ops/s and p99 <= etcd's",
            put64.map(|(f, e)| f.ops_per_second >= 1.5 * e.ops_per_second && f.p99_us <= e.p99_us),
            put64.map_or(String::new(), |(f, e)| {
                format!(
                    "{:.2}x ops/s, p99 {:.2} vs {:.2} ms",
                    f.ops_per_second / e.ops_per_second,
                    f.p99_us / 1e3,
                    e.p99_us / 1e3
                )
            }),
        );
        let get64 = pair("get", 64);
        check(
            "get c=64 >= 2x etcd ops/s",
            get64.map(|(f, e)| f.ops_per_second >= 2.0 * e.ops_per_second),
            get64.map_or(String::new(), |(f, e)| {
                format!("{:.2}x ops/s", f.ops_per_second / e.ops_per_second)
            }),
        );
        let put1 = pair("put", 1);
        let fsync = self.find("disk", "4 KiB write + fdatasync", 1);
        check(
            "put c=1 p50 <= etcd's and <= 3x fsync p50",
            put1.zip(fsync)
                .map(|((f, e), d)| f.p50_us <= e.p50_us && f.p50_us <= 3.0 * d.p50_us),
            put1.zip(fsync).map_or(String::new(), |((f, e), d)| {
                format!(
                    "p50 {:.3} ms, etcd {:.3} ms, fsync {:.3} ms ({:.2}x)",
                    f.p50_us / 1e3,
                    e.p50_us / 1e3,
                    d.p50_us / 1e3,
                    f.p50_us / d.p50_us
                )
            }),
        );
        lines
    }

    /// The rows as a JSON array.
    pub fn json(&self) -> String {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "system": r.system,
                    "workload": r.workload,
                    "clients": r.clients,
                    "ops_per_second": r.ops_per_second,
                    "p50_us": r.p50_us,
                    "p99_us": r.p99_us,
                    "p999_us": r.p999_us,
                    "errors": r.errors,
                    "cpu_seconds_per_kop": r.cpu_per_kop,
                })
            })
            .collect();
        serde_json::to_string_pretty(&rows).expect("rows serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, workload: &str, clients: usize, ops: f64, p50: f64, p99: f64) -> Row {
        Row {
            system: system.into(),
            workload: workload.into(),
            clients,
            ops_per_second: ops,
            p50_us: p50,
            p99_us: p99,
            p999_us: p99,
            errors: 0,
            cpu_per_kop: Some(0.5),
        }
    }

    #[test]
    fn targets_compare_ferrokv_with_etcd_and_the_disk() {
        let mut table = Table::default();
        table.push(row(
            "disk",
            "4 KiB write + fdatasync",
            1,
            1000.0,
            400.0,
            900.0,
        ));
        table.push(row("etcd", "put", 64, 4000.0, 10_000.0, 30_000.0));
        table.push(row("ferrokv", "put", 64, 7000.0, 8_000.0, 20_000.0));
        table.push(row("etcd", "get", 64, 5000.0, 8_000.0, 20_000.0));
        table.push(row("ferrokv", "get", 64, 9000.0, 6_000.0, 15_000.0));
        table.push(row("etcd", "put", 1, 500.0, 2_000.0, 3_000.0));
        table.push(row("ferrokv", "put", 1, 600.0, 1_500.0, 2_500.0));
        let targets = table.targets();
        assert!(targets[0].contains("reached"), "{targets:?}");
        assert!(
            targets[1].contains("MISSED"),
            "1.8x is below 2x: {targets:?}"
        );
        assert!(
            targets[2].contains("MISSED"),
            "1.5 ms is above 3x 0.4 ms: {targets:?}"
        );
        let json: serde_json::Value = serde_json::from_str(&table.json()).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 7);
        assert_eq!(json[2]["ops_per_second"], 7000.0);
    }
}
