//! A two-way channel of `Pod` values between two processes, built for request
//! and reply: two SPSC rings, one per direction, in one segment, with their
//! slots interleaved. Python's counterpart is `multiprocessing.Pipe(duplex=True)`
//! used to send one small value at a time each way; [`Pipe`](crate::pipe::Pipe)
//! is the form for byte messages.
//!
//! # Why interleaved, stamped slots
//!
//! Over two separate [`SpscRing`](super::spsc::SpscRing)s, a request and its
//! reply move four cache lines between the two cores: the request's slot and
//! the tail that publishes it, then the reply's slot and its tail. Here each
//! slot carries a *stamp*, stored last (`Release`), so the receiver
//! learns from the slot's own line that it is published and never needs the
//! tail's line while values flow. And slot `i` of the ring A→B sits beside slot
//! `i` of the ring B→A: when A sends its `k`-th value and B answers with its
//! `k`-th, request and reply share one line, which moves between the two cores
//! exactly as a single shared word would. `BENCHMARKS.md` has the figures
//! (`pingpong-spin-duplex` against `pingpong-spin-spsc` and a raw one-word
//! ping-pong): since the `SpscRing` consumer prefetches the slot beside the
//! tail, two `SpscRing<u64>` are as fast in some minutes (77 to 92 ns per
//! round trip against 84 to 89 here) and slower in others (100 to 110 ns),
//! where this ring stays put.
//!
//! Each ring still publishes its tail (before the stamp) and its head as an
//! `SpscRing` does, so sleeping, closing and recovery work the same way; the
//! stamps only let a receiver skip the tail. [`DuplexEnd::try_recv`] answers `Empty` from the
//! stamp alone at most 64 times in a row; the next empty answer reads the tail,
//! which is where it sees that the peer closed or that the ring is corrupted.
//!
//! # Layout
//!
//! ```text
//! offset    0  ring header A→B   (an SPSC ring header, format 3: stamped)
//! offset  640  ring header B→A
//! offset 1280  `capacity` pairs: [slot i of A→B][slot i of B→A]
//!              each slot: u32 stamp (position | 1 << 31, 0 when fresh), then the value
//! ```
//!
//! Stamps, like indices, are untrusted: a slot position is always masked with
//! the validated capacity, so a scribbled stamp can at worst hand over a value
//! early (any bytes are a valid `T: Pod`); the indices then disagree and the
//! next operation that reads them returns [`Error::Corrupted`].
//!
//! C programs use the same rings through `shmprim_duplex_*` (see
//! `include/shmprim.h`): an element there is known by its size and alignment,
//! and a slot lays it out as `StampedSlot<T>` does for a `T` of that size and
//! alignment, so C and Rust share one ring.
//!
//! # Ends, closing and death
//!
//! A [`DuplexRing`] has two ends, A and B ([`DuplexEnd`]). Each end is the
//! producer of one ring and the consumer of the other, claimed together by one
//! participant (one handle, so one process): a second claim while the holder
//! lives is refused (`InvalidArgument`). Dropping an end closes both its
//! directions and frees the claim, so a new participant may take the end over,
//! as with an `SpscRing`.
//!
//! When the peer closes its end or its process dies:
//! - `recv` returns what the peer sent before, then `Error::Closed`; a
//!   blocked `recv` sees a death within [`LIVENESS_SLICE`](crate::wait::LIVENESS_SLICE), `try_recv` within
//!   a millisecond of polling.
//! - `send` fails with `Error::Closed` once the ring is full, or at the latest
//!   on the 256th send after the close, and every send after that fails too.
//!   An end that saw its peer gone stays that way; to talk to a new holder of
//!   the peer's end, drop this end and claim it again.
//!
//! A peer that dies in the middle of a send loses only that value. The tail is
//! published before the stamp, so a value whose tail was published is
//! delivered even if its stamp never was (the receiver's tail check finds it).
//!
//! # Example
//!
//! ```
//! use shmprim::ring::duplex::DuplexRing;
//! # let name = format!("doc-duplex-{}", std::process::id());
//! let ring = DuplexRing::<u64>::create(&name, 64)?;
//! let mut a = ring.end_a()?;
//! // Another process would run `DuplexRing::<u64>::open(&name)?.end_b()?`.
//! let mut b = DuplexRing::<u64>::open(&name)?.end_b()?;
//! a.send(41)?;
//! let request = b.recv()?;
//! b.send(request + 1)?;
//! assert_eq!(a.recv()?, 42);
//! drop(b);
//! assert!(matches!(a.recv(), Err(shmprim::Error::Closed { .. })));
//! DuplexRing::<u64>::unlink(&name)?;
//! # Ok::<(), shmprim::Error>(())
//! ```

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use super::spsc::{
    ConsumerCore, FORMAT_STAMPED, ProducerCore, RingHeader, RingRef, StampedSlot, TryError,
    check_element_type, claim_end, element_capacity, peer_died, release_end,
};
use super::{Backing, End, HeapMem, PeerWatch};
use crate::error::{Error, Result};
use crate::segment::Disposition;
use crate::segment::{Kind, Options, Segment, SegmentBuilder, TypeCode, TypeDesc};
use crate::sync::UnsafeCell;
use crate::sync::atomic::AtomicU32;
use crate::wait::{Deadline, is_timeout, try_first};

