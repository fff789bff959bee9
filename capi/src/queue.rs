//! C functions for the MPMC queues, Python's `multiprocessing.Queue`:
//! `shmprim_queue_*` (element form: fixed-size elements, the same object as a
//! Rust [`Queue<T>`](shmprim::Queue) whose `T` has that size and alignment) and
//! `shmprim_byte_queue_*` (byte messages up to a maximum length, the same
//! object as a Rust [`ByteQueue`]).
//!
//! Timeouts: negative waits forever; `0` tries once and reports
//! `SHMPRIM_FULL` / `SHMPRIM_EMPTY` (Python's `put_nowait` / `get_nowait`);
//! a positive timeout that passes reports `SHMPRIM_TIMEOUT`.
//!
//! End of stream: every handle puts and gets unless opened with
//! `SHMPRIM_SEND_ONLY` or `SHMPRIM_RECEIVE_ONLY`. Once every handle that
//! puts has been closed (`shmprim_queue_close`, `_close_sending`) or its
//! process has died, gets on the other handles drain what is queued and then
//! report `SHMPRIM_CLOSED`. `shmprim_queue_shutdown` closes the queue for
//! everybody at once.

use std::ffi::{c_char, c_void};

use super::pipe::{bytes, bytes_mut};
use super::{
    boundary, buffer_too_small, c_str, check, fail, free, handle, non_null, options, put,
    shmprim_options, shmprim_status, timed, unlink_name, write_opt, wrong_elem_size,
};
use shmprim::Options;
use shmprim::queue::{ByteQueue, RawQueue};

/// Option flags a queue's create accepts (besides `SHMPRIM_UNLINK_ON_CLOSE`).
const QUEUE_CREATE_FLAGS: u32 = super::SHMPRIM_JOINABLE | QUEUE_ROLE_FLAGS;
/// Option flags a queue's open accepts.
const QUEUE_ROLE_FLAGS: u32 = super::SHMPRIM_SEND_ONLY | super::SHMPRIM_RECEIVE_ONLY;
use shmprim::segment::Disposition;
use shmprim::wait::is_timeout;

/// An open named (or anonymous) queue of fixed-size elements. Opaque; free it
/// with `shmprim_queue_close`. One handle may be used by many threads.
pub struct shmprim_queue {
    inner: RawQueue,
}

/// An open named (or anonymous) queue of byte messages. Opaque; free it with
/// `shmprim_byte_queue_close`. One handle may be used by many threads.
pub struct shmprim_byte_queue {
    inner: ByteQueue,
}

/// Creates the named queue of `capacity` elements of `elem_size` bytes
/// aligned to `elem_align` (a power of two); a Rust `Queue<T>` with that size
/// and alignment opens it. `opts` may be `NULL`; its flags may hold
/// `SHMPRIM_JOINABLE` and one of `SHMPRIM_SEND_ONLY`, `SHMPRIM_RECEIVE_ONLY`. Does not block. Returns
/// `SHMPRIM_OK` (a new handle in `*out`, owned by the caller, freed with
/// `shmprim_queue_close`), `SHMPRIM_ALREADY_EXISTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_INVALID_ARGUMENT` (sizes, alignment, flags),
/// `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_create(
    name: *const c_char,
    capacity: usize,
    elem_size: usize,
    elem_align: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_queue,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, QUEUE_CREATE_FLAGS) }?;
        let inner = check(RawQueue::create(
            name, capacity, elem_size, elem_align, &opts,
        ))?;
        put(out, shmprim_queue { inner })
    })
}

/// Opens the existing element queue `name`, whatever its element type (see
/// `shmprim_queue_elem_size`), waiting up to 5 s for a creator still
/// initialising it. Returns `SHMPRIM_OK` (a new handle in `*out`, owned by the
/// caller), `SHMPRIM_NOT_FOUND`, `SHMPRIM_INCOMPATIBLE` (another kind, such as
/// a byte queue), `SHMPRIM_CORRUPTED`, `SHMPRIM_TOO_MANY_PARTICIPANTS`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_NULL_POINTER` or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_open(
    name: *const c_char,
    out: *mut *mut shmprim_queue,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let inner = check(RawQueue::open(name, &Options::default()))?;
        put(out, shmprim_queue { inner })
    })
}

