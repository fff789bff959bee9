//! C functions for the robust mutex (`shmprim_mutex_*`), Python's `Lock`: a
//! named handle guarding a byte payload, and in-place forms over [`RawMutex`]
//! for memory the program maps itself.
//!
//! A named C mutex is the same object as a Rust [`shmprim::Mutex<T>`]: the C side
//! creates it with a payload of `data_size` bytes aligned to `data_align` (a
//! `Bytes` payload type, which a Rust `Mutex<T>` of that size and alignment
//! opens), and opens any mutex whatever its payload, learning the payload's
//! size from the segment header.

use super::lock::{self, LockHandle};
use std::ffi::{c_char, c_void};

use super::{
    SHMPRIM_PRIORITY_INHERITANCE, aligned, at, boundary, check, fail, fail_with, free,
    shmprim_options, shmprim_status, timed, unlink_name,
};
use shmprim::error::Error;
use shmprim::mutex::{ByteLock, LockStatus, MutexOptions, RawMutex};
use shmprim::wait::is_timeout;

/// Bytes to reserve for an in-place mutex (`shmprim_mutex_init`): shmprim's
/// lock words, and room for the C library's `pthread_mutex_t` that a mutex
/// with priority inheritance uses.
pub const SHMPRIM_MUTEX_SIZE: usize = 64;
/// Alignment an in-place mutex needs.
pub const SHMPRIM_MUTEX_ALIGN: usize = 8;

const _: () = assert!(RawMutex::SIZE <= SHMPRIM_MUTEX_SIZE);
const _: () = assert!(RawMutex::ALIGN <= SHMPRIM_MUTEX_ALIGN);

/// The status of a successful lock: `SHMPRIM_OK`, or
/// `SHMPRIM_OWNER_DIED` (held, previous owner died).
pub(crate) fn lock_status(status: LockStatus) -> std::result::Result<(), shmprim_status> {
    match status {
        LockStatus::Acquired => Ok(()),
        LockStatus::OwnerDied => Err(fail_with(
            shmprim_status::SHMPRIM_OWNER_DIED,
            "lock acquired, but its previous owner died holding it: check the data, then call _consistent",
        )),
    }
}

/// The mutex options of C `flags` (already checked against the allowed bits).
pub(crate) fn mutex_options(flags: u32) -> MutexOptions {
    MutexOptions {
        priority_inheritance: flags & SHMPRIM_PRIORITY_INHERITANCE != 0,
    }
}

/// Rejects in-place flags other than `SHMPRIM_PRIORITY_INHERITANCE`.
pub(crate) fn in_place_flags(flags: u32) -> std::result::Result<MutexOptions, shmprim_status> {
    if flags & !SHMPRIM_PRIORITY_INHERITANCE != 0 {
        return Err(fail_with(
            shmprim_status::SHMPRIM_INVALID_ARGUMENT,
            &format!("unknown mutex flags {flags:#x}"),
        ));
    }
    Ok(mutex_options(flags))
}

/// An open named (or anonymous) mutex guarding a byte payload. Opaque; free it
/// with `shmprim_mutex_close`. One handle may be used by many threads.
pub struct shmprim_mutex {
    lock: ByteLock<RawMutex>,
}

impl shmprim_mutex {
    fn raw(&self) -> &RawMutex {
        self.lock.raw()
    }
}

impl LockHandle for shmprim_mutex {
    type Raw = RawMutex;
    const WHAT: &'static str = "mutex";

    fn wrap(lock: ByteLock<RawMutex>) -> Self {
        shmprim_mutex { lock }
    }

    fn lock(&self) -> &ByteLock<RawMutex> {
        &self.lock
    }
}

/// Creates the named mutex guarding `data_size` zeroed bytes aligned to
/// `data_align` (a power of two up to 4096). A Rust `Mutex<T>` with
/// `size_of::<T>() == data_size` and `align_of::<T>() == data_align` opens
/// the same object. `opts` may be `NULL`; its flags may include
/// `SHMPRIM_PRIORITY_INHERITANCE` and `SHMPRIM_UNLINK_ON_CLOSE`.
///
/// Does not block. Returns `SHMPRIM_OK` (and a new handle in `*out`, owned by
/// the caller, freed with `shmprim_mutex_close`), `SHMPRIM_ALREADY_EXISTS`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_INVALID_ARGUMENT` (bad alignment, flags
/// or mode; priority inheritance unsupported), `SHMPRIM_NULL_POINTER`, or
/// `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_create(
    name: *const c_char,
    data_size: usize,
    data_align: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_mutex,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::create(Some(name), data_size, data_align, opts, out) }
}

