//! Transactional clients, each running bank transfers (half of them pessimistic: both
//! accounts locked with `get_for_update`, in either order, so transfers wait on each
//! other's locks and can deadlock; or one locked and the other read from the snapshot and
//! locked at start_ts on commit), full bank reads and list appends (Elle style) through
//! the
//! Percolator client (`ferrokv_client::txn`), on keys of their own (`t012b3`, `t020l1`).
//! As in TiKV's API v1, transactional regions are bounded by encoded keys and raw regions
//! by raw keys, so the two spaces never share a region: the run first splits at the
//! encoded `t` (`TXN_SPACE`), below which every raw key sits, and the nemesis splits the
//! transactional space at encoded bounds `t001`, `t002`... Some commits
//! stop early on purpose, after the prewrites or after the primary, as a client that dies
//! mid-commit would: other clients must resolve what it left.
//!
//! With PD, a quarter of the writing transactions commit asynchronously and a quarter
//! try one-phase commit (async commit when their keys span regions); one whose prewrites
//! went unanswered is decided by its client, which asks again until it answers.
//!
//! Each transaction is recorded three ways: for the bank checker, for the list-append
//! checker, and with its timestamps for the exact oracle (`checker::txn::oracle`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_client::txn::{
    CommitMode, CommitStop, Oracle, Transaction, TxnClient, TxnError, LOCK_TTL_MS,
};
use ferrokv_core::env::{Rng, SeededRng};
use ferrokv_core::types::TimeStamp;

use super::workload::{elapsed_ns, HealedAt, Progress};
use super::Failure;
use crate::checker::txn::bank::{self, Balance, BankConfig, BankOp, BankTxn, GENESIS};
use crate::checker::txn::list_append::{self, Isolation, MicroOp, Outcome};
use crate::checker::txn::oracle::{self, Observed, TimedTxn};

/// Bank accounts.
pub const ACCOUNTS: u64 = 5;
/// Each account's balance before any transfer.
pub const INITIAL_BALANCE: i64 = 100;
/// Keys of the list-append workload.
pub const LIST_KEYS: u64 = 6;
/// Where list keys start in the oracle's key space (accounts are `0..ACCOUNTS`).
const LIST_ORACLE_BASE: u64 = 1000;
/// The oracle records a transfer's reads as read-only transactions of their own (each at
/// its own timestamp), with ids above every transaction id.
const READ_ONLY_IDS: u64 = 1 << 62;

/// What the transactional clients did.
#[derive(Clone, Debug, Default)]
pub struct TxnHistory {
    /// Bank transactions (transfers and full reads).
    pub bank: Vec<BankTxn>,
    /// List-append transactions.
    pub lists: Vec<list_append::Txn>,
    /// Every transaction with its timestamps (the genesis of the accounts included).
    pub timed: Vec<TimedTxn>,
    /// Times the GC driver advanced PD's safe point (seeds with PD).
    pub gc_advances: u64,
    /// Pessimistic transfers that committed.
    pub pessimistic_commits: u64,
    /// Pessimistic locks refused with Deadlock.
    pub deadlocks: u64,
    /// Transactions committed asynchronously or in one phase.
    pub computed_commits: u64,
    /// Async or 1PC transactions whose client had to decide them after unanswered
    /// prewrites (`TxnClient::decide`).
    pub decided_after_unknown: u64,
    /// Accounts a setup snapshot found, when it found some but not all.
    pub setup_partial: Option<u64>,
}

impl TxnHistory {
    /// Transactions the clients ran (the oracle's per-read records of transfers aside).
    pub fn transactions(&self) -> usize {
        self.timed
            .iter()
            .filter(|txn| txn.id & READ_ONLY_IDS == 0)
            .count()
    }
}

/// Every transactional key starts with this; every raw workload key sorts below it.
pub const TXN_SPACE: &[u8] = b"t";

