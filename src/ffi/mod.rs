//! The C ABI: `shmprim_<object>_<verb>` functions over opaque handles, one status
//! enum for the whole library, a thread-local message for the last error, and no
//! panic ever crossing the boundary.
//!
//! `include/shmprim.h` is generated from this module by cbindgen (`build.rs`); a
//! test fails when the checked-in copy is stale.
//!
//! Conventions, for every function:
//! - Constructors fill an out-pointer and return a [`shmprim_status`]; `_close`
//!   frees a handle (null is ignored); `_unlink` removes a name.
//! - Null pointers are rejected with `SHMPRIM_NULL_POINTER`, never dereferenced.
//! - Timeouts are `int64_t` nanoseconds: negative waits forever, `0` tries once.
//! - On failure, [`shmprim_last_error_message`] describes the error on this thread.
#![allow(non_camel_case_types)]

mod inspect;
mod segment;

pub use inspect::*;
pub use segment::*;

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::Error;

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
}

use shmprim_status::*;

const ALL_STATUSES: [shmprim_status; 28] = [
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
            Error::Timeout => SHMPRIM_TIMEOUT,
            Error::Full => SHMPRIM_FULL,
            Error::Empty => SHMPRIM_EMPTY,
            Error::Closed => SHMPRIM_CLOSED,
            Error::Unrecoverable { .. } => SHMPRIM_UNRECOVERABLE,
            Error::BrokenBarrier => SHMPRIM_BROKEN_BARRIER,
            Error::NotOwner => SHMPRIM_NOT_OWNER,
            Error::Overflow { .. } => SHMPRIM_OVERFLOW,
            Error::IndexOutOfRange { .. } => SHMPRIM_INDEX_OUT_OF_RANGE,
            Error::InvalidArgument { .. } => SHMPRIM_INVALID_ARGUMENT,
            Error::Io { .. } => SHMPRIM_IO,
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
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "?")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = c);
}

/// Records `err` as this thread's last error and returns its status.
pub(crate) fn fail(err: &Error) -> shmprim_status {
    set_last_error(&err.to_string());
    shmprim_status::from_error(err)
}

/// Records a status with a message of our own (null pointers, bad sizes).
pub(crate) fn fail_with(status: shmprim_status, message: &str) -> shmprim_status {
    set_last_error(message);
    status
}

/// Runs `f` inside the panic boundary: a panic becomes `SHMPRIM_INTERNAL`, an
/// error its status (with the message recorded), success `SHMPRIM_OK`.
pub(crate) fn boundary(f: impl FnOnce() -> Result<(), shmprim_status>) -> shmprim_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => SHMPRIM_OK,
        Ok(Err(status)) => status,
        Err(_) => fail_with(
            SHMPRIM_INTERNAL,
            "internal error: a Rust panic was caught at the C boundary",
        ),
    }
}

/// Converts a Rust result into the boundary's error type, recording the message.
pub(crate) fn check<T>(r: crate::Result<T>) -> Result<T, shmprim_status> {
    r.map_err(|e| fail(&e))
}

/// Rejects a null pointer named `what`.
pub(crate) fn non_null<T>(p: *const T, what: &str) -> Result<(), shmprim_status> {
    if p.is_null() {
        Err(fail_with(SHMPRIM_NULL_POINTER, &format!("{what} is null")))
    } else {
        Ok(())
    }
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

/// The message of the last error on the calling thread (empty if none). Valid
/// until the next shmprim call on this thread; never null.
#[unsafe(no_mangle)]
pub extern "C" fn shmprim_last_error_message() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
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
