//! C functions for typed shared values (`shmprim_value_*`), Python's
//! `Value(typecode)`: the same object as a Rust [`Value<T>`] of the matching
//! type. C names the element type with a `SHMPRIM_TYPE_*` code, as Python
//! names it with a typecode; each call dispatches to the Rust `Value<T>` of
//! that type (`Value<Bool>` for `SHMPRIM_TYPE_BOOL`).
//!
//! Values of other types (structs, arrays) are opened from C as a mutex with a
//! byte payload instead, or through a raw segment.

use std::ffi::{c_char, c_void};

use super::{
    SHMPRIM_NO_LOCK, boundary, c_str, check, fail_with, free, handle, non_null, options, put,
    shmprim_options, shmprim_status, unlink_name, write_opt,
};
use shmprim::cell::{AtomicValue, ShmType, Value};
use shmprim::segment::{Disposition, Kind, Options, SegmentBuilder, TypeCode};

/// Element type code: whatever the object holds (`_open` only).
pub const SHMPRIM_TYPE_ANY: u32 = 0;
/// Element type code: C `bool` (one byte; nonzero reads as true).
pub const SHMPRIM_TYPE_BOOL: u32 = 2;
/// Element type code: `int8_t`.
pub const SHMPRIM_TYPE_I8: u32 = 3;
/// Element type code: `uint8_t`.
pub const SHMPRIM_TYPE_U8: u32 = 4;
/// Element type code: `int16_t`.
pub const SHMPRIM_TYPE_I16: u32 = 5;
/// Element type code: `uint16_t`.
pub const SHMPRIM_TYPE_U16: u32 = 6;
/// Element type code: `int32_t`.
pub const SHMPRIM_TYPE_I32: u32 = 7;
/// Element type code: `uint32_t`.
pub const SHMPRIM_TYPE_U32: u32 = 8;
/// Element type code: `int64_t`.
pub const SHMPRIM_TYPE_I64: u32 = 9;
/// Element type code: `uint64_t`.
pub const SHMPRIM_TYPE_U64: u32 = 10;
/// Element type code: `float`.
pub const SHMPRIM_TYPE_F32: u32 = 11;
/// Element type code: `double`.
pub const SHMPRIM_TYPE_F64: u32 = 12;

const _: () = {
    assert!(SHMPRIM_TYPE_ANY == TypeCode::None as u32);
    assert!(SHMPRIM_TYPE_BOOL == TypeCode::Bool as u32);
    assert!(SHMPRIM_TYPE_I8 == TypeCode::I8 as u32);
    assert!(SHMPRIM_TYPE_U8 == TypeCode::U8 as u32);
    assert!(SHMPRIM_TYPE_I16 == TypeCode::I16 as u32);
    assert!(SHMPRIM_TYPE_U16 == TypeCode::U16 as u32);
    assert!(SHMPRIM_TYPE_I32 == TypeCode::I32 as u32);
    assert!(SHMPRIM_TYPE_U32 == TypeCode::U32 as u32);
    assert!(SHMPRIM_TYPE_I64 == TypeCode::I64 as u32);
    assert!(SHMPRIM_TYPE_U64 == TypeCode::U64 as u32);
    assert!(SHMPRIM_TYPE_F32 == TypeCode::F32 as u32);
    assert!(SHMPRIM_TYPE_F64 == TypeCode::F64 as u32);
};

/// Builds `$enum::<Variant>(body)` for the element type named by `$code` (a
/// validated [`TypeCode`]), with `$t` as a type alias for the element in
/// `$body`.
macro_rules! for_type {
    ($code:expr, $enum:ident, $t:ident => $body:expr) => {
        match $code {
            shmprim::segment::TypeCode::Bool => {
                type $t = shmprim::cell::Bool;
                $enum::Bool($body)
            }
            shmprim::segment::TypeCode::I8 => {
                type $t = i8;
                $enum::I8($body)
            }
            shmprim::segment::TypeCode::U8 => {
                type $t = u8;
                $enum::U8($body)
            }
            shmprim::segment::TypeCode::I16 => {
                type $t = i16;
                $enum::I16($body)
            }
            shmprim::segment::TypeCode::U16 => {
                type $t = u16;
                $enum::U16($body)
            }
            shmprim::segment::TypeCode::I32 => {
                type $t = i32;
                $enum::I32($body)
            }
            shmprim::segment::TypeCode::U32 => {
                type $t = u32;
                $enum::U32($body)
            }
            shmprim::segment::TypeCode::I64 => {
                type $t = i64;
                $enum::I64($body)
            }
            shmprim::segment::TypeCode::U64 => {
                type $t = u64;
                $enum::U64($body)
            }
            shmprim::segment::TypeCode::F32 => {
                type $t = f32;
                $enum::F32($body)
            }
            shmprim::segment::TypeCode::F64 => {
                type $t = f64;
                $enum::F64($body)
            }
            other => unreachable!("{other:?} was rejected by cell_type"),
        }
    };
}
pub(crate) use for_type;

