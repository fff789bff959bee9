//! C functions for the robust mutex (`shmprim_mutex_*`), Python's `Lock`: a
//! named handle guarding a byte payload, and in-place forms over [`RawMutex`]
//! for memory the program maps itself.
//!
//! A named C mutex is the same object as a Rust [`crate::Mutex<T>`]: the C side
//! creates it with a payload of `data_size` bytes aligned to `data_align` (a
//! `Bytes` payload type, which a Rust `Mutex<T>` of that size and alignment
//! opens), and opens any mutex whatever its payload, learning the payload's
//! size from the segment header.

use std::ffi::{c_char, c_void};
use std::mem::ManuallyDrop;

use super::{
    SHMPRIM_PRIORITY_INHERITANCE, aligned, at, boundary, c_str, check, fail, fail_with, free,
    handle, options, put, shmprim_options, shmprim_status, timed, unlink_name, write_opt,
};
use crate::error::{Error, Result};
use crate::mutex::{
    LockStatus, MutexOptions, RawMutex, check_lock_segment_for, lock_builder_for, with_name,
};
use crate::segment::{Disposition, HEADER_SIZE, Kind, Segment, SegmentBuilder, TypeCode, TypeDesc};
use crate::wait::is_timeout;

/// Bytes to reserve for an in-place mutex (`shmprim_mutex_init`); at least
/// the size of the C library's `pthread_mutex_t`.
pub const SHMPRIM_MUTEX_SIZE: usize = 64;
/// Alignment an in-place mutex needs.
pub const SHMPRIM_MUTEX_ALIGN: usize = 8;

const _: () = assert!(RawMutex::SIZE <= SHMPRIM_MUTEX_SIZE);
const _: () = assert!(RawMutex::ALIGN <= SHMPRIM_MUTEX_ALIGN);

/// The status of a successful pthread lock: `SHMPRIM_OK`, or
/// `SHMPRIM_OWNER_DIED` (held, previous owner died).
pub(crate) fn lock_status(status: LockStatus) -> std::result::Result<(), shmprim_status> {
    match status {
        LockStatus::Acquired => Ok(()),
        LockStatus::OwnerDied => Err(fail_with(
            shmprim_status::SHMPRIM_OWNER_DIED,
            "lock acquired, but its previous owner died holding it: check the data, then call _consistent",
        )),
    }
}

/// The mutex options of C `flags` (already checked against the allowed bits).
pub(crate) fn mutex_options(flags: u32) -> MutexOptions {
    MutexOptions {
        priority_inheritance: flags & SHMPRIM_PRIORITY_INHERITANCE != 0,
    }
}

/// Rejects in-place flags other than `SHMPRIM_PRIORITY_INHERITANCE`.
pub(crate) fn in_place_flags(flags: u32) -> std::result::Result<MutexOptions, shmprim_status> {
    if flags & !SHMPRIM_PRIORITY_INHERITANCE != 0 {
        return Err(fail_with(
            shmprim_status::SHMPRIM_INVALID_ARGUMENT,
            &format!("unknown mutex flags {flags:#x}"),
        ));
    }
    Ok(mutex_options(flags))
}

/// A lock segment opened from C: the lock state at offset 0 of the data area,
/// then a byte payload. Shared by the mutex and the reentrant mutex.
pub(crate) struct LockSegment {
    seg: ManuallyDrop<Segment>,
    offset: usize,
    size: usize,
    /// Whether the lock is held by a thread of this process (to keep the
    /// mapping alive when the handle is closed while held, as `Mutex` does).
    held_here: fn(&LockSegment) -> bool,
}

/// How a lock kind is set up: its segment kind, state size and `init`.
pub(crate) struct LockKind {
    pub(crate) kind: Kind,
    pub(crate) lock_size: usize,
    pub(crate) init: fn(*mut u8, &MutexOptions) -> Result<()>,
    pub(crate) held_here: fn(&LockSegment) -> bool,
}

fn payload(size: usize, align: usize) -> std::result::Result<TypeDesc, shmprim_status> {
    let align = u32::try_from(align).map_err(|_| {
        fail_with(
            shmprim_status::SHMPRIM_INVALID_ARGUMENT,
            &format!("data_align {align} is too large"),
        )
    })?;
    Ok(TypeDesc::new(TypeCode::Bytes, size as u64, align, ""))
}

impl LockSegment {
    /// Creates the named lock (`name` `None`: anonymous).
    pub(crate) fn create(
        k: &LockKind,
        name: Option<&str>,
        size: usize,
        align: usize,
        mopts: &MutexOptions,
        opts: &crate::segment::Options,
    ) -> std::result::Result<LockSegment, shmprim_status> {
        let b = check(lock_builder_for(
            k.kind,
            k.lock_size,
            payload(size, align)?,
            mopts,
            opts,
        ))?;
        let init = |data: std::ptr::NonNull<u8>, _| (k.init)(data.as_ptr(), mopts);
        let seg = match name {
            Some(name) => check(b.create_with(name, init))?,
            None => check(b.anonymous_with(init))?,
        };
        Self::checked(k, seg)
    }

