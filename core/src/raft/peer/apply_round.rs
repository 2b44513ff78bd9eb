//! Applying one round of committed entries and answering their proposals.

use ferrokv_proto::ferrokv_raftpb::{admin_cmd, ConfChangeContext, RaftCmd};
use ferrokv_proto::metapb;
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry, EntryType};

use super::Peer;
use crate::env::KvEngine;
use crate::raft::apply::{self, ApplyContext};
use crate::raft::effects::{Effects, PeerEvent};
use crate::raft::storage::stage_initial_region;
use crate::store::{AdminOutcome, RegionError, Response, Token, WriteOutcome};
use crate::types::RegionEpoch;

/// What one applied entry answers, if anyone waits for it.
enum Answer {
    Write(Result<WriteOutcome, RegionError>),
    Admin(Result<AdminOutcome, RegionError>),
    Nothing,
}

impl<E: KvEngine> Peer<E> {
    pub(super) fn apply_committed(&mut self, entries: Vec<Entry>, effects: &mut Effects) {
        let Some(last) = entries.last() else { return };
        let (last_index, last_term) = (last.index, last.term);
        let view = self.raw.store().engine().snapshot();
        let mut region = self.region().clone();
        let mut region_changed = false;
        let mut answers = Vec::with_capacity(entries.len());
        {
            let mut ctx = ApplyContext::new(&view, &mut effects.apply);
            for entry in &entries {
                let answer = match entry.get_entry_type() {
                    EntryType::EntryNormal => self.apply_normal(
                        &mut ctx,
                        &mut region,
                        &mut region_changed,
                        entry,
                        &mut effects.events,
                        &mut effects.apply_sync,
                    ),
                    EntryType::EntryConfChange => {
                        self.apply_conf_change(&mut region, &mut region_changed, entry)
                    }
                    EntryType::EntryConfChangeV2 => {
                        panic!("region {}: ConfChangeV2 is never proposed", self.region_id)
                    }
                };
                crate::types::fnv::fold_u64(&mut self.trace, entry.index);
                crate::types::fnv::fold_u64(&mut self.trace, entry.term);
                answers.push((entry.index, entry.term, answer));
            }
        }
        let storage = self.raw.mut_store();
        storage.set_applied(last_index, last_term, region_changed.then_some(region));
        storage.stage_apply(&mut effects.apply);
        self.raw.advance_apply_to(last_index);
        if region_changed {
            self.refresh_peer_cache();
        }
        for (index, term, answer) in answers {
            self.answer(index, term, answer, &mut effects.responses);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_normal<S: crate::env::Snapshot>(
        &mut self,
        ctx: &mut ApplyContext<'_, S>,
        region: &mut metapb::Region,
        region_changed: &mut bool,
        entry: &Entry,
        events: &mut Vec<PeerEvent>,
        apply_sync: &mut bool,
    ) -> Answer {
        if entry.data.is_empty() {
            return Answer::Nothing; // a new leader's no-op
        }
        let cmd = RaftCmd::decode(entry.data.as_ref()).unwrap_or_else(|e| {
            panic!(
                "region {}: committed entry {} undecodable: {e}",
                self.region_id, entry.index
            )
        });
        let Some(admin) = cmd.admin.as_ref().and_then(|admin| admin.cmd.as_ref()) else {
            return Answer::Write(apply::apply_writes(ctx, region, &cmd));
        };
        match admin {
            admin_cmd::Cmd::Split(split) => {
                let result = apply::split_region(region, split);
                let answer = result.map(|(left, right)| {
                    stage_initial_region(&right, ctx.batch);
                    *region = left.clone();
                    *region_changed = true;
                    events.push(PeerEvent::Split {
                        new_region: right.clone(),
                    });
                    AdminOutcome {
                        regions: vec![left, right],
                    }
                });
                Answer::Admin(answer)
            }
            admin_cmd::Cmd::CompactLog(compact) => {
                let truncated = self.raw.store().truncated().index;
                if compact.compact_index > truncated {
                    self.raw.mut_store().compact_to(
                        compact.compact_index,
                        compact.compact_term,
                        ctx.batch,
                    );
                    *apply_sync = true;
                }
                Answer::Admin(Ok(AdminOutcome {
                    regions: vec![region.clone()],
                }))
            }
        }
    }

    fn apply_conf_change(
        &mut self,
        region: &mut metapb::Region,
        region_changed: &mut bool,
        entry: &Entry,
    ) -> Answer {
        let change = ConfChange::parse_from_bytes(&entry.data)
            .unwrap_or_else(|e| panic!("region {}: conf change undecodable: {e}", self.region_id));
        let context = ConfChangeContext::decode(change.context.as_ref()).unwrap_or_default();
        let proposed = RegionEpoch::from(context.region_epoch);
        let current = RegionEpoch::from(region.region_epoch);
        if proposed.conf_ver != current.conf_ver {
            let message = format!("conf change proposed under {proposed:?}, now {current:?}");
            return Answer::Admin(Err(RegionError::EpochNotMatch {
                message,
                current: vec![region.clone()],
            }));
        }
        let store_id = context.peer.as_ref().map_or(0, |peer| peer.store_id);
        *region = apply::change_peer(region, &change, store_id);
        *region_changed = true;
        if let Err(error) = self.raw.apply_conf_change(&change) {
            panic!(
                "region {}: raft refused a committed conf change: {error}",
                self.region_id
            );
        }
        let removed_self = change.get_change_type() == ConfChangeType::RemoveNode
            && change.node_id == self.peer_id.get();
        if removed_self {
            self.removed = true;
        }
        Answer::Admin(Ok(AdminOutcome {
            regions: vec![region.clone()],
        }))
    }

    /// Matches an applied entry to its proposal: same index and term answers it; proposals
    /// at earlier indexes, or at this index from another term, were dropped.
    fn answer(&mut self, index: u64, term: u64, answer: Answer, out: &mut Vec<(Token, Response)>) {
        let mut answer = Some(answer);
        while let Some(front) = self.proposals.front() {
            if front.index > index {
                break;
            }
            let proposal = self.proposals.pop_front().expect("checked non-empty");
            let matched = proposal.index == index && proposal.term == term;
            let response = match (matched, answer.take()) {
                (true, Some(Answer::Write(result))) => Response::Write(result),
                (true, Some(Answer::Admin(result))) => Response::Admin(result),
                _ => Response::Write(Err(RegionError::StaleCommand)),
            };
            out.push((proposal.token, response));
            if proposal.index == index {
                break;
            }
        }
    }
}
