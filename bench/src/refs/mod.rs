//! The references measured beside shmprim, one file per family.
//!
//! This code is deliberately raw: it calls libc directly (futex, pthreads,
//! pipes, sockets, message queues, affinity) so that each reference is the
//! plain thing people would write by hand. It is therefore exempt from the
//! crate's "libc only in `src/sys`" rule, and it shares no code with the
//! library (its mappings are [`RawShm`](super::proc::RawShm), not `Segment`).
//!
//! Each reference returns its value in its figure's unit and checks what it
//! received (a checksum or a sequence), so a broken reference fails loudly
//! instead of reporting a fast wrong number.

pub(crate) mod atomics;
pub(crate) mod boost;
pub(crate) mod c_ring;
pub(crate) mod iceoryx;
pub(crate) mod os_ipc;
pub(crate) mod pingpong;
pub(crate) mod pool;
pub(crate) mod pthread;
pub(crate) mod python;
pub(crate) mod raw_sync_mutex;
pub(crate) mod threads;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::Res;
use super::proc::PEER_TIMEOUT;

/// Spins until `word == want` (Acquire), checking the clock every 64 Ki spins so
/// that a dead peer gives an error instead of a hang.
#[inline]
pub(crate) fn spin_until_eq(word: &AtomicU32, want: u32, started: Instant) -> Res<()> {
    let mut i: u32 = 0;
    // Acquire: pairs with the peer's Release store of `want`.
    while word.load(Ordering::Acquire) != want {
        i = i.wrapping_add(1);
        if i & 0xffff == 0 && started.elapsed() > PEER_TIMEOUT {
            return Err("peer did not answer in time".into());
        }
        std::hint::spin_loop();
    }
    Ok(())
}

/// Nanoseconds per operation.
pub(crate) fn ns_per(elapsed: std::time::Duration, ops: u64) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

/// Millions of messages per second.
pub(crate) fn mmsgs(elapsed: std::time::Duration, msgs: u64) -> f64 {
    msgs as f64 / elapsed.as_secs_f64() / 1e6
}

/// Always available.
pub(crate) fn always() -> bool {
    true
}

/// Maps an io error to a message naming the call.
pub(crate) fn os_err(call: &str) -> String {
    format!("{call}: {}", std::io::Error::last_os_error())
}

/// Bare `FUTEX_WAIT` on a shared (not private) futex word, with a 100 ms timeout
/// so that callers can check for a dead peer. Returns when woken, on timeout, on
/// `EAGAIN` (word already changed) or `EINTR`: callers re-check the word.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32) {
    futex_wait_timeout(word, expected, std::time::Duration::from_millis(100));
}

/// [`futex_wait`] with a timeout (below one second).
pub(crate) fn futex_wait_timeout(word: &AtomicU32, expected: u32, timeout: std::time::Duration) {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: timeout.subsec_nanos().into(),
    };
    // SAFETY: `word` is a live, aligned u32 in a shared mapping; the timeout is a
    // valid relative timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Bare `FUTEX_WAKE` of one sleeper on a shared futex word.
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not dereference the
    // remaining arguments.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            1u32,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Sleeps on `word` while it equals `current` and it is not yet `want`, until it
/// is `want`; no spinning. `Err` after the peer timeout.
pub(crate) fn futex_wait_until_eq(word: &AtomicU32, want: u32, started: Instant) -> Res<()> {
    loop {
        // Acquire: pairs with the peer's Release store of `want`.
        let seen = word.load(Ordering::Acquire);
        if seen == want {
            return Ok(());
        }
        if started.elapsed() > PEER_TIMEOUT {
            return Err("peer did not answer in time".into());
        }
        futex_wait(word, seen);
    }
}
