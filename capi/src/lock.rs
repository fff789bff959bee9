//! What the C mutex (`shmprim_mutex_*`) and reentrant mutex
//! (`shmprim_rmutex_*`) share: both are a [`ByteLock`] of their raw lock, and
//! each of their functions is one call of the generic body here.

use std::ffi::{c_char, c_void};

use super::mutex::{lock_status, mutex_options};
use super::{
    SHMPRIM_PRIORITY_INHERITANCE, boundary, c_str, check, fail, handle, options, put,
    shmprim_options, shmprim_status, timed, write_opt,
};
use shmprim::mutex::{ByteLock, SegmentLock};
use shmprim::segment::Disposition;
use shmprim::wait::is_timeout;

/// A C handle that holds a [`ByteLock`].
pub(crate) trait LockHandle: Sized {
    /// The raw lock heading the segment.
    type Raw: SegmentLock;
    /// What C calls the object in messages (`"mutex"`, `"rmutex"`).
    const WHAT: &'static str;
    /// The handle around `lock`.
    fn wrap(lock: ByteLock<Self::Raw>) -> Self;
    /// The lock inside.
    fn lock(&self) -> &ByteLock<Self::Raw>;
}

/// `_create` (`name` given) and `_anonymous` (`name` `None`).
///
/// # Safety
/// `name` null or NUL-terminated; `opts` null or readable; `out` valid for a
/// write.
pub(crate) unsafe fn create<H: LockHandle>(
    name: Option<*const c_char>,
    data_size: usize,
    data_align: usize,
    opts: *const shmprim_options,
    out: *mut *mut H,
) -> shmprim_status {
    boundary(|| {
        super::non_null(out, "out")?;
        let name = match name {
            // SAFETY: the caller passes a NUL-terminated string or null.
            Some(p) => Some(unsafe { c_str(p, "name") }?),
            None => None,
        };
        // SAFETY: null or readable, by the contract.
        let (opts, flags) = unsafe { options(opts, SHMPRIM_PRIORITY_INHERITANCE) }?;
        let lock = check(ByteLock::create(
            name,
            data_size,
            data_align,
            &mutex_options(flags),
            &opts,
        ))?;
        put(out, H::wrap(lock))
    })
}

/// `_open`.
///
/// # Safety
/// `name` null or NUL-terminated; `out` valid for a write.
pub(crate) unsafe fn open<H: LockHandle>(name: *const c_char, out: *mut *mut H) -> shmprim_status {
    boundary(|| {
        super::non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        put(out, H::wrap(check(ByteLock::open(name))?))
    })
}

/// `_open_or_create`.
///
/// # Safety
/// `name` null or NUL-terminated; `out` valid for a write; `created` null or
/// valid for a write.
pub(crate) unsafe fn open_or_create<H: LockHandle>(
    name: *const c_char,
    data_size: usize,
    data_align: usize,
    out: *mut *mut H,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        super::non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (lock, how) = check(ByteLock::open_or_create(name, data_size, data_align))?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == Disposition::Created) };
        put(out, H::wrap(lock))
    })
}

/// `_lock`.
///
/// # Safety
/// `m` null or a live handle.
pub(crate) unsafe fn lock<H: LockHandle>(m: *const H, timeout_ns: i64) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let m = unsafe { handle(m, H::WHAT) }?.lock();
        let status = timed(timeout_ns, |d| m.lock_until(d), is_timeout).map_err(|e| fail(&e))?;
        lock_status(status)
    })
}

/// `_unlock`.
///
/// # Safety
/// `m` null or a live handle.
pub(crate) unsafe fn unlock<H: LockHandle>(m: *const H) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let m = unsafe { handle(m, H::WHAT) }?.lock();
        // SAFETY: C holds no Rust references into the payload.
        unsafe { m.unlock() }.map_err(|e| fail(&e))
    })
}

/// `_consistent`.
///
/// # Safety
/// `m` null or a live handle.
pub(crate) unsafe fn consistent<H: LockHandle>(m: *const H) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let m = unsafe { handle(m, H::WHAT) }?.lock();
        m.raw().mark_consistent().map_err(|e| fail(&m.named(e)))
    })
}

/// `_data`: null for a null handle.
///
/// # Safety
/// `m` null or a live handle.
pub(crate) unsafe fn data<H: LockHandle>(m: *const H) -> *mut c_void {
    // SAFETY: null or live, by the contract.
    unsafe { m.as_ref() }.map_or(std::ptr::null_mut(), |m| m.lock().data_ptr().cast())
}

/// `_data_size`: 0 for a null handle.
///
/// # Safety
/// `m` null or a live handle.
pub(crate) unsafe fn data_size<H: LockHandle>(m: *const H) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { m.as_ref() }.map_or(0, |m| m.lock().data_size())
}

/// `_locked`: `false` for a null handle.
///
/// # Safety
/// `m` null or a live handle.
pub(crate) unsafe fn locked<H: LockHandle>(m: *const H) -> bool {
    // SAFETY: null or live, by the contract.
    unsafe { m.as_ref() }.is_some_and(|m| m.lock().raw().is_locked())
}
