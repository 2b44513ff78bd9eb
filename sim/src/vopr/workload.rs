//! The workload: clients issue point reads and writes, CAS, batch reads and writes, scans
//! (forward, reverse, with limits) and delete-ranges over groups of keys, with one hot
//! group, and record each call (each region part of a multi-key call) with its simulated
//! invoke and completion times.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_client::raw::{KeysPart, Pair, RangePart};
use ferrokv_client::{ClientError, RawClient};
use ferrokv_core::env::{Rng, SeededRng};

use crate::history::{Event, History, Op, Outcome, GROUP_KEYS};

/// TTL of the writes that carry one (a TTL path through the server), in seconds. The
/// checker does not model expiry: a run must end before any such write could expire
/// (`super::SAFETY_MAX`).
pub const WRITE_TTL_SECS: u64 = 3600;

/// The bytes of register key `k`.
pub fn key_bytes(k: u64) -> Vec<u8> {
    format!("k{k:03}").into_bytes()
}

/// The register key of `bytes`, if it is one.
pub fn key_of(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes.strip_prefix(b"k")?).ok()?;
    (text.len() == 3).then(|| text.parse().ok()).flatten()
}

fn value_of(bytes: &[u8]) -> u64 {
    // A value of the wrong shape cannot match any write: u64::MAX is never written.
    bytes.try_into().map_or(u64::MAX, u64::from_be_bytes)
}

pub(super) fn write_outcome(result: &Result<(), ClientError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Written,
        // Refused input, or nothing sent before the deadline: no effect.
        Err(ClientError::Invalid(_) | ClientError::Unavailable(_)) => Outcome::Failed,
        Err(ClientError::Unknown) => Outcome::Unknown,
    }
}

fn pairs_outcome(result: &Result<Vec<Pair>, ClientError>) -> Outcome {
    match result {
        Ok(pairs) => Outcome::Pairs(
            pairs
                .iter()
                .map(|(k, v)| (key_of(k).unwrap_or(u64::MAX), value_of(v)))
                .collect(),
        ),
        Err(_) => Outcome::Unknown,
    }
}

