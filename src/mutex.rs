//! A robust, process-shared mutex: Python's `multiprocessing.Lock`, holding a
//! plain-data value like `std::sync::Mutex<T>`.
//!
//! [`RawMutex`] is the payload-free lock that lives in shared memory (a
//! `pthread_mutex_t` made `PTHREAD_PROCESS_SHARED` and `PTHREAD_MUTEX_ROBUST`);
//! other primitives embed it.
//!
//! # When a participant dies
//!
//! If the owner dies holding the lock (a thread exits or a process is killed,
//! even with `SIGKILL`), the kernel marks the lock *owner died* and wakes one
//! waiter. The next locker acquires it and is told so ([`LockStatus::OwnerDied`]),
//! the way `std::sync::Mutex` reports poisoning. It then either calls
//! `mark_consistent` (the data was checked or repaired) and carries on, or
//! unlocks without doing so, and the lock becomes *unrecoverable*: every later
//! lock fails with [`Error::Unrecoverable`]. A mutex that nobody holds when a
//! participant dies is unaffected.
//!
//! # States
//!
//! The state is glibc's futex word inside the `pthread_mutex_t` (the kernel's
//! robust-futex ABI):
//!
//! | word                           | meaning                      | next lock returns          |
//! |--------------------------------|------------------------------|----------------------------|
//! | `0`                            | free                         | `Acquired`                 |
//! | `tid` (`\| WAITERS`)           | held by thread `tid`         | waits                      |
//! | `OWNER_DIED` (set by kernel)   | owner died holding it        | `OwnerDied` (now held)     |
//! | `NOTRECOVERABLE` (glibc)       | unlocked without consistent  | `Err(Unrecoverable)`       |
//!
//! Blocking locks spin briefly (reading the word, not writing it) before
//! sleeping in the kernel; an unlock with no sleeper makes no system call.
//!
//! # Errors and names
//!
//! [`RawMutex`] does not know the name of the segment it lives in, so the
//! errors it returns carry an empty name; the named handles ([`Mutex`]) fill in
//! their segment's name before returning them.

use crate::error::{Error, Result};
use crate::sys::pthread::{LockFailed, Locked, MutexType, PthreadMutex, UnlockFailed};
use crate::wait::Deadline;

/// How many times a blocking lock re-reads a held mutex before sleeping in the
/// kernel (a few microseconds; see `wait.rs` for the reasoning).
const SPIN_ITERATIONS: u32 = 128;

/// Options fixed when a mutex is created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MutexOptions {
    /// Priority inheritance (`PTHREAD_PRIO_INHERIT`): a low-priority owner is
    /// boosted while a higher-priority thread waits, for real-time users. Where
    /// the kernel or C library does not support it, creation fails with
    /// [`Error::InvalidArgument`]. Uncontended locking stays in user space; a
    /// contended lock or unlock always enters the kernel (no spinning).
    pub priority_inheritance: bool,
}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStatus {
    /// Normally.
    Acquired,
    /// Acquired, but the previous owner died holding it: the protected data may
    /// be half-updated. Call `mark_consistent` before unlocking to keep the lock
    /// usable; unlocking without it makes the lock unrecoverable.
    OwnerDied,
}

impl From<Locked> for LockStatus {
    fn from(l: Locked) -> LockStatus {
        match l {
            Locked::Acquired => LockStatus::Acquired,
            Locked::OwnerDied => LockStatus::OwnerDied,
        }
    }
}

/// Maps a failed pthread lock to the crate's error (with an empty segment name).
pub(crate) fn lock_error(f: LockFailed) -> Error {
    match f {
        LockFailed::Busy | LockFailed::TimedOut => Error::Timeout,
        LockFailed::NotRecoverable => Error::Unrecoverable {
            name: String::new(),
        },
        LockFailed::WouldDeadlock => Error::invalid_argument(
            "the calling thread already holds this mutex (it is not reentrant)",
        ),
        LockFailed::RecursionLimit => {
            Error::invalid_argument("the reentrant mutex's recursion count would overflow")
        }
        LockFailed::Os(e) => Error::corrupted("", format!("pthread mutex refused to lock: {e}")),
    }
}