/// `try_recv` answers `Empty` from the slot's stamp at most this many times in
/// a row; the next empty answer reads the tail (and sees a close).
#[cfg(not(shmprim_loom))]
pub const STAMP_ANSWERS: u32 = 64;
/// Fewer under loom, so that models reach the tail check.
#[cfg(shmprim_loom)]
pub const STAMP_ANSWERS: u32 = 2;
/// A sender re-reads its peer's head (and so sees a close) once per this many
/// sends, even when the ring is not full.
pub const CLOSE_CHECK_EVERY: u32 = 256;
/// Bytes of the two ring headers before the slot pairs.
const HEADERS: usize = 2 * RingHeader::DATA_OFFSET;

/// The index in [`DuplexShared::rings`] of the ring `end` sends on; it
/// receives on the other one.
fn tx_index(end: End) -> usize {
    match end {
        End::A => 0,
        End::B => 1,
    }
}

/// Where a stamped slot of an element puts the element, and the slot's size:
/// the layout of `StampedSlot<T>` (`repr(C)`: a `u32` stamp, then the value at
/// its alignment), also for an element known only by its size and alignment
/// (the C functions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotLayout {
    /// Bytes of the element.
    unit: u32,
    /// Offset of the element in the slot.
    offset: u32,
    /// Bytes of the slot (a pair of slots is twice that).
    size: u32,
}

impl SlotLayout {
    /// The layout of `StampedSlot<T>` (checked by `check_element_type`).
    fn of<T: Pod>() -> Result<SlotLayout> {
        check_element_type::<T>()?;
        let size = std::mem::size_of::<StampedSlot<T>>();
        if 2 * size > u32::MAX as usize {
            return Err(too_large(std::mem::size_of::<T>()));
        }
        Ok(SlotLayout {
            unit: std::mem::size_of::<T>() as u32,
            offset: std::mem::offset_of!(StampedSlot<T>, value) as u32,
            size: size as u32,
        })
    }

    /// The layout `StampedSlot<T>` has for a `T` of `size` bytes aligned to
    /// `align` (a power of two up to [`RING_ALIGN`] dividing `size`).
    pub(crate) fn new(size: usize, align: usize) -> Result<SlotLayout> {
        // Bounds the sums below too: `size < 2^32`, `align <= 128`.
        super::check_elem_shape(size, align)?;
        let slot_align = align.max(4);
        let offset = 4usize.next_multiple_of(align);
        let slot = (offset + size).next_multiple_of(slot_align);
        if 2 * slot > u32::MAX as usize {
            return Err(too_large(size));
        }
        Ok(SlotLayout {
            unit: size as u32,
            offset: offset as u32,
            size: slot as u32,
        })
    }
}

fn too_large(size: usize) -> Error {
    Error::invalid_argument(format!(
        "element of {size} bytes is too large for a duplex ring"
    ))
}

/// Bytes of memory a duplex ring of `capacity` values of `T` needs
/// (`capacity` is rounded up to a power of two).
pub fn memory_size<T: Pod>(capacity: usize) -> Result<usize> {
    memory_size_for(capacity, SlotLayout::of::<T>()?)
}

