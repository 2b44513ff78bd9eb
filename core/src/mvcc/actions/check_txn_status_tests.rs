//! Tests of CheckTxnStatus: live, expired, committed and missing transactions, pushes of
//! min_commit_ts, async-commit locks, pessimistic primaries, primary verification.

use super::*;
use crate::mvcc::actions::test_util::TestEnv;
use crate::mvcc::actions::{CommitKind, Mutation, MutationOp};
use crate::mvcc::write::WriteType;

fn ts(physical_ms: u64) -> TimeStamp {
    TimeStamp::compose(physical_ms, 0)
}

fn params(caller: TimeStamp, current: TimeStamp) -> CheckTxnStatusParams {
    CheckTxnStatusParams {
        caller_start_ts: caller,
        current_ts: current,
        rollback_if_not_exist: false,
        force_sync_commit: false,
        resolving_pessimistic_lock: false,
        verify_is_primary: true,
    }
}

fn check(
    env: &mut TestEnv,
    key: &[u8],
    lock_ts: TimeStamp,
    p: CheckTxnStatusParams,
) -> Result<TxnStatus> {
    env.run(lock_ts.get(), |txn, reader| {
        check_txn_status(txn, reader, key, &p)
    })
}

#[test]
fn live_lock_is_reported_and_expired_lock_rolled_back() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"p", b"v", b"p", ts(100).get());
    let live = check(&mut env, b"p", ts(100), params(ts(200), ts(3100))).unwrap();
    let TxnStatus::Uncommitted {
        lock,
        min_commit_ts_pushed,
    } = live
    else {
        panic!("expected uncommitted, got {live:?}");
    };
    assert_eq!(lock.ttl_ms, 3000);
    assert!(
        !min_commit_ts_pushed,
        "2PC locks (min_commit_ts 0) are never pushed"
    );
    assert_eq!(env.lock(b"p").unwrap().min_commit_ts, TimeStamp::ZERO);
    let expired = check(&mut env, b"p", ts(100), params(ts(200), ts(3101))).unwrap();
    assert_eq!(expired, TxnStatus::TtlExpire);
    assert!(env.lock(b"p").is_none());
    assert_eq!(
        env.write_at(b"p", ts(100).get()).unwrap().write_type,
        WriteType::Rollback
    );
    // Asking again finds the rollback.
    let again = check(&mut env, b"p", ts(100), params(ts(200), ts(3101))).unwrap();
    assert_eq!(again, TxnStatus::RolledBack);
}

#[test]
fn committed_and_missing_transactions() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"p", b"v", b"p", 10);
    env.commit(b"p", 10, 12).unwrap();
    let committed = check(&mut env, b"p", TimeStamp(10), params(ts(1), ts(2))).unwrap();
    assert_eq!(
        committed,
        TxnStatus::Committed {
            commit_ts: TimeStamp(12)
        }
    );
    let missing = check(&mut env, b"q", TimeStamp(10), params(ts(1), ts(2)));
    assert!(matches!(missing, Err(Error::TxnNotFound { .. })));
    let mut rollback = params(ts(1), ts(2));
    rollback.rollback_if_not_exist = true;
    assert_eq!(
        check(&mut env, b"q", TimeStamp(10), rollback),
        Ok(TxnStatus::LockNotExist)
    );
    assert!(env.write_at(b"q", 10).unwrap().is_protected_rollback());
    rollback.resolving_pessimistic_lock = true;
    let before = env.engine.clone();
    let status = check(&mut env, b"r", TimeStamp(10), rollback).unwrap();
    assert_eq!(status, TxnStatus::LockNotExistDoNothing);
    assert_eq!(env.engine, before);
}

#[test]
fn min_commit_ts_is_pushed_for_readers() {
    let mut env = TestEnv::new();
    env.prewrite_with(b"p", b"v", b"p", ts(100).get(), |props| {
        props.min_commit_ts = ts(100).next();
    });
    let status = check(&mut env, b"p", ts(100), params(ts(150), ts(160))).unwrap();
    let TxnStatus::Uncommitted {
        lock,
        min_commit_ts_pushed,
    } = status
    else {
        panic!("expected uncommitted");
    };
    assert!(min_commit_ts_pushed);
    assert_eq!(lock.min_commit_ts, ts(160), "max(caller + 1, current)");
    assert_eq!(env.lock(b"p").unwrap().min_commit_ts, ts(160));
    // A caller below min_commit_ts pushes nothing but may read past.
    let status = check(&mut env, b"p", ts(100), params(ts(120), ts(170))).unwrap();
    assert!(matches!(
        status,
        TxnStatus::Uncommitted {
            min_commit_ts_pushed: true,
            ..
        }
    ));
    assert_eq!(env.lock(b"p").unwrap().min_commit_ts, ts(160));
}

#[test]
fn async_lock_is_left_alone_unless_forced() {
    let mut env = TestEnv::new();
    let mutation = Mutation {
        key: b"p".to_vec(),
        op: MutationOp::Put(b"v".to_vec()),
    };
    let kind = CommitKind::Async {
        max_commit_ts: TimeStamp::ZERO,
    };
    env.prewrite_full(&mutation, b"p", ts(100).get(), kind, Some(&[]))
        .unwrap();
    let late = params(ts(10_000), TimeStamp::MAX);
    let status = check(&mut env, b"p", ts(100), late).unwrap();
    assert!(
        matches!(status, TxnStatus::Uncommitted { .. }),
        "never expired: {status:?}"
    );
    let mut forced = late;
    forced.force_sync_commit = true;
    assert_eq!(
        check(&mut env, b"p", ts(100), forced),
        Ok(TxnStatus::TtlExpire)
    );
}

#[test]
fn expired_pessimistic_primary() {
    let mut env = TestEnv::new();
    env.pessimistic_lock(b"p", b"p", ts(100).get(), ts(100).get())
        .unwrap();
    let mut resolving = params(ts(200), ts(10_000));
    resolving.resolving_pessimistic_lock = true;
    let status = check(&mut env, b"p", ts(100), resolving).unwrap();
    assert_eq!(status, TxnStatus::PessimisticRollBack);
    assert!(env.lock(b"p").is_none());
    assert!(
        env.write_at(b"p", ts(100).get()).is_none(),
        "no rollback record"
    );
    env.pessimistic_lock(b"q", b"q", ts(100).get(), ts(100).get())
        .unwrap();
    let status = check(&mut env, b"q", ts(100), params(ts(200), ts(10_000))).unwrap();
    assert_eq!(status, TxnStatus::TtlExpire);
    assert!(env
        .write_at(b"q", ts(100).get())
        .unwrap()
        .is_protected_rollback());
}

#[test]
fn verify_is_primary() {
    let mut env = TestEnv::new();
    env.prewrite_put(b"s", b"v", b"p", 10);
    let result = check(&mut env, b"s", TimeStamp(10), params(ts(1), ts(2)));
    let Err(Error::PrimaryMismatch(info)) = result else {
        panic!("expected PrimaryMismatch, got {result:?}");
    };
    assert_eq!(info.primary_lock, b"p");
    let mut lax = params(ts(1), ts(2));
    lax.verify_is_primary = false;
    assert!(matches!(
        check(&mut env, b"s", TimeStamp(10), lax),
        Ok(TxnStatus::Uncommitted { .. })
    ));
}
