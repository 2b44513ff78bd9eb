//! Committing: two-phase (the default), async commit, or one-phase.
//!
//! **Two-phase.** Prewrite locks every written key (the primary first, alone, so a
//! secondary's lock never exists without its primary's); a commit_ts is taken; committing
//! the primary is the commit point; the secondaries are committed after, best effort.
//! Before the commit point every failure is a definite abort (our locks are rolled back,
//! best effort; what is left expires and is rolled back by readers). The primary commit
//! retries with a newer commit_ts when a reader pushed the lock's min_commit_ts; a lock
//! found missing means someone rolled the transaction back.
//!
//! **Async commit** (`CommitMode::Async`): the prewrites carry `use_async_commit` (the
//! primary's lists every other key) and a min_commit_ts above a timestamp taken just
//! before them, so the commit lands after everything that finished before it (TiDB's
//! fix of tikv#8589). Once every prewrite succeeded the transaction is committed, at the
//! largest min_commit_ts the stores answered; the keys are then committed, best effort.
//! A prewrite that failed in any way may still have left locks (an earlier attempt can
//! land late), so the owner never rolls back blindly: it decides the transaction as any
//! resolver would (`async_commit.rs`), and reports `Undecided` if even that goes
//! unanswered.
//!
//! **One-phase** (`CommitMode::OnePc`): when every key lies in one region, one prewrite
//! with `try_one_pc` writes the commit records at once; otherwise async commit.
//!
//! A prewrite that meets another transaction's lock resolves it and retries; a write
//! conflict or an existing key aborts.

use ferrokv_core::types::TimeStamp;
use ferrokv_proto::kvrpcpb;

use super::async_commit::Undecided;
use super::{
    resolve::Fate, wait_or_give_up, CommitMode, Transaction, TxnError, LOCK_TTL_MS, WAIT_MIN,
};
use crate::error::ClientError;
use crate::raw::CallError;

/// Where a commit stops early: simulated clients that die mid-commit, leaving their locks
/// for others to resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitStop {
    /// Run the whole commit.
    Never,
    /// Stop after every prewrite succeeded. Two-phase: the transaction will be rolled back
    /// by others. Async or 1PC: it is committed (readers commit its locks).
    AfterPrewrite,
    /// Stop after the primary committed (the secondaries are committed by readers).
    AfterPrimary,
    /// Stall this long after the prewrites (a client paused past its lock TTL), then
    /// commit. Two-phase: readers may have rolled the transaction back meanwhile. Async:
    /// it was committed already, readers may have committed its locks.
    StallThenCommit(std::time::Duration),
    /// Stall, then send the primary's prewrite again (a retry delayed past the pause) and
    /// commit: a transaction rolled back meanwhile must not come back through its primary
    /// while its secondaries stay rolled back.
    StallThenPrewriteAgain(std::time::Duration),
}

type Mutations = Vec<kvrpcpb::Mutation>;

/// What a prewrite asks the store to do besides locking.
#[derive(Clone, Copy, Debug)]
enum Ask<'k> {
    /// Locks only (two-phase commit).
    Locks,
    /// Async-commit locks, committing at least at `floor`; the primary's lists
    /// `secondaries`.
    Async {
        secondaries: &'k [Vec<u8>],
        floor: TimeStamp,
    },
    /// Commit at once, at least at `floor` (every key in the one region called).
    OnePc { floor: TimeStamp },
}

/// What the stores computed for the prewrites of one commit.
#[derive(Clone, Copy, Debug, Default)]
struct Computed {
    /// Largest async-commit min_commit_ts answered.
    min_commit_ts: TimeStamp,
    /// Whether some prewrite that asked for a computed commit ts got none (the store fell
    /// back to a two-phase lock).
    fell_back: bool,
    /// The 1PC commit ts (zero if not committed that way).
    one_pc_commit_ts: TimeStamp,
}

