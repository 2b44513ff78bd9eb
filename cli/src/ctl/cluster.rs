//! Cluster commands: stores, regions, region KEY, members, tso, operators (all from PD).

use std::collections::BTreeMap;

use ferrokv_client::pd::RegionRoute;
use ferrokv_proto::metapb;
use serde_json::{json, Value};

use super::output::{self, escape, Table};
use super::Ctx;

fn peers_text(region: &metapb::Region) -> String {
    let peers: Vec<String> = region
        .peers
        .iter()
        .map(|peer| {
            let learner = peer.role == metapb::PeerRole::Learner as i32;
            format!(
                "{}@{}{}",
                peer.id,
                peer.store_id,
                if learner { "(L)" } else { "" }
            )
        })
        .collect();
    peers.join(",")
}

fn region_json(route: &RegionRoute) -> Value {
    let region = &route.region;
    let epoch = region.region_epoch.unwrap_or_default();
    json!({
        "id": region.id,
        "start_key": escape(&region.start_key),
        "end_key": escape(&region.end_key),
        "conf_ver": epoch.conf_ver,
        "version": epoch.version,
        "leader_store": route.leader.map(|p| p.store_id),
        "peers": region.peers.iter().map(|p| json!({"id": p.id, "store_id": p.store_id,
            "learner": p.role == metapb::PeerRole::Learner as i32})).collect::<Vec<_>>(),
        "pending_peers": route.pending_peers.iter().map(|p| p.id).collect::<Vec<_>>(),
    })
}

fn region_row(route: &RegionRoute) -> Vec<String> {
    let region = &route.region;
    let epoch = region.region_epoch.unwrap_or_default();
    let leader = route
        .leader
        .map_or("-".to_string(), |p| p.store_id.to_string());
    vec![
        region.id.to_string(),
        escape(&region.start_key),
        if region.end_key.is_empty() {
            "+inf".into()
        } else {
            escape(&region.end_key)
        },
        format!("{}/{}", epoch.conf_ver, epoch.version),
        leader,
        peers_text(region),
    ]
}

const REGION_COLUMNS: [&str; 6] = ["ID", "START", "END", "EPOCH", "LEADER", "PEERS(id@store)"];

async fn all_regions(ctx: &Ctx) -> Result<Vec<RegionRoute>, String> {
    ctx.pd
        .scan_regions(b"", b"", 0)
        .await
        .map_err(|e| e.to_string())
}

pub async fn regions(ctx: &Ctx) -> Result<(), String> {
    let routes = all_regions(ctx).await?;
    let mut table = Table::new(REGION_COLUMNS.to_vec());
    for route in &routes {
        table.row(region_row(route));
    }
    let values: Vec<Value> = routes.iter().map(region_json).collect();
    output::print(ctx.json, table, json!(values));
    Ok(())
}

pub async fn region(ctx: &Ctx, key: &str) -> Result<(), String> {
    let route = ctx
        .pd
        .get_region(key.as_bytes())
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no region holds this key yet")?;
    let mut table = Table::new(REGION_COLUMNS.to_vec());
    table.row(region_row(&route));
    output::print(ctx.json, table, region_json(&route));
    Ok(())
}

pub async fn stores(ctx: &Ctx) -> Result<(), String> {
    let stores = ctx
        .pd
        .get_all_stores(false)
        .await
        .map_err(|e| e.to_string())?;
    let routes = all_regions(ctx).await?;
    let mut counts: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for route in &routes {
        for peer in &route.region.peers {
            counts.entry(peer.store_id).or_default().0 += 1;
        }
        if let Some(leader) = route.leader {
            counts.entry(leader.store_id).or_default().1 += 1;
        }
    }
    let mut table = Table::new(vec!["ID", "ADDRESS", "STATE", "REGIONS", "LEADERS"]);
    let mut values = Vec::new();
    for store in &stores {
        let (regions, leaders) = counts.get(&store.id).copied().unwrap_or_default();
        let state = format!("{:?}", store.state());
        table.row(vec![
            store.id.to_string(),
            store.address.clone(),
            state.clone(),
            regions.to_string(),
            leaders.to_string(),
        ]);
        values.push(
            json!({"id": store.id, "address": store.address, "state": state,
            "regions": regions, "leaders": leaders}),
        );
    }
    output::print(ctx.json, table, json!(values));
    Ok(())
}

pub async fn members(ctx: &Ctx) -> Result<(), String> {
    let members = ctx.pd.members().await.map_err(|e| e.to_string())?;
    let leader = members.leader.as_ref().map(|m| m.member_id);
    let cluster_id = members.header.as_ref().map_or(0, |h| h.cluster_id);
    let mut table = Table::new(vec!["ID", "NAME", "CLIENT URL", "PEER URL", "LEADER"]);
    let mut values = Vec::new();
    for member in &members.members {
        let is_leader = Some(member.member_id) == leader;
        let client = member.client_urls.join(",");
        let peer = member.peer_urls.join(",");
        table.row(vec![
            member.member_id.to_string(),
            member.name.clone(),
            client.clone(),
            peer.clone(),
            if is_leader { "*".into() } else { String::new() },
        ]);
        values.push(json!({"id": member.member_id, "name": member.name,
            "client_urls": member.client_urls, "peer_urls": member.peer_urls,
            "leader": is_leader}));
    }
    if !ctx.json {
        println!("cluster id {cluster_id}");
    }
    output::print(
        ctx.json,
        table,
        json!({"cluster_id": cluster_id, "members": values}),
    );
    Ok(())
}

pub async fn tso(ctx: &Ctx) -> Result<(), String> {
    let ts = ctx.pd.tso(1).await.map_err(|e| e.to_string())?;
    let mut table = Table::new(vec!["TIMESTAMP", "PHYSICAL(ms)", "LOGICAL"]);
    table.row(vec![
        ts.get().to_string(),
        ts.physical_ms().to_string(),
        ts.logical().to_string(),
    ]);
    let value = json!({"timestamp": ts.get(), "physical_ms": ts.physical_ms(),
        "logical": ts.logical()});
    output::print(ctx.json, table, value);
    Ok(())
}

pub async fn operators(ctx: &Ctx) -> Result<(), String> {
    let routes = all_regions(ctx).await?;
    let mut table = Table::new(vec!["REGION", "KIND", "STEPS"]);
    let mut values = Vec::new();
    for route in &routes {
        let found = ctx
            .pd
            .get_operator(route.region.id)
            .await
            .map_err(|e| e.to_string())?;
        let Some(operator) = found else { continue };
        let kind = String::from_utf8_lossy(&operator.kind).to_string();
        let desc = String::from_utf8_lossy(&operator.desc).to_string();
        table.row(vec![
            route.region.id.to_string(),
            kind.clone(),
            desc.clone(),
        ]);
        values.push(json!({"region_id": route.region.id, "kind": kind, "steps": desc}));
    }
    output::print(ctx.json, table, json!(values));
    Ok(())
}
