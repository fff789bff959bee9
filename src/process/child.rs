//! One child process: start (spawn or fork), watch, join, signal.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::ffi::OsString;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::entry::{Boot, Entry, read_result, write_result};
use super::outcome::{read_item, run};
use super::payload::Payload;
use super::payload::from_bytes;
use super::{BOOT_FD_VAR, HARNESS_TEST, Start, check_initialised};
use crate::error::{Error, Result};
use crate::sys::process::{self as sys, Ended};
use crate::sys::shm::memfd_create;

/// Numbers the default names, `Process-1`, `Process-2`, ... as Python does.
static NEXT_NUMBER: AtomicUsize = AtomicUsize::new(1);

/// Children this process started and has not reaped: pid → name.
static CHILDREN: StdMutex<BTreeMap<u32, String>> = StdMutex::new(BTreeMap::new());

/// This process's name, when it is a spawned or forked child.
static CURRENT_NAME: StdMutex<Option<String>> = StdMutex::new(None);

/// The name of this process: its [`Builder::name`] in a child, `MainProcess`
/// otherwise (Python's `current_process().name`).
pub fn current_name() -> String {
    lock(&CURRENT_NAME)
        .clone()
        .unwrap_or_else(|| "MainProcess".to_owned())
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running child, as [`active_children`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    /// Its process id.
    pub pid: u32,
    /// Its name.
    pub name: String,
}

/// The children this process started that are still running (Python's
/// `multiprocessing.active_children()`). Looking does not reap them: their
/// [`Process`] handles still report their exit.
pub fn active_children() -> Vec<ChildInfo> {
    lock(&CHILDREN)
        .iter()
        .filter(|(pid, _)| sys::is_running(**pid))
        .map(|(pid, name)| ChildInfo {
            pid: *pid,
            name: name.clone(),
        })
        .collect()
}

/// How to start a child: its name, whether it is a daemon, and (for the pool)
/// descriptors it inherits.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
    inherit: Vec<RawFd>,
}

impl Builder {
    /// A builder with Python's defaults: an automatic name, not a daemon.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The child's name (Python's `name=`); `Process-N` when not given.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// A daemon child is SIGKILLed when its parent dies, also when the parent
    /// is SIGKILLed, and when dropped while running. The kernel sends that
    /// signal when the *thread* that started the child ends: start daemons
    /// from a thread that lives as long as they should.
    pub fn daemon(mut self, yes: bool) -> Builder {
        self.daemon = yes;
        self
    }

    /// Descriptors the spawned child inherits under the same numbers.
    pub(crate) fn inherit(mut self, fds: &[RawFd]) -> Builder {
        self.inherit.extend_from_slice(fds);
        self
    }

