//! Bank-workload checker.
//!
//! # Design note
//! * **Workload.** A fixed set of accounts with initial balances (constant total). Transactions
//!   are transfers (read both balances, write `from - amount` and `to + amount`) and snapshot
//!   reads of every account. Each observed [`Balance`] carries the id of the transfer that wrote
//!   it ([`GENESIS`] = initial value), so provenance is checkable without a version order.
//! * **Checked observations.** Reads whose outcome is not `Aborted` and whose result is known
//!   (a read-only snapshot is a valid observation even if its commit ack was lost), and the two
//!   balances read by `Committed` transfers. Aborted txns are never checked.
//! * **Checks.** (1) every full read covers exactly the configured accounts and sums to the
//!   total; (2) no observed or committed-written balance is negative unless
//!   [`BankConfig::allow_negative`]; (3) provenance: each observed balance equals the initial
//!   value (writer `GENESIS`) or the value its writer transfer wrote to that account (when the
//!   writer's reads are known), and the writer is not aborted and did touch that account;
//!   (4) fractured read: a read that saw transfer T on one account must see T, or a successor
//!   of T in that account's chain, on T's other account (chains are `writer -> writer it
//!   overwrote`, from transfers with known reads; unknown links make the check inconclusive, so
//!   it passes); (5) lost update: two committed transfers overwrote the same version of an
//!   account.
//! * **Scope.** This is a sanity checker, not a full isolation checker: cycles are the job of
//!   [`super::list_append`]. Sums use `i128`, so no overflow on user input.
//!
//! # Complexity
//! n txns, a accounts: O(n * a * log n) plus chain walks bounded by the number of transfers per
//! fractured-read probe (worst case O(n^2 * a), typically tiny). Deterministic (`BTreeMap` only).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use super::list_append::Outcome;

/// Account identifier.
pub type AccountId = u64;
/// Transaction identifier, unique in the history; [`GENESIS`] is reserved.
pub type TxnId = u64;
/// Writer id of initial balances.
pub const GENESIS: TxnId = 0;

/// An observed balance and the transfer that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Amount in the account.
    pub amount: i64,
    /// Transfer that wrote this value, or [`GENESIS`].
    pub writer: TxnId,
}

/// What a bank transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankOp {
    /// Move `amount` from `from` to `to`; `read` holds the (from, to) balances read, if known.
    Transfer {
        from: AccountId,
        to: AccountId,
        amount: i64,
        read: Option<(Balance, Balance)>,
    },
    /// Snapshot read of every account; `None` if the result is unknown.
    Read {
        balances: Option<BTreeMap<AccountId, Balance>>,
    },
}

/// One bank transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankTxn {
    /// Unique id (not [`GENESIS`]); written balances carry it.
    pub id: TxnId,
    /// Client process.
    pub process: u64,
    /// Commit outcome.
    pub outcome: Outcome,
    /// The operation.
    pub op: BankOp,
}

/// Workload parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankConfig {
    /// Initial balance per account; the set of accounts is fixed.
    pub initial: BTreeMap<AccountId, i64>,
    /// Whether balances may go negative.
    pub allow_negative: bool,
}

impl BankConfig {
    /// `accounts` accounts numbered `0..accounts`, each starting with `balance`.
    pub fn uniform(accounts: u64, balance: i64, allow_negative: bool) -> Self {
        Self {
            initial: (0..accounts).map(|a| (a, balance)).collect(),
            allow_negative,
        }
    }

    /// The invariant total.
    pub fn total(&self) -> i128 {
        self.initial.values().map(|&b| i128::from(b)).sum()
    }
}