/// `shmprim_queue_open` with options: `opts` (may be `NULL`) may hold
/// `SHMPRIM_SEND_ONLY` or `SHMPRIM_RECEIVE_ONLY`, and
/// `SHMPRIM_UNLINK_ON_CLOSE`. Statuses as for `shmprim_queue_open`, and
/// `SHMPRIM_INVALID_ARGUMENT` for other flags.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_open_with(
    name: *const c_char,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_queue,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, QUEUE_ROLE_FLAGS) }?;
        let inner = check(RawQueue::open(name, &opts))?;
        put(out, shmprim_queue { inner })
    })
}

/// Opens the element queue `name` (which must have elements of `elem_size`
/// bytes aligned to `elem_align`), or creates it with `capacity` elements;
/// exactly one of several racing callers creates it. `created` (may be
/// `NULL`) receives whether this call did. Statuses and ownership as for
/// `shmprim_queue_create` and `shmprim_queue_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write; `created`
/// null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_open_or_create(
    name: *const c_char,
    capacity: usize,
    elem_size: usize,
    elem_align: usize,
    out: *mut *mut shmprim_queue,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (inner, how) = check(RawQueue::open_or_create(
            name, capacity, elem_size, elem_align,
        ))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == Disposition::Created) };
        put(out, shmprim_queue { inner })
    })
}

/// Creates an anonymous element queue (no name), shared with children forked
/// after this call. Statuses and ownership as for `shmprim_queue_create`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_anonymous(
    capacity: usize,
    elem_size: usize,
    elem_align: usize,
    out: *mut *mut shmprim_queue,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let inner = check(RawQueue::anonymous(capacity, elem_size, elem_align))?;
        put(out, shmprim_queue { inner })
    })
}

/// Closes a handle (null is ignored); the queue remains until unlinked. This
/// does not close the queue for others (see `shmprim_queue_shutdown`).
///
/// # Safety
/// `q` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_close(q: *mut shmprim_queue) {
    // SAFETY: forwarded contract.
    unsafe { free(q) }
}

/// Removes the name `name` if it is a shmprim queue; processes that have it open
/// keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`, `SHMPRIM_NOT_SHMPRIM`
/// (a file of another program: left alone), `SHMPRIM_INCOMPATIBLE` (another
/// kind of shmprim object: left alone), `SHMPRIM_INVALID_NAME` or
/// `SHMPRIM_NULL_POINTER`. Another process can replace the file between the
/// check and the removal.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::Queue)) }
}

/// Size in bytes of one element; 0 for a null handle.
///
/// # Safety
/// `q` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_elem_size(q: *const shmprim_queue) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { q.as_ref() }.map_or(0, |q| q.inner.elem_size())
}

/// Puts the element at `elem` (`size` must be the element size), waiting up
/// to `timeout_ns` for room (negative: forever; `0`: try once). Returns
/// `SHMPRIM_OK`, `SHMPRIM_FULL` (`0` and no room), `SHMPRIM_TIMEOUT`,
/// `SHMPRIM_CLOSED` (the queue was shut), `SHMPRIM_INVALID_ARGUMENT` (wrong
/// size), `SHMPRIM_CORRUPTED` or `SHMPRIM_NULL_POINTER`. The bytes are
/// copied.
///
/// # Safety
/// `q` must be null or a live handle; `elem` null or readable for `size`
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_put(
    q: *const shmprim_queue,
    elem: *const c_void,
    size: usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let q = unsafe { handle(q, "queue") }?;
        let slot = q.inner.elem_size();
        if size != slot {
            return Err(wrong_elem_size(size, slot, "queue"));
        }
        non_null(elem, "elem")?;
        // SAFETY: non-null and readable for `size` bytes, by the contract.
        let msg = unsafe { bytes(elem, size, "elem") }?;
        let q = &q.inner;
        check(match timeout_ns {
            0 => q.try_put(msg),
            t => timed(t, |d| q.put_deadline(msg, d), is_timeout),
        })
    })
}

/// Takes the oldest element into `out` (`size` bytes, at least the element
/// size), waiting up to `timeout_ns` (negative: forever; `0`: try once).
/// Returns `SHMPRIM_OK`, `SHMPRIM_EMPTY` (`0` and none), `SHMPRIM_TIMEOUT`,
/// `SHMPRIM_CLOSED` (shut and drained), `SHMPRIM_BUFFER_TOO_SMALL` (`size`
/// is under the element size, written to `*needed` if not `NULL`; nothing is
/// taken), `SHMPRIM_CORRUPTED` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `q` must be null or a live handle; `out` null or writable for `size`
/// bytes; `needed` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_get(
    q: *const shmprim_queue,
    out: *mut c_void,
    size: usize,
    needed: *mut usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let q = unsafe { handle(q, "queue") }?;
        let slot = q.inner.elem_size();
        if size < slot {
            // SAFETY: null or valid for a write, by the contract.
            return Err(unsafe { buffer_too_small(needed, size, slot) });
        }
        non_null(out, "out")?;
        // SAFETY: non-null and writable for `slot <= size` bytes, by the
        // contract.
        let buf = unsafe { bytes_mut(out, slot, "out") }?;
        let q = &q.inner;
        check(match timeout_ns {
            0 => q.try_get_into(buf),
            t => timed(t, |d| q.get_into_deadline(buf, d), is_timeout),
        })
    })
}

