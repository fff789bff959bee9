//! An event flag in shared memory. Python counterpart: `multiprocessing.Event`.
//!
//! [`Event::set`] raises the flag and wakes every waiter; [`Event::clear`] lowers
//! it; [`Event::wait`] returns at once if the flag is up, else sleeps until a
//! `set`. A waiter that was waiting when `set` happened returns `true` even if
//! `clear` follows immediately, before it got to run (as `threading.Event`
//! promises; `multiprocessing.Event` may return `False` in that race, we do
//! not).
//!
//! # Death of a participant
//!
//! No state is owned by a process, so nothing wedges: a process dying at any
//! point leaves the flag either set or not, and the others keep working. A
//! process killed while asleep in `wait` leaves the sleeper count one too high,
//! which only costs later `set`s a needless (harmless) `futex_wake` call.
//!
//! # State
//!
//! One futex word, `word = seq << 1 | flag`, and a sleeper count:
//!
//! | operation | transition of `word`                         | then                      |
//! |-----------|----------------------------------------------|---------------------------|
//! | set       | `flag == 0`: `seq << 1` → `(seq + 1) << 1 \| 1` | wake all if anyone sleeps |
//! | set       | `flag == 1`: no change                        | nothing                   |
//! | clear     | `seq << 1 \| 1` → `seq << 1`                   | nothing                   |
//! | wait      | `flag == 1`: return `true`                    |                           |
//! | wait      | `flag == 0`: sleep while `word == seq << 1`    | `true` once it changed    |
//!
//! A waiter sleeps on the exact unset value `w = seq << 1` it read. The word
//! leaves `w` only through a `set` (a `clear` of an unset event changes nothing),
//! and never comes back to `w` while that `seq` is current, because every `set`
//! bumps `seq`: so *any* change seen by the waiter means a `set` happened after
//! it started waiting, even if a `clear` already lowered the flag again. `seq`
//! wraps after 2³¹ sets; a waiter would have to sleep through exactly that many
//! set/clear cycles to miss one.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use shmprim::Event;
//! # let name = format!("doc-event-{}", std::process::id());
//! let ev = Event::create(&name)?;
//! assert!(!ev.is_set());
//! assert!(matches!(ev.wait_timeout(Duration::from_millis(10)), Err(shmprim::Error::Timeout { .. }))); // nobody set it
//! let other = Event::open(&name)?; // in another process
//! other.set();
//! assert!(ev.is_set());
//! ev.wait()?; // returns at once
//! ev.clear();
//! assert!(!ev.is_set());
//! Event::unlink(&name)?;
//! # Ok::<(), shmprim::Error>(())
//! ```

use std::ptr::NonNull;
use std::time::Duration;

use crate::error::Result;
use crate::segment::Disposition;
use crate::segment::{Kind, Options, Segment, SegmentBuilder};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::wait::{Deadline, try_first, wait_while_eq, wake};

/// Bit 0 of the word: the flag.
const FLAG: u32 = 1;
/// What `set` adds to an unset word: one to `seq` (bits 1..32) and the flag.
const SET_STEP: u32 = 3;

/// The event's state as it lives in shared memory (8 bytes, align 4).
///
/// Place it anywhere with [`EventState::init`] (the C API's
/// `shmprim_event_init(void *mem)`), or on the heap with [`EventState::new`].
#[repr(C)]
#[derive(Debug)]
pub struct EventState {
    /// `seq << 1 | flag`; the futex word.
    word: AtomicU32,
    /// Processes that may be asleep on `word`.
    waiters: AtomicU32,
}

impl Default for EventState {
    fn default() -> Self {
        EventState::new()
    }
}

impl EventState {
    /// Bytes the state occupies.
    pub const SIZE: usize = std::mem::size_of::<EventState>();
    /// Alignment the state needs.
    pub const ALIGN: usize = std::mem::align_of::<EventState>();