/// A violation. Every variant names the offending transaction id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankError {
    /// The history itself is malformed (bad id, unknown account, self-transfer).
    Malformed { txn: TxnId, reason: &'static str },
    /// A read does not cover exactly the configured accounts.
    IncompleteRead {
        read: TxnId,
        missing: Vec<AccountId>,
        unexpected: Vec<AccountId>,
    },
    /// A full read's balances do not sum to the total.
    WrongTotal {
        read: TxnId,
        expected: i128,
        observed: i128,
    },
    /// A negative balance was observed or written although the workload forbids it.
    Negative {
        txn: TxnId,
        account: AccountId,
        amount: i128,
    },
    /// An observed balance names a writer that never wrote this account.
    UnknownWriter {
        txn: TxnId,
        account: AccountId,
        writer: TxnId,
    },
    /// An observed balance was written by an aborted transfer (aborted read).
    AbortedWriter {
        txn: TxnId,
        account: AccountId,
        writer: TxnId,
    },
    /// An observed balance differs from what its writer wrote.
    WrongValue {
        txn: TxnId,
        account: AccountId,
        writer: TxnId,
        observed: i64,
        written: i128,
    },
    /// `read` saw `transfer`'s write to `saw` but a version of `missed` older than it.
    FracturedRead {
        read: TxnId,
        transfer: TxnId,
        saw: AccountId,
        missed: AccountId,
    },
    /// Several committed transfers overwrote the same version (`overwrote`) of `account`.
    LostUpdate {
        account: AccountId,
        overwrote: TxnId,
        transfers: Vec<TxnId>,
    },
}

impl fmt::Display for BankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BankError::Malformed { txn, reason } => write!(f, "txn {txn}: malformed: {reason}"),
            BankError::IncompleteRead {
                read,
                missing,
                unexpected,
            } => write!(
                f,
                "read txn {read}: missing accounts {missing:?}, unexpected {unexpected:?}"
            ),
            BankError::WrongTotal {
                read,
                expected,
                observed,
            } => write!(
                f,
                "read txn {read}: balances sum to {observed}, expected {expected}"
            ),
            BankError::Negative {
                txn,
                account,
                amount,
            } => write!(
                f,
                "txn {txn}: account {account} has negative balance {amount}"
            ),
            BankError::UnknownWriter {
                txn,
                account,
                writer,
            } => write!(
                f,
                "txn {txn}: account {account} claims writer {writer}, which never wrote it"
            ),
            BankError::AbortedWriter {
                txn,
                account,
                writer,
            } => write!(
                f,
                "txn {txn}: account {account} shows a value of aborted transfer {writer}"
            ),
            BankError::WrongValue {
                txn,
                account,
                writer,
                observed,
                written,
            } => write!(
                f,
                "txn {txn}: account {account} shows {observed}, but writer {writer} wrote {written}"
            ),
            BankError::FracturedRead {
                read,
                transfer,
                saw,
                missed,
            } => write!(
                f,
                "read txn {read} saw half of transfer {transfer}: its write to account {saw} \
                 but not to account {missed}"
            ),
            BankError::LostUpdate {
                account,
                overwrote,
                transfers,
            } => write!(
                f,
                "transfers {transfers:?} all overwrote version {overwrote} of account {account}"
            ),
        }
    }
}

/// Statistics of a successful check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BankSummary {
    /// The invariant total.
    pub total: i128,
    /// Full reads checked.
    pub reads_checked: usize,
    /// Committed transfers.
    pub transfers_committed: usize,
    /// Transfers with unknown outcome (possible writers).
    pub transfers_unknown: usize,
    /// Aborted transactions (ignored, except as G1a-style writers).
    pub aborted: usize,
}