/// Time since `start` in nanoseconds (simulated time under madsim).
pub fn elapsed_ns(start: tokio::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What one client achieved after healing, for the progress phase.
#[derive(Debug, Default)]
pub struct Progress {
    /// Successful calls (a result, or an acknowledged write) invoked once the grace period
    /// after healing was over.
    pub successes: AtomicU64,
    /// Acknowledged writes among them.
    pub writes: AtomicU64,
    /// The first call invoked after healing plus `PROGRESS_GRACE` that did not succeed
    /// definitely (unknown or failed): a healed cluster must answer every call.
    pub stuck: Mutex<Option<String>>,
}

impl Progress {
    /// True if a call invoked at `invoked_ns` is judged: it started once the grace period
    /// after healing was over.
    fn judged(healed_at: &HealedAt, invoked_ns: u64) -> Option<u64> {
        let healed_at = healed_at.load(Ordering::Relaxed);
        let grace_ns = u64::try_from(super::PROGRESS_GRACE.as_nanos()).unwrap_or(u64::MAX);
        (healed_at != 0 && invoked_ns >= healed_at.saturating_add(grace_ns)).then_some(healed_at)
    }

    /// Counts a success (an acknowledged write if `wrote`) invoked at `invoked_ns`.
    pub fn note_success(&self, healed_at: &HealedAt, invoked_ns: u64, wrote: bool) {
        if Self::judged(healed_at, invoked_ns).is_some() {
            self.successes.fetch_add(1, Ordering::Relaxed);
            if wrote {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records the first judged call that did not succeed (`why` describes it).
    pub fn note_failure(
        &self,
        healed_at: &HealedAt,
        invoked_ns: u64,
        why: impl FnOnce() -> String,
    ) {
        if let Some(healed_at) = Self::judged(healed_at, invoked_ns) {
            let after = Duration::from_nanos(invoked_ns.saturating_sub(healed_at));
            let mut stuck = self.stuck.lock().expect("progress lock");
            stuck.get_or_insert_with(|| format!("{}, {after:?} after healing", why()));
        }
    }
}

/// When the cluster was healed, in nanoseconds since the history's start (0: not yet).
pub type HealedAt = Arc<AtomicU64>;

/// Shared state of one client loop.
pub struct ClientTask {
    /// Process id (also the high bits of its values).
    pub process: u64,
    /// Number of keys (a multiple of `GROUP_KEYS`).
    pub keys: u64,
    /// Time zero of the history.
    pub start: tokio::time::Instant,
    /// Set to stop issuing new calls.
    pub stop: Arc<AtomicBool>,
    /// Set once the cluster is healed: from `PROGRESS_GRACE` later every call must succeed,
    /// and successes count as progress.
    pub healed_at: HealedAt,
    /// What this client achieved since healing.
    pub progress: Arc<Progress>,
    /// Where calls are recorded.
    pub history: Arc<Mutex<History>>,
}

/// The calls one step of the workload makes.
enum Plan {
    Single(Op),
    BatchGet(Vec<u64>),
    BatchPut(Vec<(u64, u64)>),
    BatchDelete(Vec<u64>),
    Scan {
        first: u64,
        end: u64,
        limit: usize,
        reverse: bool,
    },
    DeleteRange {
        first: u64,
        end: u64,
    },
}

impl ClientTask {
    /// Runs calls until `stop`; each waits for its answer (or gives up at the client timeout).
    pub async fn run(self, client: RawClient, mut rng: SeededRng) {
        let mut counter = 0u64;
        // Clients learn new leaders the way PD-fed clients do: by refreshing routes every
        // so often, not only after errors, so some reach a new leader while others still
        // talk to the deposed one.
        let refresh_every = Duration::from_millis(rng.range(200, 2000));
        let mut last_refresh = tokio::time::Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            if last_refresh.elapsed() >= refresh_every {
                client.refresh().await;
                last_refresh = tokio::time::Instant::now();
            }
            let plan = self.plan(&mut rng, &mut counter);
            let invoked_ns = elapsed_ns(self.start);
            let results = self.execute(&client, plan).await;
            let completed_ns = elapsed_ns(self.start);
            self.record(results, invoked_ns, completed_ns);
            tokio::time::sleep(Duration::from_millis(rng.range(2, 30))).await;
        }
    }

    fn record(&self, results: Vec<(Op, Outcome)>, invoked_ns: u64, completed_ns: u64) {
        let mut history = self.history.lock().expect("history lock");
        for (op, outcome) in results {
            let event = Event {
                process: self.process,
                op,
                outcome,
                invoked_ns,
                completed_ns,
            };
            self.count_progress(&event);
            history.events.push(event);
        }
    }

    /// Counts a call invoked once the grace period after healing is over: a success is
    /// progress, anything else (unknown or failed) means the client is stuck.
    fn count_progress(&self, event: &Event) {
        match event.outcome {
            Outcome::Unknown | Outcome::Failed => {
                self.progress
                    .note_failure(&self.healed_at, event.invoked_ns, || {
                        format!(
                            "client {}: {:?} -> {:?} (invoked {} ns) did not succeed",
                            self.process, event.op, event.outcome, event.invoked_ns
                        )
                    })
            }
            Outcome::Written => self
                .progress
                .note_success(&self.healed_at, event.invoked_ns, true),
            _ => self
                .progress
                .note_success(&self.healed_at, event.invoked_ns, false),
        }
    }

    fn group_keys(&self, rng: &mut SeededRng) -> (u64, u64) {
        let groups = self.keys / GROUP_KEYS;
        // One hot group takes 40% of the calls.
        let group = if rng.ratio(2, 5) {
            0
        } else {
            rng.below(groups)
        };
        (group * GROUP_KEYS, group * GROUP_KEYS + GROUP_KEYS)
    }

    fn some_keys(rng: &mut SeededRng, first: u64, end: u64) -> Vec<u64> {
        let mut keys: Vec<u64> = (first..end).filter(|_| rng.ratio(1, 2)).collect();
        if keys.is_empty() {
            keys.push(rng.range(first, end));
        }
        keys
    }

    fn plan(&self, rng: &mut SeededRng, counter: &mut u64) -> Plan {
        let (first, end) = self.group_keys(rng);
        let key = rng.range(first, end);
        let mut value = || {
            *counter += 1;
            (self.process << 40) | *counter
        };
        match rng.below(100) {
            0..22 => Plan::Single(Op::Get(key)),
            22..40 => Plan::Single(Op::Put(key, value())),
            40..45 => Plan::Single(Op::Delete(key)),
            45..55 => Plan::Single(Op::Cas {
                key,
                expected: (rng.below(3) > 0).then(|| self.recent(key)).flatten(),
                new: value(),
            }),
            55..65 => Plan::BatchGet(Self::some_keys(rng, first, end)),
            65..75 => {
                let keys = Self::some_keys(rng, first, end);
                Plan::BatchPut(keys.into_iter().map(|k| (k, value())).collect())
            }
            75..78 => Plan::BatchDelete(Self::some_keys(rng, first, end)),
            78..95 => {
                let a = rng.range(first, end);
                let b = rng.range(a + 1, end + 1);
                let limit = rng.range(1, GROUP_KEYS + 2) as usize;
                Plan::Scan {
                    first: a,
                    end: b,
                    limit,
                    reverse: rng.ratio(1, 2),
                }
            }
            _ => {
                let a = rng.range(first, end);
                Plan::DeleteRange {
                    first: a,
                    end: rng.range(a + 1, end + 1),
                }
            }
        }
    }

    /// The last value some client wrote to `key`, as a plausible CAS expectation.
    fn recent(&self, key: u64) -> Option<u64> {
        let history = self.history.lock().expect("history lock");
        history
            .events
            .iter()
            .rev()
            .find_map(|e| match (&e.op, &e.outcome) {
                (Op::Put(k, value), Outcome::Written) if *k == key => Some(*value),
                (Op::Get(k), Outcome::Read(found)) if *k == key => *found,
                _ => None,
            })
    }

    async fn execute(&self, client: &RawClient, plan: Plan) -> Vec<(Op, Outcome)> {
        match plan {
            Plan::Single(op) => {
                let outcome = self.single(client, &op).await;
                vec![(op, outcome)]
            }
            Plan::BatchGet(keys) => {
                let bytes: Vec<_> = keys.iter().map(|k| key_bytes(*k)).collect();
                let parts = client.batch_get_parts(&bytes).await;
                parts_events(parts, |keys, result| {
                    (Op::BatchGet(keys), pairs_outcome(result))
                })
            }
            Plan::BatchPut(pairs) => {
                let bytes: Vec<_> = pairs
                    .iter()
                    .map(|(k, v)| (key_bytes(*k), v.to_be_bytes().to_vec()))
                    .collect();
                let ttl = if pairs[0].1 % 5 == 0 {
                    WRITE_TTL_SECS
                } else {
                    0
                };
                let parts = client.batch_put_parts(&bytes, ttl).await;
                parts_events(parts, |keys, result| {
                    let written = keys
                        .iter()
                        .map(|k| *pairs.iter().find(|(key, _)| key == k).expect("own key"))
                        .collect();
                    (Op::BatchPut(written), write_outcome(result))
                })
            }
            Plan::BatchDelete(keys) => {
                let bytes: Vec<_> = keys.iter().map(|k| key_bytes(*k)).collect();
                let parts = client.batch_delete_parts(&bytes).await;
                parts_events(parts, |keys, result| {
                    (Op::BatchDelete(keys), write_outcome(result))
                })
            }
            Plan::Scan {
                first,
                end,
                limit,
                reverse,
            } => {
                let pages = client
                    .scan_pages(&key_bytes(first), &key_bytes(end), limit, reverse)
                    .await;
                range_events(pages, first, end, |keys, limit, result| {
                    (
                        Op::Scan {
                            keys,
                            limit,
                            reverse,
                        },
                        pairs_outcome(result),
                    )
                })
            }
            Plan::DeleteRange { first, end } => {
                let pieces = client
                    .delete_range_parts(&key_bytes(first), &key_bytes(end))
                    .await;
                range_events(pieces, first, end, |keys, _, result| {
                    (Op::DeleteRange(keys), write_outcome(result))
                })
            }
        }
    }

    async fn single(&self, client: &RawClient, op: &Op) -> Outcome {
        match op {
            Op::Get(key) => match client.get(&key_bytes(*key)).await {
                Ok(found) => Outcome::Read(found.as_deref().map(value_of)),
                Err(_) => Outcome::Unknown,
            },
            Op::Put(key, value) => {
                let ttl = if value % 7 == 0 { WRITE_TTL_SECS } else { 0 };
                write_outcome(
                    &client
                        .put(&key_bytes(*key), &value.to_be_bytes(), ttl)
                        .await,
                )
            }
            Op::Delete(key) => write_outcome(&client.delete(&key_bytes(*key)).await),
            Op::Cas { key, expected, new } => {
                let expected_bytes = expected.map(u64::to_be_bytes);
                let expected = expected_bytes.as_ref().map(|b| b.as_slice());
                match client
                    .compare_and_swap(&key_bytes(*key), expected, &new.to_be_bytes())
                    .await
                {
                    Ok((swapped, found)) => Outcome::Cas {
                        swapped,
                        found: found.as_deref().map(value_of),
                    },
                    Err(ClientError::Invalid(_) | ClientError::Unavailable(_)) => Outcome::Failed,
                    Err(ClientError::Unknown) => Outcome::Unknown,
                }
            }
            other => unreachable!("not a single-key op: {other:?}"),
        }
    }
}

fn parts_events<T>(
    parts: Vec<KeysPart<T>>,
    event: impl Fn(Vec<u64>, &Result<T, ClientError>) -> (Op, Outcome),
) -> Vec<(Op, Outcome)> {
    parts
        .into_iter()
        .map(|part| {
            let keys = part
                .keys
                .iter()
                .map(|k| key_of(k).expect("workload key"))
                .collect();
            event(keys, &part.result)
        })
        .collect()
}

/// One event per range part: the workload keys of `[first, end)` inside the part's range.
fn range_events<T>(
    parts: Vec<RangePart<T>>,
    first: u64,
    end: u64,
    event: impl Fn(Vec<u64>, usize, &Result<T, ClientError>) -> (Op, Outcome),
) -> Vec<(Op, Outcome)> {
    parts
        .into_iter()
        .map(|part| {
            let keys = (first..end)
                .filter(|k| part.range.contains(&key_bytes(*k)))
                .collect();
            event(keys, part.limit, &part.result)
        })
        .filter(|(op, _)| !op.keys().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bytes_round_trip_and_sort_like_numbers() {
        assert_eq!(key_of(&key_bytes(7)), Some(7));
        assert_eq!(key_of(b"k12"), None);
        assert_eq!(key_of(b"x007"), None);
        assert!(key_bytes(9) < key_bytes(10));
        assert!(key_bytes(99) < key_bytes(100));
    }
}