/// Writes the number of elements queued now (Python's `qsize`, a snapshot)
/// and the capacity; either pointer may be `NULL`. Returns `SHMPRIM_OK` or
/// `SHMPRIM_NULL_POINTER` (null handle).
///
/// # Safety
/// `q` must be null or a live handle; `len` and `capacity` null or valid for
/// a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_len(
    q: *const shmprim_queue,
    len: *mut usize,
    capacity: *mut usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let q = unsafe { handle(q, "queue") }?;
        // SAFETY: each null or valid for a write, by the contract.
        unsafe {
            write_opt(len, q.inner.len());
            write_opt(capacity, q.inner.capacity());
        }
        Ok(())
    })
}

/// Shuts the queue for every process (Python 3.13's `Queue.shutdown`):
/// later puts fail with `SHMPRIM_CLOSED`; gets drain what is left, then
/// report `SHMPRIM_CLOSED`; sleepers are woken. With `immediate`, what is
/// queued is discarded first (and counted done on a joinable queue). Does not
/// block. Returns `SHMPRIM_OK` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `q` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_shutdown(
    q: *const shmprim_queue,
    immediate: bool,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        unsafe { handle(q, "queue") }?.inner.shutdown(immediate);
        Ok(())
    })
}

/// This handle puts no more (Python's `Queue.close`); its gets still work.
/// Closing the handle does the same. Returns `SHMPRIM_OK` or
/// `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `q` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_close_sending(q: *const shmprim_queue) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        unsafe { handle(q, "queue") }?.inner.close();
        Ok(())
    })
}

/// Python's `JoinableQueue.task_done`. Returns `SHMPRIM_OK`,
/// `SHMPRIM_INVALID_ARGUMENT` (the queue is not joinable, or more calls than
/// items put) or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `q` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_task_done(q: *const shmprim_queue) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        check(unsafe { handle(q, "queue") }?.inner.task_done())
    })
}

/// Python's `JoinableQueue.join`: waits up to `timeout_ns` (negative:
/// forever; `0`: look once) until every item put is done. Returns
/// `SHMPRIM_OK`, `SHMPRIM_TIMEOUT`, `SHMPRIM_INTERRUPTED`,
/// `SHMPRIM_INVALID_ARGUMENT` (not joinable) or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `q` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_queue_join(
    q: *const shmprim_queue,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let q = &unsafe { handle(q, "queue") }?.inner;
        check(timed(timeout_ns, |d| q.join_deadline(d), is_timeout))
    })
}

// ------------------------------------------------------------------ byte queue

/// Creates the named byte queue of `capacity` messages of at most
/// `max_message` bytes each; a Rust `ByteQueue` opens it. `opts` may be
/// `NULL`. Does not block. Returns `SHMPRIM_OK` (a new handle in `*out`,
/// owned by the caller, freed with `shmprim_byte_queue_close`),
/// `SHMPRIM_ALREADY_EXISTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_INVALID_ARGUMENT`, `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_create(
    name: *const c_char,
    capacity: usize,
    max_message: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_byte_queue,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, QUEUE_CREATE_FLAGS) }?;
        let inner = check(ByteQueue::create_with_options(
            name,
            capacity,
            max_message,
            &opts,
        ))?;
        put(out, shmprim_byte_queue { inner })
    })
}

/// Opens the existing byte queue `name`, waiting up to 5 s for a creator
/// still initialising it. Returns `SHMPRIM_OK` (a new handle in `*out`, owned
/// by the caller), `SHMPRIM_NOT_FOUND`, `SHMPRIM_INCOMPATIBLE` (another kind,
/// such as an element queue), `SHMPRIM_CORRUPTED`,
/// `SHMPRIM_TOO_MANY_PARTICIPANTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_NULL_POINTER` or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_open(
    name: *const c_char,
    out: *mut *mut shmprim_byte_queue,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let inner = check(ByteQueue::open(name))?;
        put(out, shmprim_byte_queue { inner })
    })
}

