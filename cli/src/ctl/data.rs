//! Data commands: put, get, delete, scan (through the raw client, routed by PD).

use serde_json::json;

use super::output::{self, escape, Table};
use super::Ctx;

pub async fn put(ctx: &Ctx, key: &str, value: &str, ttl: u64) -> Result<(), String> {
    let client = ctx.raw();
    client
        .put(key.as_bytes(), value.as_bytes(), ttl)
        .await
        .map_err(|e| e.to_string())?;
    if ctx.json {
        println!("{}", json!({"ok": true}));
    } else {
        println!("OK");
    }
    Ok(())
}

pub async fn get(ctx: &Ctx, key: &str) -> Result<(), String> {
    let found = ctx
        .raw()
        .get(key.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    match (&found, ctx.json) {
        (Some(value), true) => println!("{}", json!({"key": key, "value": escape(value)})),
        (None, true) => println!("{}", json!({"key": key, "value": null})),
        (Some(value), false) => println!("{}", escape(value)),
        (None, false) => println!("(not found)"),
    }
    Ok(())
}

pub async fn delete(ctx: &Ctx, key: &str) -> Result<(), String> {
    ctx.raw()
        .delete(key.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    if ctx.json {
        println!("{}", json!({"ok": true}));
    } else {
        println!("OK");
    }
    Ok(())
}

pub async fn scan(ctx: &Ctx, start: &str, end: &str, limit: u32) -> Result<(), String> {
    let pairs = ctx
        .raw()
        .scan(start.as_bytes(), end.as_bytes(), limit)
        .await
        .map_err(|e| e.to_string())?;
    let mut table = Table::new(vec!["KEY", "VALUE"]);
    let mut values = Vec::new();
    for (key, value) in &pairs {
        table.row(vec![escape(key), escape(value)]);
        values.push(json!({"key": escape(key), "value": escape(value)}));
    }
    output::print(ctx.json, table, json!(values));
    Ok(())
}
