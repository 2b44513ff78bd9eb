//! The register workload: clients issue get, put, delete and compare-and-swap on a few
//! keys with unique values, and record each call with its simulated invoke and completion
//! times.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_client::{ClientError, RawClient};
use ferrokv_core::env::{Rng, SeededRng};

use crate::history::{Event, History, Op, Outcome};

/// The bytes of register key `k`.
pub fn key_bytes(k: u64) -> Vec<u8> {
    format!("k{k:03}").into_bytes()
}

fn decode(value: Option<Vec<u8>>) -> Option<u64> {
    // A value of the wrong shape cannot match any write: u64::MAX is never written.
    value.map(|bytes| {
        bytes
            .as_slice()
            .try_into()
            .map_or(u64::MAX, u64::from_be_bytes)
    })
}

fn write_outcome(result: Result<(), ClientError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Written,
        Err(ClientError::Invalid(_)) => Outcome::Failed,
        Err(_) => Outcome::Unknown,
    }
}

/// Time since `start` in nanoseconds (simulated time under madsim).
pub fn elapsed_ns(start: tokio::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Shared state of one client loop.
pub struct ClientTask {
    /// Process id (also the high bits of its values).
    pub process: u64,
    /// Number of keys.
    pub keys: u64,
    /// Time zero of the history.
    pub start: tokio::time::Instant,
    /// Set to stop issuing new calls.
    pub stop: Arc<AtomicBool>,
    /// Where calls are recorded.
    pub history: Arc<Mutex<History>>,
}

impl ClientTask {
    /// Runs calls until `stop`; each waits for its answer (or gives up at the client timeout).
    pub async fn run(self, client: RawClient, mut rng: SeededRng) {
        let mut counter = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let key = rng.below(self.keys);
            counter += 1;
            let value = (self.process << 40) | counter;
            let op = match rng.below(100) {
                0..40 => Op::Get,
                40..75 => Op::Put(value),
                75..85 => Op::Delete,
                _ => Op::Cas {
                    expected: (rng.below(3) > 0).then(|| self.recent(key)).flatten(),
                    new: value,
                },
            };
            let invoked_ns = elapsed_ns(self.start);
            let outcome = self.call(&client, key, &op).await;
            let completed_ns = elapsed_ns(self.start);
            let event = Event {
                process: self.process,
                key,
                op,
                outcome,
                invoked_ns,
                completed_ns,
            };
            self.history
                .lock()
                .expect("history lock")
                .events
                .push(event);
            tokio::time::sleep(Duration::from_millis(rng.range(5, 40))).await;
        }
    }

    /// The last value some client wrote to `key`, as a plausible CAS expectation.
    fn recent(&self, key: u64) -> Option<u64> {
        let history = self.history.lock().expect("history lock");
        history
            .events
            .iter()
            .rev()
            .filter(|e| e.key == key)
            .find_map(|e| match (&e.op, &e.outcome) {
                (Op::Put(value), Outcome::Written) => Some(*value),
                (Op::Get, Outcome::Read(found)) => *found,
                _ => None,
            })
    }

    async fn call(&self, client: &RawClient, key: u64, op: &Op) -> Outcome {
        let bytes = key_bytes(key);
        match op {
            Op::Get => match client.get(&bytes).await {
                Ok(found) => Outcome::Read(decode(found)),
                Err(_) => Outcome::Unknown,
            },
            Op::Put(value) => write_outcome(client.put(&bytes, &value.to_be_bytes(), 0).await),
            Op::Delete => write_outcome(client.delete(&bytes).await),
            Op::Cas { expected, new } => {
                let expected_bytes = expected.map(u64::to_be_bytes);
                match client
                    .compare_and_swap(
                        &bytes,
                        expected_bytes.as_ref().map(|b| b.as_slice()),
                        &new.to_be_bytes(),
                    )
                    .await
                {
                    Ok((swapped, found)) => Outcome::Cas {
                        swapped,
                        found: decode(found),
                    },
                    Err(ClientError::Invalid(_)) => Outcome::Failed,
                    Err(_) => Outcome::Unknown,
                }
            }
        }
    }
}
