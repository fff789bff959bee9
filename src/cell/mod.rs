//! Typed shared cells: [`Value<T>`] (one `T`) and [`Array<T>`] (a fixed number of
//! `T`s) in named shared memory. Python counterparts: `multiprocessing.Value` and
//! `multiprocessing.Array` (`RawValue` / `RawArray` with `lock=False`).
//!
//! # Types
//!
//! A payload type implements [`ShmType`]: it is [`bytemuck::Pod`] (every bit
//! pattern is a valid value, so whatever another process wrote can be read back
//! without undefined behaviour) and names its [`TypeDesc`], which the creator
//! records in the segment header and every opener checks (`Incompatible` on a
//! mismatch). The primitives map to their exact [`TypeCode`]s (`I8`...`U64`,
//! `F32`, `F64`); arrays `[T; N]` and user structs (`impl ShmType for P {}`) are
//! `Struct`s identified by size, alignment and [`stable_type_name`](crate::stable_type_name). C opens a
//! cell of any type as `Bytes` of the right size and alignment.
//!
//! `bool` is not `Pod` (only 0 and 1 are valid bytes), so Rust has no
//! `Value<bool>`: use [`Bool`], a byte recorded with code `Bool` (what C's
//! `bool` cells use), read as `true` when nonzero, so no byte is invalid.
//!
//! # Operations
//!
//! | operation                                         | how                                  | blocks on the lock |
//! |---------------------------------------------------|--------------------------------------|--------------------|
//! | `load`, `store`, `swap`, `compare_exchange`, `fetch_*` (1/2/4/8-byte ints, `f32`, `f64`) | one atomic instruction (float add: CAS loop) | `Value`: never; `Array`: only if it has a lock |
//! | `Value::get`                                      | atomic load, or seqlock read (retries) | never             |
//! | `Value::set`, `Value::update`                     | atomic store / CAS loop, or seqlock write | if it has a lock |
//! | `Array::get`, `set`, `read_*`, `write_*`          | atomic load/store of one 1/2/4/8-byte element, else seqlock; or under the lock | if it has a lock |
//! | `lock()`                                          | the robust process-shared mutex      | yes                |
//!
//! Types of 1, 2, 4 or 8 bytes are read and written with one atomic instruction
//! of that width (the payload is aligned for it), so they never tear. Larger
//! types use a *seqlock*: a writer makes the sequence word odd, stores the
//! payload, and makes it even again; a reader copies the payload between two
//! loads of the sequence word and retries if they differ or were odd. Every copy
//! in or out of shared memory is a sequence of relaxed atomic loads or stores
//! (one per element of 1/2/4/8 bytes, the width the atomic operations use, so
//! accesses to an element never mix sizes; else 8-byte words, with single bytes
//! at unaligned edges), so a concurrent writer, or another process scribbling
//! on the payload, is never a data race. (An array with a lock copies with
//! `memcpy` under the lock instead.)
//!
//! # Costs (what the benchmarks compare)
//!
//! - `Value<u64>::load` / `fetch_add`: one load or one locked instruction on the
//!   mapped word, as a bare `AtomicU64` in a mapping (the handle caches the
//!   payload's address).
//! - `Value<[u64; 8]>::get` (64 bytes): two loads of `seq` and eight word loads,
//!   no store, so readers never contend with each other; the Python `lock=True`
//!   way (`*value.lock()`, or a `Mutex<[u64; 8]>`) costs two atomic
//!   read-modify-writes on the mutex per read and serialises readers.
//!
//! # State layout
//!
//! ```text
//! offset 0        CellState  seq, writer, elem_size, len, flags   (64 bytes)
//! offset 64       RawMutex   only with a lock (rounded up to 64 bytes)
//! payload_offset  payload    len * size_of::<T>() bytes, aligned to 64
//! ```
//!
//! Header parameters: `0` = length (1 for a `Value`), `1` = has a lock (0/1),
//! `2` = payload offset in the data area. C finds the payload from these and
//! checks the element type against the header's [`TypeDesc`].
//!
//! | `seq`  | `writer` | meaning                                               |
//! |--------|----------|-------------------------------------------------------|
//! | even   | 0        | idle: readers copy and validate                        |
//! | even   | id       | writer `id` has claimed the write side, not yet begun  |
//! | odd    | id       | writer `id` is storing the payload: readers retry      |
//!
//! Writers claim the write side by a CAS of `writer` from 0 to their
//! [`ParticipantId`](crate::ParticipantId), so they are serialised among
//! themselves with or without a lock.
//!
//! # The lock
//!
//! A cell created with a lock (the default, as Python's `lock=True`) has a
//! robust process-shared mutex; `lock()` returns a guard ([`ValueGuard`],
//! [`ArrayGuard`]) for compound updates, as Python's `get_lock()` does, in a
//! [`LockResult`](crate::LockResult) exactly as [`Mutex::lock`](crate::Mutex::lock)
//! does (`Err(LockError::OwnerDied(guard))` when the previous holder died
//! holding it; `mark_consistent` on the guard keeps the lock usable). The
//! mutex is not reentrant: an operation that
//! takes it, called by the thread holding a guard, fails with `InvalidArgument`
//! instead of deadlocking. A cell created without a lock (`create_unlocked`,
//! Python's `lock=False`) answers `lock()` with
//! `LockError::Failed(InvalidArgument)`.
//!
//! - `Value`: the guard works on a private copy, written back through the
//!   seqlock when it drops. `set` and `update` take the lock; `get` and the
//!   lock-free atomic operations never do (so a guard's write-back replaces what
//!   they did meanwhile).
//! - `Array`: the guard is a zero-copy `&mut [T]` over the elements, so every
//!   operation on an array with a lock takes the lock, atomic ones included.
//!
//! # When a participant dies
//!
//! - Holding a `Value`'s lock: the next locker gets it with an owner-died
//!   indication (see [`mutex`](crate::mutex)); the value is unchanged, since the
//!   dead holder's copy was never written back.
//! - Holding an `Array`'s lock: the next `lock()` reports owner-died, and the
//!   elements hold whatever the holder wrote before dying; the guard holder
//!   checks them and calls `mark_consistent`, else the next locker is told
//!   in turn. A plain operation (`get`, `set`, ...) that acquires a lock
//!   whose owner died marks it consistent and proceeds: it makes no claim
//!   about relations between elements.
//! - In the middle of a seqlock write: `seq` stays odd. A reader that has waited
//!   (spinning, then yielding) for a while checks `writer` against the segment's
//!   liveness table; if the writer is dead, the read fails with
//!   [`Error::Corrupted`] ("a writer died while writing") instead of spinning
//!   forever. The next whole write (`Value::set`, `Array::write_from`) takes the
//!   dead writer's claim over, stores a whole value and makes `seq` even again:
//!   the cell is repaired. Partial writes and `update` (which would compute from
//!   a torn value) fail with the same error until then.
//! - The lock-free atomic operations leave nothing half done.
//!
//! # Example
//!
//! ```
//! use shmprim::{Value, Array};
//! # let vname = format!("doc-value-{}", std::process::id());
//! # let aname = format!("doc-array-{}", std::process::id());
//! let hits = Value::<u64>::create(&vname, 0)?;
//! hits.fetch_add(5);
//! let other = Value::<u64>::open(&vname)?; // as another process would
//! assert_eq!(other.load(), 5);
//!
//! let samples = Array::<f64>::create(&aname, 4)?;
//! samples.write_from(&[1.0, 2.0, 3.0, 4.0])?;
//! assert_eq!(samples.get(2)?, 3.0);
//! # Value::<u64>::unlink(&vname)?;
//! # Array::<f64>::unlink(&aname)?;
//! # Ok::<(), shmprim::Error>(())
//! ```

