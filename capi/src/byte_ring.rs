//! C functions for SPSC rings of variable-length byte messages
//! (`shmprim_byte_ring_*`): the same object as a Rust
//! [`SpscByteRing`](shmprim::ring::spsc::SpscByteRing). A `shmprim_byte_ring`
//! handle opens the ring; one process (or thread) then claims the producer
//! end (`shmprim_byte_ring_claim_producer`) and one the consumer end
//! (`shmprim_byte_ring_claim_consumer`). An end held by a live process cannot
//! be claimed again until it is closed or its process dies.
//!
//! Closing the producer end (or its process dying) makes the consumer receive
//! every message that was sent, then `SHMPRIM_CLOSED` (end-of-file); closing
//! the consumer end makes sends report `SHMPRIM_CLOSED` once the ring is full.
//!
//! Timeouts: negative waits forever; `0` tries once and reports
//! `SHMPRIM_FULL` / `SHMPRIM_EMPTY`; a positive timeout that passes reports
//! `SHMPRIM_TIMEOUT`.

use std::ffi::{c_char, c_void};

use super::pipe::{bytes, bytes_mut, received};
use super::{
    boundary, c_str, check, free, handle, handle_mut, non_null, options, put, shmprim_options,
    shmprim_status, timed, unlink_name, write_opt,
};
use shmprim::ring::spsc::{ByteConsumer, ByteProducer, SpscByteRing};
use shmprim::segment::Disposition;
use shmprim::wait::is_timeout;

/// An open named (or anonymous) SPSC byte ring, from which the two ends are
/// claimed. Opaque; free it with `shmprim_byte_ring_close`. The handle may be
/// shared between threads.
pub struct shmprim_byte_ring {
    inner: SpscByteRing,
}

/// The claimed producer end of a byte ring. Opaque; close it with
/// `shmprim_byte_ring_producer_close`. Use it from one thread at a time.
pub struct shmprim_byte_ring_producer {
    inner: ByteProducer,
}

/// The claimed consumer end of a byte ring. Opaque; close it with
/// `shmprim_byte_ring_consumer_close`. Use it from one thread at a time.
pub struct shmprim_byte_ring_consumer {
    inner: ByteConsumer,
}

/// Creates the named byte ring for messages of at most `max_message` bytes,
/// with a buffer of at least `capacity` bytes (raised to two messages of
/// `max_message` bytes with their 8-byte framing, then rounded up to a power
/// of two); a Rust `SpscByteRing` opens it. `opts` may be
/// `NULL`. Does not block. Returns `SHMPRIM_OK` (a new handle in `*out`,
/// owned by the caller, freed with `shmprim_byte_ring_close`),
/// `SHMPRIM_ALREADY_EXISTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_INVALID_ARGUMENT` (sizes, flags), `SHMPRIM_NULL_POINTER` or
/// `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_create(
    name: *const c_char,
    capacity: usize,
    max_message: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_byte_ring,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, _) = unsafe { options(opts, 0) }?;
        let inner = check(SpscByteRing::create_with_options(
            name,
            capacity,
            max_message,
            &opts,
        ))?;
        put(out, shmprim_byte_ring { inner })
    })
}

/// Opens the existing byte ring `name`. Returns `SHMPRIM_OK` (a new handle in
/// `*out`, owned by the caller), `SHMPRIM_NOT_FOUND`, `SHMPRIM_INCOMPATIBLE`
/// (another kind of object, such as a ring of fixed-size elements),
/// `SHMPRIM_CORRUPTED`, `SHMPRIM_TOO_MANY_PARTICIPANTS`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_NULL_POINTER` or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_open(
    name: *const c_char,
    out: *mut *mut shmprim_byte_ring,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let inner = check(SpscByteRing::open(name))?;
        put(out, shmprim_byte_ring { inner })
    })
}

/// Opens the byte ring `name` (which must have this capacity, as rounded at
/// creation, and this maximum message size), or creates it; exactly one of
/// several racing callers creates it. `created` (may be `NULL`) receives
/// whether this call did. Statuses and ownership as for
/// `shmprim_byte_ring_create` and `shmprim_byte_ring_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write; `created`
/// null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_open_or_create(
    name: *const c_char,
    capacity: usize,
    max_message: usize,
    out: *mut *mut shmprim_byte_ring,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (inner, how) = check(SpscByteRing::open_or_create(name, capacity, max_message))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == Disposition::Created) };
        put(out, shmprim_byte_ring { inner })
    })
}

