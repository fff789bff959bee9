//! A condition variable for [`Mutex`]: Python's `multiprocessing.Condition`,
//! used like `std::sync::Condvar`.
//!
//! It is not a pthread condvar: its state is a sequence word and a count of
//! sleepers, waited on with the crate's shared futex ([`crate::wait`]), so it
//! pairs with any [`Mutex`] guard, from any process.
//!
//! # When a participant dies
//!
//! A notification is a ticket: `notify(n)` issues up to `n` tickets, never
//! more than there are registered waiters without one, and a waiter returns
//! from `wait` when it takes a ticket (or its deadline passes). A waiter that
//! a notification woke and that dies before it takes its ticket leaves the
//! ticket behind, and another waiter takes it within one slice of sleep
//! ([`LIVENESS_SLICE`](crate::wait::LIVENESS_SLICE)): a wake-up consumed by a
//! dying process is passed on. A process that dies while waiting stays
//! registered, so a later notification may issue a ticket for it; the next
//! waiter to register then takes that ticket at once, which the caller sees
//! as a spurious wake-up (waits loop on a predicate, as always). A notifier
//! that dies before notifying simply does not notify. If the *mutex* owner
//! dies, a waiter re-locking it inside `wait` gets
//! [`LockError::OwnerDied`](crate::LockError::OwnerDied), like a direct lock.
//!
//! # Protocol
//!
//! | waiter (holds the mutex)                         | notifier                                      |
//! |--------------------------------------------------|-----------------------------------------------|
//! | register: `waiting += 1`                         | change the predicate under the mutex          |
//! | unlock the mutex                                 | `tickets += min(n, waiting - tickets)`        |
//! | `s = seq`; take a ticket if there is one         | `seq += 1` (Release)                          |
//! | else wait while `seq == s` (slices), and repeat  | wake that many sleepers if `sleepers > 0`     |
//! | re-lock the mutex, re-check the predicate        |                                               |
//!
//! `waiting` and `tickets` share one 64-bit word, so a ticket is taken, and a
//! timed-out waiter deregisters, with one compare-and-swap that keeps
//! `tickets <= waiting` (a waiter whose deadline passes while every waiter
//! has a ticket takes one: it was notified). The waiter reads `s` before it
//! looks for a ticket and the notifier bumps `seq` after issuing one, so the
//! waiter either finds the ticket or the kernel refuses to sleep on a stale
//! `s`: no lost wake-up. `notify(n)` wakes `n` waiters, as Python's does,
//! never more (another waiter that wakes finds no ticket and sleeps again).
//! A notify with no registered waiter makes no system call.
//!
//! # Example
//!
//! A consumer waits until a producer (here a thread; usually another process
//! that opened both objects by name) has put something in the slot:
//!
//! ```
//! use shmprim::{Condvar, Mutex};
//! let slot = Mutex::anonymous(0u32)?;
//! let cv = Condvar::anonymous()?;
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         *slot.lock().unwrap() = 42;
//!         cv.notify_one();
//!     });
//!     let guard = cv.wait_while(slot.lock().unwrap(), |v| *v == 0).unwrap();
//!     assert_eq!(*guard, 42);
//! });
//! # Ok::<(), shmprim::Error>(())
//! ```

use std::time::Duration;

use bytemuck::Pod;

use crate::error::Result;
use crate::mutex::{LockResult, Mutex, MutexGuard};
use crate::segment::{Disposition, Kind, Options, Segment, SegmentBuilder};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{self, Deadline};

/// The condvar state in shared memory: `seq` counts notifications,
/// `sleepers` counts threads that may be asleep on `seq`, `counts` holds the
/// registered waiters and their tickets (see the module docs).
///
/// The wait is generic over how the paired lock is released and re-taken, so
/// the same state machine runs with a pthread [`Mutex`] and, under loom, with
/// a model mutex.
#[repr(C)]
#[derive(Debug)]
pub struct RawCondvar {
    /// Bumped by every notify that issued a ticket (wrapping).
    seq: AtomicU32,
    /// Sleepers on `seq` (see [`crate::wait`]).
    waiters: AtomicU32,
    /// Registered waiters (high half) and tickets not yet taken (low half).
    counts: AtomicU64,
}

