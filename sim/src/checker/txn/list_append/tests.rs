//! Self-tests: hand-built anomalous histories each rejected with the right anomaly, valid
//! SI histories (write skew included) accepted.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use AnomalyKind as K;
use MicroOp::{Append, Read};

fn ap(k: Key, v: Value) -> MicroOp {
    Append(k, v)
}

fn r(k: Key, l: &[Value]) -> MicroOp {
    Read(k, Some(l.to_vec()))
}

fn with(outcome: Outcome, ops: Vec<MicroOp>) -> Txn {
    Txn::new(0, 0, 0, outcome, ops)
}

fn ok(ops: Vec<MicroOp>) -> Txn {
    with(Outcome::Committed, ops)
}

fn kinds(result: &Result<Summary, Vec<Anomaly>>) -> BTreeSet<AnomalyKind> {
    match result {
        Ok(_) => BTreeSet::new(),
        Err(anomalies) => anomalies.iter().map(Anomaly::kind).collect(),
    }
}

fn rejects(history: &[Txn], model: Isolation, kind: AnomalyKind) -> Vec<Anomaly> {
    let result = check(history, model);
    assert!(kinds(&result).contains(&kind), "{kind:?} not in {result:?}");
    result.expect_err("rejected")
}

/// Asserts every step of a reported cycle is a real edge of the expected kind.
fn assert_cycle(anomalies: &[Anomaly], expected: &[(TxnIndex, EdgeKind)]) {
    let cycles: Vec<&Cycle> = anomalies.iter().filter_map(Anomaly::cycle).collect();
    assert!(
        cycles.iter().any(|c| c.as_slice() == expected),
        "{cycles:?}"
    );
}

#[test]
fn serial_history_passes_both_models() {
    let h = vec![
        ok(vec![ap(1, 1), ap(2, 1)]),
        ok(vec![r(1, &[1]), ap(1, 2)]),
        ok(vec![r(1, &[1, 2]), r(2, &[1])]),
    ];
    for model in [Isolation::SnapshotIsolation, Isolation::Serializable] {
        let s = check(&h, model).expect("serial history is valid");
        assert_eq!((s.txns_checked, s.ww_edges, s.wr_edges), (3, 1, 3));
        assert_eq!((s.rw_edges, s.sccs), (0, 0));
    }
}

#[test]
fn g0_write_cycle_rejected() {
    let h = vec![
        ok(vec![ap(1, 1), ap(2, 1)]),
        ok(vec![ap(1, 2), ap(2, 2)]),
        ok(vec![r(1, &[1, 2]), r(2, &[2, 1])]),
    ];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::G0);
    assert_cycle(&a, &[(0, EdgeKind::Ww), (1, EdgeKind::Ww)]);
}

#[test]
fn interleaved_appends_show_as_g0() {
    let h = vec![
        ok(vec![ap(1, 1), ap(1, 3)]),
        ok(vec![ap(1, 2)]),
        ok(vec![r(1, &[1, 2, 3])]),
    ];
    rejects(&h, Isolation::SnapshotIsolation, K::G0);
}

#[test]
fn g1a_aborted_read_rejected() {
    let h = vec![with(Outcome::Aborted, vec![ap(1, 1)]), ok(vec![r(1, &[1])])];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::G1a);
    assert!(a.contains(&Anomaly::G1a {
        reader: 1,
        writer: 0,
        key: 1,
        value: 1
    }));
}

#[test]
fn g1b_intermediate_read_rejected() {
    let h = vec![ok(vec![ap(1, 1), ap(1, 2)]), ok(vec![r(1, &[1])])];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::G1b);
    assert_eq!(
        a,
        vec![Anomaly::G1b {
            reader: 1,
            writer: 0,
            key: 1,
            value: 1
        }]
    );
}

#[test]
fn g1c_circular_information_flow_rejected() {
    let h = vec![
        ok(vec![ap(1, 1), r(2, &[1])]),
        ok(vec![ap(2, 1), r(1, &[1])]),
    ];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::G1c);
    assert_cycle(&a, &[(0, EdgeKind::Wr), (1, EdgeKind::Wr)]);
}

#[test]
fn g_single_read_skew_rejected() {
    let h = vec![
        ok(vec![ap(1, 1), ap(2, 1)]),
        ok(vec![r(1, &[1]), r(2, &[1, 2])]),
        ok(vec![ap(1, 2), ap(2, 2)]),
        ok(vec![r(1, &[1, 2])]),
    ];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::GSingle);
    assert_cycle(&a, &[(1, EdgeKind::Rw), (2, EdgeKind::Wr)]);
    assert_eq!(kinds(&Err(a)), BTreeSet::from([K::GSingle]));
}