/// Creates an anonymous byte ring (no name), shared with children forked
/// after this call. Statuses and ownership as for `shmprim_byte_ring_create`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_anonymous(
    capacity: usize,
    max_message: usize,
    out: *mut *mut shmprim_byte_ring,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let inner = check(SpscByteRing::anonymous(capacity, max_message))?;
        put(out, shmprim_byte_ring { inner })
    })
}

/// Closes a ring handle (null is ignored); ends claimed from it stay valid
/// until closed themselves, and the ring remains until unlinked.
///
/// # Safety
/// `r` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_close(r: *mut shmprim_byte_ring) {
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
pub unsafe extern "C" fn shmprim_byte_ring_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::SpscByteRing)) }
}

/// Size of the ring's buffer in bytes (messages take their length rounded up
/// to 8 plus an 8-byte header); 0 for a null handle.
///
/// # Safety
/// `r` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_capacity(r: *const shmprim_byte_ring) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { r.as_ref() }.map_or(0, |r| r.inner.capacity())
}

/// Largest message in bytes; 0 for a null handle.
///
/// # Safety
/// `r` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_max_message(r: *const shmprim_byte_ring) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { r.as_ref() }.map_or(0, |r| r.inner.max_message())
}

/// Claims the producer end for this process. Does not block. Returns
/// `SHMPRIM_OK` (a new end in `*out`, owned by the caller, closed with
/// `shmprim_byte_ring_producer_close`), `SHMPRIM_INVALID_ARGUMENT` (a live
/// process holds the end), `SHMPRIM_CORRUPTED` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `r` must be null or a live handle; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_claim_producer(
    r: *const shmprim_byte_ring,
    out: *mut *mut shmprim_byte_ring_producer,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: null or live, by the contract.
        let r = unsafe { handle(r, "ring") }?;
        let inner = check(r.inner.producer())?;
        put(out, shmprim_byte_ring_producer { inner })
    })
}

/// Claims the consumer end for this process; as
/// `shmprim_byte_ring_claim_producer`, closed with
/// `shmprim_byte_ring_consumer_close`.
///
/// # Safety
/// `r` must be null or a live handle; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_claim_consumer(
    r: *const shmprim_byte_ring,
    out: *mut *mut shmprim_byte_ring_consumer,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: null or live, by the contract.
        let r = unsafe { handle(r, "ring") }?;
        let inner = check(r.inner.consumer())?;
        put(out, shmprim_byte_ring_consumer { inner })
    })
}

/// Closes the producer end (null is ignored): the consumer receives what was
/// sent, then `SHMPRIM_CLOSED`. The end may then be claimed again.
///
/// # Safety
/// `p` must be null or an end not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_producer_close(p: *mut shmprim_byte_ring_producer) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// Closes the consumer end (null is ignored): sends report `SHMPRIM_CLOSED`
/// once the ring is full. The end may then be claimed again.
///
/// # Safety
/// `c` must be null or an end not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_consumer_close(c: *mut shmprim_byte_ring_consumer) {
    // SAFETY: forwarded contract.
    unsafe { free(c) }
}

/// Sends the `len` bytes at `msg` as one message, waiting up to `timeout_ns`
/// for room (negative: forever; `0`: try once). Returns `SHMPRIM_OK`,
/// `SHMPRIM_FULL` (`0` and no room; nothing sent), `SHMPRIM_TIMEOUT` (no room
/// in time; nothing sent), `SHMPRIM_CLOSED` (the consumer end was closed, or
/// its process died, and the ring is full), `SHMPRIM_INVALID_ARGUMENT`
/// (longer than the ring's maximum), `SHMPRIM_CORRUPTED` or
/// `SHMPRIM_NULL_POINTER` (`p`, or `msg` with `len > 0`). The bytes are
/// copied; `msg` stays the caller's.
///
/// # Safety
/// `p` must be null or a live end used by this thread alone; `msg` null or
/// readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_send(
    p: *mut shmprim_byte_ring_producer,
    msg: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live and unshared, by the contract.
        let p = unsafe { handle_mut(p, "producer") }?;
        // SAFETY: null or readable for `len` bytes, by the contract.
        let msg = unsafe { bytes(msg, len, "msg") }?;
        check(match timeout_ns {
            0 => p.inner.try_send(msg),
            t => timed(t, |d| p.inner.send_deadline(msg, d), is_timeout),
        })
    })
}

