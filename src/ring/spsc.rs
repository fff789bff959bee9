//! Bounded lock-free single-producer single-consumer rings in shared memory: one
//! of fixed-size elements ([`SpscRing<T>`], `T: Pod`) and one of byte messages of
//! variable length up to a maximum fixed at creation ([`SpscByteRing`]). They
//! have no direct Python counterpart; the [`Pipe`](crate::pipe::Pipe) (Python's
//! `Pipe`) is built from two byte rings. C programs use element rings through
//! `shmprim_spsc_*` (the `shmprim-capi` package): the same objects as an `SpscRing<T>`
//! whose `T` has the element size and alignment.
//!
//! # Hot path
//!
//! Each end keeps its own index and a cached copy of the other end's index in
//! its own (process-local) memory. A non-blocking push is: compare the local
//! indices, write the slot, one `Release` store of the tail. Only when the cache
//! says *full* does the producer load the head (`Acquire`). No fence, no
//! read-modify-write, no division (capacities are powers of two). The consumer
//! is symmetric, and when its cache says *empty* it prefetches the next slot's
//! line beside its load of the tail (elements of up to a cache line; in a byte
//! ring, after a message whose record fit in two lines), so that a consumer
//! polling an empty ring fetches the two lines of a hand-off at once rather
//! than one after the other. Batch forms
//! ([`Producer::push_slice`], [`Consumer::pop_into`],
//! [`ByteProducer::try_send_many`], [`ByteConsumer::try_recv_many`]) publish
//! the index once per batch. The element ring's non-blocking forms return a
//! [`TryError`], which owns nothing, so that ignoring or testing the result
//! (`is_ok()`) adds no drop glue to the loop.
//!
//! # Layout
//!
//! ```text
//! offset   0  meta     magic, format (elements | bytes | stamped), capacity, unit  (read-only)
//! offset 128  tail     written by the producer only            (own cache line pair)
//! offset 256  head     written by the consumer only            (own cache line pair)
//! offset 384  waiters  sleeping consumers, sleeping producers  (written only to sleep)
//! offset 512  ends     owner ids of the producer and consumer ends
//! offset 640  data     `capacity` slots of `T`, or `capacity` bytes of records
//! ```
//!
//! A stamped ring (format 3) has the same header, but its slots lie elsewhere,
//! interleaved with another ring's: see [`crate::ring::duplex`].
//!
//! Slots are packed: a producer and a consumer touch the same line only when the
//! ring is nearly empty, where the hand-off of that line *is* the transfer; padding
//! each `u64` to a line would cost 16× the memory and bandwidth.
//!
//! Indices are free-running 31-bit counters (`capacity <= 2^30`): bit 31 of each
//! index is its end's *closed* flag, so that closing an end changes the very word
//! the peer sleeps on.
//!
//! | index word | meaning                                  | written by          |
//! |------------|------------------------------------------|---------------------|
//! | `tail`     | bits 0–30: next slot/byte to write       | producer (`Release`) |
//! |            | bit 31: producer end closed              | producer (`fetch_or`)|
//! | `head`     | bits 0–30: next slot/byte to read        | consumer (`Release`) |
//! |            | bit 31: consumer end closed              | consumer (`fetch_or`)|
//!
//! `tail - head (mod 2^31)` is the number of queued slots (bytes); a value above
//! the capacity means the segment is corrupted (`Error::Corrupted`). Slot
//! positions are masked with the capacity, which the handle took from its
//! validated parameters: no value read from the segment can send an access out of
//! bounds.
//!
//! # Byte records
//!
//! The byte ring holds length-prefixed records in one contiguous buffer: an
//! 8-byte header (the length, or [`PAD`] to skip to the start of the buffer) and
//! the message padded to 8 bytes. A message is always contiguous, so sending or
//! receiving one is one `memcpy` (a 4 KiB message costs 8 bytes of framing, a
//! 64-byte one 8 bytes; fixed slots would waste up to `max_message` per message).
//! The capacity is at least twice the largest record, so a message of the maximum
//! size always fits once the ring drains.
//!
//! # Blocking
//!
//! [`Producer::push`], [`Consumer::pop`] and the byte forms sleep with
//! [`crate::wait`]: a consumer that found the ring empty sleeps on the `tail` word
//! (expecting the value it read), a producer that found it full on the `head`
//! word. After publishing, a blocking push runs [`wait::wake`]
//! (a `SeqCst` fence, then a syscall only if the waiter count says someone
//! sleeps): the fence pair of `wait.rs` makes a lost wake-up impossible. That
//! fence cannot be avoided soundly: the waker's store of the index and its load
//! of the waiter count form a store-buffer pattern with the sleeper's
//! registration and re-check, which needs a `StoreLoad` barrier on both sides.
//!
//! The non-blocking forms (`try_push`, `push_slice`, ...) pay no fence: they only
//! load the waiter count (`Relaxed`, a line that is written only when someone goes
//! to sleep) and wake when it is non-zero. Without the fence they can miss a peer
//! that is registering at that instant; every sleeper also re-checks its condition
//! every [`LIVENESS_SLICE`], so mixing non-blocking pushes with a blocking pop
//! costs at most that much latency, never a hang.
//!
//! # Ends and death
//!
//! A ring in a segment has one producer end and one consumer end, each claimed
//! by a participant (`producer()`, `consumer()`): an end held by a live
//! participant cannot be claimed again until it is dropped or its process dies.
//! Dropping an end sets its closed flag and wakes the peer: the consumer then
//! drains what is queued and gets `Error::Closed`; the producer gets
//! `Error::Closed` once it finds the ring full. A blocked end also checks every
//! [`LIVENESS_SLICE`] whether the peer's process died, and returns
//! `Error::Closed` if it did (after draining, for the consumer). A new producer or
//! consumer may claim the end afterwards; it clears the closed flag.
//!
//! # Example
//!
//! ```
//! use shmprim::ring::spsc::{SpscRing, TryError};
//! # let name = format!("doc-spsc-{}", std::process::id());
//! let ring = SpscRing::<u64>::create(&name, 1024)?;
//! let mut tx = ring.producer()?;
//! // Another process would open the ring by name and take the consumer end.
//! let mut rx = SpscRing::<u64>::open(&name)?.consumer()?;
//! tx.push_slice(&[1, 2, 3])?;
//! tx.try_push(4)?;
//! let mut out = [0u64; 8];
//! assert_eq!(rx.pop_into(&mut out)?, 4);
//! assert_eq!(&out[..4], &[1, 2, 3, 4]);
//! assert_eq!(rx.try_pop(), Err(TryError::Empty));
//! drop(tx);
//! assert_eq!(rx.try_pop(), Err(TryError::Closed));
//! SpscRing::<u64>::unlink(&name)?;
//! # Ok::<(), shmprim::Error>(())
//! ```

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use super::{Backing, CachePadded, HeapMem, PeerWatch, RING_ALIGN, UNCLAIMED};
use crate::error::{Error, Result};
use crate::segment::{Disposition, Kind, Options, Segment, SegmentBuilder};
use crate::sync::UnsafeCell;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{self, Deadline, LIVENESS_SLICE, Patience};

