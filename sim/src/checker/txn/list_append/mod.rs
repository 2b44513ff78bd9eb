//! List-append history checker in the spirit of Elle (Kingsbury & Alvaro, "Elle: Inferring
//! Isolation Anomalies from Experimental Observations", VLDB 2020).
//!
//! # Design note
//! * **Model.** Keys hold lists of `u64`. Micro-ops are `Append(k, v)` (v unique per key across
//!   the whole history) and `Read(k, Some(list))` (`None` = result unknown, ignored).
//! * **Counted txns.** `Committed` txns, plus `Unknown` txns whose appends are observed by a
//!   counted txn (transitively). `Aborted` and unobserved `Unknown` txns get no graph node and
//!   their reads are not checked (an aborted txn may have read anything).
//! * **Version order** of a key = its longest counted read; every counted read must be a prefix
//!   (else `IncompatibleOrder`). Keys with an incompatible order, duplicate elements or duplicate
//!   appends are reported and then excluded from edge inference (their order is meaningless).
//! * **Edges.** ww: consecutive counted writers in the version order. wr: writer of the last
//!   element of a read that the reader did not append itself. rw: reader -> writer of the first
//!   counted version after what it read (skipped when the read ends in the reader's own append;
//!   ww covers that). realtime (opt-in via [`Options`]): T1 completed before T2 was invoked,
//!   pruned to a frontier; `Unknown` txns are never realtime predecessors. Realtime is **off** for
//!   plain SI/serializability checks: neither promises recency. Turn it on for strict
//!   serializability or strong SI.
//! * **Cycles.** Iterative Tarjan SCC, then per SCC a sequence of complete searches, most severe
//!   first: G0 (ww), G1c (ww+wr), G-single (one rw + non-rw path back), the same two with realtime
//!   edges when enabled, G-nonadjacent (BFS over (txn, last-edge-was-rw)), and finally any cycle
//!   (G2). One witness per SCC: `(txn, kind of edge to the next step)`, wrapping around. A
//!   G-nonadjacent witness is a closed walk and may revisit a txn.
//! * **Models.** `Serializable` forbids everything reported. `SnapshotIsolation` follows Adya's
//!   PL-SI (proscribes G0, G1, G-SI) made checkable by Cerone & Gotsman ("Analysing Snapshot
//!   Isolation", PODC 2016: SI iff every dependency cycle has two *adjacent* rw edges), as Elle
//!   does: it forbids G0, G1a, G1b, G1c, G-single **and G-nonadjacent** (>=2 rw, none adjacent),
//!   and allows only G2 cycles with adjacent rw edges (write skew). Allowed anomalies are
//!   returned in [`Summary::allowed`].
//! * **Lost update** (two counted txns read the same version of k and both append to k) is
//!   reported directly. In the graph it also appears as G-single `T1 -ww-> T2 -rw-> T1` when both
//!   appends are observed, or as `IncompatibleOrder` when readers saw divergent lists.
//!   Non-contiguous appends of one txn to a key (interleaved writes) appear as a G0 cycle.
//! * **Limitations.** G1b only inspects the last element of a read. Unobserved appends yield no
//!   edges. Aborted txns' reads are not checked for consistency.
//!
//! # Complexity
//! n txns, m micro-ops, L total read elements, E <= 2L + m + R edges (R realtime edges, frontier
//! pruned, worst case O(n^2)). Indexing and edges O((m + L) log m); Tarjan O((n + E) log n); per
//! SCC of V txns the G0/G1c searches are O((V + E) log V) and G-single/G-nonadjacent
//! O(rw * (V + E) log V). Memory O(n + E + L). Only `BTreeMap`/`BTreeSet`/`Vec`/`VecDeque` are
//! used, so results are deterministic.

use std::collections::btree_map::Entry;
use std::fmt;

mod analysis;
#[cfg(test)]
mod tests;

use analysis::*;

