//! C functions for the robust reentrant mutex (`shmprim_rmutex_*`), Python's
//! `RLock`: the same object as a Rust [`shmprim::ReentrantMutex<T>`] (see
//! `ffi/mutex.rs` for how the byte payload matches `T`), and in-place forms
//! over [`RawReentrantMutex`].

use super::lock::{self, LockHandle};
use std::ffi::{c_char, c_void};

use super::mutex::{in_place_flags, lock_status};
use super::{
    aligned, at, boundary, check, free, shmprim_options, shmprim_status, timed, unlink_name,
    write_opt,
};
use shmprim::mutex::ByteLock;
use shmprim::reentrant_mutex::RawReentrantMutex;
use shmprim::wait::is_timeout;

/// Bytes to reserve for an in-place reentrant mutex (`shmprim_rmutex_init`).
pub const SHMPRIM_RMUTEX_SIZE: usize = 64;
/// Alignment an in-place reentrant mutex needs.
pub const SHMPRIM_RMUTEX_ALIGN: usize = 8;

const _: () = assert!(RawReentrantMutex::SIZE <= SHMPRIM_RMUTEX_SIZE);
const _: () = assert!(RawReentrantMutex::ALIGN <= SHMPRIM_RMUTEX_ALIGN);

/// An open named (or anonymous) reentrant mutex guarding a byte payload.
/// Opaque; free it with `shmprim_rmutex_close`.
pub struct shmprim_rmutex {
    lock: ByteLock<RawReentrantMutex>,
}

impl shmprim_rmutex {
    fn raw(&self) -> &RawReentrantMutex {
        self.lock.raw()
    }
}

impl LockHandle for shmprim_rmutex {
    type Raw = RawReentrantMutex;
    const WHAT: &'static str = "rmutex";

    fn wrap(lock: ByteLock<RawReentrantMutex>) -> Self {
        shmprim_rmutex { lock }
    }

    fn lock(&self) -> &ByteLock<RawReentrantMutex> {
        &self.lock
    }
}

/// Creates the named reentrant mutex guarding `data_size` zeroed bytes aligned
/// to `data_align`; as `shmprim_mutex_create` in every other respect (a Rust
/// `ReentrantMutex<T>` of that size and alignment opens it). Does not block.
/// Returns `SHMPRIM_OK` (new handle in `*out`, owned by the caller),
/// `SHMPRIM_ALREADY_EXISTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_INVALID_ARGUMENT`, `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_create(
    name: *const c_char,
    data_size: usize,
    data_align: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_rmutex,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::create(Some(name), data_size, data_align, opts, out) }
}

/// Opens the existing reentrant mutex `name`, whatever its payload. Statuses as
/// for `shmprim_mutex_open` (`SHMPRIM_INCOMPATIBLE` for a plain mutex).
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_open(
    name: *const c_char,
    out: *mut *mut shmprim_rmutex,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::open(name, out) }
}

/// Opens the reentrant mutex `name`, or creates it; as
/// `shmprim_mutex_open_or_create`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write; `created`
/// null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_open_or_create(
    name: *const c_char,
    data_size: usize,
    data_align: usize,
    out: *mut *mut shmprim_rmutex,
    created: *mut bool,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::open_or_create(name, data_size, data_align, out, created) }
}

/// Creates an anonymous reentrant mutex shared with children forked later; as
/// `shmprim_mutex_anonymous`.
///
/// # Safety
/// `opts` must be null or readable; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_anonymous(
    data_size: usize,
    data_align: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_rmutex,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::create(None, data_size, data_align, opts, out) }
}

/// Closes a handle (null is ignored); as `shmprim_mutex_close`.
///
/// # Safety
/// `m` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_close(m: *mut shmprim_rmutex) {
    // SAFETY: forwarded contract.
    unsafe { free(m) }
}

/// Removes the name `name`; as `shmprim_mutex_unlink`.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::ReentrantMutex)) }
}

/// Locks (one level deeper if this thread holds it), waiting up to
/// `timeout_ns` (negative: forever; `0`: try once). Returns `SHMPRIM_OK`,
/// `SHMPRIM_OWNER_DIED` (locked at depth 1; the previous owner died holding
/// it: call `shmprim_rmutex_consistent` before the last unlock),
/// `SHMPRIM_TIMEOUT`, `SHMPRIM_UNRECOVERABLE`, `SHMPRIM_INVALID_ARGUMENT`
/// (recursion depth overflow) or `SHMPRIM_NULL_POINTER`. Each successful lock
/// needs one `shmprim_rmutex_unlock` by the same thread.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_lock(
    m: *const shmprim_rmutex,
    timeout_ns: i64,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::lock(m, timeout_ns) }
}

