//! C functions for the barrier (`shmprim_barrier_*`), Python's `Barrier`: the
//! same object as a Rust [`Barrier`], and in-place forms over
//! [`BarrierState`].

use std::ffi::{c_char, c_void};

use super::{
    aligned, at, boundary, c_str, check, free, handle, non_null, options, put, shmprim_options,
    shmprim_status, unlink_name, write_opt,
};
use shmprim::barrier::{Barrier, BarrierState, MAX_PARTIES};

/// The largest number of parties a barrier may have.
pub const SHMPRIM_BARRIER_MAX_PARTIES: u32 = 4095;
/// Bytes to reserve for an in-place barrier (`shmprim_barrier_init`).
pub const SHMPRIM_BARRIER_SIZE: usize = 12;
/// Alignment an in-place barrier needs.
pub const SHMPRIM_BARRIER_ALIGN: usize = 4;

const _: () = assert!(SHMPRIM_BARRIER_MAX_PARTIES == MAX_PARTIES);
// Under loom the states hold model atomics of another size; the C ABI is
// not used there.
#[cfg(not(shmprim_loom))]
const _: () = assert!(BarrierState::SIZE == SHMPRIM_BARRIER_SIZE);
#[cfg(not(shmprim_loom))]
const _: () = assert!(BarrierState::ALIGN == SHMPRIM_BARRIER_ALIGN);

/// An open named (or anonymous) barrier. Opaque; free it with
/// `shmprim_barrier_close`. One handle may be used by many threads.
pub struct shmprim_barrier {
    inner: Barrier,
}

/// Creates the named barrier for `parties` parties (1 to `SHMPRIM_BARRIER_MAX_PARTIES`). `opts` may be `NULL` (its only
/// flag here is `SHMPRIM_UNLINK_ON_CLOSE`). Does not block. Returns
/// `SHMPRIM_OK` (a new handle in `*out`, owned by the caller, freed with
/// `shmprim_barrier_close`), `SHMPRIM_ALREADY_EXISTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_INVALID_ARGUMENT` (parties out of range, bad options), `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_create(
    name: *const c_char,
    parties: u32,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_barrier,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, 0) }?;
        let inner = check(Barrier::create_with_options(name, parties, &opts))?;
        put(out, shmprim_barrier { inner })
    })
}

/// Opens the existing barrier `name`, waiting up to 5 s for a creator still
/// initialising it. Does not otherwise block. Returns `SHMPRIM_OK` (a new
/// handle in `*out`, owned by the caller), `SHMPRIM_NOT_FOUND`,
/// `SHMPRIM_INCOMPATIBLE` (another kind of object), `SHMPRIM_CORRUPTED`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_NULL_POINTER` or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_open(
    name: *const c_char,
    out: *mut *mut shmprim_barrier,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let inner = check(Barrier::open(name))?;
        put(out, shmprim_barrier { inner })
    })
}

/// Opens the barrier `name`, or creates it for `parties` parties (1 to `SHMPRIM_BARRIER_MAX_PARTIES`); exactly one of
/// several racing callers creates it, and an existing one created with other
/// parameters is `SHMPRIM_INCOMPATIBLE`. Other statuses and ownership as for
/// `shmprim_barrier_create` and `shmprim_barrier_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write;
/// `created` null or valid for a write (whether this call created it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_open_or_create(
    name: *const c_char,
    parties: u32,
    out: *mut *mut shmprim_barrier,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (inner, how) = check(Barrier::open_or_create(name, parties))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == shmprim::Disposition::Created) };
        put(out, shmprim_barrier { inner })
    })
}

/// Creates an anonymous barrier (no name) for `parties` parties (1 to `SHMPRIM_BARRIER_MAX_PARTIES`), shared with children
/// forked after this call. Statuses and ownership as for `shmprim_barrier_create`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_anonymous(
    parties: u32,
    out: *mut *mut shmprim_barrier,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let inner = check(Barrier::anonymous(parties))?;
        put(out, shmprim_barrier { inner })
    })
}

/// Closes a handle (null is ignored); the barrier remains until unlinked.
///
/// # Safety
/// `h` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_close(h: *mut shmprim_barrier) {
    // SAFETY: forwarded contract.
    unsafe { free(h) }
}

/// Removes the name `name` if it is a shmprim barrier; processes that have it open
/// keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`, `SHMPRIM_NOT_SHMPRIM`
/// (a file of another program: left alone), `SHMPRIM_INCOMPATIBLE` (another
/// kind of shmprim object: left alone), `SHMPRIM_INVALID_NAME` or
/// `SHMPRIM_NULL_POINTER`. Another process can replace the file between the
/// check and the removal.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::Barrier)) }
}

/// Waits up to `timeout_ns` (negative: forever; `0`: only if this call
/// completes the barrier) until all parties have called it. Returns
/// `SHMPRIM_OK` with the arrival index, `0` to `parties - 1`, in `*index` (may
/// be `NULL`); `SHMPRIM_BROKEN_BARRIER` if the barrier is or becomes broken or
/// reset; `SHMPRIM_TIMEOUT` (which breaks the barrier for the others, as in
/// Python); `SHMPRIM_CORRUPTED`; or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `b` must be null or a live handle; `index` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_wait(
    b: *const shmprim_barrier,
    timeout_ns: i64,
    index: *mut usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let b = unsafe { handle(b, "barrier") }?;
        let i = check(super::waiting(
            || b.inner.wait_deadline(super::deadline_from_c(timeout_ns)),
            |r| r.is_err(),
        ))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(index, i) };
        Ok(())
    })
}