#[test]
fn lost_update_rejected_as_lost_update_and_g_single() {
    let h = vec![
        ok(vec![ap(1, 1)]),
        ok(vec![r(1, &[1]), ap(1, 2)]),
        ok(vec![r(1, &[1]), ap(1, 3)]),
        ok(vec![r(1, &[1, 2, 3])]),
    ];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::LostUpdate);
    assert!(a.contains(&Anomaly::LostUpdate {
        key: 1,
        version: vec![1],
        txns: vec![1, 2]
    }));
    assert_cycle(&a, &[(2, EdgeKind::Rw), (1, EdgeKind::Ww)]);
}

#[test]
fn lost_update_with_divergent_reads_is_incompatible_order() {
    let h = vec![
        ok(vec![ap(1, 1)]),
        ok(vec![r(1, &[1]), ap(1, 2)]),
        ok(vec![r(1, &[1]), ap(1, 3)]),
        ok(vec![r(1, &[1, 2])]),
        ok(vec![r(1, &[1, 3])]),
    ];
    let k = kinds(&check(&h, Isolation::SnapshotIsolation));
    assert_eq!(k, BTreeSet::from([K::LostUpdate, K::IncompatibleOrder]));
}

fn write_skew() -> Vec<Txn> {
    vec![
        ok(vec![ap(1, 1), ap(2, 1)]),
        ok(vec![r(1, &[1]), r(2, &[1]), ap(1, 2)]),
        ok(vec![r(1, &[1]), r(2, &[1]), ap(2, 2)]),
        ok(vec![r(1, &[1, 2]), r(2, &[1, 2])]),
    ]
}

#[test]
fn write_skew_allowed_under_si_rejected_under_serializable() {
    let h = write_skew();
    let s = check(&h, Isolation::SnapshotIsolation).expect("SI allows write skew");
    assert_eq!(s.allowed.len(), 1);
    assert_eq!(s.allowed[0].kind(), K::G2);
    let a = rejects(&h, Isolation::Serializable, K::G2);
    assert_cycle(&a, &[(1, EdgeKind::Rw), (2, EdgeKind::Rw)]);
}

#[test]
fn g_nonadjacent_rejected_under_si() {
    // T0 -rw-> T1 -wr-> T2 -rw-> T3 -wr-> T0: no two rw edges adjacent.
    let h = vec![
        ok(vec![r(1, &[]), r(4, &[1])]),
        ok(vec![ap(1, 1), ap(2, 1)]),
        ok(vec![r(2, &[1]), r(3, &[])]),
        ok(vec![ap(3, 1), ap(4, 1)]),
        ok(vec![r(1, &[1]), r(3, &[1])]),
    ];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::GNonadjacent);
    assert_cycle(
        &a,
        &[
            (0, EdgeKind::Rw),
            (1, EdgeKind::Wr),
            (2, EdgeKind::Rw),
            (3, EdgeKind::Wr),
        ],
    );
}

#[test]
fn incompatible_order_rejected() {
    let h = vec![
        ok(vec![ap(1, 1)]),
        ok(vec![ap(1, 2)]),
        ok(vec![r(1, &[1])]),
        ok(vec![r(1, &[2])]),
    ];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::IncompatibleOrder);
    assert_eq!(
        a,
        vec![Anomaly::IncompatibleOrder {
            key: 1,
            longest: (2, vec![1]),
            conflicting: (3, vec![2])
        }]
    );
}

#[test]
fn duplicate_elements_rejected() {
    let h = vec![ok(vec![ap(1, 1)]), ok(vec![r(1, &[1, 1])])];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::DuplicateElements);
    assert_eq!(a.len(), 1, "key excluded from inference: {a:?}");
}

#[test]
fn duplicate_append_rejected() {
    let h = vec![ok(vec![ap(1, 7)]), ok(vec![ap(1, 7)]), ok(vec![r(1, &[7])])];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::DuplicateAppend);
    assert_eq!(
        a,
        vec![Anomaly::DuplicateAppend {
            key: 1,
            value: 7,
            txns: [0, 1]
        }]
    );
}

#[test]
fn internal_inconsistency_rejected() {
    let h = vec![
        ok(vec![ap(1, 1)]),
        ok(vec![r(1, &[1]), ap(1, 2), r(1, &[1])]),
        ok(vec![ap(2, 5), r(2, &[])]),
    ];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::InternalInconsistency);
    let internal: Vec<_> = a
        .iter()
        .filter(|x| x.kind() == K::InternalInconsistency)
        .collect();
    assert_eq!(internal.len(), 2, "{a:?}");
    assert!(internal.contains(&&Anomaly::InternalInconsistency {
        txn: 1,
        key: 1,
        expected: Expectation::Exact(vec![1, 2]),
        observed: vec![1],
    }));
}

