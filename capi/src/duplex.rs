//! C functions for duplex rings (`shmprim_duplex_*`): the same object as a
//! Rust [`DuplexRing<T>`](shmprim::ring::duplex::DuplexRing) whose `T` has the
//! element size and alignment. Two SPSC rings, one per direction, whose slots
//! share cache lines: the fastest request-and-reply channel between two
//! processes. A `shmprim_duplex` handle opens the ring; one process takes end A
//! (`shmprim_duplex_end_a`) and one end B (`shmprim_duplex_end_b`). An end held
//! by a live process cannot be taken again until it is closed or its process
//! dies.
//!
//! Closing an end (or its process dying) makes the peer receive what was sent
//! before, then `SHMPRIM_CLOSED`; the peer's sends report `SHMPRIM_CLOSED`
//! once its ring is full, or at the latest on the 256th send after the close.
//!
//! Timeouts: negative waits forever; `0` tries once and reports
//! `SHMPRIM_FULL` / `SHMPRIM_EMPTY` (a busy-polling loop: no clock read, no
//! allocation); a positive timeout that passes reports `SHMPRIM_TIMEOUT`.

use std::ffi::{c_char, c_void};

use super::pipe::{bytes, bytes_mut};
use super::{
    boundary, buffer_too_small, c_str, check, free, handle, handle_mut, non_null, options, put,
    shmprim_options, shmprim_status, timed, tried, unlink_name, write_opt, wrong_elem_size,
};
use shmprim::pipe::End;
use shmprim::ring::duplex::{RawDuplexEnd, RawDuplexRing};
use shmprim::segment::Disposition;
use shmprim::wait::is_timeout;

/// An open named (or anonymous) duplex ring, from which the two ends are
/// taken. Opaque; free it with `shmprim_duplex_close`. The handle may be
/// shared between threads.
pub struct shmprim_duplex {
    inner: RawDuplexRing,
}

/// One end of a duplex ring: sends to the other end and receives from it.
/// Opaque; close it with `shmprim_duplex_end_close`. Use it from one thread
/// at a time.
pub struct shmprim_duplex_end {
    inner: RawDuplexEnd,
}

/// Creates the named duplex ring of `capacity` elements each way (rounded up
/// to a power of two, at most 2^30) of `elem_size` bytes aligned to
/// `elem_align` (a power of two up to 128 dividing `elem_size`); a Rust
/// `DuplexRing<T>` with that size and alignment opens it. `opts` may be
/// `NULL`. Does not block. Returns `SHMPRIM_OK` (a new handle in `*out`, owned
/// by the caller, freed with `shmprim_duplex_close`), `SHMPRIM_ALREADY_EXISTS`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_INVALID_ARGUMENT` (sizes, alignment,
/// flags), `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_create(
    name: *const c_char,
    capacity: usize,
    elem_size: usize,
    elem_align: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_duplex,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, 0) }?;
        let inner = check(RawDuplexRing::create(
            name, capacity, elem_size, elem_align, &opts,
        ))?;
        put(out, shmprim_duplex { inner })
    })
}

/// Opens the existing duplex ring `name`, whatever its element type (see
/// `shmprim_duplex_elem_size`). Returns `SHMPRIM_OK` (a new handle in `*out`,
/// owned by the caller), `SHMPRIM_NOT_FOUND`, `SHMPRIM_INCOMPATIBLE` (another
/// kind of object), `SHMPRIM_CORRUPTED`, `SHMPRIM_TOO_MANY_PARTICIPANTS`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_NULL_POINTER` or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_open(
    name: *const c_char,
    out: *mut *mut shmprim_duplex,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let inner = check(RawDuplexRing::open(name))?;
        put(out, shmprim_duplex { inner })
    })
}

