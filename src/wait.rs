//! Waiting on a 32-bit word in shared memory: spin briefly, then sleep in the
//! kernel with a *shared* futex, until the word changes or a deadline passes.
//!
//! # Protocol
//!
//! A waiter and a waker share two words: the `word` whose change the waiter
//! awaits, and a `waiters` count of processes that may be asleep on it.
//!
//! | waiter                                   | waker                                   |
//! |------------------------------------------|-----------------------------------------|
//! | spin while `word == expected`            | change `word`                           |
//! | `waiters += 1`                           | `fence(SeqCst)`                         |
//! | `fence(SeqCst)`                          | if `waiters > 0`: `futex_wake(word)`    |
//! | if `word == expected`: `futex_wait(word)`|                                         |
//! | `waiters -= 1`                           |                                         |
//!
//! The two `SeqCst` fences form a store-buffer (Dekker) pair: either the waker's
//! fence comes first in the total order, and the waiter's load of `word` sees the
//! change (it does not sleep), or the waiter's fence comes first, and the waker's
//! load of `waiters` sees the registration (it wakes). The kernel re-checks
//! `word == expected` atomically with queueing the sleeper, so a change made
//! between the waiter's check and its sleep makes `futex_wait` return at once.
//! Hence no lost wake-up, and a waker with nobody asleep makes no syscall.
//!
//! Under `--cfg shmprim_loom` the futex is replaced by a loom mutex and condition
//! variable that model the kernel's atomic check-and-sleep, so loom finds a lost
//! wake-up as a deadlock.

use std::time::Duration;

use crate::sync::atomic::{AtomicU32, Ordering, fence};

/// Iterations of the spin phase before a waiter goes to sleep. Each iteration is
/// one load and one `spin_loop` hint (a few tens of nanoseconds), so the spin
/// lasts a few microseconds: longer than a cache-line hand-off, shorter than a
/// futex round trip on a virtual machine.
const SPIN_ITERATIONS: u32 = 256;

/// A point in time on `CLOCK_MONOTONIC` by which a blocking operation gives up.
///
/// ```
/// use std::time::Duration;
/// use shmprim::Deadline;
///
/// assert!(!Deadline::never().has_passed());
/// assert!(Deadline::now().has_passed());
/// assert!(!Deadline::after(Duration::from_secs(60)).has_passed());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    /// Nanoseconds on `CLOCK_MONOTONIC`; `u64::MAX` means never.
    ns: u64,
}

impl Deadline {
    /// A deadline that never passes: wait forever.
    pub const fn never() -> Deadline {
        Deadline { ns: u64::MAX }
    }

    /// A deadline that has already passed: try once, do not wait.
    pub fn now() -> Deadline {
        Deadline {
            ns: crate::sys::time::monotonic_ns(),
        }
    }

    /// The deadline `timeout` from now (saturating: a huge timeout never passes).
    pub fn after(timeout: Duration) -> Deadline {
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        Deadline {
            ns: crate::sys::time::monotonic_ns().saturating_add(ns),
        }
    }

    /// `None` waits forever, `Some(d)` waits at most `d`.
    pub fn from_timeout(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::never(), Deadline::after)
    }

    /// The C convention: negative waits forever, `0` tries once, positive waits
    /// that many nanoseconds.
    pub fn from_c_nanos(timeout_ns: i64) -> Deadline {
        match timeout_ns {
            t if t < 0 => Deadline::never(),
            0 => Deadline::now(),
            t => Deadline::after(Duration::from_nanos(t as u64)),
        }
    }

    /// Whether this deadline is [`Deadline::never`].
    pub fn is_never(self) -> bool {
        self.ns == u64::MAX
    }

    /// Whether the deadline is behind us.
    ///
    /// Under loom, time does not advance, so every finite deadline counts as
    /// passed: that models a timer expiring at the earliest moment it is checked.
    pub fn has_passed(self) -> bool {
        if self.is_never() {
            return false;
        }
        if cfg!(shmprim_loom) {
            return true;
        }
        crate::sys::time::monotonic_ns() >= self.ns
    }

    /// Time left, `None` for a deadline that never passes.
    pub fn remaining(self) -> Option<Duration> {
        if self.is_never() {
            None
        } else {
            Some(Duration::from_nanos(
                self.ns.saturating_sub(crate::sys::time::monotonic_ns()),
            ))
        }
    }

    fn as_futex_deadline(self) -> Option<u64> {
        (!self.is_never()).then_some(self.ns)
    }
}

/// The deadline passed before the awaited change happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

