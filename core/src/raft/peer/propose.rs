//! Proposals: replicated writes, admin commands and membership changes, checked at the door.

use ferrokv_proto::ferrokv_raftpb::{
    admin_cmd, admin_request, AdminCmd, AdminRequest, CompactLogCmd, ConfChangeContext, RaftCmd,
    WriteOp,
};
use prost::Message as _;
use protobuf::ProtobufEnum as _;
use raft::eraftpb::{ConfChange, ConfChangeType};

use super::{Peer, Proposal};
use crate::env::KvEngine;
use crate::limits;
use crate::raft::apply::{check_ranges_in_region, split_region, write_op_ranges};
use crate::store::{AdminOutcome, RegionError, RequestHeader, Token};
use crate::types::KeyRange;

impl<E: KvEngine> Peer<E> {
    /// Checks leadership and the client's epoch (version only, as TiKV does for data).
    pub(super) fn check_leader_and_epoch(&self, header: &RequestHeader) -> Result<(), RegionError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let current = self.epoch();
        if header.epoch.version != current.version {
            return Err(RegionError::EpochNotMatch {
                message: format!("request epoch {:?}, current {current:?}", header.epoch),
                current: vec![self.region().clone()],
            });
        }
        Ok(())
    }

    fn check_capacity(&self) -> Result<(), RegionError> {
        if self.proposals.len() >= self.config.pending_proposals_max {
            return Err(RegionError::ServerIsBusy(format!(
                "region {} has {} proposals in flight",
                self.region_id,
                self.proposals.len()
            )));
        }
        Ok(())
    }

    fn propose_cmd(&mut self, cmd: &RaftCmd, token: Option<Token>) -> Result<(), RegionError> {
        let data = cmd.encode_to_vec();
        if data.len() > limits::RAFT_ENTRY_BYTES_MAX {
            let entry_bytes = data.len() as u64;
            return Err(RegionError::RaftEntryTooLarge {
                region_id: self.region_id,
                entry_bytes,
            });
        }
        self.raw.propose(Vec::new(), data).map_err(|error| {
            tracing::debug!(region_id = %self.region_id, %error, "proposal dropped");
            self.not_leader()
        })?;
        self.track_proposal(token);
        Ok(())
    }

    fn track_proposal(&mut self, token: Option<Token>) {
        let index = self.raw.raft.raft_log.last_index();
        let term = self.raw.raft.term;
        if let Some(token) = token {
            assert!(
                self.proposals.back().is_none_or(|p| p.index < index),
                "proposal order"
            );
            self.proposals.push_back(Proposal { index, term, token });
        }
    }

    /// Proposes client writes; the response comes when they apply.
    pub fn propose_write(
        &mut self,
        token: Token,
        header: &RequestHeader,
        ops: Vec<WriteOp>,
    ) -> Result<(), RegionError> {
        self.check_leader_and_epoch(header)?;
        self.check_capacity()?;
        let ranges: Vec<KeyRange> = ops.iter().flat_map(write_op_ranges).collect();
        check_ranges_in_region(&ranges, self.region())?;
        let cmd = RaftCmd {
            region_id: self.region_id.get(),
            region_epoch: self.region().region_epoch,
            writes: ops,
            admin: None,
        };
        self.propose_cmd(&cmd, Some(token))
    }

    /// Starts an admin command. `Ok(Some(_))` means it completed at once (leader transfer);
    /// `Ok(None)` means the response comes when it applies.
    pub fn propose_admin(
        &mut self,
        token: Token,
        request: AdminRequest,
    ) -> Result<Option<AdminOutcome>, RegionError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        self.check_capacity()?;
        match request.cmd {
            Some(admin_request::Cmd::Split(split)) => {
                split_region(self.region(), &split)?;
                let admin = AdminCmd {
                    cmd: Some(admin_cmd::Cmd::Split(split)),
                };
                self.propose_admin_cmd(admin, Some(token))?;
                Ok(None)
            }
            Some(admin_request::Cmd::CompactLog(compact)) => {
                self.check_compact(&compact)?;
                let admin = AdminCmd {
                    cmd: Some(admin_cmd::Cmd::CompactLog(compact)),
                };
                self.propose_admin_cmd(admin, Some(token))?;
                Ok(None)
            }
            Some(admin_request::Cmd::ChangePeer(change)) => {
                self.propose_change_peer(token, change)?;
                Ok(None)
            }
            Some(admin_request::Cmd::TransferLeaderToPeer(peer_id)) => {
                if !self.region().peers.iter().any(|peer| peer.id == peer_id) {
                    return Err(RegionError::Invalid(format!(
                        "peer {peer_id} is not a member"
                    )));
                }
                self.lease_until = None;
                self.raw.transfer_leader(peer_id);
                Ok(Some(AdminOutcome {
                    regions: vec![self.region().clone()],
                }))
            }
            None => Err(RegionError::Invalid("empty admin request".into())),
        }
    }

    fn propose_admin_cmd(
        &mut self,
        admin: AdminCmd,
        token: Option<Token>,
    ) -> Result<(), RegionError> {
        let cmd = RaftCmd {
            region_id: self.region_id.get(),
            region_epoch: self.region().region_epoch,
            writes: Vec::new(),
            admin: Some(admin),
        };
        self.propose_cmd(&cmd, token)
    }

    fn check_compact(&self, compact: &CompactLogCmd) -> Result<(), RegionError> {
        let truncated = self.raw.store().truncated().index;
        let applied = self.applied_index();
        if compact.compact_index <= truncated || compact.compact_index > applied {
            return Err(RegionError::Invalid(format!(
                "compact index {} outside ({truncated}, {applied}]",
                compact.compact_index
            )));
        }
        Ok(())
    }

    fn propose_change_peer(
        &mut self,
        token: Token,
        change: ferrokv_proto::ferrokv_raftpb::ChangePeerRequest,
    ) -> Result<(), RegionError> {
        let peer = change
            .peer
            .ok_or_else(|| RegionError::Invalid("no peer".into()))?;
        let change_type = ConfChangeType::from_i32(change.change_type)
            .ok_or_else(|| RegionError::Invalid(format!("change type {}", change.change_type)))?;
        if change_type == ConfChangeType::RemoveNode && peer.id == self.peer_id.get() {
            return Err(RegionError::Invalid(
                "transfer leadership before removing the leader".into(),
            ));
        }
        let context = ConfChangeContext {
            region_epoch: self.region().region_epoch,
            peer: Some(peer),
        };
        let mut conf_change = ConfChange::default();
        conf_change.set_change_type(change_type);
        conf_change.node_id = peer.id;
        conf_change.context = context.encode_to_vec().into();
        self.peer_cache.insert(peer.id, peer);
        self.raw
            .propose_conf_change(Vec::new(), conf_change)
            .map_err(|error| RegionError::Invalid(format!("conf change refused: {error}")))?;
        self.track_proposal(Some(token));
        Ok(())
    }

    /// On a leader, proposes compacting the applied log when it has grown past the GC
    /// threshold: up to the slowest follower, or past it when the log is over its limits.
    pub(super) fn maybe_compact_log(&mut self) {
        if !self.is_leader() {
            return;
        }
        let truncated = self.raw.store().truncated().index;
        let applied = self.applied_index();
        if applied.saturating_sub(truncated) < self.config.log_gc_count_threshold {
            return;
        }
        let slowest = self
            .raw
            .raft
            .prs()
            .iter()
            .map(|(_, progress)| progress.matched)
            .min();
        let over_limit = applied - truncated > self.config.log_gc_count_limit
            || self.raw.store().entry_bytes() > self.config.log_gc_bytes_limit;
        let compact_index = if over_limit {
            applied
        } else {
            slowest.unwrap_or(applied).min(applied)
        };
        if compact_index <= truncated {
            return;
        }
        let Ok(compact_term) = self.raw.raft.raft_log.term(compact_index) else {
            return;
        };
        let compact = CompactLogCmd {
            compact_index,
            compact_term,
        };
        let admin = AdminCmd {
            cmd: Some(admin_cmd::Cmd::CompactLog(compact)),
        };
        if let Err(error) = self.propose_admin_cmd(admin, None) {
            tracing::debug!(region_id = %self.region_id, %error, "log compaction not proposed");
        }
    }
}