/// Opens the duplex ring `name` (which must have `capacity` elements each way
/// as rounded at creation, of `elem_size` bytes aligned to `elem_align`), or
/// creates it; exactly one of several racing callers creates it. `created`
/// (may be `NULL`) receives whether this call did. Statuses and ownership as
/// for `shmprim_duplex_create` and `shmprim_duplex_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write; `created`
/// null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_open_or_create(
    name: *const c_char,
    capacity: usize,
    elem_size: usize,
    elem_align: usize,
    out: *mut *mut shmprim_duplex,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (inner, how) = check(RawDuplexRing::open_or_create(
            name, capacity, elem_size, elem_align,
        ))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == Disposition::Created) };
        put(out, shmprim_duplex { inner })
    })
}

/// Creates an anonymous duplex ring (no name), shared with children forked
/// after this call. Statuses and ownership as for `shmprim_duplex_create`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_anonymous(
    capacity: usize,
    elem_size: usize,
    elem_align: usize,
    out: *mut *mut shmprim_duplex,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let inner = check(RawDuplexRing::anonymous(capacity, elem_size, elem_align))?;
        put(out, shmprim_duplex { inner })
    })
}

/// Closes a ring handle (null is ignored); ends taken from it stay valid
/// until closed themselves, and the ring remains until unlinked.
///
/// # Safety
/// `d` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_close(d: *mut shmprim_duplex) {
    // SAFETY: forwarded contract.
    unsafe { free(d) }
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
pub unsafe extern "C" fn shmprim_duplex_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::Duplex)) }
}

/// Size in bytes of one element; 0 for a null handle.
///
/// # Safety
/// `d` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_elem_size(d: *const shmprim_duplex) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { d.as_ref() }.map_or(0, |d| d.inner.elem_size())
}

/// Elements each direction holds (the capacity asked for, rounded up to a
/// power of two); 0 for a null handle.
///
/// # Safety
/// `d` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_capacity(d: *const shmprim_duplex) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { d.as_ref() }.map_or(0, |d| d.inner.capacity())
}

/// Takes `end` of the ring for this process.
///
/// # Safety
/// As for `shmprim_duplex_end_a`.
unsafe fn take_end(
    d: *const shmprim_duplex,
    end: End,
    out: *mut *mut shmprim_duplex_end,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: null or live, by the contract.
        let d = unsafe { handle(d, "ring") }?;
        let inner = check(d.inner.end(end))?;
        put(out, shmprim_duplex_end { inner })
    })
}

/// Takes end A for this process. Does not block. Returns `SHMPRIM_OK` (a new
/// end in `*out`, owned by the caller, closed with
/// `shmprim_duplex_end_close`), `SHMPRIM_INVALID_ARGUMENT` (a live process
/// holds the end), `SHMPRIM_CORRUPTED` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `d` must be null or a live handle; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_end_a(
    d: *const shmprim_duplex,
    out: *mut *mut shmprim_duplex_end,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { take_end(d, End::A, out) }
}

/// Takes end B for this process; as `shmprim_duplex_end_a`.
///
/// # Safety
/// `d` must be null or a live handle; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_end_b(
    d: *const shmprim_duplex,
    out: *mut *mut shmprim_duplex_end,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { take_end(d, End::B, out) }
}

/// Closes an end (null is ignored): the peer receives what was sent, then
/// `SHMPRIM_CLOSED`. The end may then be taken again.
///
/// # Safety
/// `e` must be null or an end not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_end_close(e: *mut shmprim_duplex_end) {
    // SAFETY: forwarded contract.
    unsafe { free(e) }
}

