//! Async commit and one-phase commit: deciding a transaction whose commit point is its
//! prewrites, not a primary commit.
//!
//! An async-commit transaction is committed once every key holds its lock: its commit_ts is
//! the largest min_commit_ts the stores computed (each above every read they served on the
//! key). Whoever finds such a lock after its TTL (a reader, GC, or the owner whose prewrite
//! went unanswered) decides it the same way, TiKV's: the primary's status
//! (`CheckTxnStatus`), then every secondary (`CheckSecondaryLocks`, which leaves a protected
//! rollback on a key it finds unlocked, so no late prewrite can complete the set). All
//! locked and async: committed at the largest min_commit_ts, the primary's included
//! (client-rust#561 forgot it); any key committed: committed at that ts; any key rolled
//! back, or answered with fewer locks than keys asked (client-rust's merge missed that):
//! rolled back. Then every key is resolved.
//!
//! A 1PC transaction leaves no lock: its primary's commit record, or a rollback record
//! `CheckTxnStatus` writes when none is there, decides it.

use ferrokv_core::types::TimeStamp;
use ferrokv_proto::kvrpcpb;

use super::{TxnClient, TxnError};

/// An async-commit or 1PC transaction whose prewrites went unanswered: it committed if and
/// only if every lock landed. `TxnClient::decide` settles it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecided {
    /// Its start_ts.
    pub start_ts: TimeStamp,
    /// Its primary key.
    pub primary: Vec<u8>,
    /// Its other keys.
    pub secondaries: Vec<Vec<u8>>,
}

/// What a transaction's secondaries say.
#[derive(Debug, PartialEq, Eq)]
enum Secondaries {
    /// Every one locked with an async lock: the largest min_commit_ts among them.
    AllLocked(TimeStamp),
    /// One was committed, at this ts.
    Committed(TimeStamp),
    /// One was rolled back (or is now, unlocked, protected against its prewrite).
    RolledBack,
    /// One holds a lock that is not async: the transaction fell back to two-phase commit.
    FellBack,
}

/// What the primary's status says about an async or 1PC transaction.
pub(super) enum Primary {
    Committed(TimeStamp),
    RolledBack,
    /// Locked; the lock as the store reports it.
    Locked(kvrpcpb::LockInfo),
}

impl TxnClient {
    /// Settles `txn` for its owner: `Ok(Some(commit_ts))` if it committed, `Ok(None)` if it
    /// is rolled back; then every key is resolved, best effort (what is left, readers
    /// resolve the same way). `Err` if the deciding went unanswered (call again).
    pub async fn decide(&self, txn: &Undecided) -> Result<Option<TimeStamp>, TxnError> {
        let decided = match self.primary_of(txn).await? {
            Primary::Committed(commit_ts) => Some(commit_ts),
            Primary::RolledBack => None,
            // A two-phase lock commits only through its owner, who gives up here.
            Primary::Locked(lock) if !lock.use_async_commit => None,
            Primary::Locked(lock) => self.decide_async_lock(&lock).await?,
        };
        if let Err(error) = self
            .resolve_all(txn, decided.unwrap_or(TimeStamp::ZERO))
            .await
        {
            tracing::debug!(%error, ?decided, "decided; its locks are left to readers");
        }
        Ok(decided)
    }

    /// The primary's status; a primary that has neither lock nor record is rolled back
    /// (its prewrite can no longer land).
    async fn primary_of(&self, txn: &Undecided) -> Result<Primary, TxnError> {
        let current_ts = self.timestamp().await?;
        let request = kvrpcpb::CheckTxnStatusRequest {
            primary_key: txn.primary.clone(),
            lock_ts: txn.start_ts.get(),
            current_ts: current_ts.get(),
            rollback_if_not_exist: true,
            ..Default::default()
        };
        let response = self.check_txn_status(request).await?;
        primary_verdict(&response, txn.start_ts)
    }

    /// Decides the async-commit transaction of the primary lock `lock` (reported by
    /// `CheckTxnStatus`) by its secondaries: `Some(commit_ts)` or `None` (rolled back).
    pub(super) async fn decide_async_lock(
        &self,
        lock: &kvrpcpb::LockInfo,
    ) -> Result<Option<TimeStamp>, TxnError> {
        assert!(lock.use_async_commit, "only async locks are decided here");
        let start_ts = TimeStamp(lock.lock_version);
        match self.check_secondaries(start_ts, &lock.secondaries).await? {
            Secondaries::AllLocked(ts) => Ok(Some(ts.max(TimeStamp(lock.min_commit_ts)))),
            Secondaries::Committed(ts) => Ok(Some(ts)),
            Secondaries::RolledBack => Ok(None),
            Secondaries::FellBack => Err(TxnError::Aborted(format!(
                "txn {start_ts:?}: a secondary fell back to two-phase commit; its primary \
                 decides (not served by this client)"
            ))),
        }
    }

