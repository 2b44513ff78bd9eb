//! Pessimistic transactions: a key is locked (`KvPessimisticLock`) when it is read for
//! update, and every key a pessimistic transaction writes is locked before its prewrite,
//! so no other transaction can write it until this one ends: no write conflict at commit.
//!
//! - The first locked key is the primary (its lock carries the transaction's fate).
//! - `get_for_update` takes a fresh `for_update_ts`; the lock reads the newest committed
//!   version, which no other transaction can change until the lock goes. A
//!   `WriteConflict` (`PessimisticRetry`: a newer commit, or the server's wake-up after a
//!   wait) is retried with a newer for_update_ts, after a backoff; a lock met (after the
//!   server's wait, which is kept below one attempt's timeout so that the answer is not
//!   cut off and re-sent) is resolved like any lock; a `Deadlock` aborts
//!   (`TxnError::Conflict`: retry the transaction).
//! - A key written without `get_for_update` is locked at commit at the transaction's
//!   start_ts: a commit on it since start_ts aborts the transaction (`Conflict`), as an
//!   optimistic prewrite would, so a value read from the snapshot and written back cannot
//!   overwrite a newer commit.
//! - The prewrite carries the largest for_update_ts and asks the server to check every
//!   key's pessimistic lock (a lock rolled back meanwhile aborts the commit).
//! - A lock call without an answer may have taken the lock: the key is remembered, so
//!   the transaction's rollback removes it. After a failed `get_for_update` the caller
//!   must roll the transaction back (else its locks wait for their TTL, 3 s, and a reader
//!   to resolve them); nothing heartbeats the locks, so a transaction that runs past the
//!   TTL may be rolled back by others (its commit then aborts).

use std::collections::BTreeSet;

use ferrokv_core::types::TimeStamp;
use ferrokv_proto::kvrpcpb;

use super::{resolve::Fate, wait_or_give_up, Transaction, TxnError, LOCK_TTL_MS, WAIT_MIN};
use crate::error::ClientError;

/// The longest the server is asked to wait for another transaction's lock (its own cap).
const LOCK_WAIT_MS_MAX: i64 = 1_000;

/// The pessimistic locks a transaction holds (or may hold).
#[derive(Debug, Default)]
pub(super) struct Locks {
    /// The first key locked: the transaction's primary.
    pub primary: Option<Vec<u8>>,
    /// Every key locked, or asked to be without an answer.
    pub keys: BTreeSet<Vec<u8>>,
    /// The largest for_update_ts a lock was taken at.
    pub for_update_ts: TimeStamp,
}

/// What one lock call answered.
enum Locked {
    /// Taken; the key's newest committed value if it was asked for.
    Taken(Option<Vec<u8>>),
    /// Try again with a newer for_update_ts (a newer commit, or a wait that ended).
    Retry(kvrpcpb::WriteConflict),
    /// Another transaction's lock: resolve it, then try again.
    Blocked(kvrpcpb::LockInfo),
}

/// At which for_update_ts a lock is taken.
#[derive(Clone, Copy)]
enum LockAt {
    /// A fresh timestamp per attempt (`get_for_update`).
    Fresh,
    /// The transaction's start_ts: a newer commit aborts (a write not read for update).
    StartTs,
}

