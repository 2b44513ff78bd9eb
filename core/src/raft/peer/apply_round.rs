//! Applying one round of committed entries and answering their proposals.
//!
//! Nothing that committed may panic here: every command is checked again, deterministically
//! (all replicas hold the same log and applied state, so all reach the same verdict), and a
//! command that cannot apply is answered with an error and changes nothing. The applied
//! index advances entry by entry, so a CompactLog late in a round sees the entries applied
//! before it in the same round (a restart replays a whole backlog in one round).

use ferrokv_proto::ferrokv_raftpb::{admin_cmd, CompactLogCmd, ConfChangeContext, RaftCmd};
use ferrokv_proto::metapb;
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry, EntryType};

use super::proposals::Settled;
use super::Peer;
use crate::env::{EngineError, KvEngine};
use crate::planted::{self, PlantedBug};
use crate::raft::apply::{self, ApplyContext};
use crate::raft::effects::{Effects, PeerEvent};
use crate::store::{AdminOutcome, RegionError, Response, Token, WriteOutcome};
use crate::types::RegionEpoch;

/// What one applied entry answers, if anyone waits for it.
pub(super) enum Answer {
    Write(Result<WriteOutcome, RegionError>),
    Admin(Result<AdminOutcome, RegionError>),
    Nothing,
}

/// The region as it changes during one round.
struct RoundRegion {
    region: metapb::Region,
    changed: bool,
}

impl<E: KvEngine> Peer<E> {
    /// Applies committed entries; a storage error stops the round (and the store): the
    /// entries after the failed one are not applied and nothing of the round is written.
    pub(super) fn apply_committed(
        &mut self,
        entries: Vec<Entry>,
        effects: &mut Effects,
    ) -> Result<(), EngineError> {
        let Some(last) = entries.last() else {
            return Ok(());
        };
        let last_index = last.index;
        assert_eq!(
            entries[0].index,
            self.applied_index() + 1,
            "region {}: committed entries continue the applied log",
            self.region_id
        );
        assert!(
            last_index <= self.commit_index(),
            "applying beyond the commit index"
        );
        let view = self.raw.store().engine().snapshot();
        let mut round = RoundRegion {
            region: self.region().clone(),
            changed: false,
        };
        let mut responses = Vec::new();
        {
            let mut ctx = ApplyContext::new(&view, &mut effects.apply);
            for entry in &entries {
                assert_eq!(
                    entry.index,
                    self.applied_index() + 1,
                    "region {}: entries apply one after another",
                    self.region_id
                );
                assert!(
                    entry.term >= self.applied_term(),
                    "applied terms never decrease"
                );
                let answer = self.apply_entry(
                    &mut ctx,
                    &mut round,
                    entry,
                    &mut effects.events,
                    &mut effects.apply_sync,
                )?;
                self.raw
                    .mut_store()
                    .advance_applied(entry.index, entry.term);
                crate::types::fnv::fold_u64(&mut self.trace, entry.index);
                crate::types::fnv::fold_u64(&mut self.trace, entry.term);
                self.settle_applied(entry.index, entry.term, answer, &mut responses);
            }
        }
        let storage = self.raw.mut_store();
        if round.changed {
            storage.set_region(round.region);
        }
        storage.stage_apply(&mut effects.apply);
        assert_eq!(
            self.applied_index(),
            last_index,
            "the round applied every entry"
        );
        self.raw.advance_apply_to(last_index);
        if round.changed {
            self.refresh_peer_cache();
        }
        effects.responses.append(&mut responses);
        Ok(())
    }

    fn apply_entry<S: crate::env::Snapshot>(
        &mut self,
        ctx: &mut ApplyContext<'_, S>,
        round: &mut RoundRegion,
        entry: &Entry,
        events: &mut Vec<PeerEvent>,
        apply_sync: &mut bool,
    ) -> Result<Answer, EngineError> {
        Ok(match entry.get_entry_type() {
            EntryType::EntryNormal if entry.data.is_empty() => Answer::Nothing, // a leader's no-op
            EntryType::EntryNormal => match RaftCmd::decode(entry.data.as_ref()) {
                Ok(cmd) => self.apply_cmd(ctx, round, &cmd, events, apply_sync)?,
                Err(error) => Answer::Write(Err(RegionError::Invalid(format!(
                    "entry {} does not decode: {error}",
                    entry.index
                )))),
            },
            EntryType::EntryConfChange => self.apply_conf_change(round, entry),
            EntryType::EntryConfChangeV2 => Answer::Admin(Err(RegionError::Invalid(
                "joint membership changes are not proposed by this version".into(),
            ))),
        })
    }