mod array;
mod bool_type;
mod lock;
mod raw_cell;
mod value;

pub use array::{Array, ArrayGuard};
pub use bool_type::Bool;
pub use value::{Value, ValueGuard};

use crate::error::{Error, Result};
use crate::segment::{TypeCode, TypeDesc};
use crate::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering, fence};

/// A type that can live in a shared cell: plain data with a [`TypeDesc`]
/// recorded in the segment header. Every `Pod` type is one, with no code to
/// write: the same bound as [`Queue`](crate::Queue) and
/// [`Mutex`](crate::Mutex) ask for.
///
/// The description ([`payload_desc`]) gives the fixed-width integers and
/// floats their exact codes (what C's typed cells use), [`Bool`] its own, and
/// every other type (arrays, your `#[repr(C)]` structs) `Struct`, named by
/// [`stable_type_name`](crate::stable_type_name):
///
/// ```
/// #[repr(C)]
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// struct Point { x: f64, y: f64 }
/// let v = shmprim::Value::anonymous(Point { x: 1.0, y: 2.0 }, true)?;
/// assert_eq!(v.get()?.y, 2.0);
/// # Ok::<(), shmprim::Error>(())
/// ```
pub trait ShmType: bytemuck::Pod + Send + Sync {
    /// The full description recorded in the header: size, alignment, code, name.
    fn type_desc() -> TypeDesc {
        payload_desc::<Self>()
    }
}

impl<T: bytemuck::Pod + Send + Sync> ShmType for T {}

/// The description of a plain-data payload `T`: the exact [`TypeCode`] of a
/// fixed-width integer or float (named as Rust names it) or of [`Bool`]
/// (named `bool`, as C's cells of that code are), else `Struct` named by
/// [`stable_type_name`](crate::stable_type_name).
pub fn payload_desc<T>() -> TypeDesc {
    let name = crate::stable_type_name::<T>();
    let code = match name.as_str() {
        "i8" => TypeCode::I8,
        "u8" => TypeCode::U8,
        "i16" => TypeCode::I16,
        "u16" => TypeCode::U16,
        "i32" => TypeCode::I32,
        "u32" => TypeCode::U32,
        "i64" => TypeCode::I64,
        "u64" => TypeCode::U64,
        "f32" => TypeCode::F32,
        "f64" => TypeCode::F64,
        "Bool" if std::mem::size_of::<T>() == 1 => {
            return TypeDesc::new(TypeCode::Bool, 1, 1, "bool");
        }
        _ => TypeCode::Struct,
    };
    TypeDesc::of::<T>(code)
}

mod private {
    /// Seals [`Word`](super::Word).
    pub trait Sealed {}
    /// Seals [`AtomicValue`](super::AtomicValue): the atomic operations cast the
    /// payload to `Bits`' atomic type, which is only sound when `Bits` has the
    /// element's exact size.
    pub trait SealedValue {}
}

