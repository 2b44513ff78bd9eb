//! The exact timestamp oracle: under Percolator every read at `start_ts` returns exactly
//! the versions committed at or below `start_ts` (TiKV's rule: a version is visible at its
//! commit_ts; two-phase commit never lands on a taken timestamp, but async commit and 1PC
//! compute theirs, which may equal a later transaction's start_ts). Knowing each transaction's timestamps, the
//! checker computes what each read had to return and compares.
//!
//! - **Versions**: every write of a counted transaction at its commit_ts. Counted are the
//!   committed ones, and those of unknown outcome whose writes some read observed (their
//!   commit_ts is the one their client last sent: an earlier one was refused for good).
//! - **Reads** are checked whatever became of the reading transaction: a snapshot read is
//!   the same whether or not its transaction later commits. Only reads of the store count
//!   (not of the transaction's own buffered writes).
//! - A register read (`Observed::Last`) must name the newest version's writer (`None`:
//!   no version); a list read (`Observed::All`) must name every version's writer in
//!   commit order.
//! - Two counted writers of one key at one commit_ts are a violation by themselves.
//!
//! Deterministic: `BTreeMap`s only.

use std::collections::{BTreeMap, BTreeSet};

use super::list_append::Outcome;

/// A key.
pub type Key = u64;
/// A transaction id; what a version carries to name its writer.
pub type TxnId = u64;

/// What one read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// A register: the writer of the value read (`None`: absent).
    Last(Option<TxnId>),
    /// A list: the writers of every element, oldest first.
    All(Vec<TxnId>),
}

/// One transaction, with its timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedTxn {
    /// Unique id, carried by what it wrote.
    pub id: TxnId,
    /// Its snapshot timestamp.
    pub start_ts: u64,
    /// The commit_ts it committed at (`Committed`) or last sent (`Unknown`).
    pub commit_ts: Option<u64>,
    /// What its client learned.
    pub outcome: Outcome,
    /// The keys it wrote.
    pub writes: Vec<Key>,
    /// Its reads of the store, in order.
    pub reads: Vec<(Key, Observed)>,
}

/// What a successful check covered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OracleSummary {
    /// Reads compared with the versions below their start_ts.
    pub reads_checked: usize,
    /// Versions (counted writes).
    pub versions: usize,
}

/// Checks that every read returned exactly the versions committed at or below its start_ts.
pub fn check(history: &[TimedTxn]) -> Result<OracleSummary, String> {
    let observed = observed_writers(history);
    let versions = versions(history, &observed)?;
    let mut reads_checked = 0;
    for txn in history {
        for (key, read) in &txn.reads {
            let visible: Vec<TxnId> = versions
                .get(key)
                .map(|by_ts| by_ts.range(..=txn.start_ts).map(|(_, w)| *w).collect())
                .unwrap_or_default();
            let expected = match read {
                Observed::Last(_) => Observed::Last(visible.last().copied()),
                Observed::All(_) => Observed::All(visible),
            };
            if *read != expected {
                return Err(format!(
                    "txn {} read key {key} at start_ts {}: got {read:?}, but the versions committed at or below it are {expected:?}; the writers that differ: {}",
                    txn.id,
                    txn.start_ts,
                    describe_difference(history, read, &expected)
                ));
            }
            reads_checked += 1;
        }
    }
    Ok(OracleSummary {
        reads_checked,
        versions: versions.values().map(BTreeMap::len).sum(),
    })
}

/// The writers in one of `a`, `b` but not the other, with their timestamps and outcomes.
fn describe_difference(history: &[TimedTxn], a: &Observed, b: &Observed) -> String {
    let writers = |o: &Observed| -> BTreeSet<TxnId> {
        match o {
            Observed::Last(w) => w.iter().copied().collect(),
            Observed::All(ws) => ws.iter().copied().collect(),
        }
    };
    let (a, b) = (writers(a), writers(b));
    let differ: Vec<String> = a
        .symmetric_difference(&b)
        .map(|id| match history.iter().find(|t| t.id == *id) {
            Some(t) => format!(
                "txn {id} (start_ts {}, commit_ts {:?}, {:?})",
                t.start_ts, t.commit_ts, t.outcome
            ),
            None => format!("txn {id} (not in the history)"),
        })
        .collect();
    differ.join(", ")
}

/// Every (key, writer) some read returned.
fn observed_writers(history: &[TimedTxn]) -> BTreeSet<(Key, TxnId)> {
    let mut seen = BTreeSet::new();
    for txn in history {
        for (key, read) in &txn.reads {
            match read {
                Observed::Last(Some(writer)) => {
                    seen.insert((*key, *writer));
                }
                Observed::Last(None) => {}
                Observed::All(writers) => seen.extend(writers.iter().map(|w| (*key, *w))),
            }
        }
    }
    seen
}

