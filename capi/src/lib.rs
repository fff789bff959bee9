//! The C ABI: `shmprim_<object>_<verb>` functions over opaque handles, one status
//! enum for the whole library, a thread-local message for the last error, and no
//! panic ever crossing the boundary.
//!
//! `include/shmprim.h` is generated from this crate by cbindgen (`build.rs`); a
//! test fails when the checked-in copy is stale. `include/shmprim.hpp` wraps it
//! for C++.
//!
//! Conventions, for every function:
//! - Constructors (`_create`, `_open`, `_open_or_create`, `_anonymous`) fill an
//!   out-pointer and return a [`shmprim_status`]; `_close` frees a handle (null
//!   is ignored); `_unlink` removes a name. Creation takes an optional
//!   [`shmprim_options`] (`NULL` for the defaults).
//! - Null pointers are rejected with `SHMPRIM_NULL_POINTER`, never dereferenced;
//!   enum-like integers (flags, type codes, `duplex`) are validated
//!   (`SHMPRIM_INVALID_ARGUMENT`), never transmuted.
//! - Timeouts are `int64_t` nanoseconds: negative waits forever, `0` tries once.
//! - On failure, [`shmprim_last_error_message`] describes the error on this thread.
//! - Each function is thin: it converts its arguments, calls the Rust API and maps
//!   the error; the algorithms live in the Rust modules only.
//! - Synchronization primitives also have in-place forms (`shmprim_mutex_init`,
//!   `shmprim_mutex_lock_at`, ...) over their `#[repr(C)]` states, for memory the
//!   program maps itself, with `SHMPRIM_<OBJECT>_SIZE` / `_ALIGN` macros;
//!   misaligned memory is `SHMPRIM_INVALID_ARGUMENT`.
//! - A C mutex guards a byte payload (size and alignment given at creation), the
//!   same object as a Rust `Mutex<T>` of that size and alignment; values and arrays
//!   name their element type with a `SHMPRIM_TYPE_*` code.
#![allow(non_camel_case_types)]

mod array;
mod barrier;
mod byte_ring;
mod condvar;
mod duplex;
mod event;
mod inspect;
mod lock;
mod mutex;
mod pipe;
mod pool;
mod queue;
mod rmutex;
mod segment;
mod semaphore;
mod spsc;
mod value;

pub use array::*;
pub use barrier::*;
pub use byte_ring::*;
pub use condvar::*;
pub use duplex::*;
pub use event::*;
pub use inspect::*;
pub use mutex::*;
pub use pipe::*;
pub use pool::*;
pub use queue::*;
pub use rmutex::*;
pub use segment::*;
pub use semaphore::*;
pub use spsc::*;
pub use value::*;

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use shmprim::error::Error;
use shmprim::ring::spsc::TryError;
use shmprim::segment::{Options, Segment};
use shmprim::wait::{Deadline, interruptible_with, try_first};

/// Major version of the library (`SHMPRIM_VERSION_MAJOR`).
pub const SHMPRIM_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const SHMPRIM_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const SHMPRIM_VERSION_PATCH: u32 = 0;

