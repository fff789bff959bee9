//! A lock guarding a byte payload whose size and alignment are known only at
//! run time: the form a foreign binding (the C ABI, a Python package) holds,
//! where a Rust program holds a [`Mutex<T>`](crate::Mutex).
//!
//! The segment is the same as a `Mutex<T>`'s or a
//! [`ReentrantMutex<T>`](crate::ReentrantMutex)'s: the lock state at offset 0 of
//! the data area, then the payload at the first offset past it aligned for
//! the payload. A `ByteLock` creates it with a [`TypeCode::Bytes`] payload
//! (which a `Mutex<T>` of that size and alignment opens), and opens any
//! payload, learning its size from the segment header.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;

use super::{LockStatus, MutexOptions, RawMutex, check_lock_segment_for, lock_builder_for};
use crate::error::{Error, Result};
use crate::reentrant_mutex::RawReentrantMutex;
use crate::segment::{
    Disposition, HEADER_SIZE, Kind, Options, Segment, SegmentBuilder, TypeCode, TypeDesc,
};
use crate::wait::Deadline;

/// A raw lock that can head a lock segment: [`RawMutex`] or
/// [`RawReentrantMutex`]. Sealed.
pub trait SegmentLock: sealed::Sealed + Sized {
    /// The segment kind of a lock segment headed by this lock.
    const KIND: Kind;
    /// Bytes of the lock state.
    const SIZE: usize;

    /// Initialises the lock state at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of [`SIZE`](Self::SIZE) bytes, aligned
    /// for the lock, and seen by no other thread or process yet.
    unsafe fn init_at(ptr: *mut u8, opts: &MutexOptions) -> Result<()>;

    /// Whether a thread of this process holds the lock.
    fn held_here(&self) -> bool;

    /// Locks, waiting until `deadline` (one level deeper for a reentrant
    /// lock its thread holds).
    fn lock_until(&self, deadline: Deadline) -> Result<LockStatus>;

    /// Releases one level of the calling thread's lock; `NotOwner` if it
    /// holds none.
    ///
    /// # Safety
    /// No reference into the guarded payload may outlive the release (a
    /// guard of the typed handle must not be alive on this thread).
    unsafe fn release(&self) -> Result<()>;

    /// Declares the payload consistent after `OwnerDied`.
    fn mark_consistent(&self) -> Result<()>;

    /// Whether some thread of some process holds the lock now (a snapshot).
    fn is_locked(&self) -> bool;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::RawMutex {}
    impl Sealed for super::RawReentrantMutex {}
}

impl SegmentLock for RawMutex {
    const KIND: Kind = Kind::Mutex;
    const SIZE: usize = RawMutex::SIZE;

    unsafe fn init_at(ptr: *mut u8, opts: &MutexOptions) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { RawMutex::init(ptr.cast(), opts) }
    }

    fn held_here(&self) -> bool {
        self.held_by_current_process()
    }

    fn lock_until(&self, deadline: Deadline) -> Result<LockStatus> {
        self.lock(deadline)
    }

    unsafe fn release(&self) -> Result<()> {
        // SAFETY: forwarded contract: no reference into the payload survives.
        unsafe { self.unlock_checked() }
    }

    fn mark_consistent(&self) -> Result<()> {
        RawMutex::mark_consistent(self)
    }

    fn is_locked(&self) -> bool {
        RawMutex::is_locked(self)
    }
}

impl SegmentLock for RawReentrantMutex {
    const KIND: Kind = Kind::ReentrantMutex;
    const SIZE: usize = RawReentrantMutex::SIZE;

    unsafe fn init_at(ptr: *mut u8, opts: &MutexOptions) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { RawReentrantMutex::init(ptr.cast(), opts) }
    }

    fn held_here(&self) -> bool {
        self.held_by_current_process()
    }

    fn lock_until(&self, deadline: Deadline) -> Result<LockStatus> {
        self.lock(deadline)
    }

    unsafe fn release(&self) -> Result<()> {
        self.unlock()
    }

    fn mark_consistent(&self) -> Result<()> {
        RawReentrantMutex::mark_consistent(self)
    }

    fn is_locked(&self) -> bool {
        RawReentrantMutex::is_locked(self)
    }
}

/// A named (or anonymous) lock `L` guarding a byte payload of a size and
/// alignment given at run time. One handle may be used by many threads.
///
/// Locking goes through [`raw`](Self::raw); the payload is reached through
/// [`data_ptr`](Self::data_ptr), which only the lock's holder may read or
/// write.
pub struct ByteLock<L: SegmentLock> {
    seg: ManuallyDrop<Segment>,
    offset: usize,
    size: usize,
    _lock: PhantomData<L>,
}

