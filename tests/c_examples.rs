//! Compiles every program in `ffi-examples/` with `-Wall -Wextra -Werror` against
//! the static library this `cargo test` just built, runs it, and checks its output.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/deps`, where `cargo test` builds `libshmprim.a` and
/// `libshmprim.so` for this very run. (The copies in `target/<profile>` are only
/// refreshed by `cargo build`, so they can be stale during `cargo test`.)
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().to_path_buf()
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ffi-examples")
}

/// Builds `file` (C or C++) into a binary under `target/tmp`, panicking with the
/// compiler's output if it does not compile cleanly.
pub fn build_example(file: &str) -> PathBuf {
    let src = examples_dir().join(file);
    // One output per build: tests run in parallel and may build the same
    // example at once (running a binary another build is rewriting fails).
    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "ffi-{}-{}-{n}",
        file.replace('.', "_"),
        std::process::id()
    ));
    let cpp = file.ends_with(".cpp");
    let mut cmd = Command::new(if cpp { "c++" } else { "cc" });
    cmd.args(["-O1", "-g", "-Wall", "-Wextra", "-Werror"])
        .arg(if cpp { "-std=c++17" } else { "-std=c11" })
        .arg("-D_GNU_SOURCE")
        .arg("-I")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("include"))
        .arg(&src)
        .arg(lib_dir().join("libshmprim.a"))
        .args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-o",
        ])
        .arg(&out);
    let result = cmd.output().expect("a C compiler (cc) is installed");
    assert!(
        result.status.success(),
        "{file} does not compile cleanly:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// Runs a built example (bounded) and returns its stdout.
pub fn run_example(bin: &Path, args: &[&str]) -> String {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not finish within 60 s", bin.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn segment_example_shares_bytes_between_two_c_processes() {
    let bin = build_example("segment_share.c");
    let out = run_example(&bin, &[]);
    assert!(out.contains("segment_share: ok"), "{out}");
}

#[test]
fn every_example_in_ffi_examples_compiles_cleanly() {
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".c") || name.ends_with(".cpp") {
            build_example(&name);
        }
    }
}

#[test]
fn pkg_config_file_builds_a_working_program_and_has_the_crate_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pc = std::fs::read_to_string(root.join("shmprim.pc")).unwrap();
    assert!(
        pc.lines()
            .any(|l| l == format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "shmprim.pc's Version must be the crate version"
    );
    let flags = Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", root)
        .arg(format!("--define-variable=libdir={}", lib_dir().display()))
        .args(["--cflags", "--libs", "shmprim"])
        .output()
        .expect("pkg-config is installed");
    assert!(
        flags.status.success(),
        "{}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags = String::from_utf8(flags.stdout).unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ffi-pkgconfig-segment");
    let built = Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-D_GNU_SOURCE"])
        .arg(examples_dir().join("segment_share.c"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // Dynamically linked against libshmprim.so, found through the rpath.
    assert!(run_example(&out, &[]).contains("segment_share: ok"));
}

#[test]
fn a_c_program_inspects_its_own_segment() {
    let bin = build_example("inspect_self.c");
    let out = run_example(&bin, &[]);
    assert!(out.contains("inspect_self: ok"), "{out}");
}
