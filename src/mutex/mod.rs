//! A robust, process-shared mutex: Python's `multiprocessing.Lock`, holding a
//! plain-data value like `std::sync::Mutex<T>`.
//!
//! [`RawMutex`] is the payload-free lock that lives in shared memory;
//! other primitives embed it. It is shmprim's own lock, not a pthread mutex:
//! one futex word holding the holder's thread id (see `futex_lock.rs`).
//!
//! # When a participant dies
//!
//! If the holder dies holding the lock (a thread exits or a process is killed,
//! even with `SIGKILL`), a waiter notices within one slice of sleep
//! (10 ms): every waiter
//! wakes once per slice and checks, in `/proc`, whether the holder's thread
//! still exists. One waiter takes the lock over and is told so
//! ([`LockStatus::OwnerDied`]), the way `std::sync::Mutex` reports
//! poisoning; a locker that comes later with nobody waiting takes it over the
//! same way after one slice. The taker then either calls `mark_consistent`
//! (the data was checked or repaired) and carries on, or unlocks without
//! doing so, and the next locker is told the same, until one decides. So the
//! natural `m.lock().unwrap()` (a panic that drops the guard) and `m.lock()?`
//! (which turns the owner-died guard into [`Error::OwnerDied`], dropping it)
//! leave the lock usable, with the decision to whoever locks next. A mutex
//! that nobody holds when a participant dies is unaffected.
//!
//! A waiter that an unlock woke and that dies before it takes the lock
//! strands nobody: the other waiters look at the word again within a slice
//! and one of them takes it.
//!
//! The processes sharing a lock must share a PID namespace (or see each
//! other's threads from a parent one): a waiter that cannot see the
//! holder's thread takes it for dead.
//!
//! # States
//!
//! | lock word            | owner-died flag | meaning                          | next lock returns         |
//! |----------------------|-----------------|----------------------------------|---------------------------|
//! | `0`                  | clear           | free                             | `Acquired`                |
//! | `tid` (`\| CONTENDED`) | any           | held by thread `tid`             | waits                     |
//! | `tid` of a dead thread | any           | the holder died holding it       | `OwnerDied` within a slice, now held |
//! | `0`                  | set             | released after `OwnerDied` without `mark_consistent` | `OwnerDied`, now held |
//!
//! Blocking locks try once, spin briefly reading the word (never writing
//! it), then sleep in the kernel in slices; an unlock with no sleeper makes
//! no system call.
//!
//! # Priority inheritance
//!
//! A mutex created with [`MutexOptions::priority_inheritance`] is a glibc
//! robust pthread mutex instead (`PTHREAD_PRIO_INHERIT`), because only the
//! kernel's PI futexes boost a holder. It keeps glibc's two hazards: a waiter
//! that an unlock woke and that dies before retaking the lock can leave the
//! other waiters asleep on a free mutex (use `lock_timeout`), and the robust
//! list that glibc links through the shared mutex means that a process
//! writing into a held mutex's bytes can make glibc write outside the
//! segment. Owner death is reported at once there, by the kernel.
//!
//! # Corrupted memory
//!
//! Before every lock (and before an unlock by a thread that may not hold it)
//! the lock's type word is checked against the types shmprim makes: a
//! scribbled one gives [`Error::Corrupted`]. The other words are atomics
//! that nothing uses as an address: a scribble can make the lock look free
//! while held, or held by a thread that does not exist (taken over after a
//! slice, as from a dead holder), or by a live thread (waited for, as for a
//! live holder: use `lock_timeout` where that matters).
//!
//! # Differences from Python's `Lock`
//!
//! The lock must be released by the thread that took it (the guard is not
//! `Send`), where Python lets any thread release a `Lock`; and a thread that
//! locks a mutex it already holds gets [`Error::InvalidArgument`] instead of
//! deadlocking (use [`ReentrantMutex`](crate::ReentrantMutex) for recursion).
//!
//! # Example
//!
//! ```
//! use shmprim::{LockError, Mutex};
//! # let name = format!("doc-mutex-mod-{}", std::process::id());
//! // One process creates it; others open it by name.
//! let hits = Mutex::create(&name, 0u64)?;
//! let same = Mutex::<u64>::open(&name)?;
//! *hits.lock().unwrap() += 1;
//! let mut guard = match same.lock() {
//!     Ok(guard) => guard,
//!     // The last holder died mid-update: check or repair, then keep the lock.
//!     Err(LockError::OwnerDied(guard)) => {
//!         guard.mark_consistent()?;
//!         guard
//!     }
//!     Err(LockError::Failed(e)) => return Err(e),
//! };
//! *guard += 1;
//! assert_eq!(*guard, 2);
//! drop(guard);
//! Mutex::<u64>::unlink(&name)?;
//! # Ok::<(), shmprim::Error>(())
//! ```
//!
//! # Errors and names
//!
//! [`RawMutex`] does not know the name of the segment it lives in, so the
//! errors it returns carry an empty name; the named handles ([`Mutex`]) fill in
//! their segment's name before returning them.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Error, ObjectName, Result};
use crate::segment::{Disposition, Kind, Options, Segment, SegmentBuilder, TypeDesc};
use crate::sys::pthread::{LockFailed, Locked, UnlockFailed};
use crate::wait::{Deadline, try_first};

