//! [`Array<T>`]: a fixed number of `T`s in shared memory (Python's
//! `multiprocessing.Array`).

use std::marker::PhantomData;
use std::time::Duration;

use super::lock::Held;
use super::{
    AtomicInteger, AtomicValue, Create, Ops, RawCell, ShmType, atomic_at, load_word, store_word,
    word_width,
};
use crate::error::{Error, Result};
use crate::mutex::{LockError, LockResult, LockStatus, lock_timed_out};
use crate::sync::atomic::Ordering;
use crate::wait::try_first;
use crate::{Deadline, Disposition, Kind, Options, Segment};

/// A fixed-length array of `T` in a named (or anonymous) shared-memory segment:
/// Python's `multiprocessing.Array(typecode, n, lock=True)`.
///
/// What "consistent" means depends on whether the array has a lock:
///
/// - **With a lock** (the default), every operation — `get`, `set`, the bulk
///   and range copies, and the per-element atomic operations — takes the lock,
///   as Python's locked `Array` does. So each operation sees and leaves the
///   array as a [`lock`](Array::lock) holder (who has a zero-copy `&mut [T]`)
///   left it, never half way through a holder's changes.
/// - **Without a lock** (`create_unlocked`, Python's `lock=False`), nothing
///   blocks: elements of 1, 2, 4 or 8 bytes are read and written with single
///   atomic instructions, and the per-element atomic operations are lock-free.
///   `read_*` and `write_*` (and `get`/`set` of larger elements) use one seqlock
///   over the whole array: a read returns the range as one `write_*`/`set` left
///   it, never a mix of two (per-element atomic operations of small elements are
///   not ordered with it: they are individually atomic). A read retries while
///   writes overlap it, so a long read under a steady stream of writes can be
///   delayed for as long as they keep coming: give a large, busy array a lock.
///
/// Indices are checked: an index or range outside `0..len` is
/// [`Error::IndexOutOfRange`], never a panic.
///
/// ```
/// use shmprim::Array;
/// # let name = format!("doc-array-lock-{}", std::process::id());
/// let a = Array::<u32>::create(&name, 3)?;
/// a.write_from(&[1, 2, 3])?;
/// {
///     let mut g = a.lock().unwrap(); // zero-copy &mut [u32] while held
///     g.reverse();
/// }
/// let mut out = [0; 3];
/// a.read_into(&mut out)?;
/// assert_eq!(out, [3, 2, 1]);
/// assert!(a.get(3).is_err()); // IndexOutOfRange
/// Array::<u32>::unlink(&name)?;
/// # Ok::<(), shmprim::Error>(())
/// ```
#[derive(Debug)]
pub struct Array<T: ShmType> {
    cell: RawCell,
    _t: PhantomData<T>,
}

// SAFETY: the handle owns a mapping and only touches it with atomics, under the
// seqlock, or under the process-shared lock; `T: Send + Sync` (ShmType).
unsafe impl<T: ShmType> Send for Array<T> {}
// SAFETY: as above.
unsafe impl<T: ShmType> Sync for Array<T> {}

impl<T: ShmType> Array<T> {
    fn build(
        how: Create<'_>,
        len: usize,
        lock: bool,
        opts: &Options,
    ) -> Result<(Self, Disposition)> {
        // The segment is zero-filled by `ftruncate`: zero is a valid `T` (Pod).
        let (cell, d) = RawCell::create::<T>(how, Kind::Array, len, lock, opts, |_| {})?;
        Ok((
            Array {
                cell,
                _t: PhantomData,
            },
            d,
        ))
    }

    /// Creates the named array of `len` zeroed elements, with a lock.
    pub fn create(name: &str, len: usize) -> Result<Self> {
        Self::create_with_options(name, len, true, &Options::default())
    }