/// Opens the existing mutex `name`, whatever its payload (see
/// `shmprim_mutex_data_size`), waiting up to 5 s for a creator still
/// initialising it. Returns `SHMPRIM_OK` (new handle in `*out`, owned by the
/// caller), `SHMPRIM_NOT_FOUND`, `SHMPRIM_INCOMPATIBLE` (another kind of
/// object, or another C library's mutex layout), `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_NULL_POINTER`, or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_open(
    name: *const c_char,
    out: *mut *mut shmprim_mutex,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::open(name, out) }
}

/// Opens the mutex `name`, or creates it with `data_size` zeroed bytes aligned
/// to `data_align`; exactly one of several racing callers creates it. An
/// existing mutex with another payload size or alignment is
/// `SHMPRIM_INCOMPATIBLE`. `created` (may be `NULL`) receives whether this
/// call created it. Ownership of `*out` as for `shmprim_mutex_create`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write; `created`
/// null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_open_or_create(
    name: *const c_char,
    data_size: usize,
    data_align: usize,
    out: *mut *mut shmprim_mutex,
    created: *mut bool,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::open_or_create(name, data_size, data_align, out, created) }
}

/// Creates an anonymous mutex (no name) guarding `data_size` zeroed bytes,
/// shared with children forked after this call. Statuses and ownership as for
/// `shmprim_mutex_create`.
///
/// # Safety
/// `opts` must be null or readable; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_anonymous(
    data_size: usize,
    data_align: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_mutex,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::create(None, data_size, data_align, opts, out) }
}

/// Closes a handle (null is ignored). If a thread of this process still holds
/// the lock, the mapping is kept (for a mutex with priority inheritance the C
/// library's robust list points into it) and only the handle is freed. The mutex itself remains until unlinked.
///
/// # Safety
/// `m` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_close(m: *mut shmprim_mutex) {
    // SAFETY: forwarded contract.
    unsafe { free(m) }
}

/// Removes the name `name` if it is a shmprim mutex; processes that have it open
/// keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`, `SHMPRIM_NOT_SHMPRIM`
/// (a file of another program: left alone), `SHMPRIM_INCOMPATIBLE` (another
/// kind of shmprim object: left alone), `SHMPRIM_INVALID_NAME` or
/// `SHMPRIM_NULL_POINTER`. Another process can replace the file between the
/// check and the removal.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::Mutex)) }
}

/// Locks the mutex, waiting up to `timeout_ns` nanoseconds (negative: forever;
/// `0`: try once). Returns:
/// - `SHMPRIM_OK`: locked;
/// - `SHMPRIM_OWNER_DIED`: locked, but the previous owner died holding it; the
///   data may be half-updated. Repair it and call `shmprim_mutex_consistent`
///   before unlocking; unlocked without it, the next locker is told
///   `SHMPRIM_OWNER_DIED` in turn. A waiting call sees the death within
///   10 ms (it looks at the holder's thread once per 10 ms of sleep); a try
///   (`0`) looks on its thread's first busy answer and then once per 10 ms,
///   so a loop of tries sees it as soon;
/// - `SHMPRIM_TIMEOUT`: not locked (someone else holds it);
/// - `SHMPRIM_UNRECOVERABLE`: not locked, never again lockable (only a mutex
///   made with `SHMPRIM_PRIORITY_INHERITANCE`, glibc's, whose bytes were
///   written from outside shmprim);
/// - `SHMPRIM_INVALID_ARGUMENT`: this thread already holds it (not reentrant);
/// - `SHMPRIM_NULL_POINTER`.
///
/// The lock belongs to the calling thread, which must unlock it.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_lock(
    m: *const shmprim_mutex,
    timeout_ns: i64,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::lock(m, timeout_ns) }
}

/// `shmprim_mutex_lock(m, 0)`: locks if free, else `SHMPRIM_TIMEOUT` at once.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_trylock(m: *const shmprim_mutex) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { shmprim_mutex_lock(m, 0) }
}

