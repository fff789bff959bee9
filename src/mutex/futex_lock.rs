//! shmprim's own process-shared lock: one futex word that records the
//! holder's thread id, and waiters that check, once per slice of sleep,
//! whether that thread still exists.
//!
//! glibc's robust mutex (still used where priority inheritance is asked for)
//! cannot keep two of the crate's promises. Its robust list is linked through
//! pointers kept inside the shared mutex, so bytes written into a segment can
//! make glibc write outside it; and when a waiter that an unlock woke dies
//! before it retakes the lock, the other sleepers sleep on, for ever, on a
//! free mutex. Here the state is three words that are only ever read and
//! written atomically and checked before use, and every sleeper wakes at least
//! once per slice of sleep (10 ms) to look again.
//!
//! # The word
//!
//! | word                     | meaning                                    |
//! |--------------------------|--------------------------------------------|
//! | `0`                      | free                                       |
//! | `tid`                    | held by thread `tid`, nobody sleeps         |
//! | `tid \| CONTENDED`       | held, and some thread may sleep on it       |
//! | `CONTENDED`              | free, from bytes written from outside      |
//!
//! A lock is one compare-and-swap from 0 to the caller's thread id (cached in
//! a thread-local); an unlock is one swap to 0, and a `futex_wake` only when
//! the word was `CONTENDED`. A waiter sets `CONTENDED`, sleeps while the word
//! is unchanged, and takes the lock with `CONTENDED` kept (others may sleep).
//!
//! # When the holder dies
//!
//! A waiter whose slice of sleep ended reads `/proc/<tid>/stat` for the
//! holder's thread: gone, or a zombie, means the holder died holding the lock
//! (its process was killed, or the thread exited), and the waiter takes the
//! word over with one compare-and-swap from exactly what it saw, so that of
//! several waiters one wins. The taker is told
//! [`LockStatus::OwnerDied`](super::LockStatus::OwnerDied). So a death is
//! seen within a slice (10 ms) plus one read of `/proc`; a lock nobody waits
//! for is taken over by its next locker, after one slice (or at its deadline,
//! if that comes first). A try (`try_lock`, or a lock with a zero timeout)
//! never sleeps: it looks at the holder on its thread's first busy answer
//! and then at most once per slice, so a loop of tries gets a dead holder's
//! lock within a slice too.
//!
//! Thread ids are those of the PID namespace the processes run in: every
//! process sharing a lock must see the others' threads in `/proc` or through
//! `kill` (one PID namespace, or a parent namespace of the holders'). A
//! waiter that cannot see the holder's thread takes it for dead.
//!
//! A thread id can be reused once its thread is gone. If a dead holder's id is
//! taken by a new thread before any waiter looked, the lock looks held by that
//! thread until it exits: ids are handed out in increasing order up to
//! `/proc/sys/kernel/pid_max` (4,194,304 on most 64-bit systems) before any is
//! reused, so this takes millions of thread creations in between.
//!
//! # Trust
//!
//! The words are untrusted: a type word that is not one `init` writes is
//! [`Error::Corrupted`](crate::Error::Corrupted); a forged holder id that
//! names no thread is taken over as a dead holder; one that names a live
//! thread is waited for, like any live holder (`lock_timeout` bounds that).
//! Nothing in them is ever used as an address.

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sys::pthread::{LockFailed, Locked, UnlockFailed};
use crate::wait::{Deadline, SPIN_ITERATIONS};

/// Set in the word when a thread may be sleeping on it.
const CONTENDED: u32 = 0x8000_0000;
/// The holder's thread id in the word.
const TID_MASK: u32 = !CONTENDED;

/// The fixed part of every type word a lock made by [`FutexLock::init`] has.
const KIND_MAGIC: u32 = 0x534c_4b00;
/// Type word: relocking by the holder is refused.
pub(crate) const KIND_ERRORCHECK: u32 = KIND_MAGIC | 1;
/// Type word: the holder may lock again, and unlocks as often.
pub(crate) const KIND_RECURSIVE: u32 = KIND_MAGIC | 2;
/// Type word flag: the lock is the glibc robust mutex beside this one, with
/// priority inheritance; these words are then unused.
pub(crate) const KIND_PRIORITY_INHERITANCE: u32 = 0x10;