mod byte_lock;
mod futex_lock;
mod state;
pub use byte_lock::{ByteLock, SegmentLock};
pub(crate) use futex_lock::{
    KIND_PRIORITY_INHERITANCE as PRIORITY_INHERITANCE_BIT, WORD_OFFSETS, decode_words, thread_alive,
};
pub(crate) use state::LockState;

/// Options fixed when a mutex is created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MutexOptions {
    /// Priority inheritance (`PTHREAD_PRIO_INHERIT`): a low-priority owner is
    /// boosted while a higher-priority thread waits, for real-time users. Where
    /// the kernel or C library does not support it, creation fails with
    /// [`Error::InvalidArgument`]. Uncontended locking stays in user space; a
    /// contended lock sleeps with `FUTEX_LOCK_PI` and the owner's unlock then
    /// hands the lock over in the kernel.
    pub priority_inheritance: bool,
}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStatus {
    /// Normally.
    Acquired,
    /// Acquired, but the previous owner died holding it: the protected data may
    /// be half-updated. Call `mark_consistent` before unlocking once it is
    /// checked or repaired; unlocking without it tells the next locker the
    /// same.
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
#[inline]
pub(crate) fn lock_error(f: LockFailed) -> Error {
    match f {
        LockFailed::Busy | LockFailed::TimedOut => Error::Timeout {
            name: ObjectName::unknown(),
        },
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

/// Whether a lock's result is a timeout: for [`try_first`].
pub(crate) fn lock_timed_out<G>(r: &LockResult<G>) -> bool {
    matches!(r, Err(LockError::Failed(Error::Timeout { .. })))
}

/// A robust, process-shared mutex with no payload, placed in shared memory.
///
/// It is shmprim's own lock word (see the module docs), or with priority
/// inheritance a glibc robust `pthread_mutex_t`; relocking by the holder is
/// refused. A lock must be released by the thread that took it. Errors
/// carry an empty segment name (see the module docs).
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
    state: LockState,
}

/// Byte offset of shmprim's owner-died flag (`u32`, non-zero until a holder
/// marks the data consistent) in a [`RawMutex`] and a
/// [`RawReentrantMutex`](crate::RawReentrantMutex), for inspection.
pub(crate) const SUSPECT_OFFSET: usize = state::SUSPECT_OFFSET;
/// Byte offset of the lock's words (see `futex_lock::WORD_OFFSETS`) in a
/// [`RawMutex`] and a [`RawReentrantMutex`](crate::RawReentrantMutex).
pub(crate) const FUTEX_OFFSET: usize = state::FUTEX_OFFSET;

// SAFETY: the lock is designed to be used from many threads (and processes)
// at once through a shared pointer: every word is an atomic, and the pthread
// mutex is made for it.
unsafe impl Sync for RawMutex {}
// SAFETY: a `RawMutex` value is plain bytes; whether it is held is recorded in
// those bytes, not in the thread that moves it (moving a held mutex is prevented
// by borrows in every safe API).
unsafe impl Send for RawMutex {}

impl RawMutex {
    /// Size in bytes of the state.
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
        // SAFETY: forwarded from the caller; `RawMutex` is `repr(C)` around
        // its state.
        unsafe { LockState::init(ptr.cast::<LockState>(), false, opts) }
    }

    /// Locks, waiting until `deadline`: `Ok(Acquired)`, `Ok(OwnerDied)` (held
    /// now; see [`LockStatus::OwnerDied`]), `Err(Timeout)`,
    /// `Err(Unrecoverable)`, or `Err(InvalidArgument)` if this thread already
    /// holds it.
    #[inline]
    pub fn lock(&self, deadline: Deadline) -> Result<LockStatus> {
        self.state.lock(false, deadline)
    }

    /// Locks if free: `Ok(None)` when another thread holds it.
    #[inline]
    pub fn try_lock(&self) -> Result<Option<LockStatus>> {
        self.state.try_lock(false)
    }

    /// Unlocks. If the lock was acquired with [`LockStatus::OwnerDied`] and not
    /// marked consistent, the next locker is told [`LockStatus::OwnerDied`]
    /// in turn.
    ///
    /// # Safety
    /// The calling thread must hold the lock, and nothing may use the data it
    /// protects through the now-released lock. (The lock checks the owner and
    /// refuses a non-owner's unlock; the contract is about the data.)
    #[inline]
    pub unsafe fn unlock(&self) {
        // A refusal (the word does not name this thread, or its type word
        // is forged) leaves the lock as it was; the next lock reports what
        // the word says. It is not asserted on: besides a caller's bug, bytes
        // written into the segment while the lock was held make it, and
        // nothing read from a segment may abort the process.
        let _ = self.state.unlock(false);
    }

    /// Unlocks, reporting [`Error::NotOwner`] (and changing nothing) when the
    /// calling thread does not hold the lock: for callers that cannot promise
    /// they hold it (the C API).
    ///
    /// # Safety
    /// Nothing may use the data the lock protects through the released lock
    /// (as for [`unlock`](Self::unlock)).
    #[inline]
    pub unsafe fn unlock_checked(&self) -> Result<()> {
        self.state.unlock(false)
    }

    /// Declares the protected data consistent after [`LockStatus::OwnerDied`],
    /// before unlocking, so the lock stays usable. Does nothing (`Ok`) when the
    /// lock is not in the owner-died state.
    pub fn mark_consistent(&self) -> Result<()> {
        self.state.consistent()
    }

    /// Whether a thread of the calling process holds the lock. Handles use it
    /// to keep the memory mapped when a guard was leaked (`mem::forget`): a
    /// mutex made with priority inheritance is glibc's, which links a held
    /// mutex into its thread's robust list and follows that link later.
    pub fn held_by_current_process(&self) -> bool {
        self.state.held_by_current_process()
    }

    /// Whether the calling thread holds the lock (the C API checks it before a
    /// condvar wait releases the lock).
    pub fn held_by_current_thread(&self) -> bool {
        self.state.held_by_current_thread()
    }

    /// Whether some thread of some process holds the lock now (Python's
    /// `Lock.locked()`; a snapshot). A holder that died no longer counts.
    pub fn is_locked(&self) -> bool {
        self.state.owner_tid() != 0
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
            .field("owner_tid", &self.state.owner_tid())
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
pub(crate) fn unlock_error(f: UnlockFailed) -> Error {
    match f {
        UnlockFailed::NotOwner => Error::NotOwner {
            name: ObjectName::unknown(),
        },
        UnlockFailed::Os(e) => {
            Error::corrupted("", format!("pthread mutex refused to unlock: {e}"))
        }
    }
}

// ---------------------------------------------------------------- named handle

/// Header parameter: the C library tag (`pthread_mutex_t` layouts differ).
const PARAM_LIBC: usize = 0;
/// Header parameter: size of the lock state in bytes.
const PARAM_LOCK_SIZE: usize = 1;
/// Header parameter: offset of the value from the start of the data area.
const PARAM_VALUE_OFFSET: usize = 2;
/// Header parameter: 1 if created with priority inheritance (informational).
const PARAM_PRIORITY_INHERITANCE: usize = 3;

/// Where a value of type `T` sits after a lock state of `lock_size` bytes.
pub(crate) fn value_offset<T>(lock_size: usize) -> usize {
    lock_size.next_multiple_of(std::mem::align_of::<T>())
}

/// The segment builder shared by [`Mutex`] and the reentrant mutex: kind,
/// layout parameters, payload type and options. The lock state is always at
/// offset 0 of the (page-aligned) data area, the value at `value_offset`.
pub(crate) fn lock_builder<T: Pod>(
    kind: Kind,
    lock_size: usize,
    mopts: &MutexOptions,
    opts: &Options,
) -> Result<SegmentBuilder> {
    lock_builder_for(
        kind,
        lock_size,
        crate::cell::payload_desc::<T>(),
        mopts,
        opts,
    )
}

/// [`lock_builder`] for a payload described at run time (the C API, which
/// has no `T`: it passes a size and an alignment as a `Bytes` payload, which
/// a Rust `Mutex<T>` of the same size and alignment opens).
pub(crate) fn lock_builder_for(
    kind: Kind,
    lock_size: usize,
    payload: TypeDesc,
    mopts: &MutexOptions,
    opts: &Options,
) -> Result<SegmentBuilder> {
    let align = payload.align as usize;
    if !align.is_power_of_two() || align > crate::segment::HEADER_SIZE {
        return Err(Error::invalid_argument(format!(
            "the value's alignment {align} is not a power of two up to a page"
        )));
    }
    let offset = lock_size.next_multiple_of(align) as u64;
    let data_size = offset
        .checked_add(payload.size)
        .ok_or_else(|| Error::invalid_argument("the value's size is too large"))?;
    Ok(SegmentBuilder::new(kind)
        .data_size(data_size)
        .param(PARAM_LIBC, crate::sys::pthread::LIBC_TAG)
        .param(PARAM_LOCK_SIZE, lock_size as u64)
        .param(PARAM_VALUE_OFFSET, offset)
        .param(
            PARAM_PRIORITY_INHERITANCE,
            mopts.priority_inheritance as u64,
        )
        .payload(payload)
        .options(opts))
}

/// Checks an opened lock segment's layout parameters and size.
pub(crate) fn check_lock_segment<T>(seg: &Segment, lock_size: usize) -> Result<()> {
    check_lock_segment_for(
        seg,
        lock_size,
        std::mem::size_of::<T>() as u64,
        std::mem::align_of::<T>(),
    )
    .map(|_| ())
}

/// [`check_lock_segment`] for a value of `size` bytes aligned to `align` (a
/// power of two up to a page); returns the value's offset in the data area.
pub(crate) fn check_lock_segment_for(
    seg: &Segment,
    lock_size: usize,
    size: u64,
    align: usize,
) -> Result<usize> {
    seg.expect_param(PARAM_LIBC, crate::sys::pthread::LIBC_TAG, "C library tag")?;
    seg.expect_param(PARAM_LOCK_SIZE, lock_size as u64, "lock size")?;
    let offset = lock_size.next_multiple_of(align);
    seg.expect_param(PARAM_VALUE_OFFSET, offset as u64, "value offset")?;
    seg.expect_data_size((offset as u64).saturating_add(size))?;
    Ok(offset)
}

/// Writes `value` at its offset in a fresh data area.
///
/// # Safety
/// `data` must be the start of a writable data area of at least
/// `value_offset::<T>(lock_size) + size_of::<T>()` bytes, page aligned.
pub(crate) unsafe fn write_value<T: Pod>(data: NonNull<u8>, lock_size: usize, value: T) {
    // SAFETY: in bounds and aligned by the caller's guarantee and `value_offset`.
    unsafe {
        data.as_ptr()
            .add(value_offset::<T>(lock_size))
            .cast::<T>()
            .write(value)
    };
}

/// The result of locking: the guard, or a [`LockError`].
pub type LockResult<G> = std::result::Result<G, LockError<G>>;

/// Why a lock call did not simply return its guard.
///
/// Like `std::sync::PoisonError`, [`LockError::OwnerDied`] carries the guard:
/// the lock *is* held, but its previous owner died holding it, so the data may
/// be half-updated. Check or repair it, then call the guard's
/// `mark_consistent`; dropping the guard without doing so passes the news on
/// to the next locker. Every other failure is a [`crate::Error`]. With `?`,
/// a `LockError` becomes an [`Error`] (an owner-died one
/// [`Error::OwnerDied`], its guard dropped), also inside a `Box<dyn Error>`.
///
/// C status codes: `OwnerDied` is `SHMPRIM_OWNER_DIED` (locked, with a
/// warning); `Failed(e)` is `e`'s status (`SHMPRIM_TIMEOUT`,
/// `SHMPRIM_UNRECOVERABLE`, ...).
pub enum LockError<G> {
    /// Locked, but the previous owner died holding the lock.
    OwnerDied(G),
    /// Not locked.
    Failed(Error),
}

impl<G> LockError<G> {
    /// The guard of an owner-died lock; `None` if the lock failed.
    pub fn into_guard(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            LockError::Failed(_) => None,
        }
    }

    /// Whether the lock was acquired after its owner died.
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_))
    }

    /// The error of a failed lock; `None` for owner-died.
    pub fn error(&self) -> Option<&Error> {
        match self {
            LockError::OwnerDied(_) => None,
            LockError::Failed(e) => Some(e),
        }
    }

    /// Applies `f` to the guard of an owner-died lock.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::OwnerDied(g) => LockError::OwnerDied(f(g)),
            LockError::Failed(e) => LockError::Failed(e),
        }
    }
}

