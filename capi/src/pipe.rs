//! C functions for pipes (`shmprim_pipe_*`), Python's `Pipe(duplex)`: the
//! same object as a Rust [`Pipe`]. A `shmprim_pipe` handle opens the pipe; each
//! process then claims one end (`shmprim_pipe_end_a` / `_end_b`) as a
//! `shmprim_pipe_end`, which sends and receives byte messages.

use std::ffi::{c_char, c_void};

use super::{
    boundary, c_str, check, fail, fail_with, free, handle, handle_mut, non_null, options, put,
    shmprim_options, shmprim_status, timed, unlink_name, write_opt,
};
use shmprim::error::Error;
use shmprim::pipe::{End, Pipe, PipeEnd};
use shmprim::wait::is_timeout;

/// An open named (or anonymous) pipe, from which ends are claimed. Opaque;
/// free it with `shmprim_pipe_close`.
pub struct shmprim_pipe {
    inner: Pipe,
}

/// One claimed end of a pipe. Opaque; close it with `shmprim_pipe_end_close`
/// (the peer then reads end-of-file). Use it from one thread at a time.
pub struct shmprim_pipe_end {
    inner: PipeEnd,
}

fn duplex_flag(duplex: u32) -> Result<bool, shmprim_status> {
    match duplex {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(fail_with(
            shmprim_status::SHMPRIM_INVALID_ARGUMENT,
            &format!("duplex must be 0 or 1, not {other}"),
        )),
    }
}

/// Creates the named pipe whose rings hold at least `capacity` bytes each,
/// for messages of at most `max_message` bytes. `duplex` is `1` (both ends
/// send and receive) or `0` (simplex: end A only receives, end B only sends,
/// as Python's `Pipe(False)`). `opts` may be `NULL`. Does not block. Returns
/// `SHMPRIM_OK` (a new handle in `*out`, owned by the caller, freed with
/// `shmprim_pipe_close`), `SHMPRIM_ALREADY_EXISTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_INVALID_ARGUMENT` (sizes, `duplex`, flags),
/// `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_create(
    name: *const c_char,
    capacity: usize,
    max_message: usize,
    duplex: u32,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_pipe,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let duplex = duplex_flag(duplex)?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, 0) }?;
        let inner = check(Pipe::create_with_options(
            name,
            capacity,
            max_message,
            duplex,
            &opts,
        ))?;
        put(out, shmprim_pipe { inner })
    })
}

/// Opens the existing pipe `name`, waiting up to 5 s for a creator still
/// initialising it. Returns `SHMPRIM_OK` (a new handle in `*out`, owned by
/// the caller), `SHMPRIM_NOT_FOUND`, `SHMPRIM_INCOMPATIBLE` (another kind),
/// `SHMPRIM_CORRUPTED`, `SHMPRIM_INVALID_NAME`, `SHMPRIM_NULL_POINTER` or a
/// header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_open(
    name: *const c_char,
    out: *mut *mut shmprim_pipe,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let inner = check(Pipe::open(name))?;
        put(out, shmprim_pipe { inner })
    })
}

/// Opens the duplex pipe `name`, or creates it; exactly one of several racing
/// callers creates it, and an existing one with other sizes (or simplex) is
/// `SHMPRIM_INCOMPATIBLE`. Statuses and ownership as for
/// `shmprim_pipe_create` and `shmprim_pipe_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write;
/// `created` null or valid for a write (whether this call created it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_open_or_create(
    name: *const c_char,
    capacity: usize,
    max_message: usize,
    out: *mut *mut shmprim_pipe,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (inner, how) = check(Pipe::open_or_create(name, capacity, max_message))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == shmprim::Disposition::Created) };
        put(out, shmprim_pipe { inner })
    })
}

/// Creates an anonymous pipe (no name), shared with children forked after
/// this call. A forked child that takes an end takes a participant slot of
/// its own first, so its death is seen like any other process's (take each
/// end in the process that uses it). Statuses and
/// ownership as for `shmprim_pipe_create`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_anonymous(
    capacity: usize,
    max_message: usize,
    duplex: u32,
    out: *mut *mut shmprim_pipe,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let duplex = duplex_flag(duplex)?;
        let inner = check(Pipe::anonymous(capacity, max_message, duplex))?;
        put(out, shmprim_pipe { inner })
    })
}

