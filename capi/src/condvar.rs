//! C functions for the condition variable (`shmprim_condvar_*`), Python's
//! `Condition`: the same object as a Rust [`Condvar`], paired with a
//! `shmprim_mutex` (or, in place, with an in-place mutex). The wait is the
//! Rust [`RawCondvar::wait_with`] with the C mutex's unlock and lock.

use std::ffi::{c_char, c_void};

use super::mutex::{err_of, lock_status, raw_of, shmprim_mutex};
use super::{
    aligned, at, boundary, c_str, check, fail, fail_with, free, handle, non_null, options, put,
    shmprim_options, shmprim_status, unlink_name, write_opt,
};
use shmprim::condvar::{Condvar, RawCondvar};
use shmprim::error::Error;
use shmprim::mutex::{LockStatus, RawMutex};
use shmprim::wait::Deadline;

/// Bytes to reserve for an in-place condvar (`shmprim_condvar_init`).
pub const SHMPRIM_CONDVAR_SIZE: usize = 16;
/// Alignment an in-place condvar needs.
pub const SHMPRIM_CONDVAR_ALIGN: usize = 8;

// Under loom the states hold model atomics of another size; the C ABI is
// not used there.
#[cfg(not(shmprim_loom))]
const _: () = assert!(RawCondvar::SIZE == SHMPRIM_CONDVAR_SIZE);
#[cfg(not(shmprim_loom))]
const _: () = assert!(RawCondvar::ALIGN == SHMPRIM_CONDVAR_ALIGN);

/// An open named (or anonymous) condition variable. Opaque; free it with
/// `shmprim_condvar_close`. One handle may be used by many threads.
pub struct shmprim_condvar {
    inner: Condvar,
}

/// Creates the named condvar. `opts` may be `NULL` (its only
/// flag here is `SHMPRIM_UNLINK_ON_CLOSE`). Does not block. Returns
/// `SHMPRIM_OK` (a new handle in `*out`, owned by the caller, freed with
/// `shmprim_condvar_close`), `SHMPRIM_ALREADY_EXISTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_INVALID_ARGUMENT` (bad options), `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_create(
    name: *const c_char,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_condvar,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, 0) }?;
        let inner = check(Condvar::create_with_options(name, &opts))?;
        put(out, shmprim_condvar { inner })
    })
}

/// Opens the existing condvar `name`, waiting up to 5 s for a creator still
/// initialising it. Does not otherwise block. Returns `SHMPRIM_OK` (a new
/// handle in `*out`, owned by the caller), `SHMPRIM_NOT_FOUND`,
/// `SHMPRIM_INCOMPATIBLE` (another kind of object), `SHMPRIM_CORRUPTED`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_NULL_POINTER` or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_open(
    name: *const c_char,
    out: *mut *mut shmprim_condvar,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let inner = check(Condvar::open(name))?;
        put(out, shmprim_condvar { inner })
    })
}

/// Opens the condvar `name`, or creates it; exactly one of
/// several racing callers creates it, and an existing one created with other
/// parameters is `SHMPRIM_INCOMPATIBLE`. Other statuses and ownership as for
/// `shmprim_condvar_create` and `shmprim_condvar_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write;
/// `created` null or valid for a write (whether this call created it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_open_or_create(
    name: *const c_char,
    out: *mut *mut shmprim_condvar,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (inner, how) = check(Condvar::open_or_create(name))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == shmprim::Disposition::Created) };
        put(out, shmprim_condvar { inner })
    })
}

/// Creates an anonymous condvar (no name), shared with children
/// forked after this call. Statuses and ownership as for `shmprim_condvar_create`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_anonymous(
    out: *mut *mut shmprim_condvar,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let inner = check(Condvar::anonymous())?;
        put(out, shmprim_condvar { inner })
    })
}

/// Closes a handle (null is ignored); the condvar remains until unlinked.
///
/// # Safety
/// `h` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_close(h: *mut shmprim_condvar) {
    // SAFETY: forwarded contract.
    unsafe { free(h) }
}

/// Removes the name `name` if it is a shmprim condvar; processes that have it open
/// keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`, `SHMPRIM_NOT_SHMPRIM`
/// (a file of another program: left alone), `SHMPRIM_INCOMPATIBLE` (another
/// kind of shmprim object: left alone), `SHMPRIM_INVALID_NAME` or
/// `SHMPRIM_NULL_POINTER`. Another process can replace the file between the
/// check and the removal.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::Condvar)) }
}

