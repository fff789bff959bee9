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

use std::cell::Cell;

use crate::sync::atomic::{AtomicU32, Ordering, fence};

/// Iterations of the spin phase before a waiter goes to sleep. Each iteration is
/// one load and one `spin_loop` hint (a few tens of nanoseconds), so the spin
/// lasts a few microseconds: longer than a cache-line hand-off, shorter than a
/// futex round trip on a virtual machine.
pub(crate) const SPIN_ITERATIONS: u32 = 256;

/// How long a waiter that must notice a dead peer sleeps before it checks
/// the participant table again (rings, pipes, queues), a lock waiter checks
/// whether the holder's thread still exists, and any sleeper re-reads the
/// word it sleeps on (so that a wake-up taken by a process that then died is
/// passed on).
pub const LIVENESS_SLICE: Duration = Duration::from_millis(50);

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
    ///
    /// It reads no clock: it is the earliest point `CLOCK_MONOTONIC` can
    /// show, so it lies behind every reading, and [`has_passed`](Self::has_passed)
    /// answers for it without one. A try (`try_lock`, or a C call with a
    /// timeout of `0`) therefore costs no clock read.
    pub const fn now() -> Deadline {
        Deadline { ns: PASSED_NS }
    }

    /// The deadline `timeout` from now (saturating: a huge timeout never passes).
    pub fn after(timeout: Duration) -> Deadline {
        if timeout.is_zero() {
            // Already passed, without reading the clock.
            return Deadline::now();
        }
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        Deadline {
            ns: crate::sys::time::monotonic_ns().saturating_add(ns),
        }
    }

    /// `None` waits forever, `Some(d)` waits at most `d`.
    pub fn from_timeout(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::never(), Deadline::after)
    }

    /// Whether this deadline is [`Deadline::never`].
    pub fn is_never(self) -> bool {
        self.ns == u64::MAX
    }

    /// Whether the deadline is behind us.
    ///
    /// Under loom, time does not advance, so every finite deadline counts as
    /// passed: that models a timer expiring at the earliest moment it is checked.
    ///
    /// Inside [`interruptible`], every deadline, [`never`](Self::never)
    /// included, counts as passed once a signal handler interrupted a wait of
    /// this thread: that is how every blocking call ends early.
    pub fn has_passed(self) -> bool {
        self.ns == PASSED_NS || interrupted() || self.passed_by_clock()
    }

    /// [`has_passed`](Self::has_passed) by the clock alone, whatever signals
    /// did: for waits that are not interruptible (a mutex's relock).
    pub(crate) fn passed_by_clock(self) -> bool {
        if self.is_never() {
            return false;
        }
        if self.ns == PASSED_NS || cfg!(shmprim_loom) {
            return true;
        }
        crate::sys::time::monotonic_ns() >= self.ns
    }

    /// Time left, `None` for a deadline that never passes.
    pub fn remaining(self) -> Option<Duration> {
        if self.is_never() {
            None
        } else if self.ns == PASSED_NS {
            Some(Duration::ZERO)
        } else {
            Some(Duration::from_nanos(
                self.ns.saturating_sub(crate::sys::time::monotonic_ns()),
            ))
        }
    }

    pub(crate) fn as_futex_deadline(self) -> Option<u64> {
        (!self.is_never()).then_some(self.ns)
    }
}

/// When a blocking call gives up, fixed only when the call first has to
/// wait: a call that finishes at once reads no clock. For the calls whose
/// waiting loop is in one place (the SPSC rings' blocking helpers, the
/// queue's general path); the others use [`try_first`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Patience {
    /// Until this deadline.
    Until(Deadline),
    /// This long from the first wait.
    Within(Duration),
}

impl Patience {
    /// The deadline, fixed (from the clock, for `Within`) on the first call.
    pub(crate) fn fix(&mut self) -> Deadline {
        match *self {
            Patience::Until(d) => d,
            Patience::Within(t) => {
                let d = Deadline::after(t);
                *self = Patience::Until(d);
                d
            }
        }
    }
}

impl From<Deadline> for Patience {
    fn from(d: Deadline) -> Patience {
        Patience::Until(d)
    }
}

/// The nanoseconds of [`Deadline::now`]: the clock's origin, behind every
/// reading of it.
const PASSED_NS: u64 = 0;

