//! C functions for the counting semaphore (`shmprim_semaphore_*`), Python's
//! `Semaphore` and `BoundedSemaphore`: the same object as a Rust
//! [`Semaphore`], and in-place forms over [`SemaphoreState`].

use std::ffi::{c_char, c_void};

use super::{
    aligned, at, boundary, c_str, check, free, handle, non_null, options, put, shmprim_options,
    shmprim_status, timed, unlink_name, write_opt,
};
use shmprim::semaphore::{Semaphore, SemaphoreState, UNBOUNDED};
use shmprim::wait::is_timeout;

/// The `bound` of a semaphore without one.
pub const SHMPRIM_SEMAPHORE_UNBOUNDED: u32 = 0xFFFF_FFFF;
/// Bytes to reserve for an in-place semaphore (`shmprim_semaphore_init`).
pub const SHMPRIM_SEMAPHORE_SIZE: usize = 12;
/// Alignment an in-place semaphore needs.
pub const SHMPRIM_SEMAPHORE_ALIGN: usize = 4;

const _: () = assert!(SHMPRIM_SEMAPHORE_UNBOUNDED == UNBOUNDED);
// Under loom the states hold model atomics of another size; the C ABI is
// not used there.
#[cfg(not(shmprim_loom))]
const _: () = assert!(SemaphoreState::SIZE == SHMPRIM_SEMAPHORE_SIZE);
#[cfg(not(shmprim_loom))]
const _: () = assert!(SemaphoreState::ALIGN == SHMPRIM_SEMAPHORE_ALIGN);

/// An open named (or anonymous) semaphore. Opaque; free it with
/// `shmprim_semaphore_close`. One handle may be used by many threads.
pub struct shmprim_semaphore {
    inner: Semaphore,
}

/// Creates the named semaphore holding `value` permits, never more than `bound` (`SHMPRIM_SEMAPHORE_UNBOUNDED` for no bound; Python's `BoundedSemaphore(n)` is `value == bound == n`). `opts` may be `NULL` (its only
/// flag here is `SHMPRIM_UNLINK_ON_CLOSE`). Does not block. Returns
/// `SHMPRIM_OK` (a new handle in `*out`, owned by the caller, freed with
/// `shmprim_semaphore_close`), `SHMPRIM_ALREADY_EXISTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_INVALID_ARGUMENT` (`value > bound`, bad options), `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_create(
    name: *const c_char,
    value: u32,
    bound: u32,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_semaphore,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, 0) }?;
        let inner = check(Semaphore::create_with_options(name, value, bound, &opts))?;
        put(out, shmprim_semaphore { inner })
    })
}

/// Opens the existing semaphore `name`, waiting up to 5 s for a creator still
/// initialising it. Does not otherwise block. Returns `SHMPRIM_OK` (a new
/// handle in `*out`, owned by the caller), `SHMPRIM_NOT_FOUND`,
/// `SHMPRIM_INCOMPATIBLE` (another kind of object), `SHMPRIM_CORRUPTED`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_NULL_POINTER` or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_open(
    name: *const c_char,
    out: *mut *mut shmprim_semaphore,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let inner = check(Semaphore::open(name))?;
        put(out, shmprim_semaphore { inner })
    })
}

/// Opens the semaphore `name`, or creates it holding `value` permits, never more than `bound` (`SHMPRIM_SEMAPHORE_UNBOUNDED` for no bound; Python's `BoundedSemaphore(n)` is `value == bound == n`); exactly one of
/// several racing callers creates it, and an existing one created with other
/// parameters is `SHMPRIM_INCOMPATIBLE`. Other statuses and ownership as for
/// `shmprim_semaphore_create` and `shmprim_semaphore_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write;
/// `created` null or valid for a write (whether this call created it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_open_or_create(
    name: *const c_char,
    value: u32,
    bound: u32,
    out: *mut *mut shmprim_semaphore,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (inner, how) = check(Semaphore::open_or_create(name, value, bound))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == shmprim::Disposition::Created) };
        put(out, shmprim_semaphore { inner })
    })
}

/// Creates an anonymous semaphore (no name) holding `value` permits, never more than `bound` (`SHMPRIM_SEMAPHORE_UNBOUNDED` for no bound; Python's `BoundedSemaphore(n)` is `value == bound == n`), shared with children
/// forked after this call. Statuses and ownership as for `shmprim_semaphore_create`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_anonymous(
    value: u32,
    bound: u32,
    out: *mut *mut shmprim_semaphore,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let inner = check(Semaphore::anonymous(value, bound))?;
        put(out, shmprim_semaphore { inner })
    })
}

/// Closes a handle (null is ignored); the semaphore remains until unlinked.
///
/// # Safety
/// `h` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_close(h: *mut shmprim_semaphore) {
    // SAFETY: forwarded contract.
    unsafe { free(h) }
}