    /// Creates the named array holding a copy of `values`, with a lock
    /// (Python's `Array(typecode, sequence)`). The values are in place
    /// before any other process can open it.
    pub fn create_from(name: &str, values: &[T]) -> Result<Self> {
        let (cell, _) = RawCell::create::<T>(
            Create::Named(name),
            Kind::Array,
            values.len(),
            true,
            &Options::default(),
            |payload| payload.copy_from_slice(values),
        )?;
        Ok(Array {
            cell,
            _t: PhantomData,
        })
    }

    /// Creates the named array without a lock (Python's `lock=False` /
    /// `RawArray`): nothing blocks, and [`lock`](Array::lock) fails.
    pub fn create_unlocked(name: &str, len: usize) -> Result<Self> {
        Self::create_with_options(name, len, false, &Options::default())
    }

    /// Creates the named array, with or without a lock, with handle options.
    pub fn create_with_options(name: &str, len: usize, lock: bool, opts: &Options) -> Result<Self> {
        Self::build(Create::Named(name), len, lock, opts).map(|(a, _)| a)
    }

    /// Opens the named array, of whatever length; `Incompatible` unless it
    /// holds `T`s.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with_options(name, None, &Options::default())
    }

    /// Opens the named array, checking it has exactly `len` elements
    /// (`Incompatible { what: Parameter }` otherwise).
    pub fn open_with_len(name: &str, len: usize) -> Result<Self> {
        Self::open_with_options(name, Some(len), &Options::default())
    }

    /// Opens the named array, checking its length if `len` is given, with
    /// handle options (unlink on drop, ready timeout).
    pub fn open_with_options(name: &str, len: Option<usize>, opts: &Options) -> Result<Self> {
        let cell = RawCell::open::<T>(name, Kind::Array, len, opts)?;
        Ok(Array {
            cell,
            _t: PhantomData,
        })
    }

    /// Opens the named array (checking `len`), or creates it with a lock.
    pub fn open_or_create(name: &str, len: usize) -> Result<(Self, Disposition)> {
        let (a, d) = Self::build(
            Create::OpenOrCreateNamed(name),
            len,
            true,
            &Options::default(),
        )?;
        a.cell
            .segment()
            .expect_param(super::PARAM_LEN, len as u64, "length")?;
        Ok((a, d))
    }

    /// An anonymous array (`memfd`), shared with children forked afterwards.
    pub fn anonymous(len: usize, lock: bool) -> Result<Self> {
        Self::build(Create::Anonymous, len, lock, &Options::default()).map(|(a, _)| a)
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::Array)
    }

    /// The segment holding the array.
    pub fn segment(&self) -> &Segment {
        self.cell.segment()
    }

    /// The first element in shared memory, for a binding that hands the
    /// elements out as they are (Python's buffer protocol over a
    /// `RawArray`): `len()` elements of `T`, aligned for `T`, mapped while
    /// this handle lives. Whoever reads or writes through it gives up what
    /// the array's own calls guarantee (its lock, its seqlock, atomic access):
    /// other processes may write the same bytes at the same time.
    pub fn as_ptr(&self) -> *mut T {
        self.cell.payload().cast::<T>()
    }

    /// Whether the array was created with a lock.
    pub fn has_lock(&self) -> bool {
        self.cell.has_lock()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.cell.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.cell.len() == 0
    }

    /// `Ok` if elements `start .. start + count` exist, else
    /// [`Error::IndexOutOfRange`]: what a caller checks before it allocates
    /// a buffer of `count` elements.
    pub fn check_range(&self, start: usize, count: usize) -> Result<()> {
        match start.checked_add(count) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(Error::IndexOutOfRange {
                name: self.cell.name().clone(),
                index: if start < self.len() {
                    start.saturating_add(count)
                } else {
                    start
                },
                len: self.len(),
            }),
        }
    }

    /// Element `i`.
    pub fn get(&self, i: usize) -> Result<T> {
        let mut out = [T::zeroed()];
        self.read_range(i, &mut out)?;
        Ok(out[0])
    }

    /// Sets element `i` to `v`.
    pub fn set(&self, i: usize, v: T) -> Result<()> {
        self.write_range(i, &[v])
    }

    /// Copies the whole array into `out` (`out.len()` must be `len()`, else
    /// `InvalidArgument`).
    pub fn read_into(&self, out: &mut [T]) -> Result<()> {
        self.expect_whole(out.len())?;
        self.read_range(0, out)
    }

    /// Overwrites the whole array with `data` (`data.len()` must be `len()`).
    pub fn write_from(&self, data: &[T]) -> Result<()> {
        self.expect_whole(data.len())?;
        self.write_range(0, data)
    }

    fn expect_whole(&self, n: usize) -> Result<()> {
        if n == self.len() {
            Ok(())
        } else {
            Err(Error::invalid_argument(format!(
                "buffer of {n} elements for an array of {}",
                self.len()
            )))
        }
    }

    /// Copies elements `start..start + out.len()` into `out`.
    pub fn read_range(&self, start: usize, out: &mut [T]) -> Result<()> {
        self.check_range(start, out.len())?;
        let src = self.cell.elem::<T>(start);
        if let Some(_held) = self.cell.lock_for_op()? {
            // SAFETY: the range is inside the payload (checked); under the lock no
            // cooperating writer touches it, and `out` is our own memory.
            unsafe { std::ptr::copy_nonoverlapping(src.cast::<T>(), out.as_mut_ptr(), out.len()) };
            return Ok(());
        }
        if out.len() == 1 && word_width::<T>().is_some() {
            // SAFETY: element `start` is inside the payload, aligned to its size
            // (64-aligned base, stride = size), and only accessed atomically.
            out[0] = unsafe { load_word::<T>(src, Ordering::SeqCst) };
            return Ok(());
        }
        self.cell.read_elems(src, out)
    }

    /// Writes `data` to elements `start..start + data.len()`.
    pub fn write_range(&self, start: usize, data: &[T]) -> Result<()> {
        self.check_range(start, data.len())?;
        let dst = self.cell.elem::<T>(start);
        if let Some(_held) = self.cell.lock_for_op()? {
            // SAFETY: as in `read_range`; `data` is the caller's memory.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst.cast::<T>(), data.len()) };
            return Ok(());
        }
        if data.len() == 1 && word_width::<T>().is_some() {
            // SAFETY: as in `read_range`.
            unsafe { store_word::<T>(dst, data[0], Ordering::SeqCst) };
            return Ok(());
        }
        let whole = start == 0 && data.len() == self.len();
        self.cell.write_elems(dst, data, whole)
    }

    /// Locks the array and gives zero-copy access to all of it, waiting as long
    /// as it takes, like [`Mutex::lock`](crate::Mutex::lock):
    /// `Err(LockError::OwnerDied(guard))` if the previous holder died holding
    /// it, possibly half way through changing the elements;
    /// `Err(LockError::Failed(e))` with `InvalidArgument` if the array has no
    /// lock or this thread already holds it, `Unrecoverable` if an owner died
    /// and nobody marked it consistent.
    pub fn lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        self.lock_until(Deadline::never())
    }

    /// Locks if nobody holds the lock; `Failed(Error::Timeout)` if somebody does.
    pub fn try_lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        self.lock_until(Deadline::now())
    }

    /// [`lock`](Array::lock), giving up with `Failed(Timeout)` after `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<ArrayGuard<'_, T>> {
        try_first(timeout, |d| self.lock_until(d), lock_timed_out)
    }

    /// [`lock`](Array::lock), giving up with `Failed(Timeout)` at `deadline`.
    pub fn lock_until(&self, deadline: Deadline) -> LockResult<ArrayGuard<'_, T>> {
        let held = self.cell.lock_for_guard(deadline)?;
        let status = held.status();
        let guard = ArrayGuard { array: self, held };
        match status {
            LockStatus::Acquired => Ok(guard),
            LockStatus::OwnerDied => Err(LockError::OwnerDied(guard)),
        }
    }
}

