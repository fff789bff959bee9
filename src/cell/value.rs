//! [`Value<T>`]: one `T` in shared memory (Python's `multiprocessing.Value`).

use std::marker::PhantomData;
use std::time::Duration;

use super::lock::Held;
use super::{
    AtomicInteger, AtomicValue, Create, Ops, RawCell, ShmType, atomic_at, copy_out, load_word,
    store_word, word_width,
};
use crate::error::Result;
use crate::mutex::{LockError, LockResult, LockStatus, lock_timed_out};
use crate::sync::atomic::Ordering;
use crate::wait::try_first;
use crate::{Deadline, Disposition, Kind, Options, Segment};

/// One `T` in a named (or anonymous) shared-memory segment: Python's
/// `multiprocessing.Value(typecode, v, lock=True)`.
///
/// - [`get`](Value::get) never blocks on the lock and never returns a torn value
///   (one atomic load for 1/2/4/8-byte types, a seqlock read otherwise).
/// - [`set`](Value::set) and [`update`](Value::update) are atomic with respect
///   to each other and to [`lock`](Value::lock) holders (they take the lock when
///   the cell has one).
/// - For integers and floats, [`load`](Value::load), [`store`](Value::store),
///   [`swap`](Value::swap), [`compare_exchange`](Value::compare_exchange) and
///   `fetch_*` are single lock-free atomic instructions (float `fetch_add`: a CAS
///   loop), sequentially consistent. They do not take the lock: a guard's write
///   back replaces whatever they did while it was held.
/// - [`lock`](Value::lock) returns a guard over a private copy of the value,
///   written back (atomically for readers) when the guard drops, if it was
///   changed. So readers never wait for a guard holder, and a holder that dies
///   never leaves a half-updated value behind.
///
/// ```
/// use shmprim::Value;
/// # let name = format!("doc-value-guard-{}", std::process::id());
/// let v = Value::<[u32; 4]>::create(&name, [0; 4])?;
/// v.set([1, 2, 3, 4])?;
/// {
///     let mut g = v.lock().unwrap(); // several steps at once, like `with v.get_lock():`
///     g[0] += g[3];
/// }
/// assert_eq!(v.get()?, [5, 2, 3, 4]);
/// Value::<[u32; 4]>::unlink(&name)?;
/// # Ok::<(), shmprim::Error>(())
/// ```
#[derive(Debug)]
pub struct Value<T: ShmType> {
    cell: RawCell,
    _t: PhantomData<T>,
}

// SAFETY: the handle owns a mapping and only touches it with atomics, under the
// seqlock, or under the process-shared lock; `T: Send + Sync` (ShmType).
unsafe impl<T: ShmType> Send for Value<T> {}
// SAFETY: as above.
unsafe impl<T: ShmType> Sync for Value<T> {}

impl<T: ShmType> Value<T> {
    fn build(
        how: Create<'_>,
        initial: T,
        lock: bool,
        opts: &Options,
    ) -> Result<(Self, Disposition)> {
        let (cell, d) = RawCell::create::<T>(how, Kind::Value, 1, lock, opts, |p| p[0] = initial)?;
        Ok((
            Value {
                cell,
                _t: PhantomData,
            },
            d,
        ))
    }

    /// Creates the named cell holding `initial`, with a lock; `AlreadyExists` if
    /// the name is taken.
    pub fn create(name: &str, initial: T) -> Result<Self> {
        Self::create_with_options(name, initial, true, &Options::default())
    }

    /// Creates the named cell without a lock (Python's `lock=False` /
    /// `RawValue`): [`lock`](Value::lock) then fails; everything else works.
    pub fn create_unlocked(name: &str, initial: T) -> Result<Self> {
        Self::create_with_options(name, initial, false, &Options::default())
    }

    /// Creates the named cell, with or without a lock, with handle options.
    pub fn create_with_options(name: &str, initial: T, lock: bool, opts: &Options) -> Result<Self> {
        Self::build(Create::Named(name), initial, lock, opts).map(|(v, _)| v)
    }