/// Releases `m` (held by the calling thread), waits for a notification or the
/// timeout, and locks `m` again: the shared body of both waits.
fn wait(
    cv: &RawCondvar,
    m: &RawMutex,
    timeout_ns: i64,
    err: impl Fn(Error) -> shmprim_status,
) -> Result<(), shmprim_status> {
    if !m.held_by_current_thread() {
        return Err(fail_with(
            shmprim_status::SHMPRIM_NOT_OWNER,
            "condvar wait: the calling thread does not hold the mutex",
        ));
    }
    // Interruptible as every C wait is; the relock is not (it is a mutex
    // lock), so `m` is held again whatever ended the wait.
    let (relocked, timed_out) = super::waiting(
        || {
            cv.wait_with(
                || {
                    // SAFETY: C holds no Rust references into the guarded
                    // data; the check above makes this thread the owner, so
                    // the unlock succeeds.
                    let _ = unsafe { m.unlock_checked() };
                },
                || m.lock(Deadline::never()),
                super::deadline_from_c(timeout_ns),
            )
        },
        |(relocked, timed_out)| relocked.is_ok() && *timed_out,
    );
    match relocked.map_err(&err)? {
        LockStatus::OwnerDied => lock_status(LockStatus::OwnerDied),
        LockStatus::Acquired if timed_out => Err(err(Error::Timeout {
            name: shmprim::ObjectName::unknown(),
        })),
        LockStatus::Acquired => Ok(()),
    }
}

/// Atomically releases `m` and waits for a notification, up to `timeout_ns`
/// (negative: forever; `0`: release, look once, relock), then locks `m`
/// again, waiting as long as that takes. Wake-ups may be spurious: re-check
/// the condition in a loop. Returns:
/// - `SHMPRIM_OK`: notified (or spuriously woken), `m` held;
/// - `SHMPRIM_TIMEOUT`: the timeout passed, `m` held;
/// - `SHMPRIM_OWNER_DIED`: `m` held, but its owner died meanwhile (see
///   `shmprim_mutex_lock`);
/// - `SHMPRIM_UNRECOVERABLE`: `m` not held;
/// - `SHMPRIM_NOT_OWNER`: the calling thread did not hold `m`; nothing waited;
/// - `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `cv` and `m` must each be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_wait(
    cv: *const shmprim_condvar,
    m: *const shmprim_mutex,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let cv = unsafe { handle(cv, "condvar") }?;
        // SAFETY: null or live, by the contract.
        let m = unsafe { handle(m, "mutex") }?;
        wait(cv.inner.state(), raw_of(m), timeout_ns, |e| err_of(m, e))
    })
}

/// Wakes one waiting thread, in any process, that was waiting when it was
/// called (if that one dies before it returns, another waiter takes the
/// notification). Does not block; no system call when nobody waits. Returns
/// `SHMPRIM_OK` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `cv` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_notify_one(cv: *const shmprim_condvar) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        unsafe { handle(cv, "condvar") }?.inner.notify_one();
        Ok(())
    })
}

/// Wakes up to `n` waiting threads, in any process (Python's
/// `Condition.notify(n)`). Does not block; no system call when nobody
/// sleeps. Returns `SHMPRIM_OK` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `cv` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_notify(
    cv: *const shmprim_condvar,
    n: u32,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        unsafe { handle(cv, "condvar") }?.inner.notify(n);
        Ok(())
    })
}

/// Wakes every waiting thread. Does not block. Returns `SHMPRIM_OK` or
/// `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `cv` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_notify_all(cv: *const shmprim_condvar) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        unsafe { handle(cv, "condvar") }?.inner.notify_all();
        Ok(())
    })
}

// ------------------------------------------------------------------ in place

/// Writes a fresh condvar at `mem` (`SHMPRIM_CONDVAR_SIZE` bytes aligned to
/// `SHMPRIM_CONDVAR_ALIGN`), as `pthread_cond_init` does. Does not block.
/// Returns `SHMPRIM_OK`, `SHMPRIM_NULL_POINTER` or `SHMPRIM_INVALID_ARGUMENT`
/// (misaligned).
///
/// # Safety
/// `mem` must be null or valid for writes of `SHMPRIM_CONDVAR_SIZE` bytes and
/// not in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_init(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        let p = aligned::<RawCondvar>(mem, "mem")?;
        // SAFETY: non-null and aligned; valid and unused by the contract.
        unsafe { RawCondvar::init(p) };
        Ok(())
    })
}

/// `shmprim_condvar_wait` on an in-place condvar and an in-place mutex
/// (`shmprim_mutex_init`); same timeouts and statuses.
///
/// # Safety
/// `cv_mem` must be null or a condvar made by `shmprim_condvar_init`, and
/// `mutex_mem` null or a mutex made by `shmprim_mutex_init`, both mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_wait_at(
    cv_mem: *mut c_void,
    mutex_mem: *mut c_void,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised condvar, by the contract.
        let cv = unsafe { at::<RawCondvar>(cv_mem, "cv_mem") }?;
        // SAFETY: null or an initialised mutex, by the contract.
        let m = unsafe { at::<RawMutex>(mutex_mem, "mutex_mem") }?;
        wait(cv, m, timeout_ns, |e| fail(&e))
    })
}

/// `shmprim_condvar_notify_one` on an in-place condvar.
///
/// # Safety
/// `mem` must be null or a condvar made by `shmprim_condvar_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_notify_one_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised condvar, by the contract.
        unsafe { at::<RawCondvar>(mem, "mem") }?.notify_one();
        Ok(())
    })
}

/// `shmprim_condvar_notify_all` on an in-place condvar.
///
/// # Safety
/// `mem` must be null or a condvar made by `shmprim_condvar_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_condvar_notify_all_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised condvar, by the contract.
        unsafe { at::<RawCondvar>(mem, "mem") }?.notify_all();
        Ok(())
    })
}