/// Runs a timed call so that a call which need not wait reads no clock: `op`
/// first gets a deadline that has passed (one try, no wait), and only if
/// `timed_out` says that try would have had to wait does it run again, with
/// the deadline `timeout` from now.
///
/// Reading `CLOCK_MONOTONIC` costs about as much as a whole uncontended
/// operation (25 to 30 ns here), so a `*_timeout` call that succeeds at once
/// ran at several times the cost of its untimed form. The timeout now counts
/// from the end of the first try, a few nanoseconds later than the call.
///
/// Only for calls whose failed try changes nothing (locks, gets, puts,
/// waits for an event): a barrier's arrival, or a condition variable's unlock,
/// must not be made twice.
#[inline]
pub fn try_first<R>(
    timeout: Duration,
    mut op: impl FnMut(Deadline) -> R,
    timed_out: impl FnOnce(&R) -> bool,
) -> R {
    let first = op(Deadline::now());
    // A zero timeout is the try just made.
    if timed_out(&first) && !timeout.is_zero() {
        op(Deadline::after(timeout))
    } else {
        first
    }
}

/// Whether a timed call's result is `Err(Timeout)`: for [`try_first`].
pub fn is_timeout<T>(r: &crate::Result<T>) -> bool {
    matches!(r, Err(crate::Error::Timeout { .. }))
}

/// The deadline passed before the awaited change happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

thread_local! {
    /// Whether this thread's waits end when a signal handler runs.
    static INTERRUPTIBLE: Cell<bool> = const { Cell::new(false) };
    /// Whether one of them did, since the innermost [`interruptible`] began.
    static INTERRUPTED: Cell<bool> = const { Cell::new(false) };
}

/// Whether an interruptible wait of this thread was interrupted (and the
/// [`interruptible`] call around it has not ended yet).
fn interrupted() -> bool {
    INTERRUPTED.with(Cell::get)
}

/// Runs `f` with this thread's waits interruptible, as `sem_wait` is: when a
/// signal handler runs during a wait (a Ctrl-C handler, a binding's
/// `KeyboardInterrupt`), the blocking call in progress ends at once, and the
/// answer is [`Error::Interrupted`](crate::Error::Interrupted) unless the call
/// had already succeeded. Outside, waits absorb signals and go on, as std's
/// do.
///
/// Every wait on a futex is covered: queues, rings, pipes, events,
/// semaphores, condition variables (the wait, not the relock), barriers and
/// values. A `Mutex` or `ReentrantMutex` lock is not: the C library restarts
/// it after the handler.
///
/// ```
/// use std::time::Duration;
/// use shmprim::{Error, Event, wait::interruptible};
///
/// let e = Event::anonymous()?;
/// // No signal arrives: the wait times out as usual.
/// let r = interruptible(|| e.wait_timeout(Duration::from_millis(5)));
/// assert!(matches!(r, Err(Error::Timeout { .. })));
/// # Ok::<(), Error>(())
/// ```
pub fn interruptible<T>(f: impl FnOnce() -> crate::Result<T>) -> crate::Result<T> {
    let (r, was_interrupted) = interruptible_with(f);
    match r {
        Err(e) if was_interrupted => Err(crate::Error::Interrupted { name: e.object() }),
        r => r,
    }
}