/// Runs `$body` with `$x` bound to the typed handle inside `$e`; `$on_bool`
/// for a `Bool` cell if given (operations `Bool` lacks, such as `fetch_add`).
macro_rules! each_type {
    ($e:expr, $enum:ident, $x:ident => $body:expr) => {
        each_type!($e, $enum, $x => $body, $x => $body)
    };
    ($e:expr, $enum:ident, $x:ident => $body:expr, $b:ident => $on_bool:expr) => {
        match $e {
            $enum::Bool($b) => $on_bool,
            $enum::I8($x) => $body,
            $enum::U8($x) => $body,
            $enum::I16($x) => $body,
            $enum::U16($x) => $body,
            $enum::I32($x) => $body,
            $enum::U32($x) => $body,
            $enum::I64($x) => $body,
            $enum::U64($x) => $body,
            $enum::F32($x) => $body,
            $enum::F64($x) => $body,
        }
    };
}
pub(crate) use each_type;

/// Declares an enum holding one typed handle per element type.
macro_rules! typed_enum {
    ($name:ident, $handle:ident) => {
        pub(crate) enum $name {
            Bool($handle<shmprim::cell::Bool>),
            I8($handle<i8>),
            U8($handle<u8>),
            I16($handle<i16>),
            U16($handle<u16>),
            I32($handle<i32>),
            U32($handle<u32>),
            I64($handle<i64>),
            U64($handle<u64>),
            F32($handle<f32>),
            F64($handle<f64>),
        }
    };
}
pub(crate) use typed_enum;

typed_enum!(AnyValue, Value);

/// Validates a C element type code (`SHMPRIM_TYPE_ANY` allowed when `any`).
pub(crate) fn cell_type(code: u32, any: bool) -> Result<Option<TypeCode>, shmprim_status> {
    match TypeCode::from_code(code) {
        Some(TypeCode::None) if any => Ok(None),
        Some(
            t @ (TypeCode::Bool
            | TypeCode::I8
            | TypeCode::U8
            | TypeCode::I16
            | TypeCode::U16
            | TypeCode::I32
            | TypeCode::U32
            | TypeCode::I64
            | TypeCode::U64
            | TypeCode::F32
            | TypeCode::F64),
        ) => Ok(Some(t)),
        _ => Err(fail_with(
            shmprim_status::SHMPRIM_INVALID_ARGUMENT,
            &format!("{code} is not a SHMPRIM_TYPE_* element type code here"),
        )),
    }
}

/// The element type an existing cell of `kind` was created with (for
/// `SHMPRIM_TYPE_ANY`).
pub(crate) fn stored_type(name: &str, kind: Kind) -> Result<TypeCode, shmprim_status> {
    let seg = check(SegmentBuilder::new(kind).any_payload().open(name))?;
    let code = seg.info().payload.code;
    drop(seg);
    match cell_type(code, false) {
        Ok(Some(t)) => Ok(t),
        _ => Err(fail_with(
            shmprim_status::SHMPRIM_INCOMPATIBLE,
            &format!("{name:?} holds elements C has no type code for (code {code})"),
        )),
    }
}

/// Reads optional options for a cell: handle options and whether it has a lock.
///
/// # Safety
/// `opts` must be null or readable.
pub(crate) unsafe fn cell_options(
    opts: *const shmprim_options,
) -> Result<(Options, bool), shmprim_status> {
    // SAFETY: forwarded contract.
    let (o, flags) = unsafe { options(opts, SHMPRIM_NO_LOCK) }?;
    Ok((o, flags & SHMPRIM_NO_LOCK == 0))
}

/// Checks a C buffer of `size` bytes for one element of `T`.
pub(crate) fn elem_size<T>(
    p: *const c_void,
    size: usize,
    what: &str,
) -> Result<(), shmprim_status> {
    non_null(p, what)?;
    if size != std::mem::size_of::<T>() {
        return Err(fail_with(
            shmprim_status::SHMPRIM_INVALID_ARGUMENT,
            &format!(
                "{what} has {size} bytes for an element of {}",
                std::mem::size_of::<T>()
            ),
        ));
    }
    Ok(())
}

