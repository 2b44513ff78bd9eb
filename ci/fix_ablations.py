#!/usr/bin/env python3
# Shows that each issue-12 regression test fails without its fix: for every fix, patch the
# fix out, run its test, expect a failure, restore the file. Run from anywhere:
#   python3 ci/fix_ablations.py [name-filter...]
# A "pattern not found" line means the code moved: update the pattern, not the test.
import subprocess, sys, shutil, os
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
ablations = [
 ("1 compact term", "core/src/raft/peer/apply_round.rs",
  "        let term = if planted::active(PlantedBug::CompactLogCallerTerm) {",
  "        let term = if true {",
  "core/src/raft/peer/propose.rs",
  "        if planted::active(PlantedBug::CompactLogCallerTerm) {\n            return Ok(());",
  "        if true {\n            return Ok(());",
  "sim", "replication_defects", "compact_log_naming_another_term_is_refused"),
 ("2a reads on step-down", "core/src/raft/peer/mod.rs",
  "                self.fail_unconfirmed_reads();", "                // ablated", None, None, None,
  "sim", "replication_defects", "reads_waiting_on_a_deposed_leader"),
 ("2b delayed TimeoutNow", "core/src/raft/peer/propose.rs",
  "        self.lease.forbid_term(self.term());", "        self.lease.clear();", None, None, None,
  "sim", "replication_defects", "a_delayed_timeout_now"),
 ("3 snapshot unknown", "core/src/raft/peer/proposals.rs",
  '                Settled::Unknown("a snapshot replaced the log that held its entry"),', "                Settled::Stale,", None, None, None,
  "sim", "replication_defects", "a_proposal_covered_by_a_snapshot"),
 ("7a idle region", "core/src/raft/peer/proposals.rs",
  "            settled.push((proposal.token, outcome));\n        }\n        settled.extend(self.drop_lower_terms(term));",
  "            settled.push((proposal.token, outcome));\n        }", None, None, None,
  "sim", "replication_defects", "a_proposal_on_an_idle_region"),
 ("7c deadlines", "core/src/store/drive.rs",
  "        let expired = self.deadlines.expire(self.now);", "        let expired: Vec<(Token, Response)> = Vec::new();", None, None, None,
  "sim", "replication_defects", "a_write_no_quorum_can_commit"),
 ("8 slow snapshot", "sim/src/harness/mod.rs",
  "        self.deliver_snapshot_reports();", "        let _ = self.network.take_snapshot_reports();",
  "core/src/raft/config.rs", "            snapshot_report_timeout: Duration::from_secs(60),", "            snapshot_report_timeout: Duration::from_secs(2),",
  "sim", "replication_defects", "a_slow_snapshot_is_sent_once"),
 ("10 byte bounds", "core/src/raft/peer/mod.rs",
  "            max_uncommitted_size: limits::RAFT_UNCOMMITTED_BYTES_MAX,", "            max_uncommitted_size: u64::MAX,",
  "core/src/raft/config.rs", "            pending_proposal_bytes_max: limits::PROPOSAL_QUEUE_BYTES_MAX,", "            pending_proposal_bytes_max: usize::MAX / 2,",
  "sim", "replication_defects", "uncommitted_bytes_are_bounded"),
 ("12 stale peers", "core/src/store/route.rs",
  "        if message.is_tombstone {\n            self.on_tombstone(&message, &to_peer);\n            return;\n        }",
  "        if message.is_tombstone {\n            return;\n        }", None, None, None,
  "sim", "replication_defects", "a_peer_removed_while_partitioned"),
 ("vopr 4/5 snapshot applied", "core/src/raft/peer/ready.rs",
  "                self.raw.advance_apply_to(index);", "                let _ = index;", None, None, None,
  "sim", "replication_defects", "a_peer_caught_up_by_a_snapshot_can_campaign"),
 ("6 replay compaction", "core/src/raft/peer/apply_round.rs",
  "                self.raw\n                    .mut_store()\n                    .advance_applied(entry.index, entry.term);\n",
  "", "core/src/raft/peer/apply_round.rs",
  "        let storage = self.raw.mut_store();\n        if round.changed {",
  "        for entry in &entries { self.raw.mut_store().advance_applied(entry.index, entry.term); }\n        let storage = self.raw.mut_store();\n        if round.changed {",
  "core", None, "replay_of_a_backlog"),
 ("9 peer creation fsync", "core/src/store/route.rs",
  "        write_region_state(\n            &region,\n            PeerState::Applying,\n            to_peer.id,\n            &mut self.pending_persist,\n        );",
  "        let mut batch = crate::env::WriteBatch::new(); write_region_state(&region, PeerState::Applying, to_peer.id, &mut batch); crate::env::KvEngine::write(&self.engine, &batch, crate::env::WriteOptions::SYNC)?;", None, None, None,
  "core", None, "a_peer_created_by_a_message"),
 ("4a conf change check", "core/src/raft/peer/propose.rs",
  "        raft::Changer::new(self.raw.raft.prs())\n            .simple(&[single])\n            .map_err(|error| invalid(format!(\"membership change refused: {error}\")))?;",
  "        let _ = single;", "core/src/raft/peer/propose.rs",
  "        if on_self && change_type != ConfChangeType::AddNode {", "        if false {",
  "core", None, "demoting_the_sole_voter"),
 ("4b split id check", "core/src/store/fsm.rs",
  "        if let Some(error) = self.check_admin(&request) {", "        if let Some(error) = None::<RegionError> {", None, None, None,
  "core", None, "a_split_into_an_existing_region_id"),
 ("vopr 55 cached snapshot membership", "core/src/raft/storage.rs",
  "            if meta.index >= floor && names_target {", "            if meta.index >= floor {", None, None, None,
  "sim", "replication_defects", "a_peer_added_after_a_snapshot_was_cached"),
 ("R1 split target keeps its vote", "core/src/store/lifecycle.rs",
  "            hard_state = split_target_hard_state(existing.hard_state());",
  "            hard_state.term = hard_state.term.max(existing.term());", None, None, None,
  "core", None, "a_split_target_keeps_the_vote"),
 ("R2a peer never moves (propose)", "core/src/raft/peer/propose.rs",
  "        if let Some(moved) = apply::moves_a_peer(self.region(), peer.id, peer.store_id) {",
  "        if let Some(moved) = None::<String> {", None, None, None,
  "core", None, "a_change_peer_moving_a_member_to_another_store"),
 ("R2b peer never moves (apply)", "core/src/raft/peer/apply_round.rs",
  "        if let Some(moved) = apply::moves_a_peer(&round.region, change.node_id, store_id) {",
  "        if let Some(moved) = None::<String> {", None, None, None,
  "core", None, "a_committed_change_peer_moving_a_member"),
 ("R3a refusals before staging", "core/src/raft/apply.rs",
  "                if !range.end_key.is_empty() && range.start_key > range.end_key =>",
  "                if false =>", None, None, None,
  "core", None, "a_committed_inverted_delete_range"),
 ("R3b storage errors stop the store", "core/src/raft/apply.rs",
  "    stage_writes(ctx, cmd).map(Ok)", "    Ok(stage_writes(ctx, cmd).map_err(RegionError::from))", None, None, None,
  "core", None, "a_storage_error_while_applying"),
 ("R4 restarted peers keep the vote promise", "core/src/raft/peer/mod.rs",
  "            self.restart_vote_guard = self.config.election_tick;",
  "            self.restart_vote_guard = 0;", None, None, None,
  "core", None, "a_restarted_follower_ignores_votes"),
 ("R4b restart guard end to end", "core/src/raft/peer/mod.rs",
  "            self.restart_vote_guard = self.config.election_tick;",
  "            self.restart_vote_guard = 0;", None, None, None,
  "sim", "replication_defects", "a_restarted_follower_never_lets_a_lease_read_go_stale"),
 ("R7 refused snapshot reported", "core/src/store/drive.rs",
  "            if is_snapshot {\n", "            if false && is_snapshot {\n", None, None, None,
  "sim", "replication_defects", "a_snapshot_the_transport_refuses_is_retried_soon"),
 ("R6 lane budgets", "server/src/node/mailbox.rs",
  "    (\n        lane(Arc::new(AtomicUsize::new(0)), raft_bytes_max),\n        lane(Arc::new(AtomicUsize::new(0)), request_bytes_max),\n    )",
  "    let shared = Arc::new(AtomicUsize::new(0));\n    (lane(shared.clone(), raft_bytes_max), lane(shared, request_bytes_max))", None, None, None,
  "server", None, "each_lane_has_its_own_byte_budget"),
 ("R12 snapshot receive budget", "server/src/snapshot_chunks.rs",
  "        } else if self.held_bytes + size > self.held_bytes_max {", "        } else if false {", None, None, None,
  "server", None, "transfers_together_stay_within_the_byte_budget"),
 ("R8 compaction waits for a snapshot in flight", "core/src/raft/peer/propose.rs",
  "            applied.min(self.lowest_pending_snapshot().unwrap_or(applied))", "            applied", None, None, None,
  "sim", "replication_defects", "compaction_under_load_never_outruns"),
 ("R8b a stuck snapshot holds the log only so far", "core/src/raft/peer/propose.rs",
  "        let compact_index = if over_limits(2) {", "        let compact_index = if false {", None, None, None,
  "sim", "replication_defects", "a_snapshot_stuck_in_flight"),
 ("R14b displaced proposals", "core/src/raft/peer/proposals.rs",
  "            .is_some_and(|last| last.index >= proposal.index)\n",
  "            .is_some_and(|last| last.index >= proposal.index && false)\n", None, None, None,
  "core", None, "displaces_older_term_proposals"),
 ("R11 no renewal rounds without leases", "core/src/raft/peer/read.rs",
  "            !self.lease.can_earn(self.term()) ||", "            false &&", None, None, None,
  "sim", "replication_defects", "no_lease_renewal_rounds"),
 ("vopr 13 destroyed peer id", "core/src/store/route.rs",
  "conf_ver(message.region_epoch) <= conf_ver(region.region_epoch) || to_peer <= *peer_id",
  "conf_ver(message.region_epoch) <= conf_ver(region.region_epoch) && to_peer > 0", None, None, None,
  "core", None, "a_destroyed_peer_id_is_never_recreated"),
]
only = sys.argv[1:]
results = []
for a in ablations:
    name, f1, old1, new1, f2, old2, new2, crate, test, filt = a
    if only and not any(o in name for o in only): continue
    files = {}
    ok = True
    for f, o, n in [(f1, old1, new1), (f2, old2, new2)]:
        if f is None: continue
        s = files.get(f) or open(f).read()
        if o not in s:
            print(f"{name}: pattern not found in {f}"); ok=False; break
        files[f] = s.replace(o, n, 1)
    if not ok: continue
    backups = {f: open(f).read() for f in files}
    try:
        for f, s in files.items(): open(f,'w').write(s)
        if crate == "sim":
            cmd = ["cargo","test","-p","ferrokv-sim","--test",test,filt]
        elif crate == "server":
            cmd = ["cargo","test","-p","ferrokv-server","--lib",filt]
        else:
            cmd = ["cargo","test","-p","ferrokv-core","--lib",filt]
        # RocksDB's bindgen needs libclang (ci/libclang.sh): without it cargo reruns and
        # fails librocksdb-sys's build script, and the next build with it redoes RocksDB.
        shell = ". ci/libclang.sh >/dev/null && CARGO_INCREMENTAL=0 " + " ".join(cmd)
        r = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=1800)
        out = r.stdout + r.stderr
        failed = [l for l in out.splitlines()
                  if l.startswith("test ") and filt in l and l.endswith("FAILED")]
        if failed:
            verdict = "FAILS without the fix"
        elif "error[" in out or "error: could not compile" in out:
            verdict = "does not compile without the fix (!)"
        else:
            verdict = "still passes (!)"
        print(f"{name}: {verdict} :: {failed[:1]}")
        results.append(verdict.startswith("FAILS"))
    finally:
        for f, s in backups.items(): open(f,'w').write(s)
print(f"{sum(results)}/{len(results)} fixes shown necessary by their tests")
sys.exit(0 if all(results) else 1)
