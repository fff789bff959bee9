//! A counting semaphore in shared memory, optionally bounded. Python
//! counterparts: `multiprocessing.Semaphore` and `multiprocessing.BoundedSemaphore`.
//!
//! A semaphore holds a number of permits. [`Semaphore::acquire`] takes one,
//! sleeping while there are none; [`Semaphore::release`] gives `n` back and wakes
//! up to `n` sleepers. A bounded semaphore refuses a release that would raise
//! the count above its bound ([`Error::Overflow`], nothing changed), as Python's
//! `BoundedSemaphore` raises `ValueError`. An unbounded semaphore has the bound
//! `u32::MAX`: releasing past it is an `Overflow` too, never a wrap-around.
//!
//! # Death of a participant
//!
//! No state is owned by a process, so nothing wedges: the others keep acquiring
//! and releasing. Permits a dead process held are **not** given back (a
//! semaphore cannot know who holds a permit; Python behaves the same). A process
//! killed while asleep in `acquire` leaves the sleeper count one too high, which
//! only costs later releases a needless (harmless) `futex_wake` call.
//!
//! # State
//!
//! | field     | meaning                                                       |
//! |-----------|---------------------------------------------------------------|
//! | `count`   | permits available; the futex word acquirers sleep on          |
//! | `waiters` | processes that may be asleep on `count` (see [`crate::wait`]) |
//! | `bound`   | largest allowed `count` (`u32::MAX`: unbounded); set at init  |
//!
//! | operation      | transition of `count`                        | then                       |
//! |----------------|----------------------------------------------|----------------------------|
//! | acquire        | `c > 0`: CAS `c → c - 1` (Acquire)           | return                     |
//! | acquire        | `c == 0`: sleep while `count == 0`           | retry, or `Timeout`        |
//! | release(`n`)   | `c + n ≤ bound`: CAS `c → c + n` (Release)   | wake `n` if anyone sleeps  |
//! | release(`n`)   | `c + n > bound` (or overflows `u32`)         | `Overflow`, no change      |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use shmprim::Semaphore;
//! # let name = format!("doc-sem-{}", std::process::id());
//! // Two permits, bounded at two (Python: BoundedSemaphore(2)).
//! let sem = Semaphore::create_bounded(&name, 2, 2)?;
//! sem.acquire();
//! assert!(sem.try_acquire());
//! assert!(!sem.try_acquire()); // none left
//! // Another process would `Semaphore::open(&name)` and release:
//! let other = Semaphore::open(&name)?;
//! other.release(2)?;
//! assert_eq!(sem.value(), 2);
//! assert!(matches!(sem.release(1), Err(shmprim::Error::Overflow { bound: 2, .. })));
//! assert!(sem.acquire_timeout(Duration::from_millis(10)).is_ok());
//! Semaphore::unlink(&name)?;
//! # Ok::<(), shmprim::Error>(())
//! ```

use std::ptr::NonNull;
use std::time::Duration;

use crate::error::{Error, ObjectName, Of, Result};
use crate::segment::Disposition;
use crate::segment::{Kind, Options, Segment, SegmentBuilder};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::wait::{Deadline, is_timeout, try_first, wait_while_eq, wake};

/// The bound of an unbounded semaphore: the largest count a `u32` holds.
pub const UNBOUNDED: u32 = u32::MAX;

/// Header parameter holding the initial value.
const PARAM_VALUE: usize = 0;
/// Header parameter holding the bound ([`UNBOUNDED`] when there is none).
const PARAM_BOUND: usize = 1;

/// The semaphore's state as it lives in shared memory (12 bytes, align 4).
///
/// Place it anywhere with [`SemaphoreState::init`] (the C API's
/// `shmprim_semaphore_init(void *mem, ...)`), or on the heap with
/// [`SemaphoreState::new`].
#[repr(C)]
#[derive(Debug)]
pub struct SemaphoreState {
    /// Permits available; the futex word.
    count: AtomicU32,
    /// Processes that may be asleep on `count`.
    waiters: AtomicU32,
    /// Largest allowed count ([`UNBOUNDED`]: no bound). Written once by `init`.
    bound: AtomicU32,
}

impl SemaphoreState {
    /// Bytes the state occupies.
    pub const SIZE: usize = std::mem::size_of::<SemaphoreState>();
    /// Alignment the state needs.
    pub const ALIGN: usize = std::mem::align_of::<SemaphoreState>();

    /// A fresh state holding `value` permits with the given bound
    /// ([`UNBOUNDED`] for none); `InvalidArgument` if `value > bound`.
    pub fn new(value: u32, bound: u32) -> Result<SemaphoreState> {
        check_args(value, bound)?;
        Ok(SemaphoreState {
            count: AtomicU32::new(value),
            waiters: AtomicU32::new(0),
            bound: AtomicU32::new(bound),
        })
    }