/// The lock's words, in shared memory.
#[repr(C)]
pub(crate) struct FutexLock {
    /// 0, or the holder's thread id, with [`CONTENDED`].
    word: AtomicU32,
    /// Levels the holder of a recursive lock took beyond its first (written by
    /// the holder only).
    depth: AtomicU32,
    /// One of the `KIND_` words.
    kind: AtomicU32,
}

/// Byte offsets of the word, the depth and the type word in a [`FutexLock`].
pub(crate) const WORD_OFFSETS: [usize; 3] = [
    std::mem::offset_of!(FutexLock, word),
    std::mem::offset_of!(FutexLock, depth),
    std::mem::offset_of!(FutexLock, kind),
];

/// What a lock's words say (read by inspection with plain loads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockWords {
    /// Thread id of the holder, 0 when free.
    pub tid: u32,
    /// Some thread may sleep on it.
    pub waiters: bool,
    /// Levels held, 0 when free.
    pub depth: u32,
}

/// Decodes a lock's word and depth.
pub(crate) fn decode_words(word: u32, depth: u32) -> LockWords {
    let tid = word & TID_MASK;
    LockWords {
        tid,
        waiters: word & CONTENDED != 0,
        depth: if tid == 0 { 0 } else { depth.saturating_add(1) },
    }
}

/// The calling thread's id, as the word records it.
#[cfg(not(shmprim_loom))]
#[inline(always)]
fn my_tid() -> u32 {
    crate::sys::fork::thread_id()
}

/// Under loom every model thread gets an id of its own (loom runs them all
/// on one kernel thread).
#[cfg(shmprim_loom)]
fn my_tid() -> u32 {
    loom::thread_local! {
        static TID: std::cell::Cell<u32> = std::cell::Cell::new(0);
    }
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    TID.with(|t| {
        if t.get() == 0 {
            t.set(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & TID_MASK);
        }
        t.get()
    })
}

/// Whether thread `tid` exists and has not exited: `/proc/<tid>/stat` is
/// there and its state is not zombie or dead. Where `/proc` does not show it
/// (not mounted, or mounted with `hidepid` and the holder another user's),
/// `kill(tid, 0)` answers: only "no such process" counts as dead (a zombie
/// then counts as alive until reaped).
#[cfg(not(shmprim_loom))]
pub(crate) fn thread_alive(tid: u32) -> bool {
    if tid == 0 || tid > i32::MAX as u32 {
        return false;
    }
    match std::fs::read(format!("/proc/{tid}/stat")) {
        Ok(stat) => {
            // The state is the field after the command name, which is in
            // parentheses and may itself contain ") ".
            let state = stat
                .iter()
                .rposition(|&b| b == b')')
                .and_then(|i| stat.get(i + 2).copied());
            !matches!(state, Some(b'Z' | b'X' | b'x'))
        }
        Err(_) => {
            // SAFETY: signal 0 sends nothing; it only checks that `tid` exists.
            let rc = unsafe { libc::kill(tid as libc::pid_t, 0) };
            rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
        }
    }
}

/// Loom models no deaths.
#[cfg(shmprim_loom)]
pub(crate) fn thread_alive(_tid: u32) -> bool {
    true
}

/// How long a lock waiter sleeps before it looks at the holder's thread
/// again: the owner-died latency (about half of it on average, measured by
/// `tests/crash.rs`'s figures). Shorter than the queues' liveness slice,
/// because glibc's robust mutex, which this replaces, reported a death at
/// once; one read of `/proc` per slice and waiter costs about 0.2% of a CPU.
#[cfg_attr(shmprim_loom, allow(dead_code))]
pub(crate) const LOCK_SLICE: std::time::Duration = std::time::Duration::from_millis(10);