    /// Opens the named lock whatever its payload.
    pub(crate) fn open(
        k: &LockKind,
        name: &str,
    ) -> std::result::Result<LockSegment, shmprim_status> {
        let seg = check(SegmentBuilder::new(k.kind).any_payload().open(name))?;
        Self::checked(k, seg)
    }

    /// Opens the named lock or creates it with a zeroed payload of `size`
    /// bytes aligned to `align`; an existing one must have a payload of that
    /// size and alignment.
    pub(crate) fn open_or_create(
        k: &LockKind,
        name: &str,
        size: usize,
        align: usize,
    ) -> std::result::Result<(LockSegment, Disposition), shmprim_status> {
        let mopts = MutexOptions::default();
        let b = check(lock_builder_for(
            k.kind,
            k.lock_size,
            payload(size, align)?,
            &mopts,
            &Default::default(),
        ))?;
        let (seg, how) =
            check(b.open_or_create_with(name, |data, _| (k.init)(data.as_ptr(), &mopts)))?;
        Ok((Self::checked(k, seg)?, how))
    }

    /// Validates the layout against the payload the header describes.
    fn checked(k: &LockKind, seg: Segment) -> std::result::Result<LockSegment, shmprim_status> {
        let p = seg.info().payload;
        let align = p.align as usize;
        if !align.is_power_of_two() || align > HEADER_SIZE || p.size > seg.len() as u64 {
            return Err(fail(&Error::corrupted(
                seg.display_name(),
                format!("lock payload of {} bytes aligned to {}", p.size, p.align),
            )));
        }
        let offset = check(check_lock_segment_for(&seg, k.lock_size, p.size, align))?;
        Ok(LockSegment {
            seg: ManuallyDrop::new(seg),
            offset,
            size: p.size as usize,
            held_here: k.held_here,
        })
    }

    /// The lock state's address (the start of the data area).
    pub(crate) fn state_ptr(&self) -> *mut u8 {
        self.seg.as_ptr()
    }

    /// Fills in the segment's name in an error from the raw lock.
    pub(crate) fn err(&self, e: Error) -> shmprim_status {
        fail(&with_name(e, self.seg.display_name()))
    }

    /// The payload's address.
    pub(crate) fn data(&self) -> *mut c_void {
        self.seg.as_ptr().wrapping_add(self.offset).cast()
    }

    /// The payload's size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

impl Drop for LockSegment {
    fn drop(&mut self) {
        if (self.held_here)(self) {
            // Closed while a thread of this process holds the lock: the C
            // library's robust list points into the mapping, so keep it mapped
            // (as `crate::Mutex` does for a leaked guard).
            return;
        }
        // SAFETY: dropped exactly once, here.
        unsafe { ManuallyDrop::drop(&mut self.seg) };
    }
}

/// An open named (or anonymous) mutex guarding a byte payload. Opaque; free it
/// with `shmprim_mutex_close`. One handle may be used by many threads.
pub struct shmprim_mutex {
    lock: LockSegment,
}

impl shmprim_mutex {
    fn raw(&self) -> &RawMutex {
        // SAFETY: the data area starts with an initialised RawMutex (created by
        // `init_raw`, layout checked on open), mapped while `self` lives.
        unsafe { &*self.lock.state_ptr().cast::<RawMutex>() }
    }
}

fn init_raw(p: *mut u8, mopts: &MutexOptions) -> Result<()> {
    // SAFETY: `p` is a fresh, page-aligned data area of at least
    // RawMutex::SIZE bytes that nobody else sees before it is published.
    unsafe { RawMutex::init(p.cast(), mopts) }
}

fn held_here(l: &LockSegment) -> bool {
    // SAFETY: as in `shmprim_mutex::raw`.
    unsafe { &*l.state_ptr().cast::<RawMutex>() }.held_by_current_process()
}

const MUTEX: LockKind = LockKind {
    kind: Kind::Mutex,
    lock_size: RawMutex::SIZE,
    init: init_raw,
    held_here,
};

/// Creates the named mutex guarding `data_size` zeroed bytes aligned to
/// `data_align` (a power of two up to 4096). A Rust `Mutex<T>` with
/// `size_of::<T>() == data_size` and `align_of::<T>() == data_align` opens
/// the same object. `opts` may be `NULL`; its flags may include
/// `SHMPRIM_PRIORITY_INHERITANCE` and `SHMPRIM_UNLINK_ON_CLOSE`.
///
/// Does not block. Returns `SHMPRIM_OK` (and a new handle in `*out`, owned by
/// the caller, freed with `shmprim_mutex_close`), `SHMPRIM_ALREADY_EXISTS`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_INVALID_ARGUMENT` (bad alignment, flags
/// or mode; priority inheritance unsupported), `SHMPRIM_NULL_POINTER`, or
/// `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_create(
    name: *const c_char,
    data_size: usize,
    data_align: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_mutex,
) -> shmprim_status {
    boundary(|| {
        super::non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: null or readable, by the contract.
        let (opts, flags) = unsafe { options(opts, SHMPRIM_PRIORITY_INHERITANCE) }?;
        let lock = LockSegment::create(
            &MUTEX,
            Some(name),
            data_size,
            data_align,
            &mutex_options(flags),
            &opts,
        )?;
        put(out, shmprim_mutex { lock })
    })
}