    fn apply_cmd<S: crate::env::Snapshot>(
        &mut self,
        ctx: &mut ApplyContext<'_, S>,
        round: &mut RoundRegion,
        cmd: &RaftCmd,
        events: &mut Vec<PeerEvent>,
        apply_sync: &mut bool,
    ) -> Result<Answer, EngineError> {
        let Some(admin) = cmd.admin.as_ref().and_then(|admin| admin.cmd.as_ref()) else {
            return Ok(Answer::Write(apply::apply_writes(ctx, &round.region, cmd)?));
        };
        Ok(match admin {
            admin_cmd::Cmd::Split(split) => {
                let result = apply::split_region(&round.region, split);
                Answer::Admin(result.map(|(left, right)| {
                    round.region = left.clone();
                    round.changed = true;
                    self.lease.clear();
                    events.push(PeerEvent::Split {
                        new_region: right.clone(),
                    });
                    AdminOutcome {
                        regions: vec![left, right],
                    }
                }))
            }
            admin_cmd::Cmd::CompactLog(compact) => {
                let result = self.apply_compact(compact, ctx.batch, apply_sync);
                Answer::Admin(result.map(|()| AdminOutcome {
                    regions: vec![round.region.clone()],
                }))
            }
        })
    }

    /// Truncates the log up to the requested index with the term the log itself holds
    /// there; a request naming another term is refused (all replicas agree on the term of a
    /// committed index, so all refuse alike).
    fn apply_compact(
        &mut self,
        compact: &CompactLogCmd,
        batch: &mut crate::env::WriteBatch,
        apply_sync: &mut bool,
    ) -> Result<(), RegionError> {
        let (truncated, _) = self.truncated();
        if compact.compact_index <= truncated {
            return Ok(()); // already compacted further (a snapshot arrived meanwhile)
        }
        if compact.compact_index > self.applied_index() {
            return Err(RegionError::Invalid(format!(
                "compact index {} is not applied",
                compact.compact_index
            )));
        }
        let log_term = self
            .log_term(compact.compact_index)
            .expect("an applied, untruncated index is in the log");
        let term = if planted::active(PlantedBug::CompactLogCallerTerm) {
            compact.compact_term
        } else if log_term != compact.compact_term {
            return Err(RegionError::Invalid(format!(
                "compact term {} does not match the log's term {log_term} at index {}",
                compact.compact_term, compact.compact_index
            )));
        } else {
            log_term
        };
        self.raw
            .mut_store()
            .compact_to(compact.compact_index, term, batch);
        *apply_sync = true;
        Ok(())
    }

    fn apply_conf_change(&mut self, round: &mut RoundRegion, entry: &Entry) -> Answer {
        let refused = |message: String| Answer::Admin(Err(RegionError::Invalid(message)));
        let change = match ConfChange::parse_from_bytes(&entry.data) {
            Ok(change) => change,
            Err(error) => return refused(format!("conf change does not decode: {error}")),
        };
        let context = ConfChangeContext::decode(change.context.as_ref()).unwrap_or_default();
        let proposed = RegionEpoch::from(context.region_epoch);
        let current = RegionEpoch::from(round.region.region_epoch);
        if proposed.conf_ver != current.conf_ver {
            let message = format!("conf change proposed under {proposed:?}, now {current:?}");
            return Answer::Admin(Err(RegionError::EpochNotMatch {
                message,
                current: vec![round.region.clone()],
            }));
        }
        let store_id = context.peer.as_ref().map_or(0, |peer| peer.store_id);
        let adds = change.get_change_type() != ConfChangeType::RemoveNode;
        if adds && store_id == 0 {
            return refused("conf change adds a peer without a store".into());
        }
        if let Some(moved) = apply::moves_a_peer(&round.region, change.node_id, store_id) {
            if adds {
                return refused(moved);
            }
        }
        // Raft first: if it refuses, the region stays as it is.
        if let Err(error) = self.raw.apply_conf_change(&change) {
            return refused(format!("raft refused the membership change: {error}"));
        }
        round.region = apply::change_peer(&round.region, &change, store_id);
        round.changed = true;
        self.lease.clear();
        let removed_self = change.get_change_type() == ConfChangeType::RemoveNode
            && change.node_id == self.peer_id.get();
        if removed_self {
            self.removed = true;
        }
        Answer::Admin(Ok(AdminOutcome {
            regions: vec![round.region.clone()],
        }))
    }

    /// Answers proposals settled by the applied entry `(index, term)`.
    fn settle_applied(
        &mut self,
        index: u64,
        term: u64,
        answer: Answer,
        out: &mut Vec<(Token, Response)>,
    ) {
        let mut answer = Some(answer);
        for (token, settled) in self.proposals.on_applied(index, term) {
            let applied = match settled {
                Settled::Applied => answer.take(),
                _ => None,
            };
            out.push((token, self.settled_response(settled, applied)));
        }
    }

    /// The response for a settled proposal; `applied` is the command's result when it applied.
    pub(super) fn settled_response(&self, settled: Settled, applied: Option<Answer>) -> Response {
        match (settled, applied) {
            (Settled::Applied, Some(Answer::Write(result))) => Response::Write(result),
            (Settled::Applied, Some(Answer::Admin(result))) => Response::Admin(result),
            // A proposal matched to a no-op (raft-rs replaced a refused conf change).
            (Settled::Applied, _) | (Settled::Stale, _) => {
                Response::Write(Err(RegionError::StaleCommand))
            }
            (Settled::Unknown(why), _) => {
                Response::Write(Err(RegionError::OutcomeUnknown(why.into())))
            }
        }
    }
}
