//! Generates prost messages (always) and tonic services (with feature `grpc`) for every
//! `.proto` under `proto/`.
//!
//! protoc comes from `protoc-bin-vendored`, so no system install is needed. The service
//! generator is `madsim-tonic-build`, whose output compiles both normally (real tonic) and
//! under `--cfg madsim` (simulated tonic), so one build script serves both.

use std::path::{Path, PathBuf};

const PROTOS: &[&str] = &[
    "eraftpb.proto",
    "metapb.proto",
    "errorpb.proto",
    "deadlock.proto",
    "kvrpcpb.proto",
    "coprocessor.proto",
    "tikvpb.proto",
    "pdpb.proto",
    "ferrokv_raftpb.proto",
];

fn main() {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc is available");
    std::env::set_var("PROTOC", protoc);
    let dir = PathBuf::from("proto");
    let files: Vec<PathBuf> = PROTOS.iter().map(|name| dir.join(name)).collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    generate(&files, &dir).expect("protobuf code generation failed");
}

#[cfg(feature = "grpc")]
fn generate(files: &[PathBuf], dir: &Path) -> std::io::Result<()> {
    tonic_build::configure()
        .generate_default_stubs(true)
        .compile_protos(files, &[dir])
}

#[cfg(not(feature = "grpc"))]
fn generate(files: &[PathBuf], dir: &Path) -> std::io::Result<()> {
    prost_build::Config::new().compile_protos(files, &[dir])
}
