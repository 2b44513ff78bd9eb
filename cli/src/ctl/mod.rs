//! `ferrokv ctl`: talks to PD (routes, stores, members, timestamps, split ids) and to the
//! stores (data through the raw client, operator commands through `FerroAdmin`), like the
//! official tools. Human-readable tables by default, one JSON value with `--json`.
//!
//! Keys and values on the command line are taken as their UTF-8 bytes (raw keys, no
//! keyspace), as the official raw client sends them; `txn` writes transactional keys (a
//! separate space from raw keys, as in TiKV's API v1).

mod admin;
mod cluster;
mod data;
pub mod output;
mod txn;

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use ferrokv_client::pd::PdClient;
use ferrokv_client::RawClient;

/// `ctl` flags.
#[derive(Args, Debug)]
pub struct CtlArgs {
    /// PD endpoints (comma-separated); the playground's by default.
    #[arg(long, default_value = "127.0.0.1:2379", value_delimiter = ',')]
    pub pd: Vec<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Deadline per command, in seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// The command.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `ctl` commands.
#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Writes a key (optionally with a TTL in seconds).
    Put {
        key: String,
        value: String,
        #[arg(long, default_value_t = 0)]
        ttl: u64,
    },
    /// Reads a key.
    Get { key: String },
    /// Deletes a key.
    Delete { key: String },
    /// Lists pairs in [START, END) (empty END: to the end).
    Scan {
        #[arg(default_value = "")]
        start: String,
        #[arg(default_value = "")]
        end: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Lists stores with their region and leader counts.
    Stores,
    /// Lists regions with leaders and peers.
    Regions,
    /// Shows the region holding KEY.
    Region { key: String },
    /// Lists PD members and the leader.
    Members,
    /// Gets a timestamp from PD.
    Tso,
    /// Splits the region holding KEY at KEY (with `--txn`: at the transactional key KEY,
    /// i.e. its memcomparable encoding, where transactional clients see region bounds).
    Split {
        key: String,
        #[arg(long)]
        txn: bool,
    },
    /// Moves a region's leadership to its peer on a store.
    TransferLeader { region_id: u64, store_id: u64 },
    /// Lists running PD operators.
    Operators,
    /// Runs one transaction and commits it: `txn put a 1 put b 2 get c delete d`
    /// (operations in order; reads see the transaction's own writes; timestamps from PD).
    Txn {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ops: Vec<String>,
    },
}

/// What every command needs.
pub struct Ctx {
    pub pd: Arc<PdClient>,
    pub json: bool,
    pub timeout: Duration,
}

impl Ctx {
    /// A raw client routed by PD.
    pub fn raw(&self) -> RawClient {
        RawClient::with_pd(
            self.pd.clone(),
            self.timeout,
            self.timeout.min(Duration::from_secs(3)),
        )
    }
}

/// Runs one command.
pub async fn run(args: CtlArgs) -> Result<(), String> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    let ctx = Ctx {
        pd: Arc::new(PdClient::new(args.pd.clone(), timeout)),
        json: args.json,
        timeout,
    };
    match args.command {
        CtlCommand::Put { key, value, ttl } => data::put(&ctx, &key, &value, ttl).await,
        CtlCommand::Get { key } => data::get(&ctx, &key).await,
        CtlCommand::Delete { key } => data::delete(&ctx, &key).await,
        CtlCommand::Scan { start, end, limit } => data::scan(&ctx, &start, &end, limit).await,
        CtlCommand::Stores => cluster::stores(&ctx).await,
        CtlCommand::Regions => cluster::regions(&ctx).await,
        CtlCommand::Region { key } => cluster::region(&ctx, &key).await,
        CtlCommand::Members => cluster::members(&ctx).await,
        CtlCommand::Tso => cluster::tso(&ctx).await,
        CtlCommand::Split { key, txn } => {
            let at = if txn {
                ferrokv_core::types::codec::encode_bytes(key.as_bytes())
            } else {
                key.into_bytes()
            };
            admin::split(&ctx, &at).await
        }
        CtlCommand::TransferLeader {
            region_id,
            store_id,
        } => admin::transfer_leader(&ctx, region_id, store_id).await,
        CtlCommand::Operators => cluster::operators(&ctx).await,
        CtlCommand::Txn { ops } => txn::run(&ctx, &ops).await,
    }
}
