//! The `shmprim` binary's command line: `--help` lists the subcommands.

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