fn memory_size_for(capacity: usize, layout: SlotLayout) -> Result<usize> {
    let cap = element_capacity(capacity)? as usize;
    cap.checked_mul(2 * layout.size as usize)
        .and_then(|n| n.checked_add(HEADERS))
        .ok_or_else(|| Error::invalid_argument("duplex ring is too large"))
}

/// Writes a fresh duplex ring of `capacity` values of `T` (rounded up to a
/// power of two) at `mem`, with no end claimed.
///
/// # Safety
///
/// `mem` is valid for writes of [`memory_size`] bytes, aligned to 128, and
/// nobody else uses that memory during the call.
pub unsafe fn init<T: Pod>(mem: *mut u8, capacity: usize) -> Result<()> {
    memory_size::<T>(capacity)?;
    let cap = element_capacity(capacity)?;
    let unit = std::mem::size_of::<T>() as u32;
    // SAFETY: the caller provides the whole region, aligned to 128; the headers
    // sit at multiples of 128 and each slot at a multiple of its size, which is
    // a multiple of its alignment (at most 128).
    unsafe {
        RingHeader::write_header(mem, FORMAT_STAMPED, cap, unit);
        RingHeader::write_header(mem.add(RingHeader::DATA_OFFSET), FORMAT_STAMPED, cap, unit);
        let slots = mem.add(HEADERS).cast::<StampedSlot<T>>();
        for i in 0..2 * cap as usize {
            slots.add(i).write(StampedSlot {
                stamp: AtomicU32::new(0),
                value: UnsafeCell::new(T::zeroed()),
            });
        }
    }
    Ok(())
}

/// [`init`] for an element of `layout` (the C functions): the same bytes.
///
/// # Safety
///
/// As for [`init`], with [`memory_size_for`] bytes.
unsafe fn init_for(mem: *mut u8, cap: u32, layout: SlotLayout) {
    // SAFETY: as in `init`; a fresh slot is all zeros (stamp 0, value zeroed).
    unsafe {
        RingHeader::write_header(mem, FORMAT_STAMPED, cap, layout.unit);
        RingHeader::write_header(
            mem.add(RingHeader::DATA_OFFSET),
            FORMAT_STAMPED,
            cap,
            layout.unit,
        );
        std::ptr::write_bytes(mem.add(HEADERS), 0, 2 * cap as usize * layout.size as usize);
    }
}

/// What every handle of a duplex ring shares: the memory and the two rings.
struct DuplexShared {
    backing: Backing,
    /// The ring A→B, then the ring B→A.
    rings: [RingRef; 2],
    cap: u32,
    /// Drops the slots of a heap ring under loom (they hold loom cells).
    #[cfg(shmprim_loom)]
    drop_slots: unsafe fn(*mut u8, u32),
}

impl DuplexShared {
    /// Validates the duplex ring at the start of `backing` and makes its views.
    ///
    /// # Safety
    ///
    /// The memory holds `memory_size::<T>(cap)` bytes, aligned to 128, owned by
    /// `backing`.
    unsafe fn new<T: Pod>(backing: Backing, cap: u32) -> Result<DuplexShared> {
        // SAFETY: forwarded from the caller; the layout is `T`'s.
        #[allow(unused_mut)]
        let mut shared = unsafe { Self::with_layout(backing, cap, SlotLayout::of::<T>()?)? };
        #[cfg(shmprim_loom)]
        {
            shared.drop_slots = drop_slots::<T>;
        }
        Ok(shared)
    }

    /// [`new`](Self::new) for an element of `layout`.
    ///
    /// # Safety
    ///
    /// The memory holds `memory_size_for(cap, layout)` bytes, aligned to 128,
    /// owned by `backing`.
    unsafe fn with_layout(backing: Backing, cap: u32, layout: SlotLayout) -> Result<DuplexShared> {
        let mem = backing.base();
        let name = backing.object_name().clone();
        let slot = layout.size as usize;
        let open = |i: usize| {
            // SAFETY: header `i` and the slots `HEADERS + (2k + i) * slot` for
            // `k < cap` lie in the region (caller), aligned as `init` placed them.
            unsafe {
                RingRef::open_stamped(
                    mem.add(i * RingHeader::DATA_OFFSET),
                    mem.add(HEADERS + i * slot),
                    cap,
                    layout.unit,
                    2 * layout.size,
                    &name,
                )
            }
        };
        Ok(DuplexShared {
            rings: [open(0)?, open(1)?],
            backing,
            cap,
            #[cfg(shmprim_loom)]
            drop_slots: drop_no_slots,
        })
    }
}

