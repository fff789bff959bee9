//! A robust, process-shared *reentrant* mutex: Python's
//! `multiprocessing.RLock`, holding a plain-data value.
//!
//! The thread that holds it may lock it again; each lock needs its own
//! release, and releasing a lock one does not hold is an error
//! ([`Error::NotOwner`](crate::Error::NotOwner)), as in Python. [`RawReentrantMutex`] is the C-style
//! state (explicit `lock`/`unlock`); [`ReentrantMutex<T>`] the named handle
//! with RAII guards.
//!
//! # When a participant dies
//!
//! As for [`Mutex`](crate::Mutex): if the owner dies holding it (at any
//! recursion depth), the next locker gets it with an owner-died indication
//! (at depth 1) and either marks it consistent or, releasing it undecided,
//! passes the owner-died indication on to the next locker.
//!
//! # States
//!
//! The lock word holds the owner's thread id as for
//! [`RawMutex`](crate::RawMutex), and a second word the levels taken beyond
//! the first, written only by the owner (with priority inheritance: a glibc
//! recursive robust `pthread_mutex_t`).
//!
//! | state                 | lock by owner  | lock by other     | unlock by owner      | unlock by other |
//! |-----------------------|----------------|-------------------|----------------------|-----------------|
//! | free                  | -              | held, depth 1     | `NotOwner`           | `NotOwner`      |
//! | held, depth d         | depth d+1      | waits             | depth d-1 (0: free)  | `NotOwner`      |
//! | owner died, undecided | -              | `OwnerDied`, d=1  | -                    | -               |
//!
//! # Why the guard gives no `&T`
//!
//! Two guards of the same thread can be alive at once, so neither may hand out
//! `&mut T`; and a `&T` would forbid any writing. The guard works like a
//! `Cell`: [`get`](ReentrantMutexGuard::get) copies the value out,
//! [`set`](ReentrantMutexGuard::set) copies one in, and no reference into the
//! shared value ever escapes.
//!
//! # Example
//!
//! ```
//! use shmprim::{Error, ReentrantMutex};
//! # let name = format!("doc-rmutex-mod-{}", std::process::id());
//! let m = ReentrantMutex::create(&name, 0u32)?;
//! fn bump(m: &ReentrantMutex<u32>) {
//!     let g = m.lock().unwrap(); // nested inside the caller's lock: fine
//!     g.set(g.get() + 1);
//! }
//! let g = m.lock().unwrap();
//! bump(&m);
//! bump(&m);
//! assert_eq!(g.get(), 2);
//! drop(g);
//! // Releasing what one does not hold is an error, as in Python:
//! let raw = shmprim::RawReentrantMutex::new(&Default::default())?;
//! assert!(matches!(raw.unlock(), Err(Error::NotOwner { .. })));
//! ReentrantMutex::<u32>::unlink(&name)?;
//! # Ok::<(), shmprim::Error>(())
//! ```

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::Result;
use crate::mutex::{
    LockError, LockResult, LockState, LockStatus, MutexOptions, check_lock_segment, lock_builder,
    lock_timed_out, value_offset, write_value,
};
use crate::segment::{Disposition, Kind, Options, Segment};
use crate::wait::{Deadline, try_first};

/// A robust, process-shared, reentrant mutex with no payload, placed in shared
/// memory: shmprim's own lock word with a recursion depth (or, with priority
/// inheritance, a glibc `pthread_mutex_t` with `PTHREAD_MUTEX_RECURSIVE`).
/// Errors carry an empty segment name (see [`crate::mutex`]).
///
/// ```
/// use shmprim::{Deadline, Error, MutexOptions, RawReentrantMutex};
/// let m = RawReentrantMutex::new(&MutexOptions::default())?;
/// m.lock(Deadline::never())?;
/// m.lock(Deadline::never())?; // again, same thread
/// m.unlock()?;
/// m.unlock()?;
/// assert!(matches!(m.unlock(), Err(Error::NotOwner { .. })));
/// # Ok::<(), shmprim::Error>(())
/// ```
#[repr(C)]
pub struct RawReentrantMutex {
    state: LockState,
}