pub mod raw;

/// Bit 31 of an index word: its end is closed.
const CLOSED: u32 = 1 << 31;
/// Bits 0–30 of an index word: the free-running index.
const IDX: u32 = CLOSED - 1;
/// Largest capacity (elements, or bytes for a byte ring).
pub const MAX_CAPACITY: usize = 1 << 30;
/// A record header that means "skip to the start of the buffer".
pub const PAD: u64 = u64::MAX;
/// Size of a byte record's header.
const RECORD_HEADER: usize = 8;
/// `b"SPSC"`, first word of every ring state.
const MAGIC: u32 = u32::from_le_bytes(*b"SPSC");
/// `meta.format` of a ring of fixed-size elements.
const FORMAT_ELEMENTS: u32 = 1;
/// `meta.format` of a ring of byte records.
const FORMAT_BYTES: u32 = 2;
/// The largest element whose slot the consumer prefetches beside the tail
/// ([`RingRef::prefetch_slot`]): one cache line.
const PREFETCH_MAX_UNIT: u32 = 64;
/// The largest byte record (header included) after which the consumer of a
/// byte ring prefetches the next record's first line beside the tail
/// ([`ConsumerCore::prefetch`]): two cache lines, a message of up to 120 bytes.
const PREFETCH_MAX_RECORD: u32 = 128;
/// `meta.format` of a ring of stamped elements ([`crate::ring::duplex`]).
pub(crate) const FORMAT_STAMPED: u32 = 3;
/// Bit 31 of a slot stamp: the slot holds the value of the position in bits
/// 0–30 (a fresh slot's stamp is 0, which no position's stamp equals).
const STAMPED: u32 = 1 << 31;

/// A slot of a stamped element ring ([`crate::ring::duplex`]): the value, and
/// the stamp its producer stores after the value and the tail (`position |
/// STAMPED`, `Release`), so that the consumer learns that the slot is
/// published from the slot's own line.
#[repr(C)]
pub(crate) struct StampedSlot<T> {
    pub(crate) stamp: AtomicU32,
    pub(crate) value: UnsafeCell<T>,
}

/// Read-only description, written by `init` and validated by every opener.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Meta {
    magic: u32,
    format: u32,
    /// Slots (elements) or bytes; a power of two.
    capacity: u32,
    /// Element size, or the largest message of a byte ring.
    unit: u32,
}

#[repr(C)]
struct Waiters {
    /// Consumers asleep on `tail`.
    consumers: AtomicU32,
    /// Producers asleep on `head`.
    producers: AtomicU32,
}

#[repr(C)]
struct Ends {
    /// Owner id of the producer end (`0`: unclaimed).
    producer: AtomicU64,
    /// Owner id of the consumer end (`0`: unclaimed).
    consumer: AtomicU64,
}

/// The shared state of an SPSC ring (element or byte form): this header,
/// followed at [`RingHeader::DATA_OFFSET`] by the slots or the byte buffer. It
/// lives in a segment, on the heap, or in memory the caller owns
/// ([`RingHeader::init_elements`], [`RingHeader::init_bytes`]).
#[repr(C)]
pub struct RingHeader {
    meta: CachePadded<Meta>,
    tail: CachePadded<AtomicU32>,
    head: CachePadded<AtomicU32>,
    waiters: CachePadded<Waiters>,
    ends: CachePadded<Ends>,
}

#[cfg(not(shmprim_loom))]
const _: () = {
    assert!(std::mem::size_of::<RingHeader>() == 640);
    assert!(std::mem::offset_of!(RingHeader, tail) == 128);
    assert!(std::mem::offset_of!(RingHeader, head) == 256);
};

/// One 8-byte word of a byte ring's buffer.
type Word = UnsafeCell<u64>;

/// Rounds `n` up to a multiple of 8.
const fn round8(n: usize) -> usize {
    (n + 7) & !7
}

/// Bytes a message of `len` bytes takes in a byte ring.
pub const fn record_size(len: usize) -> usize {
    RECORD_HEADER + round8(len)
}

pub(crate) fn element_capacity(capacity: usize) -> Result<u32> {
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(Error::invalid_argument(format!(
            "ring capacity {capacity} is not in 1..={MAX_CAPACITY}"
        )));
    }
    Ok(capacity.next_power_of_two() as u32)
}