/// An unsigned integer of 1, 2, 4 or 8 bytes: the bit pattern behind an
/// [`AtomicValue`], with the matching atomic type. Sealed.
pub trait Word: Copy + Eq + private::Sealed + 'static {
    #[doc(hidden)]
    type Atomic: Send + Sync;
    #[doc(hidden)]
    fn load(a: &Self::Atomic, o: Ordering) -> Self;
    #[doc(hidden)]
    fn store(a: &Self::Atomic, v: Self, o: Ordering);
    #[doc(hidden)]
    fn swap(a: &Self::Atomic, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn compare_exchange(a: &Self::Atomic, cur: Self, new: Self) -> Result<Self, Self>;
    #[doc(hidden)]
    fn fetch_add(a: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn fetch_sub(a: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn fetch_and(a: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn fetch_or(a: &Self::Atomic, v: Self) -> Self;
}

macro_rules! word {
    ($t:ty, $a:ty) => {
        impl private::Sealed for $t {}
        // Every operation here is SeqCst: the cells promise sequential consistency
        // (as Python's locked Value does) and pair with every other SeqCst access
        // of the same word, in any process.
        impl Word for $t {
            type Atomic = $a;
            #[inline]
            fn load(a: &$a, o: Ordering) -> $t {
                a.load(o)
            }
            #[inline]
            fn store(a: &$a, v: $t, o: Ordering) {
                a.store(v, o)
            }
            #[inline]
            fn swap(a: &$a, v: $t, o: Ordering) -> $t {
                a.swap(v, o)
            }
            #[inline]
            fn compare_exchange(a: &$a, cur: $t, new: $t) -> Result<$t, $t> {
                a.compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst)
            }
            #[inline]
            fn fetch_add(a: &$a, v: $t) -> $t {
                a.fetch_add(v, Ordering::SeqCst)
            }
            #[inline]
            fn fetch_sub(a: &$a, v: $t) -> $t {
                a.fetch_sub(v, Ordering::SeqCst)
            }
            #[inline]
            fn fetch_and(a: &$a, v: $t) -> $t {
                a.fetch_and(v, Ordering::SeqCst)
            }
            #[inline]
            fn fetch_or(a: &$a, v: $t) -> $t {
                a.fetch_or(v, Ordering::SeqCst)
            }
        }
    };
}
word!(u8, AtomicU8);
word!(u16, AtomicU16);
word!(u32, AtomicU32);
word!(u64, AtomicU64);

/// A type of 1, 2, 4 or 8 bytes with lock-free `load`, `store`, `swap`,
/// `compare_exchange` and `fetch_add`/`fetch_sub` in a cell: the fixed-width
/// integers and `f32`/`f64`. Sealed.
pub trait AtomicValue: ShmType + private::SealedValue {
    /// The unsigned integer of the same size.
    #[doc(hidden)]
    type Bits: Word;
    #[doc(hidden)]
    fn to_bits(self) -> Self::Bits;
    #[doc(hidden)]
    fn from_bits(bits: Self::Bits) -> Self;
    /// `old + delta` for `fetch_add` (wrapping for integers).
    #[doc(hidden)]
    fn add(old: Self, delta: Self) -> Self;
    /// `old - delta` for `fetch_sub` (wrapping for integers).
    #[doc(hidden)]
    fn sub(old: Self, delta: Self) -> Self;
    /// Whether `fetch_add`/`fetch_sub` map to the hardware instruction on the bits
    /// (two's complement integers) rather than a CAS loop (floats).
    #[doc(hidden)]
    const INTEGER: bool;
}

/// The integer [`AtomicValue`]s, which also have `fetch_and` and `fetch_or`.
/// Sealed.
pub trait AtomicInteger: AtomicValue {}

macro_rules! atomic_int {
    ($($t:ty => $bits:ty, $code:ident;)*) => {$(
        impl private::SealedValue for $t {}
        impl AtomicValue for $t {
            type Bits = $bits;
            #[inline]
            fn to_bits(self) -> $bits {
                self as $bits
            }
            #[inline]
            fn from_bits(bits: $bits) -> $t {
                bits as $t
            }
            #[inline]
            fn add(old: $t, delta: $t) -> $t {
                old.wrapping_add(delta)
            }
            #[inline]
            fn sub(old: $t, delta: $t) -> $t {
                old.wrapping_sub(delta)
            }
            const INTEGER: bool = true;
        }
        impl AtomicInteger for $t {}
    )*};
}
atomic_int! {
    i8 => u8, I8;
    u8 => u8, U8;
    i16 => u16, I16;
    u16 => u16, U16;
    i32 => u32, I32;
    u32 => u32, U32;
    i64 => u64, I64;
    u64 => u64, U64;
}

macro_rules! atomic_float {
    ($($t:ty => $bits:ty, $code:ident;)*) => {$(
        impl private::SealedValue for $t {}
        impl AtomicValue for $t {
            type Bits = $bits;
            #[inline]
            fn to_bits(self) -> $bits {
                <$t>::to_bits(self)
            }
            #[inline]
            fn from_bits(bits: $bits) -> $t {
                <$t>::from_bits(bits)
            }
            #[inline]
            fn add(old: $t, delta: $t) -> $t {
                old + delta
            }
            #[inline]
            fn sub(old: $t, delta: $t) -> $t {
                old - delta
            }
            const INTEGER: bool = false;
        }
    )*};
}
atomic_float! {
    f32 => u32, F32;
    f64 => u64, F64;
}

// ------------------------------------------------------------------ atomic ops

/// The atomic word of `T::Bits` at `ptr`.
///
/// # Safety
/// `ptr` is aligned to `size_of::<T>()`, points into a live mapping that
/// outlives `'a`, and the memory there is only ever accessed atomically.
unsafe fn atomic_at<'a, T: AtomicValue>(ptr: *mut u8) -> &'a <T::Bits as Word>::Atomic {
    const { assert!(std::mem::size_of::<T>() == std::mem::size_of::<T::Bits>()) };
    // SAFETY: the caller guarantees alignment, liveness and atomic-only access;
    // the std atomic of a width has the size and alignment of its integer.
    unsafe { &*ptr.cast::<<T::Bits as Word>::Atomic>() }
}

/// The lock-free operations of [`AtomicValue`]s on one word, shared by `Value`
/// and `Array` (which pass the element's address).
pub(crate) struct Ops<'a, T: AtomicValue>(pub(crate) &'a <T::Bits as Word>::Atomic);

impl<T: AtomicValue> Ops<'_, T> {
    pub(crate) fn load(&self) -> T {
        T::from_bits(T::Bits::load(self.0, Ordering::SeqCst))
    }
    pub(crate) fn store(&self, v: T) {
        T::Bits::store(self.0, v.to_bits(), Ordering::SeqCst)
    }
    pub(crate) fn swap(&self, v: T) -> T {
        T::from_bits(T::Bits::swap(self.0, v.to_bits(), Ordering::SeqCst))
    }
    /// Compares bit patterns (so `-0.0` differs from `0.0` and a NaN matches
    /// itself), as C's `atomic_compare_exchange` does.
    pub(crate) fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        T::Bits::compare_exchange(self.0, current.to_bits(), new.to_bits())
            .map(T::from_bits)
            .map_err(T::from_bits)
    }
    pub(crate) fn fetch_update(&self, mut f: impl FnMut(T) -> T) -> T {
        let mut old = T::Bits::load(self.0, Ordering::SeqCst);
        loop {
            let new = f(T::from_bits(old)).to_bits();
            match T::Bits::compare_exchange(self.0, old, new) {
                Ok(prev) => return T::from_bits(prev),
                Err(seen) => old = seen,
            }
        }
    }
    pub(crate) fn fetch_add(&self, v: T) -> T {
        if T::INTEGER {
            T::from_bits(T::Bits::fetch_add(self.0, v.to_bits()))
        } else {
            self.fetch_update(|old| T::add(old, v))
        }
    }
    pub(crate) fn fetch_sub(&self, v: T) -> T {
        if T::INTEGER {
            T::from_bits(T::Bits::fetch_sub(self.0, v.to_bits()))
        } else {
            self.fetch_update(|old| T::sub(old, v))
        }
    }
}