/// Checks a bank history; returns every violation found.
pub fn check(config: &BankConfig, history: &[BankTxn]) -> Result<BankSummary, Vec<BankError>> {
    let mut errors = Vec::new();
    validate(config, history, &mut errors);
    if !errors.is_empty() {
        return Err(errors); // Later checks assume ids and accounts are sane.
    }
    let ledger = Ledger::build(history);
    let mut reads_checked = 0;
    for txn in history {
        match &txn.op {
            BankOp::Transfer {
                from,
                to,
                read: Some((rf, rt)),
                ..
            } if txn.outcome == Outcome::Committed => {
                let obs = Observer {
                    config,
                    ledger: &ledger,
                    txn: txn.id,
                };
                obs.balance(*from, rf, &mut errors);
                obs.balance(*to, rt, &mut errors);
                check_written(config, txn, &mut errors);
            }
            BankOp::Read { balances: Some(b) } if txn.outcome != Outcome::Aborted => {
                reads_checked += 1;
                check_read(config, &ledger, txn.id, b, &mut errors);
            }
            _ => {}
        }
    }
    check_lost_updates(history, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let transfers = |o: Outcome| {
        history
            .iter()
            .filter(|t| t.outcome == o && matches!(t.op, BankOp::Transfer { .. }))
            .count()
    };
    Ok(BankSummary {
        total: config.total(),
        reads_checked,
        transfers_committed: transfers(Outcome::Committed),
        transfers_unknown: transfers(Outcome::Unknown),
        aborted: history
            .iter()
            .filter(|t| t.outcome == Outcome::Aborted)
            .count(),
    })
}

/// Ids unique and not GENESIS; transfers between two distinct configured accounts.
fn validate(config: &BankConfig, history: &[BankTxn], errors: &mut Vec<BankError>) {
    let mut ids = BTreeSet::new();
    for txn in history {
        let bad = |reason| BankError::Malformed {
            txn: txn.id,
            reason,
        };
        if txn.id == GENESIS {
            errors.push(bad("id 0 is reserved for initial balances"));
        } else if !ids.insert(txn.id) {
            errors.push(bad("duplicate txn id"));
        }
        if let BankOp::Transfer { from, to, .. } = txn.op {
            if from == to {
                errors.push(bad("transfer to the same account"));
            }
            if !config.initial.contains_key(&from) || !config.initial.contains_key(&to) {
                errors.push(bad("transfer names an unconfigured account"));
            }
        }
    }
}

/// What transfers wrote, derived from their reads.
struct Ledger {
    /// (account, writer) -> value written (`None` if the writer's reads are unknown).
    written: BTreeMap<(AccountId, TxnId), Option<i128>>,
    /// (account, writer) pairs of aborted transfers.
    aborted: BTreeSet<(AccountId, TxnId)>,
    /// (account, writer) -> writer of the version it overwrote (known reads only).
    pred: BTreeMap<(AccountId, TxnId), TxnId>,
    /// Non-aborted transfer id -> (from, to).
    touches: BTreeMap<TxnId, (AccountId, AccountId)>,
}

impl Ledger {
    fn build(history: &[BankTxn]) -> Self {
        let mut ledger = Ledger {
            written: BTreeMap::new(),
            aborted: BTreeSet::new(),
            pred: BTreeMap::new(),
            touches: BTreeMap::new(),
        };
        for txn in history {
            let BankOp::Transfer {
                from,
                to,
                amount,
                read,
            } = txn.op
            else {
                continue;
            };
            if txn.outcome == Outcome::Aborted {
                ledger.aborted.extend([(from, txn.id), (to, txn.id)]);
                continue;
            }
            let amount = i128::from(amount);
            let new_from = read.map(|(f, _)| i128::from(f.amount) - amount);
            let new_to = read.map(|(_, t)| i128::from(t.amount) + amount);
            ledger.written.insert((from, txn.id), new_from);
            ledger.written.insert((to, txn.id), new_to);
            ledger.touches.insert(txn.id, (from, to));
            if let Some((f, t)) = read {
                ledger.pred.insert((from, txn.id), f.writer);
                ledger.pred.insert((to, txn.id), t.writer);
            }
        }
        ledger
    }

    /// Whether `ancestor` wrote `account` at or before version `writer` in its chain. Unknown
    /// links (or a corrupt, cyclic chain) are inconclusive and count as `true`.
    fn descends(&self, account: AccountId, writer: TxnId, ancestor: TxnId) -> bool {
        let mut cur = writer;
        for _ in 0..=self.pred.len() {
            if cur == ancestor {
                return true;
            }
            if cur == GENESIS {
                return false;
            }
            match self.pred.get(&(account, cur)) {
                Some(&p) => cur = p,
                None => return true,
            }
        }
        true
    }
}

/// Checks single observed balances on behalf of transaction `txn`.
struct Observer<'a> {
    config: &'a BankConfig,
    ledger: &'a Ledger,
    txn: TxnId,
}

