//! C functions for the event (`shmprim_event_*`), Python's `Event`: the same
//! object as a Rust [`Event`], and in-place forms over [`EventState`].

use std::ffi::{c_char, c_void};

use super::{
    aligned, at, boundary, c_str, check, fail_with, free, handle, non_null, options, put,
    shmprim_options, shmprim_status, timed, unlink_name, write_opt,
};
use shmprim::event::{Event, EventState};

/// Bytes to reserve for an in-place event (`shmprim_event_init`).
pub const SHMPRIM_EVENT_SIZE: usize = 8;
/// Alignment an in-place event needs.
pub const SHMPRIM_EVENT_ALIGN: usize = 4;

// Under loom the states hold model atomics of another size; the C ABI is
// not used there.
#[cfg(not(shmprim_loom))]
const _: () = assert!(EventState::SIZE == SHMPRIM_EVENT_SIZE);
#[cfg(not(shmprim_loom))]
const _: () = assert!(EventState::ALIGN == SHMPRIM_EVENT_ALIGN);

/// An open named (or anonymous) event. Opaque; free it with
/// `shmprim_event_close`. One handle may be used by many threads.
pub struct shmprim_event {
    inner: Event,
}

/// Creates the named event, unset. `opts` may be `NULL` (its only
/// flag here is `SHMPRIM_UNLINK_ON_CLOSE`). Does not block. Returns
/// `SHMPRIM_OK` (a new handle in `*out`, owned by the caller, freed with
/// `shmprim_event_close`), `SHMPRIM_ALREADY_EXISTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_INVALID_ARGUMENT` (bad options), `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_create(
    name: *const c_char,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_event,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, 0) }?;
        let inner = check(Event::create_with_options(name, &opts))?;
        put(out, shmprim_event { inner })
    })
}

/// Opens the existing event `name`, waiting up to 5 s for a creator still
/// initialising it. Does not otherwise block. Returns `SHMPRIM_OK` (a new
/// handle in `*out`, owned by the caller), `SHMPRIM_NOT_FOUND`,
/// `SHMPRIM_INCOMPATIBLE` (another kind of object), `SHMPRIM_CORRUPTED`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_NULL_POINTER` or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_open(
    name: *const c_char,
    out: *mut *mut shmprim_event,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let inner = check(Event::open(name))?;
        put(out, shmprim_event { inner })
    })
}

/// Opens the event `name`, or creates it, unset; exactly one of
/// several racing callers creates it, and an existing one created with other
/// parameters is `SHMPRIM_INCOMPATIBLE`. Other statuses and ownership as for
/// `shmprim_event_create` and `shmprim_event_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write;
/// `created` null or valid for a write (whether this call created it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_open_or_create(
    name: *const c_char,
    out: *mut *mut shmprim_event,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (inner, how) = check(Event::open_or_create(name))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == shmprim::Disposition::Created) };
        put(out, shmprim_event { inner })
    })
}

/// Creates an anonymous event (no name), unset, shared with children
/// forked after this call. Statuses and ownership as for `shmprim_event_create`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_anonymous(out: *mut *mut shmprim_event) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let inner = check(Event::anonymous())?;
        put(out, shmprim_event { inner })
    })
}

/// Closes a handle (null is ignored); the event remains until unlinked.
///
/// # Safety
/// `h` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_close(h: *mut shmprim_event) {
    // SAFETY: forwarded contract.
    unsafe { free(h) }
}

/// Removes the name `name` if it is a shmprim event; processes that have it open
/// keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`, `SHMPRIM_NOT_SHMPRIM`
/// (a file of another program: left alone), `SHMPRIM_INCOMPATIBLE` (another
/// kind of shmprim object: left alone), `SHMPRIM_INVALID_NAME` or
/// `SHMPRIM_NULL_POINTER`. Another process can replace the file between the
/// check and the removal.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::Event)) }
}

