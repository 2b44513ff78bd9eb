//! Proposals: the one effect the leader-side core emits.
//!
//! Leader-memory components never change replicated state themselves. When they need a
//! change (a new id or TSO limit, new region metadata) they push a `PdCommand` here; the
//! driver proposes each through Raft in order and, once committed, feeds it to
//! `PdState::apply` on every member and to `PdLeader::on_applied` on the leader. A proposal
//! Raft dropped must be reported with `PdLeader::on_proposal_dropped`.

use crate::state::PdCommand;

/// Commands to propose, in order.
#[derive(Debug, Default, Clone, PartialEq)]
#[must_use = "proposals must be handed to Raft"]
pub struct Proposals {
    commands: Vec<PdCommand>,
}

impl Proposals {
    /// No proposals.
    pub fn new() -> Proposals {
        Proposals::default()
    }

    /// Queues `command`.
    pub fn push(&mut self, command: PdCommand) {
        self.commands.push(command);
    }

    /// Takes every queued command, oldest first.
    pub fn drain(&mut self) -> Vec<PdCommand> {
        std::mem::take(&mut self.commands)
    }

    /// The queued commands.
    pub fn commands(&self) -> &[PdCommand] {
        &self.commands
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}