    /// Writes a fresh state at `ptr`; `InvalidArgument` if `value > bound`
    /// (then nothing is written).
    ///
    /// # Safety
    /// `ptr` must be valid for writes of [`SemaphoreState::SIZE`] bytes, aligned to
    /// [`SemaphoreState::ALIGN`], and not in use by any other thread or process
    /// while this runs.
    pub unsafe fn init(ptr: *mut SemaphoreState, value: u32, bound: u32) -> Result<()> {
        let state = SemaphoreState::new(value, bound)?;
        // SAFETY: the caller guarantees `ptr` is valid, aligned and unshared.
        unsafe { ptr.write(state) };
        Ok(())
    }

    /// Takes a permit, sleeping while there is none, until `deadline`
    /// (`Err(Timeout)` then). `Deadline::now()` tries once.
    #[inline]
    pub fn acquire(&self, deadline: Deadline) -> Result<()> {
        loop {
            if self.try_acquire() {
                return Ok(());
            }
            if wait_while_eq(&self.count, &self.waiters, 0, deadline).is_err() {
                return Err(Error::timeout(&ObjectName::unknown()));
            }
        }
    }

    /// Takes a permit if one is available, without waiting.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        let mut c = self.count.load(Ordering::Relaxed);
        while c > 0 {
            // Acquire: pairs with the Release CAS in `release`, so what the releaser
            // did before releasing happens before what we do with the permit.
            match self
                .count
                .compare_exchange_weak(c, c - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Gives back `n` permits and wakes up to `n` sleepers (no syscall when none
    /// sleeps). `Overflow { bound }` and no change if the count would exceed the
    /// bound; `InvalidArgument` for `n == 0` (as Python's `ValueError`).
    #[inline]
    pub fn release(&self, n: u32) -> Result<()> {
        if n == 0 {
            return Err(Error::invalid_argument("release(n) needs n >= 1"));
        }
        let bound = self.bound();
        let mut c = self.count.load(Ordering::Relaxed);
        loop {
            let new = match c.checked_add(n) {
                Some(new) if new <= bound => new,
                _ => {
                    return Err(Error::Overflow {
                        name: ObjectName::unknown(),
                        bound,
                    });
                }
            };
            // Release: pairs with the Acquire CAS in `try_acquire`.
            match self
                .count
                .compare_exchange_weak(c, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        wake(&self.count, &self.waiters, n);
        Ok(())
    }

    /// Permits available now (Python's `get_value()`); a snapshot.
    #[inline]
    pub fn value(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// The bound ([`UNBOUNDED`] when there is none).
    pub fn bound(&self) -> u32 {
        self.bound.load(Ordering::Relaxed)
    }
}

fn check_args(value: u32, bound: u32) -> Result<()> {
    if value > bound {
        return Err(Error::invalid_argument(format!(
            "initial value {value} is above the bound {bound}"
        )));
    }
    Ok(())
}

/// A named (or anonymous) counting semaphore: `multiprocessing.Semaphore` and
/// `BoundedSemaphore`. See the [module documentation](self).
#[derive(Debug)]
pub struct Semaphore {
    seg: Segment,
}

/// A permit taken by [`Semaphore::acquire_guard`], given back when dropped.
#[derive(Debug)]
#[must_use = "the permit is released at once if the guard is not kept"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // Releasing the permit we took can only overflow if another process
        // released permits it never took; there is nothing better to do then.
        let _ = self.sem.release(1);
    }
}

impl Semaphore {
    fn builder(value: u32, bound: u32) -> Result<SegmentBuilder> {
        check_args(value, bound)?;
        Ok(SegmentBuilder::new(Kind::Semaphore)
            .data_size(SemaphoreState::SIZE as u64)
            .param(PARAM_VALUE, value.into())
            .param(PARAM_BOUND, bound.into()))
    }

    fn init_fn(value: u32, bound: u32) -> impl FnOnce(NonNull<u8>, usize) -> Result<()> {
        move |ptr, len| {
            debug_assert!(len >= SemaphoreState::SIZE);
            // SAFETY: the data area is page aligned, at least SIZE bytes (we asked
            // for them), and nobody else sees it before it is published as ready.
            unsafe { SemaphoreState::init(ptr.as_ptr().cast(), value, bound) }
        }
    }

    /// Creates a semaphore holding `value` permits, without a bound (Python:
    /// `Semaphore(value)`); `AlreadyExists` if the name is taken.
    pub fn create(name: &str, value: u32) -> Result<Semaphore> {
        Self::create_with_options(name, value, UNBOUNDED, &Options::default())
    }

    /// Creates a semaphore holding `value` permits that may never hold more than
    /// `bound` (Python: `BoundedSemaphore(value)` has `bound == value`).
    pub fn create_bounded(name: &str, value: u32, bound: u32) -> Result<Semaphore> {
        Self::create_with_options(name, value, bound, &Options::default())
    }

    /// Creates a semaphore with handle [`Options`]; `bound` is [`UNBOUNDED`] for
    /// none.
    pub fn create_with_options(
        name: &str,
        value: u32,
        bound: u32,
        opts: &Options,
    ) -> Result<Semaphore> {
        let seg = Self::builder(value, bound)?
            .options(opts)
            .create_with(name, Self::init_fn(value, bound))?;
        Ok(Semaphore { seg })
    }

    /// Opens an existing semaphore, whatever its value and bound.
    pub fn open(name: &str) -> Result<Semaphore> {
        Self::open_with_options(name, &Options::default())
    }

    /// [`open`](Self::open) with handle [`Options`].
    pub fn open_with_options(name: &str, opts: &Options) -> Result<Semaphore> {
        let seg = SegmentBuilder::new(Kind::Semaphore)
            .options(opts)
            .open(name)?;
        Self::validate(seg)
    }

    /// Opens the semaphore, or creates it with `value` permits and `bound`
    /// ([`UNBOUNDED`] for none). An existing one created with another value or
    /// bound is `Incompatible { what: Parameter }`.
    pub fn open_or_create(name: &str, value: u32, bound: u32) -> Result<(Semaphore, Disposition)> {
        let (seg, how) =
            Self::builder(value, bound)?.open_or_create_with(name, Self::init_fn(value, bound))?;
        seg.expect_param(PARAM_VALUE, value.into(), "initial value")?;
        seg.expect_param(PARAM_BOUND, bound.into(), "bound")?;
        Ok((Self::validate(seg)?, how))
    }

    /// An anonymous semaphore, shared with children forked after this call.
    pub fn anonymous(value: u32, bound: u32) -> Result<Semaphore> {
        let seg = Self::builder(value, bound)?.anonymous_with(Self::init_fn(value, bound))?;
        Ok(Semaphore { seg })
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::Semaphore)
    }

    fn validate(seg: Segment) -> Result<Semaphore> {
        seg.expect_data_size(SemaphoreState::SIZE as u64)?;
        let bound = seg.param(PARAM_BOUND);
        let value = seg.param(PARAM_VALUE);
        if bound > u32::MAX.into() || value > bound {
            return Err(Error::corrupted(
                seg.display_name(),
                format!("semaphore parameters value {value}, bound {bound}"),
            ));
        }
        let sem = Semaphore { seg };
        let stored = sem.state().bound();
        if u64::from(stored) != bound {
            return Err(Error::corrupted(
                sem.seg.display_name(),
                format!("semaphore bound {stored} differs from the header's {bound}"),
            ));
        }
        Ok(sem)
    }

    /// The state in the segment.
    #[inline]
    pub fn state(&self) -> &SemaphoreState {
        // SAFETY: the data area is page aligned and holds at least SIZE bytes
        // (checked on open, requested on create); the state is only atomics, valid
        // for any bit pattern, and lives as long as the mapping `self.seg` owns.
        unsafe { &*self.seg.as_ptr().cast::<SemaphoreState>() }
    }

    /// Takes a permit, sleeping as long as there is none.
    #[inline]
    pub fn acquire(&self) {
        // A deadline that never passes cannot time out.
        let _ = self.state().acquire(Deadline::never());
    }

    /// Takes a permit if one is available now, without waiting.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        self.state().try_acquire()
    }

    /// Takes a permit, waiting at most `timeout`; `Err(Timeout)` if none came.
    #[inline]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<()> {
        try_first(timeout, |d| self.state().acquire(d), is_timeout).of(self.seg.object_name())
    }

    /// Takes a permit, waiting until `deadline`; `Err(Timeout)` if none came.
    #[inline]
    pub fn acquire_deadline(&self, deadline: Deadline) -> Result<()> {
        self.state().acquire(deadline).of(self.seg.object_name())
    }

    /// Takes a permit (sleeping while there is none) and returns a guard that
    /// gives it back when dropped (Python: `with sem:`).
    pub fn acquire_guard(&self) -> SemaphoreGuard<'_> {
        self.acquire();
        SemaphoreGuard { sem: self }
    }