/// Removes the name `name` if it is a shmprim semaphore; processes that have it open
/// keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`, `SHMPRIM_NOT_SHMPRIM`
/// (a file of another program: left alone), `SHMPRIM_INCOMPATIBLE` (another
/// kind of shmprim object: left alone), `SHMPRIM_INVALID_NAME` or
/// `SHMPRIM_NULL_POINTER`. Another process can replace the file between the
/// check and the removal.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::Semaphore)) }
}

/// Takes a permit, waiting up to `timeout_ns` nanoseconds (negative: forever;
/// `0`: try once) while there is none. Returns `SHMPRIM_OK`,
/// `SHMPRIM_TIMEOUT` (no permit taken) or `SHMPRIM_NULL_POINTER`. A permit is
/// not tied to a thread or process: anyone may release it.
///
/// # Safety
/// `s` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_acquire(
    s: *const shmprim_semaphore,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let s = unsafe { handle(s, "semaphore") }?;
        check(timed(
            timeout_ns,
            |d| s.inner.acquire_deadline(d),
            is_timeout,
        ))
    })
}

/// `shmprim_semaphore_acquire(s, 0)`.
///
/// # Safety
/// `s` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_try_acquire(
    s: *const shmprim_semaphore,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { shmprim_semaphore_acquire(s, 0) }
}

/// Gives back `n` permits, waking up to `n` sleepers. Does not block. Returns
/// `SHMPRIM_OK`, `SHMPRIM_OVERFLOW` (the bound would be exceeded; nothing
/// changes), `SHMPRIM_INVALID_ARGUMENT` (`n == 0`) or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `s` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_release(
    s: *const shmprim_semaphore,
    n: u32,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let s = unsafe { handle(s, "semaphore") }?;
        check(s.inner.release(n))
    })
}

/// Writes the number of permits available now to `*value` (Python's
/// `get_value()`). Returns `SHMPRIM_OK` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `s` must be null or a live handle; `value` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_value(
    s: *const shmprim_semaphore,
    value: *mut u32,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let s = unsafe { handle(s, "semaphore") }?;
        non_null(value, "value")?;
        // SAFETY: non-null, so valid for a write by the contract.
        unsafe { value.write(s.inner.value()) };
        Ok(())
    })
}

// ------------------------------------------------------------------ in place

/// Writes a fresh semaphore holding `value` permits (at most `bound`) at
/// `mem` (`SHMPRIM_SEMAPHORE_SIZE` bytes aligned to
/// `SHMPRIM_SEMAPHORE_ALIGN`, in memory the caller maps), as `sem_init` does.
/// Does not block. Returns `SHMPRIM_OK`, `SHMPRIM_NULL_POINTER`, or
/// `SHMPRIM_INVALID_ARGUMENT` (misaligned, `value > bound`).
///
/// # Safety
/// `mem` must be null or valid for writes of `SHMPRIM_SEMAPHORE_SIZE` bytes
/// and not in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_init(
    mem: *mut c_void,
    value: u32,
    bound: u32,
) -> shmprim_status {
    boundary(|| {
        let p = aligned::<SemaphoreState>(mem, "mem")?;
        // SAFETY: non-null and aligned; valid and unused by the contract.
        check(unsafe { SemaphoreState::init(p, value, bound) })
    })
}

/// `shmprim_semaphore_acquire` on an in-place semaphore.
///
/// # Safety
/// `mem` must be null or a semaphore made by `shmprim_semaphore_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_acquire_at(
    mem: *mut c_void,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised semaphore, by the contract.
        let s = unsafe { at::<SemaphoreState>(mem, "mem") }?;
        check(timed(timeout_ns, |d| s.acquire(d), is_timeout))
    })
}

/// `shmprim_semaphore_release` on an in-place semaphore.
///
/// # Safety
/// `mem` must be null or a semaphore made by `shmprim_semaphore_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_release_at(mem: *mut c_void, n: u32) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised semaphore, by the contract.
        let s = unsafe { at::<SemaphoreState>(mem, "mem") }?;
        check(s.release(n))
    })
}

/// `shmprim_semaphore_value` on an in-place semaphore.
///
/// # Safety
/// `mem` must be null or a semaphore made by `shmprim_semaphore_init`,
/// mapped; `value` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_semaphore_value_at(
    mem: *mut c_void,
    value: *mut u32,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised semaphore, by the contract.
        let s = unsafe { at::<SemaphoreState>(mem, "mem") }?;
        non_null(value, "value")?;
        // SAFETY: non-null, so valid for a write by the contract.
        unsafe { value.write(s.value()) };
        Ok(())
    })
}