/// Result of every fallible C function. `SHMPRIM_OK` (0) is success.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmprim_status {
    /// Success.
    SHMPRIM_OK = 0,
    /// The name breaks the naming rule (1 to 200 bytes of `[A-Za-z0-9._-]`).
    SHMPRIM_INVALID_NAME = 1,
    /// A segment of that name already exists.
    SHMPRIM_ALREADY_EXISTS = 2,
    /// No segment of that name exists.
    SHMPRIM_NOT_FOUND = 3,
    /// The kernel refused access.
    SHMPRIM_PERMISSION_DENIED = 4,
    /// The file is not a shmprim segment.
    SHMPRIM_NOT_SHMPRIM = 5,
    /// The file is smaller than a segment header.
    SHMPRIM_TOO_SMALL = 6,
    /// The file is smaller than its header claims.
    SHMPRIM_TRUNCATED = 7,
    /// The segment holds another kind, version, payload type or parameter.
    SHMPRIM_INCOMPATIBLE = 8,
    /// The segment's contents break an invariant.
    SHMPRIM_CORRUPTED = 9,
    /// The segment's creator died before it was ready.
    SHMPRIM_CREATOR_DIED = 10,
    /// The segment is still being initialised (open timed out).
    SHMPRIM_NOT_READY = 11,
    /// Every participant slot is held by a live process.
    SHMPRIM_TOO_MANY_PARTICIPANTS = 12,
    /// A blocking operation reached its timeout.
    SHMPRIM_TIMEOUT = 13,
    /// Nothing could be put: the object is full.
    SHMPRIM_FULL = 14,
    /// Nothing could be taken: the object is empty.
    SHMPRIM_EMPTY = 15,
    /// The object is closed (or its peer died).
    SHMPRIM_CLOSED = 16,
    /// The lock was acquired, but its previous owner died holding it.
    SHMPRIM_OWNER_DIED = 17,
    /// The lock is unrecoverable: an owner died and nobody marked it consistent.
    SHMPRIM_UNRECOVERABLE = 18,
    /// The barrier is broken.
    SHMPRIM_BROKEN_BARRIER = 19,
    /// The caller does not own the lock it released.
    SHMPRIM_NOT_OWNER = 20,
    /// The bounded semaphore would exceed its bound.
    SHMPRIM_OVERFLOW = 21,
    /// An index is out of range.
    SHMPRIM_INDEX_OUT_OF_RANGE = 22,
    /// An argument is out of its allowed range.
    SHMPRIM_INVALID_ARGUMENT = 23,
    /// A required pointer was null.
    SHMPRIM_NULL_POINTER = 24,
    /// The caller's buffer is too small; the needed size was reported.
    SHMPRIM_BUFFER_TOO_SMALL = 25,
    /// An internal error (a Rust panic was caught at the boundary).
    SHMPRIM_INTERNAL = 26,
    /// A system call failed.
    SHMPRIM_IO = 27,
    /// A signal handler ran during the wait (as `sem_wait`'s `EINTR`);
    /// nothing was done.
    SHMPRIM_INTERRUPTED = 28,
    /// The pool worker running the task died (a signal, `abort`, `exit`).
    SHMPRIM_WORKER_DIED = 29,
    /// The task function returned nonzero (or, in Rust, panicked).
    SHMPRIM_TASK_FAILED = 30,
}

use shmprim_status::*;

const ALL_STATUSES: [shmprim_status; 31] = [
    SHMPRIM_OK,
    SHMPRIM_INVALID_NAME,
    SHMPRIM_ALREADY_EXISTS,
    SHMPRIM_NOT_FOUND,
    SHMPRIM_PERMISSION_DENIED,
    SHMPRIM_NOT_SHMPRIM,
    SHMPRIM_TOO_SMALL,
    SHMPRIM_TRUNCATED,
    SHMPRIM_INCOMPATIBLE,
    SHMPRIM_CORRUPTED,
    SHMPRIM_CREATOR_DIED,
    SHMPRIM_NOT_READY,
    SHMPRIM_TOO_MANY_PARTICIPANTS,
    SHMPRIM_TIMEOUT,
    SHMPRIM_FULL,
    SHMPRIM_EMPTY,
    SHMPRIM_CLOSED,
    SHMPRIM_OWNER_DIED,
    SHMPRIM_UNRECOVERABLE,
    SHMPRIM_BROKEN_BARRIER,
    SHMPRIM_NOT_OWNER,
    SHMPRIM_OVERFLOW,
    SHMPRIM_INDEX_OUT_OF_RANGE,
    SHMPRIM_INVALID_ARGUMENT,
    SHMPRIM_NULL_POINTER,
    SHMPRIM_BUFFER_TOO_SMALL,
    SHMPRIM_INTERNAL,
    SHMPRIM_IO,
    SHMPRIM_INTERRUPTED,
    SHMPRIM_WORKER_DIED,
    SHMPRIM_TASK_FAILED,
];

