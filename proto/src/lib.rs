//! FerroKV's wire protocol.
//!
//! Two families of packages live here:
//! - a **wire-compatible subset of TiKV's kvproto** (`metapb`, `errorpb`, `kvrpcpb`,
//!   `coprocessor`, `tikvpb`, `pdpb`, and the one `eraftpb` enum that `pdpb` refers to). Package,
//!   service, message and field names and numbers are kvproto's, so the official `tikv-client`
//!   talks to our PD and stores unmodified. We declare only what we serve; a field we do not
//!   declare is skipped by protobuf decoding, and a method we do not declare answers
//!   `Unimplemented`.
//! - **`ferrokv_raftpb`**, our own internal package: Raft transport between stores and the
//!   persisted per-region metadata records.
//!
//! Messages are always generated. Feature `grpc` adds tonic service stubs; the sans-IO core
//! leaves it off and so depends on neither tokio nor tonic. The stubs compile against real
//! tonic normally and against madsim's simulated tonic under `--cfg madsim`. madsim-tonic-build
//! writes both variants (the simulated one under `OUT_DIR/sim/`); the `package!` macro below
//! picks the file, which is the only place this crate looks at the cfg.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

macro_rules! package {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub mod $name {
            // madsim-tonic-build writes the simulated-tonic variant under `sim/`.
            #[cfg(all(feature = "grpc", madsim))]
            include!(concat!(env!("OUT_DIR"), "/sim/", stringify!($name), ".rs"));
            #[cfg(not(all(feature = "grpc", madsim)))]
            include!(concat!(env!("OUT_DIR"), "/", stringify!($name), ".rs"));
        }
    };
}

package!(
    /// The single Raft enum (`ConfChangeType`) that `pdpb` references.
    eraftpb
);
package!(
    /// Cluster metadata: stores, regions, peers, epochs.
    metapb
);
package!(
    /// Region errors returned inside KV responses.
    errorpb
);
package!(
    /// The wait-for entry a deadlock error carries (`kvrpcpb.Deadlock.wait_chain`).
    deadlock
);
package!(
    /// KV request and response messages (raw and transactional).
    kvrpcpb
);
package!(
    /// Coprocessor request and response envelopes.
    coprocessor
);
package!(
    /// The `Tikv` gRPC service (service only: present with feature `grpc`).
    #[cfg(feature = "grpc")]
    tikvpb
);
package!(
    /// The Placement Driver `PD` gRPC service.
    pdpb
);
package!(
    /// FerroKV-internal: Raft transport and persisted region metadata.
    ferrokv_raftpb
);
