//! Cross-process plumbing for the benchmarks: raw shared mappings, child
//! processes that play a role, a start barrier in shared memory, CPU pinning,
//! and cleanup on error and on Ctrl-C.
//!
//! # Roles
//!
//! A child is spawned through `shmprim::process` (a daemon: it dies with the
//! suite) and runs [`play_role`] on its role's name, its arguments and the
//! core it pins itself to. Every executable that runs the suite (the
//! `shmprim` binary and the `xproc` bench target) calls
//! `shmprim::process::init()` first thing in `main`.
//!
//! # Start barrier
//!
//! The parent creates a control mapping ([`Control`]); each child opens it, does
//! its own setup, increments `ready` and spins until the parent stores `go`. The
//! parent starts its clock when it stores `go`, so no process start-up time is
//! measured. A child that finishes its measured part increments `done`.
//!
//! # Cleanup
//!
//! Every name the suite creates (segments, message queues) and every child pid is
//! recorded in a fixed, lock-free registry; RAII guards remove them on drop (on
//! success, error and panic alike), and a SIGINT/SIGTERM handler removes whatever
//! is still recorded, kills the children and exits with status 130.
//!
//! This module calls libc directly (mmap, shm_open, sched_setaffinity,
//! sigaction): like [`refs`](super::refs), it is benchmark scaffolding and exempt
//! from the crate's "libc only in `src/sys`" rule.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Res;

/// How long any side waits for another before giving up with an error.
pub(crate) const PEER_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Cleanup registry (async-signal-safe reads from the signal handler)
// ---------------------------------------------------------------------------

const REG_SLOTS: usize = 64;
const REG_NAME_LEN: usize = 120;

/// What a registry entry removes.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CleanupKind {
    /// A POSIX shared-memory name (`shm_unlink`).
    Shm = 1,
    /// A POSIX message queue (`mq_unlink`).
    Mq = 2,
    /// A POSIX named semaphore (`sem_unlink`).
    Sem = 3,
}

const SLOT_FREE: u8 = 0;
const SLOT_WRITING: u8 = 1;
const SLOT_SHM: u8 = 2;
const SLOT_MQ: u8 = 3;
const SLOT_SEM: u8 = 4;

struct NameSlot {
    state: AtomicU8,
    name: std::cell::UnsafeCell<[u8; REG_NAME_LEN]>,
}

// SAFETY: `name` is written only by the thread that moved `state` from FREE to
// WRITING, and read only after a Release store of SHM/MQ/SEM has published it.
unsafe impl Sync for NameSlot {}

#[allow(clippy::declare_interior_mutable_const)]
const NAME_SLOT: NameSlot = NameSlot {
    state: AtomicU8::new(SLOT_FREE),
    name: std::cell::UnsafeCell::new([0; REG_NAME_LEN]),
};
static NAMES: [NameSlot; REG_SLOTS] = [NAME_SLOT; REG_SLOTS];

#[allow(clippy::declare_interior_mutable_const)]
const PID_SLOT: AtomicU32 = AtomicU32::new(0);
static PIDS: [AtomicU32; REG_SLOTS] = [PID_SLOT; REG_SLOTS];

/// Records `name` for removal by the signal handler; returns the slot to release.
pub(crate) fn register_name(kind: CleanupKind, name: &str) -> Option<usize> {
    let bytes = name.as_bytes();
    if bytes.len() + 2 > REG_NAME_LEN {
        return None;
    }
    for (i, slot) in NAMES.iter().enumerate() {
        if slot
            .state
            .compare_exchange(
                SLOT_FREE,
                SLOT_WRITING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            // SAFETY: we own the slot (state WRITING) until the store below.
            let buf = unsafe { &mut *slot.name.get() };
            buf[0] = b'/';
            buf[1..=bytes.len()].copy_from_slice(bytes);
            buf[bytes.len() + 1] = 0;
            let state = match kind {
                CleanupKind::Shm => SLOT_SHM,
                CleanupKind::Mq => SLOT_MQ,
                CleanupKind::Sem => SLOT_SEM,
            };
            // Release: pairs with the Acquire load in `cleanup_all`, which then
            // sees the whole name.
            slot.state.store(state, Ordering::Release);
            return Some(i);
        }
    }
    None
}

/// Forgets a name recorded by [`register_name`] (after removing it).
pub(crate) fn unregister_name(slot: Option<usize>) {
    if let Some(i) = slot {
        NAMES[i].state.store(SLOT_FREE, Ordering::Release);
    }
}