impl shmprim_status {
    /// The status for a Rust error.
    pub fn from_error(err: &Error) -> shmprim_status {
        match err {
            Error::InvalidName { .. } => SHMPRIM_INVALID_NAME,
            Error::AlreadyExists { .. } => SHMPRIM_ALREADY_EXISTS,
            Error::NotFound { .. } => SHMPRIM_NOT_FOUND,
            Error::PermissionDenied { .. } => SHMPRIM_PERMISSION_DENIED,
            Error::NotShmprim { .. } => SHMPRIM_NOT_SHMPRIM,
            Error::TooSmall { .. } => SHMPRIM_TOO_SMALL,
            Error::Truncated { .. } => SHMPRIM_TRUNCATED,
            Error::Incompatible { .. } => SHMPRIM_INCOMPATIBLE,
            Error::Corrupted { .. } => SHMPRIM_CORRUPTED,
            Error::CreatorDied { .. } => SHMPRIM_CREATOR_DIED,
            Error::NotReady { .. } => SHMPRIM_NOT_READY,
            Error::TooManyParticipants { .. } => SHMPRIM_TOO_MANY_PARTICIPANTS,
            Error::Timeout { .. } => SHMPRIM_TIMEOUT,
            Error::Full { .. } => SHMPRIM_FULL,
            Error::Empty { .. } => SHMPRIM_EMPTY,
            Error::Closed { .. } => SHMPRIM_CLOSED,
            Error::Unrecoverable { .. } => SHMPRIM_UNRECOVERABLE,
            Error::OwnerDied { .. } => SHMPRIM_OWNER_DIED,
            Error::BrokenBarrier { .. } => SHMPRIM_BROKEN_BARRIER,
            Error::NotOwner { .. } => SHMPRIM_NOT_OWNER,
            Error::Overflow { .. } => SHMPRIM_OVERFLOW,
            Error::IndexOutOfRange { .. } => SHMPRIM_INDEX_OUT_OF_RANGE,
            Error::BufferTooSmall { .. } => SHMPRIM_BUFFER_TOO_SMALL,
            Error::InvalidArgument { .. } => SHMPRIM_INVALID_ARGUMENT,
            Error::Io { .. } => SHMPRIM_IO,
            Error::Interrupted { .. } => SHMPRIM_INTERRUPTED,
            Error::WorkerDied { .. } | Error::ProcessDied { .. } => SHMPRIM_WORKER_DIED,
            Error::Panicked { .. } | Error::TaskFailed { .. } => SHMPRIM_TASK_FAILED,
            // A variant this version of the C ABI does not know yet.
            _ => SHMPRIM_INTERNAL,
        }
    }

    fn description(self) -> &'static CStr {
        match self {
            SHMPRIM_OK => c"success",
            SHMPRIM_INVALID_NAME => c"invalid name",
            SHMPRIM_ALREADY_EXISTS => c"already exists",
            SHMPRIM_NOT_FOUND => c"not found",
            SHMPRIM_PERMISSION_DENIED => c"permission denied",
            SHMPRIM_NOT_SHMPRIM => c"not a shmprim segment",
            SHMPRIM_TOO_SMALL => c"file smaller than a segment header",
            SHMPRIM_TRUNCATED => c"segment smaller than its header claims",
            SHMPRIM_INCOMPATIBLE => c"incompatible segment",
            SHMPRIM_CORRUPTED => c"corrupted segment",
            SHMPRIM_CREATOR_DIED => c"creator died before the segment was ready",
            SHMPRIM_NOT_READY => c"segment not ready",
            SHMPRIM_TOO_MANY_PARTICIPANTS => c"too many participants",
            SHMPRIM_TIMEOUT => c"timed out",
            SHMPRIM_FULL => c"full",
            SHMPRIM_EMPTY => c"empty",
            SHMPRIM_CLOSED => c"closed",
            SHMPRIM_OWNER_DIED => c"previous owner died holding the lock",
            SHMPRIM_UNRECOVERABLE => c"lock unrecoverable",
            SHMPRIM_BROKEN_BARRIER => c"broken barrier",
            SHMPRIM_NOT_OWNER => c"not the owner",
            SHMPRIM_OVERFLOW => c"semaphore bound exceeded",
            SHMPRIM_INDEX_OUT_OF_RANGE => c"index out of range",
            SHMPRIM_INVALID_ARGUMENT => c"invalid argument",
            SHMPRIM_NULL_POINTER => c"null pointer",
            SHMPRIM_BUFFER_TOO_SMALL => c"buffer too small",
            SHMPRIM_INTERNAL => c"internal error",
            SHMPRIM_IO => c"system call failed",
            SHMPRIM_INTERRUPTED => c"interrupted by a signal",
            SHMPRIM_WORKER_DIED => c"the worker running the task died",
            SHMPRIM_TASK_FAILED => c"the task failed",
        }
    }
}

thread_local! {
    /// Set by [`waiting`] when a signal handler ended the current call's wait
    /// and the call failed; [`boundary`] turns the failure into
    /// `SHMPRIM_INTERRUPTED` and clears it.
    static INTERRUPTED_CALL: Cell<bool> = const { Cell::new(false) };
    /// The last error's message when it was built (an allocation); read
    /// only when `QUIET` is `None`.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
    /// The last error's message when it is a status's own description: what
    /// the frequent answers of polling loops (`FULL`, `EMPTY`, `TIMEOUT`)
    /// record. A plain cell with nothing to drop, so recording one is a single
    /// store to thread-local memory.
    static QUIET: Cell<Option<&'static CStr>> = const { Cell::new(Some(c"")) };
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "?")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(c));
    QUIET.with(|q| q.set(None));
}

/// Records `err` as this thread's last error and returns its status.
pub(crate) fn fail(err: &Error) -> shmprim_status {
    match err {
        // Nameless, and returned on every failed try of a polling loop.
        Error::Full { .. } | Error::Empty { .. } | Error::Timeout { .. } => {
            fail_quietly(shmprim_status::from_error(err))
        }
        _ => {
            set_last_error(&err.to_string());
            shmprim_status::from_error(err)
        }
    }
}