/// The `drop_slots` of a ring whose slots hold no loom state.
#[cfg(shmprim_loom)]
unsafe fn drop_no_slots(_: *mut u8, _: u32) {}

/// Drops the `2 * cap` slots of `T` that `init` wrote at `slots`.
///
/// # Safety
///
/// They were written by `init::<T>` and nothing uses them any more.
#[cfg(shmprim_loom)]
unsafe fn drop_slots<T>(slots: *mut u8, cap: u32) {
    for i in 0..2 * cap as usize {
        // SAFETY: guaranteed by the caller.
        unsafe { std::ptr::drop_in_place(slots.cast::<StampedSlot<T>>().add(i)) };
    }
}

#[cfg(shmprim_loom)]
impl Drop for DuplexShared {
    fn drop(&mut self) {
        // Loom's atomics and cells must be dropped inside the model.
        if let Backing::Heap(mem) = &self.backing {
            let p = mem.as_ptr();
            // SAFETY: `init` wrote the two headers and the slots (of the type
            // `drop_slots` was made for); nothing uses them any more.
            unsafe {
                std::ptr::drop_in_place(p.cast::<RingHeader>());
                std::ptr::drop_in_place(p.add(RingHeader::DATA_OFFSET).cast::<RingHeader>());
                (self.drop_slots)(p.add(HEADERS), self.cap);
            }
        }
    }
}

fn builder<T: Pod>(cap: u32) -> Result<SegmentBuilder> {
    builder_for(
        cap,
        SlotLayout::of::<T>()?,
        crate::cell::payload_desc::<T>(),
    )
}

/// The segment of a duplex ring of `cap` elements of `layout`, described by
/// `payload`.
fn builder_for(cap: u32, layout: SlotLayout, payload: TypeDesc) -> Result<SegmentBuilder> {
    Ok(SegmentBuilder::new(Kind::Duplex)
        .data_size(memory_size_for(cap as usize, layout)? as u64)
        .param(0, u64::from(cap))
        .param(1, u64::from(layout.unit))
        .payload(payload))
}

/// The capacity stored in a duplex ring segment's parameters, checked.
fn stored_capacity(seg: &Segment) -> Result<u32> {
    let (cap, unit) = (seg.param(0), seg.param(1));
    if cap == 0 || !cap.is_power_of_two() || cap > super::spsc::MAX_CAPACITY as u64 {
        return Err(Error::corrupted(
            seg.display_name(),
            format!("duplex ring parameters: capacity {cap}, unit {unit}"),
        ));
    }
    Ok(cap as u32)
}