impl<T: AtomicInteger> Ops<'_, T> {
    pub(crate) fn fetch_and(&self, v: T) -> T {
        T::from_bits(T::Bits::fetch_and(self.0, v.to_bits()))
    }
    pub(crate) fn fetch_or(&self, v: T) -> T {
        T::from_bits(T::Bits::fetch_or(self.0, v.to_bits()))
    }
}

// ------------------------------------------------------------- atomic copies

/// Width of the single atomic instruction that reads or writes a whole `T`, if
/// there is one (sizes 1, 2, 4, 8; the payload is aligned for it).
pub(crate) const fn word_width<T>() -> Option<usize> {
    match std::mem::size_of::<T>() {
        n @ (1 | 2 | 4 | 8) => Some(n),
        _ => None,
    }
}

/// Reads a `T` at `ptr` with one atomic load of its own width.
///
/// # Safety
/// `word_width::<T>()` is `Some`, `ptr` is aligned to it, and points into a live
/// mapping only accessed atomically.
pub(crate) unsafe fn load_word<T: bytemuck::Pod>(ptr: *mut u8, o: Ordering) -> T {
    // SAFETY: the caller guarantees the width, alignment and liveness (all arms);
    // `T` is Pod of exactly this size, so any bits are a valid `T`.
    unsafe {
        match std::mem::size_of::<T>() {
            1 => bytemuck::cast(u8::load(&*ptr.cast::<AtomicU8>(), o)),
            2 => bytemuck::cast(u16::load(&*ptr.cast::<AtomicU16>(), o)),
            4 => bytemuck::cast(u32::load(&*ptr.cast::<AtomicU32>(), o)),
            8 => bytemuck::cast(u64::load(&*ptr.cast::<AtomicU64>(), o)),
            _ => unreachable!("word_width checked by the caller"),
        }
    }
}

/// Writes a `T` at `ptr` with one atomic store of its own width.
///
/// # Safety
/// As [`load_word`].
pub(crate) unsafe fn store_word<T: bytemuck::Pod>(ptr: *mut u8, v: T, o: Ordering) {
    // SAFETY: as in `load_word` (all arms).
    unsafe {
        match std::mem::size_of::<T>() {
            1 => u8::store(&*ptr.cast::<AtomicU8>(), bytemuck::cast(v), o),
            2 => u16::store(&*ptr.cast::<AtomicU16>(), bytemuck::cast(v), o),
            4 => u32::store(&*ptr.cast::<AtomicU32>(), bytemuck::cast(v), o),
            8 => u64::store(&*ptr.cast::<AtomicU64>(), bytemuck::cast(v), o),
            _ => unreachable!("word_width checked by the caller"),
        }
    }
}