/// One registered waiter in `counts`.
const WAITER: u64 = 1 << 32;

/// The waiters and tickets in a `counts` word.
fn split(c: u64) -> (u64, u64) {
    (c >> 32, c & 0xffff_ffff)
}

impl RawCondvar {
    /// Size of the state in bytes.
    pub const SIZE: usize = std::mem::size_of::<RawCondvar>();
    /// Alignment of the state.
    pub const ALIGN: usize = std::mem::align_of::<RawCondvar>();

    /// A fresh condvar (on the heap or the stack; for tests and loom).
    pub fn new() -> RawCondvar {
        RawCondvar {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            counts: AtomicU64::new(0),
        }
    }

    /// Writes a fresh condvar at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of [`RawCondvar::SIZE`] bytes, aligned to
    /// [`RawCondvar::ALIGN`], and not in use.
    pub unsafe fn init(ptr: *mut RawCondvar) {
        // SAFETY: guaranteed by the caller.
        unsafe { ptr.write(RawCondvar::new()) };
    }

    /// Waits for a notification. The caller holds the paired lock; `unlock`
    /// releases it, `relock` takes it again (whatever happens) and its result
    /// is returned, with whether `deadline` passed first.
    pub fn wait_with<R>(
        &self,
        unlock: impl FnOnce(),
        relock: impl FnOnce() -> R,
        deadline: Deadline,
    ) -> (R, bool) {
        // Read and registered while the caller holds the lock, so a notifier
        // that changes the predicate under the lock after this sees the
        // waiter, and bumps `seq` past `s0`. Relaxed: the lock orders both
        // for such a notifier.
        let s0 = self.seq.load(Ordering::Relaxed);
        self.counts.fetch_add(WAITER, Ordering::Relaxed);
        unlock();
        let timed_out = loop {
            // Acquire: pairs with the notifier's Release bump, which comes
            // after its tickets: a waiter that sees the bump sees them.
            let s = self.seq.load(Ordering::Acquire);
            // Only a notify after this waiter registered (`seq` moved past
            // `s0`) may be taken: a waiter that registers after a
            // notification must not take it from those it was meant for.
            if s != s0 && self.take_ticket() {
                break false;
            }
            if wait::wait_while_eq(&self.seq, &self.waiters, s, deadline).is_err() {
                let eligible = self.seq.load(Ordering::Acquire) != s0;
                break !self.leave(eligible);
            }
        };
        (relock(), timed_out)
    }

    /// Takes a ticket if there is one, deregistering. Returns whether it did.
    fn take_ticket(&self) -> bool {
        self.update_counts(|waiting, tickets| {
            // A scribbled word may claim tickets and no waiter: the ticket
            // is still taken, and `waiting` stays at 0.
            (tickets > 0).then(|| (waiting.saturating_sub(1), tickets - 1))
        })
    }

    /// Deregisters a waiter whose deadline passed: with a ticket if it may
    /// take one and there is one (then it was notified, and this returns
    /// `true`), else without, keeping `tickets <= waiting`.
    fn leave(&self, eligible: bool) -> bool {
        if eligible && self.take_ticket() {
            return true;
        }
        self.update_counts(|waiting, tickets| {
            let waiting = waiting.saturating_sub(1);
            Some((waiting, tickets.min(waiting)))
        });
        false
    }

