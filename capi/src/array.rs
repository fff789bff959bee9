//! C functions for typed shared arrays (`shmprim_array_*`), Python's
//! `Array(typecode, n)`: the same object as a Rust [`Array<T>`] of the
//! matching type; each call dispatches to the Rust `Array<T>` of the element
//! type the C side named with a `SHMPRIM_TYPE_*` code (see `ffi/value.rs`).

use std::ffi::{c_char, c_void};

use super::value::{
    cell_options, cell_type, code_of, each_type, elem_size, for_type, read_elem, stored_type,
    typed_enum, write_elem,
};
use super::{
    boundary, c_str, check, fail, fail_with, free, handle, non_null, put, shmprim_options,
    shmprim_status, unlink_name, write_opt,
};
use shmprim::cell::{AtomicValue, ShmType};
use shmprim::mutex::LockResult;
use shmprim::segment::{Disposition, Kind};
use shmprim::{Array, LockError};

typed_enum!(AnyArray, Array);

/// An open named (or anonymous) typed array. Opaque; free it with
/// `shmprim_array_close`. One handle may be used by many threads.
pub struct shmprim_array {
    inner: AnyArray,
}

/// Creates the named array of `len` zeroed elements of type `elem_type` (a
/// `SHMPRIM_TYPE_*` code), with a lock unless `opts` has `SHMPRIM_NO_LOCK`
/// (Python's `lock=False`, `RawArray`). A Rust `Array<T>` of the matching type
/// opens it. Does not block. Returns `SHMPRIM_OK` (a new handle in `*out`,
/// owned by the caller, freed with `shmprim_array_close`),
/// `SHMPRIM_ALREADY_EXISTS`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_INVALID_ARGUMENT` (unknown type code or flags, too large),
/// `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `opts` null or readable; `out`
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_create(
    name: *const c_char,
    elem_type: u32,
    len: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_array,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let code = cell_type(elem_type, false)?.expect("not ANY");
        // SAFETY: null or readable, by the contract.
        let (opts, lock) = unsafe { cell_options(opts) }?;
        let inner = for_type!(code, AnyArray, T =>
            check(Array::<T>::create_with_options(name, len, lock, &opts))?);
        put(out, shmprim_array { inner })
    })
}

/// Opens the existing array `name`, of any length (see `shmprim_array_len`).
/// `elem_type` is the element type expected (`SHMPRIM_INCOMPATIBLE` if it
/// holds another), or `SHMPRIM_TYPE_ANY`. Waits up to 5 s for a creator
/// still initialising it. Returns `SHMPRIM_OK` (a new handle in `*out`, owned
/// by the caller), `SHMPRIM_NOT_FOUND`, `SHMPRIM_INCOMPATIBLE`,
/// `SHMPRIM_INVALID_ARGUMENT`, `SHMPRIM_INVALID_NAME`,
/// `SHMPRIM_NULL_POINTER` or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_open(
    name: *const c_char,
    elem_type: u32,
    out: *mut *mut shmprim_array,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let code = match cell_type(elem_type, true)? {
            Some(c) => c,
            None => stored_type(name, Kind::Array)?,
        };
        let inner = for_type!(code, AnyArray, T => check(Array::<T>::open(name))?);
        put(out, shmprim_array { inner })
    })
}

/// Opens the array `name` (which must hold `len` elements of `elem_type`), or
/// creates it, zeroed, with a lock; exactly one of several racing callers
/// creates it. `created` (may be `NULL`) receives whether this call did.
/// Statuses and ownership as for `shmprim_array_create` and
/// `shmprim_array_open`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write; `created`
/// null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_open_or_create(
    name: *const c_char,
    elem_type: u32,
    len: usize,
    out: *mut *mut shmprim_array,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let code = cell_type(elem_type, false)?.expect("not ANY");
        let how;
        let inner = for_type!(code, AnyArray, T => {
            let (a, d) = check(Array::<T>::open_or_create(name, len))?;
            how = d;
            a
        });
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == Disposition::Created) };
        put(out, shmprim_array { inner })
    })
}

/// Creates an anonymous array (no name), shared with children forked after
/// this call; as `shmprim_array_create` otherwise.
///
/// # Safety
/// `opts` must be null or readable; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_anonymous(
    elem_type: u32,
    len: usize,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_array,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let code = cell_type(elem_type, false)?.expect("not ANY");
        // SAFETY: null or readable, by the contract.
        let (_, lock) = unsafe { cell_options(opts) }?;
        let inner = for_type!(code, AnyArray, T => check(Array::<T>::anonymous(len, lock))?);
        put(out, shmprim_array { inner })
    })
}

/// Closes a handle (null is ignored); the array remains until unlinked.
///
/// # Safety
/// `a` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_close(a: *mut shmprim_array) {
    // SAFETY: forwarded contract.
    unsafe { free(a) }
}

