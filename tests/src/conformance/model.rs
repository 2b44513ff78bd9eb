//! A property test: random operation sequences against each engine and a `BTreeMap` model.

use std::collections::BTreeMap;

use ferrokv_core::env::{Cf, Direction, KvEngine, Snapshot, WriteBatch, WriteOptions};
use ferrokv_core::types::KeyRange;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::EngineFixture;

type Model = BTreeMap<(u8, Vec<u8>), Vec<u8>>;

#[derive(Clone, Debug)]
enum Write {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
    DeleteRange(Cf, Vec<u8>, Vec<u8>),
}

#[derive(Clone, Debug)]
enum Op {
    Batch(Vec<Write>, bool),
    Scan(Cf, Vec<u8>, Vec<u8>, usize, bool),
    SnapshotThenWrite(Vec<Write>),
    Reopen,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', b'b', 0xff]), 0..3)
}

fn cf() -> impl Strategy<Value = Cf> {
    prop::sample::select(Cf::ALL.to_vec())
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        4 => (cf(), key(), prop::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(cf, k, v)| Write::Put(cf, k, v)),
        2 => (cf(), key()).prop_map(|(cf, k)| Write::Delete(cf, k)),
        1 => (cf(), key(), key()).prop_map(|(cf, a, b)| {
            let (start, mut end) = if a <= b { (a, b) } else { (b, a) };
            end.push(0);
            Write::DeleteRange(cf, start, end)
        }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec(write(), 1..5), any::<bool>())
            .prop_map(|(writes, sync)| Op::Batch(writes, sync)),
        3 => (cf(), key(), key(), 0usize..6, any::<bool>())
            .prop_map(|(cf, a, b, limit, rev)| Op::Scan(cf, a, b, limit, rev)),
        1 => prop::collection::vec(write(), 1..4).prop_map(Op::SnapshotThenWrite),
        1 => Just(Op::Reopen),
    ]
}

fn stage(writes: &[Write], batch: &mut WriteBatch, model: &mut Model) {
    for write in writes {
        match write {
            Write::Put(cf, k, v) => {
                batch.put(*cf, k, v);
                model.insert((*cf as u8, k.clone()), v.clone());
            }
            Write::Delete(cf, k) => {
                batch.delete(*cf, k);
                model.remove(&(*cf as u8, k.clone()));
            }
            Write::DeleteRange(cf, start, end) => {
                batch.delete_range(*cf, start, end);
                model.retain(|(c, k), _| !(*c == *cf as u8 && k >= start && k < end));
            }
        }
    }
}

fn model_scan(
    model: &Model,
    cf: Cf,
    range: &KeyRange,
    limit: usize,
    rev: bool,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let inside = model
        .iter()
        .filter(|((c, k), _)| *c == cf as u8 && range.contains(k))
        .map(|((_, k), v)| (k.clone(), v.clone()));
    if rev {
        inside.rev().take(limit).collect()
    } else {
        inside.take(limit).collect()
    }
}

fn assert_matches<S: Snapshot>(snapshot: &S, model: &Model) {
    for cf in Cf::ALL {
        let all = snapshot
            .scan(cf, &KeyRange::all(), 1000, Direction::Forward)
            .unwrap();
        assert_eq!(
            all,
            model_scan(model, cf, &KeyRange::all(), 1000, false),
            "{cf:?}"
        );
    }
}

fn run_ops<F: EngineFixture>(ops: &[Op]) {
    let mut fixture = F::create();
    let mut model = Model::new();
    for op in ops {
        match op {
            Op::Batch(writes, sync) => {
                let mut batch = WriteBatch::new();
                stage(writes, &mut batch, &mut model);
                fixture
                    .engine()
                    .write(&batch, WriteOptions { sync: *sync })
                    .unwrap();
            }
            Op::Scan(cf, a, b, limit, rev) => {
                let range = if a <= b {
                    KeyRange::new(a.clone(), b.clone())
                } else {
                    KeyRange::new(b.clone(), vec![])
                };
                let direction = if *rev {
                    Direction::Reverse
                } else {
                    Direction::Forward
                };
                let got = fixture
                    .engine()
                    .snapshot()
                    .scan(*cf, &range, *limit, direction)
                    .unwrap();
                assert_eq!(got, model_scan(&model, *cf, &range, *limit, *rev));
            }
            Op::SnapshotThenWrite(writes) => {
                let engine = fixture.engine();
                let snapshot = engine.snapshot();
                let before = model.clone();
                let mut batch = WriteBatch::new();
                stage(writes, &mut batch, &mut model);
                engine.write(&batch, WriteOptions::NO_SYNC).unwrap();
                assert_matches(&snapshot, &before);
            }
            Op::Reopen => fixture.reopen(),
        }
    }
    assert_matches(&fixture.engine().snapshot(), &model);
}

/// Random sequences of batches, scans, snapshots and reopens agree with a `BTreeMap`.
pub fn model_matches_btreemap<F: EngineFixture>() {
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let strategy = prop::collection::vec(op(), 1..40);
    runner
        .run(&strategy, |ops| {
            run_ops::<F>(&ops);
            Ok(())
        })
        .unwrap();
}
