//! `shmprim bench` end to end, through the built binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_shmprim");

/// Entries of /dev/shm and /dev/mqueue (where mounted) made by the bench run
/// of process `pid`.
fn leftovers_of(pid: u32) -> Vec<String> {
    let prefix = format!("shmprim-bench-{pid}-");
    ["/dev/shm", "/dev/mqueue"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// The children of process `pid` (by the parent pid in /proc).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                // Fields after the parenthesised command name: state, ppid, ...
                let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
                rest.split_whitespace().nth(1) == Some(&pid.to_string())
            })
        })
        .collect()
}

/// Entries of /dev/shm whose name starts with `prefix`.
fn dev_shm_starting(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Runs `shmprim bench --quick --runs 1` with `filters`; its pid and stdout,
/// after checking that it succeeded.
fn quick_run(filters: &[&str]) -> (u32, String) {
    let mut cmd = Command::new(EXE);
    cmd.args(["bench", "--quick", "--runs", "1"]);
    for f in filters {
        cmd.args(["--filter", f]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shmprim");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for shmprim");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "shmprim bench failed:\n{stdout}");
    (pid, stdout)
}

/// Every row whose reference name contains `peer` was measured, `count` of
/// them; nothing of the run is left in /dev/shm, and no child.
fn assert_measured_and_clean(pid: u32, stdout: &str, peer: &str, count: usize) {
    let rows: Vec<&str> = stdout.lines().filter(|l| l.contains(peer)).collect();
    assert_eq!(
        rows.len(),
        count,
        "expected {count} {peer}rows in:\n{stdout}"
    );
    for row in rows {
        assert!(
            !row.contains("n/a") && !row.contains("FAILED") && !row.contains("skipped"),
            "a row did not run: {row}"
        );
    }
    assert_eq!(leftovers_of(pid), Vec::<String>::new());
    assert!(wait_until(Duration::from_secs(5), || children_of(pid)
        .into_iter()
        .all(gone)));
}

/// Whether process `pid` is gone (or a zombie waiting for its reaper).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

#[test]
fn quick_bench_of_one_figure_prints_its_row_writes_json_and_leaves_dev_shm_clean() {
    let json = std::env::temp_dir().join(format!("shmprim-cli-bench-{}.json", std::process::id()));
    let child = Command::new(EXE)
        .args([
            "bench",
            "--quick",
            "--runs",
            "1",
            "--filter",
            "pingpong-wait",
            "--json",
        ])
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run shmprim");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for shmprim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "shmprim bench failed: {}\n{stdout}\n{stderr}",
        out.status
    );

    let row = stdout
        .lines()
        .find(|l| l.starts_with("pingpong-wait"))
        .unwrap_or_else(|| panic!("no pingpong-wait row in:\n{stdout}"));
    assert!(row.contains("bare futex ping-pong"), "{row}");
    assert!(!row.contains("FAILED") && !row.contains("n/a"), "{row}");
    assert!(
        !stdout.contains("spsc-u64"),
        "the filter let other figures through"
    );

    let text = std::fs::read_to_string(&json).expect("the JSON file was written");
    let _ = std::fs::remove_file(&json);
    assert!(text.contains("\"id\":\"pingpong-wait\""), "{text}");
    assert!(text.contains("\"status\":\"measured\""), "{text}");

    assert_eq!(leftovers_of(pid), Vec::<String>::new());
}

/// SIGINT at several moments of the start-up (children being spawned, the
/// measurement running): each time every object and child is gone afterwards.
#[test]
fn sigint_mid_run_removes_every_object_and_child() {
    for delay_ms in [0, 1, 2, 5, 20, 100] {
        sigint_after(Duration::from_millis(delay_ms));
    }
}

fn sigint_after(delay: Duration) {
    let mut child = Command::new(EXE)
        .args(["bench", "--filter", "mpmc-4p4c", "--runs", "50"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run shmprim");
    let pid = child.id();
    let started = wait_until(Duration::from_secs(30), || {
        !leftovers_of(pid).is_empty() && !children_of(pid).is_empty()
    });
    let kids = children_of(pid);
    if !started {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the run never created a segment and children");
    }
    std::thread::sleep(delay);
    let sent = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shmprim did not exit after SIGINT ({delay:?} after the start)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(130));
    assert_eq!(leftovers_of(pid), Vec::<String>::new());
    assert!(
        wait_until(Duration::from_secs(5), || kids.iter().all(|&k| gone(k))),
        "children still running {delay:?} after the start: {kids:?}"
    );
}

/// Every Boost.Interprocess row runs once (quick, one round) and is measured,
/// not skipped (CI installs Boost's headers, so the suite always builds
/// them); afterwards nothing of the run or of Boost's is left in /dev/shm
/// (its named semaphores included) and no child is left.
#[test]
fn the_boost_rows_run_and_leave_nothing_behind() {
    let (pid, stdout) = quick_run(&[
        "mpmc-1p1c",
        "mpmc-2p2c",
        "mpmc-4p4c",
        "queue-rtt",
        "mutex-",
        "semaphore-rtt",
    ]);
    assert_measured_and_clean(pid, &stdout, "Boost ", 7);
    assert_eq!(
        dev_shm_starting(&format!("sem.shmprim-bench-{pid}-")),
        Vec::<String>::new()
    );
}

/// Every iceoryx2 row runs once (quick, one round) and is measured; its
/// services had unique names and went with their ports, and the run removed
/// iceoryx2's machine-wide files it made, so nothing of iceoryx2's is left in
/// /dev/shm, and no child is left.
#[test]
fn the_iceoryx2_rows_run_and_leave_nothing_behind() {
    let before = dev_shm_starting("iox2_");
    let (pid, stdout) = quick_run(&[
        "spsc-u64",
        "spsc-bytes-64",
        "pingpong-spin-duplex",
        "event-rtt",
    ]);
    assert_measured_and_clean(pid, &stdout, "iceoryx2 ", 5);
    let new: Vec<String> = dev_shm_starting("iox2_")
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    assert_eq!(new, Vec::<String>::new());
}
