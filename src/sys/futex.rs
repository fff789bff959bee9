//! `futex(2)` on a 32-bit word in shared memory.
//!
//! These are *shared* futexes: `FUTEX_PRIVATE_FLAG` is never set, because a
//! private futex is keyed by address space and would never wake another process.

use std::io;

/// What a `futex_wait` call ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FutexWait {
    /// Woken by `futex_wake` (or, rarely, spuriously): the caller re-checks
    /// its condition.
    Woken,
    /// The word already differed from `expected` (`EAGAIN`), or another
    /// error: the caller re-checks its condition.
    Returned,
    /// A signal handler ran (`EINTR`). A wait with a deadline always ends so;
    /// one without is restarted by the kernel when the handler was installed
    /// with `SA_RESTART`.
    Interrupted,
    /// The absolute deadline passed.
    TimedOut,
}

/// Sleeps while `*word == expected`, until woken or until `deadline_ns` on
/// `CLOCK_MONOTONIC` (`None`: no deadline).
///
/// # Safety
/// `word` must point to a live, 4-byte aligned `u32` (normally an `AtomicU32`)
/// that stays mapped for the duration of the call.
pub(crate) unsafe fn futex_wait(
    word: *const u32,
    expected: u32,
    deadline_ns: Option<u64>,
) -> FutexWait {
    let ts = deadline_ns.map(super::time::timespec_from_ns);
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the caller guarantees `word` is a valid aligned u32; `ts_ptr` is null
    // or points to `ts`, alive across the call. FUTEX_WAIT_BITSET takes an absolute
    // CLOCK_MONOTONIC deadline (FUTEX_CLOCK_REALTIME is not set).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word,
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        )
    };
    if rc != -1 {
        return FutexWait::Woken;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => FutexWait::TimedOut,
        Some(libc::EINTR) => FutexWait::Interrupted,
        _ => FutexWait::Returned,
    }
}

/// Wakes up to `n` processes sleeping on `word`; returns how many were woken.
///
/// # Safety
/// `word` must point to a live, 4-byte aligned `u32`.
pub(crate) unsafe fn futex_wake(word: *const u32, n: u32) -> u32 {
    let n = n.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: the caller guarantees `word` is a valid aligned u32. FUTEX_WAKE only
    // reads the address to find the hash bucket.
    let rc = unsafe { libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAKE, n) };
    if rc < 0 { 0 } else { rc as u32 }
}
