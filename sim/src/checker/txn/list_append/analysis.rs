//! The analysis behind `check`: who wrote what, which transactions count, per-read checks,
//! version orders, the dependency graph and its cycles.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::*;

// ---------------------------------------------------------------------------------------------
// Indexing and per-read checks
// ---------------------------------------------------------------------------------------------

/// Who appended what.
pub(super) struct Writes {
    /// (key, value) -> the txn that appended it (first one, if duplicated).
    pub(super) writer: BTreeMap<(Key, Value), TxnIndex>,
    /// (txn, key) -> the txn's final append to the key.
    pub(super) last: BTreeMap<(TxnIndex, Key), Value>,
    /// Keys excluded from edge inference because of duplicate appends.
    pub(super) tainted: BTreeSet<Key>,
}

impl Writes {
    pub(super) fn writer_of(&self, key: Key, value: Value) -> Option<TxnIndex> {
        self.writer.get(&(key, value)).copied()
    }
}

/// Indexes every append (aborted ones too, for G1a) and reports duplicate appends.
pub(super) fn index_writes(history: &[Txn], found: &mut Vec<Anomaly>) -> Writes {
    let mut writes = Writes {
        writer: BTreeMap::new(),
        last: BTreeMap::new(),
        tainted: BTreeSet::new(),
    };
    for (t, txn) in history.iter().enumerate() {
        for op in &txn.ops {
            let MicroOp::Append(key, value) = *op else {
                continue;
            };
            match writes.writer.entry((key, value)) {
                Entry::Vacant(e) => {
                    e.insert(t);
                }
                Entry::Occupied(e) => {
                    found.push(Anomaly::DuplicateAppend {
                        key,
                        value,
                        txns: [*e.get(), t],
                    });
                    writes.tainted.insert(key);
                }
            }
            writes.last.insert((t, key), value);
        }
    }
    writes
}

/// Committed txns plus, transitively, unknown txns whose appends a counted txn observed.
pub(super) fn counted_txns(history: &[Txn], writes: &Writes) -> BTreeSet<TxnIndex> {
    let mut counted: BTreeSet<TxnIndex> = (0..history.len())
        .filter(|&t| history[t].outcome == Outcome::Committed)
        .collect();
    let mut queue: VecDeque<TxnIndex> = counted.iter().copied().collect();
    while let Some(t) = queue.pop_front() {
        for (key, list) in history[t].reads() {
            for &value in list {
                if let Some(w) = writes.writer_of(key, value) {
                    if history[w].outcome == Outcome::Unknown && counted.insert(w) {
                        queue.push_back(w);
                    }
                }
            }
        }
    }
    counted
}

/// Each counted txn's reads must reflect its own earlier reads and appends.
pub(super) fn check_internal(
    history: &[Txn],
    counted: &BTreeSet<TxnIndex>,
    found: &mut Vec<Anomaly>,
) {
    for &t in counted {
        let mut expect: BTreeMap<Key, Expectation> = BTreeMap::new();
        for op in &history[t].ops {
            match op {
                MicroOp::Append(key, value) => expect
                    .entry(*key)
                    .or_insert_with(|| Expectation::EndsWith(Vec::new()))
                    .push(*value),
                MicroOp::Read(key, Some(list)) => {
                    if let Some(e) = expect.get(key) {
                        if !e.matches(list) {
                            found.push(Anomaly::InternalInconsistency {
                                txn: t,
                                key: *key,
                                expected: e.clone(),
                                observed: list.clone(),
                            });
                        }
                    }
                    expect.insert(*key, Expectation::Exact(list.clone()));
                }
                MicroOp::Read(_, None) => {}
            }
        }
    }
}

pub(super) fn has_duplicates(list: &[Value]) -> bool {
    list.iter().collect::<BTreeSet<_>>().len() != list.len()
}