// SAFETY: the handle is a mapping plus offsets; the lock state is a
// process-shared pthread mutex, usable from any thread, and the payload is
// only reached through raw pointers whose use the lock's holder answers for.
unsafe impl<L: SegmentLock> Send for ByteLock<L> {}
// SAFETY: as for `Send`: `&ByteLock` gives only the lock (itself `Sync`) and
// raw pointers.
unsafe impl<L: SegmentLock> Sync for ByteLock<L> {}

fn payload(size: usize, align: usize) -> Result<TypeDesc> {
    let align = u32::try_from(align)
        .map_err(|_| Error::invalid_argument(format!("data_align {align} is too large")))?;
    Ok(TypeDesc::new(TypeCode::Bytes, size as u64, align, ""))
}

impl<L: SegmentLock> ByteLock<L> {
    /// Creates the named lock (`name` `None`: anonymous) guarding `size`
    /// zeroed bytes aligned to `align` (a power of two up to a page).
    pub fn create(
        name: Option<&str>,
        size: usize,
        align: usize,
        mopts: &MutexOptions,
        opts: &Options,
    ) -> Result<Self> {
        let b = lock_builder_for(L::KIND, L::SIZE, payload(size, align)?, mopts, opts)?;
        // SAFETY: the data area is fresh, page aligned, at least `L::SIZE`
        // bytes (the builder's layout) and unseen until published.
        let init = |data: std::ptr::NonNull<u8>, _| unsafe { L::init_at(data.as_ptr(), mopts) };
        match name {
            Some(name) => crate::segment::finish_create(b.create_with(name, init)?, Self::checked),
            None => Self::checked(b.anonymous_with(init)?),
        }
    }

    /// Opens the named lock whatever its payload.
    pub fn open(name: &str) -> Result<Self> {
        Self::checked(SegmentBuilder::new(L::KIND).any_payload().open(name)?)
    }

    /// Opens the named lock or creates it with a zeroed payload of `size`
    /// bytes aligned to `align`; an existing one must have a payload of that
    /// size and alignment.
    pub fn open_or_create(name: &str, size: usize, align: usize) -> Result<(Self, Disposition)> {
        let mopts = MutexOptions::default();
        let b = lock_builder_for(
            L::KIND,
            L::SIZE,
            payload(size, align)?,
            &mopts,
            &Options::default(),
        )?;
        // SAFETY: as in `create`.
        let (seg, how) =
            b.open_or_create_with(name, |data, _| unsafe { L::init_at(data.as_ptr(), &mopts) })?;
        Ok((Self::checked(seg)?, how))
    }

    /// Validates the layout against the payload the header describes.
    fn checked(seg: Segment) -> Result<Self> {
        let p = seg.info().payload;
        let align = p.align as usize;
        if !align.is_power_of_two() || align > HEADER_SIZE || p.size > seg.len() as u64 {
            return Err(Error::corrupted(
                seg.display_name(),
                format!("lock payload of {} bytes aligned to {}", p.size, p.align),
            ));
        }
        let offset = check_lock_segment_for(&seg, L::SIZE, p.size, align)?;
        Ok(ByteLock {
            seg: ManuallyDrop::new(seg),
            offset,
            size: p.size as usize,
            _lock: PhantomData,
        })
    }

    /// The lock.
    pub fn raw(&self) -> &L {
        // SAFETY: the data area starts with an initialised `L` (written by
        // `init_at`, layout checked on open), aligned (page-aligned data
        // area) and mapped while `self` lives.
        unsafe { &*self.seg.as_ptr().cast::<L>() }
    }

    /// Locks, waiting until `deadline` (one level deeper for a reentrant
    /// lock its thread holds); errors name the segment.
    pub fn lock_until(&self, deadline: Deadline) -> Result<LockStatus> {
        self.raw().lock_until(deadline).map_err(|e| self.named(e))
    }

    /// Releases one level of the calling thread's lock; `NotOwner`, naming
    /// the segment, if it holds none.
    ///
    /// # Safety
    /// As [`SegmentLock::release`]: no reference into the payload may outlive
    /// the release.
    pub unsafe fn unlock(&self) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { self.raw().release() }.map_err(|e| self.named(e))
    }

    /// The payload's address; only the lock's holder may use it.
    pub fn data_ptr(&self) -> *mut u8 {
        self.seg.as_ptr().wrapping_add(self.offset)
    }

    /// The payload's size in bytes.
    pub fn data_size(&self) -> usize {
        self.size
    }

    /// The segment holding the lock.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// `err` with this segment's name filled in where the raw lock, which
    /// does not know it, left it empty.
    pub fn named(&self, err: Error) -> Error {
        err.named(self.seg.object_name())
    }
}

impl<L: SegmentLock> Drop for ByteLock<L> {
    fn drop(&mut self) {
        if self.raw().held_here() {
            // Closed while a thread of this process holds the lock: the C
            // library's robust list points into the mapping, so keep it mapped
            // (as `Mutex` does for a leaked guard).
            return;
        }
        // SAFETY: dropped exactly once, here.
        unsafe { ManuallyDrop::drop(&mut self.seg) };
    }
}