impl<T: AtomicValue> Array<T> {
    /// Runs `op` on element `i`'s atomic word (under the lock, if any).
    fn with_elem<R>(&self, i: usize, op: impl FnOnce(Ops<'_, T>) -> R) -> Result<R> {
        self.check_range(i, 1)?;
        let _held = self.cell.lock_for_op()?;
        // SAFETY: element `i` is inside the payload (checked), aligned to its size,
        // lives as long as `self`, and is only accessed atomically outside a guard
        // (and a guard excludes us: we hold the lock if there is one).
        Ok(op(Ops(unsafe { atomic_at::<T>(self.cell.elem::<T>(i)) })))
    }

    /// Element `i` (one atomic load when the array has no lock).
    pub fn load(&self, i: usize) -> Result<T> {
        self.with_elem(i, |o| o.load())
    }

    /// Stores `v` into element `i`.
    pub fn store(&self, i: usize, v: T) -> Result<()> {
        self.with_elem(i, |o| o.store(v))
    }

    /// Stores `v` into element `i`, returning the previous value.
    pub fn swap(&self, i: usize, v: T) -> Result<T> {
        self.with_elem(i, |o| o.swap(v))
    }

    /// Stores `new` into element `i` if it is `current` (bit for bit):
    /// `Ok(Ok(previous))` on success, `Ok(Err(actual))` otherwise.
    pub fn compare_exchange(&self, i: usize, current: T, new: T) -> Result<Result<T, T>> {
        self.with_elem(i, |o| o.compare_exchange(current, new))
    }

    /// Adds `v` to element `i` (wrapping; a CAS loop for floats), returning the
    /// previous value.
    pub fn fetch_add(&self, i: usize, v: T) -> Result<T> {
        self.with_elem(i, |o| o.fetch_add(v))
    }

    /// Subtracts `v` from element `i`, returning the previous value.
    pub fn fetch_sub(&self, i: usize, v: T) -> Result<T> {
        self.with_elem(i, |o| o.fetch_sub(v))
    }
}

impl<T: AtomicInteger> Array<T> {
    /// Bitwise and of element `i` with `v`, returning the previous value.
    pub fn fetch_and(&self, i: usize, v: T) -> Result<T> {
        self.with_elem(i, |o| o.fetch_and(v))
    }

