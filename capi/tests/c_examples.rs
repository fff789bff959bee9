//! Compiles every program in `ffi-examples/` with `-Wall -Wextra -Werror` against
//! the C library (`libshmprim.a`, built first by these tests), runs it, and
//! checks its output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use shmprim::{ByteQueue, Condvar, Mutex, Queue};

/// `target/<profile>`, holding `libshmprim.a` and `libshmprim.so` as built
/// from this very tree. The package builds no rlib, so `cargo test` does not
/// build its C artifacts for its integration tests: the first caller builds
/// them with the `cargo` running this test (a no-op when they are fresh).
fn lib_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            // target/<profile>/deps/c_examples-<hash>
            let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
            let mut cargo = Command::new(env!("CARGO"));
            cargo
                .args(["build", "--quiet", "-p", "shmprim-capi", "--lib"])
                .current_dir(workspace_root());
            if dir.file_name().is_some_and(|p| p == "release") {
                cargo.arg("--release");
            }
            let status = cargo.status().expect("run cargo to build the C library");
            assert!(status.success(), "cargo build -p shmprim-capi failed");
            assert!(
                dir.join("libshmprim.a").exists(),
                "no libshmprim.a in {}",
                dir.display()
            );
            dir
        })
        .clone()
}

/// The workspace root, where `include/`, `ffi-examples/` and the README live.
fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn examples_dir() -> PathBuf {
    workspace_root().join("ffi-examples")
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
        .arg(workspace_root().join("include"))
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
    let child = Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    finish_example(bin, child)
}

/// Waits (bounded) for a started example to succeed and returns its stdout.
pub fn finish_example(bin: &Path, mut child: std::process::Child) -> String {
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
fn mutex_counter_example_counts_exactly_across_four_processes() {
    let out = run_example(&build_example("mutex_counter.c"), &[]);
    assert!(out.contains("mutex_counter: total 40000 ok"), "{out}");
}

#[test]
fn mutex_owner_died_example_recovers_with_consistent_and_shows_unrecoverable() {
    let out = run_example(&build_example("mutex_owner_died.c"), &[]);
    assert!(out.contains("mutex_owner_died: recovered ok"), "{out}");
}

#[test]
fn barrier_phases_example_keeps_three_processes_in_step() {
    let out = run_example(&build_example("barrier_phases.c"), &[]);
    assert!(
        out.contains("barrier_phases: 3 phases x 3 processes ok"),
        "{out}"
    );
}

#[test]
fn in_place_primitives_work_inside_a_c_struct_in_shared_memory() {
    let out = run_example(&build_example("sync_inplace.c"), &[]);
    assert!(
        out.contains("sync_inplace: counter 3000, at most 2 inside ok")
            || out.contains("sync_inplace: counter 3000, at most 1 inside ok"),
        "{out}"
    );
}

#[test]
fn bad_calls_from_c_get_the_documented_statuses() {
    let out = run_example(&build_example("bad_calls.c"), &[]);
    assert!(!out.contains("FAIL"), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("bad_calls: ") && last.ends_with(" checks ok"),
        "{out}"
    );
}

#[test]
fn cpp_wrapper_example_counts_recovers_and_keeps_phases() {
    let out = run_example(&build_example("cpp_sync.cpp"), &[]);
    assert!(
        out.contains("cpp_sync: counter 20000, recovered, 3 phases ok"),
        "{out}"
    );
}

/// A unique segment name for a test, unlinked (if it exists) on drop.
struct Name(String);

impl Name {
    fn new(what: &str) -> Name {
        Name(format!("shmprim-test-c-{what}-{}", std::process::id()))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shmprim::Segment::unlink(&self.0);
    }
}

/// Retries `open` until the other process has created the object (bounded).
fn open_when_created<T>(mut open: impl FnMut() -> shmprim::Result<T>) -> T {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        match open() {
            Ok(v) => return v,
            Err(shmprim::Error::NotFound { .. }) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("open: {e}"),
        }
    }
}

