//! The examples run and print what their Python originals print. Cargo
//! builds them before the tests; each runs from `target/<profile>/examples`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

mod common;

fn run(name: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let dir: PathBuf = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    let mut child = Command::new(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = std::thread::spawn(move || {
        use std::io::Read;
        let mut s = String::new();
        child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        (child.wait().unwrap(), s)
    });
    let done = common::wait_until(Duration::from_secs(60), || out.is_finished());
    if !done {
        // SAFETY: kill with the pid of the example this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        panic!("example {name} did not finish");
    }
    let (status, stdout) = out.join().unwrap();
    assert!(status.success(), "example {name}: {status}\n{stdout}");
    stdout
}

#[test]
fn pool_map_prints_the_squares() {
    assert_eq!(
        run("pool_map").trim(),
        "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
    );
}

#[test]
fn apply_async_runs_every_callback_before_join_returns() {
    let out = run("apply_async");
    for i in 0..5 {
        assert!(out.contains(&format!("Task {i} end.")), "{out}");
    }
    assert!(out.trim_end().ends_with("All subprocesses done."), "{out}");
}

#[test]
fn imap_unordered_yields_each_square_once() {
    let mut lines: Vec<String> = run("imap_unordered").lines().map(str::to_owned).collect();
    lines.sort();
    let mut want: Vec<String> = (0..12u64).map(|x| format!("{x} {}", x * x)).collect();
    want.sort();
    assert_eq!(lines, want);
}

#[test]
fn process_queue_delivers_all_six_urls() {
    let out = run("process_queue");
    for i in 1..=6 {
        assert!(out.contains(&format!("Get url{i} from queue...")), "{out}");
    }
}

#[test]
fn pipe_receives_ten_then_sees_the_end() {
    let out = run("pipe");
    assert!(out.contains("10 messages received"), "{out}");
}

#[test]
fn lock_printer_prints_each_item_on_its_own_line() {
    let mut lines: Vec<String> = run("lock_printer").lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines, ["chinese", "english", "japanese", "spanish"]);
}

#[test]
fn value_array_sees_the_childs_updates() {
    assert_eq!(
        run("value_array").trim(),
        "1 [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]"
    );
}

#[test]
fn pingpong_passes_the_ball_between_two_processes() {
    let out = run("pingpong");
    assert!(out.contains("100000 round trips between pid"), "{out}");
}
