//! Percolator transactions (two-phase commit, optimistic or pessimistic) over the raw
//! client's routing:
//! every call goes to its region's leader through the same region cache, retries and
//! deadlines as raw calls (`crate::raw`), and speaks the `tikvpb.Tikv` Kv* RPCs the
//! official client speaks.
//!
//! - **Routing**: regions are found by the memcomparable encoding of a key, the form
//!   transactional region bounds take (TiKV's API v1); requests carry the raw key.
//! - **Timestamps** come from an `Oracle`: PD's TSO, or a local function (tests, and
//!   simulated clusters without PD).
//! - **Reads** see the latest version committed below `start_ts`, and the transaction's own
//!   buffered writes. A read that meets another transaction's lock resolves it
//!   (`resolve.rs`): commit or roll back by the primary's fate, or wait while it lives.
//! - **Pessimistic** (`pessimistic.rs`): `get_for_update` locks a key at once; once a
//!   transaction holds such a lock, every key it writes is locked before the prewrite.
//! - **Commit** (`commit.rs`): prewrite the primary first, then the secondaries region by
//!   region; take a commit_ts; commit the primary (the commit point); then the secondaries,
//!   best effort (readers resolve what is left).
//! - **Async commit and 1PC** (`CommitMode`, `commit.rs`, `async_commit.rs`): committed
//!   once every prewrite succeeded, at a commit_ts the stores compute; locks of such
//!   transactions are decided by their secondaries.
//! - **Outcomes**: `Conflict` and `Aborted` are definite (nothing was committed); `Unknown`
//!   means the primary commit was sent without an answer, so the transaction may have
//!   committed; `Undecided`, that an async or 1PC transaction could not be decided yet.
//!
//! All RPCs retry freely (prewrite, commit, rollback and resolve are idempotent in
//! Percolator); only the primary commit's answer decides the outcome.

mod async_commit;
mod commit;
mod gc;
mod pessimistic;
mod resolve;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferrokv_core::types::codec::encode_bytes;
use ferrokv_core::types::TimeStamp;
use ferrokv_proto::kvrpcpb::{self, Context};
use ferrokv_proto::tikvpb::tikv_client::TikvClient;
use tonic::transport::Channel;

pub use async_commit::Undecided;
pub use commit::CommitStop;

use crate::error::ClientError;
use crate::pd::PdClient;
use crate::raw::{Answer, CallError, KeysPart, RawClient, Target};
use crate::region_cache::Route;

/// Lock TTL of a transaction's prewrites, in milliseconds: other transactions may roll a
/// lock back once its primary is this old.
pub const LOCK_TTL_MS: u64 = 3_000;

const WAIT_MIN: Duration = Duration::from_millis(20);
const WAIT_MAX: Duration = Duration::from_millis(400);

/// Where timestamps come from.
#[derive(Clone)]
pub enum Oracle {
    /// PD's timestamp oracle.
    Pd(Arc<PdClient>),
    /// A local source; it must hand out strictly increasing timestamps to every caller
    /// (tests, and a simulated cluster without PD).
    Local(Arc<dyn Fn() -> TimeStamp + Send + Sync>),
}

/// Why a transaction failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// Another transaction wrote a key this one wrote, after this one started: nothing was
    /// committed; retry with a new transaction.
    #[error("write conflict: {0}")]
    Conflict(String),
    /// The transaction did not commit (its locks were rolled back, or a step before the
    /// commit point failed); nothing was committed.
    #[error("transaction aborted: {0}")]
    Aborted(String),
    /// The primary commit was sent at `commit_ts` without an answer: the transaction may
    /// have committed, and if it did, at that commit_ts.
    #[error("commit at {commit_ts:?} sent, outcome unknown: {why}")]
    Unknown { commit_ts: TimeStamp, why: String },
    /// A step before the commit point had no answer in time: the transaction did not
    /// commit (its locks expire and are rolled back by readers), but the cluster did not
    /// refuse it either.
    #[error("transaction not committed, a step went unanswered: {0}")]
    NotCommitted(String),
    /// A read failed (no answer in time, or refused input); nothing was written.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No timestamp could be had.
    #[error("timestamp oracle: {0}")]
    Oracle(String),
    /// An async-commit or 1PC transaction whose prewrites, and the deciding after them,
    /// went unanswered: it committed if and only if every lock landed. `TxnClient::decide`
    /// settles it (call it until it answers).
    #[error("async commit undecided: {why}")]
    Undecided { txn: Box<Undecided>, why: String },
}

