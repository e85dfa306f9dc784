//! Compiles `proto/seqnet/v1/*.proto` with protox (pure Rust, no system
//! `protoc`) and generates prost messages and tonic services from them.
use std::path::PathBuf;

const PROTO_FILES: &[&str] = &[
    "proto/seqnet/v1/tx.proto",
    "proto/seqnet/v1/state.proto",
    "proto/seqnet/v1/rollup.proto",
    "proto/seqnet/v1/prover.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_source_info(true);
    compiler.open_files(PROTO_FILES)?;
    // Kept for gRPC server reflection.
    std::fs::write(
        out_dir.join("seqnet_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