/// Records a status whose own description is the whole message (`FULL`,
/// `EMPTY`, `TIMEOUT`), without allocating, and returns it.
#[inline]
pub(crate) fn fail_quietly(status: shmprim_status) -> shmprim_status {
    QUIET.with(|q| q.set(Some(status.description())));
    status
}

/// A try's answer for the boundary: `Full` and `Empty` are recorded without
/// allocating (see `fail`); `Closed` and a corruption become the end's
/// [`Error`] (`about`), naming the ring, a corruption with its details.
#[inline]
pub(crate) fn tried<T>(
    r: Result<T, TryError>,
    about: impl FnOnce(TryError) -> Error,
) -> Result<T, shmprim_status> {
    r.map_err(|e| match e {
        TryError::Full => fail_quietly(shmprim_status::SHMPRIM_FULL),
        TryError::Empty => fail_quietly(shmprim_status::SHMPRIM_EMPTY),
        e => fail(&about(e)),
    })
}

/// Records a status with a message of our own (null pointers, bad sizes).
pub(crate) fn fail_with(status: shmprim_status, message: &str) -> shmprim_status {
    set_last_error(message);
    status
}

/// Runs `f` inside the panic boundary: a panic becomes `SHMPRIM_INTERNAL`, an
/// error its status (with the message recorded), success `SHMPRIM_OK`.
#[inline(always)]
pub(crate) fn boundary(f: impl FnOnce() -> Result<(), shmprim_status>) -> shmprim_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => SHMPRIM_OK,
        Ok(Err(status)) => {
            if INTERRUPTED_CALL.with(|c| c.replace(false)) {
                fail_with(
                    SHMPRIM_INTERRUPTED,
                    "a signal handler interrupted the wait; nothing was done",
                )
            } else {
                status
            }
        }
        Err(_) => fail_with(
            SHMPRIM_INTERNAL,
            "internal error: a Rust panic was caught at the C boundary",
        ),
    }
}

/// Converts a Rust result into the boundary's error type, recording the message.
pub(crate) fn check<T>(r: shmprim::Result<T>) -> Result<T, shmprim_status> {
    r.map_err(|e| fail(&e))
}

/// Rejects a null pointer named `what`.
#[inline]
pub(crate) fn non_null<T>(p: *const T, what: &str) -> Result<(), shmprim_status> {
    if p.is_null() {
        Err(null_pointer(what))
    } else {
        Ok(())
    }
}

/// Records an element of `size` bytes given to a `kind` of `unit`-byte
/// elements (out of line: the message is only built when it is).
#[cold]
#[inline(never)]
pub(crate) fn wrong_elem_size(size: usize, unit: usize, kind: &str) -> shmprim_status {
    fail_with(
        SHMPRIM_INVALID_ARGUMENT,
        &format!("element of {size} bytes for a {kind} of {unit}-byte elements"),
    )
}

/// Records a buffer of `size` bytes for `unit`-byte elements, writing `unit`
/// to `*needed` unless it is null.
///
/// # Safety
/// `needed` must be null or valid for a write.
#[cold]
#[inline(never)]
pub(crate) unsafe fn buffer_too_small(
    needed: *mut usize,
    size: usize,
    unit: usize,
) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { write_opt(needed, unit) };
    fail_with(
        SHMPRIM_BUFFER_TOO_SMALL,
        &format!("buffer of {size} bytes for {unit}-byte elements"),
    )
}

/// Records that the argument `what` was null (out of line: the message is
/// only built when it is).
#[cold]
#[inline(never)]
fn null_pointer(what: &str) -> shmprim_status {
    fail_with(SHMPRIM_NULL_POINTER, &format!("{what} is null"))
}

/// Reads a C string argument as UTF-8.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string.
pub(crate) unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, shmprim_status> {
    non_null(p, what)?;
    // SAFETY: non-null, and the caller guarantees NUL termination.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|_| fail_with(SHMPRIM_INVALID_NAME, &format!("{what} is not valid UTF-8")))
}

/// A static, human-readable description of a status code. Unknown codes give
/// `"unknown status"`; never returns null.
#[unsafe(no_mangle)]
pub extern "C" fn shmprim_status_str(status: i32) -> *const c_char {
    ALL_STATUSES
        .iter()
        .find(|s| **s as i32 == status)
        .map_or(c"unknown status", |s| s.description())
        .as_ptr()
}