/// A key.
pub type Key = u64;
/// An element appended to a key's list.
pub type Value = u64;
/// Position of a transaction in the history slice.
pub type TxnIndex = usize;
/// A dependency cycle: `(txn, kind of the edge from txn to the next step)`; the last step's edge
/// returns to the first txn.
pub type Cycle = Vec<(TxnIndex, EdgeKind)>;

/// One micro-operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MicroOp {
    /// Append a value (unique per key across the history) to a key's list.
    Append(Key, Value),
    /// Read a key's list; `None` when the result is unknown.
    Read(Key, Option<Vec<Value>>),
}

/// What the client learned about a transaction's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Definitely committed.
    Committed,
    /// Definitely not applied.
    Aborted,
    /// May or may not have been applied (e.g. timeout).
    Unknown,
}

/// One client transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    /// Client process that ran the transaction.
    pub process: u64,
    /// Invocation time in nanoseconds.
    pub invoke_ns: u64,
    /// Completion time in nanoseconds (for `Unknown`, when the client gave up).
    pub complete_ns: u64,
    /// Commit outcome.
    pub outcome: Outcome,
    /// Micro-ops in program order.
    pub ops: Vec<MicroOp>,
}

impl Txn {
    /// Builds a transaction.
    pub fn new(
        process: u64,
        invoke_ns: u64,
        complete_ns: u64,
        outcome: Outcome,
        ops: Vec<MicroOp>,
    ) -> Self {
        Self {
            process,
            invoke_ns,
            complete_ns,
            outcome,
            ops,
        }
    }

    /// Known read results, in program order.
    fn reads(&self) -> impl Iterator<Item = (Key, &[Value])> {
        self.ops.iter().filter_map(|op| match op {
            MicroOp::Read(k, Some(list)) => Some((*k, list.as_slice())),
            _ => None,
        })
    }
}

/// Consistency model to check against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Forbids G0, G1a/b/c, G-single, G-nonadjacent and the non-cycle anomalies; allows G2.
    SnapshotIsolation,
    /// Forbids every reported anomaly.
    Serializable,
}

impl Isolation {
    /// Whether this model proscribes anomalies of `kind`.
    pub fn forbids(self, kind: AnomalyKind) -> bool {
        !(self == Isolation::SnapshotIsolation && kind == AnomalyKind::G2)
    }
}

/// Checker options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Add realtime edges (strict serializability / strong SI). Off by default.
    pub realtime: bool,
}

/// Kind of a dependency edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EdgeKind {
    /// Write-write: the source's append precedes the target's in the version order.
    Ww,
    /// Write-read: the target read the source's append.
    Wr,
    /// Read-write anti-dependency: the source read a version the target's append overwrote.
    Rw,
    /// The source completed before the target was invoked.
    Realtime,
}

const WW: u8 = 1;
const WR: u8 = 2;
const RW: u8 = 4;
const RT: u8 = 8;

impl EdgeKind {
    const fn bit(self) -> u8 {
        match self {
            EdgeKind::Ww => WW,
            EdgeKind::Wr => WR,
            EdgeKind::Rw => RW,
            EdgeKind::Realtime => RT,
        }
    }

    fn arrow(self) -> &'static str {
        match self {
            EdgeKind::Ww => "ww",
            EdgeKind::Wr => "wr",
            EdgeKind::Rw => "rw",
            EdgeKind::Realtime => "rt",
        }
    }
}

/// Label for an edge carrying the kinds in `mask`, preferring ww > wr > realtime > rw so that a
/// witness uses as few rw edges as possible.
fn label(mask: u8) -> Option<EdgeKind> {
    [EdgeKind::Ww, EdgeKind::Wr, EdgeKind::Realtime, EdgeKind::Rw]
        .into_iter()
        .find(|k| mask & k.bit() != 0)
}

/// What a transaction should have read, given its own earlier ops on the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// Exactly this list (an earlier read plus later own appends).
    Exact(Vec<Value>),
    /// A list ending with these own appends (no earlier read).
    EndsWith(Vec<Value>),
}

