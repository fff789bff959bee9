//! The only place that calls libc: futexes, POSIX shared memory and memfd,
//! open-file-description locks, clocks and process ids.
//!
//! Each function is a thin, safe wrapper that turns `-1`/`errno` into
//! `std::io::Error`; policy (what an error means for a segment) lives in the
//! callers.

// Under loom, wait.rs models the futex instead of calling it.
pub(crate) mod fork;
#[cfg_attr(shmprim_loom, allow(dead_code))]
pub(crate) mod futex;
pub(crate) mod lock;
#[cfg_attr(shmprim_loom, allow(dead_code))]
pub(crate) mod process;
pub(crate) mod shm;
#[cfg_attr(shmprim_loom, allow(dead_code))]
pub(crate) mod time;

/// The calling process's id.
pub(crate) fn getpid() -> u32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    let pid = unsafe { libc::getpid() };
    pid as u32
}

/// Whether a process with this pid exists (it may be a zombie, or an unrelated
/// process that reused the pid: a hint, used only where nothing better exists).
pub(crate) fn pid_exists(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks for existence.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Converts a libc return value into a `Result`, reading `errno` on `-1`.
fn cvt(rc: libc::c_int) -> std::io::Result<libc::c_int> {
    if rc == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
pub(crate) mod pthread;