/// A named (or anonymous, or heap) duplex ring of `T`. Take its ends with
/// [`end_a`](Self::end_a) and [`end_b`](Self::end_b), one per process (see
/// the module doc).
pub struct DuplexRing<T: Pod> {
    shared: Arc<DuplexShared>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Pod> Clone for DuplexRing<T> {
    fn clone(&self) -> Self {
        DuplexRing {
            shared: self.shared.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod> std::fmt::Debug for DuplexRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuplexRing")
            .field("name", &self.shared.backing.display_name())
            .field("capacity", &self.shared.cap)
            .finish()
    }
}

impl<T: Pod> DuplexRing<T> {
    /// Creates a named duplex ring of `capacity` values each way (rounded up to
    /// a power of two, at most [`MAX_CAPACITY`](super::spsc::MAX_CAPACITY)).
    pub fn create(name: &str, capacity: usize) -> Result<DuplexRing<T>> {
        Self::create_with_options(name, capacity, &Options::default())
    }

    /// [`create`](Self::create) with handle options.
    pub fn create_with_options(
        name: &str,
        capacity: usize,
        opts: &Options,
    ) -> Result<DuplexRing<T>> {
        let cap = element_capacity(capacity)?;
        let seg = builder::<T>(cap)?
            .options(opts)
            .create_with(name, |ptr, _| {
                // SAFETY: the data area is `memory_size` bytes, page aligned, ours.
                unsafe { init::<T>(ptr.as_ptr(), cap as usize) }
            })?;
        crate::segment::finish_create(seg, Self::from_segment)
    }

    /// Opens a named duplex ring of `T`.
    pub fn open(name: &str) -> Result<DuplexRing<T>> {
        check_element_type::<T>()?;
        Self::from_segment(builder::<T>(1)?.open(name)?)
    }

    /// Opens the named duplex ring, or creates it with `capacity` values each way.
    pub fn open_or_create(name: &str, capacity: usize) -> Result<(DuplexRing<T>, Disposition)> {
        let cap = element_capacity(capacity)?;
        let (seg, how) = builder::<T>(cap)?.open_or_create_with(name, |ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { init::<T>(ptr.as_ptr(), cap as usize) }
        })?;
        seg.expect_param(0, u64::from(cap), "capacity")?;
        Ok((Self::from_segment(seg)?, how))
    }

    /// An anonymous duplex ring (`memfd`), shared with children forked
    /// afterwards. A forked child that takes an end becomes a participant of
    /// its own first, so its death is seen like any other process's (take
    /// each end in the process that uses it).
    pub fn anonymous(capacity: usize) -> Result<DuplexRing<T>> {
        let cap = element_capacity(capacity)?;
        let seg = builder::<T>(cap)?.anonymous_with(|ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { init::<T>(ptr.as_ptr(), cap as usize) }
        })?;
        Self::from_segment(seg)
    }

    /// A duplex ring on the heap of this process (between threads).
    pub fn new(capacity: usize) -> Result<DuplexRing<T>> {
        let cap = element_capacity(capacity)?;
        let mem = HeapMem::zeroed(memory_size::<T>(cap as usize)?)?;
        // SAFETY: zeroed, aligned to 128, large enough, ours.
        unsafe { init::<T>(mem.as_ptr(), cap as usize)? };
        // SAFETY: initialised just above; `Backing::Heap` owns the memory.
        let shared = unsafe { DuplexShared::new::<T>(Backing::Heap(mem), cap)? };
        Ok(DuplexRing {
            shared: Arc::new(shared),
            _t: PhantomData,
        })
    }

    fn from_segment(seg: Segment) -> Result<DuplexRing<T>> {
        let cap = stored_capacity(&seg)?;
        seg.expect_param(1, std::mem::size_of::<T>() as u64, "element size")?;
        seg.expect_data_size(memory_size::<T>(cap as usize)? as u64)?;
        // SAFETY: the data area holds the memory size (checked), page aligned,
        // owned by the backing.
        let shared = unsafe { DuplexShared::new::<T>(Backing::Segment(seg), cap)? };
        Ok(DuplexRing {
            shared: Arc::new(shared),
            _t: PhantomData,
        })
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::Duplex)
    }

    /// The segment (`None` for a heap ring).
    pub fn segment(&self) -> Option<&Segment> {
        self.shared.backing.segment()
    }

    /// Values each direction holds.
    pub fn capacity(&self) -> usize {
        self.shared.cap as usize
    }

    /// Claims end A.
    pub fn end_a(&self) -> Result<DuplexEnd<T>> {
        self.end(End::A)
    }

    /// Claims end B.
    pub fn end_b(&self) -> Result<DuplexEnd<T>> {
        self.end(End::B)
    }

    /// Claims `end` for this handle's participant: `InvalidArgument` while a
    /// live participant holds it.
    pub fn end(&self, end: End) -> Result<DuplexEnd<T>> {
        Ok(DuplexEnd {
            core: EndCore::claim(&self.shared, end)?,
            _t: PhantomData,
        })
    }
}

