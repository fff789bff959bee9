//! Support for tests that touch shared memory: unique names that are unlinked on
//! drop, and child processes spawned through `shmprim::process` (fork inside
//! the multi-threaded test harness is unsafe), killed and reaped on drop.
#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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

/// What a test file's children run: its role dispatcher, given the role and
/// its arguments.
pub type Roles = fn((String, Vec<String>));

/// A child process playing a role; killed (SIGKILL) and reaped when dropped.
pub struct ChildProc {
    child: Option<shmprim::Process<()>>,
}

/// Starts a child (spawned through `shmprim::process`, as a daemon) that
/// plays `role` with `args` through the file's dispatcher `roles`. The test
/// file puts `shmprim::test_harness!()` at its top.
pub fn spawn_with(roles: Roles, role: &str, args: &[&str]) -> ChildProc {
    let args = args.iter().map(|a| (*a).to_owned()).collect();
    let child = shmprim::process::Builder::new()
        .name(role)
        .daemon(true)
        .spawn(roles, (role.to_owned(), args))
        .expect("spawn child process");
    ChildProc { child: Some(child) }
}

impl ChildProc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child present").pid()
    }

    /// Waits up to `limit` for the child to exit; panics (after killing it) if it
    /// does not.
    pub fn wait_timeout(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("child present");
        match child.join_timeout(limit).expect("waitpid") {
            Some(code) => {
                self.child = None;
                // The raw wait status of that exit code, as std reports it.
                ExitStatus::from_raw(if code < 0 { -code } else { code << 8 })
            }
            None => {
                self.kill();
                panic!("child did not exit within {limit:?}");
            }
        }
    }

    /// Waits (bounded) and asserts the child exited successfully.
    pub fn expect_success(&mut self, limit: Duration) {
        let status = self.wait_timeout(limit);
        assert!(status.success(), "child failed: {status}");
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        // Dropping a running daemon child kills and reaps it.
        self.child = None;
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.kill();
    }
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