/// Whether a try that found a lock busy should look at its holder now: on
/// this thread's first busy answer, then once per [`LOCK_SLICE`] (one clock
/// read per busy answer, one `/proc` read per slice).
#[cfg(not(shmprim_loom))]
fn time_to_look() -> bool {
    thread_local! {
        /// When this thread's tries may look at a holder next (monotonic ns).
        static NEXT_LOOK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let now = crate::sys::time::monotonic_ns();
    NEXT_LOOK.with(|next| {
        if now < next.get() {
            return false;
        }
        next.set(now.saturating_add(LOCK_SLICE.as_nanos() as u64));
        true
    })
}

/// Loom models no deaths.
#[cfg(shmprim_loom)]
fn time_to_look() -> bool {
    false
}

/// The end of a waiter's next slice of sleep.
#[cfg(not(shmprim_loom))]
fn slice_end(deadline: Deadline) -> Deadline {
    deadline.min(Deadline::after(LOCK_SLICE))
}

/// Loom models the protocol, not the slices: a finite deadline expires at
/// once there, which would make every sleep a spin.
#[cfg(shmprim_loom)]
fn slice_end(deadline: Deadline) -> Deadline {
    deadline
}

impl FutexLock {
    /// Writes a free lock of type `kind` at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of a `FutexLock`, aligned, and unused.
    pub(crate) unsafe fn init(ptr: *mut FutexLock, kind: u32) {
        // SAFETY: forwarded from the caller.
        unsafe {
            ptr.write(FutexLock {
                word: AtomicU32::new(0),
                depth: AtomicU32::new(0),
                kind: AtomicU32::new(kind),
            })
        };
    }

    /// The type word (one relaxed load: it never changes after `init`, and a
    /// writer from outside is what the callers' check is for).
    #[inline(always)]
    pub(crate) fn kind(&self) -> u32 {
        self.kind.load(Ordering::Relaxed)
    }

    /// Locks, waiting until `deadline`. `recursive` is the type the caller
    /// checked the type word for.
    #[inline]
    pub(crate) fn lock(&self, recursive: bool, deadline: Deadline) -> Result<Locked, LockFailed> {
        let me = my_tid();
        // Acquire: pairs with the Release swap of the previous holder's
        // unlock, so its writes to the protected data are visible.
        match self
            .word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(Locked::Acquired),
            Err(v) if v & TID_MASK == me => self.relock(recursive),
            Err(_) => self.lock_contended(me, deadline),
        }
    }

    /// Locks if free (or, recursive, held by the caller): `Busy` otherwise.
    #[inline]
    pub(crate) fn try_lock(&self, recursive: bool) -> Result<Locked, LockFailed> {
        let me = my_tid();
        loop {
            let v = self.word.load(Ordering::Relaxed);
            if v & TID_MASK == me {
                return self.relock(recursive);
            }
            if v & TID_MASK != 0 {
                return self.busy(v, me);
            }
            // Acquire: as in `lock`. A stray `CONTENDED` on a free word is
            // kept: somebody may sleep.
            if self
                .word
                .compare_exchange(v, me | v, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(Locked::Acquired);
            }
        }
    }

    /// The answer of a try that found the word `seen` held by another
    /// thread: `Busy`, unless the holder is dead, which the try then takes
    /// over as a waiting lock would. A try does not sleep, so it cannot wait
    /// for a slice to end: it looks at the holder on this thread's first
    /// busy answer, then at most once per [`LOCK_SLICE`], so that a loop of
    /// tries on a live holder's lock makes no more system calls than a
    /// waiting lock, and one on a dead holder's lock gets it within a slice.
    #[cold]
    fn busy(&self, seen: u32, me: u32) -> Result<Locked, LockFailed> {
        let holder = seen & TID_MASK;
        if holder == 0 || holder == me || !time_to_look() || thread_alive(holder) {
            return Err(LockFailed::Busy);
        }
        // Acquire: as for a waiting lock's take-over.
        match self.word.compare_exchange(
            seen,
            me | (seen & CONTENDED),
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                self.depth.store(0, Ordering::Relaxed);
                Ok(Locked::OwnerDied)
            }
            Err(_) => Err(LockFailed::Busy),
        }
    }

    /// The caller holds the lock and locks it again.
    fn relock(&self, recursive: bool) -> Result<Locked, LockFailed> {
        if !recursive {
            return Err(LockFailed::WouldDeadlock);
        }
        let depth = self.depth.load(Ordering::Relaxed);
        if depth >= u32::MAX - 1 {
            return Err(LockFailed::RecursionLimit);
        }
        self.depth.store(depth + 1, Ordering::Relaxed);
        Ok(Locked::Acquired)
    }

    /// The slow path: spin, then sleep in slices, taking the lock over from a
    /// holder that no longer exists.
    #[cold]
    #[inline(never)]
    fn lock_contended(&self, me: u32, deadline: Deadline) -> Result<Locked, LockFailed> {
        // By the clock: a lock is not interruptible, and a condvar's relock
        // (a never deadline) must not give up.
        if deadline.passed_by_clock() {
            return self.busy(self.word.load(Ordering::Relaxed), me);
        }
        // Loom skips the spin: its yields would let the holder finish every
        // time, and the sleep below would never be modelled.
        let spins = if cfg!(shmprim_loom) {
            0
        } else {
            SPIN_ITERATIONS
        };
        for _ in 0..spins {
            crate::sync::spin_hint();
            if self.word.load(Ordering::Relaxed) == 0
                // Acquire: as in `lock`.
                && self
                    .word
                    .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return Ok(Locked::Acquired);
            }
        }
        let mut turns = 0u32;
        loop {
            // A word that keeps changing under us without letting us in (only
            // a writer from outside does that for long) must not keep a timed
            // lock past its deadline: look at the clock every 64 turns.
            turns = turns.wrapping_add(1);
            if turns % 64 == 0 && deadline.passed_by_clock() {
                return Err(LockFailed::TimedOut);
            }
            let v = self.word.load(Ordering::Relaxed);
            let holder = v & TID_MASK;
            if holder == 0 {
                // Free. Keep `CONTENDED`: this thread may have been one of
                // several sleepers, and the others must be woken in turn.
                // Acquire: as in `lock`.
                if self
                    .word
                    .compare_exchange(v, me | CONTENDED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(Locked::Acquired);
                }
                continue;
            }
            if v & CONTENDED == 0
                && self
                    .word
                    .compare_exchange(v, v | CONTENDED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let seen = v | CONTENDED;
            match self.sleep(seen, slice_end(deadline)) {
                Slept::Woken => {}
                Slept::SliceOver => {
                    // The holder is checked before the deadline, so that a
                    // short timed lock, whose one slice ends at its deadline,
                    // still takes a dead holder's lock over.
                    if !thread_alive(holder)
                        // Acquire: the dead holder's writes are what the
                        // taker must check; pairs with nothing they released,
                        // but orders this thread's reads after the take-over.
                        && self
                            .word
                            .compare_exchange(
                                seen,
                                me | CONTENDED,
                                Ordering::Acquire,
                                Ordering::Relaxed,
                            )
                            .is_ok()
                    {
                        self.depth.store(0, Ordering::Relaxed);
                        return Ok(Locked::OwnerDied);
                    }
                    if deadline.has_passed() {
                        return Err(LockFailed::TimedOut);
                    }
                }
            }
        }
    }

    /// One slice of sleep while the word is `seen`.
    #[cfg(not(shmprim_loom))]
    fn sleep(&self, seen: u32, until: Deadline) -> Slept {
        use crate::sys::futex::{FutexWait, futex_wait};
        let deadline_ns = until.as_futex_deadline();
        // SAFETY: the word is a live, aligned u32 borrowed for the call.
        match unsafe { futex_wait(self.word.as_ptr(), seen, deadline_ns) } {
            FutexWait::Woken => {
                crate::wait::after_wake();
                Slept::Woken
            }
            FutexWait::Returned | FutexWait::Interrupted => Slept::Woken,
            FutexWait::TimedOut => Slept::SliceOver,
        }
    }

    /// The loom model of a slice of sleep (see `wait`'s model of the kernel).
    #[cfg(shmprim_loom)]
    fn sleep(&self, seen: u32, until: Deadline) -> Slept {
        if crate::wait::model_sleep(&self.word, seen, until) {
            Slept::SliceOver
        } else {
            Slept::Woken
        }
    }

    /// Unlocks one level; `NotOwner` (and nothing changed) when the caller
    /// does not hold the lock.
    #[inline]
    pub(crate) fn unlock(&self, recursive: bool) -> Result<(), UnlockFailed> {
        let me = my_tid();
        let v = self.word.load(Ordering::Relaxed);
        if v & TID_MASK != me {
            return Err(UnlockFailed::NotOwner);
        }
        if recursive {
            let depth = self.depth.load(Ordering::Relaxed);
            if depth > 0 {
                self.depth.store(depth - 1, Ordering::Relaxed);
                return Ok(());
            }
        }
        // Release: pairs with the Acquire compare-and-swap of the next
        // locker. Only this thread clears its id; others can only add
        // `CONTENDED`, which the swap takes along.
        let old = self.word.swap(0, Ordering::Release);
        if old & CONTENDED != 0 {
            crate::wait::wake_sleepers(&self.word, 1);
        }
        Ok(())
    }

    /// The holder's thread id, 0 when free (a relaxed snapshot).
    #[inline]
    pub(crate) fn owner_tid(&self) -> u32 {
        self.word.load(Ordering::Relaxed) & TID_MASK
    }

    /// Levels held: 0 when free, 1 plus the depth otherwise (a snapshot,
    /// exact for the holder).
    pub(crate) fn levels(&self) -> u32 {
        decode_words(
            self.word.load(Ordering::Relaxed),
            self.depth.load(Ordering::Relaxed),
        )
        .depth
    }

    /// Whether the calling thread holds the lock.
    #[inline]
    pub(crate) fn held_by_current_thread(&self) -> bool {
        self.owner_tid() == my_tid()
    }
}

