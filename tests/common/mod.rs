//! Support for tests that touch shared memory: unique names that are unlinked on
//! drop, and child processes made by re-executing the test binary (fork inside
//! the multi-threaded test harness is unsafe), killed and reaped on drop.
#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Environment variable carrying a child's role.
pub const ROLE_VAR: &str = "SHMPRIM_TEST_ROLE";
/// Environment variable carrying a child's arguments, separated by `\x1f`.
pub const ARGS_VAR: &str = "SHMPRIM_TEST_ARGS";

/// The start of every segment name this test process makes: what it passes
/// to `gc` and `ls`, so that they touch only its own segments.
pub fn own_prefix() -> String {
    format!("shmprim-test-{}-", std::process::id())
}

/// A segment name unique to this process and test, unlinked when dropped.
pub struct ShmName(pub String);

impl ShmName {
    pub fn new(test: &str) -> ShmName {
        ShmName(format!("shmprim-test-{}-{test}", std::process::id()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Path of the object on Linux.
    pub fn path(&self) -> String {
        format!("/dev/shm/{}", self.0)
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

impl std::ops::Deref for ShmName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A child process running `role`; killed (SIGKILL) and reaped when dropped.
pub struct ChildProc {
    child: Option<Child>,
}

/// Starts the current test binary as a child that runs only the `child_entry`
/// test of the same file, with `role` and `args` in its environment.
pub fn spawn(role: &str, args: &[&str]) -> ChildProc {
    let exe = std::env::current_exe().expect("test binary path");
    let child = Command::new(exe)
        .args([
            "--exact",
            "child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE_VAR, role)
        .env(ARGS_VAR, args.join("\x1f"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child test process");
    ChildProc { child: Some(child) }
}

impl ChildProc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child present").id()
    }

    /// Waits up to `limit` for the child to exit; panics (after killing it) if it
    /// does not.
    pub fn wait_timeout(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("child present");
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!("child did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits (bounded) and asserts the child exited successfully.
    pub fn expect_success(&mut self, limit: Duration) {
        let status = self.wait_timeout(limit);
        assert!(status.success(), "child failed: {status}");
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// In a child: the role and arguments, if this process is one.
pub fn child_role() -> Option<(String, Vec<String>)> {
    let role = std::env::var(ROLE_VAR).ok()?;
    let args = std::env::var(ARGS_VAR).unwrap_or_default();
    let args = if args.is_empty() {
        Vec::new()
    } else {
        args.split('\x1f').map(str::to_owned).collect()
    };
    Some((role, args))
}

/// Polls `cond` every millisecond until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// A tiny deterministic generator (xorshift), so that a failing round can be
/// replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next value; the seed must not be 0.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The `index`-th `u32` of a segment's data area, as an atomic.
pub fn word(seg: &shmprim::Segment, index: usize) -> &std::sync::atomic::AtomicU32 {
    assert!((index + 1) * 4 <= seg.len());
    // SAFETY: in bounds (checked), 4-byte aligned (the data area is page aligned),
    // and only ever accessed atomically by the tests.
    unsafe {
        &*seg
            .as_ptr()
            .cast::<std::sync::atomic::AtomicU32>()
            .add(index)
    }
}

/// Parses `json` with python3 and prints the Python expression `expr` evaluated
/// over it (as `d`): a JSON check with no JSON crate in the dependencies.
pub fn python_eval(json: &str, expr: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args([
            "-c",
            &format!("import json,sys; d=json.load(sys.stdin); print({expr})"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is available");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "invalid JSON or expression: {json}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
