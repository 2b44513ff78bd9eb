//! Lock resolution: a lock met by a read or a prewrite belongs to a transaction whose fate
//! its primary key decides. `CheckTxnStatus` on the primary says committed (at which
//! commit_ts), rolled back, or alive; the lock is then committed or rolled back with
//! `ResolveLock` on its own key, or waited for while its transaction lives.
//!
//! An async-commit primary lock is decided by its secondaries once its TTL passed
//! (`async_commit.rs`), and every key of its transaction is resolved.
//!
//! A primary whose lock is missing is rolled back (`rollback_if_not_exist`) only once the
//! lock's TTL has passed: before that its prewrite may simply not have arrived yet, and a
//! rollback record would abort a healthy transaction.

use ferrokv_core::types::TimeStamp;
use ferrokv_proto::kvrpcpb;

use super::{TxnClient, TxnError};

/// What became of a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Committed or rolled back: the key is free of it.
    Resolved,
    /// Its transaction still lives: wait and retry.
    Alive,
}

/// The primary's verdict.
enum Status {
    Committed(TimeStamp),
    RolledBack,
    Alive,
    /// An async-commit primary lock (its secondaries decide), and whether its TTL passed.
    AsyncLocked(kvrpcpb::LockInfo, bool),
}

impl TxnClient {
    /// Resolves `lock` for a caller that is no transaction (GC clearing locks below the
    /// safe point `caller_ts`): true if it was committed or rolled back, false if its
    /// transaction still lives.
    pub(super) async fn resolve_lock(
        &self,
        lock: &kvrpcpb::LockInfo,
        caller_ts: TimeStamp,
    ) -> Result<bool, TxnError> {
        Ok(self.resolve(lock, caller_ts).await? == Fate::Resolved)
    }

    /// Resolves `lock`, met by a transaction reading or writing at `caller_start_ts`.
    pub(super) async fn resolve(
        &self,
        lock: &kvrpcpb::LockInfo,
        caller_start_ts: TimeStamp,
    ) -> Result<Fate, TxnError> {
        let lock_ts = TimeStamp(lock.lock_version);
        if lock_ts == TimeStamp::ZERO || lock.primary_lock.is_empty() {
            return Err(TxnError::Aborted(format!("malformed lock: {lock:?}")));
        }
        let commit_ts = match self.primary_status(lock, caller_start_ts).await? {
            Status::Alive | Status::AsyncLocked(_, false) => return Ok(Fate::Alive),
            Status::Committed(commit_ts) => commit_ts,
            Status::RolledBack => TimeStamp::ZERO,
            Status::AsyncLocked(primary, true) => {
                let decided = self.decide_async_lock(&primary).await?;
                let commit_ts = decided.unwrap_or(TimeStamp::ZERO);
                let mut keys = primary.secondaries.clone();
                keys.push(lock.primary_lock.clone());
                self.resolve_keys(&keys, lock_ts, commit_ts).await?;
                commit_ts
            }
        };
        self.resolve_keys(std::slice::from_ref(&lock.key), lock_ts, commit_ts)
            .await?;
        Ok(Fate::Resolved)
    }

    async fn primary_status(
        &self,
        lock: &kvrpcpb::LockInfo,
        caller_start_ts: TimeStamp,
    ) -> Result<Status, TxnError> {
        let current_ts = self.timestamp().await?;
        let lock_ts = TimeStamp(lock.lock_version);
        let expired =
            current_ts.physical_ms() >= lock_ts.physical_ms().saturating_add(lock.lock_ttl);
        let request = kvrpcpb::CheckTxnStatusRequest {
            primary_key: lock.primary_lock.clone(),
            lock_ts: lock_ts.get(),
            caller_start_ts: caller_start_ts.get(),
            current_ts: current_ts.get(),
            rollback_if_not_exist: expired,
            ..Default::default()
        };
        let response = self.check_txn_status(request).await?;
        status_of(&response, lock_ts, current_ts)
    }