/// The `n`-th bound of the transactional space (split at its encoded form).
pub fn txn_bound(n: u64) -> Vec<u8> {
    format!("t{n:03}").into_bytes()
}

fn account_key(keys: u64, account: u64) -> Vec<u8> {
    let mut key = txn_bound(account * keys / ACCOUNTS);
    key.extend_from_slice(format!("b{account}").as_bytes());
    key
}

fn list_key(keys: u64, list: u64) -> Vec<u8> {
    let mut key = txn_bound(list * keys / LIST_KEYS);
    key.extend_from_slice(format!("l{list}").as_bytes());
    key
}

fn encode_balance(balance: Balance) -> Vec<u8> {
    let mut bytes = balance.amount.to_be_bytes().to_vec();
    bytes.extend_from_slice(&balance.writer.to_be_bytes());
    bytes
}

/// A malformed value decodes to a writer no transaction has, which every checker refuses.
fn decode_balance(bytes: &[u8]) -> Balance {
    match (bytes.get(..8), bytes.get(8..)) {
        (Some(amount), Some(writer)) if writer.len() == 8 => Balance {
            amount: i64::from_be_bytes(amount.try_into().expect("8 bytes")),
            writer: u64::from_be_bytes(writer.try_into().expect("8 bytes")),
        },
        _ => Balance {
            amount: 0,
            writer: u64::MAX,
        },
    }
}

fn decode_list(bytes: &[u8]) -> Vec<u64> {
    if !bytes.len().is_multiple_of(8) {
        return vec![u64::MAX];
    }
    bytes
        .chunks(8)
        .map(|chunk| u64::from_be_bytes(chunk.try_into().expect("8 bytes")))
        .collect()
}

/// The oracle every transactional client of a seed without PD shares: simulated time in
/// the physical part, strictly increasing.
pub fn local_oracle(start: tokio::time::Instant) -> Oracle {
    let last = Arc::new(Mutex::new(0u64));
    Oracle::Local(Arc::new(move || {
        let physical = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let mut last = last.lock().expect("oracle lock");
        *last = (*last + 1).max(TimeStamp::compose(physical, 0).get());
        TimeStamp(*last)
    }))
}

/// The outcome a commit result means, with the commit_ts it committed at or last sent.
fn outcome_of(result: &Result<Option<TimeStamp>, TxnError>) -> (Outcome, Option<u64>) {
    match result {
        Ok(commit_ts) => (Outcome::Committed, commit_ts.map(TimeStamp::get)),
        Err(TxnError::Unknown { commit_ts, .. }) => (Outcome::Unknown, Some(commit_ts.get())),
        // Committed if every lock landed, at a commit ts nobody learned: a read that
        // observed it fails the oracle, which cannot place it.
        Err(TxnError::Undecided { .. }) => (Outcome::Unknown, None),
        Err(_) => (Outcome::Aborted, None),
    }
}

/// How a transaction ended, for the progress phase.
enum Ended {
    /// Committed (wrote something, or read only).
    Done { wrote: bool },
    /// A definite abort (a conflict, or a refusal before the commit point): neither
    /// progress nor a fault.
    Aborted,
    /// A failure: a read without an answer, an unknown outcome, no timestamp.
    Failed(String),
}

impl Ended {
    fn of(result: &Result<Option<TimeStamp>, TxnError>) -> Ended {
        match result {
            Ok(commit_ts) => Ended::Done {
                wrote: commit_ts.is_some(),
            },
            Err(TxnError::Conflict(_) | TxnError::Aborted(_)) => Ended::Aborted,
            Err(error) => Ended::Failed(error.to_string()),
        }
    }
}

