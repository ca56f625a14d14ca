//! Compiles `proto/` with protox (pure Rust: no system protoc needed) and writes
//! the descriptor set that server reflection serves.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/wasessiond/v1/session.proto",
    "proto/wasessiond/v1/emulator.proto",
    "proto/wasessiond/v1/events.proto",
    "proto/wasessiond/v1/campaign.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let file_descriptors = protox::Compiler::new(["proto"])?
        .include_imports(true)
        .open_files(PROTOS)?
        .file_descriptor_set();
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_bytes = prost::Message::encode_to_vec(&file_descriptors);
    std::fs::write(out_dir.join("wasessiond_descriptor.bin"), descriptor_bytes)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(file_descriptors)?;
    Ok(())
}