/// What an end is, whatever its element: its two rings' cores and the state
/// of closing, with the protocol of sending and receiving; the value itself
/// is moved by the closures [`DuplexEnd`] and [`RawDuplexEnd`] pass in.
struct EndCore {
    shared: Arc<DuplexShared>,
    end: End,
    tx: ProducerCore,
    rx: ConsumerCore,
    me: u64,
    /// `Empty` answers given from the stamp alone since the last other answer.
    stamp_empties: u32,
    sends: u32,
    /// When this end looks whether its peer is gone; once it has seen it
    /// closed or dead, every later send fails.
    watch: PeerWatch,
}

impl EndCore {
    /// Claims `end` of the ring `shared` for this handle's participant.
    fn claim(shared: &Arc<DuplexShared>, end: End) -> Result<EndCore> {
        let (t, r) = (tx_index(end), 1 - tx_index(end));
        let (tx_ring, rx_ring) = (&shared.rings[t], &shared.rings[r]);
        let me = claim_end(&shared.backing, tx_ring, true)?;
        let cores = claim_end(&shared.backing, rx_ring, false).and_then(|me_rx| {
            debug_assert_eq!(me, me_rx);
            let made = ProducerCore::new(tx_ring.clone())
                .and_then(|tx| Ok((tx, ConsumerCore::new(rx_ring.clone())?)));
            if made.is_err() {
                release_end(rx_ring, false, me);
            }
            made
        });
        let (tx, rx) = match cores {
            Ok(c) => c,
            Err(e) => {
                release_end(tx_ring, true, me);
                return Err(e);
            }
        };
        Ok(EndCore {
            shared: shared.clone(),
            end,
            tx,
            rx,
            me,
            stamp_empties: 0,
            sends: 0,
            watch: PeerWatch::new(),
        })
    }

    fn tx_ring(&self) -> &RingRef {
        &self.shared.rings[tx_index(self.end)]
    }

    fn rx_ring(&self) -> &RingRef {
        &self.shared.rings[1 - tx_index(self.end)]
    }

    /// [`DuplexEnd::try_send`], with `push` the stamped push of the value.
    #[inline]
    fn try_send_by(
        &mut self,
        push: impl FnOnce(&mut ProducerCore) -> Result<()>,
    ) -> Result<(), TryError> {
        self.check_closed().map_err(TryError::from_error)?;
        match push(&mut self.tx) {
            Ok(()) => {
                self.tx.wake_hint();
                Ok(())
            }
            Err(e) => Err(TryError::from_error(self.send_failed(e))),
        }
    }

    /// The check every send makes first: `Closed` once the peer was seen
    /// gone; on every [`CLOSE_CHECK_EVERY`]th send, re-reads the head (where a
    /// close shows).
    #[inline]
    fn check_closed(&mut self) -> Result<()> {
        self.sends = self.sends.wrapping_add(1);
        if self.watch.is_gone() || self.sends % CLOSE_CHECK_EVERY == 0 {
            return self.check_closed_now();
        }
        Ok(())
    }

    #[cold]
    fn check_closed_now(&mut self) -> Result<()> {
        if !self.watch.is_gone() {
            match self.tx.refresh() {
                Ok(_) => return Ok(()),
                Err(Error::Closed { .. }) => self.watch.set_gone(),
                Err(e) => return Err(e),
            }
        }
        Err(Error::closed(self.tx.name()))
    }

    /// Turns a failed push into the answer: a full ring whose receiver died
    /// is `Closed`; every `Closed` is remembered.
    #[cold]
    fn send_failed(&mut self, e: Error) -> Error {
        let (backing, ring) = (&self.shared.backing, &self.shared.rings[tx_index(self.end)]);
        let e = match e {
            Error::Full { .. } if self.watch.peer_gone(|| peer_died(backing, ring, true)) => {
                Error::closed(self.tx.name())
            }
            e => e.named(self.tx.name()),
        };
        if matches!(e, Error::Closed { .. }) {
            self.watch.set_gone();
        }
        e
    }

    /// [`DuplexEnd::send_deadline`], with `push` the stamped push of the value.
    fn send_deadline_by(
        &mut self,
        deadline: Deadline,
        mut push: impl FnMut(&mut ProducerCore) -> Result<()>,
    ) -> Result<()> {
        self.check_closed()?;
        loop {
            match push(&mut self.tx) {
                Ok(()) => {
                    self.tx.wake();
                    return Ok(());
                }
                Err(Error::Full { .. }) => {}
                Err(e) => return Err(self.send_failed(e)),
            }
            let (backing, ring) = (&self.shared.backing, &self.shared.rings[tx_index(self.end)]);
            let waited = self
                .tx
                .wait_for_space(deadline, &mut || peer_died(backing, ring, true));
            waited.map_err(|e| self.send_failed(e))?;
        }
    }