/// Blocks while `word == expected`: returns `Ok(())` once the word is seen to
/// differ, `Err(TimedOut)` if `deadline` passes first. Spurious wake-ups and
/// `EINTR` are absorbed here.
///
/// `waiters` counts sleepers on `word`; it must be the same count that wakers
/// pass to [`wake`] for this `word`.
pub fn wait_while_eq(
    word: &AtomicU32,
    waiters: &AtomicU32,
    expected: u32,
    deadline: Deadline,
) -> Result<(), TimedOut> {
    for _ in 0..SPIN_ITERATIONS {
        // Acquire: pairs with the waker's release of whatever it published before
        // changing `word`, so a caller that sees the change also sees the data.
        if word.load(Ordering::Acquire) != expected {
            return Ok(());
        }
        if cfg!(shmprim_loom) {
            break;
        }
        crate::sync::spin_hint();
    }
    loop {
        if deadline.has_passed() {
            return if word.load(Ordering::Acquire) != expected {
                Ok(())
            } else {
                Err(TimedOut)
            };
        }
        waiters.fetch_add(1, Ordering::Relaxed);
        // SeqCst fence: pairs with the fence in `wake` (see the module's table).
        fence(Ordering::SeqCst);
        if word.load(Ordering::Acquire) != expected {
            waiters.fetch_sub(1, Ordering::Relaxed);
            return Ok(());
        }
        let timed_out = sleep(word, expected, deadline);
        waiters.fetch_sub(1, Ordering::Relaxed);
        // Acquire: as in the spin phase.
        if word.load(Ordering::Acquire) != expected {
            return Ok(());
        }
        if timed_out {
            return Err(TimedOut);
        }
    }
}

/// Wakes up to `n` sleepers on `word` (`u32::MAX` for all), making no syscall when
/// `waiters` says nobody sleeps. The caller must have changed `word` before
/// calling this.
pub fn wake(word: &AtomicU32, waiters: &AtomicU32, n: u32) {
    // SeqCst fence: pairs with the waiter's fence between its registration in
    // `waiters` and its re-check of `word`.
    fence(Ordering::SeqCst);
    if waiters.load(Ordering::Relaxed) != 0 {
        wake_sleepers(word, n);
    }
}

#[cfg(not(shmprim_loom))]
fn sleep(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
    // SAFETY: `word` is a live, aligned AtomicU32 borrowed for the whole call.
    let r = unsafe {
        crate::sys::futex::futex_wait(word.as_ptr(), expected, deadline.as_futex_deadline())
    };
    r == crate::sys::futex::FutexWait::TimedOut
}

/// Wakes up to `n` sleepers on `word` unconditionally (one `futex_wake`), for
/// callers that decided themselves that somebody may sleep. The caller must
/// have changed `word` before calling this.
#[cfg(not(shmprim_loom))]
pub(crate) fn wake_sleepers(word: &AtomicU32, n: u32) {
    // SAFETY: `word` is a live, aligned AtomicU32 borrowed for the whole call.
    unsafe { crate::sys::futex::futex_wake(word.as_ptr(), n) };
}

#[cfg(shmprim_loom)]
mod model {
    //! The kernel's futex table, modelled by one loom mutex and condition variable
    //! (one hash bucket for every address: extra wake-ups are allowed).
    loom::lazy_static! {
        pub(super) static ref BUCKET: (loom::sync::Mutex<()>, loom::sync::Condvar) =
            (loom::sync::Mutex::new(()), loom::sync::Condvar::new());
    }
}

#[cfg(shmprim_loom)]
fn sleep(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
    if !deadline.is_never() {
        // A finite deadline is modelled as expiring now (see `Deadline::has_passed`).
        return true;
    }
    let _ = deadline.as_futex_deadline();
    let (lock, cond) = &*model::BUCKET;
    let guard = lock.lock().unwrap();
    // The kernel checks the word under the bucket lock, as here.
    if word.load(Ordering::Relaxed) == expected {
        drop(cond.wait(guard).unwrap());
    }
    false
}

/// The loom model of `wake_sleepers` above.
#[cfg(shmprim_loom)]
pub(crate) fn wake_sleepers(_word: &AtomicU32, _n: u32) {
    let (lock, cond) = &*model::BUCKET;
    let _guard = lock.lock().unwrap();
    cond.notify_all();
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    struct Shared {
        word: AtomicU32,
        waiters: AtomicU32,
    }

    /// One waiter, one waker: the waiter always returns (a lost wake-up would
    /// leave it asleep forever, which loom reports as a deadlock).
    #[test]
    fn loom_wait_wake_no_lost_wakeup() {
        loom::model(|| {
            let s = Arc::new(Shared {
                word: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
            });
            let s2 = s.clone();
            let waker = loom::thread::spawn(move || {
                s2.word.store(1, Ordering::Release);
                wake(&s2.word, &s2.waiters, u32::MAX);
            });
            assert_eq!(
                wait_while_eq(&s.word, &s.waiters, 0, Deadline::never()),
                Ok(())
            );
            assert_eq!(s.word.load(Ordering::Acquire), 1);
            waker.join().unwrap();
        });
    }

    /// Two waiters and one waker that wakes all: both return.
    #[test]
    fn loom_wake_all_reaches_every_waiter() {
        loom::model(|| {
            let s = Arc::new(Shared {
                word: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
            });
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    loom::thread::spawn(move || {
                        wait_while_eq(&s.word, &s.waiters, 0, Deadline::never()).unwrap();
                    })
                })
                .collect();
            s.word.store(1, Ordering::Release);
            wake(&s.word, &s.waiters, u32::MAX);
            for w in waiters {
                w.join().unwrap();
            }
        });
    }

    /// A finite deadline with no write returns `TimedOut`, never hangs.
    #[test]
    fn loom_deadline_without_write_times_out() {
        loom::model(|| {
            let s = Shared {
                word: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
            };
            let r = wait_while_eq(
                &s.word,
                &s.waiters,
                0,
                Deadline::after(Duration::from_millis(1)),
            );
            assert_eq!(r, Err(TimedOut));
            assert_eq!(s.waiters.load(Ordering::Relaxed), 0);
        });
    }
}
