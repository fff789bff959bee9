//! Generates the C header from `src/ffi/` with cbindgen into `OUT_DIR`. The
//! checked-in `include/shmprim.h` is compared against it by `tests/c_header.rs`.
//!
//! With the `bench` feature, also compiles the C reference ring of the benchmark
//! suite (`benches/c/ring.c`) with the system C compiler (`$CC`, else `cc`) and
//! links it as a static library.

use std::path::PathBuf;

fn main() {
    if std::env::var_os("CARGO_FEATURE_BENCH").is_some() {
        build_c_ring();
    }
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("shmprim.h");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    // cbindgen follows the `mod` items of src/ffi/mod.rs into the other
    // files of src/ffi/, so the module root is the only source to give it
    // (giving every file as well declared each function twice).
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"));
    builder
        .generate()
        .expect("cbindgen can parse src/ffi")
        .write_to_file(&out);
}

/// Compiles `benches/c/ring.c` into `libshmprim_bench_cring.a` in `OUT_DIR` and
/// links it (feature `bench` only; no build-dependency needed).
fn build_c_ring() {
    use std::process::Command;
    println!("cargo:rerun-if-changed=benches/c/ring.c");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let obj = out.join("cring.o");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-O2",
            "-fPIC",
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-c",
            "benches/c/ring.c",
            "-o",
        ])
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("feature `bench` needs a C compiler ({cc}): {e}"));
    assert!(status.success(), "{cc} failed on benches/c/ring.c");
    let lib = out.join("libshmprim_bench_cring.a");
    let _ = std::fs::remove_file(&lib);
    let ar = std::env::var("AR").unwrap_or_else(|_| "ar".into());
    let status = Command::new(&ar)
        .arg("crs")
        .arg(&lib)
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("feature `bench` needs `ar` ({ar}): {e}"));
    assert!(status.success(), "{ar} failed");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=shmprim_bench_cring");
}