    /// [`DuplexEnd::try_recv`], with `pop` the stamped pop of a value (its
    /// flag: whether it may answer `Empty` from the stamp alone).
    #[inline]
    fn try_recv_by<R>(
        &mut self,
        mut pop: impl FnMut(&mut ConsumerCore, bool) -> Result<R>,
    ) -> Result<R, TryError> {
        let by_stamp = self.stamp_empties < STAMP_ANSWERS;
        match pop(&mut self.rx, by_stamp) {
            Ok(v) => {
                self.stamp_empties = 0;
                self.rx.wake_hint();
                Ok(v)
            }
            Err(Error::Empty { .. }) if by_stamp => {
                self.stamp_empties += 1;
                Err(TryError::Empty)
            }
            Err(e) => self.recv_failed(e, pop),
        }
    }

    /// A strict `try_recv` answer other than a value: checks the peer's
    /// liveness when it says `Empty`.
    #[cold]
    fn recv_failed<R>(
        &mut self,
        e: Error,
        mut pop: impl FnMut(&mut ConsumerCore, bool) -> Result<R>,
    ) -> Result<R, TryError> {
        let mut answer = Err(TryError::from_error(e));
        let (backing, ring) = (
            &self.shared.backing,
            &self.shared.rings[1 - tx_index(self.end)],
        );
        if matches!(answer, Err(TryError::Empty))
            && self.watch.peer_gone(|| peer_died(backing, ring, false))
        {
            answer = match pop(&mut self.rx, false) {
                Err(Error::Empty { .. }) => Err(TryError::Closed),
                r => r.map_err(TryError::from_error),
            };
        }
        // Once closed, every answer reads the tail again, so it stays `Closed`.
        self.stamp_empties = if matches!(answer, Err(TryError::Closed)) {
            STAMP_ANSWERS
        } else {
            0
        };
        answer
    }

