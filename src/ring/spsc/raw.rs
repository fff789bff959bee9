//! Element rings whose element size is known only at run time: what the C
//! ABI's `shmprim_spsc_*` functions use. A raw ring is the same object as an
//! [`SpscRing<T>`](super::SpscRing) whose `T` has that size and alignment: the same kind, the
//! same geometry parameters and layout, and a payload type of raw bytes, which
//! any `T` of that size and alignment may open (and a raw open accepts any).
//!
//! Elements are copied as bytes, `unit` of them per slot; every slot position
//! is masked with the validated capacity, as in the typed ring.

use std::sync::Arc;

use super::{
    ConsumerCore, FORMAT_ELEMENTS, FULL, PeerWatch, ProducerCore, RingHeader, Shared, TryError,
    element_capacity, pop_blocking, push_blocking, stored_geometry,
};
use crate::error::{Error, Result};
use crate::ring::{check_elem_shape, copy_bytes};
use crate::segment::{Disposition, Kind, Options, Segment, SegmentBuilder, TypeCode, TypeDesc};
use crate::wait::Deadline;

/// Checks a run-time element type and a requested capacity: the ring's
/// capacity (rounded up to a power of two) and its element size.
fn geometry(capacity: usize, size: usize, align: usize) -> Result<(u32, u32)> {
    check_elem_shape(size, align)?;
    Ok((element_capacity(capacity)?, size as u32))
}

/// The segment description of a ring of `cap` elements of `unit` bytes
/// aligned to `align`.
fn builder(cap: u32, unit: u32, align: usize) -> Result<SegmentBuilder> {
    let size = (cap as usize)
        .checked_mul(unit as usize)
        .and_then(|n| n.checked_add(RingHeader::DATA_OFFSET))
        .ok_or_else(|| Error::invalid_argument("ring is too large"))?;
    Ok(SegmentBuilder::new(Kind::SpscRing)
        .data_size(size as u64)
        .param(0, u64::from(cap))
        .param(1, u64::from(unit))
        .payload(TypeDesc::new(
            TypeCode::Bytes,
            u64::from(unit),
            align as u32,
            "",
        )))
}

/// Initialises a fresh ring in a segment's data area (`DATA_OFFSET + cap *
/// unit` bytes, which `builder` asked for).
fn init(cap: u32, unit: u32) -> impl FnOnce(std::ptr::NonNull<u8>, usize) -> Result<()> {
    move |ptr, len| {
        let slots = cap as usize * unit as usize;
        debug_assert!(len >= RingHeader::DATA_OFFSET + slots);
        // SAFETY: the data area is page aligned (so aligned to 128), holds the
        // header and `cap * unit` bytes of slots, and nobody else sees the
        // segment before it is published as ready.
        unsafe {
            RingHeader::write_header(ptr.as_ptr(), FORMAT_ELEMENTS, cap, unit);
            std::ptr::write_bytes(ptr.as_ptr().add(RingHeader::DATA_OFFSET), 0, slots);
        }
        Ok(())
    }
}

/// An SPSC ring of elements of a size known at run time, in a named or
/// anonymous segment.
pub struct RawSpscRing {
    shared: Arc<Shared>,
}

impl RawSpscRing {
    /// Creates the named ring of `capacity` elements (rounded up to a power of
    /// two) of `size` bytes aligned to `align`.
    pub fn create(
        name: &str,
        capacity: usize,
        size: usize,
        align: usize,
        opts: &Options,
    ) -> Result<RawSpscRing> {
        let (cap, unit) = geometry(capacity, size, align)?;
        let seg = builder(cap, unit, align)?
            .options(opts)
            .create_with(name, init(cap, unit))?;
        crate::segment::finish_create(seg, Self::from_segment)
    }

    /// Opens the named element ring, whatever its element type.
    pub fn open(name: &str) -> Result<RawSpscRing> {
        Self::from_segment(
            SegmentBuilder::new(Kind::SpscRing)
                .any_payload()
                .open(name)?,
        )
    }

    /// Opens the named ring (which must have elements of `size` bytes aligned
    /// to `align`, and `capacity` rounded up as at creation), or creates it.
    pub fn open_or_create(
        name: &str,
        capacity: usize,
        size: usize,
        align: usize,
    ) -> Result<(RawSpscRing, Disposition)> {
        let (cap, unit) = geometry(capacity, size, align)?;
        let (seg, how) = builder(cap, unit, align)?.open_or_create_with(name, init(cap, unit))?;
        seg.expect_param(0, u64::from(cap), "capacity")?;
        seg.expect_param(1, u64::from(unit), "element size")?;
        Ok((Self::from_segment(seg)?, how))
    }

