//! A queue whose element size is known only at run time: what a foreign
//! binding (the C ABI's `shmprim_queue_*`) holds where a Rust program holds a
//! [`Queue<T>`](super::Queue). It is the same object as a `Queue<T>` whose `T`
//! has that size and alignment: the same kind, parameters and layout, with a
//! payload of raw bytes that any such `T` opens (and a raw open accepts any).
//! Its one-element operations take the same inlined fast path as `Queue<T>`'s.

use super::Core;
use crate::error::{Error, Result};
use crate::ring::mpmc::Fast;
use crate::segment::{
    Disposition, Kind, Options, Role, Segment, SegmentBuilder, TypeCode, TypeDesc,
};
use crate::sync::atomic::Ordering;
use crate::wait::Deadline;
use std::time::Duration;

/// A multi-producer multi-consumer queue of elements of `elem_size` bytes, a
/// size given at run time. One handle may be used by many threads.
pub struct RawQueue {
    core: Core,
}

impl std::fmt::Debug for RawQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

/// The payload description of elements of `size` bytes aligned to `align`.
fn elem_payload(size: usize, align: usize) -> Result<TypeDesc> {
    if !align.is_power_of_two() || align > 4096 {
        return Err(Error::invalid_argument(format!(
            "element alignment {align} is not a power of two up to 4096"
        )));
    }
    Ok(TypeDesc::new(
        TypeCode::Bytes,
        size as u64,
        align as u32,
        "",
    ))
}

impl RawQueue {
    /// The segment description of a queue of `capacity` elements of `size`
    /// bytes aligned to `align`.
    fn builder(capacity: usize, size: usize, align: usize) -> Result<SegmentBuilder> {
        Core::builder(
            Kind::Queue,
            capacity as u64,
            size as u64,
            elem_payload(size, align)?,
        )
    }

    /// Creates the named queue of `capacity` elements of `size` bytes aligned
    /// to `align` (a power of two up to 4096).
    pub fn create(
        name: &str,
        capacity: usize,
        size: usize,
        align: usize,
        opts: &Options,
    ) -> Result<RawQueue> {
        let init = Core::init(Kind::Queue, capacity as u64, size as u64);
        let seg = Self::builder(capacity, size, align)?
            .options(opts)
            .flags(super::create_flags(opts))
            .create_with(name, init)?;
        crate::segment::finish_create(seg, |seg| Self::attach(seg, Some(size), opts.role))
    }

    /// Opens the named queue, whatever its element type (see
    /// [`elem_size`](Self::elem_size)), with the handle [`Options`] (its
    /// [`Role`] among them).
    pub fn open(name: &str, opts: &Options) -> Result<RawQueue> {
        let seg = SegmentBuilder::new(Kind::Queue)
            .any_payload()
            .options(opts)
            .open(name)?;
        Self::attach(seg, None, opts.role)
    }

    /// Opens the named queue, which must have elements of `size` bytes aligned
    /// to `align`, or creates it with `capacity` of them; says which it did.
    pub fn open_or_create(
        name: &str,
        capacity: usize,
        size: usize,
        align: usize,
    ) -> Result<(RawQueue, Disposition)> {
        let init = Core::init(Kind::Queue, capacity as u64, size as u64);
        let (seg, how) = Self::builder(capacity, size, align)?.open_or_create_with(name, init)?;
        Ok((Self::attach(seg, Some(size), Role::Both)?, how))
    }

    /// Creates an anonymous queue, shared with children forked afterwards.
    pub fn anonymous(capacity: usize, size: usize, align: usize) -> Result<RawQueue> {
        let init = Core::init(Kind::Queue, capacity as u64, size as u64);
        let seg = Self::builder(capacity, size, align)?.anonymous_with(init)?;
        Self::attach(seg, Some(size), Role::Both)
    }

    fn attach(seg: Segment, size: Option<usize>, role: Role) -> Result<RawQueue> {
        // The slot size is the element size: checked against the header
        // when given, else taken from it.
        let core = Core::attach(seg, size.map(|s| s as u64), role)?;
        Ok(RawQueue { core })
    }

    /// Size in bytes of one element.
    pub fn elem_size(&self) -> usize {
        self.core.ring.slot_size()
    }

