//! Operator commands: split a region at a key, move a region's leadership. Both go to the
//! region's leader store (`FerroAdmin.Admin`); a split takes its ids from PD
//! (`AskBatchSplit`) and reports the result (`ReportBatchSplit`), as a store's own split does.

use ferrokv_client::admin::admin;
use ferrokv_client::pd::{strip_scheme, RegionRoute};
use ferrokv_proto::ferrokv_raftpb::{admin_request, AdminRequest, SplitCmd};
use serde_json::json;

use super::output::escape;
use super::Ctx;

async fn leader_address(ctx: &Ctx, route: &RegionRoute) -> Result<String, String> {
    let leader = route
        .leader
        .ok_or_else(|| format!("region {} has no known leader yet", route.region.id))?;
    let store = ctx
        .pd
        .get_store(leader.store_id)
        .await
        .map_err(|e| e.to_string())?;
    Ok(strip_scheme(&store.address).to_string())
}

async fn send(address: &str, region_id: u64, cmd: admin_request::Cmd) -> Result<(), String> {
    let request = AdminRequest {
        region_id,
        cmd: Some(cmd),
    };
    let response = admin(address, request).await?;
    if response.error.is_empty() {
        Ok(())
    } else {
        Err(response.error)
    }
}

pub async fn split(ctx: &Ctx, key: &[u8]) -> Result<(), String> {
    let route = ctx
        .pd
        .get_region(key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no region holds this key yet")?;
    if route.region.start_key == key {
        return Err(format!(
            "region {} already starts at this key",
            route.region.id
        ));
    }
    let address = leader_address(ctx, &route).await?;
    let ids = ctx
        .pd
        .ask_batch_split(route.region.clone(), 1)
        .await
        .map_err(|e| e.to_string())?;
    let id = ids.into_iter().next().ok_or("PD gave no split ids")?;
    let new_region_id = id.new_region_id;
    let cmd = admin_request::Cmd::Split(SplitCmd {
        split_key: key.to_vec(),
        new_region_id,
        new_peer_ids: id.new_peer_ids,
    });
    send(&address, route.region.id, cmd).await?;
    if ctx.json {
        println!(
            "{}",
            json!({"region_id": route.region.id, "new_region_id": new_region_id})
        );
    } else {
        println!(
            "split region {} at {:?}: new region {new_region_id}",
            route.region.id,
            escape(key)
        );
    }
    Ok(())
}

pub async fn transfer_leader(ctx: &Ctx, region_id: u64, store_id: u64) -> Result<(), String> {
    let route = ctx
        .pd
        .get_region_by_id(region_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("PD knows no region {region_id}"))?;
    let target = route
        .region
        .peers
        .iter()
        .find(|peer| peer.store_id == store_id)
        .ok_or_else(|| format!("region {region_id} has no peer on store {store_id}"))?;
    let address = leader_address(ctx, &route).await?;
    let cmd = admin_request::Cmd::TransferLeaderToPeer(target.id);
    send(&address, region_id, cmd).await?;
    if ctx.json {
        println!("{}", json!({"region_id": region_id, "to_store": store_id}));
    } else {
        println!(
            "region {region_id}: leadership moving to store {store_id} (peer {})",
            target.id
        );
    }
    Ok(())
}