    /// An anonymous ring (`memfd`), shared with children forked afterwards.
    pub fn anonymous(capacity: usize, size: usize, align: usize) -> Result<RawSpscRing> {
        let (cap, unit) = geometry(capacity, size, align)?;
        Self::from_segment(builder(cap, unit, align)?.anonymous_with(init(cap, unit))?)
    }

    fn from_segment(seg: Segment) -> Result<RawSpscRing> {
        let (cap, unit) = stored_geometry(&seg, "ring")?;
        if unit == 0 {
            return Err(Error::corrupted(seg.display_name(), "ring element size 0"));
        }
        Ok(RawSpscRing {
            shared: Shared::open_segment(seg, FORMAT_ELEMENTS, cap, unit)?,
        })
    }

    /// Bytes of one element.
    pub fn elem_size(&self) -> usize {
        self.shared.ring.unit as usize
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.ring.cap as usize
    }

    /// Claims the producer end (`InvalidArgument` while a live participant
    /// holds it).
    pub fn producer(&self) -> Result<RawProducer> {
        let (core, me) = self.shared.take_end(true, ProducerCore::new)?;
        Ok(RawProducer {
            shared: self.shared.clone(),
            core,
            me,
            watch: PeerWatch::new(),
        })
    }

    /// Claims the consumer end (`InvalidArgument` while a live participant
    /// holds it).
    pub fn consumer(&self) -> Result<RawConsumer> {
        let (core, me) = self.shared.take_end(false, ConsumerCore::new)?;
        Ok(RawConsumer {
            shared: self.shared.clone(),
            core,
            me,
            watch: PeerWatch::new(),
        })
    }
}

/// The producer end of a [`RawSpscRing`]. Dropping it closes the end.
pub struct RawProducer {
    shared: Arc<Shared>,
    core: ProducerCore,
    me: u64,
    watch: PeerWatch,
}

impl RawProducer {
    /// The [`Error`] a [`TryError`] answer of this end stands for, naming the
    /// ring (with `?` a `TryError` becomes an `Error` that names nothing).
    #[cold]
    pub fn error(&mut self, e: TryError) -> Error {
        match e {
            TryError::Corrupted => self.corruption(),
            e => Error::from(e).named(self.core.name()),
        }
    }

    /// Bytes of one element.
    pub fn elem_size(&self) -> usize {
        self.core.ring.unit as usize
    }

    /// Pushes up to `count` elements from `src` (exactly `count` elements
    /// long) as fit, in order, publishing once; returns how many (0 when
    /// full). `Closed` if the consumer end was closed (seen when the ring
    /// looks full). Builds no [`Error`]: see [`corruption`](Self::corruption).
    #[inline(always)]
    pub fn try_push_many(&mut self, src: &[u8], count: usize) -> Result<usize, TryError> {
        let n = push_elements(&mut self.core, src, count)?;
        if n > 0 {
            self.core.wake_hint();
        } else if count > 0 && self.shared.consumer_gone(&mut self.watch) {
            return Err(TryError::Closed);
        }
        Ok(n)
    }

    /// Pushes the element `elem` (exactly one element long) if there is room:
    /// `Full` if not; otherwise as [`try_push_many`](Self::try_push_many).
    #[inline(always)]
    pub fn try_push(&mut self, elem: &[u8]) -> Result<(), TryError> {
        if !push_one(&mut self.core, elem)? {
            return Err(if self.shared.consumer_gone(&mut self.watch) {
                TryError::Closed
            } else {
                TryError::Full
            });
        }
        self.core.wake_hint();
        Ok(())
    }

    /// Pushes the element `elem` (exactly one element long), waiting until
    /// `deadline` for room; `Closed` if the consumer end is closed or its
    /// process died. Wakes a sleeping consumer without fail.
    pub fn push(&mut self, elem: &[u8], deadline: Deadline) -> Result<()> {
        push_blocking(
            &mut self.core,
            &self.shared,
            deadline,
            |c| match push_one(c, elem)? {
                false => Err(FULL),
                true => Ok(()),
            },
        )
    }

    /// What a `TryError::Corrupted` answer was about (re-reads the head).
    #[cold]
    pub fn corruption(&mut self) -> Error {
        match self.core.len() {
            Err(e) => e,
            Ok(_) => TryError::Corrupted.into(),
        }
    }
}

