//! The load tool of `ci/bench.sh` (never part of `ci/test.sh`):
//!
//! - `ferrokv-bench compare [--seconds N] [--clients 1,16,64,256] [--json FILE]`:
//!   FerroKV's 3-replica cluster beside a 3-member etcd cluster and the storage ceiling
//!   (db_bench, fsync), in one run (`compare.rs`);
//! - `ferrokv-bench txn [--seconds N]`: 2-key transfers beside raw put.
//!
//! Real processes on loopback; the servers' binaries come from `FERROKV_SERVER_BIN`
//! (`ci/bench.sh` builds them in release). Nothing here is built for the simulator.

#[cfg(not(madsim))]
mod compare;
#[cfg(not(madsim))]
mod etcd;
#[cfg(not(madsim))]
mod peers;
#[cfg(not(madsim))]
mod stats;
#[cfg(not(madsim))]
mod table;

/// The command line, or why it is wrong.
#[cfg(not(madsim))]
fn parse(args: &[String]) -> Result<(String, compare::Options), String> {
    let mut options = compare::Options {
        seconds: 10,
        clients: vec![1, 16, 64, 256],
        json: None,
    };
    let mut workload = "compare".to_string();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--seconds" => {
                let text = value("--seconds")?;
                options.seconds = text
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("--seconds {text:?}: a positive number"))?;
            }
            "--clients" => {
                let text = value("--clients")?;
                options.clients = text
                    .split(',')
                    .map(|c| c.trim().parse().ok().filter(|c| *c > 0))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| {
                        format!("--clients {text:?}: positive numbers, comma separated")
                    })?;
            }
            "--json" => options.json = Some(value("--json")?.into()),
            "compare" | "txn" => workload = arg.clone(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((workload, options))
}

#[cfg(not(madsim))]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok((workload, options)) if workload == "txn" => compare::run_txn(options.seconds),
        Ok((_, options)) => compare::run(&options),
        Err(error) => {
            eprintln!(
                "{error}\nusage: ferrokv-bench [compare|txn] [--seconds N] [--clients 1,16,64,256] [--json FILE]"
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

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_command_line_is_read_or_refused_clearly() {
        let (workload, options) =
            parse(&args("--seconds 3 --clients 1,64 --json out.json")).unwrap();
        assert_eq!(workload, "compare");
        assert_eq!((options.seconds, options.clients), (3, vec![1, 64]));
        assert_eq!(options.json, Some("out.json".into()));
        assert_eq!(parse(&args("txn")).unwrap().0, "txn");
        assert!(parse(&args("--seconds 0"))
            .unwrap_err()
            .contains("positive"));
        assert!(parse(&args("--clients 1,x")).unwrap_err().contains("comma"));
        assert!(parse(&args("--json"))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse(&args("raw")).unwrap_err().contains("unknown"));
    }
}