/// [`interruptible`] for any result: `f`'s answer and whether a signal
/// interrupted one of its waits (for callers with their own error type,
/// such as the C ABI).
pub fn interruptible_with<R>(f: impl FnOnce() -> R) -> (R, bool) {
    let outer = (INTERRUPTIBLE.with(Cell::get), interrupted());
    INTERRUPTIBLE.with(|c| c.set(true));
    INTERRUPTED.with(|c| c.set(false));
    // Restores the outer state also when `f` unwinds.
    struct Restore(bool, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            INTERRUPTIBLE.with(|c| c.set(self.0));
            INTERRUPTED.with(|c| c.set(self.1));
        }
    }
    let restore = Restore(outer.0, outer.1);
    let r = f();
    let was = interrupted();
    drop(restore);
    (r, was)
}

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
    // A try (`Deadline::now()`) does not spin: that would only delay its
    // answer by the whole spin (several microseconds). It looks once, below.
    let spins = if deadline.ns == PASSED_NS {
        0
    } else {
        SPIN_ITERATIONS
    };
    for _ in 0..spins {
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

/// Sleeps on `word` while it holds `expected`, for one slice at most: until
/// `deadline` or [`LIVENESS_SLICE`], whichever comes first. Returns whether
/// `deadline` has passed, or (in an [`interruptible`] thread) whether a
/// signal handler ran: a futex wait with a deadline, which every one here
/// has, always ends with `EINTR` when a handler runs, whatever `SA_RESTART`
/// says.
///
/// The slice is what makes a wake-up that a dying process consumed harmless:
/// a semaphore's post or a condvar's `notify_one` wakes one sleeper, and if
/// that one is killed before it acts on the change, every other sleeper
/// still re-reads the word within a slice, finds it changed, and takes the
/// permit or the notification in its place.
#[cfg(not(shmprim_loom))]
fn sleep(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
    use crate::sys::futex::FutexWait;
    let interruptible = INTERRUPTIBLE.with(Cell::get);
    let until = deadline.min(Deadline::after(LIVENESS_SLICE));
    // SAFETY: `word` is a live, aligned AtomicU32 borrowed for the whole call.
    let r = unsafe {
        crate::sys::futex::futex_wait(word.as_ptr(), expected, until.as_futex_deadline())
    };
    match r {
        FutexWait::Woken => {
            after_wake();
            false
        }
        FutexWait::Returned => false,
        FutexWait::TimedOut => deadline.has_passed(),
        FutexWait::Interrupted if interruptible => {
            INTERRUPTED.with(|c| c.set(true));
            true
        }
        FutexWait::Interrupted => false,
    }
}

/// The hook [`set_after_wake_hook`] installed, as a function pointer cast to
/// a data pointer (null: none). A process-local static, hence std's atomic.
#[cfg(not(shmprim_loom))]
static AFTER_WAKE: std::sync::atomic::AtomicPtr<()> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Installs (or, with `None`, removes) a function that every thread of this
/// process calls right after a futex wake-up ended its sleep in a shmprim
/// wait (a lock, a semaphore, a condvar, an event, a barrier), before it
/// looks at what changed. For tests of the worst moment to die: a hook that
/// stops the process makes "woken, then killed before acting" deterministic.
#[doc(hidden)]
#[cfg(not(shmprim_loom))]
pub fn set_after_wake_hook(hook: Option<fn()>) {
    let p = hook.map_or(std::ptr::null_mut(), |f| f as *mut ());
    // Relaxed: the hook is set before the waits it is meant for, in program
    // order or before the threads that wait are started.
    AFTER_WAKE.store(p, std::sync::atomic::Ordering::Relaxed);
}

/// Calls the after-wake hook, if one is installed.
#[cfg(not(shmprim_loom))]
#[inline]
pub(crate) fn after_wake() {
    // Relaxed: see `set_after_wake_hook`.
    let p = AFTER_WAKE.load(std::sync::atomic::Ordering::Relaxed);
    if !p.is_null() {
        // SAFETY: the only non-null values ever stored are `fn()` pointers
        // (`set_after_wake_hook`), and a function pointer round-trips through
        // a data pointer on every platform this crate builds for.
        let hook = unsafe { std::mem::transmute::<*mut (), fn()>(p) };
        hook();
    }
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
    model_sleep(word, expected, deadline)
}

/// The loom model of one futex sleep: returns whether it timed out (a finite
/// deadline expires at once).
#[cfg(shmprim_loom)]
pub(crate) fn model_sleep(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
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

/// Timed calls that can finish at once read no clock (see [`try_first`]);
/// those that cannot still wait out their timeout and say `Timeout`.
#[cfg(all(test, not(shmprim_loom)))]
mod timed_call_tests {
    use std::time::{Duration, Instant};

    use crate::sys::time::clock_reads;
    use crate::{
        Array, ByteQueue, Deadline, DuplexRing, Error, Event, LockError, Mutex, Pipe, Queue,
        ReentrantMutex, Semaphore, SpscByteRing, SpscRing, Value,
    };

    const LONG: Duration = Duration::from_secs(10);
    const SHORT: Duration = Duration::from_millis(20);

    /// Runs `op` and returns its result with the number of clock reads it made.
    fn reads<R>(op: impl FnOnce() -> R) -> (R, u64) {
        let before = clock_reads();
        let r = op();
        (r, clock_reads() - before)
    }

    /// Runs `op`, which must succeed without reading the clock; its value.
    #[track_caller]
    fn quick<T, E: std::fmt::Debug>(op: impl FnOnce() -> Result<T, E>) -> T {
        let (r, n) = reads(op);
        assert_eq!(n, 0, "clock reads");
        r.unwrap()
    }

    /// `op` (a timed call that cannot finish) returns after at least `SHORT`
    /// with what `is_timeout` accepts.
    fn waits_out<R: std::fmt::Debug>(op: impl FnOnce() -> R, is_timeout: impl FnOnce(&R) -> bool) {
        let t0 = Instant::now();
        let r = op();
        assert!(t0.elapsed() >= SHORT, "returned early: {r:?}");
        assert!(is_timeout(&r), "{r:?}");
    }

    #[test]
    fn now_is_passed_and_reads_no_clock() {
        let (d, n) = reads(Deadline::now);
        assert_eq!(n, 0);
        let (passed, n) = reads(|| d.has_passed());
        assert!(passed);
        assert_eq!((d.remaining(), n), (Some(Duration::ZERO), 0));
        assert!(d < Deadline::after(Duration::from_nanos(1)));
        assert_eq!(reads(|| Deadline::after(Duration::ZERO)), (d, 0));
    }

    #[test]
    fn queue_timed_calls_read_the_clock_only_to_wait() {
        let q = Queue::<u64>::anonymous(2).unwrap();
        q.put(0).unwrap();
        q.get().unwrap();
        assert_eq!(quick(|| q.put_timeout(7, LONG)), ());
        assert_eq!(quick(|| q.put_many_timeout(&[8], LONG)), 1);
        assert_eq!(quick(|| q.get_timeout(LONG)), 7);
        let mut buf = [0u64; 4];
        assert_eq!(quick(|| q.get_many_timeout(&mut buf, LONG)), 1);
        waits_out(
            || q.get_timeout(SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );
        q.put_many(&[1, 2]).unwrap();
        waits_out(
            || q.put_timeout(3, SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );

        let b = ByteQueue::anonymous(1, 16).unwrap();
        assert_eq!(quick(|| b.put_timeout(b"hi", LONG)), ());
        waits_out(
            || b.put_timeout(b"no", SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );
        assert_eq!(quick(|| b.get_timeout(LONG)), b"hi".to_vec());
        waits_out(
            || b.get_timeout(SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );
    }

    #[test]
    fn ring_timed_calls_read_the_clock_only_to_wait() {
        let r = SpscRing::<u64>::anonymous(1).unwrap();
        let (mut tx, mut rx) = (r.producer().unwrap(), r.consumer().unwrap());
        assert_eq!(quick(|| tx.push_timeout(5, LONG)), ());
        waits_out(
            || tx.push_timeout(6, SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );
        assert_eq!(quick(|| rx.pop_timeout(LONG)), 5);
        waits_out(
            || rx.pop_timeout(SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );

        let r = SpscByteRing::anonymous(64, 16).unwrap();
        let (mut tx, mut rx) = (r.producer().unwrap(), r.consumer().unwrap());
        assert_eq!(quick(|| tx.send_timeout(b"ab", LONG)), ());
        assert_eq!(quick(|| tx.send_timeout(b"cd", LONG)), ());
        assert_eq!(quick(|| rx.recv_timeout(LONG)), b"ab".to_vec());
        let mut buf = [0u8; 16];
        assert_eq!(quick(|| rx.recv_into_timeout(&mut buf, LONG)), 2);
        waits_out(
            || rx.recv_timeout(SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );

        let d = DuplexRing::<u32>::anonymous(1).unwrap();
        let (mut a, mut b) = (d.end_a().unwrap(), d.end_b().unwrap());
        assert_eq!(quick(|| a.send_timeout(9, LONG)), ());
        waits_out(
            || a.send_timeout(10, SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );
        assert_eq!(quick(|| b.recv_timeout(LONG)), 9);
        waits_out(
            || b.recv_timeout(SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );
    }

    #[test]
    fn pipe_timed_calls_read_the_clock_only_to_wait() {
        let p = Pipe::anonymous(64, 16, true).unwrap();
        let (mut a, mut b) = (p.end_a().unwrap(), p.end_b().unwrap());
        assert_eq!(quick(|| a.send_timeout(b"ping", LONG)), ());
        assert!(quick(|| b.poll(LONG)));
        assert_eq!(quick(|| b.recv_timeout(LONG)), b"ping".to_vec());
        waits_out(|| b.poll(SHORT), |r| matches!(r, Ok(false)));
        waits_out(
            || b.recv_timeout(SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );
    }

    /// Busy-polling an empty pipe reads the clock (for the rate of its
    /// liveness look) on one empty answer in 32, not on each; the first empty
    /// answer still looks at once.
    #[test]
    fn polling_an_empty_pipe_reads_the_clock_once_in_32_tries() {
        let p = Pipe::anonymous(64, 16, true).unwrap();
        let (_a, mut b) = (p.end_a().unwrap(), p.end_b().unwrap());
        let mut buf = [0u8; 16];
        let (_, first) = reads(|| b.try_recv_into(&mut buf));
        assert_eq!(
            first, 1,
            "the first empty answer looks, and sets the next look"
        );
        let (_, n) = reads(|| {
            for _ in 0..319 {
                assert!(matches!(
                    b.try_recv_into(&mut buf),
                    Err(Error::Empty { .. })
                ));
                assert!(matches!(b.try_recv(), Err(Error::Empty { .. })));
            }
        });
        // One read per 32 answers, and one more each time a look falls due.
        assert!(
            n <= 2 * (638 / 32 + 1),
            "{n} clock reads in 638 empty polls"
        );
    }

    #[test]
    fn lock_timed_calls_read_the_clock_only_to_wait() {
        let m = Mutex::anonymous(1u64).unwrap();
        assert_eq!(quick(|| m.lock_timeout(LONG).map(|g| *g)), 1);
        assert_eq!(quick(|| m.try_lock().map(|g| *g)), 1);
        let timed_out = |r: &Result<(), LockError<()>>| {
            matches!(r, Err(LockError::Failed(Error::Timeout { .. })))
        };
        let held = m.lock().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                waits_out(
                    || m.lock_timeout(SHORT).map(drop).map_err(|e| e.map(drop)),
                    timed_out,
                )
            })
            .join()
            .unwrap();
        });
        drop(held);

        let r = ReentrantMutex::anonymous(2u32).unwrap();
        assert_eq!(quick(|| r.lock_timeout(LONG).map(|g| g.get())), 2);
        let v = Value::anonymous(3u32, true).unwrap();
        assert_eq!(quick(|| v.lock_timeout(LONG).map(|g| *g)), 3);
        let a = Array::<u32>::anonymous(2, true).unwrap();
        assert_eq!(quick(|| a.lock_timeout(LONG).map(|g| g.len())), 2);
    }

    /// A try on a word that has not changed answers at once: no spin. (Before,
    /// `wait_while_eq` spun 256 hints before it looked at the deadline.)
    #[test]
    fn a_try_does_not_spin() {
        let s = Semaphore::anonymous(0, 1).unwrap();
        let e = Event::anonymous().unwrap();
        let before = crate::sync::spin_hints();
        assert!(!s.try_acquire());
        assert!(matches!(
            s.acquire_deadline(Deadline::now()),
            Err(Error::Timeout { .. })
        ));
        assert!(matches!(
            e.wait_timeout(Duration::ZERO),
            Err(Error::Timeout { .. })
        ));
        assert_eq!(crate::sync::spin_hints() - before, 0);
    }

    #[test]
    fn semaphore_and_event_timed_calls_read_the_clock_only_to_wait() {
        let s = Semaphore::anonymous(1, 1).unwrap();
        assert_eq!(quick(|| s.acquire_timeout(LONG)), ());
        waits_out(
            || s.acquire_timeout(SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );

        let e = Event::anonymous().unwrap();
        waits_out(
            || e.wait_timeout(SHORT),
            |r| matches!(r, Err(Error::Timeout { .. })),
        );
        e.set();
        let (r, clock_reads) = reads(|| e.wait_timeout(LONG));
        assert!(r.is_ok());
        assert_eq!(clock_reads, 0);
    }
}