    /// [`DuplexEnd::recv_deadline`], with `pop` the stamped pop of a value.
    fn recv_deadline_by<R>(
        &mut self,
        deadline: Deadline,
        mut pop: impl FnMut(&mut ConsumerCore, bool) -> Result<R>,
    ) -> Result<R> {
        loop {
            // Strict: an `Empty` answer comes with a fresh read of the tail,
            // which is the value to sleep on.
            match pop(&mut self.rx, false) {
                Ok(v) => {
                    self.rx.wake();
                    return Ok(v);
                }
                Err(Error::Empty { .. }) => {}
                Err(e) => return Err(e),
            }
            let (backing, ring) = (
                &self.shared.backing,
                &self.shared.rings[1 - tx_index(self.end)],
            );
            match self
                .rx
                .wait_for_data(deadline, &mut || peer_died(backing, ring, false))
            {
                Ok(()) => {}
                Err(Error::Closed { .. }) => {
                    // The peer died: take what it sent first.
                    return match pop(&mut self.rx, false) {
                        Err(Error::Empty { .. }) => Err(Error::closed(self.rx.name())),
                        r => r,
                    };
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for EndCore {
    fn drop(&mut self) {
        self.tx.close();
        self.rx.close();
        release_end(self.tx_ring(), true, self.me);
        release_end(self.rx_ring(), false, self.me);
    }
}

/// One end of a [`DuplexRing`]: sends on one ring, receives on the other.
/// Dropping it closes both directions.
pub struct DuplexEnd<T: Pod> {
    core: EndCore,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Pod> std::fmt::Debug for DuplexEnd<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuplexEnd")
            .field("ring", &self.core.shared.backing.display_name())
            .field("end", &self.core.end)
            .finish()
    }
}

impl<T: Pod> DuplexEnd<T> {
    /// The [`Error`] a [`TryError`] answer of this end stands for, naming the
    /// ring (with `?` a `TryError` becomes an `Error` that names nothing).
    #[cold]
    pub fn error(&self, e: TryError) -> Error {
        Error::from(e).named(self.core.tx.name())
    }

    /// Which end this is.
    pub fn which(&self) -> End {
        self.core.end
    }

    /// Values each direction holds.
    pub fn capacity(&self) -> usize {
        self.core.shared.cap as usize
    }

    /// Sends `value` if there is room: `Full` if not, `Closed` if the peer
    /// closed its end or died (seen when the ring is full, and on every
    /// [`CLOSE_CHECK_EVERY`]th send; from then on every send fails).
    #[inline]
    pub fn try_send(&mut self, value: T) -> Result<(), TryError> {
        // SAFETY: both rings of a duplex ring of `T` are stamped rings of `T`.
        self.core
            .try_send_by(|tx| unsafe { tx.try_push_stamped(value) })
    }

    /// Sends `value`, waiting for room as long as needed.
    pub fn send(&mut self, value: T) -> Result<()> {
        self.send_deadline(value, Deadline::never())
    }

    /// Sends `value`, waiting at most `timeout` for room (`Timeout`).
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<()> {
        try_first(timeout, |d| self.send_deadline(value, d), is_timeout)
    }

    /// Sends `value`, waiting until `deadline` for room; wakes a sleeping
    /// receiver without fail. `Closed` if the peer closed its end or died.
    pub fn send_deadline(&mut self, value: T, deadline: Deadline) -> Result<()> {
        // SAFETY: as in `try_send`.
        self.core
            .send_deadline_by(deadline, |tx| unsafe { tx.try_push_stamped(value) })
    }

    /// Receives the oldest value: `Empty` if there is none, `Closed` if there
    /// is none and the peer closed its end or died.
    ///
    /// While nothing arrives, up to [`STAMP_ANSWERS`] answers in a row come
    /// from the next slot's stamp alone; the one after reads the tail, which
    /// is where a close is seen, and checks the peer's liveness (at most once
    /// a millisecond).
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, TryError> {
        // SAFETY: as in `try_send`.
        self.core
            .try_recv_by(|rx, by_stamp| unsafe { rx.try_pop_stamped::<T>(by_stamp) })
    }

    /// Receives a value, waiting as long as needed.
    pub fn recv(&mut self) -> Result<T> {
        self.recv_deadline(Deadline::never())
    }

    /// Receives a value, waiting at most `timeout` (`Timeout`).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T> {
        try_first(timeout, |d| self.recv_deadline(d), is_timeout)
    }

    /// Receives a value, waiting until `deadline`; wakes a sleeping sender
    /// without fail. `Closed` once drained if the peer closed its end or died.
    pub fn recv_deadline(&mut self, deadline: Deadline) -> Result<T> {
        // SAFETY: as in `try_send`.
        self.core.recv_deadline_by(deadline, |rx, by_stamp| unsafe {
            rx.try_pop_stamped::<T>(by_stamp)
        })
    }
}

mod raw;
pub use raw::{RawDuplexEnd, RawDuplexRing};

/// The `ls`/`stat` view of a duplex ring segment.
pub(crate) fn summarize(
    view: &crate::inspect::view::StateView<'_>,
) -> Option<crate::inspect::view::StateSummary> {
    use crate::inspect::view::{Field, StateSummary};
    let to_b = super::spsc::view_ring(view, 0)?;
    let to_a = super::spsc::view_ring(view, RingHeader::DATA_OFFSET)?;
    let closed = to_a.producer_closed
        || to_a.consumer_closed
        || to_b.producer_closed
        || to_b.consumer_closed;
    let mut line = format!(
        "{}/{} values pending to B, {} to A",
        to_b.pending, to_b.capacity, to_a.pending
    );
    if closed {
        line.push_str(", an end is closed");
    }
    Some(StateSummary {
        line,
        fields: vec![
            ("pending_to_b", Field::U64(to_b.pending)),
            ("pending_to_a", Field::U64(to_a.pending)),
            ("capacity", Field::U64(to_b.capacity)),
            ("closed", Field::Bool(closed)),
        ],
    })
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests;

#[cfg(all(test, not(shmprim_loom)))]
mod tests;