/// Sends the element at `elem` (`size` must be the element size) to the
/// other end, waiting up to `timeout_ns` for room (negative: forever; `0`:
/// try once). Returns `SHMPRIM_OK`, `SHMPRIM_FULL` (`0` and no room),
/// `SHMPRIM_TIMEOUT`, `SHMPRIM_CLOSED` (the other end was closed, or its
/// process died), `SHMPRIM_INVALID_ARGUMENT` (wrong size),
/// `SHMPRIM_CORRUPTED` or `SHMPRIM_NULL_POINTER`. The bytes are copied.
///
/// # Safety
/// `e` must be null or a live end used by this thread alone; `elem` null or
/// readable for `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_send(
    e: *mut shmprim_duplex_end,
    elem: *const c_void,
    size: usize,
    timeout_ns: i64,
) -> shmprim_status {
    // The try of a polling loop inline, the wait out of line.
    if timeout_ns != 0 {
        // SAFETY: forwarded contract.
        return unsafe { send_waiting(e, elem, size, timeout_ns) };
    }
    boundary(|| {
        // SAFETY: forwarded contract.
        let (e, elem) = unsafe { send_args(e, elem, size) }?;
        let r = e.inner.try_send(elem);
        tried(r, |t| e.inner.error(t))
    })
}

/// `shmprim_duplex_send` with a timeout other than 0.
///
/// # Safety
/// As for `shmprim_duplex_send`.
#[inline(never)]
unsafe fn send_waiting(
    e: *mut shmprim_duplex_end,
    elem: *const c_void,
    size: usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: forwarded contract.
        let (e, elem) = unsafe { send_args(e, elem, size) }?;
        check(timed(timeout_ns, |d| e.inner.send(elem, d), is_timeout))
    })
}

/// The checked arguments of `shmprim_duplex_send`.
///
/// # Safety
/// As for `shmprim_duplex_send`.
#[inline(always)]
unsafe fn send_args<'a>(
    e: *mut shmprim_duplex_end,
    elem: *const c_void,
    size: usize,
) -> Result<(&'a mut shmprim_duplex_end, &'a [u8]), shmprim_status> {
    // SAFETY: null or live and unshared, by the contract.
    let e = unsafe { handle_mut(e, "end") }?;
    let unit = e.inner.elem_size();
    if size != unit {
        return Err(wrong_elem_size(size, unit, "duplex ring"));
    }
    non_null(elem, "elem")?;
    // SAFETY: non-null and readable for `size` bytes, by the contract.
    let elem = unsafe { bytes(elem, size, "elem") }?;
    Ok((e, elem))
}

/// Receives the oldest element from the other end into `out` (`size` bytes,
/// at least the element size), waiting up to `timeout_ns` (negative:
/// forever; `0`: try once). Returns `SHMPRIM_OK`, `SHMPRIM_EMPTY` (`0` and
/// none), `SHMPRIM_TIMEOUT`, `SHMPRIM_CLOSED` (the other end was closed or its
/// process died, and everything it sent was received),
/// `SHMPRIM_BUFFER_TOO_SMALL` (`size` is under the element size, written to
/// `*needed` if not `NULL`; nothing is taken), `SHMPRIM_CORRUPTED` or
/// `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `e` must be null or a live end used by this thread alone; `out` null or
/// writable for `size` bytes; `needed` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_duplex_recv(
    e: *mut shmprim_duplex_end,
    out: *mut c_void,
    size: usize,
    needed: *mut usize,
    timeout_ns: i64,
) -> shmprim_status {
    if timeout_ns != 0 {
        // SAFETY: forwarded contract.
        return unsafe { recv_waiting(e, out, size, needed, timeout_ns) };
    }
    boundary(|| {
        // SAFETY: forwarded contract.
        let (e, buf) = unsafe { recv_args(e, out, size, needed) }?;
        let r = e.inner.try_recv(buf);
        tried(r, |t| e.inner.error(t))
    })
}

/// `shmprim_duplex_recv` with a timeout other than 0.
///
/// # Safety
/// As for `shmprim_duplex_recv`.
#[inline(never)]
unsafe fn recv_waiting(
    e: *mut shmprim_duplex_end,
    out: *mut c_void,
    size: usize,
    needed: *mut usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: forwarded contract.
        let (e, buf) = unsafe { recv_args(e, out, size, needed) }?;
        check(timed(timeout_ns, |d| e.inner.recv(buf, d), is_timeout))
    })
}

