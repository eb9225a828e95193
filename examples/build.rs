//! Generates the counter service's gRPC code from `counter/counter.proto` with
//! the protoc binary that `protoc-bin-vendored` ships (no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    println!("cargo:rerun-if-changed=counter/counter.proto");
    tonic_build::configure().compile_protos_with_config(
        config,
        &["counter/counter.proto"],
        &["counter"],
    )?;
    Ok(())
}