    /// Applies `f` to (waiters, tickets) with a compare-and-swap loop;
    /// `None` from `f` leaves the word alone. Returns whether it changed.
    fn update_counts(&self, mut f: impl FnMut(u64, u64) -> Option<(u64, u64)>) -> bool {
        // Relaxed: the counts publish nothing (data comes with the lock, and
        // tickets with `seq`'s bump); the compare-and-swap decides.
        let mut c = self.counts.load(Ordering::Relaxed);
        loop {
            let (waiting, tickets) = split(c);
            let Some((w, t)) = f(waiting, tickets) else {
                return false;
            };
            let next = (w << 32) | (t & 0xffff_ffff);
            // Relaxed: as above.
            match self
                .counts
                .compare_exchange_weak(c, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.notify(1);
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.notify(u32::MAX);
    }

    /// Wakes up to `n` waiters (Python's `Condition.notify(n)`).
    pub fn notify(&self, n: u32) {
        let mut issued = 0;
        self.update_counts(|waiting, tickets| {
            issued = u64::from(n).min(waiting.saturating_sub(tickets));
            (issued > 0).then_some((waiting, tickets + issued))
        });
        if issued == 0 {
            return;
        }
        // Release: pairs with the waiter's Acquire load of `seq`, so a waiter
        // that sees the bump sees the tickets; the data itself is published
        // by the paired mutex.
        self.seq.fetch_add(1, Ordering::Release);
        wait::wake(
            &self.seq,
            &self.waiters,
            u32::try_from(issued).unwrap_or(u32::MAX),
        );
    }
}

impl Default for RawCondvar {
    fn default() -> RawCondvar {
        RawCondvar::new()
    }
}

/// Whether a timed wait returned because its timeout elapsed (as std's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the timeout elapsed before a notification was seen.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable in a named (or anonymous) shared-memory segment,
/// paired with any [`Mutex`]: Python's `multiprocessing.Condition`.
///
/// ```
/// use std::time::Duration;
/// use shmprim::{Condvar, Mutex};
/// # let m_name = format!("doc-cv-m-{}", std::process::id());
/// # let c_name = format!("doc-cv-c-{}", std::process::id());
/// let ready = Mutex::create(&m_name, 0u32)?;
/// let cv = Condvar::create(&c_name)?;
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         // Another process would open both by name.
///         let ready = Mutex::<u32>::open(&m_name).unwrap();
///         let cv = Condvar::open(&c_name).unwrap();
///         *ready.lock().unwrap() = 1;
///         cv.notify_all();
///     });
///     let guard = ready.lock().unwrap();
///     let (guard, timeout) = cv
///         .wait_timeout_while(guard, Duration::from_secs(10), |r| *r == 0)
///         .unwrap();
///     assert!(!timeout.timed_out());
///     assert_eq!(*guard, 1);
/// });
/// Mutex::<u32>::unlink(&m_name)?;
/// Condvar::unlink(&c_name)?;
/// # Ok::<(), shmprim::Error>(())
/// ```
#[derive(Debug)]
pub struct Condvar {
    seg: Segment,
}

impl Condvar {
    /// Creates the named condvar; `AlreadyExists` if the name is taken.
    pub fn create(name: &str) -> Result<Condvar> {
        Condvar::create_with_options(name, &Options::default())
    }

    /// [`create`](Self::create) with handle options.
    pub fn create_with_options(name: &str, opts: &Options) -> Result<Condvar> {
        let seg = builder(opts).create_with(name, |data, _| {
            // SAFETY: the fresh data area is page aligned and RawCondvar::SIZE
            // bytes long; nobody sees it before it is published.
            unsafe { RawCondvar::init(data.as_ptr().cast()) };
            Ok(())
        })?;
        Ok(Condvar { seg })
    }

    /// Opens an existing condvar; `Incompatible` if the segment holds another
    /// kind.
    pub fn open(name: &str) -> Result<Condvar> {
        Condvar::open_with_options(name, &Options::default())
    }

    /// [`open`](Self::open) with handle options.
    pub fn open_with_options(name: &str, opts: &Options) -> Result<Condvar> {
        let seg = builder(opts).open(name)?;
        seg.expect_data_size(RawCondvar::SIZE as u64)?;
        Ok(Condvar { seg })
    }

    /// Opens the condvar, or creates it if it does not exist.
    pub fn open_or_create(name: &str) -> Result<(Condvar, Disposition)> {
        let (seg, how) = builder(&Options::default()).open_or_create_with(name, |data, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { RawCondvar::init(data.as_ptr().cast()) };
            Ok(())
        })?;
        if how == Disposition::Opened {
            seg.expect_data_size(RawCondvar::SIZE as u64)?;
        }
        Ok((Condvar { seg }, how))
    }

    /// An anonymous condvar, shared with children forked later.
    pub fn anonymous() -> Result<Condvar> {
        let seg = builder(&Options::default()).anonymous_with(|data, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { RawCondvar::init(data.as_ptr().cast()) };
            Ok(())
        })?;
        Ok(Condvar { seg })
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::Condvar)
    }

    /// The segment holding the condvar.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The state in the segment (for callers pairing it with a lock of their
    /// own through [`RawCondvar::wait_with`], such as the C API).
    pub fn state(&self) -> &RawCondvar {
        self.raw()
    }

    fn raw(&self) -> &RawCondvar {
        // SAFETY: the data area holds an initialised RawCondvar (size checked on
        // open; any bytes are a valid pair of atomics), mapped while `self`
        // lives and only accessed atomically.
        unsafe { &*self.seg.as_ptr().cast::<RawCondvar>() }
    }

    /// Releases `guard`'s mutex, waits for a notification, and locks the mutex
    /// again. Wake-ups may be spurious: re-check the condition (or use
    /// [`wait_while`](Self::wait_while)). If the mutex's owner died meanwhile,
    /// the guard comes back as [`LockError::OwnerDied`](crate::LockError::OwnerDied).
    pub fn wait<'a, T: Pod>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.wait_until(guard, Deadline::never())
            .map(|(g, _)| g)
            .map_err(|e| e.map(|(g, _)| g))
    }

    /// [`wait`](Self::wait) for at most `timeout`; the mutex is locked again
    /// either way.
    pub fn wait_timeout<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        self.wait_until(guard, Deadline::after(timeout))
    }

    /// [`wait`](Self::wait) until `deadline`.
    pub fn wait_until<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Deadline,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let mutex: &'a Mutex<T> = guard.mutex();
        let mut guard = Some(guard);
        let (relocked, timed_out) = self.raw().wait_with(
            || {
                let g = guard.take().expect("the guard is released once");
                g.unlock_into_mutex();
            },
            || mutex.lock(),
            deadline,
        );
        let timeout = WaitTimeoutResult(timed_out);
        match relocked {
            Ok(g) => Ok((g, timeout)),
            Err(e) => Err(e.map(|g| (g, timeout))),
        }
    }

    /// Waits while `condition` holds for the guarded value, re-checking it after
    /// every wake-up; returns with the mutex locked and the condition false.
    pub fn wait_while<'a, T: Pod>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> LockResult<MutexGuard<'a, T>> {
        while condition(&mut guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// [`wait_while`](Self::wait_while) for at most `timeout`; on timeout the
    /// condition may still hold (see the result's `timed_out`).
    pub fn wait_timeout_while<'a, T: Pod>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let deadline = Deadline::after(timeout);
        while condition(&mut guard) {
            let (g, t) = self.wait_until(guard, deadline)?;
            guard = g;
            if t.timed_out() {
                let still = condition(&mut guard);
                return Ok((guard, WaitTimeoutResult(still)));
            }
        }
        Ok((guard, WaitTimeoutResult(false)))
    }

    /// Python's `Condition.wait_for(predicate, timeout)`: waits until
    /// `predicate` holds for the guarded value, re-checking it after every
    /// wake-up, for at most `timeout` (`None`: as long as it takes). Returns
    /// the guard and the predicate's last value: `false` only when the
    /// timeout passed first.
    pub fn wait_for<'a, T: Pod>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Option<Duration>,
        mut predicate: impl FnMut(&mut T) -> bool,
    ) -> LockResult<(MutexGuard<'a, T>, bool)> {
        let deadline = Deadline::from_timeout(timeout);
        loop {
            if predicate(&mut guard) {
                return Ok((guard, true));
            }
            let (g, t) = self
                .wait_until(guard, deadline)
                .map_err(|e| e.map(|(g, _)| (g, false)))?;
            guard = g;
            if t.timed_out() {
                let holds = predicate(&mut guard);
                return Ok((guard, holds));
            }
        }
    }

    /// Wakes one waiting thread (in any process); no system call if none sleeps.
    pub fn notify_one(&self) {
        self.raw().notify_one();
    }

    /// Wakes up to `n` waiting threads (Python's `Condition.notify(n)`); no
    /// system call if none sleeps.
    pub fn notify(&self, n: u32) {
        self.raw().notify(n);
    }

    /// Wakes every waiting thread (in any process); no system call if none
    /// sleeps.
    pub fn notify_all(&self) {
        self.raw().notify_all();
    }
}