/// The message of the last failed call on the calling thread: a successful
/// call does not change it, and it is empty on a thread where no call has
/// failed. Valid until the next shmprim call on this thread; never null.
#[unsafe(no_mangle)]
pub extern "C" fn shmprim_last_error_message() -> *const c_char {
    match QUIET.with(Cell::get) {
        Some(s) => s.as_ptr(),
        None => LAST_ERROR.with(|slot| slot.borrow().as_deref().unwrap_or(c"").as_ptr()),
    }
}

/// The library version as a static string, such as `"0.1.0"`.
#[unsafe(no_mangle)]
pub extern "C" fn shmprim_version() -> *const c_char {
    const V: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => panic!("version has no interior NUL"),
        };
    V.as_ptr()
}

/// Options flag: unlink the name when the handle is closed.
pub const SHMPRIM_UNLINK_ON_CLOSE: u32 = 1;
/// Options flag (mutexes only): priority inheritance (`PTHREAD_PRIO_INHERIT`).
pub const SHMPRIM_PRIORITY_INHERITANCE: u32 = 2;
/// Options flag (values and arrays only): no lock (Python's `lock=False`,
/// `RawValue`, `RawArray`).
pub const SHMPRIM_NO_LOCK: u32 = 4;
/// Options flag (queues, at creation): count unfinished tasks, as Python's
/// `JoinableQueue` (`shmprim_queue_task_done`, `shmprim_queue_join`).
pub const SHMPRIM_JOINABLE: u32 = 8;
/// Options flag (queues): the handle only puts. With neither this nor
/// `SHMPRIM_RECEIVE_ONLY` it puts and gets; either way it counts as a sender
/// until it is closed (see the queue functions' end of stream).
pub const SHMPRIM_SEND_ONLY: u32 = 16;
/// Options flag (queues): the handle only gets: its puts report
/// `SHMPRIM_CLOSED`, and it never holds the stream open.
pub const SHMPRIM_RECEIVE_ONLY: u32 = 32;

/// Options for the `_create` functions; pass `NULL` for the defaults (a
/// zero-filled struct means the same).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct shmprim_options {
    /// Permission bits of the new segment; `0` means `0600`.
    pub mode: u32,
    /// `SHMPRIM_UNLINK_ON_CLOSE`; `SHMPRIM_PRIORITY_INHERITANCE` for mutexes;
    /// `SHMPRIM_NO_LOCK` for values and arrays; any other bit is
    /// `SHMPRIM_INVALID_ARGUMENT`.
    pub flags: u32,
}

/// Reads optional C options: the Rust [`Options`] and the flags, rejecting
/// any flag outside `allowed` (besides `SHMPRIM_UNLINK_ON_CLOSE`).
///
/// # Safety
/// `p` must be null or point to a readable `shmprim_options`.
pub(crate) unsafe fn options(
    p: *const shmprim_options,
    allowed: u32,
) -> Result<(Options, u32), shmprim_status> {
    // SAFETY: null or readable, by the caller's contract.
    let o = unsafe { p.as_ref() }.copied().unwrap_or_default();
    let allowed = allowed | SHMPRIM_UNLINK_ON_CLOSE;
    if o.flags & !allowed != 0 {
        return Err(fail_with(
            SHMPRIM_INVALID_ARGUMENT,
            &format!(
                "unknown or unsupported option flags {:#x}",
                o.flags & !allowed
            ),
        ));
    }
    if o.mode & !0o777 != 0 {
        return Err(fail_with(
            SHMPRIM_INVALID_ARGUMENT,
            &format!("mode {:#o} has bits outside 0777", o.mode),
        ));
    }
    let roles = o.flags & (SHMPRIM_SEND_ONLY | SHMPRIM_RECEIVE_ONLY);
    let role = match roles {
        0 => shmprim::Role::Both,
        SHMPRIM_SEND_ONLY => shmprim::Role::Send,
        SHMPRIM_RECEIVE_ONLY => shmprim::Role::Receive,
        _ => {
            return Err(fail_with(
                SHMPRIM_INVALID_ARGUMENT,
                "SHMPRIM_SEND_ONLY and SHMPRIM_RECEIVE_ONLY together",
            ));
        }
    };
    let mut opts = Options::default()
        .unlink_on_drop(o.flags & SHMPRIM_UNLINK_ON_CLOSE != 0)
        .role(role)
        .joinable(o.flags & SHMPRIM_JOINABLE != 0);
    if o.mode != 0 {
        opts = opts.mode(o.mode);
    }
    Ok((opts, o.flags))
}