/// One transactional client.
pub struct TxnTask {
    /// Process id (also the high part of its transaction ids).
    pub process: u64,
    /// This client writes the initial balances before anything else.
    pub setup: bool,
    /// Number of raw workload keys (transactional keys are spread among them).
    pub keys: u64,
    /// Time zero of the history.
    pub start: tokio::time::Instant,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
    /// When the cluster was healed (0: not yet).
    pub healed_at: HealedAt,
    /// What it achieved since healing.
    pub progress: Arc<Progress>,
    /// Where transactions are recorded.
    pub history: Arc<Mutex<TxnHistory>>,
    /// Set once the accounts hold their initial balances.
    pub bank_ready: Arc<AtomicBool>,
    /// The transactions running now, for the GC driver.
    pub active: ActiveTxns,
    /// Stores run by PD: some commits are async or 1PC.
    pub computed_commits: bool,
    /// Counts this client as running until it stops.
    pub _alive: Running,
}

/// One running transactional client in a shared count, until dropped.
pub struct Running(Arc<AtomicU64>);

impl Running {
    /// Counts one more running client in `count`.
    pub fn start(count: &Arc<AtomicU64>) -> Running {
        count.fetch_add(1, Ordering::Relaxed);
        Running(count.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let before = self.0.fetch_sub(1, Ordering::Relaxed);
        assert!(before > 0, "more clients stopped than started");
    }
}

/// Per client process: `None` while it takes a start_ts, then its running transaction's
/// start_ts; absent between transactions.
pub type ActiveTxns = Arc<Mutex<BTreeMap<u64, Option<u64>>>>;

/// The stream of the commit-mode draws, forked from each client's own.
const COMMIT_MODE_STREAM: u64 = 7;
/// How often an undecided transaction is asked about, and how many times at most.
const DECIDE_EVERY: Duration = Duration::from_millis(500);
const DECIDE_TRIES: u32 = 400;

/// How often the GC driver advances PD's safe point.
const GC_EVERY: Duration = Duration::from_secs(7);

/// How far behind the newest timestamp the safe point stays at least, in ms: room for a
/// dead client's delayed prewrite, which could otherwise lock a key below the safe point
/// after the locks there were resolved.
const GC_LAG_MS: u64 = 10_000;

/// Advances PD's GC safe point every `GC_EVERY` (with PD), as TiDB's GC leader does
/// (`TxnClient::gc`: every lock below it resolved first): to just below the oldest running
/// transaction, at least `GC_LAG_MS` behind a fresh timestamp; never while a client is
/// taking a start_ts. Counts its advances in the history.
pub async fn gc_driver(
    client: TxnClient,
    pd: Arc<ferrokv_client::pd::PdClient>,
    active: ActiveTxns,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<TxnHistory>>,
) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(GC_EVERY).await;
        // The timestamp comes first: a transaction that starts after it starts above it.
        let Ok(now) = pd.tso(1).await else { continue };
        let oldest = {
            let running = active.lock().expect("active lock");
            if running.values().any(Option::is_none) {
                continue;
            }
            running.values().flatten().copied().min()
        };
        let lagging = TimeStamp::compose(now.physical_ms().saturating_sub(GC_LAG_MS), 0);
        let below = oldest.unwrap_or(u64::MAX).min(lagging.get());
        if below <= 1 {
            continue;
        }
        let safe_point = TimeStamp(below - 1);
        match client.gc(&pd, TXN_SPACE, b"", safe_point).await {
            Ok(()) => history.lock().expect("txn history lock").gc_advances += 1,
            Err(error) => tracing::debug!(%error, "advancing the GC safe point failed"),
        }
    }
}