fn waited(set: bool) -> Result<(), shmprim_status> {
    if set {
        Ok(())
    } else {
        Err(fail_with(
            shmprim_status::SHMPRIM_TIMEOUT,
            "the event was not set before the timeout",
        ))
    }
}

/// Raises the flag and wakes every waiter. Does not block (no system call
/// when nobody sleeps). Returns `SHMPRIM_OK` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `e` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_set(e: *const shmprim_event) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        unsafe { handle(e, "event") }?.inner.set();
        Ok(())
    })
}

/// Lowers the flag. Does not block. Returns `SHMPRIM_OK` or
/// `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `e` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_clear(e: *const shmprim_event) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        unsafe { handle(e, "event") }?.inner.clear();
        Ok(())
    })
}

/// Writes whether the flag is up to `*is_set`. Does not block. Returns
/// `SHMPRIM_OK` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `e` must be null or a live handle; `is_set` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_is_set(
    e: *const shmprim_event,
    is_set: *mut bool,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let e = unsafe { handle(e, "event") }?;
        non_null(is_set, "is_set")?;
        // SAFETY: non-null, so valid for a write by the contract.
        unsafe { is_set.write(e.inner.is_set()) };
        Ok(())
    })
}

/// Waits up to `timeout_ns` (negative: forever; `0`: just look) for the flag,
/// or for a `set` made since the call began. Returns `SHMPRIM_OK` (set),
/// `SHMPRIM_TIMEOUT` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `e` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_wait(
    e: *const shmprim_event,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let e = unsafe { handle(e, "event") }?;
        waited(timed(
            timeout_ns,
            |d| e.inner.wait_deadline(d).is_ok(),
            |set| !set,
        ))
    })
}

// ------------------------------------------------------------------ in place

/// Writes a fresh, unset event at `mem` (`SHMPRIM_EVENT_SIZE` bytes aligned to
/// `SHMPRIM_EVENT_ALIGN`). Does not block. Returns `SHMPRIM_OK`,
/// `SHMPRIM_NULL_POINTER` or `SHMPRIM_INVALID_ARGUMENT` (misaligned).
///
/// # Safety
/// `mem` must be null or valid for writes of `SHMPRIM_EVENT_SIZE` bytes and
/// not in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_init(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        let p = aligned::<EventState>(mem, "mem")?;
        // SAFETY: non-null and aligned; valid and unused by the contract.
        unsafe { EventState::init(p) };
        Ok(())
    })
}

/// `shmprim_event_set` on an in-place event.
///
/// # Safety
/// `mem` must be null or an event made by `shmprim_event_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_set_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised event, by the contract.
        unsafe { at::<EventState>(mem, "mem") }?.set();
        Ok(())
    })
}

/// `shmprim_event_clear` on an in-place event.
///
/// # Safety
/// `mem` must be null or an event made by `shmprim_event_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_clear_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised event, by the contract.
        unsafe { at::<EventState>(mem, "mem") }?.clear();
        Ok(())
    })
}

/// `shmprim_event_is_set` on an in-place event.
///
/// # Safety
/// `mem` must be null or an event made by `shmprim_event_init`, mapped;
/// `is_set` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_is_set_at(
    mem: *mut c_void,
    is_set: *mut bool,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised event, by the contract.
        let e = unsafe { at::<EventState>(mem, "mem") }?;
        non_null(is_set, "is_set")?;
        // SAFETY: non-null, so valid for a write by the contract.
        unsafe { is_set.write(e.is_set()) };
        Ok(())
    })
}

/// `shmprim_event_wait` on an in-place event.
///
/// # Safety
/// `mem` must be null or an event made by `shmprim_event_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_event_wait_at(
    mem: *mut c_void,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised event, by the contract.
        let e = unsafe { at::<EventState>(mem, "mem") }?;
        waited(timed(timeout_ns, |d| e.wait(d), |set| !set))
    })
}