fn builder(opts: &Options) -> SegmentBuilder {
    SegmentBuilder::new(Kind::Condvar)
        .data_size(RawCondvar::SIZE as u64)
        .options(opts)
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::{Arc, Mutex as LoomMutex};

    struct Shared {
        cv: RawCondvar,
        flag: LoomMutex<bool>,
    }

    /// The waiter of `std::sync::Condvar::wait_while`, written against the raw
    /// condvar and a loom mutex.
    fn wait_for_flag(s: &Shared) {
        let mut guard = s.flag.lock().unwrap();
        while !*guard {
            let (g, _) = s.cv.wait_with(
                move || drop(guard),
                || s.flag.lock().unwrap(),
                Deadline::never(),
            );
            guard = g;
        }
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            cv: RawCondvar::new(),
            flag: LoomMutex::new(false),
        })
    }

    /// A waiter checking the flag concurrently with a notify_one: it always
    /// returns (a lost wake-up is a loom deadlock).
    #[test]
    fn loom_condvar_notify_one_is_not_lost() {
        loom::model(|| {
            let s = shared();
            let s2 = s.clone();
            let waiter = loom::thread::spawn(move || wait_for_flag(&s2));
            *s.flag.lock().unwrap() = true;
            s.cv.notify_one();
            waiter.join().unwrap();
        });
    }

    /// Two waiters and a notify_all: both return.
    #[test]
    fn loom_condvar_notify_all_reaches_every_waiter() {
        loom::model(|| {
            let s = shared();
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    loom::thread::spawn(move || wait_for_flag(&s))
                })
                .collect();
            *s.flag.lock().unwrap() = true;
            s.cv.notify_all();
            for w in waiters {
                w.join().unwrap();
            }
        });
    }

    /// Two waiters each take one token; two notify_one calls, each after adding
    /// a token, let both finish (the futex model wakes every sleeper of a
    /// bucket, so this checks the sequence protocol, not the kernel's choice of
    /// which sleeper a single wake picks).
    #[test]
    fn loom_condvar_two_notify_one_release_two_waiters() {
        loom::model(|| {
            let s = Arc::new((RawCondvar::new(), LoomMutex::new(0u32)));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    loom::thread::spawn(move || {
                        let (cv, tokens) = &*s;
                        let mut g = tokens.lock().unwrap();
                        while *g == 0 {
                            let (g2, _) = cv.wait_with(
                                move || drop(g),
                                || tokens.lock().unwrap(),
                                Deadline::never(),
                            );
                            g = g2;
                        }
                        *g -= 1;
                    })
                })
                .collect();
            for _ in 0..2 {
                *s.1.lock().unwrap() += 1;
                s.0.notify_one();
            }
            for w in waiters {
                w.join().unwrap();
            }
        });
    }

    /// A notify issued while still holding the lock also reaches the waiter.
    #[test]
    fn loom_condvar_notify_under_the_lock_is_not_lost() {
        loom::model(|| {
            let s = shared();
            let s2 = s.clone();
            let waiter = loom::thread::spawn(move || wait_for_flag(&s2));
            {
                let mut g = s.flag.lock().unwrap();
                *g = true;
                s.cv.notify_one();
            }
            waiter.join().unwrap();
        });
    }
}

/// The `ls`/`stat` view of a condition variable's state (loads only).
pub(crate) fn summarize(
    view: &crate::inspect::view::StateView<'_>,
) -> Option<crate::inspect::view::StateSummary> {
    use crate::inspect::view::{Field, StateSummary};
    let seq = view.u32(std::mem::offset_of!(RawCondvar, seq))?;
    let sleepers = view.u32(std::mem::offset_of!(RawCondvar, waiters))?;
    let (waiting, tickets) = split(view.u64(std::mem::offset_of!(RawCondvar, counts))?);
    Some(StateSummary {
        line: format!(
            "{waiting} waiting ({sleepers} asleep), {tickets} notifications not yet taken, \
             {seq} notifies"
        ),
        fields: vec![
            ("waiting", Field::U64(waiting)),
            ("waiters", Field::U64(sleepers as u64)),
            ("pending", Field::U64(tickets)),
            ("notifications", Field::U64(seq as u64)),
        ],
    })
}
