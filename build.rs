//! Generates the C header from `src/ffi/` with cbindgen into `OUT_DIR`. The
//! checked-in `include/shmprim.h` is compared against it by `tests/c_header.rs`.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("shmprim.h");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(crate_dir.join("src/ffi"))
        .expect("src/ffi exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    sources.sort();
    let mut builder = cbindgen::Builder::new().with_config(config);
    for src in &sources {
        builder = builder.with_src(src);
    }
    builder
        .generate()
        .expect("cbindgen can parse src/ffi")
        .write_to_file(&out);
}
