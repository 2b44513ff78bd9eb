//! Client operation histories: what each client invoked, when, and what came back, in
//! simulated time. Checkers read them; failing seeds write them as Jepsen-style EDN.
//!
//! Keys are small integers, grouped `GROUP_KEYS` at a time. Every operation touches keys
//! of one group only (a batch, a scan or a delete-range stays inside its group), so groups
//! are independent objects and a history is linearizable iff each group's sub-history is
//! (Herlihy & Wing's locality). A multi-key call that spanned regions is recorded as one
//! event per region part, because it is atomic only per region.

use std::fmt::Write as _;

/// Keys per group.
pub const GROUP_KEYS: u64 = 4;

/// The group of key `k`.
pub const fn group_of(key: u64) -> u64 {
    key / GROUP_KEYS
}

/// An operation. Values are unique per write so reads identify writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Read one key.
    Get(u64),
    /// Write `value` to a key.
    Put(u64, u64),
    /// Remove a key.
    Delete(u64),
    /// Set `new` if the key holds `expected` (`None`: absent).
    Cas {
        key: u64,
        expected: Option<u64>,
        new: u64,
    },
    /// Read several keys of one group at one moment.
    BatchGet(Vec<u64>),
    /// Write several keys of one group atomically.
    BatchPut(Vec<(u64, u64)>),
    /// Remove several keys of one group atomically.
    BatchDelete(Vec<u64>),
    /// Read the first `limit` present keys among `keys` (ascending, or descending with
    /// `reverse`): a scan page over the keys of its range.
    Scan {
        keys: Vec<u64>,
        limit: usize,
        reverse: bool,
    },
    /// Remove every key among `keys` atomically (a delete-range piece).
    DeleteRange(Vec<u64>),
}

impl Op {
    /// Every key the operation touches.
    pub fn keys(&self) -> Vec<u64> {
        match self {
            Op::Get(key) | Op::Put(key, _) | Op::Delete(key) | Op::Cas { key, .. } => vec![*key],
            Op::BatchGet(keys) | Op::BatchDelete(keys) | Op::DeleteRange(keys) => keys.clone(),
            Op::BatchPut(pairs) => pairs.iter().map(|(key, _)| *key).collect(),
            Op::Scan { keys, .. } => keys.clone(),
        }
    }

    /// The one group the operation touches (None for an empty key set).
    pub fn group(&self) -> Option<u64> {
        let keys = self.keys();
        let group = group_of(*keys.first()?);
        assert!(
            keys.iter().all(|key| group_of(*key) == group),
            "an operation stays inside one group: {self:?}"
        );
        Some(group)
    }

    /// True if the operation changes nothing.
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Get(_) | Op::BatchGet(_) | Op::Scan { .. })
    }
}

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A point read found this (`None`: absent).
    Read(Option<u64>),
    /// A multi-key read found these `(key, value)` pairs, in the order returned.
    Pairs(Vec<(u64, u64)>),
    /// A write was acknowledged.
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
    /// The operation.
    pub op: Op,
    /// What came back.
    pub outcome: Outcome,
    /// Simulated nanoseconds at invocation.
    pub invoked_ns: u64,
    /// Simulated nanoseconds at completion (ignored for `Unknown`).
    pub completed_ns: u64,
}

impl Event {
    /// True if the outcome is known (a result, or a definite failure).
    pub fn is_definite(&self) -> bool {
        self.outcome != Outcome::Unknown
    }
}

/// Every call of a run.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Calls in completion order.
    pub events: Vec<Event>,
}

fn edn_f(op: &Op) -> &'static str {
    match op {
        Op::Get(_) | Op::BatchGet(_) | Op::Scan { .. } => ":read",
        Op::Put(..) | Op::BatchPut(_) => ":write",
        Op::Delete(_) | Op::BatchDelete(_) | Op::DeleteRange(_) => ":delete",
        Op::Cas { .. } => ":cas",
    }
}

fn edn_type(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Unknown => ":info",
        Outcome::Failed | Outcome::Cas { swapped: false, .. } => ":fail",
        _ => ":ok",
    }
}

impl History {
    /// Jepsen-style EDN: one invoke and one completion map per call, ordered by time; the
    /// operation and result are printed as Rust values inside a string.
    pub fn to_edn(&self) -> String {
        let mut lines: Vec<(u64, String)> = Vec::with_capacity(self.events.len() * 2);
        for event in &self.events {
            let f = edn_f(&event.op);
            let invoke = format!(
                "{{:type :invoke, :f {f}, :value \"{:?}\", :process {}, :time {}",
                event.op, event.process, event.invoked_ns
            );
            lines.push((event.invoked_ns, invoke));
            let done = format!(
                "{{:type {}, :f {f}, :value \"{:?} -> {:?}\", :process {}, :time {}",
                edn_type(&event.outcome),
                event.op,
                event.outcome,
                event.process,
                event.completed_ns
            );
            lines.push((event.completed_ns, done));
        }
        lines.sort_by_key(|(time, _)| *time);
        let mut out = String::new();
        for (index, (_, line)) in lines.into_iter().enumerate() {
            let _ = writeln!(out, "{line}, :index {index}}}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_know_their_group() {
        assert_eq!(Op::Get(5).group(), Some(1));
        assert_eq!(Op::BatchPut(vec![(4, 1), (7, 2)]).group(), Some(1));
        assert_eq!(
            Op::Scan {
                keys: vec![],
                limit: 1,
                reverse: false
            }
            .group(),
            None
        );
        assert!(Op::Scan {
            keys: vec![0],
            limit: 1,
            reverse: true
        }
        .is_read());
    }

    #[test]
    #[should_panic(expected = "one group")]
    fn an_op_across_groups_is_a_workload_bug() {
        let _ = Op::BatchGet(vec![1, 5]).group();
    }

    #[test]
    fn edn_orders_by_time() {
        let history = History {
            events: vec![Event {
                process: 1,
                op: Op::Put(1, 7),
                outcome: Outcome::Written,
                invoked_ns: 5,
                completed_ns: 9,
            }],
        };
        let edn = history.to_edn();
        assert!(edn.starts_with("{:type :invoke, :f :write"));
        assert!(edn.contains(":type :ok"));
        assert_eq!(edn.lines().count(), 2);
    }
}