/// The byte capacity actually used for a request of `capacity` bytes and
/// messages of at most `max_message` bytes: a power of two, at least twice the
/// largest record.
pub fn byte_capacity(capacity: usize, max_message: usize) -> Result<usize> {
    if max_message > MAX_CAPACITY / 2 - RECORD_HEADER {
        return Err(Error::invalid_argument(format!(
            "max_message {max_message} is larger than {}",
            MAX_CAPACITY / 2 - RECORD_HEADER
        )));
    }
    // Checked before anything is created: a capacity near `usize::MAX` has
    // no next power of two (it would wrap to 0).
    capacity
        .max(2 * record_size(max_message))
        .max(16)
        .checked_next_power_of_two()
        .filter(|&cap| cap <= MAX_CAPACITY)
        .ok_or_else(|| {
            Error::invalid_argument(format!(
                "byte ring capacity {capacity} is larger than {MAX_CAPACITY}"
            ))
        })
}

pub(crate) fn check_element_type<T>() -> Result<()> {
    let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
    if size == 0 || size > u32::MAX as usize || align > RING_ALIGN {
        return Err(Error::invalid_argument(format!(
            "element type of size {size} and alignment {align} is not supported \
             (size 1..2^32, alignment at most {RING_ALIGN})"
        )));
    }
    Ok(())
}

impl RingHeader {
    /// Offset of the slots or byte buffer from the start of the state.
    pub const DATA_OFFSET: usize = std::mem::size_of::<RingHeader>();

    /// Bytes of memory a ring of `capacity` elements of `T` needs (`capacity` is
    /// rounded up to a power of two).
    pub fn memory_size_elements<T: Pod>(capacity: usize) -> Result<usize> {
        check_element_type::<T>()?;
        let cap = element_capacity(capacity)? as usize;
        cap.checked_mul(std::mem::size_of::<UnsafeCell<T>>())
            .and_then(|n| n.checked_add(Self::DATA_OFFSET))
            .ok_or_else(|| Error::invalid_argument("ring is too large"))
    }

    /// Bytes of memory a byte ring needs (see [`byte_capacity`]).
    pub fn memory_size_bytes(capacity: usize, max_message: usize) -> Result<usize> {
        let cap = byte_capacity(capacity, max_message)?;
        Ok(Self::DATA_OFFSET + cap / 8 * std::mem::size_of::<Word>())
    }

    /// Writes a fresh, empty ring of `capacity` elements of `T` (rounded up to a
    /// power of two) at `mem`.
    ///
    /// # Safety
    ///
    /// `mem` is valid for writes of [`memory_size_elements`](Self::memory_size_elements)
    /// bytes, aligned to 128, and nobody else uses that memory during the call.
    pub unsafe fn init_elements<T: Pod>(mem: *mut u8, capacity: usize) -> Result<()> {
        Self::memory_size_elements::<T>(capacity)?;
        let cap = element_capacity(capacity)?;
        // SAFETY: the caller provides the whole region, aligned to 128.
        unsafe {
            Self::write_header(mem, FORMAT_ELEMENTS, cap, std::mem::size_of::<T>() as u32);
            let slots = mem.add(Self::DATA_OFFSET).cast::<UnsafeCell<T>>();
            for i in 0..cap as usize {
                slots.add(i).write(UnsafeCell::new(T::zeroed()));
            }
        }
        Ok(())
    }

    /// Writes a fresh, empty byte ring at `mem` (capacity as in [`byte_capacity`]).
    ///
    /// # Safety
    ///
    /// `mem` is valid for writes of [`memory_size_bytes`](Self::memory_size_bytes)
    /// bytes, aligned to 128, and nobody else uses that memory during the call.
    pub unsafe fn init_bytes(mem: *mut u8, capacity: usize, max_message: usize) -> Result<()> {
        let cap = byte_capacity(capacity, max_message)?;
        // SAFETY: the caller provides the whole region, aligned to 128.
        unsafe {
            Self::write_header(mem, FORMAT_BYTES, cap as u32, max_message as u32);
            let words = mem.add(Self::DATA_OFFSET).cast::<Word>();
            for i in 0..cap / 8 {
                words.add(i).write(UnsafeCell::new(0));
            }
        }
        Ok(())
    }

    /// # Safety
    /// `mem` is valid for writes of a `RingHeader` and aligned to 128.
    pub(crate) unsafe fn write_header(mem: *mut u8, format: u32, capacity: u32, unit: u32) {
        let header = RingHeader {
            meta: CachePadded(Meta {
                magic: MAGIC,
                format,
                capacity,
                unit,
            }),
            tail: CachePadded(AtomicU32::new(0)),
            head: CachePadded(AtomicU32::new(0)),
            waiters: CachePadded(Waiters {
                consumers: AtomicU32::new(0),
                producers: AtomicU32::new(0),
            }),
            ends: CachePadded(Ends {
                producer: AtomicU64::new(UNCLAIMED),
                consumer: AtomicU64::new(UNCLAIMED),
            }),
        };
        // SAFETY: guaranteed by the caller.
        unsafe { mem.cast::<RingHeader>().write(header) };
    }
}

/// Pointers to one ring and its trusted geometry (taken from validated
/// parameters, never re-read from shared memory).
#[derive(Clone)]
pub(crate) struct RingRef {
    hdr: *const RingHeader,
    data: *mut u8,
    cap: u32,
    mask: u32,
    unit: u32,
    /// Bytes from the slot of one position to the next: the element size,
    /// 1 for byte records (positions count bytes), or the size of a pair of
    /// stamped slots (see [`crate::ring::duplex`]).
    stride: u32,
    /// Whether the consumer of an element ring prefetches the slot of its
    /// head beside its load of the tail: for elements of at most
    /// [`PREFETCH_MAX_UNIT`] bytes only (see [`prefetch_slot`](Self::prefetch_slot)).
    /// Always false for byte and stamped rings: a byte ring's consumer decides
    /// per record ([`ConsumerCore::prefetch`]).
    prefetch: bool,
    name: crate::ObjectName,
}