/// Key -> commit_ts -> writer, over counted transactions.
fn versions(
    history: &[TimedTxn],
    observed: &BTreeSet<(Key, TxnId)>,
) -> Result<BTreeMap<Key, BTreeMap<u64, TxnId>>, String> {
    let mut versions: BTreeMap<Key, BTreeMap<u64, TxnId>> = BTreeMap::new();
    for txn in history {
        let counted = match txn.outcome {
            Outcome::Committed => true,
            Outcome::Unknown => txn.writes.iter().any(|k| observed.contains(&(*k, txn.id))),
            Outcome::Aborted => false,
        };
        if !counted || txn.writes.is_empty() {
            continue;
        }
        let Some(commit_ts) = txn.commit_ts else {
            return Err(format!(
                "txn {} wrote and counts, but has no commit_ts",
                txn.id
            ));
        };
        if commit_ts <= txn.start_ts {
            return Err(format!(
                "txn {} committed at {commit_ts}, not above its start_ts {}",
                txn.id, txn.start_ts
            ));
        }
        for key in &txn.writes {
            if let Some(other) = versions.entry(*key).or_default().insert(commit_ts, txn.id) {
                return Err(format!(
                    "txns {other} and {} both committed key {key} at {commit_ts}",
                    txn.id
                ));
            }
        }
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: TxnId, start_ts: u64, commit_ts: Option<u64>, outcome: Outcome) -> TimedTxn {
        TimedTxn {
            id,
            start_ts,
            commit_ts,
            outcome,
            writes: Vec::new(),
            reads: Vec::new(),
        }
    }

    fn writer(id: TxnId, start_ts: u64, commit_ts: u64, outcome: Outcome) -> TimedTxn {
        TimedTxn {
            writes: vec![1],
            ..txn(id, start_ts, Some(commit_ts), outcome)
        }
    }

    fn reader(id: TxnId, start_ts: u64, read: Observed) -> TimedTxn {
        TimedTxn {
            reads: vec![(1, read)],
            ..txn(id, start_ts, None, Outcome::Committed)
        }
    }

    #[test]
    fn a_read_sees_exactly_the_versions_below_its_start() {
        let history = vec![
            writer(1, 10, 20, Outcome::Committed),
            writer(2, 25, 30, Outcome::Committed),
            reader(3, 21, Observed::All(vec![1])),
            reader(4, 31, Observed::All(vec![1, 2])),
            reader(5, 31, Observed::Last(Some(2))),
            reader(6, 5, Observed::Last(None)),
        ];
        let summary = check(&history).expect("a correct history");
        assert_eq!(summary.reads_checked, 4);
        assert_eq!(summary.versions, 2);
    }

    #[test]
    fn a_version_is_visible_at_its_own_commit_ts() {
        // Async commit computes commit timestamps: one may equal a reader's start_ts.
        let sees = vec![
            writer(1, 10, 20, Outcome::Committed),
            reader(2, 20, Observed::Last(Some(1))),
        ];
        assert!(check(&sees).is_ok());
        let misses = vec![
            writer(1, 10, 20, Outcome::Committed),
            reader(2, 20, Observed::Last(None)),
        ];
        assert!(check(&misses).is_err());
    }

    #[test]
    fn a_stale_read_is_caught() {
        // Version 2 committed at 30, below the read's start at 31, but the read missed it.
        let history = vec![
            writer(1, 10, 20, Outcome::Committed),
            writer(2, 25, 30, Outcome::Committed),
            reader(3, 31, Observed::Last(Some(1))),
        ];
        let error = check(&history).expect_err("a stale read");
        assert!(error.contains("txn 3"), "{error}");
    }

    #[test]
    fn a_read_from_the_future_or_of_an_aborted_write_is_caught() {
        let future = vec![
            writer(1, 10, 20, Outcome::Committed),
            reader(2, 15, Observed::All(vec![1])),
        ];
        assert!(check(&future).is_err());
        let aborted = vec![
            writer(1, 10, 20, Outcome::Aborted),
            reader(2, 25, Observed::Last(Some(1))),
        ];
        assert!(check(&aborted).is_err());
    }

    #[test]
    fn an_unknown_write_counts_only_once_observed() {
        let unseen = vec![
            writer(1, 10, 20, Outcome::Unknown),
            reader(2, 25, Observed::Last(None)),
        ];
        assert!(check(&unseen).is_ok());
        let seen_then_missed = vec![
            writer(1, 10, 20, Outcome::Unknown),
            reader(2, 25, Observed::Last(Some(1))),
            reader(3, 26, Observed::Last(None)),
        ];
        assert!(check(&seen_then_missed).is_err());
    }

    #[test]
    fn two_writers_at_one_commit_ts_or_a_commit_below_the_start_are_caught() {
        let twins = vec![
            writer(1, 10, 20, Outcome::Committed),
            writer(2, 11, 20, Outcome::Committed),
        ];
        assert!(check(&twins).unwrap_err().contains("both committed"));
        let backwards = vec![writer(1, 10, 10, Outcome::Committed)];
        assert!(check(&backwards).is_err());
    }

    #[test]
    fn lists_must_list_every_version_in_commit_order() {
        let history = vec![
            writer(1, 10, 30, Outcome::Committed),
            writer(2, 11, 20, Outcome::Committed),
            reader(3, 40, Observed::All(vec![1, 2])),
        ];
        assert!(check(&history).is_err());
    }
}