/// Reads one `T` from a C buffer (any alignment).
///
/// # Safety
/// `p` must be readable for `size_of::<T>()` bytes (checked by `elem_size`).
pub(crate) unsafe fn read_elem<T: ShmType>(p: *const c_void) -> T {
    // SAFETY: readable by the contract; unaligned read of a Pod type.
    unsafe { p.cast::<T>().read_unaligned() }
}

/// Writes one `T` to a C buffer (any alignment).
///
/// # Safety
/// `p` must be writable for `size_of::<T>()` bytes (checked by `elem_size`).
pub(crate) unsafe fn write_elem<T: ShmType>(p: *mut c_void, v: T) {
    // SAFETY: writable by the contract; unaligned write of a Pod type.
    unsafe { p.cast::<T>().write_unaligned(v) }
}

/// The type code of `T`.
pub(crate) fn code_of<T: ShmType>() -> u32 {
    T::type_desc().code
}

/// An open named (or anonymous) typed value. Opaque; free it with
/// `shmprim_value_close`. One handle may be used by many threads.
pub struct shmprim_value {
    inner: AnyValue,
}

fn make_value<T: ShmType>(
    how: Option<&str>,
    initial: *const c_void,
    lock: bool,
    opts: &Options,
) -> Result<Value<T>, shmprim_status> {
    let v = if initial.is_null() {
        T::zeroed()
    } else {
        // SAFETY: non-null; the caller's contract makes it readable for one
        // element of the type it named.
        unsafe { read_elem::<T>(initial) }
    };
    match how {
        Some(name) => check(Value::create_with_options(name, v, lock, opts)),
        None => check(Value::anonymous(v, lock)),
    }
}

/// Creates the named value of element type `elem_type` (a `SHMPRIM_TYPE_*` code),
/// holding `*initial` (an element of that type; `NULL` for zero), with a lock
/// unless `opts` has `SHMPRIM_NO_LOCK` (Python's `lock=False`). A Rust
/// `Value<T>` of the matching type opens it (`Value<Bool>` for bool). Does not
/// block. Returns `SHMPRIM_OK` (a new handle in `*out`, owned by the caller,
/// freed with `shmprim_value_close`), `SHMPRIM_ALREADY_EXISTS`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_INVALID_ARGUMENT` (unknown type code or
/// flags), `SHMPRIM_NULL_POINTER` or `SHMPRIM_IO`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `initial` null or readable for one
/// element; `opts` null or readable; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_value_create(
    name: *const c_char,
    elem_type: u32,
    initial: *const c_void,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_value,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let code = cell_type(elem_type, false)?.expect("not ANY");
        // SAFETY: null or readable, by the contract.
        let (opts, lock) = unsafe { cell_options(opts) }?;
        let inner =
            for_type!(code, AnyValue, T => make_value::<T>(Some(name), initial, lock, &opts)?);
        put(out, shmprim_value { inner })
    })
}

/// Opens the existing value `name`. `elem_type` is the element type expected
/// (`SHMPRIM_INCOMPATIBLE` if it holds another), or `SHMPRIM_TYPE_ANY` to
/// take whatever it holds (see `shmprim_value_type`). Waits up to 5 s for a
/// creator still initialising it. Returns `SHMPRIM_OK` (a new handle in
/// `*out`, owned by the caller), `SHMPRIM_NOT_FOUND`, `SHMPRIM_INCOMPATIBLE`
/// (another kind, or another element type), `SHMPRIM_INVALID_ARGUMENT`,
/// `SHMPRIM_INVALID_NAME`, `SHMPRIM_NULL_POINTER` or a header error.
///
/// # Safety
/// `name` must be a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_value_open(
    name: *const c_char,
    elem_type: u32,
    out: *mut *mut shmprim_value,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let code = match cell_type(elem_type, true)? {
            Some(c) => c,
            None => stored_type(name, Kind::Value)?,
        };
        let inner = for_type!(code, AnyValue, T => check(Value::<T>::open(name))?);
        put(out, shmprim_value { inner })
    })
}