impl Transaction<'_> {
    /// Locks `key` until this transaction ends and reads it: this transaction's own write
    /// if it made one, else the newest committed value (which no other transaction can
    /// change while the lock is held).
    pub async fn get_for_update(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, TxnError> {
        let value = self.lock_key(key, true, LockAt::Fresh).await?;
        Ok(match self.buffer.get(key) {
            Some(own) => own.clone(),
            None => value,
        })
    }

    /// The largest for_update_ts of this transaction's pessimistic locks (its start_ts if
    /// it took none): reads made by `get_for_update` saw every commit below it.
    pub fn for_update_ts(&self) -> TimeStamp {
        self.locks.for_update_ts.max(self.start_ts)
    }

    /// True once the transaction took (or asked for) a pessimistic lock.
    pub fn is_pessimistic(&self) -> bool {
        !self.locks.keys.is_empty()
    }

    /// Locks every buffered key not locked yet (a pessimistic transaction's writes).
    pub(super) async fn lock_written_keys(&mut self) -> Result<(), TxnError> {
        let unlocked: Vec<Vec<u8>> = self
            .buffer
            .keys()
            .filter(|key| !self.locks.keys.contains(*key))
            .cloned()
            .collect();
        for key in unlocked {
            self.lock_key(&key, false, LockAt::StartTs).await?;
        }
        Ok(())
    }

    async fn lock_key(
        &mut self,
        key: &[u8],
        need_value: bool,
        at: LockAt,
    ) -> Result<Option<Vec<u8>>, TxnError> {
        let deadline = self.client.deadline();
        let mut wait = WAIT_MIN;
        let primary = self.locks.primary.clone().unwrap_or_else(|| key.to_vec());
        loop {
            if tokio::time::Instant::now() >= deadline {
                let why = format!("pessimistic lock of {key:?}: not taken before the deadline");
                return Err(TxnError::Client(ClientError::Unavailable(why)));
            }
            let for_update_ts = match at {
                LockAt::Fresh => self.client.timestamp().await?,
                LockAt::StartTs => self.start_ts,
            };
            let first = self.locks.keys.is_empty();
            // Asked for: the answer may be lost after the server took it.
            self.locks.keys.insert(key.to_vec());
            self.locks.primary.get_or_insert_with(|| primary.clone());
            let answer = self
                .lock_once(key, &primary, for_update_ts, first, need_value)
                .await
                .map_err(|error| TxnError::NotCommitted(format!("pessimistic lock: {error}")))?;
            match answer? {
                Locked::Taken(value) => {
                    self.locks.for_update_ts = self.locks.for_update_ts.max(for_update_ts);
                    return Ok(value);
                }
                Locked::Retry(conflict) => {
                    if matches!(at, LockAt::StartTs) {
                        return Err(TxnError::Conflict(format!(
                            "{key:?} was committed after this transaction started: {conflict:?}"
                        )));
                    }
                    wait_or_give_up(deadline, &mut wait, "pessimistic lock kept conflicting")
                        .await?;
                }
                Locked::Blocked(lock) => {
                    if self.client.resolve(&lock, self.start_ts).await? == Fate::Alive {
                        let why = "pessimistic lock blocked by a live transaction";
                        wait_or_give_up(deadline, &mut wait, why).await?;
                    }
                }
            }
        }
    }

    async fn lock_once(
        &self,
        key: &[u8],
        primary: &[u8],
        for_update_ts: TimeStamp,
        is_first_lock: bool,
        need_value: bool,
    ) -> Result<Result<Locked, TxnError>, ClientError> {
        let start_ts = self.start_ts.get();
        // The server's wait ends well inside one attempt: an answer cut off by the attempt
        // timeout would be re-sent and queue the same request twice.
        let wait_ms = self.client.raw.attempt_timeout().as_millis() as i64 * 3 / 4;
        let wait_timeout = wait_ms.clamp(1, LOCK_WAIT_MS_MAX);
        let (errors, mut values, not_founds) = self
            .client
            .call_key(key, |mut rpc, context, _| {
                let request = kvrpcpb::PessimisticLockRequest {
                    context: Some(context),
                    mutations: vec![kvrpcpb::Mutation {
                        op: kvrpcpb::Op::PessimisticLock as i32,
                        key: key.to_vec(),
                        ..Default::default()
                    }],
                    primary_lock: primary.to_vec(),
                    start_version: start_ts,
                    lock_ttl: LOCK_TTL_MS,
                    for_update_ts: for_update_ts.get(),
                    is_first_lock,
                    wait_timeout,
                    return_values: need_value,
                    ..Default::default()
                };
                async move {
                    let response = rpc.kv_pessimistic_lock(request).await?.into_inner();
                    Ok((
                        response.region_error,
                        String::new(),
                        (response.errors, response.values, response.not_founds),
                    ))
                }
            })
            .await?;
        let Some(error) = errors.into_iter().next() else {
            let found = !not_founds.first().copied().unwrap_or(false);
            let value = values.pop().filter(|_| need_value && found);
            return Ok(Ok(Locked::Taken(value)));
        };
        Ok(lock_refusal(error))
    }

    /// The mutations a pessimistic transaction prewrites besides its writes: `Lock` for
    /// every key it locked without writing, so the commit releases those locks too.
    pub(super) fn lock_only_mutations(&self) -> Vec<kvrpcpb::Mutation> {
        self.locks
            .keys
            .iter()
            .filter(|key| !self.buffer.contains_key(*key))
            .map(|key| kvrpcpb::Mutation {
                op: kvrpcpb::Op::Lock as i32,
                key: key.clone(),
                ..Default::default()
            })
            .collect()
    }
}

/// What a refused lock means for the transaction.
fn lock_refusal(error: kvrpcpb::KeyError) -> Result<Locked, TxnError> {
    if let Some(deadlock) = error.deadlock {
        return Err(TxnError::Conflict(format!(
            "deadlock: waiting for the lock of txn {} closes a cycle",
            deadlock.lock_ts
        )));
    }
    if let Some(conflict) = error.conflict {
        let retry = kvrpcpb::write_conflict::Reason::PessimisticRetry as i32;
        if conflict.reason == retry {
            return Ok(Locked::Retry(conflict));
        }
        return Err(TxnError::Conflict(format!(
            "pessimistic lock: {conflict:?}"
        )));
    }
    match error.locked {
        Some(lock) => Ok(Locked::Blocked(lock)),
        None => Err(TxnError::Aborted(format!(
            "pessimistic lock refused: {error:?}"
        ))),
    }
}