// SAFETY: the pointers target shared memory that the owning handle keeps mapped;
// all shared mutable state behind them is atomics or slots handed over by the
// SPSC protocol.
unsafe impl Send for RingRef {}
// SAFETY: as above.
unsafe impl Sync for RingRef {}

impl RingRef {
    /// A view of the ring at `mem`, after checking its `meta` against the
    /// expected geometry.
    ///
    /// # Safety
    ///
    /// `mem` points to a region of at least the memory size of that geometry,
    /// aligned to 128, that stays mapped while the view (or a core made from it)
    /// is used.
    pub(crate) unsafe fn open(
        mem: *mut u8,
        format: u32,
        cap: u32,
        unit: u32,
        name: &crate::ObjectName,
    ) -> Result<RingRef> {
        let hdr = mem.cast::<RingHeader>();
        // SAFETY: in bounds (guaranteed by the caller); `Meta` is plain integers,
        // read once into a private copy that is validated below.
        let meta: Meta = unsafe { std::ptr::read_volatile(&raw const (*hdr).meta.0) };
        let found = (meta.magic, meta.format, meta.capacity, meta.unit);
        if found != (MAGIC, format, cap, unit) {
            return Err(Error::corrupted(
                name,
                format!(
                    "ring header (magic {:#x}, format {}, capacity {}, unit {}) does not match \
                     its parameters (format {format}, capacity {cap}, unit {unit})",
                    meta.magic, meta.format, meta.capacity, meta.unit
                ),
            ));
        }
        debug_assert!(cap.is_power_of_two() && cap as usize <= MAX_CAPACITY);
        Ok(RingRef {
            hdr,
            // SAFETY: the data area follows the header inside the region.
            data: unsafe { mem.add(RingHeader::DATA_OFFSET) },
            cap,
            mask: cap - 1,
            unit,
            stride: if format == FORMAT_ELEMENTS { unit } else { 1 },
            prefetch: format == FORMAT_ELEMENTS && unit <= PREFETCH_MAX_UNIT,
            name: name.clone(),
        })
    }

    /// A view of a stamped ring whose header is at `hdr` and whose slot `i` is
    /// at `data + i * stride`, after checking its `meta` as in [`open`](Self::open).
    ///
    /// # Safety
    ///
    /// `hdr` points to a `RingHeader`, aligned to 128; `data + i * stride` for
    /// every `i < cap` is a `StampedSlot` of an element of `unit` bytes, aligned
    /// for it; all of it stays mapped while the view is used.
    pub(crate) unsafe fn open_stamped(
        hdr: *mut u8,
        data: *mut u8,
        cap: u32,
        unit: u32,
        stride: u32,
        name: &crate::ObjectName,
    ) -> Result<RingRef> {
        // SAFETY: forwarded from the caller.
        let mut ring = unsafe { Self::open(hdr, FORMAT_STAMPED, cap, unit, name)? };
        ring.data = data;
        ring.stride = stride;
        Ok(ring)
    }

    /// The stamped slot of position `pos`.
    ///
    /// # Safety
    ///
    /// The view was made by [`open_stamped`](Self::open_stamped) for elements
    /// of type `T`.
    #[inline]
    unsafe fn stamped<T>(&self, pos: u32) -> &StampedSlot<T> {
        let i = (pos & self.mask) as usize;
        // SAFETY: `i < cap` (masked, and `cap` came from validated parameters),
        // so the slot lies in the region (contract of `open_stamped`).
        unsafe {
            &*self
                .data
                .add(i * self.stride as usize)
                .cast::<StampedSlot<T>>()
        }
    }

    /// The first byte of the slot (element, record header or stamped slot)
    /// of position `pos`. Only the prefetch uses it, and so only on x86_64
    /// outside loom (and in the unit test).
    #[cfg_attr(not(all(target_arch = "x86_64", not(shmprim_loom))), allow(dead_code))]
    #[inline(always)]
    fn slot_start(&self, pos: u32) -> *const u8 {
        let off = (pos & self.mask) as usize * self.stride as usize;
        // The data area holds `cap * stride` bytes in every format: `cap`
        // elements or `cap` bytes of records (checked against the segment size
        // at open), or `cap` pairs of stamped slots (`open_stamped`'s contract).
        // SAFETY: `pos & mask < cap`, so `off` lies in that area.
        unsafe { self.data.add(off) }
    }