impl TxnError {
    /// True if the transaction surely did not commit.
    pub fn is_definite_abort(&self) -> bool {
        !matches!(self, TxnError::Unknown { .. } | TxnError::Undecided { .. })
    }
}

/// How a transaction commits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CommitMode {
    /// Prewrite every key, then commit the primary at a fresh timestamp (the commit point).
    #[default]
    TwoPhase,
    /// Committed once every prewrite succeeded, at a timestamp the stores compute: one
    /// round trip less. Needs stores run by PD.
    Async,
    /// One prewrite that commits, when every key lies in one region; async commit
    /// otherwise. Needs stores run by PD.
    OnePc,
}

/// A transactional client.
pub struct TxnClient {
    raw: RawClient,
    oracle: Oracle,
}

impl TxnClient {
    /// A client routing through `raw` and taking timestamps from `oracle`.
    pub fn new(raw: RawClient, oracle: Oracle) -> TxnClient {
        TxnClient { raw, oracle }
    }

    /// The routing client (route refreshes, raw calls).
    pub fn raw(&self) -> &RawClient {
        &self.raw
    }

    /// A fresh timestamp.
    pub async fn timestamp(&self) -> Result<TimeStamp, TxnError> {
        let ts = match &self.oracle {
            Oracle::Pd(pd) => pd
                .tso(1)
                .await
                .map_err(|error| TxnError::Oracle(error.to_string()))?,
            Oracle::Local(next) => next(),
        };
        if ts == TimeStamp::ZERO {
            return Err(TxnError::Oracle("a zero timestamp".into()));
        }
        Ok(ts)
    }

    /// Starts a transaction at a fresh timestamp.
    pub async fn begin(&self) -> Result<Transaction<'_>, TxnError> {
        let start_ts = self.timestamp().await?;
        Ok(self.snapshot_at(start_ts))
    }

    /// A transaction reading at `start_ts` (a snapshot at an older timestamp, if it only
    /// reads).
    pub fn snapshot_at(&self, start_ts: TimeStamp) -> Transaction<'_> {
        Transaction {
            client: self,
            start_ts,
            buffer: BTreeMap::new(),
            locks: pessimistic::Locks::default(),
            commit_mode: CommitMode::TwoPhase,
            commit_floor: true,
        }
    }

    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.raw.timeout()
    }

    /// Runs `attempt` on the region of the user key `key` until it answers or the
    /// deadline passes (every transactional RPC is idempotent: ambiguous attempts retry).
    async fn call_key<T, F, Fut>(&self, key: &[u8], attempt: F) -> Result<T, ClientError>
    where
        F: Fn(TikvClient<Channel>, Context, Route) -> Fut,
        Fut: Future<Output = Answer<T>>,
    {
        self.raw.call(&routing_key(key), true, attempt).await
    }

    /// Runs `attempt` on the region holding every user key of `keys` (`Reshard` once they
    /// no longer share one).
    async fn call_region<T, F, Fut>(&self, keys: &[Vec<u8>], attempt: F) -> Result<T, CallError>
    where
        F: Fn(TikvClient<Channel>, Context, Route) -> Fut,
        Fut: Future<Output = Answer<T>>,
    {
        let routes: Vec<Vec<u8>> = keys.iter().map(|key| routing_key(key)).collect();
        assert!(!routes.is_empty(), "a call names at least one key");
        self.raw
            .call_in_region(Target::Key(&routes[0]), &routes, true, attempt)
            .await
    }

    /// Runs `one` on each region's share of the user keys `keys`, re-cutting shares a
    /// split broke; `one` gets the user keys of its share.
    async fn for_each_region<T, F, Fut>(&self, keys: &[Vec<u8>], one: F) -> Vec<KeysPart<T>>
    where
        F: Fn(Vec<Vec<u8>>) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let by_route: BTreeMap<Vec<u8>, Vec<u8>> = keys
            .iter()
            .map(|key| (routing_key(key), key.clone()))
            .collect();
        let routes: Vec<Vec<u8>> = by_route.keys().cloned().collect();
        self.raw
            .for_each_shard(routes, |part| {
                let users: Vec<Vec<u8>> =
                    part.iter().map(|route| by_route[route].clone()).collect();
                one(users)
            })
            .await
    }
}