/// Opens the existing mutex `name`, whatever its payload (see
/// `shmprim_mutex_data_size`), waiting up to 5 s for a creator still
/// initialising it. Returns `SHMPRIM_OK` (new handle in `*out`, owned by the
/// caller), `SHMPRIM_NOT_FOUND`, `SHMPRIM_INCOMPATIBLE` (another kind of
/// object, or another C library's mutex layout), `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_NULL_POINTER`, or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_open(
    name: *const c_char,
    out: *mut *mut shmprim_mutex,
) -> shmprim_status {
    boundary(|| {
        super::non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let lock = LockSegment::open(&MUTEX, name)?;
        put(out, shmprim_mutex { lock })
    })
}

/// Opens the mutex `name`, or creates it with `data_size` zeroed bytes aligned
/// to `data_align`; exactly one of several racing callers creates it. An
/// existing mutex with another payload size or alignment is
/// `SHMPRIM_INCOMPATIBLE`. `created` (may be `NULL`) receives whether this
/// call created it. Ownership of `*out` as for `shmprim_mutex_create`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write; `created`
/// null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_open_or_create(
    name: *const c_char,
    data_size: usize,
    data_align: usize,
    out: *mut *mut shmprim_mutex,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        super::non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (lock, how) = LockSegment::open_or_create(&MUTEX, name, data_size, data_align)?;
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == Disposition::Created) };
        put(out, shmprim_mutex { lock })
    })
}

/// Creates an anonymous mutex (no name) guarding `data_size` zeroed bytes,
/// shared with children forked after this call. Statuses and ownership as for
/// `shmprim_mutex_create`.
///
/// # Safety
/// `opts` must be null or readable; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_anonymous(
    data_size: usize,
    data_align: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_mutex,
) -> shmprim_status {
    boundary(|| {
        super::non_null(out, "out")?;
        // SAFETY: null or readable, by the contract.
        let (opts, flags) = unsafe { options(opts, SHMPRIM_PRIORITY_INHERITANCE) }?;
        let lock = LockSegment::create(
            &MUTEX,
            None,
            data_size,
            data_align,
            &mutex_options(flags),
            &opts,
        )?;
        put(out, shmprim_mutex { lock })
    })
}

/// Closes a handle (null is ignored). If a thread of this process still holds
/// the lock, the mapping is kept (the C library's robust list points into it)
/// and only the handle is freed. The mutex itself remains until unlinked.
///
/// # Safety
/// `m` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_close(m: *mut shmprim_mutex) {
    // SAFETY: forwarded contract.
    unsafe { free(m) }
}

/// Removes the name `name`; processes that have the mutex open keep it.
/// Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`, `SHMPRIM_INVALID_NAME` or
/// `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name) }
}

/// Locks the mutex, waiting up to `timeout_ns` nanoseconds (negative: forever;
/// `0`: try once). Returns:
/// - `SHMPRIM_OK`: locked;
/// - `SHMPRIM_OWNER_DIED`: locked, but the previous owner died holding it; the
///   data may be half-updated. Repair it and call `shmprim_mutex_consistent`
///   before unlocking, or the mutex becomes unrecoverable;
/// - `SHMPRIM_TIMEOUT`: not locked (someone else holds it);
/// - `SHMPRIM_UNRECOVERABLE`: not locked, never again lockable;
/// - `SHMPRIM_INVALID_ARGUMENT`: this thread already holds it (not reentrant);
/// - `SHMPRIM_NULL_POINTER`.
///
/// The lock belongs to the calling thread, which must unlock it.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_lock(
    m: *const shmprim_mutex,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let m = unsafe { handle(m, "mutex") }?;
        let status =
            timed(timeout_ns, |d| m.raw().lock(d), is_timeout).map_err(|e| m.lock.err(e))?;
        lock_status(status)
    })
}

/// `shmprim_mutex_lock(m, 0)`: locks if free, else `SHMPRIM_TIMEOUT` at once.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_trylock(m: *const shmprim_mutex) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { shmprim_mutex_lock(m, 0) }
}

