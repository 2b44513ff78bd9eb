//! The transactional operations of the model test: each runs the real action(s) and
//! checks the outcome against what the model allows.

use super::{Model, State, Txn, KEYS};
use crate::mvcc::actions::test_util::optimistic_props;
use crate::mvcc::actions::{
    check_txn_status, prewrite, resolve_lock, CheckTxnStatusParams, CommitKind, Mutation,
    MutationOp, PessimisticAction, PrewriteOutcome, TxnKind, TxnStatus,
};
use crate::mvcc::Error;
use crate::types::TimeStamp;

fn mutation_op(op: u8, index: usize, long: bool) -> MutationOp {
    let value = if long {
        vec![op; 300]
    } else {
        vec![op, index as u8]
    };
    match op {
        0 | 1 => MutationOp::Put(value),
        2 => MutationOp::Delete,
        _ => MutationOp::Lock,
    }
}

impl Model {
    pub(super) fn prewrite(&mut self, index: usize, key: usize, op: u8, long: bool) {
        let Some(txn) = self.txns.get(index).cloned() else {
            return;
        };
        if self.collected(index) {
            return;
        }
        let op = mutation_op(op, index, long);
        if txn.is_pessimistic() {
            return self.prewrite_pessimistic(index, &txn, key, op);
        }
        if txn.state != State::Active && !txn.wrote(key) {
            return; // a client never starts new keys after the end
        }
        let primary = KEYS[txn.primary().unwrap_or(key)];
        let mutation = Mutation {
            key: KEYS[key].to_vec(),
            op: op.clone(),
        };
        let start = txn.start_ts.get();
        let result = self
            .env
            .prewrite_full(&mutation, primary, start, CommitKind::TwoPc, None);
        if txn.state != State::Active {
            assert!(
                result.is_err(),
                "late prewrite of a finished txn succeeded: {txn:?}"
            );
            return;
        }
        let blocked = self.blocked(index, key);
        let rollbacks = self.rollback_ts.get(&key);
        let uncertain = rollbacks.is_some_and(|set| set.iter().any(|ts| *ts > txn.start_ts));
        match result {
            Ok(_) if blocked => panic!("prewrite over a conflict succeeded"),
            Ok(_) if !txn.wrote(key) => self.txns[index].writes.push((key, op)),
            Ok(_) => {}
            Err(Error::KeyIsLocked(_) | Error::WriteConflict { .. }) if blocked || uncertain => {}
            Err(error) => panic!("unexpected prewrite failure {error:?} of {txn:?}"),
        }
    }

    fn pessimistic_prewrite_call(
        &mut self,
        txn: &Txn,
        key: usize,
        op: MutationOp,
    ) -> Result<PrewriteOutcome, Error> {
        let primary = KEYS[txn.primary().expect("a locked key")];
        let mut props = optimistic_props(primary, txn.start_ts.get());
        props.kind = TxnKind::Pessimistic {
            for_update_ts: txn.for_update_ts.expect("pessimistic"),
        };
        let mutation = Mutation {
            key: KEYS[key].to_vec(),
            op,
        };
        let action = PessimisticAction::DoPessimisticCheck;
        self.env.run(txn.start_ts.get(), |t, reader| {
            prewrite(t, reader, &props, &mutation, None, action, TimeStamp::ZERO)
        })
    }

    /// The client prewrites only keys it locked; a live transaction always succeeds there.
    fn prewrite_pessimistic(&mut self, index: usize, txn: &Txn, key: usize, op: MutationOp) {
        if !txn.locked.contains(&key) {
            return;
        }
        if txn.state != State::Active {
            if Some(key) == txn.primary() {
                let late = self.pessimistic_prewrite_call(txn, key, op);
                assert!(
                    late.is_err(),
                    "late pessimistic prewrite of the primary: {txn:?}"
                );
            }
            return;
        }
        let result = self.pessimistic_prewrite_call(txn, key, op.clone());
        result.unwrap_or_else(|e| panic!("live pessimistic prewrite failed: {e:?} {txn:?}"));
        if !txn.wrote(key) {
            self.txns[index].writes.push((key, op));
        }
    }

    pub(super) fn lock(&mut self, index: usize, key: usize) {
        let Some(txn) = self.txns.get(index).cloned() else {
            return;
        };
        if self.collected(index) || !txn.is_pessimistic() {
            return;
        }
        let primary = KEYS[txn.primary().unwrap_or(key)];
        let start = txn.start_ts.get();
        if txn.state != State::Active {
            if Some(key) == txn.primary() {
                // Rolled back by a resolver, the client may not know yet and lock again at a
                // fresh for_update_ts; a committed one only replays its old request.
                let for_update_ts = match txn.state {
                    State::Aborted => self.next_ts().get(),
                    _ => txn.for_update_ts.expect("pessimistic").get(),
                };
                let late = self
                    .env
                    .pessimistic_lock(KEYS[key], primary, start, for_update_ts);
                assert!(
                    late.is_err(),
                    "a finished txn relocked its primary: {txn:?}"
                );
            }
            return;
        }
        let for_update_ts = self.next_ts();
        let result = self
            .env
            .pessimistic_lock(KEYS[key], primary, start, for_update_ts.get());
        let foreign = self.txns.iter().enumerate().any(|(other, t)| {
            other != index && t.state == State::Active && t.touched().contains(&key)
        });
        match result {
            Err(Error::LockTypeNotMatch { .. }) if txn.wrote(key) => {}
            Ok(_) if txn.wrote(key) || foreign => panic!("lock over a lock succeeded: {txn:?}"),
            Ok(_) => {
                let txn = &mut self.txns[index];
                txn.for_update_ts = Some(for_update_ts);
                if !txn.locked.contains(&key) {
                    txn.locked.push(key);
                }
            }
            Err(Error::KeyIsLocked(_)) if foreign => {}
            Err(error) => panic!("unexpected pessimistic lock failure {error:?} of {txn:?}"),
        }
    }