/// Fills in `name` where a raw lock left the segment name empty.
#[allow(dead_code)] // used by the named handles
pub(crate) fn with_name(err: Error, name: &str) -> Error {
    match err {
        Error::Unrecoverable { name: n } if n.is_empty() => Error::Unrecoverable {
            name: name.to_owned(),
        },
        Error::Corrupted { name: n, detail } if n.is_empty() => Error::Corrupted {
            name: name.to_owned(),
            detail,
        },
        Error::Io {
            name: n,
            op,
            source,
        } if n.is_empty() => Error::Io {
            name: name.to_owned(),
            op,
            source,
        },
        other => other,
    }
}

/// Locks `m`: one `trylock` (the whole fast path), then a short spin reading
/// the futex word, then a blocking or timed `pthread` lock.
pub(crate) fn lock_pthread(m: &PthreadMutex, deadline: Deadline) -> Result<LockStatus> {
    match m.try_lock() {
        Ok(l) => return Ok(l.into()),
        Err(LockFailed::Busy) => {}
        Err(f) => return Err(lock_error(f)),
    }
    if deadline.has_passed() {
        return Err(Error::Timeout);
    }
    for _ in 0..SPIN_ITERATIONS {
        crate::sync::spin_hint();
        if m.owner_tid() == 0 {
            match m.try_lock() {
                Ok(l) => return Ok(l.into()),
                Err(LockFailed::Busy) => {}
                Err(f) => return Err(lock_error(f)),
            }
        }
    }
    let r = if deadline.is_never() {
        m.lock()
    } else {
        m.lock_until(deadline_ns(deadline))
    };
    r.map(LockStatus::from).map_err(lock_error)
}

/// Nanoseconds on `CLOCK_MONOTONIC` of a finite deadline.
fn deadline_ns(deadline: Deadline) -> u64 {
    let left = deadline.remaining().unwrap_or_default();
    crate::sys::time::monotonic_ns()
        .saturating_add(u64::try_from(left.as_nanos()).unwrap_or(u64::MAX))
}

/// `try_lock` of a pthread mutex: `Ok(None)` when held by another thread.
pub(crate) fn try_lock_pthread(m: &PthreadMutex) -> Result<Option<LockStatus>> {
    match m.try_lock() {
        Ok(l) => Ok(Some(l.into())),
        Err(LockFailed::Busy) => Ok(None),
        Err(f) => Err(lock_error(f)),
    }
}

/// `mark_consistent` of a pthread mutex; a mutex not in the owner-died state is
/// left alone (`Ok`).
pub(crate) fn consistent_pthread(m: &PthreadMutex) -> Result<()> {
    match m.consistent() {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        Err(source) => Err(Error::Io {
            name: String::new(),
            op: "pthread_mutex_consistent",
            source,
        }),
    }
}

/// A robust, process-shared mutex with no payload, placed in shared memory.
///
/// It is a `pthread_mutex_t` initialised with `PTHREAD_PROCESS_SHARED`,
/// `PTHREAD_MUTEX_ROBUST` and `PTHREAD_MUTEX_ERRORCHECK` (and optionally
/// `PTHREAD_PRIO_INHERIT`). A lock must be released by the thread that took it.
/// Errors carry an empty segment name (see the module docs).
///
/// ```
/// use shmprim::{Deadline, LockStatus, MutexOptions, RawMutex};
/// use std::mem::MaybeUninit;
///
/// let mut mem = Box::new(MaybeUninit::<RawMutex>::uninit());
/// // SAFETY: fresh, aligned, unused memory.
/// unsafe { RawMutex::init(mem.as_mut_ptr(), &MutexOptions::default())? };
/// // SAFETY: initialised just above.
/// let m = unsafe { mem.assume_init_ref() };
/// assert_eq!(m.lock(Deadline::never())?, LockStatus::Acquired);
/// // SAFETY: this thread holds the lock.
/// unsafe { m.unlock() };
/// # Ok::<(), shmprim::Error>(())
/// ```
#[repr(C)]
pub struct RawMutex {
    mutex: PthreadMutex,
}