#[test]
fn own_appends_visible_to_later_reads_pass() {
    let h = vec![
        ok(vec![ap(1, 1)]),
        ok(vec![
            r(1, &[1]),
            ap(1, 2),
            r(1, &[1, 2]),
            ap(1, 3),
            r(1, &[1, 2, 3]),
        ]),
        ok(vec![r(1, &[1, 2, 3])]),
    ];
    check(&h, Isolation::Serializable).expect("valid");
}

#[test]
fn unknown_observed_counts_as_committed() {
    let h = vec![
        with(Outcome::Unknown, vec![ap(1, 1), r(2, &[1])]),
        ok(vec![ap(2, 1), r(1, &[1])]),
    ];
    let a = rejects(&h, Isolation::SnapshotIsolation, K::G1c);
    assert_cycle(&a, &[(0, EdgeKind::Wr), (1, EdgeKind::Wr)]);
    let fine = vec![with(Outcome::Unknown, vec![ap(1, 1)]), ok(vec![r(1, &[1])])];
    let s = check(&fine, Isolation::Serializable).expect("valid");
    assert_eq!((s.txns_checked, s.unknown_included, s.wr_edges), (2, 1, 1));
}

#[test]
fn unknown_never_observed_is_ignored() {
    let h = vec![
        with(Outcome::Unknown, vec![ap(1, 1), r(2, &[99, 99])]),
        ok(vec![r(1, &[])]),
    ];
    let s = check(&h, Isolation::Serializable).expect("unobserved unknown is ignored");
    assert_eq!((s.txns_checked, s.unknown_ignored, s.rw_edges), (1, 1, 0));
}

#[test]
fn aborted_reads_are_not_checked() {
    let h = vec![
        with(Outcome::Aborted, vec![r(1, &[42]), ap(1, 1)]),
        ok(vec![r(1, &[])]),
    ];
    let s = check(&h, Isolation::Serializable).expect("aborted reads ignored");
    assert_eq!(s.aborted, 1);
}

#[test]
fn garbage_read_rejected() {
    let h = vec![ok(vec![r(1, &[5])])];
    rejects(&h, Isolation::SnapshotIsolation, K::GarbageRead);
}

#[test]
fn realtime_stale_read_only_caught_with_realtime() {
    let h = vec![
        Txn::new(1, 0, 10, Outcome::Committed, vec![ap(1, 1)]),
        Txn::new(2, 20, 30, Outcome::Committed, vec![r(1, &[])]),
        Txn::new(3, 40, 50, Outcome::Committed, vec![r(1, &[1])]),
    ];
    check(&h, Isolation::Serializable).expect("serializable without realtime");
    let rt = Options { realtime: true };
    let a = check_with(&h, Isolation::SnapshotIsolation, rt).expect_err("stale read");
    assert_cycle(&a, &[(1, EdgeKind::Rw), (0, EdgeKind::Realtime)]);
    assert_eq!(a[0].kind(), K::GSingle);
}

#[test]
fn realtime_edges_are_frontier_pruned() {
    let h: Vec<Txn> = (0..5)
        .map(|i| Txn::new(i, i * 10, i * 10 + 5, Outcome::Committed, vec![]))
        .collect();
    let rt = Options { realtime: true };
    let s = check_with(&h, Isolation::Serializable, rt).expect("valid");
    assert_eq!(s.realtime_edges, 4);
}

// ---- Simulated stores -------------------------------------------------------------------

struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

struct Active {
    start_ts: u64,
    txn: Txn,
    appends: BTreeMap<Key, Vec<Value>>,
}

/// MVCC store; `fcw` = first-committer-wins (SI). `max_active == 1` gives serial execution.
struct Store {
    versions: BTreeMap<Key, Vec<(u64, Vec<Value>)>>,
    ts: u64,
    clock: u64,
    next_value: Value,
    fcw: bool,
}

impl Store {
    fn latest(&self, key: Key, at: u64) -> (u64, Vec<Value>) {
        let vs = self.versions.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        vs.iter()
            .rev()
            .find(|v| v.0 <= at)
            .cloned()
            .unwrap_or((0, Vec::new()))
    }