/// Unlocks. Does not block. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_OWNER` (the
/// calling thread does not hold it; nothing changes) or `SHMPRIM_NULL_POINTER`.
/// Unlocking after `SHMPRIM_OWNER_DIED` without `shmprim_mutex_consistent`
/// makes the mutex unrecoverable. Pointers from `shmprim_mutex_data` must not
/// be used until the mutex is locked again.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_unlock(m: *const shmprim_mutex) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let m = unsafe { handle(m, "mutex") }?;
        // SAFETY: C holds no Rust references into the payload.
        unsafe { m.raw().unlock_checked() }.map_err(|e| m.lock.err(e))
    })
}

/// Marks the guarded data consistent after `SHMPRIM_OWNER_DIED`, so the mutex
/// stays usable once unlocked. Does not block. Returns `SHMPRIM_OK` (also when
/// the mutex was not in the owner-died state) or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_consistent(m: *const shmprim_mutex) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let m = unsafe { handle(m, "mutex") }?;
        m.raw().mark_consistent().map_err(|e| m.lock.err(e))
    })
}

/// The guarded data (`shmprim_mutex_data_size` bytes, aligned as created),
/// valid until the handle is closed; use it only while holding the lock. Null
/// for a null handle. The memory belongs to the mutex, not to the caller.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_data(m: *const shmprim_mutex) -> *mut c_void {
    // SAFETY: null or live, by the contract.
    unsafe { m.as_ref() }.map_or(std::ptr::null_mut(), |m| m.lock.data())
}

/// Size in bytes of the guarded data; 0 for a null handle.
///
/// # Safety
/// `m` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_data_size(m: *const shmprim_mutex) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { m.as_ref() }.map_or(0, |m| m.lock.size())
}

/// The raw lock of a handle, for the condvar functions.
pub(crate) fn raw_of(m: &shmprim_mutex) -> &RawMutex {
    m.raw()
}

/// The error mapper of a handle, for the condvar functions.
pub(crate) fn err_of(m: &shmprim_mutex, e: Error) -> shmprim_status {
    m.lock.err(e)
}

// ------------------------------------------------------------------ in place

/// Writes a fresh, unlocked robust process-shared mutex at `mem`
/// (`SHMPRIM_MUTEX_SIZE` bytes aligned to `SHMPRIM_MUTEX_ALIGN`, in memory
/// the caller owns: a struct in a `MAP_SHARED` mapping, say), as
/// `pthread_mutex_init` does. `flags`: `0` or `SHMPRIM_PRIORITY_INHERITANCE`.
/// Does not block. Returns `SHMPRIM_OK`, `SHMPRIM_NULL_POINTER`, or
/// `SHMPRIM_INVALID_ARGUMENT` (misaligned `mem`, unknown flags, priority
/// inheritance unsupported). There is nothing to destroy.
///
/// # Safety
/// `mem` must be null or valid for writes of `SHMPRIM_MUTEX_SIZE` bytes, and
/// no thread or process may be using a mutex there.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_init(mem: *mut c_void, flags: u32) -> shmprim_status {
    boundary(|| {
        let p = aligned::<RawMutex>(mem, "mem")?;
        let mopts = in_place_flags(flags)?;
        // SAFETY: non-null and aligned; valid and unused by the contract.
        check(unsafe { RawMutex::init(p, &mopts) })
    })
}

/// `shmprim_mutex_lock` on an in-place mutex: same timeouts and statuses
/// (plus `SHMPRIM_INVALID_ARGUMENT` for a misaligned `mem`).
///
/// # Safety
/// `mem` must be null or a mutex made by `shmprim_mutex_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_lock_at(
    mem: *mut c_void,
    timeout_ns: i64,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null, or an initialised mutex by the contract.
        let m = unsafe { at::<RawMutex>(mem, "mem") }?;
        lock_status(check(timed(timeout_ns, |d| m.lock(d), is_timeout))?)
    })
}

/// `shmprim_mutex_unlock` on an in-place mutex.
///
/// # Safety
/// `mem` must be null or a mutex made by `shmprim_mutex_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_unlock_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null, or an initialised mutex by the contract.
        let m = unsafe { at::<RawMutex>(mem, "mem") }?;
        // SAFETY: C holds no Rust references into the data.
        check(unsafe { m.unlock_checked() })
    })
}

/// `shmprim_mutex_consistent` on an in-place mutex.
///
/// # Safety
/// `mem` must be null or a mutex made by `shmprim_mutex_init`, mapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_mutex_consistent_at(mem: *mut c_void) -> shmprim_status {
    boundary(|| {
        // SAFETY: null, or an initialised mutex by the contract.
        let m = unsafe { at::<RawMutex>(mem, "mem") }?;
        check(m.mark_consistent())
    })
}
