//! Executing PD's instructions (`RegionHeartbeatResponse`) on the local node, and splits.
//!
//! Each instruction is checked against the region as this store has it now: it must name
//! the region's current epoch (PD builds it from the leader's report; a stale instruction
//! is ignored, PD re-sends on a later heartbeat) and this store must lead the region. Then:
//! - `change_peer` -> admin `ChangePeer` (AddNode on an existing learner promotes it);
//! - `transfer_leader` -> admin `TransferLeaderToPeer`;
//! - `split_region` -> a split at the given key, or at the middle key measured now.
//!
//! Peer GC: a `change_peer { RemoveNode }` aimed at this store's own peer (`target_peer`)
//! with a newer `conf_ver` than the local one is PD saying the peer was removed while it
//! was away; it is turned into the store's own stale-peer path, a tombstone `RaftMessage`
//! (the store destroys the peer only if the conf version is newer).

use ferrokv_core::env::KvEngine;
use ferrokv_core::store::{Request, Response};
use ferrokv_proto::eraftpb::ConfChangeType;
use ferrokv_proto::ferrokv_raftpb::{
    admin_request, AdminRequest, ChangePeerRequest, RaftMessage, SplitCmd,
};
use ferrokv_proto::{metapb, pdpb};

use super::worker::PdWorker;

fn same_epoch(a: Option<metapb::RegionEpoch>, b: Option<metapb::RegionEpoch>) -> bool {
    a.unwrap_or_default() == b.unwrap_or_default()
}

impl<E: KvEngine> PdWorker<E> {
    /// Executes one instruction from PD.
    pub(super) async fn execute(&self, response: pdpb::RegionHeartbeatResponse) {
        if response.region_id == 0 {
            return; // a header-only answer (an error or a keep-alive)
        }
        let Some(regions) = self.regions().await else {
            return;
        };
        let Some(status) = regions
            .into_iter()
            .find(|status| status.region.id == response.region_id)
        else {
            return;
        };
        if let Some(change) = &response.change_peer {
            if self.is_destroy_order(&status.region, &response, change) {
                self.destroy_stale_peer(&status.region, &response);
                return;
            }
        }
        if !status.is_leader || !same_epoch(status.region.region_epoch, response.region_epoch) {
            return;
        }
        let region = status.region;
        let outcome = if let Some(change) = response.change_peer {
            self.admin(
                region.id,
                admin_request::Cmd::ChangePeer(ChangePeerRequest {
                    change_type: change.change_type,
                    peer: change.peer,
                }),
            )
            .await
            .map(|_| ())
        } else if let Some(transfer) = response.transfer_leader {
            self.transfer_leader(region.id, transfer).await
        } else if let Some(split) = response.split_region {
            self.split_for_pd(region, split).await
        } else {
            Ok(())
        };
        if let Err(error) = outcome {
            tracing::info!(region_id = response.region_id, %error, "PD instruction failed");
        }
    }

    /// Hands leadership to the first of PD's candidates (`peers`, else `peer`) the leader
    /// finds ready (it refuses one it has not heard from lately or that trails its log).
    async fn transfer_leader(
        &self,
        region_id: u64,
        transfer: pdpb::TransferLeader,
    ) -> Result<(), String> {
        let mut candidates = transfer.peers;
        if candidates.is_empty() {
            candidates.extend(transfer.peer);
        }
        let mut refusals = Vec::new();
        for candidate in candidates {
            let cmd = admin_request::Cmd::TransferLeaderToPeer(candidate.id);
            match self.admin(region_id, cmd).await {
                Ok(_) => return Ok(()),
                Err(error) => refusals.push(error.to_string()),
            }
        }
        Err(format!(
            "no candidate took leadership: {}",
            refusals.join("; ")
        ))
    }

    fn is_destroy_order(
        &self,
        local: &metapb::Region,
        response: &pdpb::RegionHeartbeatResponse,
        change: &pdpb::ChangePeer,
    ) -> bool {
        let (Some(target), Some(peer)) = (response.target_peer, change.peer) else {
            return false;
        };
        let newer = response.region_epoch.unwrap_or_default().conf_ver
            > local.region_epoch.unwrap_or_default().conf_ver;
        change.change_type == ConfChangeType::RemoveNode as i32
            && target == peer
            && peer.store_id == self.store_id
            && newer
    }

    fn destroy_stale_peer(&self, local: &metapb::Region, response: &pdpb::RegionHeartbeatResponse) {
        let tombstone = RaftMessage {
            region_id: local.id,
            from_peer: None,
            to_peer: response.target_peer,
            region_epoch: response.region_epoch,
            message: Vec::new(),
            start_key: local.start_key.clone(),
            end_key: local.end_key.clone(),
            is_tombstone: true,
            is_snapshot: false,
        };
        tracing::info!(
            region_id = local.id,
            "PD says this peer was removed; destroying it"
        );
        if let Err(error) = self.node.raft_message(tombstone) {
            tracing::warn!(%error, "could not deliver the destroy order");
        }
    }

    async fn admin(
        &self,
        region_id: u64,
        cmd: admin_request::Cmd,
    ) -> Result<Vec<metapb::Region>, String> {
        let request = AdminRequest {
            region_id,
            cmd: Some(cmd),
        };
        match self.node.request(Request::Admin(request)).await {
            Ok(Response::Admin(Ok(outcome))) => Ok(outcome.regions),
            Ok(Response::Admin(Err(error))) => Err(error.to_string()),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(error) => Err(error.to_string()),
        }
    }

    async fn split_for_pd(
        &self,
        region: metapb::Region,
        split: pdpb::SplitRegion,
    ) -> Result<(), String> {
        let key = match split.keys.into_iter().next() {
            Some(key) => key,
            None => {
                let measured = self.measure(&region).await.ok_or("measuring failed")?;
                measured.split_key.ok_or("no key to split at")?
            }
        };
        self.split(region, key).await
    }

    /// Splits `region` at `key`: ids from PD, the admin split, then the report.
    pub(super) async fn split(&self, region: metapb::Region, key: Vec<u8>) -> Result<(), String> {
        let ids = self
            .pd
            .ask_batch_split(region.clone(), 1)
            .await
            .map_err(|e| e.to_string())?;
        let id = ids.into_iter().next().ok_or("no split ids")?;
        let split = SplitCmd {
            split_key: key,
            new_region_id: id.new_region_id,
            new_peer_ids: id.new_peer_ids,
        };
        let regions = self
            .admin(region.id, admin_request::Cmd::Split(split))
            .await?;
        tracing::info!(
            region_id = region.id,
            new_region_id = id.new_region_id,
            "split"
        );
        if regions.len() >= 2 {
            if let Err(error) = self.pd.report_batch_split(regions).await {
                tracing::debug!(%error, "split report failed");
            }
        }
        Ok(())
    }
}