impl<G> From<Error> for LockError<G> {
    fn from(e: Error) -> LockError<G> {
        LockError::Failed(e)
    }
}

impl<G> std::fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<G> std::fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str(
                "lock acquired, but its previous owner died holding it: the data may be inconsistent",
            ),
            LockError::Failed(e) => e.fmt(f),
        }
    }
}

/// A guard of a robust lock, which knows its segment's name: what lets a
/// [`LockError`] become an [`Error`] (`lock()?`).
pub trait LockGuard {
    /// The name of the segment the lock lives in.
    fn lock_name(&self) -> &str;
}

impl<G: LockGuard> From<LockError<G>> for Error {
    /// A failed lock's error, or [`Error::OwnerDied`] for an owner-died lock:
    /// the guard is dropped without a decision, so the lock goes back with its
    /// owner-died state for the next locker to decide.
    fn from(e: LockError<G>) -> Error {
        match e {
            LockError::OwnerDied(guard) => Error::OwnerDied {
                name: guard.lock_name().to_owned(),
            },
            LockError::Failed(e) => e,
        }
    }
}

impl<G: LockGuard> From<LockError<G>> for Box<dyn std::error::Error> {
    fn from(e: LockError<G>) -> Box<dyn std::error::Error> {
        Box::new(Error::from(e))
    }
}