/// `shmprim_byte_queue_open` with options, as `shmprim_queue_open_with`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_open_with(
    name: *const c_char,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_byte_queue,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, QUEUE_ROLE_FLAGS) }?;
        let inner = check(ByteQueue::open_with_options(name, &opts))?;
        put(out, shmprim_byte_queue { inner })
    })
}

/// Opens the byte queue `name` (which must have this capacity and maximum
/// message size), or creates it; exactly one of several racing callers
/// creates it. `created` (may be `NULL`) receives whether this call did.
/// Statuses and ownership as for `shmprim_byte_queue_create` and
/// `shmprim_byte_queue_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write; `created`
/// null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_open_or_create(
    name: *const c_char,
    capacity: usize,
    max_message: usize,
    out: *mut *mut shmprim_byte_queue,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (inner, how) = check(ByteQueue::open_or_create(name, capacity, max_message))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == Disposition::Created) };
        put(out, shmprim_byte_queue { inner })
    })
}

/// Creates an anonymous byte queue (no name), shared with children forked
/// after this call. Statuses and ownership as for `shmprim_byte_queue_create`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_anonymous(
    capacity: usize,
    max_message: usize,
    out: *mut *mut shmprim_byte_queue,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let inner = check(ByteQueue::anonymous(capacity, max_message))?;
        put(out, shmprim_byte_queue { inner })
    })
}

/// Closes a handle (null is ignored); the queue remains until unlinked.
///
/// # Safety
/// `q` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_close(q: *mut shmprim_byte_queue) {
    // SAFETY: forwarded contract.
    unsafe { free(q) }
}

/// Removes the name `name`; as `shmprim_queue_unlink`.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::ByteQueue)) }
}

/// The largest message, in bytes; 0 for a null handle.
///
/// # Safety
/// `q` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_max_message(q: *const shmprim_byte_queue) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { q.as_ref() }.map_or(0, |q| q.inner.max_message())
}

/// Puts the `len` bytes at `msg` as one message, waiting up to `timeout_ns`
/// for room (negative: forever; `0`: try once). Returns `SHMPRIM_OK`,
/// `SHMPRIM_FULL` (`0` and no room), `SHMPRIM_TIMEOUT`, `SHMPRIM_CLOSED`,
/// `SHMPRIM_INVALID_ARGUMENT` (longer than the maximum), `SHMPRIM_CORRUPTED`
/// or `SHMPRIM_NULL_POINTER` (`q`, or `msg` with `len > 0`). The bytes are
/// copied.
///
/// # Safety
/// `q` must be null or a live handle; `msg` null or readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_put(
    q: *const shmprim_byte_queue,
    msg: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let q = unsafe { handle(q, "queue") }?;
        // SAFETY: null or readable for `len` bytes, by the contract.
        let msg = unsafe { bytes(msg, len, "msg") }?;
        check(match timeout_ns {
            0 => q.inner.try_put(msg),
            t => timed(t, |d| q.inner.put_deadline(msg, d), is_timeout),
        })
    })
}

/// Takes the oldest message into `buf` (`cap` bytes), waiting up to
/// `timeout_ns` (negative: forever; `0`: try once), and writes its length to
/// `*len`. Returns:
/// - `SHMPRIM_OK`: `*len` bytes of `buf` hold the message;
/// - `SHMPRIM_BUFFER_TOO_SMALL`: the oldest message has `*len` bytes, more
///   than `cap`; it stays in the queue (call again with a larger buffer; the
///   maximum is `shmprim_byte_queue_max_message`);
/// - `SHMPRIM_EMPTY` (`0` and none), `SHMPRIM_TIMEOUT`, `SHMPRIM_CLOSED`
///   (shut and drained), `SHMPRIM_CORRUPTED`;
/// - `SHMPRIM_NULL_POINTER`: `q` or `len`, or `buf` with `cap > 0`.
///
/// # Safety
/// `q` must be null or a live handle; `buf` null or writable for `cap` bytes;
/// `len` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_get(
    q: *const shmprim_byte_queue,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let q = unsafe { handle(q, "queue") }?;
        non_null(len, "len")?;
        // SAFETY: null or writable for `cap` bytes, by the contract.
        let buf = unsafe { bytes_mut(buf, cap, "buf") }?;
        let r = match timeout_ns {
            0 => q.inner.try_get_into(buf),
            t => timed(t, |d| q.inner.get_into_deadline(buf, d), is_timeout),
        };
        match r {
            Ok(n) => {
                // SAFETY: non-null and valid for a write, by the contract.
                unsafe { len.write(n) };
                Ok(())
            }
            Err(e @ shmprim::Error::BufferTooSmall { needed, .. }) => {
                // SAFETY: as above.
                unsafe { len.write(needed) };
                Err(fail(&e))
            }
            Err(e) => Err(fail(&e)),
        }
    })
}