/// Records a child pid for the signal handler to kill; returns the slot to release.
pub(crate) fn register_pid(pid: u32) -> Option<usize> {
    PIDS.iter().position(|p| {
        p.compare_exchange(0, pid, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    })
}

/// Forgets a pid recorded by [`register_pid`].
pub(crate) fn unregister_pid(slot: Option<usize>) {
    if let Some(i) = slot {
        PIDS[i].store(0, Ordering::Relaxed);
    }
}

/// Kills every registered child and removes every registered name. Only
/// async-signal-safe calls (kill, shm_unlink/unlink, mq_unlink, sem_unlink).
fn cleanup_all() {
    for p in &PIDS {
        let pid = p.swap(0, Ordering::Relaxed);
        if pid != 0 {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
    for slot in &NAMES {
        // Acquire: pairs with the Release store in `register_name`.
        let state = slot.state.load(Ordering::Acquire);
        if state == SLOT_SHM || state == SLOT_MQ || state == SLOT_SEM {
            let name = slot.name.get().cast::<libc::c_char>();
            // SAFETY: the published buffer holds a NUL-terminated name.
            unsafe {
                match state {
                    SLOT_SHM => libc::shm_unlink(name),
                    SLOT_MQ => libc::mq_unlink(name),
                    _ => libc::sem_unlink(name),
                };
            }
        }
    }
}

extern "C" fn on_signal(_sig: libc::c_int) {
    cleanup_all();
    // SAFETY: _exit is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(130) };
}

/// Blocks SIGINT and SIGTERM in the calling thread while alive; a signal sent
/// meanwhile is delivered when it is dropped.
struct CleanupSignalsBlocked {
    old: libc::sigset_t,
}

impl CleanupSignalsBlocked {
    fn new() -> Self {
        // SAFETY: both sets are plain values initialised by sigemptyset (and
        // pthread_sigmask, which fills `old`) before they are read.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            CleanupSignalsBlocked { old }
        }
    }
}

impl Drop for CleanupSignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: `old` is the mask pthread_sigmask returned in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

static HANDLER_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the SIGINT/SIGTERM handler that cleans up and exits (once).
pub(crate) fn install_signal_cleanup() {
    if HANDLER_INSTALLED.swap(true, Ordering::Relaxed) {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask is a
        // valid argument; the handler only makes async-signal-safe calls.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

// ---------------------------------------------------------------------------
// Names, mappings, pinning
// ---------------------------------------------------------------------------

static NAME_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Prefix of every name the suite creates in this process: `shmprim-bench-<pid>-`.
pub fn name_prefix() -> String {
    format!("shmprim-bench-{}-", std::process::id())
}

/// A fresh name `shmprim-bench-<pid>-<n>-<tag>`.
pub(crate) fn unique_name(tag: &str) -> String {
    let n = NAME_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}{n}-{tag}", name_prefix())
}

/// A fresh shared-memory name for one run, recorded for the Ctrl-C handler and
/// unlinked on drop (ignoring "not found"): give it to any shmprim primitive's
/// `create` and the run cleans up after itself whatever happens.
pub(crate) struct ShmNameGuard {
    name: String,
    reg: Option<usize>,
}

impl ShmNameGuard {
    /// A name `shmprim-bench-<pid>-<n>-<tag>`.
    pub(crate) fn new(tag: &str) -> ShmNameGuard {
        let name = unique_name(tag);
        let reg = register_name(CleanupKind::Shm, &name);
        ShmNameGuard { name, reg }
    }

    /// The name (no leading `/`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ShmNameGuard {
    fn drop(&mut self) {
        if let Ok(c) = CString::new(format!("/{}", self.name)) {
            // SAFETY: valid NUL-terminated string.
            unsafe { libc::shm_unlink(c.as_ptr()) };
        }
        unregister_name(self.reg);
    }
}

/// A `shm_open` + `mmap` mapping, independent of shmprim's `Segment` so that the
/// references share no code with the library. The creator unlinks it on drop.
pub(crate) struct RawShm {
    name: String,
    ptr: *mut u8,
    len: usize,
    owner: bool,
    reg: Option<usize>,
}

impl RawShm {
    /// Creates a zero-filled mapping of `len` bytes under a fresh name.
    pub(crate) fn create(tag: &str, len: usize) -> Res<RawShm> {
        let name = unique_name(tag);
        let reg = register_name(CleanupKind::Shm, &name);
        match Self::map(&name, len, true) {
            Ok(ptr) => {
                // Touch every page now so that no page fault lands in a measurement.
                // SAFETY: `ptr` maps `len` writable bytes that nobody else uses yet.
                unsafe { std::ptr::write_bytes(ptr, 0, len) };
                Ok(RawShm {
                    name,
                    ptr,
                    len,
                    owner: true,
                    reg,
                })
            }
            Err(e) => {
                unregister_name(reg);
                Err(e)
            }
        }
    }

    /// Opens a mapping made by [`RawShm::create`] in another process.
    pub(crate) fn open(name: &str, len: usize) -> Res<RawShm> {
        let ptr = Self::map(name, len, false)?;
        Ok(RawShm {
            name: name.to_owned(),
            ptr,
            len,
            owner: false,
            reg: None,
        })
    }

    fn map(name: &str, len: usize, create: bool) -> Res<*mut u8> {
        let cname = CString::new(format!("/{name}")).map_err(|e| e.to_string())?;
        let flags = if create {
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL
        } else {
            libc::O_RDWR
        };
        // SAFETY: `cname` is a valid NUL-terminated string.
        let fd = unsafe { libc::shm_open(cname.as_ptr(), flags, 0o600) };
        if fd < 0 {
            return Err(format!(
                "shm_open {name}: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: `fd` is an open descriptor we own; mmap of a shared file
        // mapping has no memory preconditions.
        unsafe {
            if create && libc::ftruncate(fd, len as libc::off_t) != 0 {
                let e = std::io::Error::last_os_error();
                libc::close(fd);
                libc::shm_unlink(cname.as_ptr());
                return Err(format!("ftruncate {name}: {e}"));
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            libc::close(fd);
            if p == libc::MAP_FAILED {
                let e = std::io::Error::last_os_error();
                if create {
                    libc::shm_unlink(cname.as_ptr());
                }
                return Err(format!("mmap {name}: {e}"));
            }
            Ok(p.cast())
        }
    }

    /// The name (without the leading `/`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Start of the mapping (page aligned).
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The `T` at byte `offset`, which must be in bounds and aligned for `T`;
    /// only for types that are valid for any bit pattern and used through
    /// atomics or raw pointers.
    pub(crate) fn at<T>(&self, offset: usize) -> *mut T {
        assert!(offset + std::mem::size_of::<T>() <= self.len);
        assert_eq!(offset % std::mem::align_of::<T>(), 0);
        self.ptr.wrapping_add(offset).cast()
    }

    /// The atomic `u32` at byte `offset`.
    pub(crate) fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: in bounds and aligned (checked by `at`); the mapping lives as
        // long as `self` and the word is only accessed atomically.
        unsafe { &*self.at::<AtomicU32>(offset) }
    }
}

impl Drop for RawShm {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `map`, unmapped once here.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
        if self.owner {
            if let Ok(c) = CString::new(format!("/{}", self.name)) {
                // SAFETY: valid NUL-terminated string.
                unsafe { libc::shm_unlink(c.as_ptr()) };
            }
            unregister_name(self.reg);
        }
    }
}

// SAFETY: the mapping is plain shared memory used only through atomics and raw
// pointers by code that synchronises explicitly.
unsafe impl Send for RawShm {}
// SAFETY: as above.
unsafe impl Sync for RawShm {}

/// Number of online cores. Not `available_parallelism`, which follows this
/// thread's affinity mask: once pinned (or started by a pinned parent) it says 1.
pub(crate) fn cpu_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        // SAFETY: sysconf has no memory preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        usize::try_from(n)
            .unwrap_or(1)
            .clamp(1, libc::CPU_SETSIZE as usize)
    })
}

/// Pins the calling thread to core `cpu` (no-op on a one-core machine or error).
pub(crate) fn pin_to_cpu(cpu: usize) {
    if cpu_count() < 2 {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes within it;
    // sched_setaffinity(0, ..) affects only the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % cpu_count(), &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Runs `f` with the calling thread free to run on every core, then pins it
/// back to core 0 (where the suite runs): for figures whose threads and
/// children, which inherit the mask, must spread over the cores (pools).
pub(crate) fn unpinned<T>(f: impl FnOnce() -> T) -> T {
    unpin();
    let out = f();
    pin_to_cpu(0);
    out
}

/// Lets the calling thread run on every core again.
pub(crate) fn unpin() {
    // SAFETY: as in `pin_to_cpu`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in 0..cpu_count() {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Spins (with a CPU hint, yielding now and then) until `cond` holds; `Err`
/// after [`PEER_TIMEOUT`].
pub(crate) fn spin_until(what: &str, mut cond: impl FnMut() -> bool) -> Res<()> {
    let start = Instant::now();
    let mut i: u32 = 0;
    loop {
        if cond() {
            return Ok(());
        }
        i = i.wrapping_add(1);
        if i % 1024 == 0 {
            if start.elapsed() > PEER_TIMEOUT {
                return Err(format!("timed out waiting for {what}"));
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

// ---------------------------------------------------------------------------
// Control block and sessions
// ---------------------------------------------------------------------------

const CTL_READY: usize = 0;
const CTL_GO: usize = 64;
const CTL_DONE: usize = 128;
const CTL_SIZE: usize = 4096;

/// The parent's side of a run with child processes: the control mapping and
/// the children, killed and reaped if the session is dropped unfinished.
pub(crate) struct Session {
    ctl: RawShm,
    children: Vec<ChildGuard>,
}

struct ChildGuard {
    /// A daemon child: dropping it while it runs kills and reaps it.
    child: Option<shmprim::Process<()>>,
    reg: Option<usize>,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.child = None;
        unregister_pid(self.reg);
    }
}

/// One child to start: its role, arguments, and the core to pin it to.
pub(crate) struct Spawn {
    pub(crate) role: &'static str,
    pub(crate) args: Vec<String>,
    pub(crate) cpu: Option<usize>,
}

/// Where the `k`-th of `2p` MPMC participants runs (producers first, then
/// consumers), the same for processes and threads: with one of each, the
/// producer on core 1 and the consumer on core 0; with `split`, producer `i`
/// and consumer `i` share core `i % 2`, so that each core time-shares one
/// producer and one consumer; else anywhere.
pub(crate) fn mpmc_cpu(p: u64, k: u64, split: bool) -> Option<usize> {
    let producer = k < p;
    if p == 1 {
        Some(if producer { 1 } else { 0 })
    } else if split {
        Some(((if producer { k } else { k - p }) % 2) as usize)
    } else {
        None
    }
}

impl Spawn {
    /// A child pinned to core 1 (the parent runs on core 0).
    pub(crate) fn pinned(role: &'static str, args: Vec<String>) -> Spawn {
        Spawn {
            role,
            args,
            cpu: Some(1),
        }
    }

    /// A child left free to run on any core (for runs with more processes than cores).
    pub(crate) fn free(role: &'static str, args: Vec<String>) -> Spawn {
        Spawn {
            role,
            args,
            cpu: None,
        }
    }
}

impl Session {
    /// Starts the children and waits until each has done its setup and is
    /// spinning on the start barrier.
    pub(crate) fn start(spawns: Vec<Spawn>) -> Res<Session> {
        let ctl = RawShm::create("ctl", CTL_SIZE)?;
        let mut session = Session {
            ctl,
            children: Vec::new(),
        };
        let n = spawns.len() as u32;
        for s in spawns {
            let mut args = vec![session.ctl.name().to_owned()];
            args.extend(s.args);
            let cpu = s.cpu.map(|c| c as u32);
            // The cleanup signals stay blocked from before the spawn until the
            // child's pid is registered: a SIGINT in between would otherwise
            // leave a child the handler does not know of. (The child starts
            // with no signal blocked.)
            let blocked = CleanupSignalsBlocked::new();
            let spawned = shmprim::process::Builder::new()
                .name(s.role)
                .daemon(true)
                .spawn(play_role, (s.role.to_owned(), args, cpu));
            let reg = spawned.as_ref().ok().and_then(|c| register_pid(c.pid()));
            drop(blocked);
            let child = spawned.map_err(|e| format!("spawn {}: {e}", s.role))?;
            session.children.push(ChildGuard {
                child: Some(child),
                reg,
            });
        }
        let ready = session.ctl.word(CTL_READY);
        let children = &mut session.children;
        spin_until("children to start", || {
            // Acquire: pairs with the child's Release increment after its setup.
            ready.load(Ordering::Acquire) >= n || any_exited(children)
        })?;
        if ready.load(Ordering::Acquire) < n {
            return Err("a child exited before the start barrier".into());
        }
        Ok(session)
    }

    /// Releases the children; returns the time of release (start the clock).
    pub(crate) fn go(&self) -> Instant {
        let t = Instant::now();
        // Release: pairs with the children's Acquire spin on `go`.
        self.ctl.word(CTL_GO).store(1, Ordering::Release);
        t
    }

    /// Waits until every child has marked its measured part done.
    ///
    /// Sleeps on the `done` word (a shared futex each child wakes after its
    /// increment) rather than polling: the parent often shares a core with a
    /// child being measured, and waking up every few microseconds to poll would
    /// steal that core from it. It still wakes every 10 ms to notice a child
    /// that died.
    pub(crate) fn wait_done(&mut self) -> Res<()> {
        let n = self.children.len() as u32;
        let done = self.ctl.word(CTL_DONE);
        let start = Instant::now();
        loop {
            // Acquire: pairs with the child's Release increment in `done`.
            let seen = done.load(Ordering::Acquire);
            if seen >= n || any_failed(&mut self.children) {
                break;
            }
            if start.elapsed() > PEER_TIMEOUT {
                return Err("timed out waiting for children to finish".into());
            }
            super::refs::futex_wait_timeout(done, seen, Duration::from_millis(10));
        }
        if done.load(Ordering::Acquire) < n {
            return Err("a child failed before finishing its part".into());
        }
        Ok(())
    }

    /// Waits (bounded) for every child to exit and checks its status.
    pub(crate) fn finish(mut self) -> Res<()> {
        let start = Instant::now();
        for g in &mut self.children {
            let Some(child) = g.child.as_mut() else {
                continue;
            };
            let left = PEER_TIMEOUT.saturating_sub(start.elapsed());
            match child.join_timeout(left) {
                Ok(Some(0)) => g.child = None,
                Ok(Some(code)) => {
                    g.child = None;
                    return Err(format!("child failed: exit code {code}"));
                }
                Ok(None) => return Err("child did not exit in time".into()),
                Err(e) => return Err(format!("wait: {e}")),
            }
        }
        Ok(())
    }
}

/// Whether a child has exited with a failure status (a child that finished its
/// part may exit successfully while others still work).
fn any_failed(children: &mut [ChildGuard]) -> bool {
    children.iter_mut().any(|g| {
        g.child
            .as_mut()
            .is_some_and(|c| matches!(c.exitcode(), Some(code) if code != 0))
    })
}

fn any_exited(children: &mut [ChildGuard]) -> bool {
    children
        .iter_mut()
        .any(|g| g.child.as_mut().is_some_and(|c| c.exitcode().is_some()))
}

/// A child's side: its arguments (after the control name) and the control block.
pub(crate) struct ChildCtx {
    ctl: RawShm,
    /// The role's own arguments.
    pub(crate) args: Vec<String>,
}

impl ChildCtx {
    /// Argument `i` parsed as `T`.
    pub(crate) fn arg<T: std::str::FromStr>(&self, i: usize) -> Res<T> {
        self.args
            .get(i)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("missing or bad argument {i}: {:?}", self.args))
    }

    /// Argument `i` as a string.
    pub(crate) fn str_arg(&self, i: usize) -> Res<&str> {
        self.args
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("missing argument {i}"))
    }

    /// Reports setup done and spins until the parent says go.
    pub(crate) fn ready(&self) -> Res<()> {
        // Release: pairs with the parent's Acquire spin on `ready`, publishing
        // this child's setup (e.g. its mapping of the shared state).
        self.ctl.word(CTL_READY).fetch_add(1, Ordering::Release);
        let go = self.ctl.word(CTL_GO);
        // Acquire: pairs with the Release store in `Session::go`.
        spin_until("the start signal", || go.load(Ordering::Acquire) != 0)
    }

    /// Marks this child's measured part finished and wakes the parent.
    pub(crate) fn done(&self) {
        let word = self.ctl.word(CTL_DONE);
        // Release: pairs with the Acquire load in `Session::wait_done`.
        word.fetch_add(1, Ordering::Release);
        super::refs::futex_wake(word);
    }
}

/// What a benchmark child runs: pins itself as asked, opens the control
/// block named by its first argument, and plays `role`; exits with status 1
/// (after saying why) if the role fails.
pub(crate) fn play_role((role, mut args, cpu): (String, Vec<String>, Option<u32>)) {
    let result = (|| {
        let play = super::ROLES
            .iter()
            .find(|(name, _)| *name == role)
            .map(|(_, play)| *play)
            .ok_or_else(|| format!("unknown role {role:?}"))?;
        if args.is_empty() {
            return Err("the control name is missing".to_string());
        }
        let ctl_name = args.remove(0);
        // The parent is pinned and children inherit its mask: pin to the core
        // asked for, or float over every core.
        match cpu {
            Some(cpu) => pin_to_cpu(cpu as usize),
            None => unpin(),
        }
        let ctl = RawShm::open(&ctl_name, CTL_SIZE)?;
        play(&ChildCtx { ctl, args })
    })();
    if let Err(e) = result {
        eprintln!("shmprim bench child {role}: {e}");
        std::process::exit(1);
    }
}