/// The key a user key's region is found by: as in TiKV's API v1, transactional regions
/// are bounded by memcomparable-encoded keys, so a key is located by its encoding (its raw
/// bytes can sort on the other side of a bound, e.g. a key equal to a split key).
fn routing_key(key: &[u8]) -> Vec<u8> {
    encode_bytes(key)
}

/// One transaction: reads at `start_ts`, writes buffered until commit.
pub struct Transaction<'a> {
    client: &'a TxnClient,
    start_ts: TimeStamp,
    /// Buffered writes: `None` deletes.
    buffer: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Pessimistic locks taken (`get_for_update`); none for an optimistic transaction.
    locks: pessimistic::Locks,
    /// How `commit` commits.
    commit_mode: CommitMode,
    /// Async commit and 1PC: commit above a timestamp taken just before the prewrites.
    commit_floor: bool,
}

impl Transaction<'_> {
    /// The timestamp this transaction reads at.
    pub fn start_ts(&self) -> TimeStamp {
        self.start_ts
    }

    /// Commit with `mode` (two-phase unless set).
    pub fn set_commit_mode(&mut self, mode: CommitMode) {
        self.commit_mode = mode;
    }

    /// Async commit and 1PC only: `false` skips the timestamp taken before the prewrites,
    /// as tikv-client 0.4 does. The commit still lands above every read the stores served
    /// on its keys (snapshot isolation holds), but no longer surely after every transaction
    /// that finished before it began committing (tikv#8589): for tests of the server's
    /// max_ts rules, which such clients depend on.
    pub fn set_commit_floor(&mut self, floor: bool) {
        self.commit_floor = floor;
    }

    /// Buffers a write.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.buffer.insert(key, Some(value));
    }

    /// Buffers a delete.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.buffer.insert(key, None);
    }

    /// Reads `key`: this transaction's own write if it made one, else the newest version
    /// committed below `start_ts`. Waits for (or resolves) other transactions' locks until
    /// the client's deadline.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, TxnError> {
        if let Some(own) = self.buffer.get(key) {
            return Ok(own.clone());
        }
        let deadline = self.client.deadline();
        let mut wait = WAIT_MIN;
        loop {
            if tokio::time::Instant::now() >= deadline {
                let why = format!("read of {key:?}: locks kept coming back until the deadline");
                return Err(TxnError::Client(ClientError::Unavailable(why)));
            }
            let (error, value) = self.get_once(key).await?;
            let Some(error) = error else {
                return Ok(value);
            };
            let Some(lock) = error.locked else {
                return Err(TxnError::Aborted(format!(
                    "read of {key:?} refused: {error:?}"
                )));
            };
            if self.client.resolve(&lock, self.start_ts).await? == resolve::Fate::Alive {
                wait_or_give_up(deadline, &mut wait, "key locked by a live transaction").await?;
            }
        }
    }

    async fn get_once(
        &self,
        key: &[u8],
    ) -> Result<(Option<kvrpcpb::KeyError>, Option<Vec<u8>>), TxnError> {
        let version = self.start_ts.get();
        let answer = self
            .client
            .call_key(key, |mut rpc, context, _| {
                let request = kvrpcpb::GetRequest {
                    context: Some(context),
                    key: key.to_vec(),
                    version,
                };
                async move {
                    let response = rpc.kv_get(request).await?.into_inner();
                    let value = (!response.not_found).then_some(response.value);
                    Ok((
                        response.region_error,
                        String::new(),
                        (response.error, value),
                    ))
                }
            })
            .await?;
        Ok(answer)
    }
}

/// Sleeps `wait` (doubling it up to `WAIT_MAX`), or fails if that would pass `deadline`.
async fn wait_or_give_up(
    deadline: tokio::time::Instant,
    wait: &mut Duration,
    why: &str,
) -> Result<(), TxnError> {
    if tokio::time::Instant::now() + *wait >= deadline {
        return Err(TxnError::Client(ClientError::Unavailable(why.to_string())));
    }
    tokio::time::sleep(*wait).await;
    *wait = (*wait * 2).min(WAIT_MAX);
    Ok(())
}