    /// Starts bringing the line that holds the slot of position `pos` into
    /// this core's cache, without waiting for it.
    ///
    /// The consumer calls it next to its `Acquire` load of the tail when its
    /// cache says empty. A busy-polling consumer then asks for the slot's line
    /// in the same moment as the tail's, instead of one line after the other
    /// once the tail has moved: the two cache misses of a hand-off overlap.
    /// A busy-polling ping-pong over two `SpscRing<u64>` went from 127–135 ns
    /// to 84–106 ns per round trip (BENCHMARKS.md). A prefetch is
    /// a hint, not a read: it neither faults nor races, whatever the producer
    /// is writing there. Other targets than x86_64 go without.
    ///
    /// Only for small messages ([`ConsumerCore::prefetch`] decides): with
    /// large ones it cost more than it saved. A ping-pong of 200-byte elements,
    /// or of 200-byte messages over a `Pipe`, was 15 to 25 ns slower with it
    /// (64-byte elements: level), probably because
    /// the consumer takes back the first line of a message the producer is
    /// still writing. Stamped rings poll the stamp in the slot instead.
    #[inline(always)]
    fn prefetch_slot(&self, pos: u32) {
        #[cfg(all(target_arch = "x86_64", not(shmprim_loom)))]
        // SAFETY: `_mm_prefetch` needs SSE, part of the x86_64 baseline; a
        // prefetch is not a memory access and never faults.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(self.slot_start(pos).cast::<i8>());
        }
        #[cfg(not(all(target_arch = "x86_64", not(shmprim_loom))))]
        let _ = pos;
    }

    /// The stamp of the slot of position `pos`: the first field of every
    /// [`StampedSlot`], whatever its element.
    ///
    /// # Safety
    ///
    /// The view was made by [`open_stamped`](Self::open_stamped).
    #[inline]
    unsafe fn stamp_at(&self, pos: u32) -> &AtomicU32 {
        let i = (pos & self.mask) as usize;
        // SAFETY: `i < cap`, so the slot lies in the region (contract of
        // `open_stamped`), and a `StampedSlot` is `repr(C)` with its stamp
        // first.
        unsafe { &*self.data.add(i * self.stride as usize).cast::<AtomicU32>() }
    }

    /// The value bytes of the slot of position `pos`, `offset` bytes into the
    /// slot (where a [`StampedSlot`] of the ring's element puts its value).
    ///
    /// # Safety
    ///
    /// The view was made by [`open_stamped`](Self::open_stamped) with a
    /// stride of at least `offset + unit`.
    #[inline]
    unsafe fn stamped_bytes(&self, pos: u32, offset: usize) -> *mut u8 {
        let i = (pos & self.mask) as usize;
        // SAFETY: `i < cap` and `offset + unit <= stride` (caller): inside the slot.
        unsafe { self.data.add(i * self.stride as usize + offset) }
    }

    /// A view of the byte ring at `mem`, checked as in [`open`](Self::open).
    ///
    /// # Safety
    ///
    /// As for `open`.
    pub(crate) unsafe fn open_bytes(
        mem: *mut u8,
        cap: u32,
        max_message: u32,
        name: &crate::ObjectName,
    ) -> Result<RingRef> {
        // SAFETY: forwarded from the caller.
        unsafe { Self::open(mem, FORMAT_BYTES, cap, max_message, name) }
    }

    /// Capacity and unit (element size or largest message).
    pub(crate) fn geometry(&self) -> (usize, usize) {
        (self.cap as usize, self.unit as usize)
    }

    #[inline]
    fn hdr(&self) -> &RingHeader {
        // SAFETY: the region stays mapped while `self` lives (contract of `open`).
        unsafe { &*self.hdr }
    }

    fn corrupted(&self, detail: String) -> Error {
        Error::corrupted(&self.name, detail)
    }

    #[inline]
    fn slots<T>(&self) -> *const UnsafeCell<T> {
        self.data.cast::<UnsafeCell<T>>()
    }

    #[inline]
    fn words(&self) -> *const Word {
        self.data.cast::<Word>()
    }

    /// The claim word of the producer or consumer end.
    fn end(&self, producer: bool) -> &AtomicU64 {
        let ends = &self.hdr().ends.0;
        if producer {
            &ends.producer
        } else {
            &ends.consumer
        }
    }
}

/// Copies `src` into slots `start..start + src.len()`.
///
/// # Safety
/// The slots are in bounds and owned by the producer (free).
#[inline]
unsafe fn write_slots<T: Copy>(slots: *const UnsafeCell<T>, start: usize, src: &[T]) {
    #[cfg(not(shmprim_loom))]
    // SAFETY: `UnsafeCell<T>` has the layout of `T`; in bounds and owned (caller).
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), slots.add(start) as *mut T, src.len())
    };
    #[cfg(shmprim_loom)]
    for (i, v) in src.iter().enumerate() {
        // SAFETY: in bounds and owned (caller).
        unsafe { &*slots.add(start + i) }.with_mut(|p| unsafe { p.write(*v) });
    }
}

/// Copies slots `start..start + dst.len()` into `dst`.
///
/// # Safety
/// The slots are in bounds and published to the consumer.
#[inline]
unsafe fn read_slots<T: Copy>(slots: *const UnsafeCell<T>, start: usize, dst: &mut [T]) {
    #[cfg(not(shmprim_loom))]
    // SAFETY: `UnsafeCell<T>` has the layout of `T`; in bounds and published
    // (caller); `T: Pod`, so any bytes are a valid `T`.
    unsafe {
        std::ptr::copy_nonoverlapping(slots.add(start) as *const T, dst.as_mut_ptr(), dst.len())
    };
    #[cfg(shmprim_loom)]
    for (i, v) in dst.iter_mut().enumerate() {
        // SAFETY: in bounds and published (caller).
        *v = unsafe { &*slots.add(start + i) }.with(|p| unsafe { p.read() });
    }
}

/// Writes the 8-byte word at byte offset `off` (a multiple of 8) of a buffer.
///
/// # Safety
/// In bounds and owned by the producer.
#[inline]
unsafe fn write_word(words: *const Word, off: usize, value: u64) {
    // SAFETY: in bounds and owned (caller).
    unsafe { &*words.add(off / 8) }.with_mut(|p| unsafe { p.write(value) });
}

/// Reads the 8-byte word at byte offset `off` (a multiple of 8), once.
///
/// # Safety
/// In bounds.
#[inline]
unsafe fn read_word(words: *const Word, off: usize) -> u64 {
    // SAFETY: in bounds (caller). Volatile: the value is validated after this
    // read, so the compiler must not read the shared word again.
    unsafe { &*words.add(off / 8) }.with(|p| unsafe { std::ptr::read_volatile(p) })
}

