//! The only place that calls libc: futexes, POSIX shared memory and memfd,
//! open-file-description locks, clocks and process ids.
//!
//! Each function is a thin, safe wrapper that turns `-1`/`errno` into
//! `std::io::Error`; policy (what an error means for a segment) lives in the
//! callers.

// Under loom, wait.rs models the futex instead of calling it.
#[cfg_attr(shmprim_loom, allow(dead_code))]
pub(crate) mod futex;
pub(crate) mod lock;
pub(crate) mod shm;
#[cfg_attr(shmprim_loom, allow(dead_code))]
pub(crate) mod time;

/// The calling process's id.
pub(crate) fn getpid() -> u32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    let pid = unsafe { libc::getpid() };
    pid as u32
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