/// Copies `dst.len()` bytes from shared memory at `src` with relaxed atomic
/// loads: single bytes up to 8-byte alignment, then 8-byte words, then bytes.
///
/// # Safety
/// `src..src + dst.len()` lies in a live mapping only accessed atomically.
pub(crate) unsafe fn copy_out(src: *const u8, dst: &mut [u8]) {
    let head = src.align_offset(8).min(dst.len());
    let (h, rest) = dst.split_at_mut(head);
    let words = rest.len() / 8;
    let (body, tail) = rest.split_at_mut(words * 8);
    for (i, b) in h.iter_mut().enumerate() {
        // SAFETY: in bounds (caller); AtomicU8 has no alignment requirement.
        *b = unsafe { &*src.add(i).cast::<AtomicU8>() }.load(Ordering::Relaxed);
    }
    // SAFETY: `src + head` is 8-aligned and `words` whole words follow in bounds.
    let w = src.wrapping_add(head).cast::<AtomicU64>();
    for (i, chunk) in body.chunks_exact_mut(8).enumerate() {
        // SAFETY: as above.
        let v = unsafe { &*w.add(i) }.load(Ordering::Relaxed);
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    let t = src.wrapping_add(head + words * 8);
    for (i, b) in tail.iter_mut().enumerate() {
        // SAFETY: in bounds (caller); byte atomics need no alignment.
        *b = unsafe { &*t.add(i).cast::<AtomicU8>() }.load(Ordering::Relaxed);
    }
}

/// Copies `src` into shared memory at `dst` with relaxed atomic stores, in the
/// same pieces as [`copy_out`]. Bytes outside `dst..dst + src.len()` are never
/// written.
///
/// # Safety
/// `dst..dst + src.len()` lies in a live, writable mapping only accessed
/// atomically.
pub(crate) unsafe fn copy_in(dst: *mut u8, src: &[u8]) {
    let head = dst.align_offset(8).min(src.len());
    let (h, rest) = src.split_at(head);
    let words = rest.len() / 8;
    let (body, tail) = rest.split_at(words * 8);
    for (i, &b) in h.iter().enumerate() {
        // SAFETY: in bounds (caller); AtomicU8 has no alignment requirement.
        unsafe { &*dst.add(i).cast::<AtomicU8>() }.store(b, Ordering::Relaxed);
    }
    let w = dst.wrapping_add(head).cast::<AtomicU64>();
    for (i, chunk) in body.chunks_exact(8).enumerate() {
        let v = u64::from_ne_bytes(chunk.try_into().expect("8-byte chunk"));
        // SAFETY: `dst + head` is 8-aligned and `words` whole words follow in bounds.
        unsafe { &*w.add(i) }.store(v, Ordering::Relaxed);
    }
    let t = dst.wrapping_add(head + words * 8);
    for (i, &b) in tail.iter().enumerate() {
        // SAFETY: in bounds (caller); byte atomics need no alignment.
        unsafe { &*t.add(i).cast::<AtomicU8>() }.store(b, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------- the state

/// Flag in [`CellState::flags`]: the cell has a robust mutex.
pub(crate) const FLAG_LOCK: u32 = 1;

/// Parameter indices in the segment header.
pub(crate) const PARAM_LEN: usize = 0;
pub(crate) const PARAM_LOCK: usize = 1;
pub(crate) const PARAM_PAYLOAD_OFFSET: usize = 2;

/// Iterations a seqlock reader or a writer waiting for the write side spins
/// before it starts yielding; and yields between liveness checks.
/// (Small under loom, where every iteration is a scheduling point.)
const SPINS: u32 = if cfg!(shmprim_loom) { 2 } else { 128 };
const YIELDS_PER_CHECK: u32 = if cfg!(shmprim_loom) { 4 } else { 1024 };
/// Liveness checks a reader or writer makes while the same live writer
/// holds the same odd sequence (or the write side) before it reports the
/// cell stuck: about 2 M yields, seconds, where a real write takes
/// microseconds. A live writer cannot hold it that long, but corrupted words
/// (an odd sequence naming a live participant) would hold it for ever. Under
/// loom, time is modelled by yields and the bound is off.
const STUCK_CHECKS: u32 = if cfg!(shmprim_loom) { u32::MAX } else { 2048 };

/// The control words of a cell, at the start of its data area.
///
/// | field       | meaning                                                    |
/// |-------------|------------------------------------------------------------|
/// | `seq`       | seqlock sequence: odd while a writer stores the payload    |
/// | `writer`    | `ParticipantId::to_u64` of the writer owning the write side, 0 if none |
/// | `elem_size` | `size_of::<T>()`, checked against the header on open        |
/// | `len`       | number of elements (1 for a `Value`)                        |
/// | `flags`     | bit 0: a mutex follows at offset 64                         |
#[repr(C)]
pub struct CellState {
    seq: AtomicU64,
    writer: AtomicU64,
    elem_size: AtomicU64,
    len: AtomicU64,
    flags: AtomicU32,
    _pad: [u32; 7],
}

#[cfg(not(shmprim_loom))]
const _: () = assert!(std::mem::size_of::<CellState>() == 64);

/// What a seqlock read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The writer holding the sequence odd is dead: the payload may be torn.
    WriterDied,
    /// The same writer, alive, held the sequence odd (or the write side) for
    /// [`STUCK_CHECKS`] checks: corrupted words, or a writer stopped in the
    /// middle of a write.
    Stuck,
}

impl CellState {
    /// Size of the state words in front of the lock and payload.
    pub const SIZE: usize = 64;

    /// Writes a fresh state in place.
    ///
    /// # Safety
    /// `ptr` is valid for writes of `SIZE` bytes, 8-aligned, and not yet shared.
    pub unsafe fn init(ptr: *mut CellState, elem_size: u64, len: u64, flags: u32) {
        // SAFETY: the caller guarantees `ptr` is valid and exclusively ours.
        unsafe { ptr.write(CellState::new(elem_size, len, flags)) };
    }

    /// A fresh state on the heap or the stack (loom models).
    pub fn new(elem_size: u64, len: u64, flags: u32) -> CellState {
        CellState {
            seq: AtomicU64::new(0),
            writer: AtomicU64::new(0),
            elem_size: AtomicU64::new(elem_size),
            len: AtomicU64::new(len),
            flags: AtomicU32::new(flags),
            _pad: [0; 7],
        }
    }

    /// Checks the state's own fields against the validated header.
    pub(crate) fn validate(&self, name: &str, elem_size: u64, len: u64, flags: u32) -> Result<()> {
        let found = (
            self.elem_size.load(Ordering::Relaxed),
            self.len.load(Ordering::Relaxed),
            self.flags.load(Ordering::Relaxed),
        );
        if found != (elem_size, len, flags) {
            return Err(Error::corrupted(
                name,
                format!(
                    "cell state says element size {}, length {}, flags {:#x}; header says {elem_size}, {len}, {flags:#x}",
                    found.0, found.1, found.2
                ),
            ));
        }
        Ok(())
    }

    /// Seqlock read: runs `copy` (relaxed atomic loads of the payload) until it
    /// ran while no writer was storing. `writer_alive` is asked, after a long
    /// wait, whether the writer holding the sequence odd is still alive.
    pub(crate) fn read<R>(
        &self,
        mut copy: impl FnMut() -> R,
        writer_alive: impl Fn(u64) -> bool,
    ) -> Result<R, ReadError> {
        let mut waited = 0u32;
        // The odd sequence seen at the last liveness checks, and how many
        // checks in a row saw it.
        let (mut held, mut checks) = (0u64, 0u32);
        loop {
            // Acquire: pairs with the Release store that made `seq` even at the
            // end of the last write, so the copy sees at least that write.
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let r = copy();
                // Acquire fence: if `copy` read any store of a later writer, the
                // writer's Release fence after making `seq` odd synchronises with
                // this fence, so the next load sees `seq` changed.
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return Ok(r);
                }
            }
            waited = waited.saturating_add(1);
            if waited < SPINS {
                crate::sync::spin_hint();
            } else {
                backoff();
                if waited % YIELDS_PER_CHECK == 0 && s1 & 1 == 1 {
                    // Acquire: pairs with the Release store ending a claim, which
                    // comes after the store making `seq` even: if `writer` reads
                    // 0 because that writer finished, `seq` below reads even.
                    let w = self.writer.load(Ordering::Acquire);
                    // `w == 0` with `seq` still odd: nobody is writing (a claim
                    // given back over a torn payload, or garbage).
                    if (w == 0 || !writer_alive(w)) && self.seq.load(Ordering::Relaxed) == s1 {
                        return Err(ReadError::WriterDied);
                    }
                    (held, checks) = if held == s1 {
                        (s1, checks + 1)
                    } else {
                        (s1, 1)
                    };
                    if checks >= STUCK_CHECKS {
                        return Err(ReadError::Stuck);
                    }
                }
            }
        }
    }

    /// Claims the write side for participant `me`: CAS `writer` from 0 to `me`,
    /// or from the id of a writer found dead to `me` (a takeover). Writers are
    /// serialised by this claim, with or without a lock. The claim is released
    /// when the returned [`WriteSide`] is dropped.
    /// `Err(Stuck)` if the same live holder kept the write side for
    /// [`STUCK_CHECKS`] checks.
    pub(crate) fn claim(
        &self,
        me: u64,
        writer_alive: impl Fn(u64) -> bool,
    ) -> Result<WriteSide<'_>, ReadError> {
        debug_assert_ne!(me, 0);
        let mut waited = 0u32;
        let mut expected = 0;
        let (mut held, mut checks) = (0u64, 0u32);
        loop {
            // Acquire: pairs with the Release store of 0 that ended the previous
            // writer's claim (or, on a takeover, its Release store of `seq`), so
            // this writer sees the payload and `seq` as the last one left them.
            match self
                .writer
                .compare_exchange(expected, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Ok(WriteSide {
                        state: self,
                        took_over: expected,
                        abandoned: false,
                    });
                }
                Err(holder) => {
                    expected = 0;
                    waited = waited.saturating_add(1);
                    if waited < SPINS {
                        crate::sync::spin_hint();
                    } else {
                        backoff();
                        if waited % YIELDS_PER_CHECK == 0 && holder != 0 {
                            if !writer_alive(holder) {
                                expected = holder;
                            } else {
                                (held, checks) = if held == holder {
                                    (holder, checks + 1)
                                } else {
                                    (holder, 1)
                                };
                                if checks >= STUCK_CHECKS {
                                    return Err(ReadError::Stuck);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The claimed write side of a cell's seqlock; released on drop.
pub(crate) struct WriteSide<'a> {
    state: &'a CellState,
    /// Id of the dead writer this claim took over, 0 for a normal claim.
    took_over: u64,
    abandoned: bool,
}

impl WriteSide<'_> {
    /// Whether a dead writer left the payload half written (`seq` odd).
    pub(crate) fn torn(&self) -> bool {
        self.state.seq.load(Ordering::Relaxed) & 1 == 1
    }

    /// Stores the payload (`store` does relaxed atomic stores only) between
    /// making `seq` odd and even again. Repairs a torn payload if `store`
    /// writes all of it.
    pub(crate) fn publish(&self, store: impl FnOnce()) {
        let seq = &self.state.seq;
        let s = seq.load(Ordering::Relaxed);
        // A dead writer left `seq` odd: keep it odd (readers keep retrying) while
        // repairing, and still move it on, so every write changes `seq`.
        let odd = if s & 1 == 1 {
            s.wrapping_add(2)
        } else {
            s.wrapping_add(1)
        };
        seq.store(odd, Ordering::Relaxed);
        // Release fence: orders the odd `seq` before the payload stores; pairs
        // with the reader's Acquire fence in `CellState::read`.
        fence(Ordering::Release);
        store();
        // Release: publishes the payload stores to readers whose Acquire load of
        // `seq` sees this even value.
        seq.store(odd.wrapping_add(1), Ordering::Release);
    }

    /// Gives a torn payload back to the dead writer's claim untouched, so that
    /// readers keep reporting it and the next `set` repairs it.
    pub(crate) fn abandon(mut self) {
        self.abandoned = true;
        // Release: as in `drop`.
        self.state.writer.store(self.took_over, Ordering::Release);
    }
}

impl Drop for WriteSide<'_> {
    fn drop(&mut self) {
        if !self.abandoned {
            // Release: pairs with the Acquire CAS in `claim`, handing the payload
            // and `seq` over to the next writer.
            self.state.writer.store(0, Ordering::Release);
        }
    }
}

/// Past the spin phase: give the CPU away (on a 2-core machine the writer may
/// be waiting for it).
fn backoff() {
    #[cfg(not(shmprim_loom))]
    std::thread::yield_now();
    #[cfg(shmprim_loom)]
    loom::thread::yield_now();
}

/// Where things are in a cell's memory (the data area of its segment, or any
/// region a caller owns): the [`CellState`] at offset 0, the mutex at offset 64
/// if there is one, and the payload at `payload_offset`.
///
/// ```
/// use shmprim::cell::CellLayout;
/// let l = CellLayout::new(8, 8, 1000, false)?;
/// assert_eq!(l.payload_offset, 64);
/// assert_eq!(l.size, 64 + 8000);
/// # Ok::<(), shmprim::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellLayout {
    /// Offset of the first element (a multiple of 64 and of the alignment).
    pub payload_offset: usize,
    /// Bytes the whole cell takes.
    pub size: usize,
}

impl CellLayout {
    /// The layout of `len` elements of `elem_size` bytes aligned to `elem_align`
    /// (a power of two, at most 4096), with or without a mutex.
    pub fn new(elem_size: usize, elem_align: usize, len: usize, with_lock: bool) -> Result<Self> {
        if !elem_align.is_power_of_two() || elem_align > 4096 {
            return Err(Error::invalid_argument(format!(
                "element alignment {elem_align} is not a power of two up to 4096"
            )));
        }
        let align = elem_align.max(64);
        let lock = if with_lock {
            lock::SIZE.next_multiple_of(64)
        } else {
            0
        };
        let payload_offset = (CellState::SIZE + lock).next_multiple_of(align);
        let size = elem_size
            .checked_mul(len)
            .and_then(|b| b.checked_add(payload_offset))
            .filter(|&b| b <= isize::MAX as usize / 2)
            .ok_or_else(|| {
                Error::invalid_argument(format!("{len} elements of {elem_size} bytes is too large"))
            })?;
        Ok(CellLayout {
            payload_offset,
            size,
        })
    }

    /// The layout of `len` elements of `T`.
    pub fn of<T>(len: usize, with_lock: bool) -> Result<Self> {
        CellLayout::new(
            std::mem::size_of::<T>(),
            std::mem::align_of::<T>(),
            len,
            with_lock,
        )
    }

    /// Writes a fresh cell in place: the state, the mutex if `with_lock`, and a
    /// zeroed payload (the C API's `shmprim_value_init(void *mem)` will call
    /// this).
    ///
    /// # Safety
    /// `ptr` is valid for writes of `self.size` bytes, aligned to 64 and to the
    /// element alignment, and not in use by any thread or process.
    pub unsafe fn init(
        &self,
        ptr: *mut u8,
        elem_size: usize,
        len: usize,
        with_lock: bool,
    ) -> Result<()> {
        // SAFETY: forwarded from the caller.
        unsafe { self.init_control(ptr, elem_size, len, with_lock)? };
        // SAFETY: the payload lies inside the region (layout) and is unshared.
        unsafe { std::ptr::write_bytes(ptr.add(self.payload_offset), 0, elem_size * len) };
        Ok(())
    }

    /// [`init`](Self::init) without zeroing the payload (a new segment is
    /// already zero, and touching 8 MB of it would cost page faults for nothing).
    ///
    /// # Safety
    /// As [`init`](Self::init).
    unsafe fn init_control(
        &self,
        ptr: *mut u8,
        elem_size: usize,
        len: usize,
        with_lock: bool,
    ) -> Result<()> {
        let flags = if with_lock { FLAG_LOCK } else { 0 };
        // SAFETY: the caller guarantees `ptr` is valid, aligned and unshared;
        // the state takes the first 64 bytes of `self.size`.
        unsafe { CellState::init(ptr.cast(), elem_size as u64, len as u64, flags) };
        if with_lock {
            // SAFETY: offset 64 is 64-aligned and inside the region (layout).
            unsafe { lock::init(ptr.add(CellState::SIZE))? };
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- the handle

/// What `Value` and `Array` share: the segment, its validated layout, and this
/// handle's participant id (the writer id in the seqlock).
#[derive(Debug)]
pub(crate) struct RawCell {
    /// Dropped by hand: leaked when a guard was leaked (see `Drop`).
    seg: std::mem::ManuallyDrop<crate::Segment>,
    len: usize,
    has_lock: bool,
    /// Start of the payload in this handle's mapping.
    payload: *mut u8,
    me: u64,
    /// `fork_generation()` when `me` was read.
    fork_gen: u32,
}

/// How a cell is created.
pub(crate) enum Create<'a> {
    Named(&'a str),
    OpenOrCreateNamed(&'a str),
    Anonymous,
}

/// Copies `dst.len()` elements from shared memory at `src` with relaxed atomic
/// loads: one per element for 1/2/4/8-byte types (the same width as the
/// per-element atomic operations, so accesses to an element never mix sizes),
/// else by [`copy_out`].
///
/// # Safety
/// As [`copy_out`], and `src` is aligned for `T`'s width.
pub(crate) unsafe fn copy_elems_out<T: bytemuck::Pod>(src: *mut u8, dst: &mut [T]) {
    if word_width::<T>().is_some() {
        let size = std::mem::size_of::<T>();
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: element `i` is in bounds and aligned (caller).
            *d = unsafe { load_word::<T>(src.add(i * size), Ordering::Relaxed) };
        }
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { copy_out(src, bytemuck::cast_slice_mut(dst)) }
    }
}

/// Stores `src` into shared memory at `dst`, as [`copy_elems_out`] loads.
///
/// # Safety
/// As [`copy_in`], and `dst` is aligned for `T`'s width.
pub(crate) unsafe fn copy_elems_in<T: bytemuck::Pod>(dst: *mut u8, src: &[T]) {
    if word_width::<T>().is_some() {
        let size = std::mem::size_of::<T>();
        for (i, &v) in src.iter().enumerate() {
            // SAFETY: element `i` is in bounds and aligned (caller).
            unsafe { store_word::<T>(dst.add(i * size), v, Ordering::Relaxed) };
        }
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { copy_in(dst, bytemuck::cast_slice(src)) }
    }
}

impl Drop for RawCell {
    fn drop(&mut self) {
        // A leaked guard (`mem::forget`) leaves the mutex held by this process,
        // linked into the C library's robust list: unmapping it would leave that
        // list pointing at nothing. Keep the mapping in that case.
        if self
            .lock_word()
            .is_some_and(|l| l.held_by_current_process())
        {
            return;
        }
        // SAFETY: dropped exactly once, here.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.seg) };
    }
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests;

/// The state of a `Value` or `Array` for inspection (`shmprim ls` / `stat`):
/// loads only, bounds-checked by the view; `None` if a field lies outside it.
pub(crate) fn summarize(
    kind: crate::Kind,
    info: &crate::HeaderInfo,
    view: &crate::inspect::view::StateView<'_>,
) -> Option<crate::inspect::view::StateSummary> {
    use crate::inspect::view::{Field, StateSummary, format_value};
    let seq = view.u64(std::mem::offset_of!(CellState, seq))?;
    let writer = view.u64(std::mem::offset_of!(CellState, writer))?;
    let len = info.params[PARAM_LEN];
    let lock = info.params[PARAM_LOCK] == 1;
    let offset = usize::try_from(info.params[PARAM_PAYLOAD_OFFSET]).ok()?;
    let size = usize::try_from(info.payload.size).ok()?;
    let writing = seq & 1 == 1;
    let shown = len.min(if kind == crate::Kind::Value { 1 } else { 4 }) as usize;
    let values: Vec<String> = (0..shown)
        .map(|i| {
            view.bytes(offset.checked_add(i.checked_mul(size)?)?, size)
                .map(|b| format_value(&info.payload, &b))
        })
        .collect::<Option<_>>()?;
    let mut line = if kind == crate::Kind::Value {
        format!("= {}", values.join(""))
    } else {
        let more = if len as usize > shown { ", …" } else { "" };
        format!("{len} × [{}{more}]", values.join(", "))
    };
    line.push_str(if lock { ", lock" } else { ", no lock" });
    if writing {
        line.push_str(", being written");
    }
    Some(StateSummary {
        line,
        fields: vec![
            ("len", Field::U64(len)),
            ("lock", Field::Bool(lock)),
            ("seq", Field::U64(seq)),
            ("writing", Field::Bool(writing)),
            ("writer", Field::U64(writer)),
            ("values", Field::Str(values.join(", "))),
        ],
    })
}