/// `shmprim_barrier_wait` with Python's `action`: if this call is the last
/// to arrive, it runs `action(ctx)` (when `action` is not `NULL`) before any
/// party is released. Statuses as for `shmprim_barrier_wait`.
///
/// # Safety
/// `b` must be null or a live handle; `index` null or valid for a write;
/// `action` null or a function that may be called once with `ctx` and
/// returns (it must not unwind).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_wait_action(
    b: *const shmprim_barrier,
    timeout_ns: i64,
    index: *mut usize,
    action: Option<unsafe extern "C" fn(ctx: *mut c_void)>,
    ctx: *mut c_void,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let b = unsafe { handle(b, "barrier") }?;
        let deadline = super::deadline_from_c(timeout_ns);
        let i = check(super::waiting(
            || {
                b.inner.wait_with_action(deadline, || {
                    if let Some(action) = action {
                        // SAFETY: the caller gives a function to call with `ctx`.
                        unsafe { action(ctx) }
                    }
                })
            },
            |r| r.is_err(),
        ))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(index, i) };
        Ok(())
    })
}

/// Breaks the barrier: waiters and later waits get `SHMPRIM_BROKEN_BARRIER`
/// until `shmprim_barrier_reset`. Does not block. Returns `SHMPRIM_OK` or
/// `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `b` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_abort(b: *const shmprim_barrier) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        unsafe { handle(b, "barrier") }?.inner.abort();
        Ok(())
    })
}

/// Returns the barrier to its empty state; parties waiting get
/// `SHMPRIM_BROKEN_BARRIER`. Does not block. Returns `SHMPRIM_OK` or
/// `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `b` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_reset(b: *const shmprim_barrier) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        unsafe { handle(b, "barrier") }?.inner.reset();
        Ok(())
    })
}

/// Writes the number of parties (`*parties`), the parties waiting now
/// (`*n_waiting`) and whether the barrier is broken (`*broken`); each out
/// pointer may be `NULL`. Does not block. Returns `SHMPRIM_OK` or
/// `SHMPRIM_NULL_POINTER` (null handle).
///
/// # Safety
/// `b` must be null or a live handle; each out pointer null or valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_info(
    b: *const shmprim_barrier,
    parties: *mut u32,
    n_waiting: *mut u32,
    broken: *mut bool,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let b = unsafe { handle(b, "barrier") }?;
        // SAFETY: each is null or valid for a write, by the contract.
        unsafe {
            write_opt(parties, b.inner.parties());
            write_opt(n_waiting, b.inner.n_waiting());
            write_opt(broken, b.inner.is_broken());
        }
        Ok(())
    })
}

// ------------------------------------------------------------------ in place

/// Writes a fresh barrier for `parties` parties at `mem`
/// (`SHMPRIM_BARRIER_SIZE` bytes aligned to `SHMPRIM_BARRIER_ALIGN`), as
/// `pthread_barrier_init` does. Does not block. Returns `SHMPRIM_OK`,
/// `SHMPRIM_NULL_POINTER` or `SHMPRIM_INVALID_ARGUMENT` (misaligned, parties
/// out of range).
///
/// # Safety
/// `mem` must be null or valid for writes of `SHMPRIM_BARRIER_SIZE` bytes and
/// not in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_init(mem: *mut c_void, parties: u32) -> shmprim_status {
    boundary(|| {
        let p = aligned::<BarrierState>(mem, "mem")?;
        // SAFETY: non-null and aligned; valid and unused by the contract.
        check(unsafe { BarrierState::init(p, parties) })
    })
}

/// `shmprim_barrier_wait` on an in-place barrier.
///
/// # Safety
/// `mem` must be null or a barrier made by `shmprim_barrier_init`, mapped;
/// `index` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_wait_at(
    mem: *mut c_void,
    timeout_ns: i64,
    index: *mut usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised barrier, by the contract.
        let b = unsafe { at::<BarrierState>(mem, "mem") }?;
        let i = check(b.wait(super::deadline_from_c(timeout_ns)))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(index, i) };
        Ok(())
    })
}

/// `shmprim_barrier_abort` on an in-place barrier.
///
/// # Safety
/// `mem` must be null or a barrier made by `shmprim_barrier_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_abort_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised barrier, by the contract.
        unsafe { at::<BarrierState>(mem, "mem") }?.abort();
        Ok(())
    })
}

/// `shmprim_barrier_reset` on an in-place barrier.
///
/// # Safety
/// `mem` must be null or a barrier made by `shmprim_barrier_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_reset_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised barrier, by the contract.
        unsafe { at::<BarrierState>(mem, "mem") }?.reset();
        Ok(())
    })
}

/// Writes whether an in-place barrier is broken to `*broken`. Returns
/// `SHMPRIM_OK` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `mem` must be null or a barrier made by `shmprim_barrier_init`, mapped;
/// `broken` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_barrier_is_broken_at(
    mem: *mut c_void,
    broken: *mut bool,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or an initialised barrier, by the contract.
        let b = unsafe { at::<BarrierState>(mem, "mem") }?;
        non_null(broken, "broken")?;
        // SAFETY: non-null, so valid for a write by the contract.
        unsafe { broken.write(b.is_broken()) };
        Ok(())
    })
}