/// Unlocks. Does not block. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_OWNER` (the
/// calling thread does not hold it; nothing changes) or `SHMPRIM_NULL_POINTER`.
/// Unlocking after `SHMPRIM_OWNER_DIED` without `shmprim_mutex_consistent`
/// leaves the owner-died state for the next locker. Pointers from `shmprim_mutex_data` must not
/// be used until the mutex is locked again.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_unlock(m: *const shmprim_mutex) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::unlock(m) }
}

/// Marks the guarded data consistent after `SHMPRIM_OWNER_DIED`, so the mutex
/// stays usable once unlocked. Does not block. Returns `SHMPRIM_OK` (also when
/// the mutex was not in the owner-died state) or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_consistent(m: *const shmprim_mutex) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::consistent(m) }
}

/// The guarded data (`shmprim_mutex_data_size` bytes, aligned as created),
/// valid until the handle is closed; use it only while holding the lock. Null
/// for a null handle. The memory belongs to the mutex, not to the caller.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_data(m: *const shmprim_mutex) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { lock::data(m) }
}

/// Size in bytes of the guarded data; 0 for a null handle.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_data_size(m: *const shmprim_mutex) -> usize {
    // SAFETY: forwarded contract.
    unsafe { lock::data_size(m) }
}

/// Whether some thread of some process holds the mutex now (Python's
/// `Lock.locked()`; a snapshot). `false` for a null handle.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_locked(m: *const shmprim_mutex) -> bool {
    // SAFETY: forwarded contract.
    unsafe { lock::locked(m) }
}

/// The raw lock of a handle, for the condvar functions.
pub(crate) fn raw_of(m: &shmprim_mutex) -> &RawMutex {
    m.raw()
}

/// The error mapper of a handle, for the condvar functions.
pub(crate) fn err_of(m: &shmprim_mutex, e: Error) -> shmprim_status {
    fail(&m.lock.named(e))
}

// ------------------------------------------------------------------ in place

/// Writes a fresh, unlocked robust process-shared mutex at `mem`
/// (`SHMPRIM_MUTEX_SIZE` bytes aligned to `SHMPRIM_MUTEX_ALIGN`, in memory
/// the caller owns: a struct in a `MAP_SHARED` mapping, say), as
/// `pthread_mutex_init` does. `flags`: `0` or `SHMPRIM_PRIORITY_INHERITANCE`.
/// Does not block. Returns `SHMPRIM_OK`, `SHMPRIM_NULL_POINTER`, or
/// `SHMPRIM_INVALID_ARGUMENT` (misaligned `mem`, unknown flags, priority
/// inheritance unsupported). There is nothing to destroy.
///
/// # Safety
/// `mem` must be null or valid for writes of `SHMPRIM_MUTEX_SIZE` bytes, and
/// no thread or process may be using a mutex there.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_init(mem: *mut c_void, flags: u32) -> shmprim_status {
    boundary(|| {
        let p = aligned::<RawMutex>(mem, "mem")?;
        let mopts = in_place_flags(flags)?;
        // SAFETY: non-null and aligned; valid and unused by the contract.
        check(unsafe { RawMutex::init(p, &mopts) })
    })
}

/// `shmprim_mutex_lock` on an in-place mutex: same timeouts and statuses
/// (plus `SHMPRIM_INVALID_ARGUMENT` for a misaligned `mem`).
///
/// # Safety
/// `mem` must be null or a mutex made by `shmprim_mutex_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_lock_at(
    mem: *mut c_void,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null, or an initialised mutex by the contract.
        let m = unsafe { at::<RawMutex>(mem, "mem") }?;
        lock_status(check(timed(timeout_ns, |d| m.lock(d), is_timeout))?)
    })
}

/// `shmprim_mutex_unlock` on an in-place mutex.
///
/// # Safety
/// `mem` must be null or a mutex made by `shmprim_mutex_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_unlock_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null, or an initialised mutex by the contract.
        let m = unsafe { at::<RawMutex>(mem, "mem") }?;
        // SAFETY: C holds no Rust references into the data.
        check(unsafe { m.unlock_checked() })
    })
}

/// `shmprim_mutex_consistent` on an in-place mutex.
///
/// # Safety
/// `mem` must be null or a mutex made by `shmprim_mutex_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_consistent_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null, or an initialised mutex by the contract.
        let m = unsafe { at::<RawMutex>(mem, "mem") }?;
        check(m.mark_consistent())
    })
}