/// The checked arguments of `shmprim_duplex_recv`: the end and the first
/// element-size bytes of the buffer.
///
/// # Safety
/// As for `shmprim_duplex_recv`.
#[inline(always)]
unsafe fn recv_args<'a>(
    e: *mut shmprim_duplex_end,
    out: *mut c_void,
    size: usize,
    needed: *mut usize,
) -> Result<(&'a mut shmprim_duplex_end, &'a mut [u8]), shmprim_status> {
    // SAFETY: null or live and unshared, by the contract.
    let e = unsafe { handle_mut(e, "end") }?;
    let unit = e.inner.elem_size();
    if size < unit {
        // SAFETY: null or valid for a write, by the contract.
        return Err(unsafe { buffer_too_small(needed, size, unit) });
    }
    non_null(out, "out")?;
    // SAFETY: non-null and writable for `unit <= size` bytes, by the contract.
    let buf = unsafe { bytes_mut(out, unit, "out") }?;
    Ok((e, buf))
}

#[cfg(all(test, not(shmprim_loom)))]
mod tests {
    use super::super::shmprim_queue_unlink;
    use super::*;
    use shmprim_status::*;
    use std::ptr::{null, null_mut};

    /// Through the C functions: geometry checks, one claim per end, the try
    /// answers, sizes, and end-of-file once the peer closes.
    #[test]
    fn the_c_calls_take_ends_send_receive_and_report_each_status() {
        // SAFETY: every pointer passed is null, a local, or a handle these
        // calls returned and that is closed exactly once.
        unsafe {
            let mut d = null_mut();
            assert_eq!(
                shmprim_duplex_anonymous(4, 12, 8, &mut d),
                SHMPRIM_INVALID_ARGUMENT
            );
            assert_eq!(
                shmprim_duplex_anonymous(4, 0, 1, &mut d),
                SHMPRIM_INVALID_ARGUMENT
            );
            assert_eq!(
                shmprim_duplex_anonymous(0, 8, 8, &mut d),
                SHMPRIM_INVALID_ARGUMENT
            );
            assert_eq!(
                shmprim_duplex_anonymous(4, 8, 8, null_mut()),
                SHMPRIM_NULL_POINTER
            );
            assert_eq!(shmprim_duplex_anonymous(3, 8, 8, &mut d), SHMPRIM_OK);
            assert_eq!(shmprim_duplex_capacity(d), 4, "3 rounded up");
            assert_eq!(shmprim_duplex_elem_size(d), 8);
            assert_eq!(shmprim_duplex_elem_size(null()), 0);
            let (mut a, mut b, mut again) = (null_mut(), null_mut(), null_mut());
            assert_eq!(shmprim_duplex_end_a(null(), &mut a), SHMPRIM_NULL_POINTER);
            assert_eq!(shmprim_duplex_end_a(d, &mut a), SHMPRIM_OK);
            assert_eq!(
                shmprim_duplex_end_a(d, &mut again),
                SHMPRIM_INVALID_ARGUMENT
            );
            assert_eq!(shmprim_duplex_end_b(d, &mut b), SHMPRIM_OK);

            let send = |e, v: u64, t| shmprim_duplex_send(e, (&raw const v).cast(), 8, t);
            let recv = |e, v: &mut u64, t| {
                shmprim_duplex_recv(e, (v as *mut u64).cast(), 8, null_mut(), t)
            };
            let mut v = 0u64;
            assert_eq!(recv(b, &mut v, 0), SHMPRIM_EMPTY);
            assert_eq!(recv(b, &mut v, 1_000_000), SHMPRIM_TIMEOUT);
            let narrow = 5u32;
            assert_eq!(
                shmprim_duplex_send(a, (&raw const narrow).cast(), 4, 0),
                SHMPRIM_INVALID_ARGUMENT
            );
            assert_eq!(shmprim_duplex_send(a, null(), 8, 0), SHMPRIM_NULL_POINTER);
            assert_eq!(send(null_mut(), 1, 0), SHMPRIM_NULL_POINTER);
            for k in 1..=4 {
                assert_eq!(send(a, k, 0), SHMPRIM_OK);
            }
            assert_eq!(send(a, 5, 0), SHMPRIM_FULL);
            assert_eq!(send(a, 5, 1_000_000), SHMPRIM_TIMEOUT);
            // A buffer too small: nothing taken, the size needed reported.
            let (mut small, mut needed) = (0u32, 0usize);
            assert_eq!(
                shmprim_duplex_recv(b, (&raw mut small).cast(), 4, &mut needed, 0),
                SHMPRIM_BUFFER_TOO_SMALL
            );
            assert_eq!(needed, 8);
            assert_eq!(
                shmprim_duplex_recv(b, null_mut(), 8, null_mut(), 0),
                SHMPRIM_NULL_POINTER
            );
            // A larger buffer is fine: the element fills its start.
            let mut wide = [0u64; 2];
            assert_eq!(
                shmprim_duplex_recv(b, wide.as_mut_ptr().cast(), 16, null_mut(), -1),
                SHMPRIM_OK
            );
            assert_eq!(wide, [1, 0]);
            for k in 2..=4 {
                assert_eq!(recv(b, &mut v, 0), SHMPRIM_OK);
                assert_eq!(v, k);
            }
            // The other direction, waiting.
            assert_eq!(send(b, 42, -1), SHMPRIM_OK);
            assert_eq!(recv(a, &mut v, -1), SHMPRIM_OK);
            assert_eq!(v, 42);
            // End A sends one more, then closes: B takes it, then end-of-file.
            assert_eq!(send(a, 7, 0), SHMPRIM_OK);
            shmprim_duplex_end_close(a);
            assert_eq!(recv(b, &mut v, -1), SHMPRIM_OK);
            assert_eq!(v, 7);
            assert_eq!(recv(b, &mut v, -1), SHMPRIM_CLOSED);
            // End A may be taken again once closed.
            assert_eq!(shmprim_duplex_end_a(d, &mut a), SHMPRIM_OK);
            shmprim_duplex_end_close(a);
            shmprim_duplex_end_close(b);
            shmprim_duplex_close(d);
        }
    }

