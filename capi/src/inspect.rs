//! C functions for inspection (`shmprim_inspect_*`): the same read-only view as
//! `shmprim ls` / `stat --json`, for C programs that monitor themselves.

use std::ffi::c_char;

use super::{boundary, c_str, check, fail_with, non_null, shmprim_status};

/// Copies `text` and a NUL into `buf` (`len` bytes), or reports the size needed.
///
/// # Safety
/// `buf` must be null or valid for `len` bytes of writes; `needed` null or valid
/// for a write.
unsafe fn write_text(
    text: &str,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> Result<(), shmprim_status> {
    let size = text.len() + 1;
    if !needed.is_null() {
        // SAFETY: non-null and, by the contract, valid for a write.
        unsafe { needed.write(size) };
    }
    if buf.is_null() || len < size {
        return Err(fail_with(
            shmprim_status::SHMPRIM_BUFFER_TOO_SMALL,
            &format!("buffer of {len} bytes is too small: {size} bytes needed"),
        ));
    }
    // SAFETY: `buf` holds at least `size` bytes (checked) and does not overlap
    // our freshly built string.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        buf.add(text.len()).write(0);
    }
    Ok(())
}

/// Writes a JSON object describing the segment `name` (health, header, state,
/// participants: what `shmprim stat --json` prints) into `buf` as a
/// NUL-terminated string. Read-only: takes no participant slot and no lock.
/// Does not block.
///
/// `*needed` (if `needed` is not null) receives the size required, NUL
/// included. Returns `SHMPRIM_BUFFER_TOO_SMALL` (writing nothing) when `len` is
/// less than that; `SHMPRIM_NOT_FOUND` or `SHMPRIM_NOT_SHMPRIM` when there is no
/// such segment.
///
/// # Safety
/// `name` must be a NUL-terminated string; `buf` null or valid for `len` bytes;
/// `needed` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_inspect_json(
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let json = check(shmprim::inspect::inspect(name))?.to_json();
        // SAFETY: forwarded from the caller's contract.
        unsafe { write_text(&json, buf, len, needed) }
    })
}

/// Writes a JSON array describing every shmprim segment on the machine (what
/// `shmprim ls --json` prints) into `buf`, as [`shmprim_inspect_json`] does for
/// one segment. Does not block.
///
/// # Safety
/// `buf` null or valid for `len` bytes; `needed` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_inspect_list_json(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> shmprim_status {
    boundary(|| {
        let json = shmprim::inspect::render_json(&check(shmprim::inspect::list())?);
        // SAFETY: forwarded from the caller's contract.
        unsafe { write_text(&json, buf, len, needed) }
    })
}

/// Number of live participants of the segment `name`, written to `*live`, read
/// without opening the segment for use. Does not block.
///
/// # Safety
/// `name` must be a NUL-terminated string; `live` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_inspect_live_participants(
    name: *const c_char,
    live: *mut u32,
) -> shmprim_status {
    boundary(|| {
        non_null(live, "live")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let n = check(shmprim::inspect::inspect(name))?.live_participants();
        // SAFETY: non-null and, by the contract, valid for a write.
        unsafe { live.write(n as u32) };
        Ok(())
    })
}