/// Copies as many of the `count` elements of `src` (`count` elements long)
/// into the ring as fit and publishes them; returns how many (0 when full).
#[inline(always)]
fn push_elements(c: &mut ProducerCore, src: &[u8], count: usize) -> Result<usize, TryError> {
    let unit = c.ring.unit as usize;
    // A hard check: the copy below relies on it (one compare per call).
    assert!(
        count.checked_mul(unit).is_some_and(|n| src.len() >= n),
        "source shorter than its count"
    );
    let tail = c.tail;
    let want = count.min(c.ring.cap as usize) as u32;
    if want == 0 {
        return Ok(0);
    }
    let n = c
        .reserve(tail, want)
        .map_err(TryError::from_error)?
        .min(want) as usize;
    if n == 0 {
        return Ok(0);
    }
    let start = (tail & c.ring.mask) as usize;
    let first = n.min(c.ring.cap as usize - start);
    // Both runs of slots lie in the `cap * unit` validated bytes after `data`
    // (`start + first <= cap`, `n - first <= start`); the `n <= free` slots
    // after the tail are free: the consumer reads none until we publish.
    // SAFETY: in bounds and ours, as just said; `src` holds `n * unit` bytes.
    unsafe {
        let data = c.ring.data;
        copy_bytes(src.as_ptr(), data.add(start * unit), first * unit);
        copy_bytes(src.as_ptr().add(first * unit), data, (n - first) * unit);
    }
    c.publish(tail.wrapping_add(n as u32));
    Ok(n)
}

/// Copies the one element at the start of `src` into the ring and publishes
/// it; `false` when the ring is full. [`push_elements`] for one element,
/// without the arithmetic of a run that may wrap.
#[inline(always)]
fn push_one(c: &mut ProducerCore, src: &[u8]) -> Result<bool, TryError> {
    let unit = c.ring.unit as usize;
    // A hard check: the copy below relies on it.
    assert!(src.len() >= unit, "source shorter than an element");
    let tail = c.tail;
    if c.reserve(tail, 1).map_err(TryError::from_error)? == 0 {
        return Ok(false);
    }
    let i = (tail & c.ring.mask) as usize;
    // SAFETY: slot `i < cap` lies in the `cap * unit` validated bytes after
    // `data`, and it is free (`reserve`): the consumer reads it only once we
    // publish. `src` holds `unit` bytes (checked above).
    unsafe { copy_bytes(src.as_ptr(), c.ring.data.add(i * unit), unit) };
    c.publish(tail.wrapping_add(1));
    Ok(true)
}

impl Drop for RawProducer {
    fn drop(&mut self) {
        self.core.close();
        self.shared.release(true, self.me);
    }
}

/// The consumer end of a [`RawSpscRing`]. Dropping it closes the end.
pub struct RawConsumer {
    shared: Arc<Shared>,
    core: ConsumerCore,
    me: u64,
    watch: PeerWatch,
}

impl RawConsumer {
    /// The [`Error`] a [`TryError`] answer of this end stands for, naming the
    /// ring (with `?` a `TryError` becomes an `Error` that names nothing).
    #[cold]
    pub fn error(&mut self, e: TryError) -> Error {
        match e {
            TryError::Corrupted => self.corruption(),
            e => Error::from(e).named(self.core.name()),
        }
    }

    /// Bytes of one element.
    pub fn elem_size(&self) -> usize {
        self.core.ring.unit as usize
    }

    /// Pops up to `count >= 1` elements into `dst` (at least `count`
    /// elements long), publishing once; returns how many: `Empty` when there
    /// are none, `Closed` when there are none and the producer end was
    /// closed. Builds no [`Error`]: see [`corruption`](Self::corruption).
    #[inline(always)]
    pub fn try_pop_many(&mut self, dst: &mut [u8], count: usize) -> Result<usize, TryError> {
        let n = pop_elements(&mut self.core, dst, count).map_err(|e| self.pop_failed(e))?;
        self.core.wake_hint();
        Ok(n)
    }

    /// A failed pop: `Empty` becomes `Closed` once the producer is gone
    /// (closed, or its process died; see [`PeerWatch`]) and nothing is left;
    /// if it published more just before it went, the answer stays `Empty`
    /// and the next call takes it.
    #[cold]
    #[inline(never)]
    fn pop_failed(&mut self, e: TryError) -> TryError {
        match e {
            TryError::Empty if self.shared.producer_gone(&mut self.watch) => {
                match self.core.available_quiet(self.core.head, 1) {
                    Ok(_) => TryError::Empty,
                    Err(TryError::Empty | TryError::Closed) => TryError::Closed,
                    Err(e) => e,
                }
            }
            e => e,
        }
    }

    /// Pops one element into `dst` (at least one element long) if there is
    /// one; otherwise as [`try_pop_many`](Self::try_pop_many).
    #[inline(always)]
    pub fn try_pop(&mut self, dst: &mut [u8]) -> Result<(), TryError> {
        pop_one(&mut self.core, dst).map_err(|e| self.pop_failed(e))?;
        self.core.wake_hint();
        Ok(())
    }

    /// Pops one element into `dst` (at least one element long), waiting
    /// until `deadline`; `Closed` once drained if the producer end is closed
    /// or its process died. Wakes a sleeping producer without fail.
    pub fn pop(&mut self, dst: &mut [u8], deadline: Deadline) -> Result<()> {
        pop_blocking(&mut self.core, &self.shared, deadline, |c| {
            pop_one(c, dst).map_err(|e| match e {
                TryError::Corrupted => c.tail_corruption(),
                e => e.into(),
            })
        })
    }