impl TxnTask {
    /// Runs transactions until `stop`.
    pub async fn run(self, client: TxnClient, mut rng: SeededRng) {
        let mut counter = 0u64;
        let refresh_every = Duration::from_millis(rng.range(200, 2000));
        let mut last_refresh = tokio::time::Instant::now();
        // A stream of its own, so that seeds keep every other draw they had.
        let mut modes = rng.fork(COMMIT_MODE_STREAM);
        while !self.stop.load(Ordering::Relaxed) {
            if last_refresh.elapsed() >= refresh_every {
                client.raw().refresh().await;
                last_refresh = tokio::time::Instant::now();
            }
            counter += 1;
            let id = self.process * 1_000_000 + counter;
            let invoked_ns = elapsed_ns(self.start);
            let bank_ready = self.bank_ready.load(Ordering::Relaxed);
            let mode = self.commit_mode(&mut modes);
            // Half list appends, a third transfers, a sixth full bank reads: every client
            // runs both workloads, so each key sees every client.
            let ended = match rng.below(6) {
                _ if self.setup && !bank_ready => self.setup(&client).await,
                0..=2 => self.lists(&client, id, mode, &mut rng).await,
                3 if bank_ready => self.bank_read(&client, id).await,
                4 | 5 if bank_ready => self.transfer(&client, id, mode, &mut rng).await,
                _ => None,
            };
            self.active
                .lock()
                .expect("active lock")
                .remove(&self.process);
            if let Some(ended) = ended {
                self.count_progress(invoked_ns, ended);
            }
            tokio::time::sleep(Duration::from_millis(rng.range(2, 30))).await;
        }
    }

    /// How the next writing transaction commits: with PD, async a quarter of the time and
    /// one-phase a quarter; half of those without the timestamp taken before the
    /// prewrites, as tikv-client 0.4 commits (then only the stores' max_ts keeps each
    /// commit above the reads that missed it).
    fn commit_mode(&self, modes: &mut SeededRng) -> (CommitMode, bool) {
        if !self.computed_commits {
            return (CommitMode::TwoPhase, true);
        }
        let mode = match modes.below(4) {
            0 => CommitMode::Async,
            1 => CommitMode::OnePc,
            _ => CommitMode::TwoPhase,
        };
        (mode, modes.ratio(1, 2))
    }

    /// Commits `txn` as `mode` says, stopping at `stop`. An async or 1PC transaction left
    /// undecided is decided here, asked again every `DECIDE_EVERY` until it answers (the
    /// cluster heals within the run) or `DECIDE_TRIES` ran out (then it stays unknown);
    /// meanwhile it stays registered as active, so GC keeps its versions.
    async fn commit(
        &self,
        client: &TxnClient,
        mut txn: Transaction<'_>,
        (mode, floor): (CommitMode, bool),
        stop: CommitStop,
    ) -> Result<Option<TimeStamp>, TxnError> {
        txn.set_commit_mode(mode);
        txn.set_commit_floor(floor);
        let result = txn.commit_stopping(stop).await;
        let Err(TxnError::Undecided {
            txn: undecided,
            why,
        }) = result
        else {
            if mode != CommitMode::TwoPhase && matches!(result, Ok(Some(_))) {
                self.history
                    .lock()
                    .expect("txn history lock")
                    .computed_commits += 1;
            }
            return result;
        };
        self.history
            .lock()
            .expect("txn history lock")
            .decided_after_unknown += 1;
        for _ in 0..DECIDE_TRIES {
            match client.decide(&undecided).await {
                Ok(Some(commit_ts)) => return Ok(Some(commit_ts)),
                Ok(None) => return Err(TxnError::Aborted(format!("decided rolled back: {why}"))),
                Err(error) => tracing::debug!(%error, "deciding an undecided transaction"),
            }
            tokio::time::sleep(DECIDE_EVERY).await;
        }
        Err(TxnError::Undecided {
            txn: undecided,
            why,
        })
    }