    /// A fresh, unset event.
    pub fn new() -> EventState {
        EventState {
            word: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Writes a fresh, unset event at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of [`EventState::SIZE`] bytes, aligned to
    /// [`EventState::ALIGN`], and not in use by any other thread or process while
    /// this runs.
    pub unsafe fn init(ptr: *mut EventState) {
        // SAFETY: the caller guarantees `ptr` is valid, aligned and unshared.
        unsafe { ptr.write(EventState::new()) };
    }

    /// Raises the flag and wakes every waiter (no syscall when none sleeps).
    #[inline]
    pub fn set(&self) {
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if w & FLAG != 0 {
                // Already set: every waiter was (or will be) woken by that set.
                return;
            }
            // Release: pairs with the Acquire loads in `is_set` and in the wait, so
            // what the setter wrote before `set` is visible to a woken waiter.
            match self.word.compare_exchange_weak(
                w,
                w.wrapping_add(SET_STEP),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        wake(&self.word, &self.waiters, u32::MAX);
    }

    /// Lowers the flag. Waiters already woken by a `set` still return `true`.
    #[inline]
    pub fn clear(&self) {
        // Relaxed: clearing publishes nothing; the RMW keeps `seq` intact.
        self.word.fetch_and(!FLAG, Ordering::Relaxed);
    }

    /// Whether the flag is up now.
    #[inline]
    pub fn is_set(&self) -> bool {
        // Acquire: pairs with the Release CAS in `set`.
        self.word.load(Ordering::Acquire) & FLAG != 0
    }

    /// Waits until the flag is up or a `set` happened since the call began, or
    /// `deadline` passes: returns whether it was set (`false` only on timeout).
    #[inline]
    pub fn wait(&self, deadline: Deadline) -> bool {
        // Acquire: pairs with the Release CAS in `set`.
        let w = self.word.load(Ordering::Acquire);
        if w & FLAG != 0 {
            return true;
        }
        // The word leaves `w` only through a `set` (see the module's table), so
        // any change means we were signalled.
        wait_while_eq(&self.word, &self.waiters, w, deadline).is_ok()
    }
}

/// A named (or anonymous) event: `multiprocessing.Event`. See the
/// [module documentation](self).
#[derive(Debug)]
pub struct Event {
    seg: Segment,
}

impl Event {
    fn builder() -> SegmentBuilder {
        SegmentBuilder::new(Kind::Event).data_size(EventState::SIZE as u64)
    }

    fn init_fn(ptr: NonNull<u8>, len: usize) -> Result<()> {
        debug_assert!(len >= EventState::SIZE);
        // SAFETY: the data area is page aligned, at least SIZE bytes (we asked for
        // them), and nobody else sees it before it is published as ready.
        unsafe { EventState::init(ptr.as_ptr().cast()) };
        Ok(())
    }

    /// Creates an unset event; `AlreadyExists` if the name is taken.
    pub fn create(name: &str) -> Result<Event> {
        Self::create_with_options(name, &Options::default())
    }

    /// Creates an unset event with handle [`Options`].
    pub fn create_with_options(name: &str, opts: &Options) -> Result<Event> {
        let seg = Self::builder()
            .options(opts)
            .create_with(name, Self::init_fn)?;
        Ok(Event { seg })
    }

    /// Opens an existing event.
    pub fn open(name: &str) -> Result<Event> {
        Self::open_with_options(name, &Options::default())
    }

    /// [`open`](Self::open) with handle [`Options`].
    pub fn open_with_options(name: &str, opts: &Options) -> Result<Event> {
        let seg = Self::builder().options(opts).open(name)?;
        Self::validate(seg)
    }

    /// Opens the event, or creates it unset if it does not exist.
    pub fn open_or_create(name: &str) -> Result<(Event, Disposition)> {
        let (seg, how) = Self::builder().open_or_create_with(name, Self::init_fn)?;
        Ok((Self::validate(seg)?, how))
    }

    /// An anonymous event, shared with children forked after this call.
    pub fn anonymous() -> Result<Event> {
        let seg = Self::builder().anonymous_with(Self::init_fn)?;
        Ok(Event { seg })
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::Event)
    }

    fn validate(seg: Segment) -> Result<Event> {
        seg.expect_data_size(EventState::SIZE as u64)?;
        Ok(Event { seg })
    }

    /// The state in the segment.
    #[inline]
    pub fn state(&self) -> &EventState {
        // SAFETY: the data area is page aligned and holds at least SIZE bytes
        // (checked on open, requested on create); the state is only atomics, valid
        // for any bit pattern, and lives as long as the mapping `self.seg` owns.
        unsafe { &*self.seg.as_ptr().cast::<EventState>() }
    }

    /// Raises the flag and wakes every waiter.
    #[inline]
    pub fn set(&self) {
        self.state().set()
    }

    /// Lowers the flag.
    #[inline]
    pub fn clear(&self) {
        self.state().clear()
    }

    /// Whether the flag is up now.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.state().is_set()
    }

    /// Waits, as long as it takes, until the flag is up. `Err` only inside
    /// [`interruptible`](crate::wait::interruptible), where a signal handler
    /// ends the wait ([`Error::Interrupted`](crate::Error::Interrupted)).
    #[inline]
    pub fn wait(&self) -> Result<()> {
        self.wait_deadline(Deadline::never())
    }

    /// Waits at most `timeout` for the flag (Python's `wait(timeout)`):
    /// `Ok` once it is up, `Err(Timeout)` if it stayed down, as every timed
    /// wait of the crate answers.
    #[inline]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        try_first(timeout, |d| self.wait_deadline(d), crate::wait::is_timeout)
    }