// SAFETY: the pthread mutex is designed to be used from many threads (and
// processes) at once through a shared pointer.
unsafe impl Sync for RawMutex {}
// SAFETY: a `RawMutex` value is plain bytes; whether it is held is recorded in
// those bytes, not in the thread that moves it (moving a held mutex is prevented
// by borrows in every safe API).
unsafe impl Send for RawMutex {}

impl RawMutex {
    /// Size in bytes of the state (`size_of::<pthread_mutex_t>()`).
    pub const SIZE: usize = std::mem::size_of::<RawMutex>();
    /// Alignment of the state.
    pub const ALIGN: usize = std::mem::align_of::<RawMutex>();

    /// Writes a fresh, unlocked mutex at `ptr`.
    ///
    /// Fails with [`Error::InvalidArgument`] when priority inheritance is asked
    /// for and not supported here.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of [`RawMutex::SIZE`] bytes, aligned to
    /// [`RawMutex::ALIGN`], and no thread or process may be using a mutex there.
    pub unsafe fn init(ptr: *mut RawMutex, opts: &MutexOptions) -> Result<()> {
        // SAFETY: forwarded from the caller; `RawMutex` is `repr(C)` with the
        // `PthreadMutex` as its only field, at offset 0.
        let r = unsafe {
            PthreadMutex::init(
                ptr.cast::<PthreadMutex>(),
                MutexType::ErrorCheck,
                opts.priority_inheritance,
            )
        };
        r.map_err(init_error)
    }

    /// Locks, waiting until `deadline`: `Ok(Acquired)`, `Ok(OwnerDied)` (held
    /// now; see [`LockStatus::OwnerDied`]), `Err(Timeout)`,
    /// `Err(Unrecoverable)`, or `Err(InvalidArgument)` if this thread already
    /// holds it.
    pub fn lock(&self, deadline: Deadline) -> Result<LockStatus> {
        lock_pthread(&self.mutex, deadline)
    }

    /// Locks if free: `Ok(None)` when another thread holds it.
    pub fn try_lock(&self) -> Result<Option<LockStatus>> {
        try_lock_pthread(&self.mutex)
    }

    /// Unlocks. If the lock was acquired with [`LockStatus::OwnerDied`] and not
    /// marked consistent, it becomes unrecoverable.
    ///
    /// # Safety
    /// The calling thread must hold the lock, and nothing may use the data it
    /// protects through the now-released lock. (pthread checks the owner and
    /// refuses a non-owner's unlock; the contract is about the data.)
    pub unsafe fn unlock(&self) {
        let r = self.mutex.unlock();
        debug_assert!(r.is_ok(), "unlock of a RawMutex not held: {r:?}");
    }

    /// Declares the protected data consistent after [`LockStatus::OwnerDied`],
    /// before unlocking, so the lock stays usable. Does nothing (`Ok`) when the
    /// lock is not in the owner-died state.
    pub fn mark_consistent(&self) -> Result<()> {
        consistent_pthread(&self.mutex)
    }

    /// Whether a thread of the calling process holds the lock. Handles use it
    /// to keep the memory mapped when a guard was leaked (`mem::forget`): the
    /// C library links a held robust mutex into its thread's robust list and
    /// follows that link later, so its memory must not be unmapped.
    pub fn held_by_current_process(&self) -> bool {
        self.mutex.held_by_current_process()
    }

    /// A mutex on the heap (for tests and single-process use).
    pub fn new(opts: &MutexOptions) -> Result<Box<RawMutex>> {
        let mut mem = Box::<RawMutex>::new_uninit();
        // SAFETY: fresh, aligned, unused heap memory of the right size.
        unsafe { RawMutex::init(mem.as_mut_ptr(), opts)? };
        // SAFETY: initialised just above.
        Ok(unsafe { mem.assume_init() })
    }
}

impl std::fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMutex")
            .field("owner_tid", &self.mutex.owner_tid())
            .finish()
    }
}

