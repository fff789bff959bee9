//! Process-shared, robust pthread mutexes (`PTHREAD_PROCESS_SHARED` +
//! `PTHREAD_MUTEX_ROBUST`), the lock behind [`crate::mutex::RawMutex`] and
//! [`crate::reentrant_mutex::RawReentrantMutex`] when priority inheritance
//! is asked for (otherwise they are shmprim's own lock).
//!
//! Robustness comes from the kernel's robust futex list: glibc links every robust
//! mutex a thread holds into a per-thread list registered with
//! `set_robust_list(2)`, and when the thread dies (however it dies) the kernel
//! walks that list, sets `FUTEX_OWNER_DIED` in each held mutex's futex word and
//! wakes one waiter. The next locker gets `EOWNERDEAD`; it may call
//! `pthread_mutex_consistent`, otherwise unlocking makes the mutex
//! `ENOTRECOVERABLE` for good.
//!
//! # Trust
//!
//! glibc trusts the `pthread_mutex_t` bytes it is given. A process with write
//! access to the segment can therefore break the lock itself (make it look held
//! forever, or free), and because the robust list is linked
//! through the mutexes' own `__list` fields, overwriting those while a thread
//! holds the lock can make glibc follow a forged pointer on unlock (memory
//! corruption inside the C library, which no Rust-side check can prevent).
//! shmprim's Rust code itself only ever touches these bytes through aligned
//! atomic accesses to the futex word ([`PthreadMutex::owner_tid`] and the
//! trylock workaround in [`PthreadMutex::try_lock`]), so whatever they hold, it
//! hits no undefined behaviour of its own. The type bits glibc reads
//! (`__kind`) are checked against the kinds a shmprim mutex can have before
//! every lock, and before an unlock by a thread that may not hold the mutex,
//! since a forged type can crash glibc (see
//! `PthreadMutex::kind_is_known`); a flip between two legitimate kinds (with
//! and without priority inheritance, say) is not caught. Keep hostile processes out with the
//! segment's file mode (default `0600`).
//!
//! The `UnsafeCell` and `AtomicU32` here are std's even under loom: this memory
//! belongs to the C library and the kernel, and is never model-checked.

use std::cell::UnsafeCell;
use std::io;
use std::mem::MaybeUninit;

/// A `pthread_mutex_t` placed in (shared) memory. Only ever handed to libc by
/// pointer; Rust never forms a reference to the inner value.
#[repr(transparent)]
pub(crate) struct PthreadMutex(UnsafeCell<libc::pthread_mutex_t>);

/// How a mutex behaves when its owner locks it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MutexType {
    /// Relocking by the owner fails with `EDEADLK` (robust mutexes record their
    /// owner anyway, so this costs nothing over a normal robust mutex).
    ErrorCheck,
    /// The owner may lock again; each lock needs its unlock.
    Recursive,
}

/// The lock was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// Normally.
    Acquired,
    /// After its previous owner died holding it (`EOWNERDEAD`): the data may be
    /// inconsistent until `consistent` is called.
    OwnerDied,
}

/// The lock was not taken.
#[derive(Debug)]
pub(crate) enum LockFailed {
    /// Held by another thread (trylock: `EBUSY`).
    Busy,
    /// The deadline passed (`ETIMEDOUT`).
    TimedOut,
    /// A previous owner died and nobody marked it consistent (`ENOTRECOVERABLE`).
    NotRecoverable,
    /// The caller already holds this non-recursive mutex (`EDEADLK`).
    WouldDeadlock,
    /// A recursive mutex's count would overflow (`EAGAIN`).
    RecursionLimit,
    /// Any other error (`EINVAL` on garbage bytes, for instance).
    Os(io::Error),
}

/// Why an unlock failed.
#[derive(Debug)]
pub(crate) enum UnlockFailed {
    /// The caller does not hold the mutex (`EPERM`).
    NotOwner,
    /// Any other error.
    Os(io::Error),
}