    async fn check_secondaries(
        &self,
        start_ts: TimeStamp,
        secondaries: &[Vec<u8>],
    ) -> Result<Secondaries, TxnError> {
        let mut verdict = Secondaries::AllLocked(TimeStamp::ZERO);
        if secondaries.is_empty() {
            return Ok(verdict);
        }
        let parts = self
            .for_each_region(secondaries, |part| async move {
                let asked = part.len();
                self.call_region(&part, |mut rpc, context, _| {
                    let request = kvrpcpb::CheckSecondaryLocksRequest {
                        context: Some(context),
                        keys: part.clone(),
                        start_version: start_ts.get(),
                    };
                    async move {
                        let response = rpc.kv_check_secondary_locks(request).await?.into_inner();
                        Ok((response.region_error.clone(), String::new(), response))
                    }
                })
                .await
                .map(|response| (asked, response))
            })
            .await;
        for part in parts {
            let (asked, response) = part.result.map_err(|error| {
                TxnError::NotCommitted(format!("checking secondaries of {start_ts:?}: {error}"))
            })?;
            verdict = merge(verdict, secondaries_verdict(&response, asked, start_ts)?);
        }
        Ok(verdict)
    }

    /// Commits (`commit_ts` > 0) or rolls back every key of `txn`, region by region.
    async fn resolve_all(&self, txn: &Undecided, commit_ts: TimeStamp) -> Result<(), TxnError> {
        let mut keys = txn.secondaries.clone();
        keys.push(txn.primary.clone());
        self.resolve_keys(&keys, txn.start_ts, commit_ts).await
    }

    /// Commits (`commit_ts` > 0) or rolls back the locks of transaction `start_ts` on
    /// `keys`, region by region.
    pub(super) async fn resolve_keys(
        &self,
        keys: &[Vec<u8>],
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
    ) -> Result<(), TxnError> {
        let parts = self
            .for_each_region(keys, |part| async move {
                self.call_region(&part, |mut rpc, context, _| {
                    let request = kvrpcpb::ResolveLockRequest {
                        context: Some(context),
                        start_version: start_ts.get(),
                        commit_version: commit_ts.get(),
                        keys: part.clone(),
                        ..Default::default()
                    };
                    async move {
                        let response = rpc.kv_resolve_lock(request).await?.into_inner();
                        Ok((response.region_error, String::new(), response.error))
                    }
                })
                .await
            })
            .await;
        for part in parts {
            match part.result {
                Ok(None) => {}
                Ok(Some(error)) => {
                    return Err(TxnError::Aborted(format!(
                        "resolving txn {start_ts:?} at {commit_ts:?}: {error:?}"
                    )))
                }
                Err(error) => return Err(TxnError::Client(error)),
            }
        }
        Ok(())
    }
}

/// The verdict of `CheckTxnStatus` on the primary of transaction `start_ts`, asked with
/// `rollback_if_not_exist`.
pub(super) fn primary_verdict(
    response: &kvrpcpb::CheckTxnStatusResponse,
    start_ts: TimeStamp,
) -> Result<Primary, TxnError> {
    if let Some(error) = &response.error {
        return Err(TxnError::Aborted(format!(
            "checking the status of txn {start_ts:?}: {error:?}"
        )));
    }
    match (
        response.commit_version,
        response.lock_ttl,
        &response.lock_info,
    ) {
        (0, 0, _) => Ok(Primary::RolledBack),
        (0, _, Some(lock)) if lock.lock_version == start_ts.get() => {
            Ok(Primary::Locked(lock.clone()))
        }
        (commit, 0, None) if commit > start_ts.get() => Ok(Primary::Committed(TimeStamp(commit))),
        _ => Err(TxnError::Aborted(format!(
            "txn {start_ts:?}: a status neither committed, rolled back nor locked: {response:?}"
        ))),
    }
}

