//! The state both raw mutexes share: shmprim's own lock ([`FutexLock`]), the
//! glibc robust mutex that replaces it when priority inheritance is asked
//! for, and shmprim's owner-died flag.

use std::sync::atomic::{AtomicU32, Ordering};

use super::futex_lock::{FutexLock, KIND_ERRORCHECK, KIND_PRIORITY_INHERITANCE, KIND_RECURSIVE};
use super::{LockStatus, MutexOptions, init_error, lock_error, unlock_error};
use crate::error::{Error, Result};
use crate::sys::pthread::{LockFailed, Locked, MutexType, PthreadMutex};
use crate::wait::{Deadline, SPIN_ITERATIONS};

/// A raw mutex's bytes. `repr(C)`: the C API's size constants and the
/// inspector's offsets depend on the order.
#[repr(C)]
pub(crate) struct LockState {
    /// The lock when created with priority inheritance; zeroes otherwise.
    pthread: PthreadMutex,
    /// Non-zero from a lock that found its holder dead until a holder marks
    /// the data consistent (see `settle`).
    suspect: AtomicU32,
    /// The lock, and the type word that says which of the two is used.
    futex: FutexLock,
}

/// Byte offset of the owner-died flag in a [`LockState`].
pub(crate) const SUSPECT_OFFSET: usize = std::mem::offset_of!(LockState, suspect);
/// Byte offset of the [`FutexLock`] in a [`LockState`].
pub(crate) const FUTEX_OFFSET: usize = std::mem::offset_of!(LockState, futex);

/// Which lock a state uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Imp {
    Futex,
    Pthread,
}

impl LockState {
    /// Writes a free lock at `ptr`: recursive or error-checking, with or
    /// without priority inheritance.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of a `LockState`, aligned, and unused.
    pub(crate) unsafe fn init(
        ptr: *mut LockState,
        recursive: bool,
        opts: &MutexOptions,
    ) -> Result<()> {
        let mut kind = if recursive {
            KIND_RECURSIVE
        } else {
            KIND_ERRORCHECK
        };
        // SAFETY: forwarded from the caller; the fields are written in place.
        unsafe {
            std::ptr::addr_of_mut!((*ptr).pthread).write_bytes(0, 1);
            std::ptr::addr_of_mut!((*ptr).suspect).write(AtomicU32::new(0));
        }
        if opts.priority_inheritance {
            let ty = if recursive {
                MutexType::Recursive
            } else {
                MutexType::ErrorCheck
            };
            // SAFETY: as above.
            unsafe { PthreadMutex::init(std::ptr::addr_of_mut!((*ptr).pthread), ty, true) }
                .map_err(init_error)?;
            kind |= KIND_PRIORITY_INHERITANCE;
        }
        // SAFETY: as above.
        unsafe { FutexLock::init(std::ptr::addr_of_mut!((*ptr).futex), kind) };
        Ok(())
    }

    /// Which lock the type word says, if it is one this state can have.
    #[inline(always)]
    fn imp(&self, recursive: bool) -> Result<Imp> {
        let want = if recursive {
            KIND_RECURSIVE
        } else {
            KIND_ERRORCHECK
        };
        let kind = self.futex.kind();
        if kind == want {
            Ok(Imp::Futex)
        } else if kind == want | KIND_PRIORITY_INHERITANCE {
            Ok(Imp::Pthread)
        } else {
            Err(bad_kind(kind))
        }
    }

    /// Locks, waiting until `deadline` (see `RawMutex::lock`).
    #[inline]
    pub(crate) fn lock(&self, recursive: bool, deadline: Deadline) -> Result<LockStatus> {
        match self.imp(recursive)? {
            Imp::Futex => self
                .futex
                .lock(recursive, deadline)
                .map(|l| self.settle(l))
                .map_err(lock_error),
            Imp::Pthread => self.lock_pthread(deadline),
        }
    }

    /// Locks if free: `Ok(None)` when another thread holds it.
    #[inline]
    pub(crate) fn try_lock(&self, recursive: bool) -> Result<Option<LockStatus>> {
        let r = match self.imp(recursive)? {
            Imp::Futex => self.futex.try_lock(recursive),
            Imp::Pthread => self.pthread.try_lock(),
        };
        match r {
            Ok(l) => Ok(Some(self.settle(l))),
            Err(LockFailed::Busy) => Ok(None),
            Err(f) => Err(lock_error(f)),
        }
    }

    /// Unlocks one level: [`Error::NotOwner`] (and nothing changed) when the
    /// caller does not hold it.
    #[inline]
    pub(crate) fn unlock(&self, recursive: bool) -> Result<()> {
        let r = match self.imp(recursive)? {
            Imp::Futex => self.futex.unlock(recursive),
            Imp::Pthread => self.pthread.unlock_checked(),
        };
        r.map_err(unlock_error)
    }