/// Mask of the owner's thread id in a robust futex word (`FUTEX_TID_MASK`).
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Set in a robust futex word when a thread sleeps on it (`FUTEX_WAITERS`).
const FUTEX_WAITERS: u32 = 0x8000_0000;

/// Byte offset of the futex word inside `pthread_mutex_t`: glibc's
/// `__data.__lock` is its first `int`; musl's `_m_lock` is its second.
#[cfg(not(target_env = "musl"))]
const FUTEX_WORD_OFFSET: usize = 0;
#[cfg(target_env = "musl")]
const FUTEX_WORD_OFFSET: usize = 4;

/// Set in a robust futex word by the kernel when the owner died (`FUTEX_OWNER_DIED`).
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
/// glibc's `__owner` while the locker of a dead owner's mutex has not yet marked
/// it consistent (`PTHREAD_MUTEX_INCONSISTENT`, `INT_MAX`).
const GLIBC_OWNER_INCONSISTENT: u32 = 0x7fff_ffff;
/// glibc's `__owner` once the mutex is unrecoverable
/// (`PTHREAD_MUTEX_NOTRECOVERABLE`, `INT_MAX - 1`).
const GLIBC_OWNER_NOT_RECOVERABLE: u32 = 0x7fff_fffe;

/// Byte offsets of glibc's `__lock`, `__count` and `__owner` in
/// `pthread_mutex_t`, for inspection (`None` when built for another C library,
/// whose layout inspection does not read).
#[cfg(not(target_env = "musl"))]
pub(crate) const INSPECTABLE_WORDS: Option<[usize; 3]> = Some([FUTEX_WORD_OFFSET, 4, 8]);
#[cfg(target_env = "musl")]
pub(crate) const INSPECTABLE_WORDS: Option<[usize; 3]> = None;

/// What a robust mutex's words say about its state (read by inspection with
/// plain loads, never through the mutex itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MutexWords {
    /// Thread id of the holder, 0 when free or when the holder died.
    pub tid: u32,
    /// The kernel recorded the holder's death and nobody has locked it since.
    pub owner_died: bool,
    /// A locker of a dead owner's mutex holds it and has not marked it consistent.
    pub inconsistent: bool,
    /// Nobody marked it consistent: every lock now fails.
    pub unrecoverable: bool,
    /// Some thread sleeps on it.
    pub waiters: bool,
    /// Recursion depth (`__count`; meaningful for a held recursive mutex).
    pub depth: u32,
}

/// Decodes the `__lock`, `__count` and `__owner` words of a glibc robust mutex.
pub(crate) fn decode_mutex_words(lock: u32, count: u32, owner: u32) -> MutexWords {
    MutexWords {
        tid: lock & FUTEX_TID_MASK,
        owner_died: lock & FUTEX_OWNER_DIED != 0,
        inconsistent: owner == GLIBC_OWNER_INCONSISTENT,
        unrecoverable: owner == GLIBC_OWNER_NOT_RECOVERABLE,
        waiters: lock & FUTEX_WAITERS != 0,
        depth: count,
    }
}

/// Byte offset of glibc's `__kind` (the mutex type and its flags: robust,
/// process-shared, priority inheritance, lock elision, ...) on 64-bit
/// targets; `None` where that layout is not known, and the check below is off.
#[cfg(all(not(target_env = "musl"), target_pointer_width = "64"))]
const KIND_OFFSET: Option<usize> = Some(16);
#[cfg(not(all(not(target_env = "musl"), target_pointer_width = "64")))]
const KIND_OFFSET: Option<usize> = None;

/// The `__kind` words a shmprim mutex can have: those glibc gives a mutex
/// initialised by [`PthreadMutex::init`], of either type, with and without
/// priority inheritance, read off mutexes initialised here once (a kind that
/// cannot be made here repeats one that can). `None` when the layout is not
/// known, or does not tell the two types apart at [`KIND_OFFSET`] (so the
/// offset would not be `__kind`).
static LEGIT_KINDS: std::sync::OnceLock<Option<[u32; 4]>> = std::sync::OnceLock::new();

