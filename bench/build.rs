//! Compiles the C reference ring of the suite (`c/ring.c`) with the system C
//! compiler (`$CC`, else `cc`) and links it as a static library.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=c/ring.c");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let obj = out.join("cring.o");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-O2", "-fPIC", "-std=c11", "-Wall", "-Wextra", "-c", "c/ring.c", "-o",
        ])
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("the benchmark suite needs a C compiler ({cc}): {e}"));
    assert!(status.success(), "{cc} failed on c/ring.c");
    let lib = out.join("libshmprim_bench_cring.a");
    let _ = std::fs::remove_file(&lib);
    let ar = std::env::var("AR").unwrap_or_else(|_| "ar".into());
    let status = Command::new(&ar)
        .arg("crs")
        .arg(&lib)
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("the benchmark suite needs `ar` ({ar}): {e}"));
    assert!(status.success(), "{ar} failed");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=shmprim_bench_cring");
}