/// The body of every `shmprim_<object>_unlink`: removes the name if it is a
/// shmprim segment of `kind` (of any kind for `None`); processes that have it
/// open keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`,
/// `SHMPRIM_NOT_SHMPRIM` (not a shmprim segment: left alone),
/// `SHMPRIM_INCOMPATIBLE` (another kind: left alone), `SHMPRIM_INVALID_NAME`
/// or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `name` must be null or a NUL-terminated string.
pub(crate) unsafe fn unlink_name(
    name: *const c_char,
    kind: Option<shmprim::Kind>,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        check(match kind {
            Some(kind) => Segment::unlink_kind(name, kind),
            None => Segment::unlink(name),
        })
    })
}

/// Runs a call with a C timeout so that one which need not wait reads no
/// clock: a positive timeout first tries once (see [`try_first`]), negative
/// and `0` go straight to their deadline, which costs no clock read either.
/// Only for calls whose failed try changes nothing: not a barrier's wait, not
/// a condition variable's.
///
/// A call that may wait (a timeout other than `0`) is interruptible, as
/// `sem_wait` is: when a signal handler ends its wait, [`boundary`] answers
/// `SHMPRIM_INTERRUPTED`.
pub(crate) fn timed<R>(
    timeout_ns: i64,
    mut op: impl FnMut(Deadline) -> R,
    timed_out: impl Fn(&R) -> bool,
) -> R {
    if timeout_ns == 0 {
        return op(Deadline::now());
    }
    waiting(
        || {
            if timeout_ns > 0 {
                try_first(Duration::from_nanos(timeout_ns as u64), &mut op, |r| {
                    timed_out(r)
                })
            } else {
                op(Deadline::never())
            }
        },
        &timed_out,
    )
}

/// Runs a C call that may wait with interruptible waits; if a signal handler
/// ended a wait and the call failed (`failed`), [`boundary`] answers
/// `SHMPRIM_INTERRUPTED` for it.
pub(crate) fn waiting<R>(call: impl FnOnce() -> R, failed: impl Fn(&R) -> bool) -> R {
    let (r, interrupted) = interruptible_with(call);
    if interrupted && failed(&r) {
        INTERRUPTED_CALL.with(|c| c.set(true));
    }
    r
}

/// The deadline of a C timeout: negative waits forever, `0` tries once,
/// positive waits that many nanoseconds.
pub(crate) fn deadline_from_c(timeout_ns: i64) -> Deadline {
    match timeout_ns {
        t if t < 0 => Deadline::never(),
        0 => Deadline::now(),
        t => Deadline::after(Duration::from_nanos(t as u64)),
    }
}

/// Boxes `value` and hands it to C through `out` (checked non-null first).
pub(crate) fn put<T>(out: *mut *mut T, value: T) -> Result<(), shmprim_status> {
    non_null(out, "out")?;
    // SAFETY: non-null, and by every constructor's contract valid for a write;
    // C owns the box from now on and frees it with the matching `_close`.
    unsafe { out.write(Box::into_raw(Box::new(value))) };
    Ok(())
}

/// Borrows a handle passed by C, rejecting null.
///
/// # Safety
/// `p` must be null or a live handle of type `T` from this library.
#[inline]
pub(crate) unsafe fn handle<'a, T>(p: *const T, what: &str) -> Result<&'a T, shmprim_status> {
    non_null(p, what)?;
    // SAFETY: non-null, so by the caller's contract a live handle.
    Ok(unsafe { &*p })
}

/// Borrows a handle passed by C mutably (handles used by one thread at a
/// time, such as pipe ends), rejecting null.
///
/// # Safety
/// `p` must be null or a live handle of type `T` from this library that no
/// other thread uses during the call.
#[inline]
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, shmprim_status> {
    non_null(p, what)?;
    // SAFETY: non-null, so by the caller's contract a live handle used by
    // this thread alone.
    Ok(unsafe { &mut *p })
}

/// Borrows an in-place state of type `T` at `mem`, rejecting null and
/// misaligned pointers.
///
/// # Safety
/// `mem` must be null or point to a `T` initialised by the matching `_init`
/// and valid for as long as the borrow is used.
pub(crate) unsafe fn at<'a, T>(mem: *const c_void, what: &str) -> Result<&'a T, shmprim_status> {
    let p = aligned::<T>(mem.cast_mut(), what)?;
    // SAFETY: non-null and aligned; initialised and live by the caller's contract.
    Ok(unsafe { &*p })
}

/// `mem` as a `*mut T`, rejecting null and misaligned pointers.
pub(crate) fn aligned<T>(mem: *mut c_void, what: &str) -> Result<*mut T, shmprim_status> {
    non_null(mem, what)?;
    let align = std::mem::align_of::<T>();
    if mem as usize % align != 0 {
        return Err(fail_with(
            SHMPRIM_INVALID_ARGUMENT,
            &format!("{what} is not aligned to {align} bytes"),
        ));
    }
    Ok(mem.cast())
}