    /// Gives back `n` permits, waking up to `n` sleepers; `Overflow` (and no
    /// change) if that would exceed the bound.
    #[inline]
    pub fn release(&self, n: u32) -> Result<()> {
        self.state().release(n).of(self.seg.object_name())
    }

    /// Permits available now (Python's `get_value()`).
    #[inline]
    pub fn value(&self) -> u32 {
        self.state().value()
    }

    /// The bound, `None` for an unbounded semaphore.
    pub fn bound(&self) -> Option<u32> {
        let b = self.state().bound();
        (b != UNBOUNDED).then_some(b)
    }

    /// The segment holding the semaphore.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}

#[cfg(all(test, not(shmprim_loom)))]
mod tests {
    use super::*;
    use crate::test_support::until_asleep;

    /// A blocked acquirer registers as a sleeper and deregisters once woken, so
    /// the sleeper count that gates `futex_wake` goes back to zero and later
    /// releases make no syscall.
    #[test]
    fn sleeper_count_returns_to_zero_after_a_wake() {
        let sem = SemaphoreState::new(0, UNBOUNDED).unwrap();
        std::thread::scope(|s| {
            let t = s.spawn(|| sem.acquire(Deadline::after(Duration::from_secs(10))));
            until_asleep(&sem.waiters);
            sem.release(1).unwrap();
            t.join().unwrap().unwrap();
        });
        assert_eq!(sem.waiters.load(Ordering::Relaxed), 0);
    }
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;