    /// What a `TryError::Corrupted` answer was about (re-reads the tail).
    #[cold]
    pub fn corruption(&mut self) -> Error {
        match self.core.len() {
            Err(e) => e,
            Ok(_) => TryError::Corrupted.into(),
        }
    }
}

/// Copies up to `count >= 1` queued elements out of the ring into `dst`
/// (which holds `count`) and publishes the head; returns how many: `Empty`
/// (or `Closed`) when there are none.
#[inline(always)]
fn pop_elements(c: &mut ConsumerCore, dst: &mut [u8], count: usize) -> Result<usize, TryError> {
    let unit = c.ring.unit as usize;
    // A hard check: the copy below relies on it (one compare per call).
    assert!(
        count >= 1 && count.checked_mul(unit).is_some_and(|n| dst.len() >= n),
        "buffer shorter than its count"
    );
    let want = count.min(c.ring.cap as usize) as u32;
    let head = c.head;
    let n = c.available_quiet(head, want)?.min(want) as usize;
    let start = (head & c.ring.mask) as usize;
    let first = n.min(c.ring.cap as usize - start);
    // SAFETY: in bounds as in `push_elements`; the `n <= avail` slots after
    // the head are published, and `dst` holds `n * unit` bytes at least.
    unsafe {
        let data = c.ring.data;
        copy_bytes(data.add(start * unit), dst.as_mut_ptr(), first * unit);
        copy_bytes(data, dst.as_mut_ptr().add(first * unit), (n - first) * unit);
    }
    c.publish(head.wrapping_add(n as u32));
    Ok(n)
}

/// Copies the oldest element into the start of `dst` and frees its slot:
/// [`pop_elements`] for one element.
#[inline(always)]
fn pop_one(c: &mut ConsumerCore, dst: &mut [u8]) -> Result<(), TryError> {
    let unit = c.ring.unit as usize;
    // A hard check: the copy below relies on it.
    assert!(dst.len() >= unit, "buffer shorter than an element");
    let head = c.head;
    c.available_quiet(head, 1)?;
    let i = (head & c.ring.mask) as usize;
    // SAFETY: slot `i < cap` lies in the validated bytes, as in
    // `pop_elements`; it is published (`available`), and the producer does
    // not reuse it before we move the head. `dst` holds `unit` bytes.
    unsafe { copy_bytes(c.ring.data.add(i * unit), dst.as_mut_ptr(), unit) };
    c.publish(head.wrapping_add(1));
    Ok(())
}

impl Drop for RawConsumer {
    fn drop(&mut self) {
        self.core.close();
        self.shared.release(false, self.me);
    }
}

#[cfg(all(test, not(shmprim_loom)))]
mod tests {
    use super::*;
    use crate::sync::atomic::Ordering;

    /// Indices scribbled over from outside make the try paths answer
    /// `Corrupted` (never an access out of bounds), and `corruption` says
    /// what is wrong, naming the ring.
    #[test]
    fn scribbled_indices_are_reported_as_corrupted_with_details() {
        let ring = RawSpscRing::anonymous(8, 8, 8).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        tx.try_push(&7u64.to_ne_bytes()).unwrap();
        let hdr = ring.shared.ring.hdr();
        // The tail far beyond the capacity: the consumer's refresh sees it.
        hdr.tail.0.store(1000, Ordering::Relaxed);
        let mut buf = [0u8; 16];
        assert_eq!(rx.try_pop(&mut buf), Err(TryError::Corrupted));
        assert_eq!(rx.try_pop_many(&mut buf, 2), Err(TryError::Corrupted));
        let e = rx.corruption();
        assert!(
            matches!(e, Error::Corrupted { .. }) && e.to_string().contains("apart"),
            "{e}"
        );
        // The waiting form reports the details itself.
        let e = rx
            .pop(
                &mut buf,
                Deadline::after(std::time::Duration::from_millis(10)),
            )
            .unwrap_err();
        assert!(
            matches!(e, Error::Corrupted { .. }) && e.to_string().contains("tail 1000"),
            "{e}"
        );
        // The head far from the tail: the producer's refresh, once its cache
        // says full, sees it.
        hdr.tail.0.store(1, Ordering::Relaxed);
        hdr.head.0.store(500, Ordering::Relaxed);
        let one = 1u64.to_ne_bytes();
        let mut answers = Vec::new();
        for _ in 0..9 {
            answers.push(tx.try_push(&one));
        }
        assert_eq!(
            answers.last(),
            Some(&Err(TryError::Corrupted)),
            "{answers:?}"
        );
        assert!(matches!(tx.corruption(), Error::Corrupted { .. }));
    }
}