    /// Starts a transaction, registered as active (first as starting, then with its
    /// start_ts) so the GC driver keeps the safe point below it.
    async fn begin<'c>(&self, client: &'c TxnClient) -> Result<Transaction<'c>, TxnError> {
        self.active
            .lock()
            .expect("active lock")
            .insert(self.process, None);
        let txn = client.begin().await?;
        let start_ts = txn.start_ts().get();
        self.active
            .lock()
            .expect("active lock")
            .insert(self.process, Some(start_ts));
        Ok(txn)
    }

    fn count_progress(&self, invoked_ns: u64, ended: Ended) {
        match ended {
            Ended::Done { wrote } => self
                .progress
                .note_success(&self.healed_at, invoked_ns, wrote),
            Ended::Aborted => {}
            Ended::Failed(why) => self.progress.note_failure(&self.healed_at, invoked_ns, || {
                format!("txn client {}: {why}", self.process)
            }),
        }
    }

    /// A commit that may stop early, as a client dying mid-commit would, or stall past its
    /// lock TTL, as a paused one would. Also after healing, when transactions are many: a
    /// stop or stall ends in a definite outcome, and what it leaves behind expires within
    /// the lock TTL, well inside every other client's deadline.
    fn commit_stop(&self, rng: &mut SeededRng) -> CommitStop {
        if !rng.ratio(1, 8) {
            return CommitStop::Never;
        }
        // Just past the TTL: long enough for readers to roll the transaction back, short
        // enough that the keys are often still untouched when it wakes.
        let stall = Duration::from_millis(LOCK_TTL_MS + rng.range(100, 1500));
        match rng.below(4) {
            0 => CommitStop::AfterPrewrite,
            1 => CommitStop::AfterPrimary,
            2 => CommitStop::StallThenCommit(stall),
            _ => CommitStop::StallThenPrewriteAgain(stall),
        }
    }

    /// Writes the initial balances unless a transaction already did; sets `bank_ready`
    /// once they are known to be there.
    async fn setup(&self, client: &TxnClient) -> Option<Ended> {
        let mut txn = self.begin(client).await.ok()?;
        let mut present = 0;
        for account in 0..ACCOUNTS {
            match txn.get(&account_key(self.keys, account)).await {
                Ok(Some(_)) => present += 1,
                Ok(None) => {}
                Err(_) => return None,
            }
        }
        if present != 0 && present != ACCOUNTS {
            // The setup writes every account in one transaction: a snapshot holding some
            // is an atomicity violation, judged with the rest.
            let mut history = self.history.lock().expect("txn history lock");
            history.setup_partial.get_or_insert(present);
        }
        if present == ACCOUNTS {
            self.bank_ready.store(true, Ordering::Relaxed);
            return None;
        }
        let genesis = encode_balance(Balance {
            amount: INITIAL_BALANCE,
            writer: GENESIS,
        });
        for account in 0..ACCOUNTS {
            txn.put(account_key(self.keys, account), genesis.clone());
        }
        if txn.commit().await.is_ok() {
            self.bank_ready.store(true, Ordering::Relaxed);
        }
        None
    }

    async fn read_balance(&self, txn: &Transaction<'_>, account: u64) -> Result<Balance, Ended> {
        match txn.get(&account_key(self.keys, account)).await {
            Ok(Some(bytes)) => Ok(decode_balance(&bytes)),
            Ok(None) => Ok(Balance {
                amount: 0,
                writer: u64::MAX,
            }),
            Err(error) => Err(Ended::Failed(error.to_string())),
        }
    }

    async fn bank_read(&self, client: &TxnClient, id: u64) -> Option<Ended> {
        let txn = match self.begin(client).await {
            Ok(txn) => txn,
            Err(error) => return Some(Ended::Failed(error.to_string())),
        };
        let mut balances = BTreeMap::new();
        for account in 0..ACCOUNTS {
            match self.read_balance(&txn, account).await {
                Ok(balance) => balances.insert(account, balance),
                Err(ended) => return Some(ended),
            };
        }
        let reads = balances
            .iter()
            .map(|(account, b)| (*account, Observed::Last(Some(b.writer))))
            .collect();
        let mut history = self.history.lock().expect("txn history lock");
        history.timed.push(snapshot_read(id, txn.start_ts(), reads));
        history.bank.push(BankTxn {
            id,
            process: self.process,
            outcome: Outcome::Committed,
            op: BankOp::Read {
                balances: Some(balances),
            },
        });
        Some(Ended::Done { wrote: false })
    }

    /// Reads both accounts, as a snapshot at start_ts or (pessimistic) with a lock each,
    /// taken in either order so that concurrent transfers can deadlock. Returns the
    /// balances and, per account, the timestamp its read saw every commit below: start_ts
    /// for a snapshot, the lock's for_update_ts for a locked read (the lock was taken on
    /// the newest version; a commit below that timestamp not yet visible would have held a
    /// lock the request met).
    async fn read_pair(
        &self,
        txn: &mut Transaction<'_>,
        (from, to): (u64, u64),
        pessimistic: bool,
        rng: &mut SeededRng,
    ) -> Result<((Balance, Balance), [TimeStamp; 2]), Ended> {
        if !pessimistic {
            let read = (
                self.read_balance(txn, from).await?,
                self.read_balance(txn, to).await?,
            );
            return Ok((read, [txn.start_ts(); 2]));
        }
        let order = if rng.ratio(1, 2) {
            [from, to]
        } else {
            [to, from]
        };
        // One transfer in three locks only its first account and reads the other from the
        // snapshot: that write is locked at commit, at start_ts (a newer commit aborts).
        let lock_both = !rng.ratio(1, 3);
        let mut read = BTreeMap::new();
        for (n, account) in order.into_iter().enumerate() {
            if n == 1 && !lock_both {
                let balance = self.read_balance(txn, account).await?;
                read.insert(account, (balance, txn.start_ts()));
                continue;
            }
            let found = txn.get_for_update(&account_key(self.keys, account)).await;
            let balance = match found {
                Ok(Some(bytes)) => decode_balance(&bytes),
                Ok(None) => Balance {
                    amount: 0,
                    writer: u64::MAX,
                },
                Err(error) => {
                    if matches!(&error, TxnError::Conflict(why) if why.starts_with("deadlock")) {
                        self.history.lock().expect("txn history lock").deadlocks += 1;
                    }
                    return Err(Ended::of(&Err(error)));
                }
            };
            read.insert(account, (balance, txn.for_update_ts()));
        }
        Ok(((read[&from].0, read[&to].0), [read[&from].1, read[&to].1]))
    }

    async fn transfer(
        &self,
        client: &TxnClient,
        id: u64,
        mode: (CommitMode, bool),
        rng: &mut SeededRng,
    ) -> Option<Ended> {
        let from = rng.below(ACCOUNTS);
        let to = (from + rng.range(1, ACCOUNTS)) % ACCOUNTS;
        let amount = i64::try_from(rng.range(1, 6)).expect("small");
        let pessimistic = rng.ratio(1, 2);
        let mut txn = match self.begin(client).await {
            Ok(txn) => txn,
            Err(error) => return Some(Ended::Failed(error.to_string())),
        };
        let (read, read_ts) = match self.read_pair(&mut txn, (from, to), pessimistic, rng).await {
            Ok(read) => read,
            Err(ended) => {
                txn.rollback().await;
                return Some(ended);
            }
        };
        // Each read is checked at its own timestamp, whatever becomes of the transaction.
        let reads = [(from, read.0.writer), (to, read.1.writer)];
        let oracle_reads =
            reads
                .iter()
                .zip(read_ts)
                .enumerate()
                .map(|(n, ((account, writer), at))| {
                    let reader = READ_ONLY_IDS | (id << 1) | n as u64;
                    snapshot_read(reader, at, vec![(*account, Observed::Last(Some(*writer)))])
                });
        self.history
            .lock()
            .expect("txn history lock")
            .timed
            .extend(oracle_reads);
        if read.0.amount < amount {
            txn.rollback().await;
            return Some(Ended::Done { wrote: false });
        }
        let write = |balance: Balance, delta: i64| {
            encode_balance(Balance {
                amount: balance.amount + delta,
                writer: id,
            })
        };
        txn.put(account_key(self.keys, from), write(read.0, -amount));
        txn.put(account_key(self.keys, to), write(read.1, amount));
        let start_ts = txn.start_ts().get();
        let stop = self.commit_stop(rng);
        let result = self.commit(client, txn, mode, stop).await;
        let (outcome, commit_ts) = outcome_of(&result);
        let mut history = self.history.lock().expect("txn history lock");
        if pessimistic && outcome == Outcome::Committed {
            history.pessimistic_commits += 1;
        }
        history.timed.push(TimedTxn {
            id,
            start_ts,
            commit_ts,
            outcome,
            writes: vec![from, to],
            reads: Vec::new(),
        });
        history.bank.push(BankTxn {
            id,
            process: self.process,
            outcome,
            op: BankOp::Transfer {
                from,
                to,
                amount,
                read: Some(read),
            },
        });
        Some(Ended::of(&result))
    }

    async fn lists(
        &self,
        client: &TxnClient,
        id: u64,
        mode: (CommitMode, bool),
        rng: &mut SeededRng,
    ) -> Option<Ended> {
        let invoke_ns = elapsed_ns(self.start);
        let mut txn = match self.begin(client).await {
            Ok(txn) => txn,
            Err(error) => return Some(Ended::Failed(error.to_string())),
        };
        let start_ts = txn.start_ts().get();
        let mut ops = Vec::new();
        let mut reads = Vec::new();
        let mut appended = BTreeSet::new();
        let mut failure = None;
        for _ in 0..rng.range(1, 5) {
            let list = rng.below(LIST_KEYS);
            let append = rng.ratio(1, 2) && !appended.contains(&list);
            let found = match txn.get(&list_key(self.keys, list)).await {
                Ok(found) => decode_list(&found.unwrap_or_default()),
                Err(error) => {
                    failure = Some(Ended::Failed(error.to_string()));
                    break;
                }
            };
            if !appended.contains(&list) {
                reads.push((LIST_ORACLE_BASE + list, Observed::All(found.clone())));
            }
            if append {
                let mut longer = found;
                longer.push(id);
                let bytes: Vec<u8> = longer.iter().flat_map(|v| v.to_be_bytes()).collect();
                txn.put(list_key(self.keys, list), bytes);
                appended.insert(list);
                ops.push(MicroOp::Append(list, id));
            } else {
                ops.push(MicroOp::Read(list, Some(found)));
            }
        }
        let (result, ended) = match failure {
            // A read failed: the transaction ends without a commit (nothing was written).
            Some(ended) => (Err(TxnError::Aborted("a read failed".into())), ended),
            None => {
                let stop = self.commit_stop(rng);
                let result = self.commit(client, txn, mode, stop).await;
                let ended = Ended::of(&result);
                (result, ended)
            }
        };
        let (outcome, commit_ts) = outcome_of(&result);
        let complete_ns = elapsed_ns(self.start);
        let mut history = self.history.lock().expect("txn history lock");
        history.timed.push(TimedTxn {
            id,
            start_ts,
            commit_ts,
            outcome,
            writes: appended.iter().map(|l| LIST_ORACLE_BASE + l).collect(),
            reads,
        });
        history.lists.push(list_append::Txn::new(
            self.process,
            invoke_ns,
            complete_ns,
            outcome,
            ops,
        ));
        Some(ended)
    }
}