/// How a slice of sleep ended.
enum Slept {
    /// Woken, or the word had changed: look again.
    Woken,
    /// The slice ran out.
    SliceOver,
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    fn new_lock(kind: u32) -> Arc<FutexLock> {
        let mut mem = Box::<FutexLock>::new_uninit();
        // SAFETY: fresh, aligned, unused heap memory.
        unsafe { FutexLock::init(mem.as_mut_ptr(), kind) };
        // SAFETY: initialised just above.
        Arc::new(*unsafe { mem.assume_init() })
    }

    /// Two threads increment a counter under the lock: no increment is lost
    /// (mutual exclusion) and neither sleeps for ever (no lost wake-up; a
    /// sleeper nobody wakes is a loom deadlock).
    #[test]
    fn loom_lock_excludes_and_wakes() {
        loom::model(|| {
            let lock = new_lock(KIND_ERRORCHECK);
            let count = Arc::new(crate::sync::UnsafeCell::new(0u32));
            let others: Vec<_> = (0..2)
                .map(|_| {
                    let (lock, count) = (lock.clone(), count.clone());
                    loom::thread::spawn(move || {
                        assert!(lock.lock(false, Deadline::never()).is_ok());
                        // SAFETY: the lock excludes every other access.
                        count.with_mut(|c| unsafe { *c += 1 });
                        assert!(lock.unlock(false).is_ok());
                    })
                })
                .collect();
            for t in others {
                t.join().unwrap();
            }
            // SAFETY: both threads are joined.
            assert_eq!(count.with(|c| unsafe { *c }), 2);
            assert_eq!(lock.owner_tid(), 0);
        });
    }

    /// A recursive lock taken twice by one thread is released after two
    /// unlocks, and only then taken by the other thread.
    #[test]
    fn loom_recursive_lock_releases_after_its_last_unlock() {
        loom::model(|| {
            let lock = new_lock(KIND_RECURSIVE);
            let l2 = lock.clone();
            let t = loom::thread::spawn(move || {
                assert!(l2.lock(true, Deadline::never()).is_ok());
                assert!(l2.lock(true, Deadline::never()).is_ok());
                assert_eq!(l2.levels(), 2);
                assert!(l2.unlock(true).is_ok());
                assert!(l2.unlock(true).is_ok());
                assert!(l2.unlock(true).is_err(), "a third unlock is refused");
            });
            assert!(lock.lock(true, Deadline::never()).is_ok());
            assert_eq!(lock.levels(), 1);
            assert!(lock.unlock(true).is_ok());
            t.join().unwrap();
        });
    }
}
