//! C functions for SPSC rings of fixed-size elements (`shmprim_spsc_*`): the
//! same object as a Rust [`SpscRing<T>`](shmprim::ring::spsc::SpscRing) whose
//! `T` has the element size and alignment. A `shmprim_spsc` handle opens the
//! ring; one process (or thread) then claims the producer end
//! (`shmprim_spsc_claim_producer`) and one the consumer end
//! (`shmprim_spsc_claim_consumer`). An end held by a live process cannot be
//! claimed again until it is closed or its process dies.
//!
//! Closing the producer end (or its process dying) makes the consumer drain
//! what was pushed, then report `SHMPRIM_CLOSED`; closing the consumer end
//! makes pushes report `SHMPRIM_CLOSED` once the ring is full.
//!
//! Timeouts: negative waits forever; `0` tries once and reports
//! `SHMPRIM_FULL` / `SHMPRIM_EMPTY`; a positive timeout that passes reports
//! `SHMPRIM_TIMEOUT`. The batch forms never wait. A try (`0`) and the batch
//! forms are the fast path for busy-polling: no clock read, no fence, no
//! allocation; they wake a peer asleep in a waiting call by the waiter count
//! alone, which can miss a peer going to sleep at that very instant; that
//! peer then wakes at its next re-check (at most 50 ms), never hangs. A
//! waiting call (timeout not 0) wakes a sleeping peer without fail.

use std::ffi::{c_char, c_void};

use super::pipe::{bytes, bytes_mut};
use super::{
    boundary, buffer_too_small, c_str, check, fail_with, free, handle, handle_mut, non_null,
    options, put, shmprim_options, shmprim_status, timed, tried, unlink_name, write_opt,
    wrong_elem_size,
};
use shmprim::ring::spsc::raw::{RawConsumer, RawProducer, RawSpscRing};
use shmprim::segment::Disposition;
use shmprim::wait::is_timeout;

/// An open named (or anonymous) SPSC ring of fixed-size elements, from which
/// the two ends are claimed. Opaque; free it with `shmprim_spsc_close`. The
/// handle may be shared between threads.
pub struct shmprim_spsc {
    inner: RawSpscRing,
}

/// The claimed producer end of an SPSC ring. Opaque; close it with
/// `shmprim_spsc_producer_close`. Use it from one thread at a time.
pub struct shmprim_spsc_producer {
    inner: RawProducer,
}

/// The claimed consumer end of an SPSC ring. Opaque; close it with
/// `shmprim_spsc_consumer_close`. Use it from one thread at a time.
pub struct shmprim_spsc_consumer {
    inner: RawConsumer,
}

/// `count` elements of `unit` bytes, in bytes; `SHMPRIM_INVALID_ARGUMENT` on
/// overflow.
fn span(count: usize, unit: usize) -> Result<usize, shmprim_status> {
    count.checked_mul(unit).ok_or_else(|| {
        fail_with(
            shmprim_status::SHMPRIM_INVALID_ARGUMENT,
            &format!("{count} elements of {unit} bytes overflow"),
        )
    })
}

/// Creates the named ring of `capacity` elements (rounded up to a power of
/// two, at most 2^30) of `elem_size` bytes aligned to `elem_align` (a power
/// of two up to 128 dividing `elem_size`); a Rust `SpscRing<T>` with that size
/// and alignment opens it. `opts` may be `NULL`. Does not block. Returns
/// `SHMPRIM_OK` (a new handle in `*out`, owned by the caller, freed with
/// `shmprim_spsc_close`), `SHMPRIM_ALREADY_EXISTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_INVALID_ARGUMENT` (sizes, alignment, flags),
/// `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_create(
    name: *const c_char,
    capacity: usize,
    elem_size: usize,
    elem_align: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_spsc,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, 0) }?;
        let inner = check(RawSpscRing::create(
            name, capacity, elem_size, elem_align, &opts,
        ))?;
        put(out, shmprim_spsc { inner })
    })
}

/// Opens the existing ring `name`, whatever its element type (see
/// `shmprim_spsc_elem_size`). Returns `SHMPRIM_OK` (a new handle in `*out`,
/// owned by the caller), `SHMPRIM_NOT_FOUND`, `SHMPRIM_INCOMPATIBLE` (another
/// kind of object), `SHMPRIM_CORRUPTED`, `SHMPRIM_TOO_MANY_PARTICIPANTS`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_NULL_POINTER` or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_open(
    name: *const c_char,
    out: *mut *mut shmprim_spsc,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let inner = check(RawSpscRing::open(name))?;
        put(out, shmprim_spsc { inner })
    })
}

