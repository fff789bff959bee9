//! `shmprim demo`: succeeds and checks itself; fails cleanly when a worker is
//! killed or on Ctrl-C; leaves nothing in /dev/shm in every case.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Names the demo with parent pid `pid` created that are still in /dev/shm.
fn leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("shmprim-demo-{pid}-");
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Pids whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) {
            // Fields after the parenthesised command name: state, ppid, ...
            let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            if rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok())
                == Some(pid)
            {
                out.push(child);
            }
        }
    }
    out
}

/// The demo in its own process group (so a test can signal it and its workers
/// without signalling itself), killed and reaped on drop.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our child's own process group.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> Demo {
    Demo(
        Command::new(env!("CARGO_BIN_EXE_shmprim"))
            .arg("demo")
            .args(args)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start shmprim demo"),
    )
}

/// Waits (bounded) for the demo to exit; returns (code, stdout, stderr).
fn finish(mut demo: Demo, limit: Duration) -> (Option<i32>, String, String) {
    let end = Instant::now() + limit;
    while demo.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "demo did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    demo.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    demo.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let code = demo.0.wait().unwrap().code();
    (code, out, err)
}

#[test]
fn demo_with_small_settings_succeeds_checks_itself_and_leaves_dev_shm_clean() {
    let demo = start(&[
        "--workers",
        "3",
        "--tasks",
        "5000",
        "--items",
        "3000",
        "--quiet",
    ]);
    let pid = demo.0.id();
    let (code, out, err) = finish(demo, Duration::from_secs(60));
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("writer  (pid"), "{out}");
    assert!(out.contains("reader  (pid"), "{out}");
    assert!(
        out.contains("ok: 3000 items through the queue, sum 4501500"),
        "{out}"
    );
    assert!(out.contains("pool: killed worker"), "{out}");
    assert!(out.contains("task 2500 reported WorkerDied"), "{out}");
    assert!(
        out.contains(
            "ok: every other task done exactly once; a replacement kept the pool at 3 workers"
        ),
        "{out}"
    );
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
    assert!(children_of(pid).is_empty());
}

#[test]
fn demo_rejects_bad_settings() {
    let (code, _, err) = finish(start(&["--workers", "0"]), Duration::from_secs(20));
    assert_eq!(code, Some(1));
    assert!(err.contains("--workers"), "{err}");
    let (code, _, err) = finish(start(&["--tasks", "4"]), Duration::from_secs(20));
    assert_eq!(code, Some(1));
    assert!(err.contains("--tasks"), "{err}");
}

/// Starts a long demo and waits until its writer and reader are up and the
/// names unlinked (every process attached): that is "running".
fn start_long() -> (Demo, u32, Vec<u32>) {
    let demo = start(&["--workers", "2", "--items", "50000000", "--quiet"]);
    let pid = demo.0.id();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let kids = children_of(pid);
        let names = leftovers(pid);
        if kids.len() == 2 && names.iter().all(|n| n.ends_with("-victim")) {
            std::thread::sleep(Duration::from_millis(200));
            return (demo, pid, kids);
        }
        assert!(Instant::now() < end, "demo processes did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn demo_fails_cleanly_when_its_reader_is_killed() {
    let (demo, pid, kids) = start_long();
    // The reader is the second child started.
    let reader = *kids.iter().max().unwrap();
    // SAFETY: kill(2) on a child process of our demo.
    unsafe { libc::kill(reader as i32, libc::SIGKILL) };
    let (code, out, err) = finish(demo, Duration::from_secs(90));
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("died"), "{err}");
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
    for k in kids {
        assert!(common_gone(k), "child {k} still running");
    }
}

/// Whether a process is gone or a zombie.
fn common_gone(pid: u32) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z"));
        if gone || Instant::now() >= end {
            return gone;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn demo_leaves_nothing_behind_on_ctrl_c() {
    let (demo, pid, kids) = start_long();
    // Ctrl-C in a terminal signals the whole foreground process group.
    // SAFETY: kill(2) on the demo's own process group.
    unsafe { libc::kill(-(pid as i32), libc::SIGINT) };
    let (code, _, err) = finish(demo, Duration::from_secs(30));
    assert_ne!(code, Some(0), "{err}");
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
    for k in kids {
        assert!(common_gone(k), "child {k} outlived the demo");
    }
}

#[test]
fn demo_cleans_up_when_interrupted_before_its_children_attach() {
    // SIGINT to the parent alone, at once: the names exist, the children may not.
    let demo = start(&["--workers", "4", "--tasks", "1000", "--quiet"]);
    let pid = demo.0.id();
    std::thread::sleep(Duration::from_millis(5));
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let (_, _, _) = finish(demo, Duration::from_secs(40));
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
}
