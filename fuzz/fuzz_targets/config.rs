//! The store's configuration file (TOML) and command line: bad input gives a clear error,
//! never a panic, and whatever is accepted is a configuration the store can run with.
#![no_main]

use arbitrary::Arbitrary;
use clap::Parser;
use ferrokv_server::cli::{resolve_config, StoreFlags};
use ferrokv_server::config::{ConfigError, ServerConfig};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    toml: String,
    args: Vec<String>,
}

fn check_accepted(config: &ServerConfig) {
    let raft = config
        .validate()
        .expect("an accepted configuration validates");
    raft.validate().expect("its Raft configuration validates");
    assert!(
        raft.lease <= raft.lease_bound(),
        "the lease outlives an election"
    );
    if let Some(region) = config.bootstrap_region() {
        assert!(region.id != 0);
        assert!(region
            .peers
            .iter()
            .any(|peer| peer.store_id == config.store_id));
        let mut ids: Vec<u64> = region.peers.iter().map(|peer| peer.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids.len(),
            region.peers.len(),
            "duplicate bootstrap peer ids"
        );
        assert!(!ids.contains(&0), "a bootstrap peer id of 0");
    }
}

fuzz_target!(|input: Input| {
    let parsed = ServerConfig::from_toml(&input.toml, "fuzz.toml".into());
    match &parsed {
        Ok(config) => match config.validate() {
            Ok(_) => check_accepted(config),
            Err(ConfigError::Invalid(why)) => assert!(!why.is_empty()),
            Err(other) => panic!("validation gave a non-validation error: {other}"),
        },
        Err(ConfigError::Parse { .. }) => {}
        Err(other) => panic!("parsing gave a non-parse error: {other}"),
    }
    let args = std::iter::once("ferrokv-server".to_string()).chain(input.args);
    let Ok(flags) = StoreFlags::try_parse_from(args) else {
        return;
    };
    let resolved = resolve_config(&flags, |path| ServerConfig::from_toml(&input.toml, path));
    match resolved {
        Ok(config) if flags.pd.is_empty() => check_accepted(&config),
        Ok(_) => {}
        Err(why) => assert!(!why.is_empty(), "an empty error message"),
    }
});
