//! The node's mailbox: two bounded lanes, one for Raft traffic (messages, snapshot results
//! and delivery reports) and one for client requests, so a flood of requests never delays
//! heartbeats. Each lane is bounded in count and has its own byte budget (a request flood
//! never takes the room Raft messages need): a full lane answers `ServerIsBusy` to
//! requests and drops Raft messages (Raft retransmits).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// Inputs one lane holds at most.
pub const LANE_CAPACITY: usize = 4096;

/// Why an input was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The lane or the byte budget is full.
    Full,
    /// The node stopped.
    Closed,
}

/// The sending side of one lane, with the lane's byte budget.
#[derive(Debug)]
pub struct LaneSender<T> {
    sender: mpsc::Sender<(T, usize)>,
    bytes: Arc<AtomicUsize>,
    bytes_max: usize,
}

impl<T> Clone for LaneSender<T> {
    fn clone(&self) -> Self {
        LaneSender {
            sender: self.sender.clone(),
            bytes: self.bytes.clone(),
            bytes_max: self.bytes_max,
        }
    }
}

/// The receiving side of one lane.
#[derive(Debug)]
pub struct LaneReceiver<T> {
    receiver: mpsc::Receiver<(T, usize)>,
    bytes: Arc<AtomicUsize>,
}

/// The two ends of one lane.
pub type Lane<T> = (LaneSender<T>, LaneReceiver<T>);

/// The Raft lane with a budget of `raft_bytes_max` and the request lane with
/// `request_bytes_max`.
pub fn lanes<R, Q>(raft_bytes_max: usize, request_bytes_max: usize) -> (Lane<R>, Lane<Q>) {
    (
        lane(Arc::new(AtomicUsize::new(0)), raft_bytes_max),
        lane(Arc::new(AtomicUsize::new(0)), request_bytes_max),
    )
}

fn lane<T>(bytes: Arc<AtomicUsize>, bytes_max: usize) -> (LaneSender<T>, LaneReceiver<T>) {
    let (sender, receiver) = mpsc::channel(LANE_CAPACITY);
    (
        LaneSender {
            sender,
            bytes: bytes.clone(),
            bytes_max,
        },
        LaneReceiver { receiver, bytes },
    )
}

impl<T> LaneSender<T> {
    /// Queues `item` of `size` bytes without waiting.
    pub fn try_send(&self, item: T, size: usize) -> Result<(), Refused> {
        let before = self.bytes.fetch_add(size, Ordering::AcqRel);
        if before + size > self.bytes_max && before > 0 {
            self.bytes.fetch_sub(size, Ordering::AcqRel);
            return Err(Refused::Full);
        }
        self.sender.try_send((item, size)).map_err(|error| {
            self.bytes.fetch_sub(size, Ordering::AcqRel);
            match error {
                mpsc::error::TrySendError::Full(_) => Refused::Full,
                mpsc::error::TrySendError::Closed(_) => Refused::Closed,
            }
        })
    }

    /// Queues `item`, waiting for room in the lane (used for small control inputs only).
    pub async fn send(&self, item: T) -> Result<(), Refused> {
        self.sender
            .send((item, 0))
            .await
            .map_err(|_| Refused::Closed)
    }

    /// True once the node stopped.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

impl<T> LaneReceiver<T> {
    /// The next input, waiting for one; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<T> {
        let (item, size) = self.receiver.recv().await?;
        self.bytes.fetch_sub(size, Ordering::AcqRel);
        Some(item)
    }

    /// The next input if one is queued.
    pub fn try_recv(&mut self) -> Option<T> {
        let (item, size) = self.receiver.try_recv().ok()?;
        self.bytes.fetch_sub(size, Ordering::AcqRel);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding R6: the lanes used to share one budget, so a flood of requests
    /// filled it and Raft messages (heartbeats) were dropped: elections under load.
    #[test]
    fn each_lane_has_its_own_byte_budget_and_releases_it() {
        let ((raft, mut raft_rx), (requests, mut requests_rx)) = lanes::<u32, u32>(100, 100);
        requests.try_send(1, 90).unwrap();
        assert_eq!(
            requests.try_send(2, 20),
            Err(Refused::Full),
            "request lane full"
        );
        raft.try_send(3, 90).unwrap();
        assert_eq!(
            raft_rx.try_recv(),
            Some(3),
            "raft traffic unaffected by requests"
        );
        assert_eq!(requests_rx.try_recv(), Some(1));
        requests.try_send(4, 90).unwrap();
        assert_eq!(requests_rx.try_recv(), Some(4), "budget released");
        // A single input larger than the budget still passes when nothing else waits.
        raft.try_send(5, 500).unwrap();
        assert_eq!(raft.try_send(6, 1), Err(Refused::Full));
        assert_eq!(raft_rx.try_recv(), Some(5));
    }
}