impl<G: LockGuard> From<LockError<G>> for Box<dyn std::error::Error + Send + Sync> {
    fn from(e: LockError<G>) -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(Error::from(e))
    }
}

/// A robust mutex in a named (or anonymous) shared-memory segment, guarding a
/// plain-data value of type `T`: Python's `multiprocessing.Lock` with a value,
/// used like `std::sync::Mutex<T>`.
///
/// ```
/// use shmprim::{LockError, Mutex};
/// # let name = format!("doc-mutex-{}", std::process::id());
/// let counter = Mutex::create(&name, 0u64)?;
/// let other = Mutex::<u64>::open(&name)?; // in another process, typically
/// *counter.lock().unwrap() += 1;
/// match other.lock() {
///     Ok(mut n) => *n += 1,
///     // The previous owner died while holding the lock: repair, then keep it.
///     Err(LockError::OwnerDied(mut n)) => {
///         *n = 0;
///         n.mark_consistent()?;
///     }
///     Err(LockError::Failed(e)) => return Err(e),
/// }
/// assert_eq!(*counter.try_lock().ok().unwrap(), 2);
/// Mutex::<u64>::unlink(&name)?;
/// # Ok::<(), shmprim::Error>(())
/// ```
pub struct Mutex<T: Pod> {
    seg: ManuallyDrop<Segment>,
    _value: PhantomData<T>,
}