// SAFETY: the lock is made to be shared between threads and processes (see
// `RawMutex`).
unsafe impl Sync for RawReentrantMutex {}
// SAFETY: plain bytes; ownership is recorded in them, not in the moving thread.
unsafe impl Send for RawReentrantMutex {}

impl RawReentrantMutex {
    /// Size in bytes of the state.
    pub const SIZE: usize = std::mem::size_of::<RawReentrantMutex>();
    /// Alignment of the state.
    pub const ALIGN: usize = std::mem::align_of::<RawReentrantMutex>();

    /// Writes a fresh, unlocked mutex at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of [`Self::SIZE`] bytes, aligned to
    /// [`Self::ALIGN`], and not in use by any thread or process.
    pub unsafe fn init(ptr: *mut RawReentrantMutex, opts: &MutexOptions) -> Result<()> {
        // SAFETY: forwarded from the caller; the struct is `repr(C)` around
        // its state.
        unsafe { LockState::init(ptr.cast::<LockState>(), true, opts) }
    }

    /// A mutex on the heap (for tests and single-process use).
    pub fn new(opts: &MutexOptions) -> Result<Box<RawReentrantMutex>> {
        let mut mem = Box::<RawReentrantMutex>::new_uninit();
        // SAFETY: fresh, aligned, unused heap memory of the right size.
        unsafe { RawReentrantMutex::init(mem.as_mut_ptr(), opts)? };
        // SAFETY: initialised just above.
        Ok(unsafe { mem.assume_init() })
    }

    /// Locks (again, if this thread holds it), waiting until `deadline`:
    /// `Ok(Acquired)`, `Ok(OwnerDied)`, `Err(Timeout)`, `Err(Unrecoverable)`.
    pub fn lock(&self, deadline: Deadline) -> Result<LockStatus> {
        self.state.lock(true, deadline)
    }

    /// Locks if free or held by this thread; `Ok(None)` when another holds it.
    pub fn try_lock(&self) -> Result<Option<LockStatus>> {
        self.state.try_lock(true)
    }

    /// Releases one level of this thread's lock; [`Error::NotOwner`](crate::Error::NotOwner) if this
    /// thread does not hold it (never held, held by another thread or process,
    /// or already fully released).
    pub fn unlock(&self) -> Result<()> {
        self.state.unlock(true)
    }

    /// Declares the data consistent after [`LockStatus::OwnerDied`]; does
    /// nothing otherwise.
    pub fn mark_consistent(&self) -> Result<()> {
        self.state.consistent()
    }

    /// Whether a thread of the calling process holds the lock.
    pub fn held_by_current_process(&self) -> bool {
        self.state.held_by_current_process()
    }

    /// Whether the calling thread holds the lock (at any depth).
    pub fn held_by_current_thread(&self) -> bool {
        self.state.held_by_current_thread()
    }

    /// Whether some thread of some process holds the lock now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.state.owner_tid() != 0
    }

    /// The thread id of the holder, `None` when free (a snapshot; what
    /// Python's `RLock` shows as its owner).
    pub fn owner_tid(&self) -> Option<u32> {
        Some(self.state.owner_tid()).filter(|&tid| tid != 0)
    }

    /// How many times the holder has locked it without releasing (Python's
    /// `RLock` count): 0 when free. A snapshot, exact for the holding thread.
    pub fn depth(&self) -> u32 {
        self.state.depth()
    }
}

impl std::fmt::Debug for RawReentrantMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawReentrantMutex")
            .field("owner_tid", &self.state.owner_tid())
            .finish()
    }
}

/// A robust reentrant mutex in a named (or anonymous) shared-memory segment,
/// guarding a plain-data value: Python's `multiprocessing.RLock`.
///
/// ```
/// use shmprim::ReentrantMutex;
/// # let name = format!("doc-rmutex-{}", std::process::id());
/// let m = ReentrantMutex::create(&name, 10i32)?;
/// let outer = m.lock().unwrap();
/// let inner = m.lock().unwrap(); // same thread: no deadlock
/// inner.set(inner.get() + 1);
/// drop(inner);
/// assert_eq!(outer.get(), 11);
/// drop(outer);
/// ReentrantMutex::<i32>::unlink(&name)?;
/// # Ok::<(), shmprim::Error>(())
/// ```
pub struct ReentrantMutex<T: Pod> {
    seg: ManuallyDrop<Segment>,
    _value: PhantomData<T>,
}