    /// Opens the named cell; `Incompatible` unless it holds a `T`.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with_options(name, &Options::default())
    }

    /// [`open`](Value::open) with handle options (unlink on drop, ready timeout).
    pub fn open_with_options(name: &str, opts: &Options) -> Result<Self> {
        let cell = RawCell::open::<T>(name, Kind::Value, Some(1), opts)?;
        Ok(Value {
            cell,
            _t: PhantomData,
        })
    }

    /// Opens the named cell, or creates it (with a lock) holding `initial`.
    pub fn open_or_create(name: &str, initial: T) -> Result<(Self, Disposition)> {
        Self::build(
            Create::OpenOrCreateNamed(name),
            initial,
            true,
            &Options::default(),
        )
    }

    /// An anonymous cell (`memfd`), shared with children forked afterwards.
    pub fn anonymous(initial: T, lock: bool) -> Result<Self> {
        Self::build(Create::Anonymous, initial, lock, &Options::default()).map(|(v, _)| v)
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::Value)
    }

    /// The segment holding the cell.
    pub fn segment(&self) -> &Segment {
        self.cell.segment()
    }

    /// Whether the cell was created with a lock.
    pub fn has_lock(&self) -> bool {
        self.cell.has_lock()
    }

    /// A consistent copy of the value. Never blocks on the lock; retries while a
    /// writer is storing. Fails with `Corrupted` only if a writer died in the
    /// middle of storing (the next `set` repairs the cell).
    #[inline]
    pub fn get(&self) -> Result<T> {
        let p = self.cell.payload();
        if word_width::<T>().is_some() {
            // SAFETY: the payload is 64-aligned, holds one `T` of 1/2/4/8 bytes,
            // and is only accessed atomically.
            return Ok(unsafe { load_word::<T>(p, Ordering::SeqCst) });
        }
        let mut out = T::zeroed();
        self.cell.read_elems(p, std::slice::from_mut(&mut out))?;
        Ok(out)
    }

    /// Replaces the value. Takes the lock if the cell has one (so it waits for a
    /// guard holder, and fails with `InvalidArgument` if this thread is one).
    pub fn set(&self, v: T) -> Result<()> {
        let _held = self.cell.lock_for_op()?;
        self.store_unlocked(v)
    }

    fn store_unlocked(&self, v: T) -> Result<()> {
        let p = self.cell.payload();
        if word_width::<T>().is_some() {
            // SAFETY: as in `get`.
            unsafe { store_word::<T>(p, v, Ordering::SeqCst) };
            return Ok(());
        }
        self.cell.write_elems(p, &[v], true)
    }

    /// Replaces the value with `f(value)` atomically with respect to other
    /// writers and lock holders, and returns the previous value. Takes the lock
    /// if the cell has one. `f` may be called more than once for 1/2/4/8-byte
    /// types (a CAS loop that also races the lock-free operations), so it should
    /// be a pure function of its argument.
    pub fn update(&self, mut f: impl FnMut(T) -> T) -> Result<T> {
        let _held = self.cell.lock_for_op()?;
        let p = self.cell.payload();
        if word_width::<T>().is_some() {
            return Ok(update_word(p, f));
        }
        let side = self
            .cell
            .state()
            .claim(self.cell.me(), |w| self.cell.writer_alive(w))
            .map_err(|e| self.cell.read_error(e))?;
        if side.torn() {
            side.abandon();
            return Err(self.cell.torn_error());
        }
        let mut old = T::zeroed();
        // SAFETY: the payload holds one `T`; we own the write side, so no other
        // writer stores it meanwhile (atomic loads anyway).
        unsafe { copy_out(p, bytemuck::bytes_of_mut(&mut old)) };
        let new = f(old);
        // SAFETY: as above; atomic stores only.
        side.publish(|| unsafe { super::copy_in(p, bytemuck::bytes_of(&new)) });
        Ok(old)
    }

    /// Locks the cell for a compound update (Python's `get_lock()`), waiting as
    /// long as it takes, like [`Mutex::lock`](crate::Mutex::lock):
    /// `Err(LockError::OwnerDied(guard))` if the previous holder died holding
    /// it (the value itself is intact: see [`ValueGuard`]);
    /// `Err(LockError::Failed(e))` with `InvalidArgument` if the cell has no
    /// lock or this thread already holds it, `Unrecoverable` if the lock's bytes
    /// were forged.
    pub fn lock(&self) -> LockResult<ValueGuard<'_, T>> {
        self.lock_until(Deadline::never())
    }

    /// Locks if nobody holds the lock; `Failed(Error::Timeout)` if somebody does.
    pub fn try_lock(&self) -> LockResult<ValueGuard<'_, T>> {
        self.lock_until(Deadline::now())
    }

    /// [`lock`](Value::lock), giving up with `Failed(Timeout)` after `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<ValueGuard<'_, T>> {
        try_first(timeout, |d| self.lock_until(d), lock_timed_out)
    }

    /// [`lock`](Value::lock), giving up with `Failed(Timeout)` at `deadline`.
    pub fn lock_until(&self, deadline: Deadline) -> LockResult<ValueGuard<'_, T>> {
        let held = self.cell.lock_for_guard(deadline)?;
        // A torn value (a set died mid-write, so the lock also reports
        // OwnerDied) is handed over as it is, not as an error: the guard holder
        // is the one who repairs it by writing.
        let copy = self.get().unwrap_or_else(|_| {
            let mut raw = T::zeroed();
            // SAFETY: the payload holds one `T`; atomic loads only.
            unsafe { copy_out(self.cell.payload(), bytemuck::bytes_of_mut(&mut raw)) };
            raw
        });
        let status = held.status();
        let guard = ValueGuard {
            value: self,
            copy,
            dirty: false,
            held,
        };
        match status {
            LockStatus::Acquired => Ok(guard),
            LockStatus::OwnerDied => Err(LockError::OwnerDied(guard)),
        }
    }
}