impl Expectation {
    fn push(&mut self, v: Value) {
        match self {
            Expectation::Exact(l) | Expectation::EndsWith(l) => l.push(v),
        }
    }

    fn matches(&self, observed: &[Value]) -> bool {
        match self {
            Expectation::Exact(l) => l == observed,
            Expectation::EndsWith(l) => observed.ends_with(l),
        }
    }
}

/// A detected anomaly. Txns are referred to by their index in the history slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// Write cycle: ww edges only (plus realtime edges when enabled).
    G0 { cycle: Cycle },
    /// Aborted read: `reader` saw `value`, appended by aborted `writer`.
    G1a {
        reader: TxnIndex,
        writer: TxnIndex,
        key: Key,
        value: Value,
    },
    /// Intermediate read: `reader`'s read ended in `value`, which was not `writer`'s final append.
    G1b {
        reader: TxnIndex,
        writer: TxnIndex,
        key: Key,
        value: Value,
    },
    /// Circular information flow: ww+wr cycle with at least one wr edge.
    G1c { cycle: Cycle },
    /// Cycle with exactly one rw edge (read skew, lost update, stale read with realtime).
    GSingle { cycle: Cycle },
    /// Cycle with >= 2 rw edges, no two adjacent. Forbidden under SI.
    GNonadjacent { cycle: Cycle },
    /// Cycle with >= 2 rw edges, some adjacent (write skew). Allowed under SI.
    G2 { cycle: Cycle },
    /// Several counted txns read `version` of `key` and then all appended to it.
    LostUpdate {
        key: Key,
        version: Vec<Value>,
        txns: Vec<TxnIndex>,
    },
    /// Two reads of `key` where neither is a prefix of the other.
    IncompatibleOrder {
        key: Key,
        longest: (TxnIndex, Vec<Value>),
        conflicting: (TxnIndex, Vec<Value>),
    },
    /// A read list contains some element more than once.
    DuplicateElements {
        reader: TxnIndex,
        key: Key,
        list: Vec<Value>,
    },
    /// Malformed history: `value` was appended to `key` twice (`txns` = first and second).
    DuplicateAppend {
        key: Key,
        value: Value,
        txns: [TxnIndex; 2],
    },
    /// A txn's read does not reflect its own earlier read and appends of the key.
    InternalInconsistency {
        txn: TxnIndex,
        key: Key,
        expected: Expectation,
        observed: Vec<Value>,
    },
    /// A read contains a value nobody appended.
    GarbageRead {
        reader: TxnIndex,
        key: Key,
        value: Value,
    },
}

/// Discriminant of [`Anomaly`], handy for filtering and for [`Isolation::forbids`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnomalyKind {
    G0,
    G1a,
    G1b,
    G1c,
    GSingle,
    GNonadjacent,
    G2,
    LostUpdate,
    IncompatibleOrder,
    DuplicateElements,
    DuplicateAppend,
    InternalInconsistency,
    GarbageRead,
}

impl Anomaly {
    /// The anomaly's kind.
    pub fn kind(&self) -> AnomalyKind {
        match self {
            Anomaly::G0 { .. } => AnomalyKind::G0,
            Anomaly::G1a { .. } => AnomalyKind::G1a,
            Anomaly::G1b { .. } => AnomalyKind::G1b,
            Anomaly::G1c { .. } => AnomalyKind::G1c,
            Anomaly::GSingle { .. } => AnomalyKind::GSingle,
            Anomaly::GNonadjacent { .. } => AnomalyKind::GNonadjacent,
            Anomaly::G2 { .. } => AnomalyKind::G2,
            Anomaly::LostUpdate { .. } => AnomalyKind::LostUpdate,
            Anomaly::IncompatibleOrder { .. } => AnomalyKind::IncompatibleOrder,
            Anomaly::DuplicateElements { .. } => AnomalyKind::DuplicateElements,
            Anomaly::DuplicateAppend { .. } => AnomalyKind::DuplicateAppend,
            Anomaly::InternalInconsistency { .. } => AnomalyKind::InternalInconsistency,
            Anomaly::GarbageRead { .. } => AnomalyKind::GarbageRead,
        }
    }