/// Per-read checks on counted txns: duplicates, garbage, G1a (aborted read), G1b (intermediate).
pub(super) fn check_reads(
    history: &[Txn],
    counted: &BTreeSet<TxnIndex>,
    writes: &Writes,
    tainted: &mut BTreeSet<Key>,
    found: &mut Vec<Anomaly>,
) {
    for &reader in counted {
        for (key, list) in history[reader].reads() {
            if has_duplicates(list) {
                found.push(Anomaly::DuplicateElements {
                    reader,
                    key,
                    list: list.to_vec(),
                });
                tainted.insert(key);
            }
            for &value in list {
                match writes.writer_of(key, value) {
                    None => found.push(Anomaly::GarbageRead { reader, key, value }),
                    Some(writer) if history[writer].outcome == Outcome::Aborted => {
                        found.push(Anomaly::G1a {
                            reader,
                            writer,
                            key,
                            value,
                        })
                    }
                    Some(_) => {}
                }
            }
            check_intermediate(history, writes, reader, key, list, found);
        }
    }
}

/// G1b: the read ends in another (non-aborted) txn's non-final append to the key.
pub(super) fn check_intermediate(
    history: &[Txn],
    writes: &Writes,
    reader: TxnIndex,
    key: Key,
    list: &[Value],
    found: &mut Vec<Anomaly>,
) {
    let Some(&value) = list.last() else {
        return;
    };
    let Some(writer) = writes.writer_of(key, value) else {
        return;
    };
    if writer != reader
        && history[writer].outcome != Outcome::Aborted
        && writes.last.get(&(writer, key)) != Some(&value)
    {
        found.push(Anomaly::G1b {
            reader,
            writer,
            key,
            value,
        });
    }
}

/// Version order per key (longest counted read), reporting reads that are not prefixes of it.
/// Only keys not tainted and with a consistent order are returned.
pub(super) fn version_orders(
    history: &[Txn],
    counted: &BTreeSet<TxnIndex>,
    tainted: &BTreeSet<Key>,
    found: &mut Vec<Anomaly>,
) -> BTreeMap<Key, Vec<Value>> {
    let mut by_key: BTreeMap<Key, Vec<(TxnIndex, &[Value])>> = BTreeMap::new();
    for &t in counted {
        for (key, list) in history[t].reads() {
            if !tainted.contains(&key) {
                by_key.entry(key).or_default().push((t, list));
            }
        }
    }
    let mut orders = BTreeMap::new();
    for (key, reads) in by_key {
        assert!(!reads.is_empty(), "by_key entries are created on push");
        let longest =
            reads.iter().copied().fold(
                reads[0],
                |best, r| if r.1.len() > best.1.len() { r } else { best },
            );
        if let Some(&(t, list)) = reads.iter().find(|(_, l)| !longest.1.starts_with(l)) {
            found.push(Anomaly::IncompatibleOrder {
                key,
                longest: (longest.0, longest.1.to_vec()),
                conflicting: (t, list.to_vec()),
            });
            continue;
        }
        orders.insert(key, longest.1.to_vec());
    }
    orders
}

