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
        "20000",
        "--message-size",
        "100",
        "--quiet",
    ]);
    let pid = demo.0.id();
    let (code, out, err) = finish(demo, Duration::from_secs(60));
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("ok: every task done exactly once"), "{out}");
    assert_eq!(out.matches("share of the work").count(), 3, "{out}");
    assert!(out.contains("20000 tasks in"), "{out}");
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
}

#[test]
fn demo_rejects_bad_settings() {
    let (code, _, err) = finish(start(&["--workers", "0"]), Duration::from_secs(20));
    assert_eq!(code, Some(1));
    assert!(err.contains("--workers"), "{err}");
    let (code, _, err) = finish(start(&["--message-size", "4"]), Duration::from_secs(20));
    assert_eq!(code, Some(1));
    assert!(err.contains("--message-size"), "{err}");
}

/// Starts a long demo and waits until its workers are up and tasks flow.
fn start_long() -> (Demo, u32, Vec<u32>) {
    let demo = start(&["--workers", "2", "--tasks", "50000000", "--quiet"]);
    let pid = demo.0.id();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let kids = children_of(pid);
        // Names are unlinked once every worker has attached: that is "running".
        if kids.len() == 2 && leftovers(pid).is_empty() {
            std::thread::sleep(Duration::from_millis(200));
            return (demo, pid, kids);
        }
        assert!(Instant::now() < end, "demo workers did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn demo_fails_cleanly_when_a_worker_is_killed() {
    let (demo, pid, kids) = start_long();
    // SAFETY: kill(2) on a worker process of our demo.
    unsafe { libc::kill(kids[0] as i32, libc::SIGKILL) };
    let (code, out, err) = finish(demo, Duration::from_secs(30));
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("died"), "{err}");
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
    for k in kids {
        assert!(
            !std::path::Path::new(&format!("/proc/{k}")).exists()
                || std::fs::read_to_string(format!("/proc/{k}/stat"))
                    .is_ok_and(|s| s.contains(") Z")),
            "worker {k} still running"
        );
    }
}

#[test]
fn demo_leaves_nothing_behind_on_ctrl_c() {
    let (demo, pid, _) = start_long();
    // Ctrl-C in a terminal signals the whole foreground process group.
    // SAFETY: kill(2) on the demo's own process group.
    unsafe { libc::kill(-(pid as i32), libc::SIGINT) };
    let (code, _, err) = finish(demo, Duration::from_secs(30));
    assert_ne!(code, Some(0), "{err}");
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
}

#[test]
fn demo_cleans_up_when_interrupted_before_its_workers_attach() {
    // SIGINT to the parent alone, at once: the names exist, the workers may not.
    let demo = start(&["--workers", "4", "--tasks", "1000", "--quiet"]);
    let pid = demo.0.id();
    std::thread::sleep(Duration::from_millis(5));
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let (_, _, _) = finish(demo, Duration::from_secs(40));
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
}