    /// The witness cycle, for cycle anomalies.
    pub fn cycle(&self) -> Option<&Cycle> {
        match self {
            Anomaly::G0 { cycle }
            | Anomaly::G1c { cycle }
            | Anomaly::GSingle { cycle }
            | Anomaly::GNonadjacent { cycle }
            | Anomaly::G2 { cycle } => Some(cycle),
            _ => None,
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cycle() {
            Some(cycle) => {
                write!(f, "{:?} cycle:", self.kind())?;
                for (txn, kind) in cycle {
                    write!(f, " T{txn} -{}->", kind.arrow())?;
                }
                let first = cycle.first().map(|s| s.0).unwrap_or_default();
                write!(f, " T{first}")
            }
            None => write!(f, "{self:?}"),
        }
    }
}

/// Statistics of a successful check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Transactions in the history.
    pub txns_total: usize,
    /// Graph nodes: committed plus observed unknown txns.
    pub txns_checked: usize,
    /// Unknown txns counted because their appends were observed.
    pub unknown_included: usize,
    /// Unknown txns ignored because nothing they appended was observed.
    pub unknown_ignored: usize,
    /// Aborted txns (not graph nodes).
    pub aborted: usize,
    /// Keys with a usable version order.
    pub keys_ordered: usize,
    /// Distinct ww edges.
    pub ww_edges: usize,
    /// Distinct wr edges.
    pub wr_edges: usize,
    /// Distinct rw edges.
    pub rw_edges: usize,
    /// Distinct realtime edges (after frontier pruning).
    pub realtime_edges: usize,
    /// Non-trivial strongly connected components.
    pub sccs: usize,
    /// Anomalies found but permitted by the model (G2 under SI).
    pub allowed: Vec<Anomaly>,
}

/// Checks `history` against `model` without realtime edges.
pub fn check(history: &[Txn], model: Isolation) -> Result<Summary, Vec<Anomaly>> {
    check_with(history, model, Options::default())
}

/// Checks `history` against `model`. Returns every anomaly the model forbids, or a [`Summary`]
/// (which lists allowed anomalies).
pub fn check_with(
    history: &[Txn],
    model: Isolation,
    options: Options,
) -> Result<Summary, Vec<Anomaly>> {
    let mut found = Vec::new();
    let writes = index_writes(history, &mut found);
    let counted = counted_txns(history, &writes);
    let mut tainted = writes.tainted.clone();
    check_internal(history, &counted, &mut found);
    check_reads(history, &counted, &writes, &mut tainted, &mut found);
    let orders = version_orders(history, &counted, &tainted, &mut found);
    check_lost_updates(history, &counted, &mut found);
    let graph = build_graph(history, &counted, &writes, &orders, options);
    let components = sccs(&graph, &counted, WW | WR | RW | RT);
    for component in &components {
        found.push(classify(witness(&graph, component, options.realtime)));
    }
    let (forbidden, allowed): (Vec<_>, Vec<_>) =
        found.into_iter().partition(|a| model.forbids(a.kind()));
    if !forbidden.is_empty() {
        return Err(forbidden);
    }
    let count = |o: Outcome| history.iter().filter(|t| t.outcome == o).count();
    let unknown_included = counted
        .iter()
        .filter(|&&t| history[t].outcome == Outcome::Unknown)
        .count();
    Ok(Summary {
        txns_total: history.len(),
        txns_checked: counted.len(),
        unknown_included,
        unknown_ignored: count(Outcome::Unknown) - unknown_included,
        aborted: count(Outcome::Aborted),
        keys_ordered: orders.len(),
        ww_edges: graph.counts[0],
        wr_edges: graph.counts[1],
        rw_edges: graph.counts[2],
        realtime_edges: graph.counts[3],
        sccs: components.len(),
        allowed,
    })
}