#[test]
fn c_process_and_rust_process_alternate_strictly_on_one_mutex_guarded_counter() {
    const ROUNDS: u64 = 500;
    let bin = build_example("xlang_mutex_peer.c");
    let (m_name, c_name) = (Name::new("xmutex"), Name::new("xcondvar"));
    // Rust creates the condvar (C opens it); C creates the mutex (Rust opens it
    // as a Mutex<u64>): both directions of "the same named object".
    let cv = Condvar::create(&c_name.0).unwrap();
    let child = Command::new(&bin)
        .args([&m_name.0, &c_name.0, &ROUNDS.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let m: Mutex<u64> = open_when_created(|| Mutex::open(&m_name.0));
    let mut seen = Vec::new();
    for _ in 0..ROUNDS {
        let guard = m.lock().unwrap();
        let (mut guard, t) = cv
            .wait_timeout_while(guard, Duration::from_secs(10), |v| *v % 2 == 0)
            .unwrap();
        assert!(!t.timed_out(), "the C process never took its turn");
        seen.push(*guard);
        *guard += 1;
        drop(guard);
        cv.notify_all();
    }
    let out = finish_example(&bin, child);
    // Rust saw 1, 3, 5, ...: the C process took every even turn in between.
    assert_eq!(seen, (0..ROUNDS).map(|i| 2 * i + 1).collect::<Vec<_>>());
    assert_eq!(*m.lock().unwrap(), 2 * ROUNDS);
    assert!(
        out.contains(&format!(
            "xlang_mutex_peer: {ROUNDS} turns, final {}",
            2 * ROUNDS
        )),
        "{out}"
    );
}

/// Runs a built example under valgrind (memcheck, forked children included)
/// and returns its stdout. Fails when valgrind is missing: `.ci/run` installs
/// it, and a check that cannot run must not pass.
fn run_under_valgrind(bin: &Path) -> String {
    assert!(
        Command::new("valgrind").arg("--version").output().is_ok(),
        "valgrind is not installed (apt-get install valgrind): the C examples must run under it"
    );
    let out = Command::new("valgrind")
        .args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--trace-children=yes",
            "-q",
        ])
        .arg(bin)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} is not clean under valgrind ({}):\n{stderr}",
        bin.display(),
        out.status
    );
    // With -q, valgrind prints only errors: any "==pid==" line is one.
    assert!(
        !stderr.lines().any(|l| l.starts_with("==")),
        "valgrind reported:\n{stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn queue_mutex_scribble_and_bad_call_examples_run_clean_under_valgrind() {
    let cases = [
        ("mutex_counter.c", "mutex_counter: total 40000 ok"),
        ("mutex_owner_died.c", "mutex_owner_died: recovered ok"),
        ("bad_calls.c", "checks ok"),
        ("mutex_scribble.c", "mutex_scribble: 6000 rounds ok"),
        (
            "queue_producer_consumer.c",
            "queue_producer_consumer: 10000 jobs, sum 50005000 ok",
        ),
        (
            "spsc_stream.c",
            "spsc_stream: 100000 ticks in order, sum 4999950000 ok",
        ),
    ];
    for (file, expected) in cases {
        let out = run_under_valgrind(&build_example(file));
        assert!(out.contains(expected), "{file}: {out}");
    }
}

#[test]
fn value_array_example_shares_a_double_an_int_array_and_a_counter() {
    let out = run_example(&build_example("value_array.c"), &[]);
    assert!(
        out.contains(
            "value_array: 3.1415927 [0, -1, -2, -3, -4, -5, -6, -7, -8, -9] counter 4000 ok"
        ),
        "{out}"
    );
}

#[test]
fn pipe_echo_example_echoes_every_message_and_reports_the_size_a_small_buffer_needs() {
    let out = run_example(&build_example("pipe_echo.c"), &[]);
    assert!(out.contains("pipe_echo: 100 messages echoed ok"), "{out}");
}