/// What one region's `CheckSecondaryLocks` answer says, `asked` keys having been sent.
fn secondaries_verdict(
    response: &kvrpcpb::CheckSecondaryLocksResponse,
    asked: usize,
    start_ts: TimeStamp,
) -> Result<Secondaries, TxnError> {
    if let Some(error) = &response.error {
        return Err(TxnError::Aborted(format!(
            "checking secondaries of {start_ts:?}: {error:?}"
        )));
    }
    if response.commit_ts > 0 {
        return Ok(Secondaries::Committed(TimeStamp(response.commit_ts)));
    }
    if response.locks.len() < asked {
        return Ok(Secondaries::RolledBack);
    }
    if response.locks.iter().any(|lock| !lock.use_async_commit) {
        return Ok(Secondaries::FellBack);
    }
    let largest = response.locks.iter().map(|lock| lock.min_commit_ts).max();
    Ok(Secondaries::AllLocked(TimeStamp(largest.unwrap_or(0))))
}

/// Two regions' verdicts as one: a commit wins (the transaction is decided), then a
/// rollback, then a fallback; all locked keeps the largest min_commit_ts.
fn merge(a: Secondaries, b: Secondaries) -> Secondaries {
    use Secondaries::*;
    match (a, b) {
        (Committed(ts), _) | (_, Committed(ts)) => Committed(ts),
        (RolledBack, _) | (_, RolledBack) => RolledBack,
        (FellBack, _) | (_, FellBack) => FellBack,
        (AllLocked(x), AllLocked(y)) => AllLocked(x.max(y)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(min_commit_ts: u64, async_commit: bool) -> kvrpcpb::LockInfo {
        kvrpcpb::LockInfo {
            lock_version: 10,
            min_commit_ts,
            use_async_commit: async_commit,
            ..Default::default()
        }
    }

    fn answer(
        locks: Vec<kvrpcpb::LockInfo>,
        commit_ts: u64,
    ) -> kvrpcpb::CheckSecondaryLocksResponse {
        kvrpcpb::CheckSecondaryLocksResponse {
            locks,
            commit_ts,
            ..Default::default()
        }
    }

    #[test]
    fn secondaries_decide_by_what_every_key_holds() {
        let ts = TimeStamp(10);
        let all = answer(vec![lock(15, true), lock(17, true)], 0);
        assert_eq!(
            secondaries_verdict(&all, 2, ts).unwrap(),
            Secondaries::AllLocked(TimeStamp(17))
        );
        // Fewer locks than keys asked: one key was rolled back (client-rust's merge took
        // this for "no information" and committed).
        let missing = answer(vec![lock(15, true)], 0);
        assert_eq!(
            secondaries_verdict(&missing, 2, ts).unwrap(),
            Secondaries::RolledBack
        );
        assert_eq!(
            secondaries_verdict(&answer(vec![], 20), 2, ts).unwrap(),
            Secondaries::Committed(TimeStamp(20))
        );
        let fell_back = answer(vec![lock(0, false), lock(15, true)], 0);
        assert_eq!(
            secondaries_verdict(&fell_back, 2, ts).unwrap(),
            Secondaries::FellBack
        );
        use Secondaries::*;
        assert_eq!(
            merge(AllLocked(TimeStamp(3)), AllLocked(TimeStamp(5))),
            AllLocked(TimeStamp(5))
        );
        assert_eq!(merge(AllLocked(TimeStamp(3)), RolledBack), RolledBack);
        assert_eq!(
            merge(RolledBack, Committed(TimeStamp(9))),
            Committed(TimeStamp(9))
        );
    }

    #[test]
    fn the_primary_status_says_committed_rolled_back_or_locked() {
        let ts = TimeStamp(10);
        let status = |commit_version, lock_ttl, lock_info| kvrpcpb::CheckTxnStatusResponse {
            commit_version,
            lock_ttl,
            lock_info,
            ..Default::default()
        };
        assert!(matches!(
            primary_verdict(&status(0, 0, None), ts),
            Ok(Primary::RolledBack)
        ));
        assert!(matches!(
            primary_verdict(&status(12, 0, None), ts),
            Ok(Primary::Committed(TimeStamp(12)))
        ));
        assert!(matches!(
            primary_verdict(&status(0, 3000, Some(lock(15, true))), ts),
            Ok(Primary::Locked(_))
        ));
        // Locked without saying by whom, or committed at its own start: refused.
        assert!(primary_verdict(&status(0, 3000, None), ts).is_err());
        assert!(primary_verdict(&status(10, 0, None), ts).is_err());
    }
}