    /// Bitwise or of element `i` with `v`, returning the previous value.
    pub fn fetch_or(&self, i: usize, v: T) -> Result<T> {
        self.with_elem(i, |o| o.fetch_or(v))
    }
}

/// The array's lock, held: `Deref`/`DerefMut` give the elements themselves in
/// shared memory (zero-copy `&[T]` / `&mut [T]`). An owner-died lock hands it
/// over inside [`LockError::OwnerDied`].
pub struct ArrayGuard<'a, T: ShmType> {
    array: &'a Array<T>,
    held: Held<'a>,
}

impl<T: ShmType> crate::mutex::LockGuard for ArrayGuard<'_, T> {
    fn lock_name(&self) -> &str {
        self.array.segment().display_name()
    }
}

impl<T: ShmType> ArrayGuard<'_, T> {
    /// Declares the elements consistent after an owner-died lock, so the lock
    /// stays clear once this guard drops (else the next locker is told in turn). Does
    /// nothing on a guard from a normal lock.
    pub fn mark_consistent(&self) -> Result<()> {
        self.held
            .mark_consistent()
            .map_err(|e| e.named(self.array.cell.name()))
    }
}

impl<T: ShmType> std::ops::Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the payload holds `len` aligned `T`s in the mapping, which the
        // borrowed handle keeps alive; we hold the lock, and every operation on an
        // array with a lock takes it, so no cooperating participant writes it.
        unsafe {
            std::slice::from_raw_parts(self.array.cell.payload().cast::<T>(), self.array.len())
        }
    }
}

impl<T: ShmType> std::ops::DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only slice handed out
        // by this guard, and the lock makes the guard the only accessor.
        unsafe {
            std::slice::from_raw_parts_mut(self.array.cell.payload().cast::<T>(), self.array.len())
        }
    }
}

impl<T: ShmType + std::fmt::Debug> std::fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrayGuard")
            .field("len", &self.array.len())
            .finish()
    }
}