#[test]
fn spsc_stream_example_delivers_every_tick_once_in_order_then_end_of_stream() {
    let out = run_example(&build_example("spsc_stream.c"), &[]);
    assert!(
        out.contains("spsc_stream: 100000 ticks in order, sum 4999950000 ok"),
        "{out}"
    );
}

#[test]
fn queue_producer_consumer_example_delivers_every_job_exactly_once() {
    let out = run_example(&build_example("queue_producer_consumer.c"), &[]);
    assert!(
        out.contains("queue_producer_consumer: 10000 jobs, sum 50005000 ok"),
        "{out}"
    );
}

#[test]
fn c_producer_and_rust_consumer_share_one_named_queue_and_byte_queue() {
    const COUNT: u64 = 2000;
    let bin = build_example("xlang_queue_producer.c");
    let (q_name, b_name) = (Name::new("xqueue"), Name::new("xbytes"));
    // Rust creates the element queue (C opens it); C creates the byte queue
    // (Rust opens it). Small capacities make both sides block in turn.
    let q: Queue<u64> = Queue::create(&q_name.0, 16).unwrap();
    let child = Command::new(&bin)
        .args([&q_name.0, &b_name.0, &COUNT.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let bq: ByteQueue = open_when_created(|| ByteQueue::open(&b_name.0));
    let (mut values, mut messages) = (Vec::new(), Vec::new());
    for _ in 0..COUNT {
        values.push(q.get_timeout(Duration::from_secs(10)).unwrap());
        messages.push(bq.get_timeout(Duration::from_secs(10)).unwrap());
    }
    // The C side shut the byte queue after its last message: end of stream.
    assert!(matches!(
        bq.get_timeout(Duration::from_secs(10)),
        Err(shmprim::Error::Closed { .. })
    ));
    let out = finish_example(&bin, child);
    assert_eq!(
        values,
        (1..=COUNT).collect::<Vec<_>>(),
        "one producer's FIFO order"
    );
    let expected: Vec<Vec<u8>> = (1..=COUNT)
        .map(|i| format!("msg-{i}").into_bytes())
        .collect();
    assert_eq!(messages, expected);
    assert!(
        out.contains(&format!(
            "xlang_queue_producer: {COUNT} values and {COUNT} messages put"
        )),
        "{out}"
    );
}

#[test]
fn c_and_rust_share_named_spsc_rings_in_both_directions() {
    use shmprim::ring::spsc::SpscRing;
    const COUNT: u64 = 3000;
    let bin = build_example("xlang_spsc_peer.c");
    let (in_name, out_name) = (Name::new("xspsc-in"), Name::new("xspsc-out"));
    // Rust creates the ring of u64 (C opens it and consumes); C creates the
    // ring of 16-byte pairs (Rust opens it as [u64; 2] and consumes). The
    // capacities (16 and 8) make both sides wait for room many times.
    let ring = SpscRing::<u64>::create(&in_name.0, 16).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut child = Reaped(Some(
        Command::new(&bin)
            .args([&in_name.0, &out_name.0])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let answers: SpscRing<[u64; 2]> = open_when_created(|| SpscRing::open(&out_name.0));
    let mut rx = answers.consumer().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let (mut got, mut next) = (Vec::new(), 1);
    while got.len() < COUNT as usize {
        while next <= COUNT && tx.try_push(next).is_ok() {
            next += 1;
        }
        match rx.pop_timeout(Duration::from_millis(1)) {
            Ok(pair) => got.push(pair),
            Err(shmprim::Error::Timeout { .. }) => {
                assert!(Instant::now() < end, "the C side stalled")
            }
            Err(e) => panic!("pop: {e}"),
        }
    }
    let expected: Vec<[u64; 2]> = (1..=COUNT).map(|v| [v, v * v]).collect();
    assert_eq!(got, expected, "every value answered once, in order");
    // Closing our producer end is end-of-stream for C, which then closes its
    // producer end: end-of-stream here.
    drop(tx);
    assert!(matches!(
        rx.pop_timeout(Duration::from_secs(10)),
        Err(shmprim::Error::Closed { .. })
    ));
    let out = finish_example(&bin, child.0.take().unwrap());
    assert!(
        out.contains(&format!("xlang_spsc_peer: {COUNT} values answered")),
        "{out}"
    );
}

#[test]
fn c_and_rust_share_named_byte_rings_and_messages_come_back_reversed() {
    use shmprim::ring::spsc::SpscByteRing;
    const COUNT: usize = 4000;
    const MAX: usize = 300;
    let bin = build_example("xlang_byte_ring_peer.c");
    let (in_name, out_name) = (Name::new("xbytes-in"), Name::new("xbytes-out"));
    // Lengths 0..=300 in turn, each message's bytes depending on its number:
    // a lost, repeated, reordered or truncated message shows in the answers.
    let message = |i: usize| -> Vec<u8> { (0..i % (MAX + 1)).map(|k| (i * 7 + k) as u8).collect() };
    // A 1-KiB buffer holds at most three of the longest: both sides wait for
    // room many times.
    let ring = SpscByteRing::create(&in_name.0, 1024, MAX).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut child = Reaped(Some(
        Command::new(&bin)
            .args([&in_name.0, &out_name.0])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let answers = open_when_created(|| SpscByteRing::open(&out_name.0));
    assert_eq!(answers.max_message(), MAX);
    let mut rx = answers.consumer().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let (mut got, mut next) = (0, 0);
    let mut buf = vec![0u8; MAX];
    while got < COUNT {
        while next < COUNT && tx.try_send(&message(next)).is_ok() {
            next += 1;
        }
        match rx.recv_into_timeout(&mut buf, Duration::from_millis(1)) {
            Ok(n) => {
                let mut want = message(got);
                want.reverse();
                assert_eq!(&buf[..n], &want[..], "answer {got}");
                got += 1;
            }
            Err(shmprim::Error::Timeout { .. }) => {
                assert!(Instant::now() < end, "the C side stalled")
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
    // End-of-file for C, which then closes its producer end: end-of-file here.
    drop(tx);
    assert!(matches!(
        rx.recv_into_timeout(&mut buf, Duration::from_secs(10)),
        Err(shmprim::Error::Closed { .. })
    ));
    let out = finish_example(&bin, child.0.take().unwrap());
    let larger = (0..COUNT).filter(|&i| message(i).len() > 16).count();
    assert!(
        out.contains(&format!(
            "xlang_byte_ring_peer: {COUNT} messages answered, {larger} needed a larger buffer"
        )),
        "{out}"
    );
}

#[test]
fn c_and_rust_play_ping_pong_over_one_named_duplex_ring() {
    use shmprim::ring::duplex::DuplexRing;
    const COUNT: u64 = 5000;
    let bin = build_example("xlang_duplex_peer.c");
    let name = Name::new("xduplex");
    // Capacity 8: the bursts below fill it, so both sides wait for room.
    let ring = DuplexRing::<u64>::create(&name.0, 8).unwrap();
    let mut a = ring.end_a().unwrap();
    let mut child = Reaped(Some(
        Command::new(&bin)
            .arg(&name.0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let limit = Duration::from_secs(20);
    // One at a time (the C side answers while polling), then in bursts of 16.
    for v in 0..COUNT / 2 {
        a.send_timeout(v, limit).unwrap();
        assert_eq!(a.recv_timeout(limit).unwrap(), 3 * v + 1, "answer to {v}");
    }
    let mut next = COUNT / 2;
    while next < COUNT {
        let burst: Vec<u64> = (next..(next + 16).min(COUNT)).collect();
        let mut answers = Vec::new();
        for &v in &burst {
            while let Err(e) = a.try_send(v) {
                assert_eq!(e, shmprim::ring::spsc::TryError::Full);
                answers.push(a.recv_timeout(limit).unwrap());
            }
        }
        while answers.len() < burst.len() {
            answers.push(a.recv_timeout(limit).unwrap());
        }
        let want: Vec<u64> = burst.iter().map(|v| 3 * v + 1).collect();
        assert_eq!(answers, want, "every value answered once, in order");
        next += burst.len() as u64;
    }
    // Closing end A is end-of-file for C, which then exits.
    drop(a);
    let out = finish_example(&bin, child.0.take().unwrap());
    assert!(
        out.contains(&format!("xlang_duplex_peer: {COUNT} values answered")),
        "{out}"
    );
}

/// A child killed and reaped if the test fails before it finishes.
struct Reaped(Option<std::process::Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The first fenced block of language `lang` in the README's C section.
fn readme_block(lang: &str) -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let section = readme.split("## Using it from C").nth(1).unwrap();
    let start = section.find(&format!("```{lang}\n")).unwrap() + lang.len() + 4;
    let len = section[start..].find("```").unwrap();
    section[start..start + len].to_owned()
}

#[test]
fn the_readme_c_and_cpp_snippets_compile_cleanly() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let include = workspace_root().join("include");
    let c = readme_block("c");
    let (head, body): (Vec<&str>, Vec<&str>) = c.lines().partition(|l| l.starts_with("#include"));
    let program = format!(
        "#include <stdint.h>\n#include <stdio.h>\n{}\nint main(void) {{\n{}\nreturn 0;\n}}\n",
        head.join("\n"),
        body.join("\n")
    );
    let cpp = readme_block("cpp");
    let (chead, cbody): (Vec<&str>, Vec<&str>) =
        cpp.lines().partition(|l| l.starts_with("#include"));
    let cpp_program = format!(
        "{}\n#include <mutex>\nint main() {{\n{}\nreturn 0;\n}}\n",
        chead.join("\n"),
        cbody.join("\n")
    );
    for (file, text, compiler, std) in [
        ("readme_snippet.c", program, "cc", "-std=c11"),
        ("readme_snippet.cpp", cpp_program, "c++", "-std=c++17"),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        let out = Command::new(compiler)
            .args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror", std, "-I"])
            .arg(&include)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the README's {file} does not compile:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_c_program_inspects_its_own_segment() {
    let bin = build_example("inspect_self.c");
    let out = run_example(&bin, &[]);
    assert!(out.contains("inspect_self: ok"), "{out}");
}

#[test]
fn a_c_process_changes_a_value_and_an_array_a_rust_process_created() {
    let bin = build_example("xlang_value_peer.c");
    let (v_name, a_name, s_name) = (Name::new("xvalue"), Name::new("xarray"), Name::new("xpair"));
    let v = shmprim::Value::<f64>::create(&v_name.0, 1.25).unwrap();
    let a = shmprim::Array::<i32>::create(&a_name.0, 5).unwrap();
    a.write_from(&[1, 2, 3, 4, 5]).unwrap();
    let _pair = shmprim::Value::<[u64; 2]>::create(&s_name.0, [7, 8]).unwrap();
    let out = run_example(&bin, &[&v_name.0, &a_name.0, &s_name.0]);
    assert!(out.contains("xlang_value_peer: ok"), "{out}");
    assert_eq!(v.get().unwrap(), 2.5);
    let mut elems = [0i32; 5];
    a.read_into(&mut elems).unwrap();
    assert_eq!(elems, [-1, -2, -3, -4, -5]);
}

#[test]
fn pool_example_loses_only_the_aborting_task() {
    let out = run_example(&build_example("pool_map.c"), &[]);
    assert!(
        out.contains("pool_map: 0 1 4 9 16 25 lost 49 64 81 ok"),
        "{out}"
    );
}

#[test]
fn cpp_pool_reports_each_task_on_its_own() {
    let out = run_example(&build_example("cpp_pool.cpp"), &[]);
    assert!(out.contains("cpp_pool: 8 ok, 1 failed, 1 lost"), "{out}");
}