/// Writes the number of messages queued now (a snapshot) and the capacity;
/// either pointer may be `NULL`. Returns `SHMPRIM_OK` or
/// `SHMPRIM_NULL_POINTER` (null handle).
///
/// # Safety
/// `q` must be null or a live handle; `len` and `capacity` null or valid for
/// a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_len(
    q: *const shmprim_byte_queue,
    len: *mut usize,
    capacity: *mut usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let q = unsafe { handle(q, "queue") }?;
        // SAFETY: each null or valid for a write, by the contract.
        unsafe {
            write_opt(len, q.inner.len());
            write_opt(capacity, q.inner.capacity());
        }
        Ok(())
    })
}

/// Shuts the byte queue for every process; as `shmprim_queue_shutdown`.
///
/// # Safety
/// `q` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_shutdown(
    q: *const shmprim_byte_queue,
    immediate: bool,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        unsafe { handle(q, "queue") }?.inner.shutdown(immediate);
        Ok(())
    })
}

/// This handle puts no more; as `shmprim_queue_close_sending`.
///
/// # Safety
/// `q` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_close_sending(
    q: *const shmprim_byte_queue,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        unsafe { handle(q, "queue") }?.inner.close();
        Ok(())
    })
}

/// Python's `JoinableQueue.task_done`; as `shmprim_queue_task_done`.
///
/// # Safety
/// `q` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_task_done(
    q: *const shmprim_byte_queue,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        check(unsafe { handle(q, "queue") }?.inner.task_done())
    })
}

/// Python's `JoinableQueue.join`; as `shmprim_queue_join`.
///
/// # Safety
/// `q` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_queue_join(
    q: *const shmprim_byte_queue,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let q = &unsafe { handle(q, "queue") }?.inner;
        check(timed(timeout_ns, |d| q.join_deadline(d), is_timeout))
    })
}

#[cfg(all(test, not(shmprim_loom)))]
mod tests {
    use super::*;
    use shmprim_status::*;
    use std::ptr::null_mut;

    /// A raw pointer that may cross to another thread (the handle is meant to
    /// be shared between threads).
    struct Shared(*mut shmprim_queue);
    // SAFETY: `shmprim_queue` is used from many threads by design (its `Core`
    // gives each thread its own lane).
    unsafe impl Send for Shared {}