    fn step(&mut self, a: &mut Active, rng: &mut Lcg) {
        let key = rng.below(4);
        let own = a.appends.entry(key).or_default();
        if rng.below(2) == 0 {
            let mut list = self.latest(key, a.start_ts).1;
            list.extend(own.iter());
            a.txn.ops.push(Read(key, Some(list)));
        } else {
            self.next_value += 1;
            own.push(self.next_value);
            a.txn.ops.push(Append(key, self.next_value));
        }
    }

    fn finish(&mut self, mut a: Active, rng: &mut Lcg) -> Txn {
        self.clock += 1;
        a.txn.complete_ns = self.clock;
        let conflict = a
            .appends
            .iter()
            .any(|(&k, v)| !v.is_empty() && self.latest(k, u64::MAX).0 > a.start_ts);
        let lost_ack = rng.below(8) == 0;
        if self.fcw && conflict {
            a.txn.outcome = if lost_ack {
                Outcome::Unknown
            } else {
                Outcome::Aborted
            };
            return a.txn;
        }
        self.ts += 1;
        for (k, v) in a.appends.into_iter().filter(|(_, v)| !v.is_empty()) {
            let mut list = self.latest(k, u64::MAX).1;
            list.extend(v);
            self.versions.entry(k).or_default().push((self.ts, list));
        }
        a.txn.outcome = if lost_ack {
            Outcome::Unknown
        } else {
            Outcome::Committed
        };
        a.txn
    }
}

fn simulate(seed: u64, max_active: usize, fcw: bool, steps: usize) -> Vec<Txn> {
    let mut rng = Lcg(seed);
    let mut store = Store {
        versions: BTreeMap::new(),
        ts: 0,
        clock: 0,
        next_value: 0,
        fcw,
    };
    let mut active: Vec<Active> = Vec::new();
    let mut history = Vec::new();
    for _ in 0..steps {
        store.clock += 1;
        if active.len() < max_active && rng.below(3) == 0 {
            let txn = Txn::new(rng.below(5), store.clock, 0, Outcome::Unknown, vec![]);
            active.push(Active {
                start_ts: store.ts,
                txn,
                appends: BTreeMap::new(),
            });
        } else if !active.is_empty() {
            let i = rng.below(active.len() as u64) as usize;
            if rng.below(4) == 0 {
                let done = store.finish(active.swap_remove(i), &mut rng);
                history.push(done);
            } else {
                store.step(&mut active[i], &mut rng);
            }
        }
    }
    for a in std::mem::take(&mut active) {
        history.push(store.finish(a, &mut rng));
    }
    let reads: Vec<MicroOp> = (0..4)
        .map(|k| Read(k, Some(store.latest(k, u64::MAX).1)))
        .collect();
    store.clock += 1;
    let (invoke, complete) = (store.clock, store.clock + 1);
    history.push(Txn::new(9, invoke, complete, Outcome::Committed, reads));
    history
}

#[test]
fn simulated_si_store_passes_strong_si() {
    let rt = Options { realtime: true };
    let mut g2 = 0;
    for seed in 0..20 {
        let h = simulate(seed, 3, true, 400);
        let s = check_with(&h, Isolation::SnapshotIsolation, rt)
            .unwrap_or_else(|a| panic!("seed {seed}: {a:?}"));
        assert!(s.txns_checked > 10 && s.rw_edges > 0);
        g2 += s.allowed.len();
    }
    assert!(g2 > 0, "the SI store should exhibit some write skew");
}

#[test]
fn simulated_serial_store_passes_strict_serializable() {
    let rt = Options { realtime: true };
    for seed in 0..20 {
        let h = simulate(seed, 1, true, 400);
        let s = check_with(&h, Isolation::Serializable, rt)
            .unwrap_or_else(|a| panic!("seed {seed}: {a:?}"));
        assert!(s.realtime_edges > 0 && s.allowed.is_empty());
    }
}

#[test]
fn store_without_first_committer_wins_is_caught() {
    let mut all = BTreeSet::new();
    for seed in 0..5 {
        let h = simulate(seed, 3, false, 400);
        let k = kinds(&check(&h, Isolation::SnapshotIsolation));
        assert!(
            k.contains(&K::GSingle) || k.contains(&K::IncompatibleOrder),
            "{k:?}"
        );
        all.extend(k);
    }
    assert!(
        all.contains(&K::LostUpdate) && all.contains(&K::GSingle),
        "{all:?}"
    );
}

#[test]
fn output_is_deterministic() {
    let h = simulate(7, 3, false, 300);
    assert_eq!(
        check(&h, Isolation::Serializable),
        check(&h, Isolation::Serializable)
    );
}
