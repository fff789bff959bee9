//! The one place where cells use the robust mutex ([`RawMutex`]): its size,
//! in-place initialisation, and an RAII hold that unlocks on drop.

use crate::error::{Error, Result};
use crate::mutex::{LockStatus, MutexOptions, RawMutex};
use crate::wait::Deadline;

/// Bytes the mutex takes in the data area.
pub(crate) const SIZE: usize = RawMutex::SIZE;

#[cfg(not(shmprim_loom))]
const _: () = assert!(RawMutex::ALIGN <= 64, "the mutex sits at a 64-byte offset");

/// Writes a fresh, unlocked mutex at `ptr`.
///
/// # Safety
/// `ptr` is valid for writes of [`SIZE`] bytes, 64-aligned, and not yet shared.
pub(crate) unsafe fn init(ptr: *mut u8) -> Result<()> {
    // SAFETY: forwarded from the caller; 64-byte alignment covers RawMutex::ALIGN.
    unsafe { RawMutex::init(ptr.cast::<RawMutex>(), &MutexOptions::default()) }
}

/// A cell's mutex, at a fixed place in its mapping.
#[derive(Clone, Copy)]
pub(crate) struct CellLock<'a> {
    raw: &'a RawMutex,
}

impl<'a> CellLock<'a> {
    /// The mutex at `ptr`.
    ///
    /// # Safety
    /// `ptr` holds a mutex written by [`init`] in a mapping that outlives `'a`.
    pub(crate) unsafe fn at(ptr: *mut u8) -> CellLock<'a> {
        // SAFETY: forwarded from the caller; a RawMutex is only used through
        // `&self` methods (pthread calls on shared memory).
        let raw = unsafe { &*ptr.cast::<RawMutex>() };
        CellLock { raw }
    }

    /// Locks until `deadline`; errors carry the segment `name`.
    pub(crate) fn lock(self, deadline: Deadline, name: &crate::ObjectName) -> Result<Held<'a>> {
        match self.raw.lock(deadline) {
            Ok(status) => Ok(Held::new(self, status)),
            Err(e) => Err(e.named(name)),
        }
    }

    /// Whether a thread of this process holds it (a leaked guard): the mapping
    /// must then stay mapped, since the C library follows its robust list.
    pub(crate) fn held_by_current_process(self) -> bool {
        self.raw.held_by_current_process()
    }
}

/// The mutex, held; unlocked on drop.
///
/// Wrapped into the guards' `LockResult`
/// ([`LockError::OwnerDied`](crate::LockError::OwnerDied) when the status says
/// so), as [`Mutex`](crate::Mutex) does.
pub(crate) struct Held<'a> {
    lock: CellLock<'a>,
    status: LockStatus,
    /// Not `Send`: a pthread mutex must be unlocked by the thread that locked it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl<'a> Held<'a> {
    fn new(lock: CellLock<'a>, status: LockStatus) -> Held<'a> {
        Held {
            lock,
            status,
            _not_send: std::marker::PhantomData,
        }
    }

    /// How it was acquired.
    pub(crate) fn status(&self) -> LockStatus {
        self.status
    }

    /// Declares the data consistent after an owner died, so the lock stays
    /// usable after this hold (does nothing after a normal lock).
    pub(crate) fn mark_consistent(&self) -> Result<()> {
        self.lock.raw.mark_consistent()
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: a `Held` exists only while this thread holds the lock, and it
        // is dropped once.
        unsafe { self.lock.raw.unlock() };
    }
}

/// The error of `lock()` on a cell created without one.
pub(crate) fn no_lock(name: &str) -> Error {
    Error::invalid_argument(format!(
        "cell {name:?} was created without a lock (lock=False)"
    ))
}