/// Lost update: >= 2 counted txns read the same version of a key (before appending to it
/// themselves) and then appended to it.
pub(super) fn check_lost_updates(
    history: &[Txn],
    counted: &BTreeSet<TxnIndex>,
    found: &mut Vec<Anomaly>,
) {
    let mut groups: BTreeMap<(Key, &[Value]), Vec<TxnIndex>> = BTreeMap::new();
    for &t in counted {
        let mut first_read: BTreeMap<Key, &[Value]> = BTreeMap::new();
        let mut appended: BTreeSet<Key> = BTreeSet::new();
        for op in &history[t].ops {
            match op {
                MicroOp::Read(key, Some(list)) if !appended.contains(key) => {
                    first_read.entry(*key).or_insert(list.as_slice());
                }
                MicroOp::Append(key, _) => {
                    appended.insert(*key);
                }
                MicroOp::Read(..) => {}
            }
        }
        for (key, version) in first_read {
            if appended.contains(&key) {
                groups.entry((key, version)).or_default().push(t);
            }
        }
    }
    for ((key, version), txns) in groups {
        if txns.len() >= 2 {
            found.push(Anomaly::LostUpdate {
                key,
                version: version.to_vec(),
                txns,
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dependency graph
// ---------------------------------------------------------------------------------------------

/// Adjacency map indexed by txn; each edge carries a bit set of [`EdgeKind`]s.
pub(super) struct Graph {
    pub(super) adj: Vec<BTreeMap<TxnIndex, u8>>,
    /// Distinct edges per kind: ww, wr, rw, realtime.
    pub(super) counts: [usize; 4],
}

impl Graph {
    pub(super) fn new(n: usize) -> Self {
        Self {
            adj: vec![BTreeMap::new(); n],
            counts: [0; 4],
        }
    }

    pub(super) fn add(&mut self, from: TxnIndex, to: TxnIndex, kind: EdgeKind) {
        assert_ne!(from, to, "dependency graph must not have self-loops");
        let bits = self.adj[from].entry(to).or_insert(0);
        if *bits & kind.bit() == 0 {
            *bits |= kind.bit();
            self.counts[kind.bit().trailing_zeros() as usize] += 1;
        }
    }

    /// Successors of `from` inside `within`, with the edge bits restricted to `mask`.
    pub(super) fn succ<'a>(
        &'a self,
        from: TxnIndex,
        mask: u8,
        within: &'a BTreeSet<TxnIndex>,
    ) -> impl Iterator<Item = (TxnIndex, u8)> + 'a {
        self.adj[from].iter().filter_map(move |(&to, &bits)| {
            (bits & mask != 0 && within.contains(&to)).then_some((to, bits & mask))
        })
    }
}

pub(super) fn build_graph(
    history: &[Txn],
    counted: &BTreeSet<TxnIndex>,
    writes: &Writes,
    orders: &BTreeMap<Key, Vec<Value>>,
    options: Options,
) -> Graph {
    let mut graph = Graph::new(history.len());
    add_ww(&mut graph, counted, writes, orders);
    add_read_edges(&mut graph, history, counted, writes, orders);
    if options.realtime {
        add_realtime(&mut graph, history, counted);
    }
    graph
}

/// ww: consecutive counted writers in each key's version order.
pub(super) fn add_ww(
    graph: &mut Graph,
    counted: &BTreeSet<TxnIndex>,
    writes: &Writes,
    orders: &BTreeMap<Key, Vec<Value>>,
) {
    for (&key, order) in orders {
        let mut prev: Option<TxnIndex> = None;
        for &value in order {
            let Some(w) = writes.writer_of(key, value).filter(|w| counted.contains(w)) else {
                continue;
            };
            if let Some(p) = prev {
                if p != w {
                    graph.add(p, w, EdgeKind::Ww);
                }
            }
            prev = Some(w);
        }
    }
}

/// wr and rw edges from every counted read of an ordered key.
pub(super) fn add_read_edges(
    graph: &mut Graph,
    history: &[Txn],
    counted: &BTreeSet<TxnIndex>,
    writes: &Writes,
    orders: &BTreeMap<Key, Vec<Value>>,
) {
    for &reader in counted {
        for (key, list) in history[reader].reads() {
            let Some(order) = orders.get(&key) else {
                continue;
            };
            assert!(
                order.starts_with(list),
                "reads of ordered keys are prefixes"
            );
            let own = |v: &Value| writes.writer_of(key, *v) == Some(reader);
            let source = list.iter().rev().find(|v| !own(v));
            if let Some(w) = source.and_then(|&v| writes.writer_of(key, v)) {
                if counted.contains(&w) {
                    graph.add(w, reader, EdgeKind::Wr);
                }
            }
            if list.last().is_some_and(own) {
                continue; // The reader's own append is next; ww already orders successors.
            }
            let next = order[list.len()..]
                .iter()
                .filter_map(|&v| writes.writer_of(key, v))
                .find(|w| counted.contains(w));
            if let Some(w) = next {
                if w != reader {
                    graph.add(reader, w, EdgeKind::Rw);
                }
            }
        }
    }
}

/// Realtime edges T1 -> T2 when T1 (committed) completed before T2 was invoked, pruned to the
/// frontier: T1 is skipped if some other predecessor T1' of T2 was invoked after T1 completed
/// (T1 -> T1' -> T2 already orders it). Malformed txns with `complete < invoke` are treated as
/// completing at invocation, which keeps realtime acyclic.
pub(super) fn add_realtime(graph: &mut Graph, history: &[Txn], counted: &BTreeSet<TxnIndex>) {
    let done = |t: TxnIndex| history[t].complete_ns.max(history[t].invoke_ns);
    let mut preds: Vec<TxnIndex> = counted
        .iter()
        .copied()
        .filter(|&t| history[t].outcome == Outcome::Committed)
        .collect();
    preds.sort_by_key(|&t| (done(t), t));
    let max_invoke: Vec<u64> = preds
        .iter()
        .scan(0, |m, &t| {
            *m = history[t].invoke_ns.max(*m);
            Some(*m)
        })
        .collect();
    for &succ in counted {
        let cut = preds.partition_point(|&p| done(p) < history[succ].invoke_ns);
        let Some(&frontier) = cut.checked_sub(1).and_then(|i| max_invoke.get(i)) else {
            continue;
        };
        for &p in preds[..cut].iter().rev() {
            if done(p) < frontier {
                break;
            }
            if p != succ {
                graph.add(p, succ, EdgeKind::Realtime);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cycle search
// ---------------------------------------------------------------------------------------------

/// One frame of the iterative Tarjan DFS.
pub(super) struct Frame {
    pub(super) node: TxnIndex,
    pub(super) succ: Vec<TxnIndex>,
    pub(super) pos: usize,
}

/// Iterative Tarjan state over the subgraph induced by `within` and `mask`.
pub(super) struct Tarjan<'a> {
    pub(super) graph: &'a Graph,
    pub(super) within: &'a BTreeSet<TxnIndex>,
    pub(super) mask: u8,
    pub(super) index: BTreeMap<TxnIndex, usize>,
    pub(super) low: BTreeMap<TxnIndex, usize>,
    pub(super) on_stack: BTreeSet<TxnIndex>,
    pub(super) stack: Vec<TxnIndex>,
    pub(super) calls: Vec<Frame>,
    pub(super) components: Vec<Vec<TxnIndex>>,
}

impl Tarjan<'_> {
    pub(super) fn open(&mut self, v: TxnIndex) {
        let i = self.index.len();
        self.index.insert(v, i);
        self.low.insert(v, i);
        self.stack.push(v);
        self.on_stack.insert(v);
        let succ: Vec<TxnIndex> = self
            .graph
            .succ(v, self.mask, self.within)
            .map(|e| e.0)
            .collect();
        self.calls.push(Frame {
            node: v,
            succ,
            pos: 0,
        });
    }

    pub(super) fn lower(&mut self, v: TxnIndex, to: usize) {
        let low = self.low.get_mut(&v).expect("opened nodes have a lowlink");
        *low = (*low).min(to);
    }

    /// Called when `v`'s frame is exhausted: emit a component rooted at `v`, if any.
    pub(super) fn close(&mut self, v: TxnIndex) {
        if self.low[&v] == self.index[&v] {
            let mut component = Vec::new();
            loop {
                let w = self.stack.pop().expect("root is still on the stack");
                self.on_stack.remove(&w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() >= 2 {
                component.sort_unstable();
                self.components.push(component);
            }
        }
        if let Some(parent) = self.calls.last().map(|f| f.node) {
            let low = self.low[&v];
            self.lower(parent, low);
        }
    }

    pub(super) fn run(mut self) -> Vec<Vec<TxnIndex>> {
        let within = self.within;
        for &root in within {
            if self.index.contains_key(&root) {
                continue;
            }
            self.open(root);
            while let Some(frame) = self.calls.last_mut() {
                let v = frame.node;
                let next = frame.succ.get(frame.pos).copied();
                frame.pos += 1;
                match next {
                    Some(w) if !self.index.contains_key(&w) => self.open(w),
                    Some(w) if self.on_stack.contains(&w) => {
                        let iw = self.index[&w];
                        self.lower(v, iw);
                    }
                    Some(_) => {}
                    None => {
                        self.calls.pop();
                        self.close(v);
                    }
                }
            }
        }
        assert!(self.stack.is_empty(), "Tarjan leaves an empty stack");
        self.components
    }
}

/// Non-trivial SCCs (>= 2 txns; the graph has no self-loops) of the subgraph induced by `within`
/// and the edge kinds in `mask`.
pub(super) fn sccs(graph: &Graph, within: &BTreeSet<TxnIndex>, mask: u8) -> Vec<Vec<TxnIndex>> {
    Tarjan {
        graph,
        within,
        mask,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on_stack: BTreeSet::new(),
        stack: Vec::new(),
        calls: Vec::new(),
        components: Vec::new(),
    }
    .run()
}

/// Breadth-first search over abstract states. `expand(state, out)` pushes
/// `(next_state, edge_kind, closes)`; `closes` marks an edge into the goal. Returns the shortest
/// walk as `(state, kind of edge leaving it)`, the last edge entering the goal.
pub(super) fn bfs<S: Ord + Copy>(
    start: S,
    mut expand: impl FnMut(S, &mut Vec<(S, EdgeKind, bool)>),
) -> Option<Vec<(S, EdgeKind)>> {
    let mut parent: BTreeMap<S, (S, EdgeKind)> = BTreeMap::new();
    let mut seen = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    let mut out = Vec::new();
    while let Some(u) = queue.pop_front() {
        out.clear();
        expand(u, &mut out);
        for &(w, kind, closes) in &out {
            if closes {
                let mut walk = vec![(u, kind)];
                let mut cur = u;
                while cur != start {
                    let step = *parent
                        .get(&cur)
                        .expect("every seen state but start has a parent");
                    walk.push(step);
                    cur = step.0;
                }
                walk.reverse();
                return Some(walk);
            }
            if seen.insert(w) {
                parent.insert(w, (u, kind));
                queue.push_back(w);
            }
        }
    }
    None
}

/// Shortest path (>= 1 edge) `from` -> `to` over `mask` edges inside `within`.
pub(super) fn path(
    graph: &Graph,
    within: &BTreeSet<TxnIndex>,
    mask: u8,
    from: TxnIndex,
    to: TxnIndex,
) -> Option<Cycle> {
    bfs(from, |u, out| {
        for (w, bits) in graph.succ(u, mask, within) {
            let kind = label(bits).expect("succ yields non-empty masks");
            out.push((w, kind, w == to));
        }
    })
}

/// A cycle through the first node of the first sub-SCC under `mask`.
pub(super) fn plain_cycle(graph: &Graph, within: &BTreeSet<TxnIndex>, mask: u8) -> Option<Cycle> {
    let node = *sccs(graph, within, mask).first()?.first()?;
    path(graph, within, mask, node, node)
}

/// Every rw edge `(a, b)` inside `within`, in deterministic order.
pub(super) fn rw_edges(graph: &Graph, within: &BTreeSet<TxnIndex>) -> Vec<(TxnIndex, TxnIndex)> {
    within
        .iter()
        .flat_map(|&a| graph.succ(a, RW, within).map(move |(b, _)| (a, b)))
        .collect()
}

/// A cycle with exactly one rw edge: rw `a -> b` plus a `non_rw` path `b -> a`.
pub(super) fn single_cycle(
    graph: &Graph,
    within: &BTreeSet<TxnIndex>,
    non_rw: u8,
) -> Option<Cycle> {
    rw_edges(graph, within).into_iter().find_map(|(a, b)| {
        let back = path(graph, within, non_rw, b, a)?;
        Some([(a, EdgeKind::Rw)].into_iter().chain(back).collect())
    })
}

/// A closed walk whose rw edges are pairwise non-adjacent: rw `a -> b`, then a walk `b -> a`
/// that starts and ends with non-rw edges and never takes two rw edges in a row.
pub(super) fn nonadjacent_cycle(
    graph: &Graph,
    within: &BTreeSet<TxnIndex>,
    non_rw: u8,
) -> Option<Cycle> {
    rw_edges(graph, within).into_iter().find_map(|(a, b)| {
        let walk = bfs((b, true), |(u, after_rw), out| {
            for (w, bits) in graph.succ(u, non_rw | RW, within) {
                if let Some(kind) = label(bits & non_rw) {
                    out.push(((w, false), kind, w == a));
                }
                if bits & RW != 0 && !after_rw {
                    out.push(((w, true), EdgeKind::Rw, false));
                }
            }
        })?;
        let back = walk.into_iter().map(|((node, _), kind)| (node, kind));
        Some([(a, EdgeKind::Rw)].into_iter().chain(back).collect())
    })
}

/// One cycle search; the mask selects the edge kinds allowed (besides the single rw edge(s)).
pub(super) enum Search {
    /// Any cycle over `mask` edges.
    Plain(u8),
    /// Exactly one rw edge plus a path over the given non-rw edges.
    Single(u8),
    /// Pairwise non-adjacent rw edges, the rest over the given non-rw edges.
    Nonadjacent(u8),
}

/// The most severe cycle in a non-trivial SCC (searches ordered by severity, each complete).
pub(super) fn witness(graph: &Graph, component: &[TxnIndex], realtime: bool) -> Cycle {
    let within: BTreeSet<TxnIndex> = component.iter().copied().collect();
    let non_rw = if realtime { WW | WR | RT } else { WW | WR };
    let mut searches = vec![
        Search::Plain(WW),
        Search::Plain(WW | WR),
        Search::Single(WW | WR),
    ];
    if realtime {
        searches.extend([Search::Plain(WW | WR | RT), Search::Single(WW | WR | RT)]);
    }
    searches.extend([Search::Nonadjacent(non_rw), Search::Plain(non_rw | RW)]);
    let cycle = searches
        .into_iter()
        .find_map(|search| match search {
            Search::Plain(mask) => plain_cycle(graph, &within, mask),
            Search::Single(non_rw) => single_cycle(graph, &within, non_rw),
            Search::Nonadjacent(non_rw) => nonadjacent_cycle(graph, &within, non_rw),
        })
        .expect("a non-trivial SCC contains a cycle");
    assert!(cycle.len() >= 2, "cycles have no self-loops");
    cycle
}

/// Classifies a cycle by its rw edges (Adya / Elle).
pub(super) fn classify(cycle: Cycle) -> Anomaly {
    let is_rw = |i: usize| cycle[i % cycle.len()].1 == EdgeKind::Rw;
    let rw = (0..cycle.len()).filter(|&i| is_rw(i)).count();
    let adjacent = (0..cycle.len()).any(|i| is_rw(i) && is_rw(i + 1));
    let only_ww = cycle
        .iter()
        .all(|s| matches!(s.1, EdgeKind::Ww | EdgeKind::Realtime));
    match rw {
        0 if only_ww => Anomaly::G0 { cycle },
        0 => Anomaly::G1c { cycle },
        1 => Anomaly::GSingle { cycle },
        _ if adjacent => Anomaly::G2 { cycle },
        _ => Anomaly::GNonadjacent { cycle },
    }
}