/// Closes a pipe handle (null is ignored). Ends claimed from it stay usable
/// until they are closed themselves.
///
/// # Safety
/// `p` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_close(p: *mut shmprim_pipe) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// Removes the name `name` if it is a shmprim pipe; processes that have it open
/// keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`, `SHMPRIM_NOT_SHMPRIM`
/// (a file of another program: left alone), `SHMPRIM_INCOMPATIBLE` (another
/// kind of shmprim object: left alone), `SHMPRIM_INVALID_NAME` or
/// `SHMPRIM_NULL_POINTER`. Another process can replace the file between the
/// check and the removal.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::Pipe)) }
}

/// The largest message the pipe carries, in bytes; 0 for a null handle.
///
/// # Safety
/// `p` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_max_message(p: *const shmprim_pipe) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { p.as_ref() }.map_or(0, |p| p.inner.max_message())
}

/// Claims `end` of the pipe behind `p`.
///
/// # Safety
/// `p` must be null or a live handle; `out` valid for a write.
unsafe fn claim(
    p: *const shmprim_pipe,
    end: End,
    out: *mut *mut shmprim_pipe_end,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: null or live, by the caller's contract.
        let p = unsafe { handle(p, "pipe") }?;
        let inner = check(p.inner.end(end))?;
        put(out, shmprim_pipe_end { inner })
    })
}

/// Claims end A (the receiving end of a simplex pipe) for this process. One
/// process holds an end for the pipe's whole life. Does not block. Returns
/// `SHMPRIM_OK` (a new end in `*out`, owned by the caller, closed with
/// `shmprim_pipe_end_close`), `SHMPRIM_INVALID_ARGUMENT` (a live process
/// holds it), `SHMPRIM_CLOSED` (it was closed, or its holder died) or
/// `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `p` must be null or a live handle; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_end_a(
    p: *const shmprim_pipe,
    out: *mut *mut shmprim_pipe_end,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { claim(p, End::A, out) }
}

/// Claims end B (the sending end of a simplex pipe); as `shmprim_pipe_end_a`.
///
/// # Safety
/// `p` must be null or a live handle; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_end_b(
    p: *const shmprim_pipe,
    out: *mut *mut shmprim_pipe_end,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { claim(p, End::B, out) }
}

/// Closes an end (null is ignored): the peer receives what was already sent,
/// then `SHMPRIM_CLOSED`; its sends fail with `SHMPRIM_CLOSED`. An end whose
/// process dies is closed the same way.
///
/// # Safety
/// `e` must be null or an end not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_end_close(e: *mut shmprim_pipe_end) {
    // SAFETY: forwarded contract.
    unsafe { free(e) }
}

/// Sends the `len` bytes at `msg` as one message, waiting up to `timeout_ns`
/// for room (negative: forever; `0`: try once). Returns `SHMPRIM_OK`,
/// `SHMPRIM_FULL` (`0` and no room; nothing sent), `SHMPRIM_TIMEOUT` (no room
/// in time; nothing sent), `SHMPRIM_CLOSED` (the peer
/// closed its end or died), `SHMPRIM_INVALID_ARGUMENT` (longer than the
/// pipe's maximum, or a receive-only end) or `SHMPRIM_NULL_POINTER` (`e`, or
/// `msg` with `len > 0`). The bytes are copied; `msg` stays the caller's.
///
/// # Safety
/// `e` must be null or a live end used by this thread alone; `msg` null or
/// readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_send(
    e: *mut shmprim_pipe_end,
    msg: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live and unshared, by the contract.
        let e = unsafe { handle_mut(e, "end") }?;
        // SAFETY: null or readable for `len` bytes, by the contract.
        let msg = unsafe { bytes(msg, len, "msg") }?;
        check(match timeout_ns {
            0 => e.inner.try_send(msg),
            t => timed(t, |d| e.inner.send_deadline(msg, d), is_timeout),
        })
    })
}

/// The caller's bytes at `p` (`len` 0 may come with a null `p`).
///
/// # Safety
/// `p` must be null or readable for `len` bytes, for the returned lifetime.
#[inline]
pub(crate) unsafe fn bytes<'a>(
    p: *const c_void,
    len: usize,
    what: &str,
) -> Result<&'a [u8], shmprim_status> {
    if len == 0 {
        return Ok(&[]);
    }
    non_null(p, what)?;
    // SAFETY: non-null and readable for `len` bytes, by the contract.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// The caller's writable buffer at `p` of `cap` bytes.