    /// Sends `request` (its context filled in) to its primary's region until it answers.
    pub(super) async fn check_txn_status(
        &self,
        request: kvrpcpb::CheckTxnStatusRequest,
    ) -> Result<kvrpcpb::CheckTxnStatusResponse, TxnError> {
        let primary = request.primary_key.clone();
        let response = self
            .call_key(&primary, |mut rpc, context, _| {
                let request = kvrpcpb::CheckTxnStatusRequest {
                    context: Some(context),
                    ..request.clone()
                };
                async move {
                    let response = rpc.kv_check_txn_status(request).await?.into_inner();
                    Ok((response.region_error.clone(), String::new(), response))
                }
            })
            .await?;
        Ok(response)
    }
}

/// The verdict of a `CheckTxnStatus` answer on the primary of transaction `lock_ts`.
/// An async-commit primary counts as expired by its own TTL as the store reports it (its
/// owner's heartbeats extend it), not by the TTL of the lock met.
fn status_of(
    response: &kvrpcpb::CheckTxnStatusResponse,
    lock_ts: TimeStamp,
    current_ts: TimeStamp,
) -> Result<Status, TxnError> {
    if let Some(error) = &response.error {
        // The primary's lock is not there yet and its TTL has not passed: its prewrite
        // may still be on the way.
        if error.txn_not_found.is_some() {
            return Ok(Status::Alive);
        }
        return Err(TxnError::Aborted(format!(
            "checking the status of txn {lock_ts:?}: {error:?}"
        )));
    }
    match (response.commit_version, response.lock_ttl) {
        (0, 0) => Ok(Status::RolledBack),
        (0, _) => match &response.lock_info {
            Some(primary) if primary.use_async_commit => {
                let ttl_end = lock_ts.physical_ms().saturating_add(response.lock_ttl);
                let expired = current_ts.physical_ms() >= ttl_end;
                Ok(Status::AsyncLocked(primary.clone(), expired))
            }
            _ => Ok(Status::Alive),
        },
        (commit, 0) if commit > lock_ts.get() => Ok(Status::Committed(TimeStamp(commit))),
        (commit, ttl) => Err(TxnError::Aborted(format!(
            "txn {lock_ts:?}: a status both committed at {commit} and alive for {ttl} ms"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(commit_version: u64, lock_ttl: u64) -> kvrpcpb::CheckTxnStatusResponse {
        kvrpcpb::CheckTxnStatusResponse {
            commit_version,
            lock_ttl,
            ..Default::default()
        }
    }

    fn status_of_now(
        response: &kvrpcpb::CheckTxnStatusResponse,
        lock_ts: TimeStamp,
    ) -> Result<Status, TxnError> {
        status_of(response, lock_ts, lock_ts)
    }

    #[test]
    fn an_async_primary_lock_expires_by_the_ttl_the_store_reports() {
        // The primary's TTL, 5 s (heartbeats extended it), not the 3 s of a lock met.
        let response = kvrpcpb::CheckTxnStatusResponse {
            lock_ttl: 5000,
            lock_info: Some(kvrpcpb::LockInfo {
                use_async_commit: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let started = TimeStamp::compose(1_000, 0);
        let at = |ms: u64| TimeStamp::compose(1_000 + ms, 0);
        assert!(matches!(
            status_of(&response, started, at(3_500)),
            Ok(Status::AsyncLocked(_, false))
        ));
        assert!(matches!(
            status_of(&response, started, at(5_000)),
            Ok(Status::AsyncLocked(_, true))
        ));
    }

    #[test]
    fn the_primary_status_decides_the_fate() {
        let ts = TimeStamp(10);
        assert!(matches!(
            status_of_now(&answer(0, 0), ts),
            Ok(Status::RolledBack)
        ));
        assert!(matches!(
            status_of_now(&answer(0, 3000), ts),
            Ok(Status::Alive)
        ));
        assert!(matches!(
            status_of_now(&answer(12, 0), ts),
            Ok(Status::Committed(TimeStamp(12)))
        ));
        // A commit at or below the start, or committed and alive at once: refused.
        assert!(status_of_now(&answer(10, 0), ts).is_err());
        assert!(status_of_now(&answer(12, 5), ts).is_err());
        let missing = kvrpcpb::CheckTxnStatusResponse {
            error: Some(kvrpcpb::KeyError {
                txn_not_found: Some(kvrpcpb::TxnNotFound::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(status_of_now(&missing, ts), Ok(Status::Alive)));
    }
}
