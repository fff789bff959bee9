//! The `shmprim` binary as built by a plain `cargo test` (feature `cli`, not
//! `bench`): `--help` lists the subcommands, and `bench` explains how to get it.
#![cfg(all(feature = "cli", not(feature = "bench")))]

use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_shmprim");

#[test]
fn help_lists_the_bench_subcommand_with_its_explanation() {
    let out = Command::new(EXE)
        .arg("--help")
        .output()
        .expect("run shmprim");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bench"), "{text}");
    assert!(text.contains("benchmark"), "{text}");
}

#[test]
fn bench_without_the_feature_says_how_to_rebuild() {
    let out = Command::new(EXE)
        .args(["bench", "--quick"])
        .output()
        .expect("run shmprim");
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--features bench"), "{text}");
}