    /// Two threads contend for one permit while holding it: never both inside
    /// (no double grant), and both always get through (no lost wake-up: the one
    /// that sleeps is woken by the other's release).
    #[test]
    fn loom_semaphore_one_permit_no_double_grant_no_lost_wakeup() {
        loom::model(|| {
            let sem = Arc::new(SemaphoreState::new(1, UNBOUNDED).unwrap());
            let inside = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (sem, inside) = (sem.clone(), inside.clone());
                    loom::thread::spawn(move || {
                        sem.acquire(Deadline::never()).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0, "double grant");
                        inside.fetch_sub(1, Ordering::Relaxed);
                        sem.release(1).unwrap();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(sem.value(), 1);
        });
    }

    /// Three threads and two permits: never more than two inside at once, and
    /// every thread gets through.
    #[test]
    fn loom_semaphore_two_permits_three_threads_never_three_inside() {
        loom::model(|| {
            let sem = Arc::new(SemaphoreState::new(2, 2).unwrap());
            let inside = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let (sem, inside) = (sem.clone(), inside.clone());
                    loom::thread::spawn(move || {
                        sem.acquire(Deadline::never()).unwrap();
                        assert!(inside.fetch_add(1, Ordering::Relaxed) < 2, "third inside");
                        inside.fetch_sub(1, Ordering::Relaxed);
                        sem.release(1).unwrap();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(sem.value(), 2);
        });
    }

    /// Two blocked acquirers and one `release(2)`: both get through. (The
    /// modelled futex wakes every sleeper, so that `release(n)` passes `n` to
    /// the kernel is checked by the integration test
    /// `release_of_two_wakes_two_blocked_acquirers` instead.)
    #[test]
    fn loom_semaphore_release_n_wakes_n_acquirers() {
        loom::model(|| {
            let sem = Arc::new(SemaphoreState::new(0, 2).unwrap());
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let sem = sem.clone();
                    loom::thread::spawn(move || sem.acquire(Deadline::never()).unwrap())
                })
                .collect();
            sem.release(2).unwrap();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(sem.value(), 0);
        });
    }

    /// Two concurrent `release(1)` on a semaphore bounded at one and empty:
    /// exactly one is accepted and the other is `Overflow`, so the count never
    /// passes the bound (the bound is checked in the same CAS that adds).
    #[test]
    fn loom_semaphore_bound_is_checked_atomically() {
        loom::model(|| {
            let sem = Arc::new(SemaphoreState::new(0, 1).unwrap());
            let s2 = sem.clone();
            let t = loom::thread::spawn(move || s2.release(1).is_ok());
            let mine = sem.release(1).is_ok();
            let theirs = t.join().unwrap();
            assert!(mine ^ theirs, "exactly one release accepted");
            assert_eq!(sem.value(), 1);
        });
    }
}

/// The `ls`/`stat` view of a semaphore's state (loads only).
pub(crate) fn summarize(
    view: &crate::inspect::view::StateView<'_>,
) -> Option<crate::inspect::view::StateSummary> {
    use crate::inspect::view::{Field, StateSummary};
    let value = view.u32(std::mem::offset_of!(SemaphoreState, count))?;
    let waiters = view.u32(std::mem::offset_of!(SemaphoreState, waiters))?;
    let bound = view.u32(std::mem::offset_of!(SemaphoreState, bound))?;
    let mut fields = vec![
        ("value", Field::U64(value as u64)),
        ("waiters", Field::U64(waiters as u64)),
    ];
    let line = if bound == UNBOUNDED {
        format!("value {value}, {waiters} waiting")
    } else {
        fields.push(("bound", Field::U64(bound as u64)));
        format!("value {value}/{bound}, {waiters} waiting")
    };
    Some(StateSummary { line, fields })
}