/// Holds a [`Mutex`] locked; gives `&mut T`; unlocks when dropped.
///
/// Not `Send`: a pthread mutex must be unlocked by the thread that locked it.
pub struct MutexGuard<'a, T: Pod> {
    mutex: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> Mutex<T> {
    /// Whether some thread of some process holds the lock now (Python's
    /// `Lock.locked()`; a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// Creates the named mutex holding `value`; `AlreadyExists` if the name is
    /// taken.
    pub fn create(name: &str, value: T) -> Result<Mutex<T>> {
        Mutex::create_with_options(name, value, &MutexOptions::default(), &Options::default())
    }

    /// [`create`](Self::create) with mutex options (priority inheritance) and
    /// handle options.
    pub fn create_with_options(
        name: &str,
        value: T,
        mopts: &MutexOptions,
        opts: &Options,
    ) -> Result<Mutex<T>> {
        let seg = lock_builder::<T>(Kind::Mutex, RawMutex::SIZE, mopts, opts)?
            .create_with(name, |data, _| Self::init_data(data, value, mopts))?;
        Ok(Mutex::from_segment(seg))
    }

    /// Opens an existing mutex; `Incompatible` if it holds another kind or
    /// another `T`.
    pub fn open(name: &str) -> Result<Mutex<T>> {
        Mutex::open_with_options(name, &Options::default())
    }

    /// [`open`](Self::open) with handle options.
    pub fn open_with_options(name: &str, opts: &Options) -> Result<Mutex<T>> {
        let seg = lock_builder::<T>(Kind::Mutex, RawMutex::SIZE, &MutexOptions::default(), opts)?
            .open(name)?;
        check_lock_segment::<T>(&seg, RawMutex::SIZE)?;
        Ok(Mutex::from_segment(seg))
    }

    /// Opens the mutex, or creates it holding `value` if it does not exist
    /// (exactly one caller creates under any race).
    pub fn open_or_create(name: &str, value: T) -> Result<(Mutex<T>, Disposition)> {
        let mopts = MutexOptions::default();
        let (seg, how) =
            lock_builder::<T>(Kind::Mutex, RawMutex::SIZE, &mopts, &Options::default())?
                .open_or_create_with(name, |data, _| Self::init_data(data, value, &mopts))?;
        if how == Disposition::Opened {
            check_lock_segment::<T>(&seg, RawMutex::SIZE)?;
        }
        Ok((Mutex::from_segment(seg), how))
    }

    /// An anonymous mutex holding `value`, shared with children forked later.
    pub fn anonymous(value: T) -> Result<Mutex<T>> {
        let mopts = MutexOptions::default();
        let seg = lock_builder::<T>(Kind::Mutex, RawMutex::SIZE, &mopts, &Options::default())?
            .anonymous_with(|data, _| Self::init_data(data, value, &mopts))?;
        Ok(Mutex::from_segment(seg))
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::Mutex)
    }

    /// The segment holding the mutex.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    fn init_data(data: NonNull<u8>, value: T, mopts: &MutexOptions) -> Result<()> {
        // SAFETY: the data area is fresh, page aligned and at least
        // `RawMutex::SIZE` bytes (the builder's data size); nobody else can see
        // it before the segment is published as ready.
        unsafe { RawMutex::init(data.as_ptr().cast::<RawMutex>(), mopts)? };
        // SAFETY: the data area holds the value at `value_offset` (builder size).
        unsafe { write_value(data, RawMutex::SIZE, value) };
        Ok(())
    }

    fn from_segment(seg: Segment) -> Mutex<T> {
        Mutex {
            seg: ManuallyDrop::new(seg),
            _value: PhantomData,
        }
    }

    fn raw(&self) -> &RawMutex {
        // SAFETY: the data area starts with an initialised RawMutex (created by
        // `init_data`, size checked on open) and is mapped while `self` lives.
        unsafe { &*self.seg.as_ptr().cast::<RawMutex>() }
    }

    fn value_ptr(&self) -> *mut T {
        self.seg
            .as_ptr()
            .wrapping_add(value_offset::<T>(RawMutex::SIZE))
            .cast::<T>()
    }

    /// Locks, waiting as long as it takes.
    ///
    /// `Err(LockError::OwnerDied(guard))`: locked, but the previous owner died
    /// holding it (also when a locker since then released it without
    /// `mark_consistent`).
    ///
    /// ```
    /// fn add_one(m: &shmprim::Mutex<u64>) -> Result<(), Box<dyn std::error::Error>> {
    ///     *m.lock()? += 1;
    ///     Ok(())
    /// }
    /// let m = shmprim::Mutex::anonymous(41u64)?;
    /// add_one(&m).unwrap();
    /// assert_eq!(*m.lock().unwrap(), 42);
    /// # Ok::<(), shmprim::Error>(())
    /// ```
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.lock_until(Deadline::never())
    }

    /// Locks if no one holds it; `Failed(Error::Timeout)` if someone does.
    #[inline]
    pub fn try_lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.lock_until(Deadline::now())
    }

    /// Locks, waiting at most `timeout`; `Failed(Error::Timeout)` after that.
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<MutexGuard<'_, T>> {
        try_first(timeout, |d| self.lock_until(d), lock_timed_out)
    }

    /// Locks, waiting until `deadline`.
    pub fn lock_until(&self, deadline: Deadline) -> LockResult<MutexGuard<'_, T>> {
        match self.raw().lock(deadline) {
            Ok(status) => self.guard(status),
            Err(e) => Err(LockError::Failed(e.named(self.seg.object_name()))),
        }
    }

    /// Wraps a lock this thread now holds into a guard.
    pub(crate) fn guard(&self, status: LockStatus) -> LockResult<MutexGuard<'_, T>> {
        let guard = MutexGuard {
            mutex: self,
            _not_send: PhantomData,
        };
        match status {
            LockStatus::Acquired => Ok(guard),
            LockStatus::OwnerDied => Err(LockError::OwnerDied(guard)),
        }
    }
}

