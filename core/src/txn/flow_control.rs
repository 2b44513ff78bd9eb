//! Admission bounds for write commands: how many may be pending and how many key and value
//! bytes they may carry. Past either bound a new command is refused with `ServerIsBusy`
//! instead of growing memory (TigerStyle: a limit on everything).
//!
//! - **Inputs**: a command's byte size on admission; its ticket on completion.
//! - **Outputs**: an [`Admission`] ticket, or [`Busy`].
//! - **Invariants**: the counters never exceed their maxima and never underflow (asserted);
//!   every admitted command releases exactly its own ticket.

use crate::limits;

/// A new command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    /// Too many commands pending.
    #[error("{pending} write commands pending")]
    TooManyCommands { pending: usize },
    /// Pending commands carry too many bytes.
    #[error("{pending_bytes} bytes of write commands pending")]
    TooManyBytes { pending_bytes: usize },
}

/// Proof of admission; give it back to [`FlowControl::release`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an admitted command must release its ticket"]
pub struct Admission {
    bytes: usize,
}

/// Pending-command accounting.
#[derive(Debug)]
pub struct FlowControl {
    commands_max: usize,
    bytes_max: usize,
    pending: usize,
    pending_bytes: usize,
}

impl FlowControl {
    /// Bounds at most the `limits` defaults.
    pub fn new(commands_max: usize, bytes_max: usize) -> FlowControl {
        assert!(commands_max > 0 && commands_max <= limits::SCHEDULER_PENDING_COMMANDS_MAX);
        assert!(bytes_max > 0 && bytes_max <= limits::SCHEDULER_PENDING_BYTES_MAX);
        FlowControl {
            commands_max,
            bytes_max,
            pending: 0,
            pending_bytes: 0,
        }
    }

    /// With the `limits` defaults.
    pub fn with_default_limits() -> FlowControl {
        FlowControl::new(
            limits::SCHEDULER_PENDING_COMMANDS_MAX,
            limits::SCHEDULER_PENDING_BYTES_MAX,
        )
    }

    /// Admits a command of `bytes`, or refuses it. A single command larger than the byte
    /// bound is admitted only when nothing else is pending, so it cannot starve.
    pub fn admit(&mut self, bytes: usize) -> Result<Admission, Busy> {
        if self.pending >= self.commands_max {
            return Err(Busy::TooManyCommands {
                pending: self.pending,
            });
        }
        let over_bytes = self.pending_bytes.saturating_add(bytes) > self.bytes_max;
        if over_bytes && self.pending > 0 {
            return Err(Busy::TooManyBytes {
                pending_bytes: self.pending_bytes,
            });
        }
        self.pending += 1;
        self.pending_bytes += bytes;
        assert!(self.pending <= self.commands_max);
        Ok(Admission { bytes })
    }

    /// The command finished (answered or failed).
    pub fn release(&mut self, admission: Admission) {
        assert!(self.pending > 0, "release without admission");
        assert!(
            self.pending_bytes >= admission.bytes,
            "released more bytes than admitted"
        );
        self.pending -= 1;
        self.pending_bytes -= admission.bytes;
    }

    /// Commands pending.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Bytes pending.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_either_bound() {
        let mut flow = FlowControl::new(2, 100);
        let first = flow.admit(60).unwrap();
        assert_eq!(
            flow.admit(50),
            Err(Busy::TooManyBytes { pending_bytes: 60 })
        );
        let second = flow.admit(40).unwrap();
        assert_eq!(flow.admit(0), Err(Busy::TooManyCommands { pending: 2 }));
        flow.release(first);
        assert_eq!((flow.pending(), flow.pending_bytes()), (1, 40));
        flow.release(second);
        let huge = flow.admit(1000).expect("alone, a big command still runs");
        assert!(flow.admit(1).is_err());
        flow.release(huge);
        assert_eq!(flow.pending_bytes(), 0);
    }
}