    fn take_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("Process-{}", NEXT_NUMBER.fetch_add(1, Ordering::Relaxed)))
    }

    /// Starts a child that runs `f(arg)` by the start method `start`. Fork
    /// takes a closure instead ([`fork`](Self::fork)); asking this for
    /// [`Start::Fork`] forks a child that calls `f(arg)`.
    pub fn start<A: Payload, R: Payload>(
        &self,
        start: Start,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<Process<R>> {
        match start {
            Start::Spawn => self.spawn(f, arg),
            Start::Fork => self.fork(move || f(arg)),
        }
    }

    /// Starts a child by re-executing this program; it runs `f(arg)`.
    pub fn spawn<A: Payload, R: Payload>(&self, f: fn(A) -> R, arg: A) -> Result<Process<R>> {
        check_initialised()?;
        let entry = Entry::of(f)?;
        let name = self.take_name();
        let boot = Boot {
            parent: std::process::id(),
            daemon: self.daemon,
            name: name.clone(),
            entry,
            arg: super::to_bytes(&arg),
        };
        let fd = memfd_create("shmprim-process").map_err(|e| io_error("memfd_create", e))?;
        sys::write_all_at(fd.as_fd(), &boot.encode(), 0).map_err(|e| io_error("write", e))?;
        let cstring = |s: &[u8]| {
            CString::new(s).map_err(|_| {
                Error::invalid_argument("a NUL byte in an argument or the environment")
            })
        };
        let mut argv = vec![cstring(
            std::env::args_os()
                .next()
                .unwrap_or_else(|| OsString::from("shmprim-child"))
                .as_bytes(),
        )?];
        let harness = HARNESS_TEST.get();
        if let Some(test) = harness {
            for a in [
                test.as_str(),
                "--exact",
                "--test-threads=1",
                "-q",
                "--nocapture",
            ] {
                argv.push(cstring(a.as_bytes())?);
            }
        }
        let mut env = Vec::new();
        for (k, v) in std::env::vars_os() {
            if k != BOOT_FD_VAR {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                // A variable with a NUL cannot be passed on; leave it out.
                if let Ok(c) = CString::new(kv) {
                    env.push(c);
                }
            }
        }
        env.push(cstring(
            format!("{BOOT_FD_VAR}={}", fd.as_raw_fd()).as_bytes(),
        )?);
        let mut keep = self.inherit.clone();
        keep.push(fd.as_raw_fd());
        let pid = sys::spawn(&sys::SpawnSpec {
            path: c"/proc/self/exe",
            argv: &argv,
            env: &env,
            keep: &keep,
            null_stdin: true,
            null_stdout: harness.is_some(),
        })
        .map_err(|e| io_error("posix_spawn", e))?;
        Ok(Process::started(pid, name, self.daemon, fd))
    }

    /// Starts a child by forking this process; it runs `f` in its copy of the
    /// parent and exits. Refused when this process has more than one thread.
    pub fn fork<R: Payload>(&self, f: impl FnOnce() -> R) -> Result<Process<R>> {
        refuse_if_threaded()?;
        // SAFETY: this process has one thread (checked above), so the child is
        // a complete copy in which any code may run.
        unsafe { self.fork_unchecked(f) }
    }

    /// [`fork`](Self::fork) without the check for threads: what a fork pool's
    /// manager thread uses to replace a worker.
    ///
    /// # Safety
    /// In the child only code that takes no lock another thread of this
    /// process may have held at the fork may run: the pool's worker loop
    /// takes none, the task function is the caller's responsibility (as
    /// with Python's fork start method).
    pub(crate) unsafe fn fork_unchecked<R: Payload>(
        &self,
        f: impl FnOnce() -> R,
    ) -> Result<Process<R>> {
        let name = self.take_name();
        let fd = memfd_create("shmprim-process").map_err(|e| io_error("memfd_create", e))?;
        let parent = std::process::id();
        // SAFETY: the caller upholds the contract above.
        match unsafe { sys::fork() }.map_err(|e| io_error("fork", e))? {
            Some(pid) => Ok(Process::started(pid, name, self.daemon, fd)),
            None => {
                if self.daemon && sys::die_with_parent(parent) {
                    sys::exit_now(1);
                }
                // Another thread of the parent may have held these at the
                // fork: never wait for them in the copy.
                if let Ok(mut current) = CURRENT_NAME.try_lock() {
                    *current = Some(name);
                }
                if let Ok(mut children) = CHILDREN.try_lock() {
                    children.clear();
                }
                let mut outcome = Vec::new();
                let returned = run(&mut outcome, |out| {
                    f().encode(out);
                    Ok(())
                });
                finish(fd.as_fd(), &outcome, returned)
            }
        }
    }
}

/// `Err(ForkWithThreads)` when this process has more than one thread: what
/// every fork that lets any code run in the child checks first.
pub(crate) fn refuse_if_threaded() -> Result<()> {
    let threads = sys::thread_count().map_err(|e| io_error("/proc/self/task", e))?;
    if threads > 1 {
        return Err(Error::ForkWithThreads { threads });
    }
    Ok(())
}

fn io_error(op: &'static str, source: std::io::Error) -> Error {
    Error::Io {
        name: "<process>".to_owned(),
        op,
        source,
    }
}