/// Removes the name `name` if it is a shmprim array; processes that have it open
/// keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`, `SHMPRIM_NOT_SHMPRIM`
/// (a file of another program: left alone), `SHMPRIM_INCOMPATIBLE` (another
/// kind of shmprim object: left alone), `SHMPRIM_INVALID_NAME` or
/// `SHMPRIM_NULL_POINTER`. Another process can replace the file between the
/// check and the removal.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::Array)) }
}

fn info<T: ShmType>(a: &Array<T>) -> (u32, usize, usize) {
    (code_of::<T>(), a.len(), std::mem::size_of::<T>())
}

/// The element type (`SHMPRIM_TYPE_*`); `SHMPRIM_TYPE_ANY` for a null handle.
///
/// # Safety
/// `a` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_type(a: *const shmprim_array) -> u32 {
    // SAFETY: null or live, by the contract.
    unsafe { a.as_ref() }.map_or(0, |a| each_type!(&a.inner, AnyArray, x => info(x).0))
}

/// The number of elements; 0 for a null handle.
///
/// # Safety
/// `a` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_len(a: *const shmprim_array) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { a.as_ref() }.map_or(0, |a| each_type!(&a.inner, AnyArray, x => info(x).1))
}

/// The size of one element in bytes; 0 for a null handle.
///
/// # Safety
/// `a` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_elem_size(a: *const shmprim_array) -> usize {
    // SAFETY: null or live, by the contract.
    unsafe { a.as_ref() }.map_or(0, |a| each_type!(&a.inner, AnyArray, x => info(x).2))
}

fn read<T: ShmType>(
    a: &Array<T>,
    start: usize,
    out: *mut c_void,
    count: usize,
) -> Result<(), shmprim_status> {
    if count == 0 {
        return Ok(());
    }
    non_null(out, "out")?;
    // Before the buffer is allocated: a count far past the array's length
    // must be an error, not an allocation failure that aborts the process.
    check(a.check_range(start, count))?;
    let mut buf = vec![<T as shmprim::bytemuck::Zeroable>::zeroed(); count];
    check(a.read_range(start, &mut buf))?;
    // SAFETY: by the contract `out` is writable for `count` elements; `buf`
    // is ours and does not overlap it.
    unsafe {
        std::ptr::copy_nonoverlapping(
            buf.as_ptr().cast::<u8>(),
            out.cast::<u8>(),
            count * std::mem::size_of::<T>(),
        )
    };
    Ok(())
}

fn write<T: ShmType>(
    a: &Array<T>,
    start: usize,
    input: *const c_void,
    count: usize,
) -> Result<(), shmprim_status> {
    if count == 0 {
        return Ok(());
    }
    non_null(input, "input")?;
    // As in `read`: the range is checked before anything is allocated.
    check(a.check_range(start, count))?;
    let buf: Vec<T> = (0..count)
        // SAFETY: by the contract `input` is readable for `count` elements.
        .map(|i| unsafe { read_elem(input.cast::<T>().wrapping_add(i).cast()) })
        .collect();
    check(a.write_range(start, &buf))
}

/// Copies elements `start .. start + count` into `out` (`count` elements of
/// `shmprim_array_elem_size` bytes). Takes the lock if the array has one
/// (waiting as long as it takes), else reads a consistent copy. Returns
/// `SHMPRIM_OK`, `SHMPRIM_INDEX_OUT_OF_RANGE` (nothing copied),
/// `SHMPRIM_CORRUPTED` (a writer died mid-store), `SHMPRIM_UNRECOVERABLE`,
/// `SHMPRIM_INVALID_ARGUMENT` (this thread is inside
/// `shmprim_array_with_lock`) or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `a` must be null or a live handle; `out` null or writable for `count`
/// elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_read(
    a: *const shmprim_array,
    start: usize,
    out: *mut c_void,
    count: usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let a = unsafe { handle(a, "array") }?;
        each_type!(&a.inner, AnyArray, x => read(x, start, out, count))
    })
}

/// Writes `count` elements from `input` to elements `start .. start + count`.
/// Takes the lock if the array has one. Statuses as for `shmprim_array_read`.
///
/// # Safety
/// `a` must be null or a live handle; `input` null or readable for `count`
/// elements.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_write(
    a: *const shmprim_array,
    start: usize,
    input: *const c_void,
    count: usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let a = unsafe { handle(a, "array") }?;
        each_type!(&a.inner, AnyArray, x => write(x, start, input, count))
    })
}

fn fetch_add<T: AtomicValue>(
    a: &Array<T>,
    index: usize,
    delta: *const c_void,
    old: *mut c_void,
    size: usize,
) -> Result<(), shmprim_status> {
    elem_size::<T>(delta, size, "delta")?;
    // SAFETY: readable for one element (checked).
    let prev = check(a.fetch_add(index, unsafe { read_elem(delta) }))?;
    if !old.is_null() {
        // SAFETY: by the contract, writable for one element.
        unsafe { write_elem(old, prev) };
    }
    Ok(())
}