    /// What a lock reports: an owner-died lock is remembered in `suspect`
    /// (and a pthread one made consistent for pthread at once, so that no
    /// unlock can make it unrecoverable); a normal lock reports owner-died
    /// while `suspect` stays set, that is until a holder calls
    /// `mark_consistent`. So a guard dropped without a decision leaves the
    /// decision to the next locker. A reentrant lock taken again by its holder
    /// (more than one level) reports what the outer lock did.
    #[inline]
    fn settle(&self, locked: Locked) -> LockStatus {
        match locked {
            Locked::OwnerDied => {
                // Relaxed: the lock itself orders this store for the next holder.
                self.suspect.store(1, Ordering::Relaxed);
                if self.futex.kind() & KIND_PRIORITY_INHERITANCE != 0 {
                    // EINVAL (not inconsistent) cannot happen right after
                    // EOWNERDEAD; any other refusal leaves pthread's own
                    // owner-died state.
                    let _ = self.pthread.consistent();
                }
                LockStatus::OwnerDied
            }
            Locked::Acquired => {
                // Relaxed: read under the lock, which orders it.
                if self.suspect.load(Ordering::Relaxed) != 0 && self.depth() <= 1 {
                    LockStatus::OwnerDied
                } else {
                    LockStatus::Acquired
                }
            }
        }
    }

    /// Locks the pthread mutex: one `trylock`, a short spin reading its
    /// futex word, then a blocking or timed `pthread` lock.
    fn lock_pthread(&self, deadline: Deadline) -> Result<LockStatus> {
        let m = &self.pthread;
        match m.try_lock() {
            Ok(l) => return Ok(self.settle(l)),
            Err(LockFailed::Busy) => {}
            Err(f) => return Err(lock_error(f)),
        }
        // By the clock: a mutex lock is not interruptible, and a condvar's
        // relock must not give up.
        if deadline.passed_by_clock() {
            return Err(Error::Timeout {
                name: crate::ObjectName::unknown(),
            });
        }
        for _ in 0..SPIN_ITERATIONS {
            crate::sync::spin_hint();
            if m.owner_tid() == 0 {
                match m.try_lock() {
                    Ok(l) => return Ok(self.settle(l)),
                    Err(LockFailed::Busy) => {}
                    Err(f) => return Err(lock_error(f)),
                }
            }
        }
        let r = if deadline.is_never() {
            m.lock()
        } else {
            let left = deadline.remaining().unwrap_or_default();
            let ns = crate::sys::time::monotonic_ns()
                .saturating_add(u64::try_from(left.as_nanos()).unwrap_or(u64::MAX));
            m.lock_until(ns)
        };
        r.map(|l| self.settle(l)).map_err(lock_error)
    }

    /// Clears the owner-died state (pthread's too, if it is still set); a
    /// lock in neither is left alone (`Ok`).
    pub(crate) fn consistent(&self) -> Result<()> {
        // Relaxed: the caller holds the lock, whose release orders this.
        self.suspect.store(0, Ordering::Relaxed);
        if self.futex.kind() & KIND_PRIORITY_INHERITANCE == 0 {
            return Ok(());
        }
        match self.pthread.consistent() {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            Err(source) => Err(Error::Io {
                name: String::new(),
                op: "pthread_mutex_consistent",
                source,
            }),
        }
    }

    /// Whether the lock is glibc's (created with priority inheritance).
    fn is_pthread(&self) -> bool {
        self.futex.kind() & KIND_PRIORITY_INHERITANCE != 0
    }

    /// The holder's thread id, 0 when free (a snapshot).
    pub(crate) fn owner_tid(&self) -> u32 {
        if self.is_pthread() {
            self.pthread.owner_tid()
        } else {
            self.futex.owner_tid()
        }
    }

    /// Levels held: 0 when free (a snapshot, exact for the holder).
    pub(crate) fn depth(&self) -> u32 {
        if self.is_pthread() {
            if self.pthread.owner_tid() == 0 {
                0
            } else {
                self.pthread.depth().unwrap_or(1)
            }
        } else {
            self.futex.levels()
        }
    }

    /// Whether the calling thread holds the lock.
    pub(crate) fn held_by_current_thread(&self) -> bool {
        if self.is_pthread() {
            self.pthread.held_by_current_thread()
        } else {
            self.futex.held_by_current_thread()
        }
    }

    /// Whether a thread of the calling process holds the lock. A held glibc
    /// mutex is linked into its thread's robust list, which the C library
    /// follows later, so handles keep its memory mapped while this holds.
    pub(crate) fn held_by_current_process(&self) -> bool {
        let tid = self.owner_tid();
        if tid == 0 {
            return false;
        }
        // SAFETY: tgkill with signal 0 only checks that `tid` is a thread of
        // our own thread group; it sends nothing.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                tid as libc::pid_t,
                0 as libc::c_int,
            )
        };
        rc == 0
    }
}

/// The answer to a type word that no lock made here has.
#[cold]
fn bad_kind(kind: u32) -> Error {
    Error::corrupted(
        "",
        format!("the lock's type word {kind:#010x} is not one shmprim writes"),
    )
}