/// Opens the ring `name` (which must have `capacity` slots as rounded at
/// creation, and elements of `elem_size` bytes aligned to `elem_align`), or
/// creates it; exactly one of several racing callers creates it. `created`
/// (may be `NULL`) receives whether this call did. Statuses and ownership as
/// for `shmprim_spsc_create` and `shmprim_spsc_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write; `created`
/// null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_open_or_create(
    name: *const c_char,
    capacity: usize,
    elem_size: usize,
    elem_align: usize,
    out: *mut *mut shmprim_spsc,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (inner, how) = check(RawSpscRing::open_or_create(
            name, capacity, elem_size, elem_align,
        ))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == Disposition::Created) };
        put(out, shmprim_spsc { inner })
    })
}

/// Creates an anonymous ring (no name), shared with children forked after
/// this call. Statuses and ownership as for `shmprim_spsc_create`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_anonymous(
    capacity: usize,
    elem_size: usize,
    elem_align: usize,
    out: *mut *mut shmprim_spsc,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let inner = check(RawSpscRing::anonymous(capacity, elem_size, elem_align))?;
        put(out, shmprim_spsc { inner })
    })
}

/// Closes a ring handle (null is ignored); ends claimed from it stay valid
/// until closed themselves, and the ring remains until unlinked.
///
/// # Safety
/// `r` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_close(r: *mut shmprim_spsc) {
    // SAFETY: forwarded contract.
    unsafe { free(r) }
}

/// Removes the name `name` if it is a shmprim ring; processes that have it open
/// keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`, `SHMPRIM_NOT_SHMPRIM`
/// (a file of another program: left alone), `SHMPRIM_INCOMPATIBLE` (another
/// kind of shmprim object: left alone), `SHMPRIM_INVALID_NAME` or
/// `SHMPRIM_NULL_POINTER`. Another process can replace the file between the
/// check and the removal.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::SpscRing)) }
}

/// Size in bytes of one element; 0 for a null handle.
///
/// # Safety
/// `r` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_elem_size(r: *const shmprim_spsc) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { r.as_ref() }.map_or(0, |r| r.inner.elem_size())
}

/// Number of slots (the capacity asked for, rounded up to a power of two); 0
/// for a null handle.
///
/// # Safety
/// `r` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_capacity(r: *const shmprim_spsc) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { r.as_ref() }.map_or(0, |r| r.inner.capacity())
}

/// Claims the producer end for this process. Does not block. Returns
/// `SHMPRIM_OK` (a new end in `*out`, owned by the caller, closed with
/// `shmprim_spsc_producer_close`), `SHMPRIM_INVALID_ARGUMENT` (a live process
/// holds the end), `SHMPRIM_CORRUPTED` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `r` must be null or a live handle; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_claim_producer(
    r: *const shmprim_spsc,
    out: *mut *mut shmprim_spsc_producer,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: null or live, by the contract.
        let r = unsafe { handle(r, "ring") }?;
        let inner = check(r.inner.producer())?;
        put(out, shmprim_spsc_producer { inner })
    })
}

/// Claims the consumer end for this process; as
/// `shmprim_spsc_claim_producer`, closed with `shmprim_spsc_consumer_close`.
///
/// # Safety
/// `r` must be null or a live handle; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_claim_consumer(
    r: *const shmprim_spsc,
    out: *mut *mut shmprim_spsc_consumer,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: null or live, by the contract.
        let r = unsafe { handle(r, "ring") }?;
        let inner = check(r.inner.consumer())?;
        put(out, shmprim_spsc_consumer { inner })
    })
}

/// Closes the producer end (null is ignored): the consumer receives what was
/// pushed, then `SHMPRIM_CLOSED`. The end may then be claimed again.
///
/// # Safety
/// `p` must be null or an end not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_producer_close(p: *mut shmprim_spsc_producer) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// Closes the consumer end (null is ignored): pushes report `SHMPRIM_CLOSED`
/// once the ring is full. The end may then be claimed again.
///
/// # Safety
/// `c` must be null or an end not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_consumer_close(c: *mut shmprim_spsc_consumer) {
    // SAFETY: forwarded contract.
    unsafe { free(c) }
}