    /// Waits until `deadline` for the flag: `Ok` once it is up,
    /// `Err(Timeout)` if it stayed down.
    #[inline]
    pub fn wait_deadline(&self, deadline: Deadline) -> Result<()> {
        if self.state().wait(deadline) {
            Ok(())
        } else {
            Err(crate::Error::timeout(self.seg.object_name()))
        }
    }

    /// The segment holding the event.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}

#[cfg(all(test, not(shmprim_loom)))]
mod tests {
    use super::*;
    use crate::test_support::until_asleep;

    /// Sleepers register and deregister, so `set` with nobody asleep makes no
    /// syscall afterwards.
    #[test]
    fn sleeper_count_returns_to_zero_after_a_wake() {
        let ev = EventState::new();
        std::thread::scope(|s| {
            let t = s.spawn(|| ev.wait(Deadline::after(Duration::from_secs(10))));
            until_asleep(&ev.waiters);
            ev.set();
            assert!(t.join().unwrap());
        });
        assert_eq!(ev.waiters.load(Ordering::Relaxed), 0);
    }
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// A waiter and a setter: the waiter always returns `true` (a lost wake-up
    /// is a loom deadlock).
    #[test]
    fn loom_event_set_wakes_waiter() {
        loom::model(|| {
            let ev = Arc::new(EventState::new());
            let e2 = ev.clone();
            let waiter = loom::thread::spawn(move || e2.wait(Deadline::never()));
            ev.set();
            assert!(waiter.join().unwrap());
            assert!(ev.is_set());
        });
    }

    /// The set/clear race: `set` immediately followed by `clear` still wakes a
    /// waiter that was waiting, and it returns `true` (with a plain flag it
    /// could sleep forever). "Was waiting" is made certain by setting only once
    /// the waiter has registered as a sleeper; it may still be anywhere between
    /// registering and sleeping.
    #[test]
    fn loom_event_set_then_clear_still_wakes_waiter() {
        loom::model(|| {
            let ev = Arc::new(EventState::new());
            let e2 = ev.clone();
            let waiter = loom::thread::spawn(move || e2.wait(Deadline::never()));
            while ev.waiters.load(Ordering::Relaxed) == 0 {
                loom::thread::yield_now();
            }
            ev.set();
            ev.clear();
            assert!(waiter.join().unwrap());
            assert!(!ev.is_set());
        });
    }

    /// Data written before `set` is visible to a waiter that returned.
    #[test]
    fn loom_event_publishes_data_written_before_set() {
        loom::model(|| {
            let ev = Arc::new((EventState::new(), AtomicU32::new(0)));
            let e2 = ev.clone();
            let waiter = loom::thread::spawn(move || {
                assert!(e2.0.wait(Deadline::never()));
                assert_eq!(e2.1.load(Ordering::Relaxed), 42);
            });
            ev.1.store(42, Ordering::Relaxed);
            ev.0.set();
            waiter.join().unwrap();
        });
    }
}

/// The `ls`/`stat` view of an event's state (loads only).
pub(crate) fn summarize(
    view: &crate::inspect::view::StateView<'_>,
) -> Option<crate::inspect::view::StateSummary> {
    use crate::inspect::view::{Field, StateSummary};
    let word = view.u32(std::mem::offset_of!(EventState, word))?;
    let waiters = view.u32(std::mem::offset_of!(EventState, waiters))?;
    let set = word & 1 != 0;
    Some(StateSummary {
        line: format!("{}, {waiters} waiting", if set { "set" } else { "clear" }),
        fields: vec![
            ("set", Field::Bool(set)),
            ("waiters", Field::U64(waiters as u64)),
        ],
    })
}