/// A transaction that only read at `start_ts`, for the oracle.
fn snapshot_read(id: u64, start_ts: TimeStamp, reads: Vec<(u64, Observed)>) -> TimedTxn {
    TimedTxn {
        id,
        start_ts: start_ts.get(),
        commit_ts: None,
        outcome: Outcome::Committed,
        writes: Vec::new(),
        reads,
    }
}

/// The accounts' initial balances as one committed transaction below every other, for
/// the oracle (every bank transaction starts after the setup was seen committed).
pub fn genesis() -> TimedTxn {
    TimedTxn {
        id: GENESIS,
        start_ts: 0,
        commit_ts: Some(1),
        outcome: Outcome::Committed,
        writes: (0..ACCOUNTS).collect(),
        reads: Vec::new(),
    }
}

/// What the transaction checkers covered in one seed.
#[derive(Clone, Copy, Debug, Default)]
pub struct TxnChecked {
    /// Transactions recorded.
    pub txns: usize,
    /// Bank reads whose balances summed to the total.
    pub bank_reads: usize,
    /// List-append transactions in the dependency graph.
    pub list_txns: usize,
    /// Reads the timestamp oracle compared.
    pub oracle_reads: usize,
    /// Times PD's GC safe point was advanced while they ran.
    pub gc_advances: u64,
    /// Pessimistic transfers that committed.
    pub pessimistic_commits: u64,
    /// Pessimistic locks refused with Deadlock.
    pub deadlocks: u64,
    /// Transactions committed asynchronously or in one phase.
    pub computed_commits: u64,
    /// Of those with unanswered prewrites, decided by their client afterwards.
    pub decided_after_unknown: u64,
}