/// Opens the value `name` (which must hold `elem_type`), or creates it holding
/// `*initial` (`NULL`: zero) with a lock; exactly one of several racing
/// callers creates it. `created` (may be `NULL`) receives whether this call
/// did. Statuses and ownership as for `shmprim_value_create` and
/// `shmprim_value_open`.
///
/// # Safety
/// As `shmprim_value_create`; `created` null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_value_open_or_create(
    name: *const c_char,
    elem_type: u32,
    initial: *const c_void,
    out: *mut *mut shmprim_value,
    created: *mut bool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        // SAFETY: the caller passes a NUL-terminated string or null.
        let name = unsafe { c_str(name, "name") }?;
        let code = cell_type(elem_type, false)?.expect("not ANY");
        let how;
        let inner = for_type!(code, AnyValue, T => {
            let v = if initial.is_null() {
                <T as shmprim::bytemuck::Zeroable>::zeroed()
            } else {
                // SAFETY: readable for one element, by the contract.
                unsafe { read_elem::<T>(initial) }
            };
            let (value, d) = check(Value::<T>::open_or_create(name, v))?;
            how = d;
            value
        });
        // SAFETY: null or valid for a write, by the contract.
        unsafe { write_opt(created, how == Disposition::Created) };
        put(out, shmprim_value { inner })
    })
}

/// Creates an anonymous value (no name), shared with children forked after
/// this call; as `shmprim_value_create` otherwise (`opts` may carry
/// `SHMPRIM_NO_LOCK`).
///
/// # Safety
/// `initial` must be null or readable for one element; `opts` null or
/// readable; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_value_anonymous(
    elem_type: u32,
    initial: *const c_void,
    opts: *const shmprim_options,
    out: *mut *mut shmprim_value,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let code = cell_type(elem_type, false)?.expect("not ANY");
        // SAFETY: null or readable, by the contract.
        let (opts, lock) = unsafe { cell_options(opts) }?;
        let inner = for_type!(code, AnyValue, T => make_value::<T>(None, initial, lock, &opts)?);
        put(out, shmprim_value { inner })
    })
}

/// Closes a handle (null is ignored); the value remains until unlinked.
///
/// # Safety
/// `v` must be null or a handle not yet closed, not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_value_close(v: *mut shmprim_value) {
    // SAFETY: forwarded contract.
    unsafe { free(v) }
}

/// Removes the name `name` if it is a shmprim value; processes that have it open
/// keep it. Returns `SHMPRIM_OK`, `SHMPRIM_NOT_FOUND`, `SHMPRIM_NOT_SHMPRIM`
/// (a file of another program: left alone), `SHMPRIM_INCOMPATIBLE` (another
/// kind of shmprim object: left alone), `SHMPRIM_INVALID_NAME` or
/// `SHMPRIM_NULL_POINTER`. Another process can replace the file between the
/// check and the removal.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_value_unlink(name: *const c_char) -> shmprim_status {
    // SAFETY: forwarded contract.
    unsafe { unlink_name(name, Some(shmprim::Kind::Value)) }
}

/// The element type (`SHMPRIM_TYPE_*`) of the value; `SHMPRIM_TYPE_ANY` (0)
/// for a null handle.
///
/// # Safety
/// `v` must be null or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_value_type(v: *const shmprim_value) -> u32 {
    // SAFETY: null or live, by the contract.
    unsafe { v.as_ref() }.map_or(
        SHMPRIM_TYPE_ANY,
        |v| each_type!(&v.inner, AnyValue, x => type_code_of(x)),
    )
}

fn type_code_of<T: ShmType>(_: &Value<T>) -> u32 {
    code_of::<T>()
}

/// Copies the value into `out`, whose `size` must be the element's size
/// (`SHMPRIM_INVALID_ARGUMENT` otherwise). Never blocks on the lock (a
/// consistent copy, retried while a writer is storing). Returns `SHMPRIM_OK`,
/// `SHMPRIM_CORRUPTED` (a writer died mid-store of a large value; the next
/// `_set` repairs it), `SHMPRIM_INVALID_ARGUMENT` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `v` must be null or a live handle; `out` null or writable for `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_value_get(
    v: *const shmprim_value,
    out: *mut c_void,
    size: usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let v = unsafe { handle(v, "value") }?;
        each_type!(&v.inner, AnyValue, x => {
            elem_of(x, out, size, "out")?;
            let got = check(x.get())?;
            // SAFETY: writable for `size` == one element (checked).
            unsafe { write_elem(out, got) };
            Ok(())
        })
    })
}

fn elem_of<T: ShmType>(
    _: &Value<T>,
    p: *const c_void,
    size: usize,
    what: &str,
) -> Result<(), shmprim_status> {
    elem_size::<T>(p, size, what)
}