/// Adds the element at `delta` to element `index` in one atomic step
/// (wrapping for integers; under the lock if the array has one) and writes
/// the previous value to `old` (may be `NULL`); `size` is the element's size.
/// Not for bool arrays. Returns `SHMPRIM_OK`, `SHMPRIM_INDEX_OUT_OF_RANGE`,
/// `SHMPRIM_INVALID_ARGUMENT` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `a` must be null or a live handle; `delta` null or readable, `old` null or
/// writable, for `size` bytes each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_fetch_add(
    a: *const shmprim_array,
    index: usize,
    delta: *const c_void,
    old: *mut c_void,
    size: usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let a = unsafe { handle(a, "array") }?;
        each_type!(&a.inner, AnyArray, x => fetch_add(x, index, delta, old, size),
        _b => Err(fail_with(
            shmprim_status::SHMPRIM_INVALID_ARGUMENT,
            "fetch_add on a bool array",
        )))
    })
}

/// The callback of `shmprim_array_with_lock`: runs holding the array's lock
/// with the elements themselves (`len` of them, in shared memory) and whether
/// the previous holder died holding it. Returning nonzero after
/// `owner_died` declares the elements consistent; returning 0 then leaves
/// the owner-died state for the next locker.
pub type shmprim_array_fn = Option<
    unsafe extern "C" fn(elems: *mut c_void, len: usize, owner_died: bool, ctx: *mut c_void) -> i32,
>;

fn with_lock<T: ShmType>(
    a: &Array<T>,
    timeout_ns: i64,
    f: unsafe extern "C" fn(*mut c_void, usize, bool, *mut c_void) -> i32,
    ctx: *mut c_void,
) -> Result<(), shmprim_status> {
    let (mut guard, died) = match super::timed(timeout_ns, |d| a.lock_until(d), lock_timed_out) {
        Ok(g) => (g, false),
        Err(LockError::OwnerDied(g)) => (g, true),
        Err(LockError::Failed(e)) => return Err(fail(&e)),
    };
    let len = guard.len();
    // SAFETY: the guard gives the elements, locked, for as long as it lives;
    // the callback may read and write them (the caller's contract).
    let keep = unsafe { f(guard.as_mut_ptr().cast(), len, died, ctx) };
    if died {
        if keep != 0 {
            check(guard.mark_consistent())?;
        }
        drop(guard);
        return owner_died_status(keep != 0);
    }
    Ok(())
}

/// The status after an owner-died lock: `SHMPRIM_OWNER_DIED` either way (the
/// callback saw the flag), with the message saying what became of the lock.
fn owner_died_status(kept: bool) -> Result<(), shmprim_status> {
    Err(fail_with(
        shmprim_status::SHMPRIM_OWNER_DIED,
        if kept {
            "the previous holder died holding the lock; the callback declared the elements consistent"
        } else {
            "the previous holder died holding the lock; the callback did not declare the elements consistent, so the next locker is told too"
        },
    ))
}

/// Runs `f` holding the array's lock (Python's `with arr.get_lock():`),
/// waiting up to `timeout_ns` for it (negative: forever; `0`: try once), with
/// zero-copy access to the elements. `f` must not call shmprim functions on
/// this array. Returns `SHMPRIM_OK` (`f` ran), `SHMPRIM_OWNER_DIED` (`f` ran
/// with `owner_died` set; see `shmprim_array_fn`), `SHMPRIM_TIMEOUT`,
/// `SHMPRIM_UNRECOVERABLE`, `SHMPRIM_INVALID_ARGUMENT` (the array has no lock,
/// or this thread holds it already) or `SHMPRIM_NULL_POINTER` (`a` or `f`);
/// `f` did not run in those last cases.
///
/// # Safety
/// `a` must be null or a live handle; `f` must be safe to call with the
/// elements and `ctx`, must not keep the pointer after returning, and must
/// not unwind or `longjmp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_array_with_lock(
    a: *const shmprim_array,
    timeout_ns: i64,
    f: shmprim_array_fn,
    ctx: *mut c_void,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let a = unsafe { handle(a, "array") }?;
        let Some(f) = f else {
            return Err(fail_with(shmprim_status::SHMPRIM_NULL_POINTER, "f is null"));
        };
        each_type!(&a.inner, AnyArray, x => with_lock(x, timeout_ns, f, ctx))
    })
}

/// Whether a timed lock's result is a timeout: for [`super::timed`].
fn lock_timed_out<G>(r: &LockResult<G>) -> bool {
    matches!(r, Err(LockError::Failed(shmprim::Error::Timeout { .. })))
}