/// Receives the next message into `buf` (`cap` bytes), waiting up to
/// `timeout_ns` (negative: forever; `0`: try once), and writes its length to
/// `*len`. Returns:
/// - `SHMPRIM_OK`: received; `*len` bytes of `buf` hold it;
/// - `SHMPRIM_BUFFER_TOO_SMALL`: the next message has `*len` bytes, more than
///   `cap`; it stays queued (call again with a larger buffer);
/// - `SHMPRIM_EMPTY` (`0`) or `SHMPRIM_TIMEOUT`: nothing arrived;
/// - `SHMPRIM_CLOSED`: end-of-file (the producer end was closed or its
///   process died, and every message it sent was received);
/// - `SHMPRIM_CORRUPTED`;
/// - `SHMPRIM_NULL_POINTER`: `c` or `len`, or `buf` with `cap > 0`.
///
/// # Safety
/// `c` must be null or a live end used by this thread alone; `buf` null or
/// writable for `cap` bytes; `len` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_recv(
    c: *mut shmprim_byte_ring_consumer,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live and unshared, by the contract.
        let c = unsafe { handle_mut(c, "consumer") }?;
        non_null(len, "len")?;
        // SAFETY: null or writable for `cap` bytes, by the contract.
        let buf = unsafe { bytes_mut(buf, cap, "buf") }?;
        let r = match timeout_ns {
            0 => c.inner.try_recv_into(buf),
            t => timed(t, |d| c.inner.recv_into_deadline(buf, d), is_timeout),
        };
        // SAFETY: non-null and valid for a write, by the contract.
        unsafe { received(r, len) }
    })
}

/// Writes the length of the next message to `*len` without taking it. Does
/// not block. Returns `SHMPRIM_OK`, `SHMPRIM_EMPTY` (none yet),
/// `SHMPRIM_CLOSED` (none will come), `SHMPRIM_CORRUPTED` or
/// `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `c` must be null or a live end used by this thread alone; `len` null or
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_byte_ring_next_len(
    c: *mut shmprim_byte_ring_consumer,
    len: *mut usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live and unshared, by the contract.
        let c = unsafe { handle_mut(c, "consumer") }?;
        non_null(len, "len")?;
        let n = check(c.inner.next_len())?;
        // SAFETY: non-null and valid for a write, by the contract.
        unsafe { len.write(n) };
        Ok(())
    })
}

#[cfg(all(test, not(shmprim_loom)))]
mod tests {
    use super::*;
    use shmprim_status::*;
    use std::ptr::{null, null_mut};