impl<T: Pod> Drop for Mutex<T> {
    #[inline]
    fn drop(&mut self) {
        if self.raw().held_by_current_process() {
            // A guard was leaked (`mem::forget`) and its thread still holds the
            // lock: the C library's robust list points into this mapping, so
            // it must stay mapped. Leak the segment rather than unmap it.
            return;
        }
        // SAFETY: `seg` is dropped exactly once, here, and never used again.
        unsafe { ManuallyDrop::drop(&mut self.seg) };
    }
}

impl<T: Pod> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mutex")
            .field("name", &self.seg.display_name())
            .field("raw", self.raw())
            .finish_non_exhaustive()
    }
}

impl<'a, T: Pod> MutexGuard<'a, T> {
    /// Declares the data consistent after an owner-died lock, so that the
    /// mutex stays usable once this guard is dropped. Does nothing on a guard
    /// from a normal lock.
    pub fn mark_consistent(&self) -> Result<()> {
        self.mutex
            .raw()
            .mark_consistent()
            .map_err(|e| e.named(self.mutex.seg.object_name()))
    }

    /// The mutex this guard holds.
    pub fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }

    /// Releases the lock without dropping the borrow of the mutex, for
    /// [`crate::Condvar`]: returns the mutex.
    pub(crate) fn unlock_into_mutex(self) -> &'a Mutex<T> {
        let m = self.mutex;
        std::mem::forget(self);
        // SAFETY: this guard held the lock (taken by this thread, the guard is
        // not Send) and is gone, so no reference to the value remains.
        unsafe { m.raw().unlock() };
        m
    }
}

