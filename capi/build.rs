//! Generates the C header from `src/` with cbindgen into `OUT_DIR`. The
//! checked-in `include/shmprim.h` at the workspace root is compared against it
//! by `tests/c_header.rs`.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("shmprim.h");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    // cbindgen follows the `mod` items of src/lib.rs into the other files of
    // src/, so the crate root is the only source to give it (giving every file
    // as well declared each function twice).
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen can parse src/")
        .write_to_file(&out);
}