/// Copies `src` to byte offset `off` (a multiple of 8) of a buffer.
///
/// # Safety
/// `off..off + round8(src.len())` is in bounds and owned by the producer.
#[inline]
unsafe fn write_bytes(words: *const Word, off: usize, src: &[u8]) {
    #[cfg(not(shmprim_loom))]
    // SAFETY: in bounds and owned (caller); `src` is private memory.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), (words as *mut u8).add(off), src.len())
    };
    #[cfg(shmprim_loom)]
    for (i, chunk) in src.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        // SAFETY: in bounds and owned (caller).
        unsafe { write_word(words, off + 8 * i, u64::from_ne_bytes(w)) };
    }
}

/// Copies `dst.len()` bytes from byte offset `off` (a multiple of 8).
///
/// # Safety
/// `off..off + round8(dst.len())` is in bounds and published to the consumer.
#[inline]
unsafe fn read_bytes(words: *const Word, off: usize, dst: &mut [u8]) {
    #[cfg(not(shmprim_loom))]
    // SAFETY: in bounds and published (caller); `dst` is private memory.
    unsafe {
        std::ptr::copy_nonoverlapping((words as *const u8).add(off), dst.as_mut_ptr(), dst.len())
    };
    #[cfg(shmprim_loom)]
    for (i, chunk) in dst.chunks_mut(8).enumerate() {
        // SAFETY: in bounds and published (caller).
        let w = unsafe { &*words.add(off / 8 + i) }.with(|p| unsafe { p.read() });
        chunk.copy_from_slice(&w.to_ne_bytes()[..chunk.len()]);
    }
}

/// Sleeps while `word == seen`, for at most one [`LIVENESS_SLICE`] (not under
/// loom, where time does not pass), then tells the caller whether to retry.
/// `Err(Closed)` if the slice ended and `peer_gone` says the peer died;
/// `Err(Timeout)` if `deadline` passed with the word unchanged.
/// `Full` as the cores return it: nameless, so that a failed try costs
/// nothing to make or to drop (a name is a reference count). The handles name
/// it where it becomes the caller's `Error`.
pub(crate) const FULL: Error = Error::Full {
    name: crate::ObjectName::unknown(),
};

/// `Empty` as the cores return it (see [`FULL`]).
pub(crate) const EMPTY: Error = Error::Empty {
    name: crate::ObjectName::unknown(),
};

fn block_on(
    word: &AtomicU32,
    waiters: &AtomicU32,
    seen: u32,
    deadline: Deadline,
    peer_gone: &mut dyn FnMut() -> bool,
    name: &crate::ObjectName,
) -> Result<()> {
    let slice = if cfg!(shmprim_loom) {
        deadline
    } else {
        deadline.min(Deadline::after(LIVENESS_SLICE))
    };
    match wait::wait_while_eq(word, waiters, seen, slice) {
        Ok(()) => Ok(()),
        Err(wait::TimedOut) => {
            if peer_gone() {
                Err(Error::closed(name))
            } else if deadline.has_passed() {
                Err(Error::timeout(name))
            } else {
                Ok(())
            }
        }
    }
}

/// The producer's side of a ring: its own index and its cache of the head, in
/// process-local memory.
pub(crate) struct ProducerCore {
    ring: RingRef,
    /// Own index (published value, without the closed bit).
    tail: u32,
    /// Last head read (without the closed bit).
    head_cache: u32,
    /// Last head word read (with the closed bit): the value to sleep on.
    head_raw: u32,
}

mod producer;

/// The consumer's side of a ring: its own index and its cache of the tail.
pub(crate) struct ConsumerCore {
    ring: RingRef,
    /// Own index (published value, without the closed bit).
    head: u32,
    /// Last tail read (without the closed bit).
    tail_cache: u32,
    /// Last tail word read (with the closed bit): the value to sleep on.
    tail_raw: u32,
    /// Whether [`refresh`](Self::refresh) prefetches the line of the head's
    /// slot ([`RingRef::prefetch_slot`]). An element ring's rule is fixed at
    /// open ([`RingRef::prefetch`]). A byte ring cannot know the size of the
    /// next message before it arrives, so it goes by the last one: after a
    /// record of at most [`PREFETCH_MAX_RECORD`] bytes it prefetches, after a
    /// larger one it does not. A `Pipe` ping-pong of 8-byte messages went from
    /// 184–209 to 171–186 ns per round trip with it, 64-byte messages from
    /// 200–244 to 189–209, and 200-byte messages stayed level.
    prefetch: bool,
}

mod consumer;

/// Why a non-blocking operation of an element ring ([`Producer::try_push`],
/// [`Producer::push_slice`], [`Consumer::try_pop`], [`Consumer::pop_into`]) did
/// not complete.
///
/// It is `Copy` and owns nothing, so dropping a `Result<_, TryError>` costs
/// nothing: a hot loop such as `while tx.try_push(v).is_err() {}` compiles to
/// the bare ring operation. (Dropping a `Result` carrying the crate's [`Error`],
/// which owns strings, calls its drop glue whenever the compiler cannot see the
/// variant, which would cost more than the push itself.) It converts into
/// [`Error`] with `?`, naming no object; the end's `error` method
/// ([`Consumer::error`]) gives the `Error` naming the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TryError {
    /// No free slot ([`Error::Full`]).
    Full,
    /// Nothing queued ([`Error::Empty`]).
    Empty,
    /// The other end was closed ([`Error::Closed`]): for a consumer, once drained.
    Closed,
    /// The indices read from shared memory are inconsistent ([`Error::Corrupted`];
    /// the blocking forms and `len` report the details).
    Corrupted,
}

impl TryError {
    #[cold]
    pub(crate) fn from_error(e: Error) -> TryError {
        match e {
            Error::Full { .. } => TryError::Full,
            Error::Empty { .. } => TryError::Empty,
            Error::Closed { .. } => TryError::Closed,
            _ => TryError::Corrupted,
        }
    }
}