impl<T: Pod> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the value is initialised, aligned and in bounds (checked on
        // open); this thread holds the lock, so no cooperating process writes
        // it; `T: Pod` makes any bytes a hostile writer leaves a valid `T`.
        unsafe { &*self.mutex.value_ptr() }
    }
}

impl<T: Pod> std::ops::DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference made
        // through the guard.
        unsafe { &mut *self.mutex.value_ptr() }
    }
}

impl<T: Pod> LockGuard for MutexGuard<'_, T> {
    fn lock_name(&self) -> &str {
        self.mutex.segment().display_name()
    }
}

impl<T: Pod> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard exists only while this thread holds the lock, and
        // the references it handed out end with it.
        unsafe { self.mutex.raw().unlock() };
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
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
        assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
        // SAFETY: this thread holds it.
        unsafe { m.unlock() };
    }

    /// A thread that exits holding the lock makes the kernel mark it owner-died.
    #[test]
    fn raw_mutex_reports_owner_died_until_a_locker_marks_it_consistent() {
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
                // Undecided: every kind of lock is told, until one decides.
                assert_eq!(m.lock(Deadline::never()).unwrap(), LockStatus::OwnerDied);
                // SAFETY: this thread holds it.
                unsafe { m.unlock() };
                assert_eq!(m.try_lock().unwrap(), Some(LockStatus::OwnerDied));
                // SAFETY: this thread holds it.
                unsafe { m.unlock() };
                let timed = m.lock(Deadline::after(Duration::from_millis(50)));
                assert_eq!(timed.unwrap(), LockStatus::OwnerDied);
                m.mark_consistent().unwrap();
                // SAFETY: this thread holds it.
                unsafe { m.unlock() };
                assert_eq!(m.lock(Deadline::now()).unwrap(), LockStatus::Acquired);
                // SAFETY: this thread holds it.
                unsafe { m.unlock() };
                assert!(!m.held_by_current_process());
            }
        }
    }
}