/// The two kinds of the mutexes made without priority inheritance, cached
/// where the lock path can compare them with plain loads (0, which no robust
/// mutex's kind is, until [`LEGIT_KINDS`] is worked out).
///
/// Measured (`mutex-uncontended`, 13.4 ns for pthread alone): 13.7 ns per
/// lock+unlock with this cache and a `bool` check; 15.6 with `LEGIT_KINDS`
/// looked up on every lock instead; 16.2 with the cache but an
/// `io::Result` check folded into each call with `?`. Keep the shape.
static COMMON_KINDS: [std::sync::atomic::AtomicU32; 2] =
    [const { std::sync::atomic::AtomicU32::new(0) }; 2];

#[cold]
#[inline(never)]
fn find_legit_kinds() -> Option<[u32; 4]> {
    let offset = KIND_OFFSET?;
    let kind_of = |ty: MutexType, pi: bool| -> Option<u32> {
        let mut m = Box::new(MaybeUninit::<PthreadMutex>::zeroed());
        // SAFETY: `m` is fresh, aligned, writable storage nobody uses.
        unsafe { PthreadMutex::init(m.as_mut_ptr(), ty, pi) }.ok()?;
        // SAFETY: `offset + 4` is inside the initialised mutex.
        let kind = unsafe { m.as_ptr().cast::<u8>().add(offset).cast::<u32>().read() };
        // SAFETY: initialised above and never locked.
        unsafe { libc::pthread_mutex_destroy(m.as_mut_ptr().cast()) };
        Some(kind)
    };
    let errorcheck = kind_of(MutexType::ErrorCheck, false)?;
    let recursive = kind_of(MutexType::Recursive, false)?;
    if errorcheck == recursive {
        return None;
    }
    // Priority inheritance may be unsupported here, yet used by a mutex made
    // elsewhere: its kinds are then simply not accepted.
    Some([
        errorcheck,
        recursive,
        kind_of(MutexType::ErrorCheck, true).unwrap_or(errorcheck),
        kind_of(MutexType::Recursive, true).unwrap_or(recursive),
    ])
}

/// A tag for the C library whose `pthread_mutex_t` layout a segment was made with,
/// recorded in segment headers so that a glibc and a musl process never share one.
#[cfg(not(target_env = "musl"))]
pub(crate) const LIBC_TAG: u64 = 1;
#[cfg(target_env = "musl")]
pub(crate) const LIBC_TAG: u64 = 2;

/// Turns a pthread return code (0 or an errno value) into a `Result`; `_what`
/// names the call for readers of the code.
fn check(rc: libc::c_int, _what: &str) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

fn lock_result(rc: libc::c_int) -> Result<Locked, LockFailed> {
    match rc {
        0 => Ok(Locked::Acquired),
        libc::EOWNERDEAD => Ok(Locked::OwnerDied),
        libc::EBUSY => Err(LockFailed::Busy),
        libc::ETIMEDOUT => Err(LockFailed::TimedOut),
        libc::ENOTRECOVERABLE => Err(LockFailed::NotRecoverable),
        libc::EDEADLK => Err(LockFailed::WouldDeadlock),
        libc::EAGAIN => Err(LockFailed::RecursionLimit),
        e => Err(LockFailed::Os(io::Error::from_raw_os_error(e))),
    }
}