    /// A named ring opened through C by name, and another kind of object
    /// under a duplex ring's name.
    #[test]
    fn open_finds_the_named_ring_and_refuses_another_kind() {
        let name =
            std::ffi::CString::new(format!("shmprim-ffi-duplex-{}", std::process::id())).unwrap();
        // SAFETY: as above.
        unsafe {
            let (mut d, mut d2) = (null_mut(), null_mut());
            let mut created = false;
            assert_eq!(
                shmprim_duplex_open_or_create(name.as_ptr(), 16, 4, 4, &mut d, &mut created),
                SHMPRIM_OK
            );
            assert!(created);
            assert_eq!(shmprim_duplex_open(name.as_ptr(), &mut d2), SHMPRIM_OK);
            assert_eq!(shmprim_duplex_elem_size(d2), 4);
            assert_eq!(shmprim_duplex_capacity(d2), 16);
            shmprim_duplex_close(d2);
            assert_eq!(
                shmprim_duplex_open_or_create(name.as_ptr(), 16, 4, 4, &mut d2, &mut created),
                SHMPRIM_OK
            );
            assert!(!created);
            shmprim_duplex_close(d2);
            shmprim_duplex_close(d);
            assert_eq!(shmprim_duplex_unlink(name.as_ptr()), SHMPRIM_OK);
            let q = shmprim::Queue::<u64>::create(name.to_str().unwrap(), 4).unwrap();
            assert_eq!(
                shmprim_duplex_open(name.as_ptr(), &mut d),
                SHMPRIM_INCOMPATIBLE
            );
            // A duplex unlink refuses a queue and leaves it; the queue's removes it.
            assert_eq!(shmprim_duplex_unlink(name.as_ptr()), SHMPRIM_INCOMPATIBLE);
            drop(q);
            assert_eq!(shmprim_queue_unlink(name.as_ptr()), SHMPRIM_OK);
        }
    }
}