/// Maps a failed `pthread_mutex_init`.
pub(crate) fn init_error(source: std::io::Error) -> Error {
    if source.raw_os_error() == Some(libc::ENOTSUP) {
        Error::invalid_argument(format!(
            "this mutex configuration is not supported here: {source}"
        ))
    } else {
        Error::Io {
            name: String::new(),
            op: "pthread_mutex_init",
            source,
        }
    }
}

/// Maps a failed unlock of a lock the caller claims to hold.
#[allow(dead_code)] // used by the reentrant mutex
pub(crate) fn unlock_error(f: UnlockFailed) -> Error {
    match f {
        UnlockFailed::NotOwner => Error::NotOwner,
        UnlockFailed::Os(e) => {
            Error::corrupted("", format!("pthread mutex refused to unlock: {e}"))
        }
    }
}

#[cfg(all(test, not(shmprim_loom)))]
mod raw_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn raw_mutex_locks_unlocks_and_try_lock_sees_it_held_by_another_thread() {
        let m: std::sync::Arc<RawMutex> = RawMutex::new(&MutexOptions::default()).unwrap().into();
        assert_eq!(m.lock(Deadline::never()).unwrap(), LockStatus::Acquired);
        assert!(m.held_by_current_process());
        let m2 = m.clone();
        let seen = std::thread::spawn(move || m2.try_lock().unwrap())
            .join()
            .unwrap();
        assert_eq!(seen, None);
        // SAFETY: this thread holds it.
        unsafe { m.unlock() };
        assert!(!m.held_by_current_process());
        assert_eq!(m.try_lock().unwrap(), Some(LockStatus::Acquired));
        // SAFETY: this thread holds it.
        unsafe { m.unlock() };
    }

    #[test]
    fn raw_mutex_relock_by_owner_is_an_error_not_a_deadlock() {
        let m = RawMutex::new(&MutexOptions::default()).unwrap();
        m.lock(Deadline::never()).unwrap();
        assert!(matches!(
            m.lock(Deadline::never()),
            Err(Error::InvalidArgument { .. })
        ));
        // SAFETY: this thread holds it.
        unsafe { m.unlock() };
    }

    #[test]
    fn raw_mutex_lock_times_out_while_another_thread_holds_it() {
        let m: std::sync::Arc<RawMutex> = RawMutex::new(&MutexOptions::default()).unwrap().into();
        m.lock(Deadline::never()).unwrap();
        let m2 = m.clone();
        let (r, took) = std::thread::spawn(move || {
            let start = Instant::now();
            let r = m2.lock(Deadline::after(Duration::from_millis(100)));
            (r, start.elapsed())
        })
        .join()
        .unwrap();
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
        // SAFETY: this thread holds it.
        unsafe { m.unlock() };
    }

    /// A thread that exits holding the lock makes the kernel mark it owner-died.
    #[test]
    fn raw_mutex_reports_owner_died_then_consistent_or_unrecoverable() {
        for keep in [true, false] {
            let m: std::sync::Arc<RawMutex> =
                RawMutex::new(&MutexOptions::default()).unwrap().into();
            let m2 = m.clone();
            std::thread::spawn(move || {
                m2.lock(Deadline::never()).unwrap();
            })
            .join()
            .unwrap();
            assert_eq!(m.lock(Deadline::never()).unwrap(), LockStatus::OwnerDied);
            if keep {
                m.mark_consistent().unwrap();
            }
            // SAFETY: this thread holds it.
            unsafe { m.unlock() };
            if keep {
                assert_eq!(m.lock(Deadline::never()).unwrap(), LockStatus::Acquired);
                // SAFETY: this thread holds it.
                unsafe { m.unlock() };
            } else {
                assert!(matches!(
                    m.lock(Deadline::never()),
                    Err(Error::Unrecoverable { .. })
                ));
                assert!(matches!(m.try_lock(), Err(Error::Unrecoverable { .. })));
                assert!(matches!(
                    m.lock(Deadline::now()),
                    Err(Error::Unrecoverable { .. })
                ));
                assert!(matches!(
                    m.lock(Deadline::after(Duration::from_millis(50))),
                    Err(Error::Unrecoverable { .. })
                ));
                assert!(!m.held_by_current_process());
            }
        }
    }
}