/// Holds one level of a [`ReentrantMutex`]; copies the value in and out (see
/// the module docs); releases that level when dropped. Not `Send`.
pub struct ReentrantMutexGuard<'a, T: Pod> {
    mutex: &'a ReentrantMutex<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> crate::mutex::LockGuard for ReentrantMutexGuard<'_, T> {
    fn lock_name(&self) -> &str {
        self.mutex.segment().display_name()
    }
}

impl<T: Pod> ReentrantMutex<T> {
    /// Whether some thread of some process holds the lock now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// The thread id of the holder, `None` when free (a snapshot).
    pub fn owner_tid(&self) -> Option<u32> {
        self.raw().owner_tid()
    }

    /// The holder's recursion depth, 0 when free (see
    /// [`RawReentrantMutex::depth`]).
    pub fn depth(&self) -> u32 {
        self.raw().depth()
    }

    /// Creates the named mutex holding `value`; `AlreadyExists` if taken.
    pub fn create(name: &str, value: T) -> Result<ReentrantMutex<T>> {
        Self::create_with_options(name, value, &MutexOptions::default(), &Options::default())
    }

    /// [`create`](Self::create) with mutex and handle options.
    pub fn create_with_options(
        name: &str,
        value: T,
        mopts: &MutexOptions,
        opts: &Options,
    ) -> Result<ReentrantMutex<T>> {
        let seg = lock_builder::<T>(Kind::ReentrantMutex, RawReentrantMutex::SIZE, mopts, opts)?
            .create_with(name, |data, _| Self::init_data(data, value, mopts))?;
        Ok(Self::from_segment(seg))
    }

    /// Opens an existing reentrant mutex; `Incompatible` for another kind or `T`.
    pub fn open(name: &str) -> Result<ReentrantMutex<T>> {
        Self::open_with_options(name, &Options::default())
    }

    /// [`open`](Self::open) with handle options.
    pub fn open_with_options(name: &str, opts: &Options) -> Result<ReentrantMutex<T>> {
        let seg = lock_builder::<T>(
            Kind::ReentrantMutex,
            RawReentrantMutex::SIZE,
            &MutexOptions::default(),
            opts,
        )?
        .open(name)?;
        check_lock_segment::<T>(&seg, RawReentrantMutex::SIZE)?;
        Ok(Self::from_segment(seg))
    }

    /// Opens the mutex, or creates it holding `value`.
    pub fn open_or_create(name: &str, value: T) -> Result<(ReentrantMutex<T>, Disposition)> {
        let mopts = MutexOptions::default();
        let (seg, how) = lock_builder::<T>(
            Kind::ReentrantMutex,
            RawReentrantMutex::SIZE,
            &mopts,
            &Options::default(),
        )?
        .open_or_create_with(name, |data, _| Self::init_data(data, value, &mopts))?;
        if how == Disposition::Opened {
            check_lock_segment::<T>(&seg, RawReentrantMutex::SIZE)?;
        }
        Ok((Self::from_segment(seg), how))
    }