impl From<TryError> for Error {
    fn from(e: TryError) -> Error {
        match e {
            TryError::Full => FULL,
            TryError::Empty => EMPTY,
            TryError::Closed => Error::Closed {
                name: crate::ObjectName::unknown(),
            },
            TryError::Corrupted => {
                Error::corrupted("", "head and tail are further apart than the capacity")
            }
        }
    }
}

impl std::fmt::Display for TryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TryError::Full => "full",
            TryError::Empty => "empty",
            TryError::Closed => "closed",
            TryError::Corrupted => "corrupted ring indices",
        })
    }
}

impl std::error::Error for TryError {}

// ------------------------------------------------------------------ handles

/// What every ring handle shares: the memory and the validated geometry.
struct Shared {
    backing: Backing,
    ring: RingRef,
}

/// Claims the producer or consumer end of `ring` for `backing`'s participant:
/// `InvalidArgument` while a live participant holds it.
pub(crate) fn claim_end(backing: &Backing, ring: &RingRef, producer: bool) -> Result<u64> {
    let word = ring.end(producer);
    let me = backing.my_id();
    for _ in 0..64 {
        // Acquire: pairs with the Release in `release_end`, ordering us after
        // the previous holder of the end.
        let cur = word.load(Ordering::Acquire);
        if cur != UNCLAIMED && backing.is_alive(cur) {
            return Err(Error::invalid_argument(format!(
                "the {} end of ring {:?} is held by a live participant",
                if producer { "producer" } else { "consumer" },
                backing.display_name()
            )));
        }
        // AcqRel: as above, and publishes our claim.
        if word
            .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Ok(me);
        }
    }
    Err(Error::corrupted(
        backing.display_name(),
        "end claim word keeps changing",
    ))
}

/// Gives up an end claimed by [`claim_end`].
pub(crate) fn release_end(ring: &RingRef, producer: bool, me: u64) {
    // Release: pairs with the Acquire of the next claimant.
    let _ =
        ring.end(producer)
            .compare_exchange(me, UNCLAIMED, Ordering::Release, Ordering::Relaxed);
}

/// Whether the end opposite to `producer` was claimed by a participant that
/// has died.
pub(crate) fn peer_died(backing: &Backing, ring: &RingRef, producer: bool) -> bool {
    // Acquire: pairs with the claimant's AcqRel in `claim_end`.
    let owner = ring.end(!producer).load(Ordering::Acquire);
    owner != UNCLAIMED && !backing.is_alive(owner)
}

impl Shared {
    /// After an `Empty` answer: whether the producer is gone (see
    /// [`PeerWatch`]; a close shows in the ring itself).
    fn producer_gone(&self, watch: &mut PeerWatch) -> bool {
        watch.peer_gone(|| peer_died(&self.backing, &self.ring, false))
    }

    /// After a `Full` answer: whether the consumer is gone.
    fn consumer_gone(&self, watch: &mut PeerWatch) -> bool {
        watch.peer_gone(|| peer_died(&self.backing, &self.ring, true))
    }
}

impl Shared {
    /// Claims the producer or consumer end for this handle's participant.
    fn claim(&self, producer: bool) -> Result<u64> {
        claim_end(&self.backing, &self.ring, producer)
    }

    fn release(&self, producer: bool, me: u64) {
        release_end(&self.ring, producer, me);
    }

    /// Claims the producer or consumer end and takes over that side of the
    /// ring with `make` (`ProducerCore::new` or `ConsumerCore::new`); the
    /// claim is given back if `make` fails. Returns the side and the claim.
    fn take_end<C>(
        &self,
        producer: bool,
        make: impl FnOnce(RingRef) -> Result<C>,
    ) -> Result<(C, u64)> {
        let me = self.claim(producer)?;
        match make(self.ring.clone()) {
            Ok(core) => Ok((core, me)),
            Err(e) => {
                self.release(producer, me);
                Err(e)
            }
        }
    }

    /// Whether the other end was claimed by a participant that has died.
    fn peer_gone(&self, producer: bool) -> bool {
        peer_died(&self.backing, &self.ring, producer)
    }

    /// A named ring: create, validate the header against the parameters.
    fn open_segment(seg: Segment, format: u32, cap: u32, unit: u32) -> Result<Arc<Shared>> {
        let needed = match format {
            FORMAT_ELEMENTS => RingHeader::DATA_OFFSET as u64 + u64::from(cap) * u64::from(unit),
            _ => RingHeader::DATA_OFFSET as u64 + u64::from(cap),
        };
        seg.expect_data_size(needed)?;
        // SAFETY: the data area holds `needed` bytes (checked), is page aligned,
        // and `Shared` keeps the segment mapped as long as the view lives.
        let ring = unsafe { RingRef::open(seg.as_ptr(), format, cap, unit, seg.object_name())? };
        Ok(Arc::new(Shared {
            backing: Backing::Segment(seg),
            ring,
        }))
    }

    fn heap(
        size: usize,
        init: impl FnOnce(*mut u8) -> Result<()>,
        format: u32,
        cap: u32,
        unit: u32,
    ) -> Result<Arc<Shared>> {
        let mem = HeapMem::zeroed(size)?;
        init(mem.as_ptr())?;
        // SAFETY: `mem` has `size` bytes, aligned to 128, initialised above, and
        // is owned by the `Shared` that owns the view.
        let ring =
            unsafe { RingRef::open(mem.as_ptr(), format, cap, unit, &crate::error::UNKNOWN)? };
        Ok(Arc::new(Shared {
            backing: Backing::Heap(mem),
            ring,
        }))
    }
}

#[cfg(shmprim_loom)]
impl Drop for Shared {
    fn drop(&mut self) {
        // Loom's atomics and cells must be dropped inside the model.
        if let Backing::Heap(mem) = &self.backing {
            // SAFETY: `init_*` wrote a `RingHeader` there; nothing uses it any more.
            unsafe { std::ptr::drop_in_place(mem.as_ptr().cast::<RingHeader>()) };
        }
    }
}