impl<T: AtomicValue> Value<T> {
    fn ops(&self) -> Ops<'_, T> {
        // SAFETY: the payload is 64-aligned, holds one `T` of T::Bits' width, and
        // lives as long as `self`; it is only accessed atomically.
        Ops(unsafe { atomic_at::<T>(self.cell.payload()) })
    }

    /// The value (one atomic load; never blocks).
    pub fn load(&self) -> T {
        self.ops().load()
    }

    /// Stores `v` (one atomic store; does not take the lock).
    pub fn store(&self, v: T) {
        self.ops().store(v)
    }

    /// Stores `v` and returns the previous value.
    pub fn swap(&self, v: T) -> T {
        self.ops().swap(v)
    }

    /// Stores `new` if the value is `current` (compared bit for bit): `Ok(previous)`
    /// on success, `Err(actual)` otherwise.
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        self.ops().compare_exchange(current, new)
    }

    /// Adds `v` (wrapping for integers; a CAS loop for floats) and returns the
    /// previous value.
    pub fn fetch_add(&self, v: T) -> T {
        self.ops().fetch_add(v)
    }

    /// Subtracts `v` (wrapping for integers) and returns the previous value.
    pub fn fetch_sub(&self, v: T) -> T {
        self.ops().fetch_sub(v)
    }
}

impl<T: AtomicInteger> Value<T> {
    /// Bitwise and with `v`; returns the previous value.
    pub fn fetch_and(&self, v: T) -> T {
        self.ops().fetch_and(v)
    }

    /// Bitwise or with `v`; returns the previous value.
    pub fn fetch_or(&self, v: T) -> T {
        self.ops().fetch_or(v)
    }
}

/// CAS loop on a 1/2/4/8-byte `T` at `p`: stores `f(old)`, returns `old`.
pub(super) fn update_word<T: bytemuck::Pod>(p: *mut u8, mut f: impl FnMut(T) -> T) -> T {
    macro_rules! cas_loop {
        ($bits:ty) => {{
            // SAFETY: callers pass an element of the payload aligned to its size,
            // accessed only atomically.
            let a = unsafe { &*p.cast::<<$bits as super::Word>::Atomic>() };
            let mut old: $bits = <$bits as super::Word>::load(a, Ordering::SeqCst);
            loop {
                let new: $bits = bytemuck::cast(f(bytemuck::cast(old)));
                match <$bits as super::Word>::compare_exchange(a, old, new) {
                    Ok(prev) => break bytemuck::cast(prev),
                    Err(seen) => old = seen,
                }
            }
        }};
    }
    match std::mem::size_of::<T>() {
        1 => cas_loop!(u8),
        2 => cas_loop!(u16),
        4 => cas_loop!(u32),
        8 => cas_loop!(u64),
        _ => unreachable!("word_width checked by the caller"),
    }
}

/// The cell's lock, held, with a private copy of the value: `Deref`/`DerefMut`
/// reach the copy, and a changed copy is written back when the guard drops
/// (before unlocking). An owner-died lock hands it over inside
/// [`LockError::OwnerDied`].
pub struct ValueGuard<'a, T: ShmType> {
    value: &'a Value<T>,
    copy: T,
    dirty: bool,
    held: Held<'a>,
}

impl<T: ShmType> crate::mutex::LockGuard for ValueGuard<'_, T> {
    fn lock_name(&self) -> &str {
        self.value.segment().display_name()
    }
}

impl<T: ShmType> ValueGuard<'_, T> {
    /// Declares the state consistent after an owner-died lock, so the lock stays
    /// usable once this guard drops (else the next locker is told in turn). Does nothing
    /// on a guard from a normal lock. Readers never see the value half updated
    /// (guards write back through the seqlock), but an update spanning several
    /// cells may be.
    pub fn mark_consistent(&self) -> Result<()> {
        self.held
            .mark_consistent()
            .map_err(|e| e.named(self.value.cell.name()))
    }
}

impl<T: ShmType> std::ops::Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.copy
    }
}

impl<T: ShmType> std::ops::DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.dirty = true;
        &mut self.copy
    }
}

impl<T: ShmType> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        if self.dirty {
            // Cannot fail: the value is written whole, which also repairs a torn
            // one. `held` unlocks after this body.
            let _ = self.value.store_unlocked(self.copy);
        }
    }
}

impl<T: ShmType + std::fmt::Debug> std::fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueGuard")
            .field("value", &self.copy)
            .finish()
    }
}