/// `shmprim_rmutex_lock(m, 0)`.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_trylock(m: *const shmprim_rmutex) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { shmprim_rmutex_lock(m, 0) }
}

/// Releases one level of the calling thread's lock. Does not block. Returns
/// `SHMPRIM_OK`, `SHMPRIM_NOT_OWNER` (this thread does not hold it, as
/// Python's `RLock.release` raises) or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_unlock(m: *const shmprim_rmutex) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::unlock(m) }
}

/// Marks the data consistent after `SHMPRIM_OWNER_DIED`. Does not block.
/// Returns `SHMPRIM_OK` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_consistent(m: *const shmprim_rmutex) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { lock::consistent(m) }
}

/// The guarded data, valid until the handle is closed; use it only while
/// holding the lock. Null for a null handle. Owned by the mutex.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_data(m: *const shmprim_rmutex) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { lock::data(m) }
}

/// Size in bytes of the guarded data; 0 for a null handle.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_data_size(m: *const shmprim_rmutex) -> usize {
    // SAFETY: forwarded contract.
    unsafe { lock::data_size(m) }
}

/// Whether some thread of some process holds the reentrant mutex now (a
/// snapshot). `false` for a null handle.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_locked(m: *const shmprim_rmutex) -> bool {
    // SAFETY: forwarded contract.
    unsafe { lock::locked(m) }
}

/// How many times the holder has locked the reentrant mutex without
/// releasing it (Python's `RLock` count), with its thread id in `*owner_tid`
/// (0 when free; may be null). 0 when free or for a null handle.
///
/// # Safety
/// `m` must be null or a live handle; `owner_tid` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_depth(
    m: *const shmprim_rmutex,
    owner_tid: *mut u32,
) -> u32 {
    // SAFETY: null or live, by the contract.
    let Some(m) = (unsafe { m.as_ref() }) else {
        return 0;
    };
    // SAFETY: null or valid for a write, by the contract.
    unsafe { write_opt(owner_tid, m.raw().owner_tid().unwrap_or(0)) };
    m.raw().depth()
}

// ------------------------------------------------------------------ in place

/// Writes a fresh, unlocked robust reentrant mutex at `mem`
/// (`SHMPRIM_RMUTEX_SIZE` bytes aligned to `SHMPRIM_RMUTEX_ALIGN`). `flags`:
/// `0` or `SHMPRIM_PRIORITY_INHERITANCE`. Does not block. Returns
/// `SHMPRIM_OK`, `SHMPRIM_NULL_POINTER` or `SHMPRIM_INVALID_ARGUMENT`.
///
/// # Safety
/// `mem` must be null or valid for writes of `SHMPRIM_RMUTEX_SIZE` bytes and
/// not in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_init(mem: *mut c_void, flags: u32) -> shmprim_status {
    boundary(|| {
        let p = aligned::<RawReentrantMutex>(mem, "mem")?;
        let mopts = in_place_flags(flags)?;
        // SAFETY: non-null and aligned; valid and unused by the contract.
        check(unsafe { RawReentrantMutex::init(p, &mopts) })
    })
}

/// `shmprim_rmutex_lock` on an in-place reentrant mutex.
///
/// # Safety
/// `mem` must be null or a mutex made by `shmprim_rmutex_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_lock_at(
    mem: *mut c_void,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null, or an initialised mutex by the contract.
        let m = unsafe { at::<RawReentrantMutex>(mem, "mem") }?;
        lock_status(check(timed(timeout_ns, |d| m.lock(d), is_timeout))?)
    })
}

/// `shmprim_rmutex_unlock` on an in-place reentrant mutex.
///
/// # Safety
/// `mem` must be null or a mutex made by `shmprim_rmutex_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_unlock_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null, or an initialised mutex by the contract.
        let m = unsafe { at::<RawReentrantMutex>(mem, "mem") }?;
        check(m.unlock())
    })
}

/// `shmprim_rmutex_consistent` on an in-place reentrant mutex.
///
/// # Safety
/// `mem` must be null or a mutex made by `shmprim_rmutex_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_rmutex_consistent_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null, or an initialised mutex by the contract.
        let m = unsafe { at::<RawReentrantMutex>(mem, "mem") }?;
        check(m.mark_consistent())
    })
}
