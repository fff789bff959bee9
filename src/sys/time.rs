//! Clocks. Deadlines are nanoseconds on `CLOCK_MONOTONIC`, which is what
//! `FUTEX_WAIT_BITSET` measures absolute timeouts against.

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks always exist on Linux.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    debug_assert_eq!(rc, 0);
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Nanoseconds on `CLOCK_MONOTONIC` (since boot, excluding suspend).
pub(crate) fn monotonic_ns() -> u64 {
    #[cfg(test)]
    CLOCK_READS.with(|n| n.set(n.get() + 1));
    clock_ns(libc::CLOCK_MONOTONIC)
}

#[cfg(test)]
thread_local! {
    /// Reads of `CLOCK_MONOTONIC` by this thread, for the tests that check a
    /// timed call which need not wait reads no clock (see [`clock_reads`]).
    static CLOCK_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times this thread has read `CLOCK_MONOTONIC` (tests only).
#[cfg(all(test, not(shmprim_loom)))]
pub(crate) fn clock_reads() -> u64 {
    CLOCK_READS.with(std::cell::Cell::get)
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`), for display only.
pub(crate) fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// Splits nanoseconds into a `timespec`.
pub(crate) fn timespec_from_ns(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000).min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}