/// Pushes the element at `elem` (`size` must be the element size), waiting
/// up to `timeout_ns` for room (negative: forever; `0`: try once). Returns
/// `SHMPRIM_OK`, `SHMPRIM_FULL` (`0` and no room), `SHMPRIM_TIMEOUT`,
/// `SHMPRIM_CLOSED` (the consumer end was closed, or its process died),
/// `SHMPRIM_INVALID_ARGUMENT` (wrong size), `SHMPRIM_CORRUPTED` or
/// `SHMPRIM_NULL_POINTER`. The bytes are copied.
///
/// # Safety
/// `p` must be null or a live end used by this thread alone; `elem` null or
/// readable for `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_push(
    p: *mut shmprim_spsc_producer,
    elem: *const c_void,
    size: usize,
    timeout_ns: i64,
) -> shmprim_status {
    // The try of a polling loop stays small and inline; the waiting form, with
    // its clock and its sleeps, is out of line.
    if timeout_ns != 0 {
        // SAFETY: forwarded contract.
        return unsafe { push_waiting(p, elem, size, timeout_ns) };
    }
    boundary(|| {
        // SAFETY: as in `push_waiting`.
        let (p, elem) = unsafe { push_args(p, elem, size) }?;
        tried(p.inner.try_push(elem), |t| p.inner.error(t))
    })
}

/// `shmprim_spsc_push` with a timeout other than 0.
///
/// # Safety
/// As for `shmprim_spsc_push`.
#[inline(never)]
unsafe fn push_waiting(
    p: *mut shmprim_spsc_producer,
    elem: *const c_void,
    size: usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: forwarded contract.
        let (p, elem) = unsafe { push_args(p, elem, size) }?;
        check(timed(timeout_ns, |d| p.inner.push(elem, d), is_timeout))
    })
}

/// The checked arguments of `shmprim_spsc_push`: the end and the element.
///
/// # Safety
/// As for `shmprim_spsc_push`.
#[inline(always)]
unsafe fn push_args<'a>(
    p: *mut shmprim_spsc_producer,
    elem: *const c_void,
    size: usize,
) -> Result<(&'a mut shmprim_spsc_producer, &'a [u8]), shmprim_status> {
    // SAFETY: null or live and unshared, by the contract.
    let p = unsafe { handle_mut(p, "producer") }?;
    let unit = p.inner.elem_size();
    if size != unit {
        return Err(wrong_elem_size(size, unit, "ring"));
    }
    non_null(elem, "elem")?;
    // SAFETY: non-null and readable for `size` bytes, by the contract.
    let elem = unsafe { bytes(elem, size, "elem") }?;
    Ok((p, elem))
}

/// Pushes as many of the `count` elements at `elems` as there is room for,
/// in order, publishing them at once, without waiting; writes how many to
/// `*pushed` (0 when the ring is full). Returns `SHMPRIM_OK`,
/// `SHMPRIM_CLOSED` (the consumer end was closed and the ring looks full;
/// nothing pushed), `SHMPRIM_INVALID_ARGUMENT` (`count` elements overflow),
/// `SHMPRIM_CORRUPTED` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `p` must be null or a live end used by this thread alone; `elems` null or
/// readable for `count` elements; `pushed` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_push_many(
    p: *mut shmprim_spsc_producer,
    elems: *const c_void,
    count: usize,
    pushed: *mut usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live and unshared, by the contract.
        let p = unsafe { handle_mut(p, "producer") }?;
        non_null(pushed, "pushed")?;
        let len = span(count, p.inner.elem_size())?;
        // SAFETY: null or readable for `count` elements, by the contract.
        let src = unsafe { bytes(elems, len, "elems") }?;
        let n = tried(p.inner.try_push_many(src, count), |t| p.inner.error(t))?;
        // SAFETY: non-null, so valid for a write by the contract.
        unsafe { pushed.write(n) };
        Ok(())
    })
}