    /// As the client: prewrite every key only locked (as `Lock`), then commit the primary,
    /// then the secondaries.
    pub(super) fn commit(&mut self, index: usize) {
        let Some(mut txn) = self.txns.get(index).cloned() else {
            return;
        };
        if self.collected(index) {
            return;
        }
        let Some(primary) = txn.primary() else { return };
        if txn.state == State::Active && txn.is_pessimistic() {
            for key in txn.locked.clone().into_iter().filter(|k| !txn.wrote(*k)) {
                self.pessimistic_prewrite_call(&txn, key, MutationOp::Lock)
                    .expect("lock prewrite");
                self.txns[index].writes.push((key, MutationOp::Lock));
            }
            txn = self.txns[index].clone();
        }
        let start = txn.start_ts.get();
        let commit_ts = match txn.state {
            State::Committed(commit_ts) => commit_ts,
            _ => self.next_ts(),
        };
        let result = self.env.commit(KEYS[primary], start, commit_ts.get());
        match (&txn.state, result) {
            (State::Active | State::Committed(_), Ok(_)) => {}
            (State::Aborted, Err(Error::TxnLockNotFound { .. })) => return,
            (state, result) => panic!("commit of {state:?} txn gave {result:?}"),
        }
        self.txns[index].state = State::Committed(commit_ts);
        for (key, _) in txn.writes.iter().filter(|(k, _)| *k != primary) {
            self.env
                .commit(KEYS[*key], start, commit_ts.get())
                .expect("secondary commit");
        }
    }

    pub(super) fn rollback(&mut self, index: usize) {
        let Some(txn) = self.txns.get(index).cloned() else {
            return;
        };
        if self.collected(index) {
            return;
        }
        for key in txn.touched() {
            let result = self.env.rollback(KEYS[key], txn.start_ts.get());
            match (&txn.state, result) {
                (State::Committed(_), Err(Error::Committed { .. })) => {}
                (State::Active | State::Aborted, Ok(())) => {}
                (state, result) => panic!("rollback of {state:?} txn gave {result:?}"),
            }
            self.rollback_ts
                .entry(key)
                .or_default()
                .insert(txn.start_ts);
        }
        if txn.state == State::Active {
            self.txns[index].state = State::Aborted;
        }
    }

    /// A reader that met the txn's lock: CheckTxnStatus (lock forced expired), then
    /// ResolveLock on every key.
    pub(super) fn resolve(&mut self, index: usize) {
        let Some(txn) = self.txns.get(index).cloned() else {
            return;
        };
        if self.collected(index) {
            return;
        }
        let Some(primary) = txn.primary() else { return };
        let params = CheckTxnStatusParams {
            caller_start_ts: self.next_ts(),
            current_ts: TimeStamp::MAX,
            rollback_if_not_exist: true,
            force_sync_commit: false,
            resolving_pessimistic_lock: false,
            verify_is_primary: true,
        };
        let start = txn.start_ts.get();
        let status = self.env.run(start, |t, reader| {
            check_txn_status(t, reader, KEYS[primary], &params)
        });
        let commit_ts = match (&txn.state, status) {
            (State::Committed(c), Ok(TxnStatus::Committed { commit_ts })) => {
                assert_eq!(*c, commit_ts);
                commit_ts
            }
            (State::Active, Ok(TxnStatus::TtlExpire))
            | (State::Aborted, Ok(TxnStatus::RolledBack | TxnStatus::LockNotExist)) => {
                TimeStamp::ZERO
            }
            (state, status) => panic!("status of {state:?} txn: {status:?}"),
        };
        self.rollback_ts
            .entry(primary)
            .or_default()
            .insert(txn.start_ts);
        if txn.state == State::Active {
            self.txns[index].state = State::Aborted;
        }
        for key in txn.touched() {
            self.resolve_key(key, txn.start_ts, commit_ts);
        }
    }

    fn resolve_key(&mut self, key: usize, start_ts: TimeStamp, commit_ts: TimeStamp) {
        let Some(lock) = self.env.lock(KEYS[key]).filter(|lock| lock.ts == start_ts) else {
            return;
        };
        self.env
            .run(start_ts.get(), |t, reader| {
                resolve_lock(t, reader, KEYS[key], &lock, commit_ts)
            })
            .expect("resolve");
        if commit_ts == TimeStamp::ZERO {
            self.rollback_ts.entry(key).or_default().insert(start_ts);
        }
    }
}