    /// The polling try of the C calls (the one-element fast path on the
    /// owner thread, the general path on another): values in order, `FULL`
    /// and `EMPTY` with their messages, a larger buffer, and `CLOSED` once
    /// shut and drained.
    #[test]
    fn the_c_polling_calls_keep_order_and_answer_full_empty_and_closed() {
        let message = || {
            // SAFETY: the library's message is NUL-terminated and valid until
            // this thread's next call.
            unsafe { std::ffi::CStr::from_ptr(super::super::shmprim_last_error_message()) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: pointers are locals or the handle made here, closed once
        // after the other thread has finished with it.
        unsafe {
            let mut q = null_mut();
            assert_eq!(shmprim_queue_anonymous(4, 8, 8, &mut q), SHMPRIM_OK);
            let put = |q, v: u64| shmprim_queue_put(q, (&raw const v).cast(), 8, 0);
            let get =
                |q, v: &mut u64| shmprim_queue_get(q, (v as *mut u64).cast(), 8, null_mut(), 0);
            let mut v = 0u64;
            assert_eq!(get(q, &mut v), SHMPRIM_EMPTY);
            assert_eq!(message(), "empty");
            for k in 1..=4 {
                assert_eq!(put(q, k), SHMPRIM_OK);
            }
            assert_eq!(put(q, 5), SHMPRIM_FULL);
            assert_eq!(message(), "full");
            let mut wide = [0u64; 2];
            assert_eq!(
                shmprim_queue_get(q, wide.as_mut_ptr().cast(), 16, null_mut(), 0),
                SHMPRIM_OK
            );
            assert_eq!(wide, [1, 0]);
            for k in 2..=4 {
                assert_eq!(get(q, &mut v), SHMPRIM_OK);
                assert_eq!(v, k);
            }
            assert_eq!(get(q, &mut v), SHMPRIM_EMPTY);
            // Another thread on the same handle: not the owner of its first
            // lane, so its tries take the general path.
            let other = Shared(q);
            std::thread::spawn(move || {
                let q = other;
                for k in 10..13u64 {
                    assert_eq!(
                        shmprim_queue_put(q.0, (&raw const k).cast(), 8, 0),
                        SHMPRIM_OK
                    );
                }
                let mut v = 0u64;
                assert_eq!(
                    shmprim_queue_get(q.0, (&raw mut v).cast(), 8, null_mut(), 0),
                    SHMPRIM_OK
                );
                assert_eq!(v, 10);
            })
            .join()
            .unwrap();
            for k in 11..13 {
                assert_eq!(get(q, &mut v), SHMPRIM_OK);
                assert_eq!(v, k);
            }
            assert_eq!(put(q, 20), SHMPRIM_OK);
            assert_eq!(shmprim_queue_shutdown(q, false), SHMPRIM_OK);
            assert_eq!(put(q, 21), SHMPRIM_CLOSED);
            assert_eq!(get(q, &mut v), SHMPRIM_OK);
            assert_eq!(v, 20);
            assert_eq!(get(q, &mut v), SHMPRIM_CLOSED);
            shmprim_queue_close(q);
        }
    }

    /// End of stream and `JoinableQueue` through the C calls: a receive-only
    /// handle drains what a sender put and then reads `SHMPRIM_CLOSED` once
    /// the sender's handle is closed; `task_done` and `join` count the items;
    /// both role flags together are refused.
    #[test]
    fn c_receivers_see_the_end_of_stream_and_joinable_queues_count_tasks() {
        let name = std::ffi::CString::new(format!("capi-eos-{}", std::process::id())).unwrap();
        let opts = |flags| super::super::shmprim_options { mode: 0, flags };
        // SAFETY: pointers are locals or handles made here, each closed once.
        unsafe {
            let (mut s, mut r, mut bad) = (null_mut(), null_mut(), null_mut());
            let create = opts(super::super::SHMPRIM_JOINABLE | super::super::SHMPRIM_SEND_ONLY);
            assert_eq!(
                shmprim_queue_create(name.as_ptr(), 4, 8, 8, &create, &mut s),
                SHMPRIM_OK
            );
            let both = opts(super::super::SHMPRIM_SEND_ONLY | super::super::SHMPRIM_RECEIVE_ONLY);
            assert_eq!(
                shmprim_queue_open_with(name.as_ptr(), &both, &mut bad),
                SHMPRIM_INVALID_ARGUMENT
            );
            let receive = opts(super::super::SHMPRIM_RECEIVE_ONLY);
            assert_eq!(
                shmprim_queue_open_with(name.as_ptr(), &receive, &mut r),
                SHMPRIM_OK
            );
            let put = |q, v: u64| shmprim_queue_put(q, (&raw const v).cast(), 8, 0);
            let get =
                |q, v: &mut u64| shmprim_queue_get(q, (v as *mut u64).cast(), 8, null_mut(), -1);
            assert_eq!(put(r, 1), SHMPRIM_CLOSED, "a receive-only handle puts");
            assert_eq!(put(s, 7), SHMPRIM_OK);
            assert_eq!(put(s, 8), SHMPRIM_OK);
            assert_eq!(shmprim_queue_join(r, 0), SHMPRIM_TIMEOUT);
            let mut v = 0;
            assert_eq!(get(r, &mut v), SHMPRIM_OK);
            assert_eq!(shmprim_queue_task_done(r), SHMPRIM_OK);
            shmprim_queue_close(s);
            assert_eq!(get(r, &mut v), SHMPRIM_OK);
            assert_eq!(v, 8);
            assert_eq!(
                get(r, &mut v),
                SHMPRIM_CLOSED,
                "the sender's close ends the stream"
            );
            assert_eq!(shmprim_queue_task_done(r), SHMPRIM_OK);
            assert_eq!(shmprim_queue_join(r, -1), SHMPRIM_OK);
            assert_eq!(shmprim_queue_task_done(r), SHMPRIM_INVALID_ARGUMENT);
            shmprim_queue_close(r);
            assert_eq!(shmprim_queue_unlink(name.as_ptr()), SHMPRIM_OK);
        }
    }
}