///
/// # Safety
/// `p` must be null or writable for `cap` bytes, for the returned lifetime.
#[inline]
pub(crate) unsafe fn bytes_mut<'a>(
    p: *mut c_void,
    cap: usize,
    what: &str,
) -> Result<&'a mut [u8], shmprim_status> {
    if cap == 0 {
        return Ok(&mut []);
    }
    non_null(p, what)?;
    // SAFETY: non-null and writable for `cap` bytes, by the contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), cap) })
}

/// Receives the next message into `buf` (`cap` bytes), waiting up to
/// `timeout_ns` (negative: forever; `0`: try once), and writes its length to
/// `*len`. Returns:
/// - `SHMPRIM_OK`: received; `*len` bytes of `buf` hold it;
/// - `SHMPRIM_BUFFER_TOO_SMALL`: the next message has `*len` bytes, more than
///   `cap`; it stays queued (call again with a larger buffer);
/// - `SHMPRIM_EMPTY` (`0`) or `SHMPRIM_TIMEOUT`: nothing arrived;
/// - `SHMPRIM_CLOSED`: end-of-file (the peer closed or died, and every
///   message it sent was received);
/// - `SHMPRIM_INVALID_ARGUMENT`: a send-only end;
/// - `SHMPRIM_NULL_POINTER`: `e` or `len`, or `buf` with `cap > 0`.
///
/// # Safety
/// `e` must be null or a live end used by this thread alone; `buf` null or
/// writable for `cap` bytes; `len` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_recv(
    e: *mut shmprim_pipe_end,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live and unshared, by the contract.
        let e = unsafe { handle_mut(e, "end") }?;
        non_null(len, "len")?;
        // SAFETY: null or writable for `cap` bytes, by the contract.
        let buf = unsafe { bytes_mut(buf, cap, "buf") }?;
        let r = match timeout_ns {
            0 => e.inner.try_recv_into(buf),
            t => timed(t, |d| e.inner.recv_into_deadline(buf, d), is_timeout),
        };
        // SAFETY: non-null and valid for a write, by the contract.
        unsafe { received(r, len) }
    })
}

/// Reports a receive into the caller's buffer: the message's length to
/// `*len`, also when the buffer was too small (the length it needs).
///
/// # Safety
/// `len` must be valid for a write.
pub(crate) unsafe fn received(
    r: shmprim::error::Result<usize>,
    len: *mut usize,
) -> Result<(), shmprim_status> {
    let (n, result) = match r {
        Ok(n) => (n, Ok(())),
        Err(err @ Error::BufferTooSmall { needed, .. }) => (needed, Err(fail(&err))),
        Err(err) => return Err(fail(&err)),
    };
    // SAFETY: valid for a write (caller).
    unsafe { len.write(n) };
    result
}

/// Writes the length of the next message to `*len` without taking it. Does
/// not block. Returns `SHMPRIM_OK`, `SHMPRIM_EMPTY` (none yet),
/// `SHMPRIM_CLOSED` (none will come), `SHMPRIM_INVALID_ARGUMENT` (a send-only
/// end) or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `e` must be null or a live end used by this thread alone; `len` null or
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_next_len(
    e: *mut shmprim_pipe_end,
    len: *mut usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live and unshared, by the contract.
        let e = unsafe { handle_mut(e, "end") }?;
        non_null(len, "len")?;
        let n = check(e.inner.next_len())?;
        // SAFETY: non-null and valid for a write, by the contract.
        unsafe { len.write(n) };
        Ok(())
    })
}

/// Waits up to `timeout_ns` until a receive would return at once (a message
/// is queued, or end-of-file), writing the answer to `*ready` (Python's
/// `Connection.poll`). Returns `SHMPRIM_OK`, `SHMPRIM_INVALID_ARGUMENT` (a
/// send-only end) or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `e` must be null or a live end used by this thread alone; `ready` null or
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pipe_poll(
    e: *mut shmprim_pipe_end,
    timeout_ns: i64,
    ready: *mut bool,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live and unshared, by the contract.
        let e = unsafe { handle_mut(e, "end") }?;
        non_null(ready, "ready")?;
        let r = check(timed(
            timeout_ns,
            |d| e.inner.poll_deadline(d),
            |r| matches!(r, Ok(false)),
        ))?;
        // SAFETY: non-null and valid for a write, by the contract.
        unsafe { ready.write(r) };
        Ok(())
    })
}