    /// Through the C functions: both ends claimed once each, a try on an empty
    /// ring, a message too long, one too big for the buffer (which stays
    /// queued, with its length reported), then end-of-file once drained.
    #[test]
    fn the_c_calls_send_receive_report_sizes_and_end_with_closed() {
        // SAFETY: every pointer passed is null, a local, or a handle these
        // calls returned and that is closed exactly once at the end.
        unsafe {
            let mut r = null_mut();
            assert_eq!(shmprim_byte_ring_anonymous(100, 64, &mut r), SHMPRIM_OK);
            assert_eq!(shmprim_byte_ring_max_message(r), 64);
            assert_eq!(shmprim_byte_ring_capacity(r), 256);
            assert_eq!(shmprim_byte_ring_capacity(null()), 0);
            let (mut p, mut c) = (null_mut(), null_mut());
            assert_eq!(shmprim_byte_ring_claim_producer(r, &mut p), SHMPRIM_OK);
            assert_eq!(shmprim_byte_ring_claim_consumer(r, &mut c), SHMPRIM_OK);
            let mut again = null_mut();
            assert_eq!(
                shmprim_byte_ring_claim_consumer(r, &mut again),
                SHMPRIM_INVALID_ARGUMENT,
                "the consumer end is held"
            );
            let (mut buf, mut len) = ([0u8; 64], usize::MAX);
            let recv = |c, buf: &mut [u8], len: &mut usize, t| {
                shmprim_byte_ring_recv(c, buf.as_mut_ptr().cast(), buf.len(), len, t)
            };
            assert_eq!(recv(c, &mut buf, &mut len, 0), SHMPRIM_EMPTY);
            assert_eq!(recv(c, &mut buf, &mut len, 1_000_000), SHMPRIM_TIMEOUT);
            assert_eq!(shmprim_byte_ring_next_len(c, &mut len), SHMPRIM_EMPTY);
            let long = [7u8; 65];
            assert_eq!(
                shmprim_byte_ring_send(p, long.as_ptr().cast(), 65, 0),
                SHMPRIM_INVALID_ARGUMENT
            );
            assert_eq!(
                shmprim_byte_ring_send(p, null(), 3, 0),
                SHMPRIM_NULL_POINTER
            );
            assert_eq!(shmprim_byte_ring_send(p, null(), 0, 0), SHMPRIM_OK);
            assert_eq!(
                shmprim_byte_ring_send(p, b"hello".as_ptr().cast(), 5, -1),
                SHMPRIM_OK
            );
            // Three records of 8 + 64 bytes fit in what the first two (24 bytes)
            // leave of 256; a fourth does not.
            let full = [9u8; 64];
            for _ in 0..3 {
                assert_eq!(
                    shmprim_byte_ring_send(p, full.as_ptr().cast(), 64, 0),
                    SHMPRIM_OK
                );
            }
            assert_eq!(
                shmprim_byte_ring_send(p, full.as_ptr().cast(), 64, 0),
                SHMPRIM_FULL
            );
            assert_eq!(
                shmprim_byte_ring_send(p, full.as_ptr().cast(), 64, 1_000_000),
                SHMPRIM_TIMEOUT
            );

            assert_eq!(recv(c, &mut buf, &mut len, 0), SHMPRIM_OK);
            assert_eq!(len, 0, "the empty message");
            assert_eq!(shmprim_byte_ring_next_len(c, &mut len), SHMPRIM_OK);
            assert_eq!(len, 5);
            let mut small = [0u8; 2];
            assert_eq!(recv(c, &mut small, &mut len, -1), SHMPRIM_BUFFER_TOO_SMALL);
            assert_eq!(len, 5, "the size the message needs");
            assert_eq!(
                shmprim_byte_ring_recv(c, buf.as_mut_ptr().cast(), 64, null_mut(), 0),
                SHMPRIM_NULL_POINTER
            );
            assert_eq!(recv(c, &mut buf, &mut len, -1), SHMPRIM_OK);
            assert_eq!(&buf[..len], b"hello");
            shmprim_byte_ring_producer_close(p);
            for _ in 0..3 {
                assert_eq!(recv(c, &mut buf, &mut len, -1), SHMPRIM_OK);
                assert_eq!(&buf[..len], &full[..]);
            }
            assert_eq!(recv(c, &mut buf, &mut len, -1), SHMPRIM_CLOSED);
            assert_eq!(shmprim_byte_ring_next_len(c, &mut len), SHMPRIM_CLOSED);
            shmprim_byte_ring_consumer_close(c);
            assert_eq!(shmprim_byte_ring_claim_consumer(r, &mut c), SHMPRIM_OK);
            shmprim_byte_ring_consumer_close(c);
            shmprim_byte_ring_close(r);
        }
    }

    /// A C handle and a Rust handle on one named ring: the Rust side sends,
    /// the C side receives; the name is removed through C.
    #[test]
    fn a_rust_producer_and_a_c_consumer_share_a_named_ring() {
        let name = format!("shmprim-ffi-byte-ring-{}", std::process::id());
        let cname = std::ffi::CString::new(name.clone()).unwrap();
        let ring = SpscByteRing::create(&name, 1024, 100).unwrap();
        let mut tx = ring.producer().unwrap();
        // SAFETY: as above.
        unsafe {
            let (mut r, mut c) = (null_mut(), null_mut());
            assert_eq!(shmprim_byte_ring_open(cname.as_ptr(), &mut r), SHMPRIM_OK);
            assert_eq!(shmprim_byte_ring_max_message(r), 100);
            assert_eq!(shmprim_byte_ring_claim_consumer(r, &mut c), SHMPRIM_OK);
            let mut buf = [0u8; 100];
            let mut len = 0;
            for i in 0..300usize {
                let msg: Vec<u8> = (0..i % 101).map(|k| (k + i) as u8).collect();
                tx.send_timeout(&msg, std::time::Duration::from_secs(10))
                    .unwrap();
                assert_eq!(
                    shmprim_byte_ring_recv(c, buf.as_mut_ptr().cast(), 100, &mut len, -1),
                    SHMPRIM_OK
                );
                assert_eq!(&buf[..len], &msg[..]);
            }
            drop(tx);
            assert_eq!(
                shmprim_byte_ring_recv(c, buf.as_mut_ptr().cast(), 100, &mut len, 0),
                SHMPRIM_CLOSED
            );
            shmprim_byte_ring_consumer_close(c);
            shmprim_byte_ring_close(r);
            assert_eq!(shmprim_byte_ring_unlink(cname.as_ptr()), SHMPRIM_OK);
            assert_eq!(shmprim_byte_ring_unlink(cname.as_ptr()), SHMPRIM_NOT_FOUND);
        }
    }
}