/// Writes `value` through an optional C out-pointer (null is skipped).
///
/// # Safety
/// `out` must be null or valid for a write of a `T`.
pub(crate) unsafe fn write_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-null, so valid for a write by the caller's contract.
        unsafe { out.write(value) };
    }
}

/// Frees a handle C got from `put` (null is ignored).
///
/// # Safety
/// `p` must be null or a handle from `put` not yet freed.
pub(crate) unsafe fn free<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: by the contract it came from Box::into_raw and is freed once.
        drop(unsafe { Box::from_raw(p) });
    }
}

#[cfg(all(test, not(shmprim_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_the_boundary_becomes_internal_with_a_message() {
        let status = boundary(|| panic!("a bug"));
        assert_eq!(status, SHMPRIM_INTERNAL);
        // SAFETY: the message is a NUL-terminated string owned by this thread.
        let msg = unsafe { CStr::from_ptr(shmprim_last_error_message()) };
        assert!(msg.to_str().unwrap().contains("panic"), "{msg:?}");
    }

    /// The last-error message follows the last failure, whether it was a
    /// status's own description (recorded without allocating) or a message
    /// built for it; a thread that never failed reads an empty message.
    #[test]
    fn the_last_error_message_follows_quiet_and_built_failures() {
        let message = || {
            // SAFETY: a NUL-terminated string owned by this thread, valid
            // until its next call, which comes after the copy.
            unsafe { CStr::from_ptr(shmprim_last_error_message()) }
                .to_str()
                .unwrap()
                .to_owned()
        };
        std::thread::spawn(move || {
            assert_eq!(message(), "");
            assert_eq!(
                fail_with(SHMPRIM_NULL_POINTER, "x is null"),
                SHMPRIM_NULL_POINTER
            );
            assert_eq!(message(), "x is null");
            assert_eq!(fail_quietly(SHMPRIM_FULL), SHMPRIM_FULL);
            assert_eq!(message(), "full");
            assert_eq!(
                fail(&Error::empty(&shmprim::ObjectName::new("q"))),
                SHMPRIM_EMPTY
            );
            assert_eq!(message(), "empty");
            assert_eq!(
                fail(&Error::invalid_argument("bad size")),
                SHMPRIM_INVALID_ARGUMENT
            );
            assert!(message().contains("bad size"), "{}", message());
            assert_eq!(fail_quietly(SHMPRIM_TIMEOUT), SHMPRIM_TIMEOUT);
            assert_eq!(message(), "timed out");
        })
        .join()
        .unwrap();
    }

    fn last_message() -> String {
        // SAFETY: the library's last-error message is never null and stays
        // valid until the next call on this thread.
        unsafe { CStr::from_ptr(shmprim_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    /// A try's answers map to their statuses; a corruption's details (read
    /// again only then) become the last-error message.
    #[test]
    fn try_answers_map_to_statuses_and_a_corruption_keeps_its_details() {
        let detail = |_| Error::corrupted("ring-x", "head 9 and tail 1 are 8 apart");
        assert_eq!(tried(Ok::<u8, TryError>(3), detail), Ok(3));
        for (e, status, message) in [
            (TryError::Full, shmprim_status::SHMPRIM_FULL, "full"),
            (TryError::Empty, shmprim_status::SHMPRIM_EMPTY, "empty"),
        ] {
            assert_eq!(tried(Err::<(), _>(e), |_| unreachable!()), Err(status));
            assert!(last_message().contains(message), "{}", last_message());
        }
        let closed = |_| Error::closed(&shmprim::ObjectName::new("ring-x"));
        assert_eq!(
            tried(Err::<(), _>(TryError::Closed), closed),
            Err(shmprim_status::SHMPRIM_CLOSED)
        );
        assert!(
            last_message().contains("\"ring-x\": closed"),
            "{}",
            last_message()
        );
        assert_eq!(
            tried(Err::<(), _>(TryError::Corrupted), detail),
            Err(shmprim_status::SHMPRIM_CORRUPTED)
        );
        let m = last_message();
        assert!(m.contains("ring-x") && m.contains("8 apart"), "{m}");
    }

    #[test]
    fn options_reject_unknown_flags_and_mode_bits_and_accept_null() {
        // SAFETY: null, or pointers to local options.
        unsafe {
            assert!(options(std::ptr::null(), 0).is_ok());
            let bad_flag = shmprim_options { mode: 0, flags: 8 };
            assert_eq!(options(&bad_flag, 0).unwrap_err(), SHMPRIM_INVALID_ARGUMENT);
            let pi = shmprim_options {
                mode: 0,
                flags: SHMPRIM_PRIORITY_INHERITANCE,
            };
            assert_eq!(options(&pi, 0).unwrap_err(), SHMPRIM_INVALID_ARGUMENT);
            assert_eq!(
                options(&pi, SHMPRIM_PRIORITY_INHERITANCE).unwrap().1,
                SHMPRIM_PRIORITY_INHERITANCE
            );
            let bad_mode = shmprim_options {
                mode: 0o4755,
                flags: 0,
            };
            assert_eq!(options(&bad_mode, 0).unwrap_err(), SHMPRIM_INVALID_ARGUMENT);
        }
    }

    #[test]
    fn timeouts_negative_forever_zero_now_positive_after() {
        assert!(deadline_from_c(-1).is_never());
        assert!(deadline_from_c(0).has_passed());
        let d = deadline_from_c(60_000_000_000);
        assert!(!d.is_never() && !d.has_passed());
    }

    /// The sizes and alignments the header promises for the in-place forms hold
    /// for the states the library writes there.
    #[test]
    fn in_place_size_and_align_macros_fit_the_rust_states() {
        let fits = |size: usize, align: usize, need: usize, need_align: usize| {
            size >= need && align >= need_align && align % need_align == 0
        };
        assert!(fits(
            SHMPRIM_MUTEX_SIZE,
            SHMPRIM_MUTEX_ALIGN,
            shmprim::RawMutex::SIZE,
            shmprim::RawMutex::ALIGN
        ));
        assert!(fits(
            SHMPRIM_RMUTEX_SIZE,
            SHMPRIM_RMUTEX_ALIGN,
            shmprim::RawReentrantMutex::SIZE,
            shmprim::RawReentrantMutex::ALIGN
        ));
        assert!(fits(
            SHMPRIM_CONDVAR_SIZE,
            SHMPRIM_CONDVAR_ALIGN,
            shmprim::RawCondvar::SIZE,
            shmprim::RawCondvar::ALIGN
        ));
        assert!(fits(
            SHMPRIM_SEMAPHORE_SIZE,
            SHMPRIM_SEMAPHORE_ALIGN,
            shmprim::semaphore::SemaphoreState::SIZE,
            shmprim::semaphore::SemaphoreState::ALIGN
        ));
        assert!(fits(
            SHMPRIM_EVENT_SIZE,
            SHMPRIM_EVENT_ALIGN,
            shmprim::event::EventState::SIZE,
            shmprim::event::EventState::ALIGN
        ));
        assert!(fits(
            SHMPRIM_BARRIER_SIZE,
            SHMPRIM_BARRIER_ALIGN,
            shmprim::barrier::BarrierState::SIZE,
            shmprim::barrier::BarrierState::ALIGN
        ));
    }

    extern "C" fn ignore_signal(_: libc::c_int) {}

    /// A blocking C call interrupted by a signal handler, even one installed
    /// with `SA_RESTART` (as `signal()` does), answers `SHMPRIM_INTERRUPTED`
    /// with its message; a try is never interrupted.
    #[test]
    fn a_waiting_c_call_answers_interrupted_when_a_handler_runs() {
        use std::sync::atomic::{AtomicBool, Ordering};
        // SAFETY: a zeroed sigaction is valid; the handler does nothing.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
        }
        let mut q = std::ptr::null_mut();
        // SAFETY: out-pointer to a local.
        let made = unsafe { shmprim_queue_anonymous(4, 8, 8, &mut q) };
        assert_eq!(made, SHMPRIM_OK);
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        let done = AtomicBool::new(false);
        let status = std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..500 {
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    // SAFETY: `me` waits for this scope; SIGUSR2 has a handler.
                    unsafe { libc::pthread_kill(me, libc::SIGUSR2) };
                }
            });
            let mut v = 0u64;
            // SAFETY: `q` is live; `v` is a writable local of 8 bytes.
            let st =
                unsafe { shmprim_queue_get(q, (&raw mut v).cast(), 8, std::ptr::null_mut(), -1) };
            done.store(true, Ordering::SeqCst);
            st
        });
        assert_eq!(status, SHMPRIM_INTERRUPTED);
        assert!(last_message().contains("signal"), "{}", last_message());
        let mut v = 0u64;
        // SAFETY: as above.
        let st = unsafe { shmprim_queue_get(q, (&raw mut v).cast(), 8, std::ptr::null_mut(), 0) };
        assert_eq!(st, SHMPRIM_EMPTY);
        // SAFETY: closed once.
        unsafe { shmprim_queue_close(q) };
    }
}