/// Runs the bank checker, the list-append checker (snapshot isolation) and the exact
/// timestamp oracle over `history`; the first that fails names the violation.
pub fn judge(history: &TxnHistory) -> Result<TxnChecked, Failure> {
    fn first<E: std::fmt::Display>(what: &str, errors: &[E]) -> Failure {
        let shown: Vec<String> = errors.iter().take(3).map(E::to_string).collect();
        Failure::violation(format!(
            "{what}: {} violations, first: {}",
            errors.len(),
            shown.join("; ")
        ))
    }
    if let Some(present) = history.setup_partial {
        return Err(Failure::violation(format!(
            "bank: a snapshot saw {present} of the {ACCOUNTS} accounts one transaction wrote together"
        )));
    }
    let config = BankConfig::uniform(ACCOUNTS, INITIAL_BALANCE, false);
    let bank = bank::check(&config, &history.bank).map_err(|e| first("bank", &e))?;
    let lists = list_append::check(&history.lists, Isolation::SnapshotIsolation)
        .map_err(|e| first("list-append (snapshot isolation)", &e))?;
    let mut timed = history.timed.clone();
    timed.push(genesis());
    let oracle = oracle::check(&timed)
        .map_err(|why| Failure::violation(format!("timestamp oracle: {why}")))?;
    Ok(TxnChecked {
        txns: history.transactions(),
        bank_reads: bank.reads_checked,
        list_txns: lists.txns_checked,
        oracle_reads: oracle.reads_checked,
        gc_advances: history.gc_advances,
        pessimistic_commits: history.pessimistic_commits,
        deadlocks: history.deadlocks,
        computed_commits: history.computed_commits,
        decided_after_unknown: history.decided_after_unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_garbage_names_no_writer() {
        let balance = Balance {
            amount: -3,
            writer: 77,
        };
        assert_eq!(decode_balance(&encode_balance(balance)), balance);
        assert_eq!(decode_balance(b"short").writer, u64::MAX);
        let list: Vec<u8> = [5u64, 9].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(decode_list(&list), vec![5, 9]);
        assert_eq!(decode_list(b"odd"), vec![u64::MAX]);
        assert!(decode_list(b"").is_empty());
    }

    #[test]
    fn transactional_keys_sort_above_every_raw_key_and_never_collide() {
        let keys = 16;
        let all: BTreeSet<Vec<u8>> = (0..ACCOUNTS)
            .map(|a| account_key(keys, a))
            .chain((0..LIST_KEYS).map(|l| list_key(keys, l)))
            .collect();
        assert_eq!(all.len() as u64, ACCOUNTS + LIST_KEYS);
        assert!(all.iter().all(|k| k.starts_with(TXN_SPACE) && k.len() > 4));
        assert_eq!(account_key(keys, ACCOUNTS - 1), b"t012b4".to_vec());
        // Raw keys sort below the transactional space, encoded or not.
        let space = ferrokv_core::types::codec::encode_bytes(TXN_SPACE);
        assert!(super::super::workload::key_bytes(999) < space);
    }
}