impl Observer<'_> {
    /// Non-negativity and provenance of one observed balance.
    fn balance(&self, account: AccountId, b: &Balance, errors: &mut Vec<BankError>) {
        let txn = self.txn;
        let Some(&initial) = self.config.initial.get(&account) else {
            return; // Reported by validation / IncompleteRead.
        };
        if !self.config.allow_negative && b.amount < 0 {
            errors.push(BankError::Negative {
                txn,
                account,
                amount: i128::from(b.amount),
            });
        }
        let written = if b.writer == GENESIS {
            Some(i128::from(initial))
        } else if let Some(&w) = self.ledger.written.get(&(account, b.writer)) {
            w
        } else {
            let (writer, aborted) = (b.writer, self.ledger.aborted.contains(&(account, b.writer)));
            errors.push(if aborted {
                BankError::AbortedWriter {
                    txn,
                    account,
                    writer,
                }
            } else {
                BankError::UnknownWriter {
                    txn,
                    account,
                    writer,
                }
            });
            return;
        };
        if let Some(written) = written {
            if written != i128::from(b.amount) {
                errors.push(BankError::WrongValue {
                    txn,
                    account,
                    writer: b.writer,
                    observed: b.amount,
                    written,
                });
            }
        }
    }
}

/// A committed transfer must not write a negative balance if the workload forbids it.
fn check_written(config: &BankConfig, txn: &BankTxn, errors: &mut Vec<BankError>) {
    let BankOp::Transfer {
        from,
        to,
        amount,
        read: Some((f, t)),
    } = txn.op
    else {
        return;
    };
    if config.allow_negative {
        return;
    }
    let amount = i128::from(amount);
    for (account, value) in [
        (from, i128::from(f.amount) - amount),
        (to, i128::from(t.amount) + amount),
    ] {
        if value < 0 {
            errors.push(BankError::Negative {
                txn: txn.id,
                account,
                amount: value,
            });
        }
    }
}

/// Completeness, total, provenance and fracture checks for one full read.
fn check_read(
    config: &BankConfig,
    ledger: &Ledger,
    read: TxnId,
    balances: &BTreeMap<AccountId, Balance>,
    errors: &mut Vec<BankError>,
) {
    let missing: Vec<AccountId> = config
        .initial
        .keys()
        .filter(|a| !balances.contains_key(a))
        .copied()
        .collect();
    let unexpected: Vec<AccountId> = balances
        .keys()
        .filter(|a| !config.initial.contains_key(a))
        .copied()
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        errors.push(BankError::IncompleteRead {
            read,
            missing,
            unexpected,
        });
    } else {
        let observed: i128 = balances.values().map(|b| i128::from(b.amount)).sum();
        if observed != config.total() {
            errors.push(BankError::WrongTotal {
                read,
                expected: config.total(),
                observed,
            });
        }
    }
    let obs = Observer {
        config,
        ledger,
        txn: read,
    };
    for (&account, b) in balances {
        obs.balance(account, b, errors);
        check_fracture(ledger, read, balances, account, b.writer, errors);
    }
}

/// If `read` saw `transfer`'s write to `saw`, it must see `transfer` (or later) on the other
/// account the transfer touched.
fn check_fracture(
    ledger: &Ledger,
    read: TxnId,
    balances: &BTreeMap<AccountId, Balance>,
    saw: AccountId,
    transfer: TxnId,
    errors: &mut Vec<BankError>,
) {
    let Some(&(from, to)) = ledger.touches.get(&transfer) else {
        return; // GENESIS, or an unknown writer reported elsewhere.
    };
    let missed = match saw {
        a if a == from => to,
        a if a == to => from,
        _ => return,
    };
    if let Some(other) = balances.get(&missed) {
        if !ledger.descends(missed, other.writer, transfer) {
            errors.push(BankError::FracturedRead {
                read,
                transfer,
                saw,
                missed,
            });
        }
    }
}

/// Two committed transfers that read the same version of an account both overwrote it.
fn check_lost_updates(history: &[BankTxn], errors: &mut Vec<BankError>) {
    let mut groups: BTreeMap<(AccountId, TxnId), Vec<TxnId>> = BTreeMap::new();
    for txn in history.iter().filter(|t| t.outcome == Outcome::Committed) {
        if let BankOp::Transfer {
            from,
            to,
            read: Some((f, t)),
            ..
        } = txn.op
        {
            groups.entry((from, f.writer)).or_default().push(txn.id);
            groups.entry((to, t.writer)).or_default().push(txn.id);
        }
    }
    for ((account, overwrote), transfers) in groups {
        if transfers.len() >= 2 {
            errors.push(BankError::LostUpdate {
                account,
                overwrote,
                transfers,
            });
        }
    }
}

#[cfg(test)]
mod tests;