    fn check_elem(&self, len: usize) -> Result<()> {
        let size = self.elem_size();
        if len != size {
            return Err(Error::invalid_argument(format!(
                "element of {len} bytes for a queue of {size}-byte elements"
            )));
        }
        Ok(())
    }

    fn check_buf(&self, len: usize) -> Result<()> {
        let size = self.elem_size();
        if len < size {
            return Err(Error::BufferTooSmall {
                name: self.core.ring.name().clone(),
                needed: size,
                available: len,
            });
        }
        Ok(())
    }

    /// `Queue::put_deadline_raw` for bytes: the one-element fast path, then
    /// the general one.
    #[inline(always)]
    fn put_raw(&self, elem: &[u8], deadline: Deadline, try_once: bool) -> Result<()> {
        self.check_elem(elem.len())?;
        if !self.core.plain_put() {
            return self.put_counted(elem, deadline, try_once);
        }
        match self.core.on_own_lane_fast(
            #[inline(always)]
            |ring, a, by_stamp| ring.push_bytes_fast(a, elem, try_once, by_stamp),
        ) {
            Fast::Slow | Fast::Lost => {}
            fast => return self.core.ring.fast_result(fast),
        }
        self.put_slow(elem, deadline, try_once)
    }

    #[cold]
    fn put_counted(&self, elem: &[u8], deadline: Deadline, try_once: bool) -> Result<()> {
        self.core
            .counted_put(1, || self.put_slow(elem, deadline, try_once).map(|()| 1))
            .map(drop)
    }

    #[inline(never)]
    fn put_slow(&self, elem: &[u8], deadline: Deadline, try_once: bool) -> Result<()> {
        self.core
            .with_agent(|ring, a, live| ring.push_with(a, live, 1, |_| elem, deadline, try_once))
            .map(drop)
    }

    /// Puts `elem` (exactly [`elem_size`](Self::elem_size) bytes), waiting
    /// until `deadline` for room (`Timeout`).
    #[inline]
    pub fn put_deadline(&self, elem: &[u8], deadline: Deadline) -> Result<()> {
        self.put_raw(elem, deadline, false)
    }

    /// Puts `elem` if there is room now, else fails with `Full`.
    #[inline]
    pub fn try_put(&self, elem: &[u8]) -> Result<()> {
        self.put_raw(elem, Deadline::never(), true)
    }

    #[inline(always)]
    fn get_raw(&self, buf: &mut [u8], deadline: Deadline, try_once: bool) -> Result<()> {
        self.check_buf(buf.len())?;
        let buf = &mut buf[..self.elem_size()];
        match self.core.on_own_lane_fast(
            #[inline(always)]
            |ring, a, by_stamp| ring.pop_bytes_fast(a, buf, try_once, by_stamp),
        ) {
            Fast::Slow | Fast::Lost => {}
            Fast::Empty if self.core.empty_may_have_ended() => {}
            fast => return self.core.ring.fast_result(fast),
        }
        self.get_slow(buf, deadline, try_once)
    }

    #[inline(never)]
    fn get_slow(&self, buf: &mut [u8], deadline: Deadline, try_once: bool) -> Result<()> {
        self.core
            .with_agent(|ring, a, live| {
                ring.pop_with(a, live, 1, None, |_, b| b.copy_to(buf), deadline, try_once)
            })
            .map(drop)
    }

    /// Takes the oldest element into the start of `buf` (at least
    /// [`elem_size`](Self::elem_size) bytes, else `BufferTooSmall` and nothing
    /// is taken), waiting until `deadline` (`Timeout`); `Closed` once the queue
    /// is shut down or its stream has ended, and drained.
    #[inline]
    pub fn get_into_deadline(&self, buf: &mut [u8], deadline: Deadline) -> Result<()> {
        self.get_raw(buf, deadline, false)
    }

    /// Takes the oldest element into `buf` if there is one now, else fails
    /// with `Empty`.
    #[inline]
    pub fn try_get_into(&self, buf: &mut [u8]) -> Result<()> {
        self.get_raw(buf, Deadline::never(), true)
    }

    stream_methods!();

    /// The segment holding the queue.
    pub fn segment(&self) -> &Segment {
        &self.core.seg
    }
}
