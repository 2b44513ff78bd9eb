//! Two-phase commit. Prewrite locks every written key (the primary first, alone, so a
//! secondary's lock never exists without its primary's); a commit_ts is taken; committing
//! the primary is the commit point; the secondaries are committed after, best effort.
//!
//! A prewrite that meets another transaction's lock resolves it and retries; a write
//! conflict or an existing key aborts. Before the commit point every failure is a definite
//! abort (our locks are rolled back, best effort; what is left expires and is rolled back
//! by readers). The primary commit retries with a newer commit_ts when a reader pushed the
//! lock's min_commit_ts; a lock found missing means someone rolled the transaction back.

use ferrokv_core::types::TimeStamp;
use ferrokv_proto::kvrpcpb;

use super::{resolve::Fate, wait_or_give_up, Transaction, TxnError, LOCK_TTL_MS, WAIT_MIN};
use crate::error::ClientError;
use crate::raw::CallError;

/// Where a commit stops early: simulated clients that die mid-commit, leaving their locks
/// for others to resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitStop {
    /// Run the whole commit.
    Never,
    /// Stop after every prewrite succeeded (the transaction will be rolled back by others).
    AfterPrewrite,
    /// Stop after the primary committed (the secondaries are committed by readers).
    AfterPrimary,
    /// Stall this long after the prewrites (a client paused past its lock TTL), then
    /// commit: readers may have rolled the transaction back meanwhile.
    StallThenCommit(std::time::Duration),
    /// Stall, then send the primary's prewrite again (a retry delayed past the pause) and
    /// commit: a transaction rolled back meanwhile must not come back through its primary
    /// while its secondaries stay rolled back.
    StallThenPrewriteAgain(std::time::Duration),
}

type Mutations = Vec<kvrpcpb::Mutation>;

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
        if let Err(error) = self.prewrite(&primary, &mutations).await {
            self.rollback_keys(&keys).await;
            return Err(error);
        }
        match stop {
            CommitStop::AfterPrewrite => {
                return Err(TxnError::Aborted(
                    "the client stopped after prewrite".into(),
                ))
            }
            CommitStop::StallThenCommit(pause) => tokio::time::sleep(pause).await,
            CommitStop::StallThenPrewriteAgain(pause) => {
                tokio::time::sleep(pause).await;
                let first: Mutations = mutations
                    .iter()
                    .filter(|m| m.key == primary)
                    .cloned()
                    .collect();
                if let Err(error) = self.prewrite(&primary, &first).await {
                    self.rollback_keys(&keys).await;
                    return Err(error);
                }
            }
            CommitStop::Never | CommitStop::AfterPrimary => {}
        }
        let commit_ts = match self.commit_primary(&primary).await {
            Ok(commit_ts) => commit_ts,
            Err(error) => {
                if error.is_definite_abort() {
                    self.rollback_keys(&keys).await;
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

    async fn prewrite(&self, primary: &[u8], mutations: &Mutations) -> Result<(), TxnError> {
        let (first, rest): (Mutations, Mutations) =
            mutations.iter().cloned().partition(|m| m.key == primary);
        assert_eq!(first.len(), 1, "the primary is written once");
        let txn_size = mutations.len() as u64;
        let primary_part = match self.prewrite_region(primary, &first, txn_size).await {
            Ok(done) => Ok(done),
            Err(CallError::Client(error)) => Err(error),
            Err(CallError::Reshard) => unreachable!("one key never reshards"),
        };
        settle_prewrite(primary_part)?;
        if rest.is_empty() {
            return Ok(());
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
                async move { self.prewrite_region(primary, &shard, txn_size).await }
            })
            .await;
        for part in parts {
            settle_prewrite(part.result)?;
        }
        Ok(())
    }

    /// Prewrites `mutations`, all in one region, resolving others' locks until they are
    /// gone or the deadline passes. The outer error is the call's (retried by region by
    /// the caller's part machinery), the inner one the transaction's.
    async fn prewrite_region(
        &self,
        primary: &[u8],
        mutations: &Mutations,
        txn_size: u64,
    ) -> Result<Result<(), TxnError>, CallError> {
        let deadline = self.client.deadline();
        let mut wait = WAIT_MIN;
        let keys: Vec<Vec<u8>> = mutations.iter().map(|m| m.key.clone()).collect();
        loop {
            if tokio::time::Instant::now() >= deadline {
                let why = "prewrite: locks kept coming back until the deadline".to_string();
                return Ok(Err(TxnError::NotCommitted(why)));
            }
            let errors = self
                .prewrite_once(primary, mutations, &keys, txn_size)
                .await?;
            if errors.is_empty() {
                return Ok(Ok(()));
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
    ) -> Result<Vec<kvrpcpb::KeyError>, CallError> {
        let start_ts = self.start_ts.get();
        // A pessimistic transaction locked every key it prewrites: the server checks each
        // lock is still there (one rolled back meanwhile aborts the commit).
        let (for_update_ts, pessimistic_actions) = if self.is_pessimistic() {
            let check = kvrpcpb::prewrite_request::PessimisticAction::DoPessimisticCheck as i32;
            (self.for_update_ts().get(), vec![check; mutations.len()])
        } else {
            (0, Vec::new())
        };
        self.client
            .call_region(keys, |mut rpc, context, _| {
                let request = kvrpcpb::PrewriteRequest {
                    context: Some(context),
                    mutations: mutations.clone(),
                    primary_lock: primary.to_vec(),
                    start_version: start_ts,
                    lock_ttl: LOCK_TTL_MS,
                    txn_size,
                    min_commit_ts: for_update_ts.max(start_ts) + 1,
                    for_update_ts,
                    pessimistic_actions: pessimistic_actions.clone(),
                    ..Default::default()
                };
                async move {
                    let response = rpc.kv_prewrite(request).await?.into_inner();
                    Ok((response.region_error, String::new(), response.errors))
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
fn settle_prewrite(part: Result<Result<(), TxnError>, ClientError>) -> Result<(), TxnError> {
    match part {
        Ok(done) => done,
        Err(ClientError::Unknown) => Err(TxnError::NotCommitted(
            "a prewrite's outcome is unknown".into(),
        )),
        Err(error) => Err(TxnError::NotCommitted(format!("prewrite failed: {error}"))),
    }
}
