//! C functions for raw segments (`shmprim_segment_*`), Python's `SharedMemory`.

use std::ffi::c_char;

use super::{boundary, c_str, check, non_null, shmprim_status, unlink_name};
use shmprim::segment::{Disposition, Kind, Segment, SegmentBuilder};

/// An open raw segment. Opaque; free it with `shmprim_segment_close`.
pub struct shmprim_segment {
    inner: Segment,
}

fn put<T>(out: *mut *mut T, value: T) {
    // SAFETY: callers checked `out` is non-null; C owns the storage it points to.
    unsafe { out.write(Box::into_raw(Box::new(value))) };
}

/// Creates the raw segment `name` with `size` bytes of zeroed data and
/// permission bits `mode` (`0` means the default `0600`). Does not block.
/// Returns `SHMPRIM_OK`, `SHMPRIM_ALREADY_EXISTS` (the name is taken),
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_INVALID_ARGUMENT` (size or mode),
/// `SHMPRIM_NULL_POINTER`, `SHMPRIM_PERMISSION_DENIED` or `SHMPRIM_IO`.
///
/// On success `*out` holds a new handle owned by the caller.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_segment_create(
    name: *const c_char,
    size: usize,
    mode: u32,
    out: *mut *mut shmprim_segment,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let mode = if mode == 0 {
            shmprim::segment::DEFAULT_MODE
        } else {
            mode
        };
        let seg = check(
            SegmentBuilder::new(Kind::Raw)
                .data_size(size as u64)
                .mode(mode)
                .create(name),
        )?;
        put(out, shmprim_segment { inner: seg });
        Ok(())
    })
}

/// Opens the existing raw segment `name`, waiting up to 5 s if its creator is
/// still initialising it. Fails with `SHMPRIM_NOT_FOUND`, `SHMPRIM_INCOMPATIBLE`
/// (another kind), or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_segment_open(
    name: *const c_char,
    out: *mut *mut shmprim_segment,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let seg = check(Segment::open(name))?;
        put(out, shmprim_segment { inner: seg });
        Ok(())
    })
}

/// Opens the raw segment `name`, creating it with `size` bytes if it does not
/// exist; exactly one of several racing callers creates it (also over a
/// segment whose creator died while initialising it). `created` (may be
/// null) receives whether this call created it. Returns the statuses of
/// `shmprim_segment_create` and `shmprim_segment_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` must be valid for a write;
/// `created` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_segment_open_or_create(
    name: *const c_char,
    size: usize,
    out: *mut *mut shmprim_segment,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let (seg, how) = check(Segment::open_or_create(name, size))?;
        if !created.is_null() {
            // SAFETY: non-null and, by the contract, valid for a write.
            unsafe { created.write(how == Disposition::Created) };
        }
        put(out, shmprim_segment { inner: seg });
        Ok(())
    })
}

/// Creates an anonymous raw segment (`memfd`) of `size` bytes, shared with
/// children forked afterwards. Returns `SHMPRIM_OK`,
/// `SHMPRIM_INVALID_ARGUMENT` (size), `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_segment_anonymous(
    size: usize,
    out: *mut *mut shmprim_segment,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let seg = check(Segment::anonymous(size))?;
        put(out, shmprim_segment { inner: seg });
        Ok(())
    })
}

/// Closes a handle (null is ignored). The segment itself remains until unlinked.
///
/// # Safety
/// `seg` must be null or a handle from this library not yet closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_segment_close(seg: *mut shmprim_segment) {
    if !seg.is_null() {
        // SAFETY: by the contract, `seg` came from Box::into_raw and is closed once.
        drop(unsafe { Box::from_raw(seg) });
    }
}

/// Removes the name `name` if it is a shmprim segment of any kind; processes
/// that have it open keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`,
/// `SHMPRIM_NOT_SHMPRIM` (a file of another program: left alone),
/// `SHMPRIM_INVALID_NAME` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_segment_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, None) }
}

/// The segment's data area (page aligned), valid until the handle is closed;
/// null for a null handle.
///
/// # Safety
/// `seg` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_segment_data(seg: *const shmprim_segment) -> *mut u8 {
    // SAFETY: by the contract, non-null means a live handle.
    unsafe { seg.as_ref() }.map_or(std::ptr::null_mut(), |s| s.inner.as_ptr())
}

/// Size of the segment's data area in bytes; 0 for a null handle.
///
/// # Safety
/// `seg` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_segment_size(seg: *const shmprim_segment) -> usize {
    // SAFETY: by the contract, non-null means a live handle.
    unsafe { seg.as_ref() }.map_or(0, |s| s.inner.len())
}

/// Number of live participants (processes holding the segment open, this handle
/// included) written to `*count`. Returns `SHMPRIM_OK`, `SHMPRIM_NULL_POINTER`
/// or `SHMPRIM_IO`.
///
/// # Safety
/// `seg` must be null or a live handle; `count` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_segment_live_participants(
    seg: *const shmprim_segment,
    count: *mut u32,
) -> shmprim_status {
    boundary(|| {
        non_null(seg, "seg")?;
        non_null(count, "count")?;
        // SAFETY: non-null, so by the contract a live handle.
        let seg = unsafe { &*seg };
        let live = check(seg.inner.participants())?
            .iter()
            .filter(|p| p.alive)
            .count();
        // SAFETY: non-null and, by the contract, valid for a write.
        unsafe { count.write(live as u32) };
        Ok(())
    })
}