/// Replaces the value with the element at `input` (`size` must be the element's
/// size). Takes the lock if the value has one, waiting as long as it takes
/// (`SHMPRIM_INVALID_ARGUMENT` if this thread is inside
/// `shmprim_value_update`'s callback). Returns `SHMPRIM_OK`,
/// `SHMPRIM_UNRECOVERABLE`, `SHMPRIM_INVALID_ARGUMENT` or
/// `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `v` must be null or a live handle; `input` null or readable for `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_value_set(
    v: *const shmprim_value,
    input: *const c_void,
    size: usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let v = unsafe { handle(v, "value") }?;
        each_type!(&v.inner, AnyValue, x => {
            elem_of(x, input, size, "in")?;
            // SAFETY: readable for one element (checked).
            check(x.set(unsafe { read_elem(input) }))
        })
    })
}

fn fetch_add<T: AtomicValue>(
    x: &Value<T>,
    delta: *const c_void,
    old: *mut c_void,
    size: usize,
) -> Result<(), shmprim_status> {
    elem_size::<T>(delta, size, "delta")?;
    // SAFETY: readable for one element (checked).
    let prev = x.fetch_add(unsafe { read_elem(delta) });
    if !old.is_null() {
        // SAFETY: by the contract, writable for `size` == one element.
        unsafe { write_elem(old, prev) };
    }
    Ok(())
}

/// Adds the element at `delta` to the value in one atomic step (wrapping for
/// integers), without the lock, and writes the previous value to `old` (may
/// be `NULL`); `size` is the element's size. Not for bool values
/// (`SHMPRIM_INVALID_ARGUMENT`). Does not block. Returns `SHMPRIM_OK`,
/// `SHMPRIM_INVALID_ARGUMENT` or `SHMPRIM_NULL_POINTER`.
///
/// # Safety
/// `v` must be null or a live handle; `delta` null or readable, `old` null or
/// writable, for `size` bytes each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_value_fetch_add(
    v: *const shmprim_value,
    delta: *const c_void,
    old: *mut c_void,
    size: usize,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let v = unsafe { handle(v, "value") }?;
        each_type!(&v.inner, AnyValue, x => fetch_add(x, delta, old, size),
        _b => Err(fail_with(
            shmprim_status::SHMPRIM_INVALID_ARGUMENT,
            "fetch_add on a bool value",
        )))
    })
}

/// The callback of `shmprim_value_update`: changes the element at `value` (a
/// private copy) in place.
pub type shmprim_update_fn = Option<unsafe extern "C" fn(value: *mut c_void, ctx: *mut c_void)>;

fn update<T: ShmType>(
    x: &Value<T>,
    f: unsafe extern "C" fn(*mut c_void, *mut c_void),
    ctx: *mut c_void,
    old: *mut c_void,
) -> Result<(), shmprim_status> {
    let prev = check(x.update(|mut v: T| {
        // SAFETY: `v` is a local copy the callback may change in place; the
        // caller's contract makes `f` safe to call with `ctx`.
        unsafe { f(std::ptr::from_mut(&mut v).cast(), ctx) };
        v
    }))?;
    if !old.is_null() {
        // SAFETY: by the contract, writable for one element.
        unsafe { write_elem(old, prev) };
    }
    Ok(())
}

/// Replaces the value with what `f` makes of it, atomically with respect to
/// other writers (Python's `with v.get_lock(): v.value = g(v.value)`): `f`
/// gets a private copy of the element and `ctx`, changes the copy in place,
/// and the result is stored. Takes the lock if the value has one (waiting as
/// long as it takes). `f` may run more than once for 1/2/4/8-byte types (a
/// compare-and-swap loop), so it should compute only from the element; it
/// must not call shmprim functions on this value. The previous value is
/// written to `old` (may be `NULL`). Returns `SHMPRIM_OK`,
/// `SHMPRIM_CORRUPTED` (a writer died mid-store), `SHMPRIM_UNRECOVERABLE`,
/// `SHMPRIM_INVALID_ARGUMENT` or `SHMPRIM_NULL_POINTER` (`v` or `f`).
///
/// # Safety
/// `v` must be null or a live handle; `f` must be safe to call with an
/// element-sized buffer and `ctx`, and must not unwind or `longjmp`; `old`
/// null or writable for one element.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_value_update(
    v: *const shmprim_value,
    f: shmprim_update_fn,
    ctx: *mut c_void,
    old: *mut c_void,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or live, by the contract.
        let v = unsafe { handle(v, "value") }?;
        let Some(f) = f else {
            return Err(fail_with(shmprim_status::SHMPRIM_NULL_POINTER, "f is null"));
        };
        each_type!(&v.inner, AnyValue, x => update(x, f, ctx, old))
    })
}