impl PthreadMutex {
    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.0.get()
    }

    /// Initialises a process-shared robust mutex of `kind` at `ptr`, with priority
    /// inheritance if `priority_inheritance`. Fails with `ENOTSUP` where the
    /// kernel or C library lacks priority-inheriting futexes.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of a `PthreadMutex`, suitably aligned, and
    /// no thread may be using a mutex there.
    pub(crate) unsafe fn init(
        ptr: *mut PthreadMutex,
        kind: MutexType,
        priority_inheritance: bool,
    ) -> io::Result<()> {
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        let a = attr.as_mut_ptr();
        // SAFETY: `a` is writable storage for a pthread_mutexattr_t.
        let rc = unsafe { libc::pthread_mutexattr_init(a) };
        check(rc, "pthread_mutexattr_init")?;
        let kind = match kind {
            MutexType::ErrorCheck => libc::PTHREAD_MUTEX_ERRORCHECK,
            MutexType::Recursive => libc::PTHREAD_MUTEX_RECURSIVE,
        };
        let result = (|| {
            // SAFETY: `a` was initialised by pthread_mutexattr_init.
            let rc = unsafe { libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED) };
            check(rc, "pthread_mutexattr_setpshared")?;
            // SAFETY: as above.
            let rc = unsafe { libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST) };
            check(rc, "pthread_mutexattr_setrobust")?;
            // SAFETY: as above.
            let rc = unsafe { libc::pthread_mutexattr_settype(a, kind) };
            check(rc, "pthread_mutexattr_settype")?;
            if priority_inheritance {
                // SAFETY: as above.
                let rc =
                    unsafe { libc::pthread_mutexattr_setprotocol(a, libc::PTHREAD_PRIO_INHERIT) };
                check(rc, "pthread_mutexattr_setprotocol")?;
            }
            // SAFETY: the caller guarantees `ptr` is valid, aligned and unused;
            // `UnsafeCell` is `repr(transparent)`, so it is a pthread_mutex_t.
            let rc = unsafe { libc::pthread_mutex_init(ptr.cast::<libc::pthread_mutex_t>(), a) };
            check(rc, "pthread_mutex_init")
        })();
        // SAFETY: `a` was initialised and is no longer used.
        unsafe { libc::pthread_mutexattr_destroy(a) };
        result
    }

    /// Whether the mutex's `__kind` is one a shmprim mutex can have. glibc
    /// trusts the type bits it reads: a scribbled `__kind` can send it down
    /// the lock-elision path, whose `xbegin` is an illegal instruction on a
    /// CPU without TSX (found by `tests/scribble.rs`), or down another type's
    /// path. So every lock checks it first (and so does an unlock by a thread
    /// that may not hold the mutex), and a mutex of an unknown kind is refused
    /// (`EINVAL`, reported as corruption) instead.
    #[inline]
    fn kind_is_known(&self) -> bool {
        let Some(offset) = KIND_OFFSET else {
            return true;
        };
        // SAFETY: `__kind` is a 4-byte aligned int inside the mutex, mapped
        // while `self` lives; glibc only reads it after init, so this atomic
        // load races only with other processes' (untrusted) writes.
        let kind = unsafe {
            (*self
                .raw()
                .cast::<u8>()
                .add(offset)
                .cast::<std::sync::atomic::AtomicU32>())
            .load(std::sync::atomic::Ordering::Relaxed)
        };
        // Relaxed: the cache holds values worked out from immutable facts;
        // a stale 0 only sends this call to the slow path.
        let common = |i: usize| COMMON_KINDS[i].load(std::sync::atomic::Ordering::Relaxed);
        (kind != 0 && (kind == common(0) || kind == common(1))) || Self::kind_is_known_slow(kind)
    }

    /// [`kind_is_known`](Self::kind_is_known) beyond the common kinds: works
    /// out the legitimate kinds on first use (and caches the common two), and
    /// looks `kind` up among all of them.
    #[cold]
    #[inline(never)]
    fn kind_is_known_slow(kind: u32) -> bool {
        let Some(kinds) = LEGIT_KINDS.get_or_init(find_legit_kinds) else {
            return true;
        };
        for (cache, &k) in COMMON_KINDS.iter().zip(kinds) {
            cache.store(k, std::sync::atomic::Ordering::Relaxed);
        }
        kinds.contains(&kind)
    }

    /// `EINVAL`, the answer to a mutex of an unknown kind.
    #[cold]
    fn unknown_kind() -> io::Error {
        io::Error::from_raw_os_error(libc::EINVAL)
    }

    /// `pthread_mutex_lock`: blocks until acquired.
    #[inline]
    pub(crate) fn lock(&self) -> Result<Locked, LockFailed> {
        if !self.kind_is_known() {
            return Err(LockFailed::Os(Self::unknown_kind()));
        }
        // SAFETY: `self` was initialised by `init` (the segment protocol publishes
        // it only after init), and its type bits were checked just above.
        lock_result(unsafe { libc::pthread_mutex_lock(self.raw()) })
    }

    /// `pthread_mutex_trylock`: `Busy` when held by another thread.
    ///
    /// glibc (2.36 at least) has a bug here: when trylock acquires a mutex that
    /// is unrecoverable, it returns `ENOTRECOVERABLE` but leaves the futex word
    /// holding the caller's tid (its release is guarded by `oldval == id`, and
    /// `oldval` is 0), so the mutex looks held for ever. `lock` does release it.
    /// Nobody can legitimately hold an unrecoverable mutex, so a word that holds
    /// our tid after that answer is the leftover, and we release it as glibc's
    /// own `lll_unlock` would: swap in 0, wake one sleeper if any.
    #[inline]
    pub(crate) fn try_lock(&self) -> Result<Locked, LockFailed> {
        if !self.kind_is_known() {
            return Err(LockFailed::Os(Self::unknown_kind()));
        }
        // SAFETY: as in `lock`.
        let r = lock_result(unsafe { libc::pthread_mutex_trylock(self.raw()) });
        if let Err(LockFailed::NotRecoverable) = r {
            self.release_leftover_of_trylock();
        }
        r
    }

    fn release_leftover_of_trylock(&self) {
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() } as u32;
        let word = self.futex_word_atomic();
        let old = word.load(std::sync::atomic::Ordering::Relaxed);
        if old & FUTEX_TID_MASK != me {
            return;
        }
        // Release: pairs with the Acquire of the next locker's CAS, as glibc's
        // unlock does.
        let swapped = word.compare_exchange(
            old,
            0,
            std::sync::atomic::Ordering::Release,
            std::sync::atomic::Ordering::Relaxed,
        );
        if swapped.is_ok() && old & FUTEX_WAITERS != 0 {
            // SAFETY: the word is a live, aligned u32 inside the mutex.
            unsafe { super::futex::futex_wake(word.as_ptr(), 1) };
        }
    }

    /// Blocks until acquired or until `deadline_mono_ns` on `CLOCK_MONOTONIC`.
    ///
    /// The libc crate does not expose `pthread_mutex_clocklock`, so the monotonic
    /// deadline is converted to `CLOCK_REALTIME` for `pthread_mutex_timedlock`: a
    /// step of the wall clock during the wait lengthens or shortens it.
    pub(crate) fn lock_until(&self, deadline_mono_ns: u64) -> Result<Locked, LockFailed> {
        if !self.kind_is_known() {
            return Err(LockFailed::Os(Self::unknown_kind()));
        }
        let now_mono = super::time::monotonic_ns();
        let left = deadline_mono_ns.saturating_sub(now_mono);
        let abs = super::time::realtime_ns().saturating_add(left);
        let ts = super::time::timespec_from_ns(abs);
        // SAFETY: as in `lock`; `ts` is a valid timespec alive across the call.
        lock_result(unsafe { libc::pthread_mutex_timedlock(self.raw(), &ts) })
    }

    /// `pthread_mutex_unlock` by the thread that holds the mutex. The type
    /// word is not checked again: it was when this thread locked, and
    /// changing it since takes a writer scribbling on a held mutex, who can
    /// corrupt the robust list anyway (see the module docs). A caller that
    /// may not hold it uses [`unlock_checked`](Self::unlock_checked).
    #[inline]
    pub(crate) fn unlock_held(&self) -> Result<(), UnlockFailed> {
        // SAFETY: as in `lock`; the type bits were checked by `unlock_checked`,
        // or when the calling thread, which holds the mutex, locked it.
        match unsafe { libc::pthread_mutex_unlock(self.raw()) } {
            0 => Ok(()),
            libc::EPERM => Err(UnlockFailed::NotOwner),
            // A recursive mutex locked after its owner died and not yet marked
            // consistent: glibc released one level and the thread still holds
            // the rest. That inner release succeeded; only the last one, made
            // without `consistent`, makes the mutex unrecoverable.
            libc::ENOTRECOVERABLE if self.held_by_current_thread() => Ok(()),
            e => Err(UnlockFailed::Os(io::Error::from_raw_os_error(e))),
        }
    }

    /// `pthread_mutex_unlock` by any thread, the holder or not. Robust
    /// mutexes always check the owner, so a non-owner gets `NotOwner` and
    /// changes nothing; the type word is checked first, since glibc reads it
    /// before the owner (a forged lock-elision type makes an unlock of a free
    /// mutex run `xend`).
    #[inline]
    pub(crate) fn unlock_checked(&self) -> Result<(), UnlockFailed> {
        if !self.kind_is_known() {
            return Err(UnlockFailed::Os(Self::unknown_kind()));
        }
        self.unlock_held()
    }

    /// `pthread_mutex_consistent`: after `OwnerDied`, before unlocking. `EINVAL`
    /// when the mutex is not in the owner-died state.
    pub(crate) fn consistent(&self) -> io::Result<()> {
        if !self.kind_is_known() {
            return Err(Self::unknown_kind());
        }
        // SAFETY: as in `lock`.
        check(
            unsafe { libc::pthread_mutex_consistent(self.raw()) },
            "pthread_mutex_consistent",
        )
    }

    /// The thread id in the futex word (0 when free or when the owner died), read
    /// with one relaxed atomic load: the word is the kernel's robust-futex ABI
    /// (owner tid, `FUTEX_WAITERS`, `FUTEX_OWNER_DIED`), and glibc and the kernel
    /// only ever access it atomically.
    pub(crate) fn owner_tid(&self) -> u32 {
        self.futex_word() & FUTEX_TID_MASK
    }

    /// The recursion depth glibc keeps in `__count` (meaningful while a
    /// thread holds a recursive mutex; 0 for a free one), read with one
    /// relaxed atomic load; `None` for another C library, whose layout this
    /// does not read.
    pub(crate) fn depth(&self) -> Option<u32> {
        let [_, count, _] = INSPECTABLE_WORDS?;
        // SAFETY: `__count` is a 4-byte aligned int inside the mutex, mapped
        // while `self` lives; glibc writes it only while holding the mutex,
        // and a relaxed atomic load of it is at worst a stale value.
        let word = unsafe {
            &*self
                .raw()
                .cast::<u8>()
                .add(count)
                .cast::<std::sync::atomic::AtomicU32>()
        };
        Some(word.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// One relaxed atomic load of the futex word (see `owner_tid`).
    fn futex_word(&self) -> u32 {
        self.futex_word_atomic()
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The futex word as an atomic.
    fn futex_word_atomic(&self) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: the futex word is a 4-byte aligned int inside the mutex (the
        // mutex is at least 8-byte aligned) that stays mapped while `self` lives;
        // it is only ever accessed atomically by everyone.
        unsafe {
            &*self
                .raw()
                .cast::<u8>()
                .add(FUTEX_WORD_OFFSET)
                .cast::<std::sync::atomic::AtomicU32>()
        }
    }

    /// Whether the calling thread holds the mutex (its tid is in the futex word).
    #[inline]
    pub(crate) fn held_by_current_thread(&self) -> bool {
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() } as u32;
        self.owner_tid() == me
    }
}