/// Takes the oldest element into `out` (`size` bytes, at least the element
/// size), waiting up to `timeout_ns` (negative: forever; `0`: try once).
/// Returns `SHMPRIM_OK`, `SHMPRIM_EMPTY` (`0` and none), `SHMPRIM_TIMEOUT`,
/// `SHMPRIM_CLOSED` (the producer end was closed or its process died, and
/// everything it pushed was taken), `SHMPRIM_BUFFER_TOO_SMALL` (`size` is
/// under the element size, written to `*needed` if not `NULL`; nothing is
/// taken), `SHMPRIM_CORRUPTED` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `c` must be null or a live end used by this thread alone; `out` null or
/// writable for `size` bytes; `needed` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_pop(
    c: *mut shmprim_spsc_consumer,
    out: *mut c_void,
    size: usize,
    needed: *mut usize,
    timeout_ns: i64,
) -> shmprim_status {
    // As in `shmprim_spsc_push`: the try inline, the wait out of line.
    if timeout_ns != 0 {
        // SAFETY: forwarded contract.
        return unsafe { pop_waiting(c, out, size, needed, timeout_ns) };
    }
    boundary(|| {
        // SAFETY: as in `pop_waiting`.
        let (c, buf) = unsafe { pop_args(c, out, size, needed) }?;
        tried(c.inner.try_pop(buf), |t| c.inner.error(t))
    })
}

/// `shmprim_spsc_pop` with a timeout other than 0.
///
/// # Safety
/// As for `shmprim_spsc_pop`.
#[inline(never)]
unsafe fn pop_waiting(
    c: *mut shmprim_spsc_consumer,
    out: *mut c_void,
    size: usize,
    needed: *mut usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: forwarded contract.
        let (c, buf) = unsafe { pop_args(c, out, size, needed) }?;
        check(timed(timeout_ns, |d| c.inner.pop(buf, d), is_timeout))
    })
}

/// The checked arguments of `shmprim_spsc_pop`: the end and the buffer.
///
/// # Safety
/// As for `shmprim_spsc_pop`.
#[inline(always)]
unsafe fn pop_args<'a>(
    c: *mut shmprim_spsc_consumer,
    out: *mut c_void,
    size: usize,
    needed: *mut usize,
) -> Result<(&'a mut shmprim_spsc_consumer, &'a mut [u8]), shmprim_status> {
    // SAFETY: null or live and unshared, by the contract.
    let c = unsafe { handle_mut(c, "consumer") }?;
    let unit = c.inner.elem_size();
    if size < unit {
        // SAFETY: null or valid for a write, by the contract.
        return Err(unsafe { buffer_too_small(needed, size, unit) });
    }
    non_null(out, "out")?;
    // SAFETY: non-null and writable for `size` bytes, by the contract.
    let buf = unsafe { bytes_mut(out, size, "out") }?;
    Ok((c, buf))
}

/// Takes up to `max_count` of the oldest elements into `out`, in order,
/// without waiting; writes how many to `*popped`. Returns `SHMPRIM_OK` (at
/// least one taken, or `max_count` is 0), `SHMPRIM_EMPTY` (none queued),
/// `SHMPRIM_CLOSED` (none queued, and the producer end was closed or its
/// process died), `SHMPRIM_INVALID_ARGUMENT` (`max_count` elements
/// overflow), `SHMPRIM_CORRUPTED` or `SHMPRIM_NULL_POINTER`. `*popped` is 0
/// unless `SHMPRIM_OK`.
///
/// # Safety
/// `c` must be null or a live end used by this thread alone; `out` null or
/// writable for `max_count` elements; `popped` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_spsc_pop_many(
    c: *mut shmprim_spsc_consumer,
    out: *mut c_void,
    max_count: usize,
    popped: *mut usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live and unshared, by the contract.
        let c = unsafe { handle_mut(c, "consumer") }?;
        non_null(popped, "popped")?;
        // SAFETY: non-null, so valid for a write by the contract.
        unsafe { popped.write(0) };
        if max_count == 0 {
            return Ok(());
        }
        let len = span(max_count, c.inner.elem_size())?;
        // SAFETY: null or writable for `max_count` elements, by the contract.
        let buf = unsafe { bytes_mut(out, len, "out") }?;
        let n = tried(c.inner.try_pop_many(buf, max_count), |t| c.inner.error(t))?;
        // SAFETY: as above.
        unsafe { popped.write(n) };
        Ok(())
    })
}