impl Computed {
    fn fold(&mut self, part: Computed) {
        self.min_commit_ts = self.min_commit_ts.max(part.min_commit_ts);
        self.fell_back |= part.fell_back;
        self.one_pc_commit_ts = self.one_pc_commit_ts.max(part.one_pc_commit_ts);
    }
}

/// Commit timestamps one commit tries before giving up (each refused one was pushed below
/// a reader's start_ts).
const COMMIT_TS_TRIES: usize = 16;

impl Transaction<'_> {
    /// Commits the buffered writes; `Ok(None)` for a transaction that wrote and locked
    /// nothing, `Ok(Some(commit_ts))` once the primary committed (a pessimistic
    /// transaction's keys locked but not written commit as `Lock` records).
    pub async fn commit(self) -> Result<Option<TimeStamp>, TxnError> {
        self.commit_stopping(CommitStop::Never).await
    }

    /// Commits like `commit`, but stops at `stop`.
    pub async fn commit_stopping(
        mut self,
        stop: CommitStop,
    ) -> Result<Option<TimeStamp>, TxnError> {
        if self.is_pessimistic() {
            if let Err(error) = self.lock_written_keys().await {
                self.rollback_keys(&self.all_keys()).await;
                return Err(error);
            }
        }
        let mut mutations: Mutations = self
            .buffer
            .iter()
            .map(|(key, value)| kvrpcpb::Mutation {
                op: match value {
                    Some(_) => kvrpcpb::Op::Put as i32,
                    None => kvrpcpb::Op::Del as i32,
                },
                key: key.clone(),
                value: value.clone().unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        mutations.extend(self.lock_only_mutations());
        let primary = self.locks.primary.clone();
        let Some(primary) = primary.or_else(|| mutations.first().map(|m| m.key.clone())) else {
            return Ok(None);
        };
        let keys: Vec<Vec<u8>> = mutations.iter().map(|m| m.key.clone()).collect();
        if self.commit_mode != CommitMode::TwoPhase {
            return self
                .commit_computed(&primary, &mutations, &keys, stop)
                .await;
        }
        if let Err(error) = self.prewrite(&primary, &mutations, Ask::Locks).await {
            self.rollback_keys(&keys).await;
            return Err(error);
        }
        self.commit_two_phase(&primary, &mutations, &keys, stop)
            .await
    }

    /// Two-phase commit of prewritten locks, stopping at `stop`.
    async fn commit_two_phase(
        &self,
        primary: &[u8],
        mutations: &Mutations,
        keys: &[Vec<u8>],
        stop: CommitStop,
    ) -> Result<Option<TimeStamp>, TxnError> {
        let primary = primary.to_vec();
        match stop {
            CommitStop::AfterPrewrite => {
                return Err(TxnError::Aborted(
                    "the client stopped after prewrite".into(),
                ))
            }
            CommitStop::StallThenCommit(pause) => tokio::time::sleep(pause).await,
            CommitStop::StallThenPrewriteAgain(pause) => {
                tokio::time::sleep(pause).await;
                let first = primary_only(mutations, &primary);
                if let Err(error) = self.prewrite(&primary, &first, Ask::Locks).await {
                    self.rollback_keys(keys).await;
                    return Err(error);
                }
            }
            CommitStop::Never | CommitStop::AfterPrimary => {}
        }
        let commit_ts = match self.commit_primary(&primary).await {
            Ok(commit_ts) => commit_ts,
            Err(error) => {
                if error.is_definite_abort() {
                    self.rollback_keys(keys).await;
                }
                return Err(error);
            }
        };
        if stop != CommitStop::AfterPrimary {
            let secondaries: Vec<Vec<u8>> =
                keys.iter().filter(|k| **k != primary).cloned().collect();
            self.commit_secondaries(&secondaries, commit_ts).await;
        }
        Ok(Some(commit_ts))
    }

    /// Rolls this transaction back: nothing it buffered is written, and its pessimistic
    /// locks are released.
    pub async fn rollback(self) {
        self.rollback_keys(&self.all_keys()).await;
    }

    /// Every key this transaction wrote or locked.
    fn all_keys(&self) -> Vec<Vec<u8>> {
        let mut keys: std::collections::BTreeSet<Vec<u8>> = self.buffer.keys().cloned().collect();
        keys.extend(self.locks.keys.iter().cloned());
        keys.into_iter().collect()
    }

    /// Prewrites the primary, then the rest region by region, as `ask` says.
    async fn prewrite(
        &self,
        primary: &[u8],
        mutations: &Mutations,
        ask: Ask<'_>,
    ) -> Result<Computed, TxnError> {
        let (first, rest): (Mutations, Mutations) =
            mutations.iter().cloned().partition(|m| m.key == primary);
        assert_eq!(first.len(), 1, "the primary is written once");
        let txn_size = mutations.len() as u64;
        let primary_part = match self.prewrite_region(primary, &first, txn_size, ask).await {
            Ok(done) => Ok(done),
            Err(CallError::Client(error)) => Err(error),
            Err(CallError::Reshard) => unreachable!("one key never reshards"),
        };
        let mut computed = settle_prewrite(primary_part)?;
        if rest.is_empty() {
            return Ok(computed);
        }
        let keys: Vec<Vec<u8>> = rest.iter().map(|m| m.key.clone()).collect();
        let parts = self
            .client
            .for_each_region(&keys, |part| {
                let shard: Mutations = rest
                    .iter()
                    .filter(|m| part.contains(&m.key))
                    .cloned()
                    .collect();
                async move { self.prewrite_region(primary, &shard, txn_size, ask).await }
            })
            .await;
        for part in parts {
            computed.fold(settle_prewrite(part.result)?);
        }
        Ok(computed)
    }

    /// Async commit or 1PC (see the module doc), stopping at `stop`.
    async fn commit_computed(
        &self,
        primary: &[u8],
        mutations: &Mutations,
        keys: &[Vec<u8>],
        stop: CommitStop,
    ) -> Result<Option<TimeStamp>, TxnError> {
        let floor = if self.commit_floor {
            self.client.timestamp().await?.next()
        } else {
            TimeStamp::ZERO
        };
        let secondaries: Vec<Vec<u8>> = keys.iter().filter(|k| *k != primary).cloned().collect();
        let undecided = Undecided {
            start_ts: self.start_ts,
            primary: primary.to_vec(),
            secondaries: secondaries.clone(),
        };
        let mut computed = None;
        if self.commit_mode == CommitMode::OnePc {
            let txn_size = mutations.len() as u64;
            let ask = Ask::OnePc { floor };
            match self
                .prewrite_region(primary, mutations, txn_size, ask)
                .await
            {
                Err(CallError::Reshard) => {} // not one region: async commit
                part => computed = Some(settle_prewrite(part.map_err(call_error))),
            }
        }
        let computed = match computed {
            Some(done) => done,
            None => {
                let ask = Ask::Async {
                    secondaries: &secondaries,
                    floor,
                };
                self.prewrite(primary, mutations, ask).await
            }
        };
        let computed = match computed {
            Ok(computed) => computed,
            Err(error) => return self.owner_decides(&undecided, error).await,
        };
        if computed.one_pc_commit_ts > TimeStamp::ZERO {
            return Ok(Some(computed.one_pc_commit_ts));
        }
        if computed.fell_back {
            // The store wrote two-phase locks: commit them that way.
            return self.commit_two_phase(primary, mutations, keys, stop).await;
        }
        let commit_ts = computed.min_commit_ts;
        assert!(
            commit_ts > self.start_ts,
            "an async commit lands above its start"
        );
        self.finish_async(&undecided, mutations, commit_ts, stop)
            .await;
        Ok(Some(commit_ts))
    }

    /// The async-commit transaction is committed at `commit_ts`: commit its keys, best
    /// effort (resolvers commit what is left), or stop as `stop` says.
    async fn finish_async(
        &self,
        txn: &Undecided,
        mutations: &Mutations,
        commit_ts: TimeStamp,
        stop: CommitStop,
    ) {
        match stop {
            CommitStop::AfterPrewrite => return,
            CommitStop::AfterPrimary => {
                let _ = self
                    .commit_keys(std::slice::from_ref(&txn.primary), commit_ts)
                    .await;
                return;
            }
            CommitStop::StallThenCommit(pause) => tokio::time::sleep(pause).await,
            CommitStop::StallThenPrewriteAgain(pause) => {
                tokio::time::sleep(pause).await;
                let first = primary_only(mutations, &txn.primary);
                // Whatever it answers, the transaction was decided: a resolver may have
                // committed it meanwhile, and the store must not lock the key again.
                let ask = Ask::Async {
                    secondaries: &txn.secondaries,
                    floor: TimeStamp::ZERO,
                };
                let _ = self.prewrite(&txn.primary, &first, ask).await;
            }
            CommitStop::Never => {}
        }
        let _ = self
            .commit_keys(std::slice::from_ref(&txn.primary), commit_ts)
            .await;
        self.commit_secondaries(&txn.secondaries, commit_ts).await;
    }

    /// A prewrite of an async or 1PC transaction failed with `error`: some of its locks
    /// (or its 1PC write) may have landed, so decide it as a resolver would.
    async fn owner_decides(
        &self,
        txn: &Undecided,
        error: TxnError,
    ) -> Result<Option<TimeStamp>, TxnError> {
        match self.client.decide(txn).await {
            Ok(Some(commit_ts)) => {
                tracing::debug!(%error, ?commit_ts, "a failed prewrite left every lock: committed");
                Ok(Some(commit_ts))
            }
            Ok(None) => Err(match error {
                TxnError::Conflict(_) | TxnError::Aborted(_) => error,
                other => TxnError::Aborted(format!("rolled back after: {other}")),
            }),
            Err(undecided) => Err(TxnError::Undecided {
                txn: Box::new(txn.clone()),
                why: format!("prewrite: {error}; deciding: {undecided}"),
            }),
        }
    }

    /// Prewrites `mutations`, all in one region, resolving others' locks until they are
    /// gone or the deadline passes. The outer error is the call's (retried by region by
    /// the caller's part machinery), the inner one the transaction's.
    async fn prewrite_region(
        &self,
        primary: &[u8],
        mutations: &Mutations,
        txn_size: u64,
        ask: Ask<'_>,
    ) -> Result<Result<Computed, TxnError>, CallError> {
        let deadline = self.client.deadline();
        let mut wait = WAIT_MIN;
        let keys: Vec<Vec<u8>> = mutations.iter().map(|m| m.key.clone()).collect();
        loop {
            if tokio::time::Instant::now() >= deadline {
                let why = "prewrite: locks kept coming back until the deadline".to_string();
                return Ok(Err(TxnError::NotCommitted(why)));
            }
            let (errors, computed) = self
                .prewrite_once(primary, mutations, &keys, txn_size, ask)
                .await?;
            if errors.is_empty() {
                return Ok(Ok(computed));
            }
            let mut alive = false;
            for error in errors {
                let Some(lock) = error.locked else {
                    return Ok(Err(prewrite_refusal(error)));
                };
                match self.client.resolve(&lock, self.start_ts).await {
                    Ok(fate) => alive |= fate == Fate::Alive,
                    Err(error) => return Ok(Err(error)),
                }
            }
            if alive {
                let waited = wait_or_give_up(
                    deadline,
                    &mut wait,
                    "prewrite blocked by a live transaction",
                );
                if let Err(error) = waited.await {
                    return Ok(Err(error));
                }
            }
        }
    }

    async fn prewrite_once(
        &self,
        primary: &[u8],
        mutations: &Mutations,
        keys: &[Vec<u8>],
        txn_size: u64,
        ask: Ask<'_>,
    ) -> Result<(Vec<kvrpcpb::KeyError>, Computed), CallError> {
        let start_ts = self.start_ts.get();
        // A pessimistic transaction locked every key it prewrites: the server checks each
        // lock is still there (one rolled back meanwhile aborts the commit).
        let (for_update_ts, pessimistic_actions) = if self.is_pessimistic() {
            let check = kvrpcpb::prewrite_request::PessimisticAction::DoPessimisticCheck as i32;
            (self.for_update_ts().get(), vec![check; mutations.len()])
        } else {
            (0, Vec::new())
        };
        let lowest = for_update_ts.max(start_ts) + 1;
        let (use_async_commit, try_one_pc, secondaries, min_commit_ts) = match ask {
            Ask::Locks => (false, false, Vec::new(), lowest),
            Ask::Async { secondaries, floor } => {
                let listed = if keys.iter().any(|k| k == primary) {
                    secondaries.to_vec()
                } else {
                    Vec::new()
                };
                (true, false, listed, lowest.max(floor.get()))
            }
            Ask::OnePc { floor } => (false, true, Vec::new(), lowest.max(floor.get())),
        };
        let asks_ts = use_async_commit || try_one_pc;
        self.client
            .call_region(keys, |mut rpc, context, _| {
                let request = kvrpcpb::PrewriteRequest {
                    context: Some(context),
                    mutations: mutations.clone(),
                    primary_lock: primary.to_vec(),
                    start_version: start_ts,
                    lock_ttl: LOCK_TTL_MS,
                    txn_size,
                    min_commit_ts,
                    for_update_ts,
                    pessimistic_actions: pessimistic_actions.clone(),
                    use_async_commit,
                    try_one_pc,
                    secondaries: secondaries.clone(),
                    ..Default::default()
                };
                async move {
                    let response = rpc.kv_prewrite(request).await?.into_inner();
                    let computed = Computed {
                        min_commit_ts: TimeStamp(response.min_commit_ts),
                        fell_back: asks_ts
                            && response.min_commit_ts == 0
                            && response.one_pc_commit_ts == 0,
                        one_pc_commit_ts: TimeStamp(response.one_pc_commit_ts),
                    };
                    Ok((
                        response.region_error,
                        String::new(),
                        (response.errors, computed),
                    ))
                }
            })
            .await
    }

    /// Takes a commit_ts and commits the primary: the commit point.
    async fn commit_primary(&self, primary: &[u8]) -> Result<TimeStamp, TxnError> {
        let mut commit_ts = self.client.timestamp().await?;
        for _ in 0..COMMIT_TS_TRIES {
            if commit_ts <= self.start_ts {
                // Nothing was sent at this commit_ts: the transaction surely did not commit.
                return Err(TxnError::Oracle(format!(
                    "timestamp {commit_ts:?} not above start_ts {:?}: the oracle went back",
                    self.start_ts
                )));
            }
            let error = match self.commit_keys(&[primary.to_vec()], commit_ts).await {
                Ok(None) => return Ok(commit_ts),
                Ok(Some(error)) => error,
                Err(CallError::Client(error)) => {
                    return Err(TxnError::Unknown {
                        commit_ts,
                        why: error.to_string(),
                    })
                }
                Err(CallError::Reshard) => unreachable!("one key never reshards"),
            };
            match &error.commit_ts_expired {
                // A reader pushed min_commit_ts above ours: commit later. The refused
                // commit_ts can never apply (min_commit_ts only grows), so without a new
                // one the transaction surely did not commit.
                Some(expired) => {
                    commit_ts = self.client.timestamp().await.map_err(|e| {
                        TxnError::Oracle(format!("no new commit_ts after {expired:?}: {e}"))
                    })?;
                }
                // Any other refusal: the lock is gone and no commit record of ours exists
                // (a commit already applied would have been answered as done).
                None => return Err(TxnError::Aborted(format!("commit refused: {error:?}"))),
            }
        }
        // The last commit_ts was refused for good (expired), and none is sent again.
        Err(TxnError::Aborted(format!(
            "commit_ts pushed past {COMMIT_TS_TRIES} times by readers"
        )))
    }

    async fn commit_secondaries(&self, keys: &[Vec<u8>], commit_ts: TimeStamp) {
        if keys.is_empty() {
            return;
        }
        let parts = self
            .client
            .for_each_region(keys, |part| async move {
                self.commit_keys(&part, commit_ts).await
            })
            .await;
        for part in parts {
            match part.result {
                Ok(None) => {}
                Ok(Some(error)) => tracing::debug!(?error, "secondary commit refused"),
                Err(error) => tracing::debug!(%error, "secondary commit left to lock resolution"),
            }
        }
    }

    async fn commit_keys(
        &self,
        keys: &[Vec<u8>],
        commit_ts: TimeStamp,
    ) -> Result<Option<kvrpcpb::KeyError>, CallError> {
        let start_ts = self.start_ts.get();
        self.client
            .call_region(keys, |mut rpc, context, _| {
                let request = kvrpcpb::CommitRequest {
                    context: Some(context),
                    start_version: start_ts,
                    keys: keys.to_vec(),
                    commit_version: commit_ts.get(),
                    ..Default::default()
                };
                async move {
                    let response = rpc.kv_commit(request).await?.into_inner();
                    Ok((response.region_error, String::new(), response.error))
                }
            })
            .await
    }

    /// Rolls back this transaction's locks on `keys`, best effort.
    async fn rollback_keys(&self, keys: &[Vec<u8>]) {
        if keys.is_empty() {
            return;
        }
        let start_ts = self.start_ts.get();
        self.client
            .for_each_region(keys, |part| async move {
                self.client
                    .call_region(&part, |mut rpc, context, _| {
                        let request = kvrpcpb::BatchRollbackRequest {
                            context: Some(context),
                            start_version: start_ts,
                            keys: part.clone(),
                            ..Default::default()
                        };
                        async move {
                            let response = rpc.kv_batch_rollback(request).await?.into_inner();
                            Ok((response.region_error, String::new(), response.error))
                        }
                    })
                    .await
            })
            .await;
    }
}

/// A prewrite refusal that is not a lock: a conflict or an existing key.
fn prewrite_refusal(error: kvrpcpb::KeyError) -> TxnError {
    if error.conflict.is_some() {
        TxnError::Conflict(format!("{:?}", error.conflict))
    } else {
        TxnError::Aborted(format!("prewrite refused: {error:?}"))
    }
}

/// The transaction's view of one prewrite part. Before the commit point a part that
/// failed (even with an unknown outcome) only left locks: the transaction surely did not
/// commit.
fn settle_prewrite(
    part: Result<Result<Computed, TxnError>, ClientError>,
) -> Result<Computed, TxnError> {
    match part {
        Ok(done) => done,
        Err(ClientError::Unknown) => Err(TxnError::NotCommitted(
            "a prewrite's outcome is unknown".into(),
        )),
        Err(error) => Err(TxnError::NotCommitted(format!("prewrite failed: {error}"))),
    }
}

/// The primary's mutation alone (a prewrite sent again after a stall).
fn primary_only(mutations: &Mutations, primary: &[u8]) -> Mutations {
    let first: Mutations = mutations
        .iter()
        .filter(|m| m.key == primary)
        .cloned()
        .collect();
    assert_eq!(first.len(), 1, "the primary is written once");
    first
}

/// A one-region call's error (a 1PC prewrite re-cut by a split is handled by the caller).
fn call_error(error: CallError) -> ClientError {
    match error {
        CallError::Client(error) => error,
        CallError::Reshard => unreachable!("Reshard is handled before"),
    }
}
