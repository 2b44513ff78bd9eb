//! `ferrokv ctl txn OP...`: one transaction from the command line, for scripts. The
//! operations run in order in one optimistic transaction (timestamps from PD), then it
//! commits: `get KEY`, `put KEY VALUE`, `delete KEY`. Reads see the transaction's own
//! writes. A failure exits non-zero with the client's message, which tells a write
//! conflict or an abort ("retry") from an unknown outcome ("check").

use ferrokv_client::txn::{Oracle, TxnClient};
use serde_json::json;

use super::output::{self, escape, Table};
use super::Ctx;

/// One operation of the transaction.
#[derive(Debug, PartialEq, Eq)]
enum TxnOp {
    Get(String),
    Put(String, String),
    Delete(String),
}

/// Parses `get K`, `put K V`, `delete K` sequences.
fn parse(words: &[String]) -> Result<Vec<TxnOp>, String> {
    let mut ops = Vec::new();
    let mut rest = words;
    while let Some((verb, tail)) = rest.split_first() {
        let need = |n: usize| {
            (tail.len() >= n)
                .then_some(())
                .ok_or_else(|| format!("`{verb}` needs {n} argument(s)"))
        };
        let (op, used) = match verb.as_str() {
            "get" => need(1).map(|()| (TxnOp::Get(tail[0].clone()), 1))?,
            "put" => need(2).map(|()| (TxnOp::Put(tail[0].clone(), tail[1].clone()), 2))?,
            "delete" => need(1).map(|()| (TxnOp::Delete(tail[0].clone()), 1))?,
            other => {
                return Err(format!(
                    "unknown transaction operation {other:?} (expected get, put or delete)"
                ))
            }
        };
        ops.push(op);
        rest = &tail[used..];
    }
    if ops.is_empty() {
        return Err(
            "a transaction needs at least one operation: get KEY, put KEY VALUE, delete KEY".into(),
        );
    }
    Ok(ops)
}

/// Runs the operations in one transaction and commits it.
pub async fn run(ctx: &Ctx, words: &[String]) -> Result<(), String> {
    let ops = parse(words)?;
    let client = TxnClient::new(ctx.raw(), Oracle::Pd(ctx.pd.clone()));
    let mut txn = client.begin().await.map_err(|e| e.to_string())?;
    let start_ts = txn.start_ts();
    let mut table = Table::new(vec!["KEY", "VALUE"]);
    let mut reads = Vec::new();
    for op in ops {
        match op {
            TxnOp::Get(key) => {
                let found = txn.get(key.as_bytes()).await.map_err(|e| e.to_string())?;
                let shown = found.as_deref().map_or("(not found)".to_string(), escape);
                table.row(vec![key.clone(), shown]);
                reads.push(json!({"key": key, "value": found.as_deref().map(escape)}));
            }
            TxnOp::Put(key, value) => txn.put(key.into_bytes(), value.into_bytes()),
            TxnOp::Delete(key) => txn.delete(key.into_bytes()),
        }
    }
    let commit_ts = txn.commit().await.map_err(|e| e.to_string())?;
    if !ctx.json {
        if !reads.is_empty() {
            output::print(false, table, json!(null));
        }
        match commit_ts {
            Some(ts) => println!("committed at {} (start {})", ts.get(), start_ts.get()),
            None => println!("read-only at {}", start_ts.get()),
        }
        return Ok(());
    }
    let value = json!({
        "start_ts": start_ts.get(),
        "commit_ts": commit_ts.map(|ts| ts.get()),
        "reads": reads,
    });
    println!("{value}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn operations_parse_in_order() {
        assert_eq!(
            parse(&words("put a 1 get a delete b")),
            Ok(vec![
                TxnOp::Put("a".into(), "1".into()),
                TxnOp::Get("a".into()),
                TxnOp::Delete("b".into()),
            ])
        );
    }

    #[test]
    fn bad_operations_are_refused_with_the_reason() {
        assert!(parse(&[]).unwrap_err().contains("at least one"));
        assert!(parse(&words("put a")).unwrap_err().contains("2 argument"));
        assert!(parse(&words("scan a")).unwrap_err().contains("unknown"));
    }
}