    /// An anonymous reentrant mutex holding `value`, shared with forked children.
    pub fn anonymous(value: T) -> Result<ReentrantMutex<T>> {
        let mopts = MutexOptions::default();
        let seg = lock_builder::<T>(
            Kind::ReentrantMutex,
            RawReentrantMutex::SIZE,
            &mopts,
            &Options::default(),
        )?
        .anonymous_with(|data, _| Self::init_data(data, value, &mopts))?;
        Ok(Self::from_segment(seg))
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::ReentrantMutex)
    }

    /// The segment holding the mutex.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    fn init_data(data: NonNull<u8>, value: T, mopts: &MutexOptions) -> Result<()> {
        // SAFETY: the fresh data area is page aligned and large enough (builder
        // data size); nobody sees it before it is published.
        unsafe { RawReentrantMutex::init(data.as_ptr().cast(), mopts)? };
        // SAFETY: the value's offset is within the data area (builder size).
        unsafe { write_value(data, RawReentrantMutex::SIZE, value) };
        Ok(())
    }

    fn from_segment(seg: Segment) -> ReentrantMutex<T> {
        ReentrantMutex {
            seg: ManuallyDrop::new(seg),
            _value: PhantomData,
        }
    }

    fn raw(&self) -> &RawReentrantMutex {
        // SAFETY: the data area starts with an initialised RawReentrantMutex
        // (size checked on open), mapped while `self` lives.
        unsafe { &*self.seg.as_ptr().cast::<RawReentrantMutex>() }
    }

    fn value_ptr(&self) -> *mut T {
        self.seg
            .as_ptr()
            .wrapping_add(value_offset::<T>(RawReentrantMutex::SIZE))
            .cast::<T>()
    }

    /// Locks (one more level if this thread holds it), waiting as long as it
    /// takes; owner death and unrecoverability as for [`crate::Mutex::lock`].
    pub fn lock(&self) -> LockResult<ReentrantMutexGuard<'_, T>> {
        self.lock_until(Deadline::never())
    }

    /// Locks if free or held by this thread; `Failed(Error::Timeout)` otherwise.
    pub fn try_lock(&self) -> LockResult<ReentrantMutexGuard<'_, T>> {
        self.lock_until(Deadline::now())
    }

    /// Locks, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<ReentrantMutexGuard<'_, T>> {
        try_first(timeout, |d| self.lock_until(d), lock_timed_out)
    }

    /// Locks, waiting until `deadline`.
    pub fn lock_until(&self, deadline: Deadline) -> LockResult<ReentrantMutexGuard<'_, T>> {
        let status = self
            .raw()
            .lock(deadline)
            .map_err(|e| LockError::Failed(e.named(self.seg.object_name())))?;
        let guard = ReentrantMutexGuard {
            mutex: self,
            _not_send: PhantomData,
        };
        match status {
            LockStatus::Acquired => Ok(guard),
            LockStatus::OwnerDied => Err(LockError::OwnerDied(guard)),
        }
    }
}

impl<T: Pod> Drop for ReentrantMutex<T> {
    fn drop(&mut self) {
        if self.raw().held_by_current_process() {
            // A leaked guard's lock is on its thread's robust list: keep the
            // memory mapped (see `Mutex`'s drop).
            return;
        }
        // SAFETY: dropped exactly once, here.
        unsafe { ManuallyDrop::drop(&mut self.seg) };
    }
}

impl<T: Pod> std::fmt::Debug for ReentrantMutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReentrantMutex")
            .field("name", &self.seg.display_name())
            .field("raw", self.raw())
            .finish_non_exhaustive()
    }
}

impl<T: Pod> ReentrantMutexGuard<'_, T> {
    /// A copy of the guarded value.
    pub fn get(&self) -> T {
        // The guard hands out no reference into the value, so this read races
        // with no cooperating writer while this thread holds the lock.
        // SAFETY: in bounds and aligned (checked on open); `T: Pod` makes any
        // bytes valid; the lock is held (see above).
        unsafe { self.mutex.value_ptr().read() }
    }

    /// Replaces the guarded value.
    pub fn set(&self, value: T) {
        // SAFETY: as in `get`: no reference into the value exists to be
        // invalidated, and the guard is not Send, so only this thread writes.
        unsafe { self.mutex.value_ptr().write(value) };
    }

    /// Replaces the guarded value with `f` of it; returns the new value.
    pub fn update(&self, f: impl FnOnce(T) -> T) -> T {
        let v = f(self.get());
        self.set(v);
        v
    }

    /// Declares the data consistent after an owner-died lock; does nothing
    /// otherwise.
    pub fn mark_consistent(&self) -> Result<()> {
        self.mutex
            .raw()
            .mark_consistent()
            .map_err(|e| e.named(self.mutex.seg.object_name()))
    }
}

impl<T: Pod> Drop for ReentrantMutexGuard<'_, T> {
    fn drop(&mut self) {
        // As in `RawMutex::unlock`: a refusal (the words scribbled while the
        // lock was held) leaves the lock as it was, and is not asserted on.
        let _ = self.mutex.raw().unlock();
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for ReentrantMutexGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReentrantMutexGuard")
            .field(&self.get())
            .finish()
    }
}
