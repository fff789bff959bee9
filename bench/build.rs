//! Compiles the C reference ring of the suite (`c/ring.c`) with the system C
//! compiler (`$CC`, else `cc`) and links it as a static library; and, when
//! Boost's headers are there, the Boost.Interprocess references
//! (`cpp/boost_ipc.cpp`) with the system C++ compiler (`$CXX`, else `c++`),
//! setting `cfg(shmprim_boost)`. Without the headers the Boost rows say so and
//! are skipped.

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
    boost(&out, &ar);
}

/// The Boost.Interprocess references, if Boost's headers are installed.
fn boost(out: &std::path::Path, ar: &str) {
    println!("cargo:rustc-check-cfg=cfg(shmprim_boost)");
    println!("cargo:rerun-if-changed=cpp/boost_ipc.cpp");
    println!("cargo:rerun-if-env-changed=CXX");
    println!("cargo:rerun-if-env-changed=SHMPRIM_BENCH_NO_BOOST");
    let header = "/usr/include/boost/interprocess/ipc/message_queue.hpp";
    // SHMPRIM_BENCH_NO_BOOST=1 builds the suite as a machine without Boost
    // would (the rows then say they are skipped).
    if !std::path::Path::new(header).exists()
        || std::env::var_os("SHMPRIM_BENCH_NO_BOOST").is_some()
    {
        println!(
            "cargo:warning=Boost.Interprocess headers not found ({header}): the Boost rows of `shmprim bench` are skipped (apt-get install libboost-dev)"
        );
        return;
    }
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let obj = out.join("boost_ipc.o");
    let status = Command::new(&cxx)
        .args([
            "-O2",
            "-fPIC",
            "-std=c++17",
            "-Wall",
            "-c",
            "cpp/boost_ipc.cpp",
            "-o",
        ])
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("Boost's headers are installed but {cxx} does not run: {e}"));
    assert!(status.success(), "{cxx} failed on cpp/boost_ipc.cpp");
    let lib = out.join("libshmprim_bench_boost.a");
    let _ = std::fs::remove_file(&lib);
    let status = Command::new(ar)
        .arg("crs")
        .arg(&lib)
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("the benchmark suite needs `ar` ({ar}): {e}"));
    assert!(status.success(), "{ar} failed");
    println!("cargo:rustc-link-lib=static=shmprim_bench_boost");
    println!("cargo:rustc-link-lib=dylib=stdc++");
    println!("cargo:rustc-link-lib=dylib=rt");
    println!("cargo:rustc-cfg=shmprim_boost");
}
