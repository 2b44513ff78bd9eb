//! Client operation histories: what each client invoked, when, and what came back, in
//! simulated time. Checkers read them; failing seeds write them as Jepsen EDN, which
//! Knossos/Elle and Porcupine-style tools read.

use std::fmt::Write as _;

/// A register operation on one key. Values are unique per write so reads identify writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read the key.
    Get,
    /// Write `value`.
    Put(u64),
    /// Remove the key.
    Delete,
    /// Set `new` if the key holds `expected` (`None`: absent).
    Cas { expected: Option<u64>, new: u64 },
}

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A read found this (`None`: absent).
    Read(Option<u64>),
    /// A write or delete was acknowledged.
    Written,
    /// A compare-and-swap answered: swapped, and the value it found.
    Cas { swapped: bool, found: Option<u64> },
    /// The call failed definitely: it had no effect.
    Failed,
    /// The outcome is unknown: it may have taken effect at any point after the call, or never.
    Unknown,
}

/// One completed (or abandoned) call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The client process.
    pub process: u64,
    /// The key.
    pub key: u64,
    /// The operation.
    pub op: Op,
    /// What came back.
    pub outcome: Outcome,
    /// Simulated nanoseconds at invocation.
    pub invoked_ns: u64,
    /// Simulated nanoseconds at completion (ignored for `Unknown`).
    pub completed_ns: u64,
}

/// Every call of a run.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Calls in completion order.
    pub events: Vec<Event>,
}

fn edn_value(op: &Op, outcome: Option<&Outcome>) -> String {
    let known = |value: Option<u64>| value.map_or("nil".to_string(), |v| v.to_string());
    match (op, outcome) {
        (Op::Get, Some(Outcome::Read(found))) => known(*found),
        (Op::Get, _) => "nil".into(),
        (Op::Put(value), _) => value.to_string(),
        (Op::Delete, _) => "nil".into(),
        (Op::Cas { expected, new }, _) => format!("[{} {new}]", known(*expected)),
    }
}

fn edn_f(op: &Op) -> &'static str {
    match op {
        Op::Get => ":read",
        Op::Put(_) | Op::Delete => ":write",
        Op::Cas { .. } => ":cas",
    }
}

impl History {
    /// Jepsen EDN: one invoke and one completion map per call, independent keys as
    /// `[key value]` tuples, ordered by time.
    pub fn to_edn(&self) -> String {
        let mut lines: Vec<(u64, String)> = Vec::with_capacity(self.events.len() * 2);
        for event in &self.events {
            let f = edn_f(&event.op);
            let invoke = format!(
                "{{:type :invoke, :f {f}, :value [{} {}], :process {}, :time {}}}",
                event.key,
                edn_value(&event.op, None),
                event.process,
                event.invoked_ns
            );
            lines.push((event.invoked_ns, invoke));
            let kind = match &event.outcome {
                Outcome::Unknown => ":info",
                Outcome::Failed | Outcome::Cas { swapped: false, .. } => ":fail",
                _ => ":ok",
            };
            let done = format!(
                "{{:type {kind}, :f {f}, :value [{} {}], :process {}, :time {}}}",
                event.key,
                edn_value(&event.op, Some(&event.outcome)),
                event.process,
                event.completed_ns
            );
            lines.push((event.completed_ns, done));
        }
        lines.sort_by_key(|(time, _)| *time);
        let mut out = String::new();
        for (index, (_, line)) in lines.into_iter().enumerate() {
            let _ = writeln!(out, "{}, :index {index}}}", line.trim_end_matches('}'));
        }
        out
    }
}