/// Writes the outcome, flushes, and ends the child: exit status 0 when the
/// function returned, 1 otherwise (Python's exit code for an exception).
fn finish(fd: std::os::fd::BorrowedFd<'_>, outcome: &[u8], returned: bool) -> ! {
    use std::io::Write;
    let code = if returned { 0 } else { 1 };
    let code = match write_result(fd, outcome) {
        Ok(()) => code,
        Err(e) => {
            eprintln!("shmprim child: could not write its result: {e}");
            1
        }
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    sys::exit_now(code)
}

/// In a spawned child: reads the boot record from the inherited descriptor
/// named by `fd`, runs the function, and exits.
pub(super) fn run_spawned(fd: OsString) -> ! {
    let fail = |what: String| -> ! {
        eprintln!("shmprim child: {what}");
        sys::exit_now(2)
    };
    let raw: RawFd = match fd.to_str().and_then(|s| s.parse().ok()) {
        Some(raw) => raw,
        None => fail(format!("{BOOT_FD_VAR} is not a descriptor number: {fd:?}")),
    };
    let fd: OwnedFd = match sys::adopt_inherited(raw) {
        Ok(fd) => fd,
        Err(e) => fail(format!("boot descriptor {raw}: {e}")),
    };
    let boot = match sys::read_whole(fd.as_fd())
        .map_err(|e| io_error("read", e))
        .and_then(|bytes| Boot::decode(&bytes))
    {
        Ok(boot) => boot,
        Err(e) => fail(format!("boot record: {e}")),
    };
    if boot.daemon && sys::die_with_parent(boot.parent) {
        sys::exit_now(1);
    }
    *lock(&CURRENT_NAME) = Some(boot.name.clone());
    let mut outcome = Vec::new();
    // SAFETY: the entry came from `Entry::of` in the parent, and
    // `Boot::decode` checked that this is the parent's build.
    let returned = run(&mut outcome, |out| unsafe {
        boot.entry.call(&boot.arg, out)
    });
    finish(fd.as_fd(), &outcome, returned)
}

/// A child process (Python's `multiprocessing.Process`), started by
/// [`Process::spawn`], [`Process::fork`] or a [`Builder`], whose function
/// returns an `R`.
#[derive(Debug)]
pub struct Process<R = ()> {
    pid: u32,
    name: String,
    daemon: bool,
    result: OwnedFd,
    ended: Option<Ended>,
    _result: PhantomData<fn() -> R>,
}

impl<R: Payload> Process<R> {
    /// Spawns a child that runs `f(arg)` (see [`Builder::spawn`]).
    pub fn spawn<A: Payload>(f: fn(A) -> R, arg: A) -> Result<Process<R>> {
        Builder::new().spawn(f, arg)
    }

    /// Forks a child that runs `f` (see [`Builder::fork`]).
    pub fn fork(f: impl FnOnce() -> R) -> Result<Process<R>> {
        Builder::new().fork(f)
    }

    fn started(pid: u32, name: String, daemon: bool, result: OwnedFd) -> Process<R> {
        lock(&CHILDREN).insert(pid, name.clone());
        Process {
            pid,
            name,
            daemon,
            result,
            ended: None,
            _result: PhantomData,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it dies with its parent.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    fn poll(&mut self, block: bool) -> Result<Option<Ended>> {
        if self.ended.is_none() {
            self.ended = sys::waitpid(self.pid, block).map_err(|e| io_error("waitpid", e))?;
            if self.ended.is_some() {
                lock(&CHILDREN).remove(&self.pid);
            }
        }
        Ok(self.ended)
    }

    /// Whether the child is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.poll(false), Ok(None))
    }

    /// Python's `exitcode`: `None` while it runs, then its exit status, or
    /// minus the number of the signal that ended it.
    pub fn exitcode(&mut self) -> Option<i32> {
        self.poll(false).ok().flatten().map(Ended::exitcode)
    }

    /// Waits up to `timeout` for the child to end; its exit code when it did,
    /// `None` when it still runs.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<i32>> {
        let end = Instant::now() + timeout;
        let mut nap = Duration::from_micros(50);
        loop {
            if let Some(ended) = self.poll(false)? {
                return Ok(Some(ended.exitcode()));
            }
            let now = Instant::now();
            if now >= end {
                return Ok(None);
            }
            std::thread::sleep(nap.min(end - now));
            nap = (nap * 2).min(Duration::from_millis(5));
        }
    }

    /// Waits for the child to end and returns what its function returned:
    /// [`Error::Panicked`] with the message if it panicked,
    /// [`Error::ProcessDied`] if it ended any other way.
    pub fn join(mut self) -> Result<R> {
        let ended = self
            .poll(true)?
            .expect("a blocking waitpid reports the end");
        let outcome = read_result(&self.result).filter(|_| matches!(ended, Ended::Exited(_)));
        match outcome {
            Some(bytes) => {
                let mut input = &bytes[..];
                let item = read_item(&mut input)?;
                if !input.is_empty() {
                    return Err(crate::process::payload::malformed(
                        "bytes after a child's result",
                    ));
                }
                item.and_then(from_bytes::<R>)
            }
            _ => Err(Error::ProcessDied {
                pid: self.pid,
                exitcode: ended.exitcode(),
            }),
        }
    }

    /// Sends SIGTERM (Python's `terminate`).
    pub fn terminate(&mut self) -> Result<()> {
        self.signal(libc::SIGTERM)
    }

    /// Sends SIGKILL (Python's `kill`).
    pub fn kill(&mut self) -> Result<()> {
        self.signal(libc::SIGKILL)
    }

    fn signal(&mut self, sig: i32) -> Result<()> {
        // A reaped pid may already belong to another process: never signal it.
        if self.poll(false)?.is_some() {
            return Ok(());
        }
        sys::kill(self.pid, sig).map_err(|e| io_error("kill", e))
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        if self.ended.is_some() {
            return;
        }
        if self.daemon {
            let _ = sys::kill(self.pid, libc::SIGKILL);
        }
        if sys::waitpid(self.pid, true).is_ok() {
            lock(&CHILDREN).remove(&self.pid);
        }
    }
}