/// The blocking push of every producer end: runs `attempt` until it answers
/// something other than `Full`, sleeping until the head moves in between
/// (until `deadline`; `Closed` once the consumer's process died), then wakes
/// a sleeping consumer without fail.
fn push_blocking<R>(
    core: &mut ProducerCore,
    shared: &Shared,
    deadline: impl Into<Patience>,
    mut attempt: impl FnMut(&mut ProducerCore) -> Result<R>,
) -> Result<R> {
    // Fixed at the first wait: a push that finds room reads no clock.
    let mut patience = deadline.into();
    loop {
        match attempt(core) {
            Ok(r) => {
                core.wake();
                return Ok(r);
            }
            Err(Error::Full { .. }) => {}
            Err(e) => return Err(e),
        }
        core.wait_for_space(patience.fix(), &mut || shared.peer_gone(true))?;
    }
}

/// The blocking pop of every consumer end: runs `attempt` until it answers
/// something other than `Empty`, sleeping until the tail moves in between
/// (until `deadline`), then wakes a sleeping producer without fail. Once the
/// producer's process died, one last attempt takes what it published; after
/// that the answer is `Closed`.
fn pop_blocking<R>(
    core: &mut ConsumerCore,
    shared: &Shared,
    deadline: impl Into<Patience>,
    mut attempt: impl FnMut(&mut ConsumerCore) -> Result<R>,
) -> Result<R> {
    // Fixed at the first wait: a pop that finds data reads no clock.
    let mut patience = deadline.into();
    loop {
        match attempt(core) {
            Ok(r) => {
                core.wake();
                return Ok(r);
            }
            Err(Error::Empty { .. }) => {}
            Err(e) => return Err(e),
        }
        match core.wait_for_data(patience.fix(), &mut || shared.peer_gone(false)) {
            Ok(()) => {}
            Err(Error::Closed { .. }) => {
                return match attempt(core) {
                    Err(Error::Empty { .. }) => Err(Error::closed(core.name())),
                    r => r,
                };
            }
            Err(e) => return Err(e),
        }
    }
}

fn element_builder<T: Pod>(cap: u32) -> Result<SegmentBuilder> {
    Ok(SegmentBuilder::new(Kind::SpscRing)
        .data_size(RingHeader::memory_size_elements::<T>(cap as usize)? as u64)
        .param(0, u64::from(cap))
        .param(1, std::mem::size_of::<T>() as u64)
        .payload(crate::cell::payload_desc::<T>()))
}

fn byte_builder(cap: usize, max_message: usize) -> Result<SegmentBuilder> {
    Ok(SegmentBuilder::new(Kind::SpscByteRing)
        .data_size(RingHeader::memory_size_bytes(cap, max_message)? as u64)
        .param(0, cap as u64)
        .param(1, max_message as u64))
}

/// Reads and checks the stored geometry of an opened ring segment.
fn stored_geometry(seg: &Segment, what: &str) -> Result<(u32, u32)> {
    let (cap, unit) = (seg.param(0), seg.param(1));
    if cap == 0 || !cap.is_power_of_two() || cap > MAX_CAPACITY as u64 || unit > u64::from(u32::MAX)
    {
        return Err(Error::corrupted(
            seg.display_name(),
            format!("{what} parameters: capacity {cap}, unit {unit}"),
        ));
    }
    Ok((cap as u32, unit as u32))
}

/// A named (or anonymous, or heap) SPSC ring of `T`. Take its two ends with
/// [`producer`](Self::producer) and [`consumer`](Self::consumer), each at most
/// once at a time (see the module doc).
pub struct SpscRing<T: Pod> {
    shared: Arc<Shared>,
    _t: PhantomData<fn() -> T>,
}

mod elements;

/// The producer end of an [`SpscRing`]. Dropping it closes the end.
pub struct Producer<T: Pod> {
    shared: Arc<Shared>,
    core: ProducerCore,
    me: u64,
    _t: PhantomData<fn(T)>,
    watch: PeerWatch,
}

/// The consumer end of an [`SpscRing`]. Dropping it closes the end.
pub struct Consumer<T: Pod> {
    shared: Arc<Shared>,
    core: ConsumerCore,
    me: u64,
    _t: PhantomData<fn() -> T>,
    watch: PeerWatch,
}

/// A named (or anonymous, or heap) SPSC ring of byte messages of at most
/// `max_message` bytes. Take its ends with [`producer`](Self::producer) and
/// [`consumer`](Self::consumer).
///
/// ```
/// use shmprim::ring::spsc::SpscByteRing;
/// let ring = SpscByteRing::new(4096, 100)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// tx.try_send(b"hello")?;
/// tx.try_send(b"")?;
/// assert_eq!(rx.try_recv()?, b"hello");
/// assert_eq!(rx.try_recv()?, b"");
/// # Ok::<(), shmprim::Error>(())
/// ```
#[derive(Clone)]
pub struct SpscByteRing {
    shared: Arc<Shared>,
}

mod bytes;

/// The producer end of an [`SpscByteRing`]. Dropping it closes the end.
pub struct ByteProducer {
    shared: Arc<Shared>,
    core: ProducerCore,
    me: u64,
    watch: PeerWatch,
}

/// The consumer end of an [`SpscByteRing`]. Dropping it closes the end.
pub struct ByteConsumer {
    shared: Arc<Shared>,
    core: ConsumerCore,
    me: u64,
    watch: PeerWatch,
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests;

mod summary;
pub(crate) use summary::{summarize, view_ring};

#[cfg(all(test, not(shmprim_loom)))]
mod tests;
