//! Bounded lock-free single-producer single-consumer rings in shared memory: one
//! of fixed-size elements ([`SpscRing<T>`], `T: Pod`) and one of byte messages of
//! variable length up to a maximum fixed at creation ([`SpscByteRing`]). They
//! have no direct Python counterpart; the [`Pipe`](crate::pipe::Pipe) (Python's
//! `Pipe`) is built from two byte rings. C programs use element rings through
//! `shmprim_spsc_*` (see [`crate::ffi`]): the same objects as an `SpscRing<T>`
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

use super::{Backing, CachePadded, HeapMem, RING_ALIGN, UNCLAIMED};
use crate::error::{Error, Result};
use crate::segment::{Disposition, Kind, Options, Segment, SegmentBuilder, TypeCode, TypeDesc};
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
    let cap = capacity
        .max(2 * record_size(max_message))
        .max(16)
        .next_power_of_two();
    if cap > MAX_CAPACITY {
        return Err(Error::invalid_argument(format!(
            "byte ring capacity {capacity} is larger than {MAX_CAPACITY}"
        )));
    }
    Ok(cap)
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
    name: Arc<str>,
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
        name: &str,
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
            name: name.into(),
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
        name: &str,
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
    /// to 84–106 ns per round trip (BENCHMARKS.md, session 13). A prefetch is
    /// a hint, not a read: it neither faults nor races, whatever the producer
    /// is writing there. Other targets than x86_64 go without.
    ///
    /// Only for small messages ([`ConsumerCore::prefetch`] decides): with
    /// large ones it cost more than it saved. A ping-pong of 200-byte elements,
    /// or of 200-byte messages over a `Pipe`, was 15 to 25 ns slower with it
    /// (64-byte elements: level; BENCHMARKS.md, session 13), probably because
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
        name: &str,
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
fn block_on(
    word: &AtomicU32,
    waiters: &AtomicU32,
    seen: u32,
    deadline: Deadline,
    peer_gone: &mut dyn FnMut() -> bool,
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
                Err(Error::Closed)
            } else if deadline.has_passed() {
                Err(Error::Timeout)
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

impl ProducerCore {
    /// Takes over the producer side: reads and validates both indices and
    /// clears the closed flag a previous producer may have left.
    pub(crate) fn new(ring: RingRef) -> Result<ProducerCore> {
        let hdr = ring.hdr();
        // Acquire: pairs with the Release stores of a previous producer, whose
        // published slots we must not overwrite.
        let tail = hdr.tail.0.load(Ordering::Acquire) & IDX;
        let mut core = ProducerCore {
            tail,
            head_cache: tail,
            head_raw: tail,
            ring,
        };
        match core.refresh() {
            Ok(_) | Err(Error::Closed) => {}
            Err(e) => return Err(e),
        }
        // Release: publishes nothing new; clears the closed flag. Only the
        // producer writes `tail`, and we are now the producer.
        core.ring.hdr().tail.0.store(tail, Ordering::Release);
        Ok(core)
    }

    /// Free slots (bytes) according to the cache.
    #[inline]
    fn free_cached(&self, tail: u32) -> u32 {
        self.ring.cap - (tail.wrapping_sub(self.head_cache) & IDX)
    }

    /// Re-reads the head; returns the free space after `tail`.
    #[cold]
    fn refresh_from(&mut self, tail: u32) -> Result<u32> {
        // Acquire: pairs with the consumer's Release store of `head`, so that its
        // reads of the slots it freed happen before we overwrite them.
        let raw = self.ring.hdr().head.0.load(Ordering::Acquire);
        let head = raw & IDX;
        let used = tail.wrapping_sub(head) & IDX;
        if used > self.ring.cap {
            return Err(self.ring.corrupted(format!(
                "head {head} and tail {tail} are {used} apart, more than the capacity {}",
                self.ring.cap
            )));
        }
        self.head_cache = head;
        self.head_raw = raw;
        if raw & CLOSED != 0 {
            return Err(Error::Closed);
        }
        Ok(self.ring.cap - used)
    }

    pub(crate) fn refresh(&mut self) -> Result<u32> {
        self.refresh_from(self.tail)
    }

    /// Free space after `tail`, refreshing the cache if it shows less than `need`.
    #[inline]
    fn reserve(&mut self, tail: u32, need: u32) -> Result<u32> {
        let free = self.free_cached(tail);
        if free >= need {
            Ok(free)
        } else {
            self.refresh_from(tail)
        }
    }

    #[inline]
    fn publish(&mut self, tail: u32) {
        self.tail = tail & IDX;
        // Release: pairs with the consumer's Acquire load of `tail`; the slots
        // written before this store are visible to it.
        self.ring.hdr().tail.0.store(self.tail, Ordering::Release);
    }

    /// Wakes a sleeping consumer if the waiter count (read without a fence) says
    /// there is one. See the module doc for why this may miss one.
    #[inline]
    pub(crate) fn wake_hint(&self) {
        let hdr = self.ring.hdr();
        if hdr.waiters.0.consumers.load(Ordering::Relaxed) != 0 {
            wait::wake(&hdr.tail.0, &hdr.waiters.0.consumers, u32::MAX);
        }
    }

    /// Wakes a sleeping consumer: never misses one (fence pair of `wait.rs`).
    #[inline]
    pub(crate) fn wake(&self) {
        let hdr = self.ring.hdr();
        wait::wake(&hdr.tail.0, &hdr.waiters.0.consumers, u32::MAX);
    }

    /// Sleeps until the head moves from the value last read (the ring was full).
    pub(crate) fn wait_for_space(
        &self,
        deadline: Deadline,
        peer_gone: &mut dyn FnMut() -> bool,
    ) -> Result<()> {
        let hdr = self.ring.hdr();
        block_on(
            &hdr.head.0,
            &hdr.waiters.0.producers,
            self.head_raw,
            deadline,
            peer_gone,
        )
    }

    /// Marks the producer end closed and wakes the consumer.
    pub(crate) fn close(&self) {
        // Release: the consumer that sees the flag (Acquire) has seen every
        // message published before it.
        self.ring.hdr().tail.0.fetch_or(CLOSED, Ordering::Release);
        self.wake();
    }

    /// Queued slots (bytes), after refreshing the head.
    fn len(&mut self) -> Result<usize> {
        match self.refresh() {
            Ok(free) => Ok((self.ring.cap - free) as usize),
            Err(Error::Closed) => Ok((self.tail.wrapping_sub(self.head_cache) & IDX) as usize),
            Err(e) => Err(e),
        }
    }

    // ---- stamped elements

    /// Pushes `value` into a stamped ring: the value, the tail as for any ring
    /// (so that `len`, sleepers and batches see it move), then the slot's stamp.
    /// The stamp comes last, so a consumer that takes the value by its stamp
    /// never runs ahead of the published tail. `Full` or `Closed` as for
    /// [`Producer::try_push`].
    ///
    /// # Safety
    ///
    /// The ring was opened with [`RingRef::open_stamped`] for elements of `T`.
    #[inline]
    pub(crate) unsafe fn try_push_stamped<T: Pod>(&mut self, value: T) -> Result<()> {
        // SAFETY: a stamped ring of `T` (caller).
        unsafe {
            self.push_stamped_by(|ring, tail| {
                let slot = ring.stamped::<T>(tail);
                // SAFETY: the slot is ours until published (`push_stamped_by`).
                slot.value.with_mut(|p| p.write(value));
            })
        }
    }

    /// [`try_push_stamped`](Self::try_push_stamped) of an element given as
    /// its bytes (`elem.len()` is the ring's unit), which a slot holds
    /// `offset` bytes after its stamp.
    ///
    /// # Safety
    ///
    /// The ring was opened with [`RingRef::open_stamped`] with a stride of at
    /// least `offset + unit`.
    #[inline]
    pub(crate) unsafe fn try_push_stamped_bytes(
        &mut self,
        elem: &[u8],
        offset: usize,
    ) -> Result<()> {
        // A hard check: the copy relies on it.
        assert_eq!(
            elem.len(),
            self.ring.unit as usize,
            "element of another size"
        );
        // SAFETY: as the caller guarantees; `elem` is `unit` bytes, which fit
        // in the slot after `offset`.
        unsafe {
            self.push_stamped_by(|ring, tail| {
                std::ptr::copy_nonoverlapping(
                    elem.as_ptr(),
                    ring.stamped_bytes(tail, offset),
                    elem.len(),
                )
            })
        }
    }

    /// The protocol of a stamped push: `write` fills the slot of `tail` (the
    /// consumer does not read it until the tail or the stamp publishes it),
    /// then the tail is published, then the stamp.
    ///
    /// # Safety
    ///
    /// The ring was opened with [`RingRef::open_stamped`]; `write` writes
    /// only the value of the slot of the position it is given.
    #[inline(always)]
    unsafe fn push_stamped_by(&mut self, write: impl FnOnce(&RingRef, u32)) -> Result<()> {
        let tail = self.tail;
        if self.free_cached(tail) == 0 && self.refresh_from(tail)? == 0 {
            return Err(Error::Full);
        }
        // Fewer than `cap` slots are queued, so the consumer does not read
        // this one until the tail or the stamp below publishes it.
        write(&self.ring, tail);
        self.publish(tail.wrapping_add(1));
        // Release: pairs with the consumer's Acquire load of the stamp in
        // `pop_stamped_by`: the value and the tail stored above are visible
        // to it.
        // SAFETY: a stamped ring (caller).
        unsafe { self.ring.stamp_at(tail) }.store(tail | STAMPED, Ordering::Release);
        Ok(())
    }

    // ---- byte records

    /// Writes one record of `len` bytes after `*pending` (not yet published),
    /// filling the payload with `fill(words, byte_offset)`.
    #[inline]
    fn stage_record(
        &mut self,
        pending: &mut u32,
        len: usize,
        fill: impl FnOnce(*const Word, usize),
    ) -> Result<()> {
        if len > self.ring.unit as usize {
            return Err(Error::invalid_argument(format!(
                "message of {len} bytes is longer than the ring's maximum of {}",
                self.ring.unit
            )));
        }
        let rec = record_size(len) as u32;
        let pos = *pending & self.ring.mask;
        let to_end = self.ring.cap - pos;
        let need = if rec <= to_end { rec } else { to_end + rec };
        if self.reserve(*pending, need)? < need {
            return Err(Error::Full);
        }
        let words = self.ring.words();
        let mut t = *pending;
        let mut pos = pos as usize;
        if rec > to_end {
            // SAFETY: `pos < cap`, and the `need` bytes from `pos` (wrapping) are
            // free: the consumer does not read them until we publish.
            unsafe { write_word(words, pos, PAD) };
            t = t.wrapping_add(to_end);
            pos = 0;
        }
        // SAFETY: the record (`rec <= cap - pos` bytes from `pos`) is free, as above.
        unsafe { write_word(words, pos, len as u64) };
        fill(words, pos + RECORD_HEADER);
        *pending = t.wrapping_add(rec) & IDX;
        Ok(())
    }

    #[inline]
    pub(crate) fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        let mut pending = self.tail;
        self.stage_record(&mut pending, msg.len(), |words, off| {
            // SAFETY: `stage_record` hands us the free payload area of `msg.len()` bytes.
            unsafe { write_bytes(words, off, msg) }
        })?;
        self.publish(pending);
        Ok(())
    }

    fn try_send_many(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        let mut pending = self.tail;
        let mut sent = 0;
        let mut result = Ok(());
        for msg in msgs {
            match self.stage_record(&mut pending, msg.len(), |words, off| {
                // SAFETY: as in `try_send`.
                unsafe { write_bytes(words, off, msg) }
            }) {
                Ok(()) => sent += 1,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if sent > 0 {
            self.publish(pending);
            return Ok(sent);
        }
        match result {
            Err(Error::Full) | Ok(()) => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn try_send_with(&mut self, len: usize, f: impl FnOnce(&mut [u8])) -> Result<()> {
        let mut pending = self.tail;
        self.stage_record(&mut pending, len, |words, off| {
            #[cfg(not(shmprim_loom))]
            {
                // SAFETY: `stage_record` hands us `len` free, in-bounds bytes at
                // `off`; the consumer does not read them before we publish.
                let area =
                    unsafe { std::slice::from_raw_parts_mut((words as *mut u8).add(off), len) };
                f(area);
            }
            #[cfg(shmprim_loom)]
            {
                let mut tmp = vec![0u8; len];
                f(&mut tmp);
                // SAFETY: as above.
                unsafe { write_bytes(words, off, &tmp) };
            }
        })?;
        self.publish(pending);
        Ok(())
    }
}

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
    /// 200–244 to 189–209, and 200-byte messages stayed level (BENCHMARKS.md,
    /// session 14).
    prefetch: bool,
}

impl ConsumerCore {
    /// Takes over the consumer side: reads and validates both indices and
    /// clears the closed flag a previous consumer may have left.
    pub(crate) fn new(ring: RingRef) -> Result<ConsumerCore> {
        // Relaxed: only the consumer writes `head`, and we are now the consumer
        // (the claim's Acquire ordered us after the previous one).
        let head = ring.hdr().head.0.load(Ordering::Relaxed) & IDX;
        let mut core = ConsumerCore {
            head,
            tail_cache: head,
            tail_raw: head,
            prefetch: ring.prefetch,
            ring,
        };
        core.refresh()?;
        // Release: pairs with the producer's Acquire load of `head`.
        core.ring.hdr().head.0.store(head, Ordering::Release);
        Ok(core)
    }

    /// Re-reads the tail; returns the number of queued slots (bytes) after
    /// the head. The line of the head's slot is prefetched beside the tail
    /// where that pays (see [`prefetch`](Self::prefetch)).
    #[cold]
    fn refresh(&mut self) -> Result<u32> {
        // Acquire: pairs with the producer's Release store of `tail`, so the
        // slots it published are visible before we read them.
        let raw = self.ring.hdr().tail.0.load(Ordering::Acquire);
        if self.prefetch {
            self.ring.prefetch_slot(self.head);
        }
        let tail = raw & IDX;
        let avail = tail.wrapping_sub(self.head) & IDX;
        if avail > self.ring.cap {
            return Err(self.tail_corruption());
        }
        self.tail_cache = tail;
        self.tail_raw = raw;
        Ok(avail)
    }

    /// [`refresh`](Self::refresh) building no [`Error`]: `Corrupted` when
    /// the tail is further from the head than the capacity. Only the C
    /// calls' polling path uses it: built on it, the Rust `try_pop` made a
    /// busy-polling ping-pong over two rings slower (about 120 ns against
    /// 93 per round trip, alternated builds), so that path keeps `refresh`.
    #[cold]
    fn refresh_quiet(&mut self) -> Result<u32, TryError> {
        // Acquire: pairs with the producer's Release store of `tail`, so the
        // slots it published are visible before we read them.
        let raw = self.ring.hdr().tail.0.load(Ordering::Acquire);
        if self.prefetch {
            self.ring.prefetch_slot(self.head);
        }
        let tail = raw & IDX;
        let avail = tail.wrapping_sub(self.head) & IDX;
        if avail > self.ring.cap {
            return Err(TryError::Corrupted);
        }
        self.tail_cache = tail;
        self.tail_raw = raw;
        Ok(avail)
    }

    /// What a `Corrupted` answer of [`refresh_quiet`](Self::refresh_quiet)
    /// was about (re-reads the tail).
    #[cold]
    fn tail_corruption(&self) -> Error {
        let tail = self.ring.hdr().tail.0.load(Ordering::Relaxed) & IDX;
        let avail = tail.wrapping_sub(self.head) & IDX;
        self.ring.corrupted(format!(
            "head {} and tail {tail} are {avail} apart, more than the capacity {}",
            self.head, self.ring.cap
        ))
    }

    #[inline]
    fn avail_cached(&self, head: u32) -> u32 {
        self.tail_cache.wrapping_sub(head) & IDX
    }

    /// Queued slots (bytes) after `head`, refreshing if the cache shows fewer
    /// than `need`; `Empty` (or `Closed` once the producer closed) if none.
    #[inline]
    fn available(&mut self, head: u32, need: u32) -> Result<u32> {
        let avail = self.avail_cached(head);
        if avail >= need {
            return Ok(avail);
        }
        self.refresh()?;
        let avail = self.avail_cached(head);
        if avail == 0 {
            return Err(if self.tail_raw & CLOSED != 0 {
                Error::Closed
            } else {
                Error::Empty
            });
        }
        Ok(avail)
    }

    /// [`available`](Self::available) building no [`Error`], for the C
    /// calls' polling path (an empty ring is its most frequent answer; see
    /// `refresh_quiet` for why the Rust `try_pop` does not use it).
    #[inline]
    pub(crate) fn available_quiet(&mut self, head: u32, need: u32) -> Result<u32, TryError> {
        let avail = self.avail_cached(head);
        if avail >= need {
            return Ok(avail);
        }
        self.refresh_quiet()?;
        let avail = self.avail_cached(head);
        if avail == 0 {
            return Err(if self.tail_raw & CLOSED != 0 {
                TryError::Closed
            } else {
                TryError::Empty
            });
        }
        Ok(avail)
    }

    #[inline]
    fn publish(&mut self, head: u32) {
        self.head = head & IDX;
        // Release: pairs with the producer's Acquire load of `head`: our reads
        // of the freed slots happen before it overwrites them.
        self.ring.hdr().head.0.store(self.head, Ordering::Release);
    }

    #[inline]
    pub(crate) fn wake_hint(&self) {
        let hdr = self.ring.hdr();
        if hdr.waiters.0.producers.load(Ordering::Relaxed) != 0 {
            wait::wake(&hdr.head.0, &hdr.waiters.0.producers, u32::MAX);
        }
    }

    /// Wakes a sleeping producer: never misses one (fence pair of `wait.rs`).
    #[inline]
    pub(crate) fn wake(&self) {
        let hdr = self.ring.hdr();
        wait::wake(&hdr.head.0, &hdr.waiters.0.producers, u32::MAX);
    }

    /// Sleeps until the tail moves from the value last read (the ring was empty).
    pub(crate) fn wait_for_data(
        &self,
        deadline: Deadline,
        peer_gone: &mut dyn FnMut() -> bool,
    ) -> Result<()> {
        let hdr = self.ring.hdr();
        block_on(
            &hdr.tail.0,
            &hdr.waiters.0.consumers,
            self.tail_raw,
            deadline,
            peer_gone,
        )
    }

    /// Marks the consumer end closed and wakes the producer.
    pub(crate) fn close(&self) {
        // Release: orders our last reads of the slots before the flag.
        self.ring.hdr().head.0.fetch_or(CLOSED, Ordering::Release);
        self.wake();
    }

    pub(crate) fn len(&mut self) -> Result<usize> {
        Ok(self.refresh()? as usize)
    }

    // ---- stamped elements

    /// Pops the oldest element of a stamped ring. When the cached tail shows
    /// nothing, the slot's stamp says whether its value is published; if it is
    /// not, `by_stamp` answers `Empty` from the stamp alone (the slot's line is
    /// the one the producer writes next, so polling it costs no other line),
    /// and otherwise the tail is read as in [`Consumer::try_pop`], which also
    /// sees `Closed` and a corrupted tail.
    ///
    /// # Safety
    ///
    /// The ring was opened with [`RingRef::open_stamped`] for elements of `T`.
    #[inline]
    pub(crate) unsafe fn try_pop_stamped<T: Pod>(&mut self, by_stamp: bool) -> Result<T> {
        // SAFETY: a stamped ring of `T` (caller).
        unsafe {
            self.pop_stamped_by(by_stamp, |ring, head| {
                // SAFETY: the slot is published and stays ours until the head
                // moves (`pop_stamped_by`). `T: Pod`, so any bytes are a valid
                // `T`.
                ring.stamped::<T>(head).value.with(|p| p.read())
            })
        }
    }

    /// [`try_pop_stamped`](Self::try_pop_stamped) into `dst` (`dst.len()` is
    /// the ring's unit), from `offset` bytes after each slot's stamp.
    ///
    /// # Safety
    ///
    /// As for [`ProducerCore::try_push_stamped_bytes`].
    #[inline]
    pub(crate) unsafe fn try_pop_stamped_bytes(
        &mut self,
        dst: &mut [u8],
        offset: usize,
        by_stamp: bool,
    ) -> Result<()> {
        // A hard check: the copy relies on it.
        assert_eq!(dst.len(), self.ring.unit as usize, "buffer of another size");
        // SAFETY: as the caller guarantees; `dst` is `unit` bytes, which the
        // slot holds after `offset`.
        unsafe {
            self.pop_stamped_by(by_stamp, |ring, head| {
                std::ptr::copy_nonoverlapping(
                    ring.stamped_bytes(head, offset),
                    dst.as_mut_ptr(),
                    dst.len(),
                )
            })
        }
    }

    /// The protocol of a stamped pop (see [`try_pop_stamped`](Self::try_pop_stamped)):
    /// once the slot of `head` is known to be published, `read` copies its
    /// value out, then the head moves.
    ///
    /// # Safety
    ///
    /// The ring was opened with [`RingRef::open_stamped`]; `read` reads only
    /// the value of the slot of the position it is given.
    #[inline(always)]
    unsafe fn pop_stamped_by<R>(
        &mut self,
        by_stamp: bool,
        read: impl FnOnce(&RingRef, u32) -> R,
    ) -> Result<R> {
        let head = self.head;
        if self.avail_cached(head) == 0 {
            // SAFETY: a stamped ring (caller).
            let stamp = unsafe { self.ring.stamp_at(head) }
                // Acquire: pairs with the producer's Release store of the stamp
                // in `push_stamped_by`, so its value is visible before we read it.
                .load(Ordering::Acquire);
            if stamp == head | STAMPED {
                // The tail was published before the stamp, so it is at least
                // one past `head`; keeps `avail_cached` from wrapping once
                // `head` moves.
                self.tail_cache = head.wrapping_add(1) & IDX;
            } else if by_stamp {
                return Err(Error::Empty);
            } else {
                self.available(head, 1)?;
            }
        }
        // The slot is published (by its stamp or by the tail read with
        // Acquire), and the producer does not reuse it before we move the head.
        let value = read(&self.ring, head);
        self.publish(head.wrapping_add(1));
        Ok(value)
    }

    // ---- byte records

    /// Finds the next record after `*pending` (skipping a pad, which advances
    /// `*pending`): returns the payload's byte offset, its length and the
    /// record size. Validates every header against the capacity, the maximum
    /// message size and the published tail.
    ///
    /// The common case, a published message record at `*pending`, is decided
    /// inline; padding, and every answer that needs an error built, go to
    /// [`peek_record_slow`](Self::peek_record_slow), which reads the header
    /// again and checks it the same way. Out of line, the whole function
    /// returned its 40-byte `Result` through memory on every message: one
    /// thread's `try_send` + `try_recv_into` of 8 bytes took 18.1 ns with it
    /// so, against 16.9 ns now (scratch `pp7`, session 13).
    #[inline]
    fn peek_record(&mut self, pending: &mut u32) -> Result<(usize, usize, u32)> {
        let avail = self.available(*pending, RECORD_HEADER as u32)?;
        if avail >= RECORD_HEADER as u32 {
            let pos = *pending & self.ring.mask;
            // SAFETY: `pos` is a multiple of 8 below the capacity, so in
            // bounds; `avail >= 8` says the producer published this header.
            let header = unsafe { read_word(self.ring.words(), pos as usize) };
            // A pad (`u64::MAX`) is larger than any maximum message.
            if header <= u64::from(self.ring.unit) {
                let len = header as usize;
                let rec = record_size(len) as u32;
                if rec <= self.ring.cap - pos && rec <= avail {
                    self.prefetch = rec <= PREFETCH_MAX_RECORD;
                    return Ok((pos as usize + RECORD_HEADER, len, rec));
                }
            }
        }
        self.peek_record_slow(pending)
    }

    /// [`peek_record`](Self::peek_record) for padding and for every answer
    /// that is an error.
    #[cold]
    #[inline(never)]
    fn peek_record_slow(&mut self, pending: &mut u32) -> Result<(usize, usize, u32)> {
        let words = self.ring.words();
        for _ in 0..2 {
            let avail = self.available(*pending, RECORD_HEADER as u32)?;
            if avail < RECORD_HEADER as u32 {
                return Err(self
                    .ring
                    .corrupted(format!("{avail} bytes queued, less than a record header")));
            }
            let pos = *pending & self.ring.mask;
            let to_end = self.ring.cap - pos;
            // SAFETY: `pos` is a multiple of 8 below the capacity, so in bounds;
            // `avail >= 8` says the producer published this header.
            let header = unsafe { read_word(words, pos as usize) };
            if header == PAD {
                if pos == 0 || to_end > avail {
                    return Err(self.ring.corrupted(format!(
                        "padding at offset {pos} covers {to_end} bytes, {avail} queued"
                    )));
                }
                *pending = pending.wrapping_add(to_end) & IDX;
                continue;
            }
            if header > u64::from(self.ring.unit) {
                return Err(self.ring.corrupted(format!(
                    "record length {header} is larger than the maximum of {}",
                    self.ring.unit
                )));
            }
            let len = header as usize;
            let rec = record_size(len) as u32;
            if rec > to_end || rec > avail {
                return Err(self.ring.corrupted(format!(
                    "record of {rec} bytes at offset {pos} runs past the buffer end or the \
                     {avail} queued bytes"
                )));
            }
            self.prefetch = rec <= PREFETCH_MAX_RECORD;
            return Ok((pos as usize + RECORD_HEADER, len, rec));
        }
        Err(self
            .ring
            .corrupted("two consecutive padding records".to_owned()))
    }

    /// The length of the next message, without taking it.
    pub(crate) fn next_len(&mut self) -> Result<usize> {
        let mut pending = self.head;
        self.peek_record(&mut pending).map(|(_, len, _)| len)
    }

    /// Takes the next message into `buf`; leaves it queued if `buf` is too small.
    #[inline]
    pub(crate) fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut pending = self.head;
        let (off, len, rec) = self.peek_record(&mut pending)?;
        if len > buf.len() {
            return Err(Error::BufferTooSmall {
                needed: len,
                available: buf.len(),
            });
        }
        // SAFETY: `peek_record` checked that the payload lies in bounds and in
        // the published part of the buffer.
        unsafe { read_bytes(self.ring.words(), off, &mut buf[..len]) };
        self.publish(pending.wrapping_add(rec));
        Ok(len)
    }

    /// Takes the next message into a new vector.
    pub(crate) fn try_recv(&mut self) -> Result<Vec<u8>> {
        let mut pending = self.head;
        let (off, len, rec) = self.peek_record(&mut pending)?;
        let mut out = vec![0u8; len];
        // SAFETY: as in `try_recv_into`.
        unsafe { read_bytes(self.ring.words(), off, &mut out) };
        self.publish(pending.wrapping_add(rec));
        Ok(out)
    }

    fn try_recv_many(&mut self, out: &mut Vec<Vec<u8>>, max: usize) -> Result<usize> {
        let mut pending = self.head;
        let mut taken = 0;
        let mut result = Ok(());
        while taken < max {
            let mut next = pending;
            match self.peek_record(&mut next) {
                Ok((off, len, rec)) => {
                    let mut msg = vec![0u8; len];
                    // SAFETY: as in `try_recv_into`.
                    unsafe { read_bytes(self.ring.words(), off, &mut msg) };
                    out.push(msg);
                    pending = next.wrapping_add(rec) & IDX;
                    taken += 1;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if taken > 0 {
            self.publish(pending);
            return Ok(taken);
        }
        match result {
            Ok(()) => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Why a non-blocking operation of an element ring ([`Producer::try_push`],
/// [`Producer::push_slice`], [`Consumer::try_pop`], [`Consumer::pop_into`]) did
/// not complete.
///
/// It is `Copy` and owns nothing, so dropping a `Result<_, TryError>` costs
/// nothing: a hot loop such as `while tx.try_push(v).is_err() {}` compiles to
/// the bare ring operation. (Dropping a `Result` carrying the crate's [`Error`],
/// which owns strings, calls its drop glue whenever the compiler cannot see the
/// variant, which would cost more than the push itself.) It converts into
/// [`Error`] with `?`.
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
            Error::Full => TryError::Full,
            Error::Empty => TryError::Empty,
            Error::Closed => TryError::Closed,
            _ => TryError::Corrupted,
        }
    }
}

impl From<TryError> for Error {
    fn from(e: TryError) -> Error {
        match e {
            TryError::Full => Error::Full,
            TryError::Empty => Error::Empty,
            TryError::Closed => Error::Closed,
            TryError::Corrupted => Error::corrupted(
                "<spsc ring>",
                "head and tail are further apart than the capacity",
            ),
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
        let ring = unsafe { RingRef::open(seg.as_ptr(), format, cap, unit, seg.display_name())? };
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
        let ring = unsafe { RingRef::open(mem.as_ptr(), format, cap, unit, "<heap>")? };
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
            Err(Error::Full) => {}
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
            Err(Error::Empty) => {}
            Err(e) => return Err(e),
        }
        match core.wait_for_data(patience.fix(), &mut || shared.peer_gone(false)) {
            Ok(()) => {}
            Err(Error::Closed) => {
                return match attempt(core) {
                    Err(Error::Empty) => Err(Error::Closed),
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
        .payload(TypeDesc::of::<T>(TypeCode::Struct)))
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

impl<T: Pod> std::fmt::Debug for SpscRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpscRing")
            .field("name", &self.shared.backing.display_name())
            .field("capacity", &self.shared.ring.cap)
            .finish()
    }
}

impl<T: Pod> SpscRing<T> {
    /// Creates a named ring of `capacity` elements (rounded up to a power of
    /// two, at most [`MAX_CAPACITY`]).
    pub fn create(name: &str, capacity: usize) -> Result<SpscRing<T>> {
        Self::create_with_options(name, capacity, &Options::default())
    }

    /// [`create`](Self::create) with handle options.
    pub fn create_with_options(name: &str, capacity: usize, opts: &Options) -> Result<SpscRing<T>> {
        let cap = element_capacity(capacity)?;
        let seg = element_builder::<T>(cap)?
            .options(opts)
            .create_with(name, |ptr, _| {
                // SAFETY: the data area is `memory_size_elements` bytes, page aligned, ours.
                unsafe { RingHeader::init_elements::<T>(ptr.as_ptr(), cap as usize) }
            })?;
        Self::from_segment(seg)
    }

    /// Opens a named ring of `T`.
    pub fn open(name: &str) -> Result<SpscRing<T>> {
        check_element_type::<T>()?;
        Self::from_segment(element_builder::<T>(1)?.open(name)?)
    }

    /// Opens the named ring, or creates it with `capacity` elements.
    pub fn open_or_create(name: &str, capacity: usize) -> Result<SpscRing<T>> {
        let cap = element_capacity(capacity)?;
        let (seg, _) = element_builder::<T>(cap)?.open_or_create_with(name, |ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { RingHeader::init_elements::<T>(ptr.as_ptr(), cap as usize) }
        })?;
        seg.expect_param(0, u64::from(cap), "capacity")?;
        Self::from_segment(seg)
    }

    /// An anonymous ring (`memfd`), shared with children forked afterwards.
    pub fn anonymous(capacity: usize) -> Result<SpscRing<T>> {
        let cap = element_capacity(capacity)?;
        let seg = element_builder::<T>(cap)?.anonymous_with(|ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { RingHeader::init_elements::<T>(ptr.as_ptr(), cap as usize) }
        })?;
        Self::from_segment(seg)
    }

    /// A ring on the heap of this process (threads only).
    pub fn new(capacity: usize) -> Result<SpscRing<T>> {
        let cap = element_capacity(capacity)?;
        let size = RingHeader::memory_size_elements::<T>(cap as usize)?;
        let shared = Shared::heap(
            size,
            // SAFETY: `mem` is `size` zeroed bytes aligned to 128, ours.
            |mem| unsafe { RingHeader::init_elements::<T>(mem, cap as usize) },
            FORMAT_ELEMENTS,
            cap,
            std::mem::size_of::<T>() as u32,
        )?;
        Ok(SpscRing {
            shared,
            _t: PhantomData,
        })
    }

    fn from_segment(seg: Segment) -> Result<SpscRing<T>> {
        let (cap, unit) = stored_geometry(&seg, "ring")?;
        seg.expect_param(1, std::mem::size_of::<T>() as u64, "element size")?;
        Ok(SpscRing {
            shared: Shared::open_segment(seg, FORMAT_ELEMENTS, cap, unit)?,
            _t: PhantomData,
        })
    }

    /// Removes the name.
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink(name)
    }

    /// The segment (`None` for a heap ring).
    pub fn segment(&self) -> Option<&Segment> {
        self.shared.backing.segment()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.ring.cap as usize
    }

    /// Claims the producer end. Fails with `InvalidArgument` while a live
    /// participant holds it.
    pub fn producer(&self) -> Result<Producer<T>> {
        let (core, me) = self.shared.take_end(true, ProducerCore::new)?;
        Ok(Producer {
            shared: self.shared.clone(),
            core,
            me,
            _t: PhantomData,
        })
    }

    /// Claims the consumer end. Fails with `InvalidArgument` while a live
    /// participant holds it.
    pub fn consumer(&self) -> Result<Consumer<T>> {
        let (core, me) = self.shared.take_end(false, ConsumerCore::new)?;
        Ok(Consumer {
            shared: self.shared.clone(),
            core,
            me,
            _t: PhantomData,
        })
    }
}

/// The producer end of an [`SpscRing`]. Dropping it closes the end.
pub struct Producer<T: Pod> {
    shared: Arc<Shared>,
    core: ProducerCore,
    me: u64,
    _t: PhantomData<fn(T)>,
}

impl<T: Pod> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("tail", &self.core.tail)
            .finish()
    }
}

impl<T: Pod> Producer<T> {
    /// Pushes `value` if there is room: `Full` if not, `Closed` if the
    /// consumer end was closed (seen when the ring looks full).
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), TryError> {
        match Self::push_quiet(&mut self.core, value) {
            Ok(()) => {
                self.core.wake_hint();
                Ok(())
            }
            Err(e) => Err(TryError::from_error(e)),
        }
    }

    #[inline]
    fn push_quiet(c: &mut ProducerCore, value: T) -> Result<()> {
        let tail = c.tail;
        if c.free_cached(tail) == 0 && c.refresh_from(tail)? == 0 {
            return Err(Error::Full);
        }
        let i = (tail & c.ring.mask) as usize;
        // SAFETY: `i < cap` (masked); the slot is free (fewer than `cap` queued),
        // so the consumer does not read it until we publish.
        unsafe { write_slots(c.ring.slots::<T>(), i, std::slice::from_ref(&value)) };
        c.publish(tail.wrapping_add(1));
        Ok(())
    }

    /// Pushes as many of `values` as fit, in order, publishing once; returns how
    /// many (0 when full).
    #[inline]
    pub fn push_slice(&mut self, values: &[T]) -> Result<usize, TryError> {
        let c = &mut self.core;
        let tail = c.tail;
        let want = values.len().min(c.ring.cap as usize) as u32;
        let free = c.reserve(tail, want).map_err(TryError::from_error)?;
        let n = free.min(want) as usize;
        if n == 0 {
            return Ok(0);
        }
        let start = (tail & c.ring.mask) as usize;
        let first = n.min(c.ring.cap as usize - start);
        // SAFETY: `start + first <= cap` and `n - first <= start`: all in bounds;
        // the `n <= free` slots after the tail are free.
        unsafe {
            write_slots(c.ring.slots::<T>(), start, &values[..first]);
            write_slots(c.ring.slots::<T>(), 0, &values[first..n]);
        }
        c.publish(tail.wrapping_add(n as u32));
        c.wake_hint();
        Ok(n)
    }

    /// Pushes `value`, waiting for room as long as needed.
    pub fn push(&mut self, value: T) -> Result<()> {
        self.push_deadline(value, Deadline::never())
    }

    /// Pushes `value`, waiting at most `timeout` for room (`Timeout`).
    pub fn push_timeout(&mut self, value: T, timeout: Duration) -> Result<()> {
        push_blocking(
            &mut self.core,
            &self.shared,
            Patience::Within(timeout),
            |c| Self::push_quiet(c, value),
        )
    }

    /// Pushes `value`, waiting until `deadline` for room; wakes a sleeping
    /// consumer without fail. `Closed` if the consumer end is closed or its
    /// process died.
    pub fn push_deadline(&mut self, value: T, deadline: Deadline) -> Result<()> {
        push_blocking(&mut self.core, &self.shared, deadline, |c| {
            Self::push_quiet(c, value)
        })
    }

    /// Number of queued elements (reads the head).
    pub fn len(&mut self) -> Result<usize> {
        self.core.len()
    }

    /// Whether the ring is empty (reads the head).
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.core.ring.cap as usize
    }
}

impl<T: Pod> Drop for Producer<T> {
    fn drop(&mut self) {
        self.core.close();
        self.shared.release(true, self.me);
    }
}

/// The consumer end of an [`SpscRing`]. Dropping it closes the end.
pub struct Consumer<T: Pod> {
    shared: Arc<Shared>,
    core: ConsumerCore,
    me: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("head", &self.core.head)
            .finish()
    }
}

impl<T: Pod> Consumer<T> {
    /// Pops the oldest element: `Empty` if there is none, `Closed` if there is
    /// none and the producer end was closed.
    #[inline]
    pub fn try_pop(&mut self) -> Result<T, TryError> {
        match Self::pop_quiet(&mut self.core) {
            Ok(v) => {
                self.core.wake_hint();
                Ok(v)
            }
            Err(e) => Err(TryError::from_error(e)),
        }
    }

    #[inline]
    fn pop_quiet(c: &mut ConsumerCore) -> Result<T> {
        let head = c.head;
        c.available(head, 1)?;
        let mut v = T::zeroed();
        // SAFETY: `head & mask < cap`; at least one slot is published after head.
        unsafe {
            read_slots(
                c.ring.slots::<T>(),
                (head & c.ring.mask) as usize,
                std::slice::from_mut(&mut v),
            )
        };
        c.publish(head.wrapping_add(1));
        Ok(v)
    }

    /// Pops up to `out.len()` elements into `out`, publishing once; returns how
    /// many (0 when empty, `Closed` when empty and the producer closed).
    #[inline]
    pub fn pop_into(&mut self, out: &mut [T]) -> Result<usize, TryError> {
        if out.is_empty() {
            return Ok(0);
        }
        let c = &mut self.core;
        let head = c.head;
        let want = out.len().min(c.ring.cap as usize) as u32;
        let avail = match c.available(head, want) {
            Ok(n) => n,
            Err(Error::Empty) => return Ok(0),
            Err(e) => return Err(TryError::from_error(e)),
        };
        let n = avail.min(want) as usize;
        let start = (head & c.ring.mask) as usize;
        let first = n.min(c.ring.cap as usize - start);
        // SAFETY: in bounds as in `push_slice`; the `n <= avail` slots after the
        // head are published.
        unsafe {
            read_slots(c.ring.slots::<T>(), start, &mut out[..first]);
            read_slots(c.ring.slots::<T>(), 0, &mut out[first..n]);
        }
        c.publish(head.wrapping_add(n as u32));
        c.wake_hint();
        Ok(n)
    }

    /// Pops an element, waiting as long as needed.
    pub fn pop(&mut self) -> Result<T> {
        self.pop_deadline(Deadline::never())
    }

    /// Pops an element, waiting at most `timeout` (`Timeout`).
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<T> {
        pop_blocking(
            &mut self.core,
            &self.shared,
            Patience::Within(timeout),
            Self::pop_quiet,
        )
    }

    /// Pops an element, waiting until `deadline`; wakes a sleeping producer
    /// without fail. `Closed` once drained if the producer end is closed or its
    /// process died.
    pub fn pop_deadline(&mut self, deadline: Deadline) -> Result<T> {
        pop_blocking(&mut self.core, &self.shared, deadline, Self::pop_quiet)
    }

    /// Number of queued elements (reads the tail).
    pub fn len(&mut self) -> Result<usize> {
        self.core.len()
    }

    /// Whether the ring is empty (reads the tail).
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.core.ring.cap as usize
    }
}

impl<T: Pod> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.core.close();
        self.shared.release(false, self.me);
    }
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

impl std::fmt::Debug for SpscByteRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpscByteRing")
            .field("name", &self.shared.backing.display_name())
            .field("capacity", &self.shared.ring.cap)
            .field("max_message", &self.shared.ring.unit)
            .finish()
    }
}

impl SpscByteRing {
    /// Creates a named byte ring of at least `capacity` bytes for messages of at
    /// most `max_message` bytes (see [`byte_capacity`] for the rounding).
    pub fn create(name: &str, capacity: usize, max_message: usize) -> Result<SpscByteRing> {
        Self::create_with_options(name, capacity, max_message, &Options::default())
    }

    /// [`create`](Self::create) with handle options.
    pub fn create_with_options(
        name: &str,
        capacity: usize,
        max_message: usize,
        opts: &Options,
    ) -> Result<SpscByteRing> {
        let cap = byte_capacity(capacity, max_message)?;
        let seg = byte_builder(cap, max_message)?
            .options(opts)
            .create_with(name, |ptr, _| {
                // SAFETY: the data area is `memory_size_bytes` bytes, page aligned, ours.
                unsafe { RingHeader::init_bytes(ptr.as_ptr(), cap, max_message) }
            })?;
        Self::from_segment(seg)
    }

    /// Opens a named byte ring.
    pub fn open(name: &str) -> Result<SpscByteRing> {
        Self::from_segment(SegmentBuilder::new(Kind::SpscByteRing).open(name)?)
    }

    /// Opens the named byte ring, or creates it; says which it did.
    pub fn open_or_create(
        name: &str,
        capacity: usize,
        max_message: usize,
    ) -> Result<(SpscByteRing, Disposition)> {
        let cap = byte_capacity(capacity, max_message)?;
        let (seg, how) = byte_builder(cap, max_message)?.open_or_create_with(name, |ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { RingHeader::init_bytes(ptr.as_ptr(), cap, max_message) }
        })?;
        seg.expect_param(0, cap as u64, "capacity")?;
        seg.expect_param(1, max_message as u64, "max_message")?;
        Ok((Self::from_segment(seg)?, how))
    }

    /// An anonymous byte ring (`memfd`), shared with children forked afterwards.
    pub fn anonymous(capacity: usize, max_message: usize) -> Result<SpscByteRing> {
        let cap = byte_capacity(capacity, max_message)?;
        let seg = byte_builder(cap, max_message)?.anonymous_with(|ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { RingHeader::init_bytes(ptr.as_ptr(), cap, max_message) }
        })?;
        Self::from_segment(seg)
    }

    /// A byte ring on the heap of this process (threads only).
    pub fn new(capacity: usize, max_message: usize) -> Result<SpscByteRing> {
        let cap = byte_capacity(capacity, max_message)?;
        let shared = Shared::heap(
            RingHeader::memory_size_bytes(cap, max_message)?,
            // SAFETY: the memory is zeroed, aligned to 128 and large enough.
            |mem| unsafe { RingHeader::init_bytes(mem, cap, max_message) },
            FORMAT_BYTES,
            cap as u32,
            max_message as u32,
        )?;
        Ok(SpscByteRing { shared })
    }

    fn from_segment(seg: Segment) -> Result<SpscByteRing> {
        let (cap, unit) = stored_geometry(&seg, "byte ring")?;
        if byte_capacity(cap as usize, unit as usize).ok() != Some(cap as usize) {
            return Err(Error::corrupted(
                seg.display_name(),
                format!("byte ring capacity {cap} is too small for messages of {unit} bytes"),
            ));
        }
        Ok(SpscByteRing {
            shared: Shared::open_segment(seg, FORMAT_BYTES, cap, unit)?,
        })
    }

    /// Removes the name.
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink(name)
    }

    /// The segment (`None` for a heap ring).
    pub fn segment(&self) -> Option<&Segment> {
        self.shared.backing.segment()
    }

    /// Size of the buffer, in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.ring.cap as usize
    }

    /// Largest message, in bytes.
    pub fn max_message(&self) -> usize {
        self.shared.ring.unit as usize
    }

    /// Claims the producer end (`InvalidArgument` while a live participant holds it).
    pub fn producer(&self) -> Result<ByteProducer> {
        let (core, me) = self.shared.take_end(true, ProducerCore::new)?;
        Ok(ByteProducer {
            shared: self.shared.clone(),
            core,
            me,
        })
    }

    /// Claims the consumer end (`InvalidArgument` while a live participant holds it).
    pub fn consumer(&self) -> Result<ByteConsumer> {
        let (core, me) = self.shared.take_end(false, ConsumerCore::new)?;
        Ok(ByteConsumer {
            shared: self.shared.clone(),
            core,
            me,
        })
    }
}

/// The producer end of an [`SpscByteRing`]. Dropping it closes the end.
pub struct ByteProducer {
    shared: Arc<Shared>,
    core: ProducerCore,
    me: u64,
}

impl std::fmt::Debug for ByteProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteProducer")
            .field("tail", &self.core.tail)
            .finish()
    }
}

impl ByteProducer {
    /// Sends `msg` if it fits now: `Full` if not, `InvalidArgument` if it is
    /// longer than the maximum, `Closed` if the consumer end is closed.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.core.try_send(msg)?;
        self.core.wake_hint();
        Ok(())
    }

    /// Sends as many of `msgs` as fit, in order, publishing once; returns how
    /// many (0 when the first does not fit).
    pub fn try_send_many(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        let n = self.core.try_send_many(msgs)?;
        self.core.wake_hint();
        Ok(n)
    }

    /// Sends a message of `len` bytes written in place by `fill` (which gets
    /// exactly `len` bytes of the ring's buffer, with unspecified contents).
    pub fn try_send_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<()> {
        self.core.try_send_with(len, fill)?;
        self.core.wake_hint();
        Ok(())
    }

    /// Sends `msg`, waiting for room as long as needed.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_deadline(msg, Deadline::never())
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        push_blocking(
            &mut self.core,
            &self.shared,
            Patience::Within(timeout),
            |c| c.try_send(msg),
        )
    }

    /// Sends `msg`, waiting until `deadline` for room; wakes a sleeping consumer
    /// without fail.
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        push_blocking(&mut self.core, &self.shared, deadline, |c| c.try_send(msg))
    }

    /// Queued bytes, framing included (reads the head).
    pub fn len(&mut self) -> Result<usize> {
        self.core.len()
    }

    /// Whether nothing is queued (reads the head).
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl Drop for ByteProducer {
    fn drop(&mut self) {
        self.core.close();
        self.shared.release(true, self.me);
    }
}

/// The consumer end of an [`SpscByteRing`]. Dropping it closes the end.
pub struct ByteConsumer {
    shared: Arc<Shared>,
    core: ConsumerCore,
    me: u64,
}

impl std::fmt::Debug for ByteConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteConsumer")
            .field("head", &self.core.head)
            .finish()
    }
}

impl ByteConsumer {
    /// Takes the next message: `Empty` if none, `Closed` if none and the
    /// producer end was closed.
    pub fn try_recv(&mut self) -> Result<Vec<u8>> {
        let msg = self.core.try_recv()?;
        self.core.wake_hint();
        Ok(msg)
    }

    /// Takes the next message into `buf` and returns its length. If `buf` is
    /// too small the message stays queued and the error is `BufferTooSmall` (with the size needed);
    /// [`next_len`](Self::next_len) tells the size needed.
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = self.core.try_recv_into(buf)?;
        self.core.wake_hint();
        Ok(n)
    }

    /// Length of the next message, without taking it (`Empty` if none).
    pub fn next_len(&mut self) -> Result<usize> {
        self.core.next_len()
    }

    /// Takes up to `max` messages, appending them to `out`, publishing once;
    /// returns how many (0 when empty, `Closed` when empty and closed).
    pub fn try_recv_many(&mut self, out: &mut Vec<Vec<u8>>, max: usize) -> Result<usize> {
        let n = match self.core.try_recv_many(out, max) {
            Err(Error::Empty) => return Ok(0),
            r => r?,
        };
        self.core.wake_hint();
        Ok(n)
    }

    /// Takes the next message, waiting as long as needed.
    pub fn recv(&mut self) -> Result<Vec<u8>> {
        self.recv_deadline(Deadline::never())
    }

    /// Takes the next message, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        pop_blocking(
            &mut self.core,
            &self.shared,
            Patience::Within(timeout),
            ConsumerCore::try_recv,
        )
    }

    /// Takes the next message, waiting until `deadline`; wakes a sleeping
    /// producer without fail. `Closed` once drained if the producer end is
    /// closed or its process died.
    pub fn recv_deadline(&mut self, deadline: Deadline) -> Result<Vec<u8>> {
        pop_blocking(
            &mut self.core,
            &self.shared,
            deadline,
            ConsumerCore::try_recv,
        )
    }

    /// Takes the next message into `buf`, waiting as long as needed; returns
    /// its length. `BufferTooSmall` as for
    /// [`try_recv_into`](Self::try_recv_into) (the message stays queued).
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into_deadline(buf, Deadline::never())
    }

    /// [`recv_into`](Self::recv_into), waiting at most `timeout`.
    pub fn recv_into_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        pop_blocking(
            &mut self.core,
            &self.shared,
            Patience::Within(timeout),
            |core| core.try_recv_into(buf),
        )
    }

    /// [`recv_into`](Self::recv_into), waiting until `deadline`; wakes a
    /// sleeping producer without fail. `Closed` once drained if the producer
    /// end is closed or its process died.
    pub fn recv_into_deadline(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        pop_blocking(&mut self.core, &self.shared, deadline, |core| {
            core.try_recv_into(buf)
        })
    }

    /// Queued bytes, framing included (reads the tail).
    pub fn len(&mut self) -> Result<usize> {
        self.core.len()
    }

    /// Whether nothing is queued (reads the tail).
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl Drop for ByteConsumer {
    fn drop(&mut self) {
        self.core.close();
        self.shared.release(false, self.me);
    }
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests {
    use super::*;

    /// Producer and consumer threads on a ring of 2 slots: 3 values arrive in
    /// order, none lost or duplicated, across the wrap. Slots are loom cells,
    /// so a missing Release/Acquire pair shows up as a data race.
    #[test]
    fn loom_spsc_elements_arrive_in_order() {
        loom::model(|| {
            let ring = SpscRing::<u64>::new(2).unwrap();
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            let t = loom::thread::spawn(move || {
                let mut next = 1u64;
                while next <= 3 {
                    match tx.try_push(next) {
                        Ok(()) => next += 1,
                        Err(TryError::Full) => loom::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            });
            let mut expect = 1u64;
            while expect <= 3 {
                match rx.try_pop() {
                    Ok(v) => {
                        assert_eq!(v, expect);
                        expect += 1;
                    }
                    Err(TryError::Empty) => loom::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            t.join().unwrap();
        });
    }

    /// Three variable-length messages through a 32-byte byte ring; the third
    /// starts 8 bytes before the end, so it needs a padding record and wraps.
    /// All arrive intact and in order.
    #[test]
    fn loom_spsc_bytes_across_the_wrap() {
        loom::model(|| {
            let ring = SpscByteRing::new(32, 8).unwrap();
            assert_eq!(ring.capacity(), 32);
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            let t = loom::thread::spawn(move || {
                // Records of 8 (empty message) and 16 bytes: the tail ends at 24.
                for msg in [&b""[..], &[1u8; 8][..], &[7u8; 5][..]] {
                    loop {
                        match tx.try_send(msg) {
                            Ok(()) => break,
                            Err(Error::Full) => loom::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
            let mut got = Vec::new();
            while got.len() < 3 {
                match rx.try_recv() {
                    Ok(m) => got.push(m),
                    Err(Error::Empty) => loom::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(got, [vec![], vec![1u8; 8], vec![7u8; 5]]);
            t.join().unwrap();
        });
    }

    /// A consumer that finds the ring empty and sleeps is always woken by the
    /// producer's blocking push (a lost wake-up is a loom deadlock).
    #[test]
    fn loom_spsc_blocking_pop_is_woken_by_push() {
        loom::model(|| {
            let ring = SpscRing::<u64>::new(1).unwrap();
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            let t = loom::thread::spawn(move || {
                tx.push(5).unwrap();
                // Keep the end open until the consumer is done: dropping it
                // would wake the consumer through the closed flag instead.
                tx
            });
            assert_eq!(rx.pop().unwrap(), 5);
            drop(t.join().unwrap());
        });
    }

    /// A producer that finds the ring full and sleeps is always woken by the
    /// consumer's blocking pop.
    #[test]
    fn loom_spsc_blocking_push_is_woken_by_pop() {
        loom::model(|| {
            let ring = SpscRing::<u64>::new(1).unwrap();
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            tx.try_push(1).unwrap();
            let t = loom::thread::spawn(move || {
                assert_eq!(rx.pop().unwrap(), 1);
                rx
            });
            tx.push(2).unwrap();
            let mut rx = t.join().unwrap();
            assert_eq!(rx.try_pop().unwrap(), 2);
        });
    }
}

/// What inspection reads of an SPSC ring whose header starts at `base` of the
/// data area (loads only; `None` if anything lies outside it).
pub(crate) struct RingView {
    /// Messages (element ring) or bytes including framing (byte ring) pending.
    pub pending: u64,
    /// Slots or bytes.
    pub capacity: u64,
    /// Whether it is a byte ring.
    pub bytes: bool,
    /// The producer end closed (or was found dead).
    pub producer_closed: bool,
    /// The consumer end closed.
    pub consumer_closed: bool,
    /// Sleepers on either side.
    pub waiters: u64,
}

pub(crate) fn view_ring(
    view: &crate::inspect::view::StateView<'_>,
    base: usize,
) -> Option<RingView> {
    use std::mem::offset_of;
    let format = view.u32(base + 4)?;
    let capacity = view.u32(base + 8)?;
    let tail = view.u32(base + offset_of!(RingHeader, tail))?;
    let head = view.u32(base + offset_of!(RingHeader, head))?;
    let w = base + offset_of!(RingHeader, waiters);
    let waiters = view.u32(w)? as u64 + view.u32(w + 4)? as u64;
    Some(RingView {
        pending: (tail.wrapping_sub(head) & IDX) as u64,
        capacity: capacity as u64,
        bytes: format == FORMAT_BYTES,
        producer_closed: tail & CLOSED != 0,
        consumer_closed: head & CLOSED != 0,
        waiters,
    })
}

/// The `ls`/`stat` view of an SPSC ring segment.
pub(crate) fn summarize(
    view: &crate::inspect::view::StateView<'_>,
) -> Option<crate::inspect::view::StateSummary> {
    use crate::inspect::view::{Field, StateSummary};
    let r = view_ring(view, 0)?;
    let unit = if r.bytes { "bytes" } else { "messages" };
    let mut line = format!("{}/{} {unit} pending", r.pending, r.capacity);
    if r.producer_closed {
        line.push_str(", producer closed");
    }
    if r.consumer_closed {
        line.push_str(", consumer closed");
    }
    Some(StateSummary {
        line,
        fields: vec![
            ("pending", Field::U64(r.pending)),
            ("capacity", Field::U64(r.capacity)),
            ("producer_closed", Field::Bool(r.producer_closed)),
            ("consumer_closed", Field::Bool(r.consumer_closed)),
            ("waiters", Field::U64(r.waiters)),
        ],
    })
}

#[cfg(all(test, not(shmprim_loom)))]
mod tests {
    use super::*;

    /// The line `prefetch_slot` asks for is the one the next pop reads (the
    /// element of the position, on every lap), and only rings of elements of
    /// up to a line prefetch at all: not larger elements.
    #[test]
    fn the_prefetched_slot_is_the_one_a_pop_reads() {
        fn prefetches<T: Pod>() -> bool {
            let ring = SpscRing::<T>::anonymous(8).unwrap();
            let on_ring = ring.shared.ring.prefetch;
            let consumer = ring.consumer().unwrap();
            assert_eq!(consumer.core.prefetch, on_ring);
            on_ring
        }
        assert!(prefetches::<u64>());
        assert!(prefetches::<[u8; 64]>());
        assert!(!prefetches::<[u8; 65]>());
        let ring = SpscRing::<[u8; 24]>::anonymous(8).unwrap();
        let r = &ring.shared.ring;
        assert_eq!(r.cap, 8);
        for pos in 0..3 * r.cap {
            // SAFETY: `pos & mask < cap`: a slot of the ring.
            let read = unsafe { r.slots::<[u8; 24]>().add((pos & r.mask) as usize) };
            assert_eq!(
                r.slot_start(pos),
                read.cast::<u8>(),
                "element position {pos}"
            );
        }
    }

    /// A byte ring's consumer prefetches after a record of up to two lines,
    /// and not after a larger one, whichever way it took the message; the
    /// line it asks for holds the first word the next receive reads (the
    /// record's header, or a pad), on every lap.
    #[test]
    fn a_byte_consumer_prefetches_the_next_header_after_a_small_message() {
        let ring = SpscByteRing::anonymous(512, 200).unwrap();
        assert!(!ring.shared.ring.prefetch);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        assert!(!rx.core.prefetch, "nothing received yet");
        let mut buf = [0u8; 200];
        // (length, expected decision): records of 8 + length rounded up to 8.
        let cases = [
            (8, true),
            (120, true),
            (121, false),
            (0, true),
            (200, false),
            (64, true),
            (193, false),
        ];
        for lap in 0..6 {
            for (k, &(len, small)) in cases.iter().enumerate() {
                let msg = vec![k as u8; len];
                tx.try_send(&msg).unwrap();
                // The word a receive reads first: the header, or a pad.
                let r = &rx.core.ring;
                let first = r
                    .words()
                    .cast::<u8>()
                    .wrapping_add((rx.core.head & r.mask) as usize);
                assert_eq!(r.slot_start(rx.core.head), first, "lap {lap}, message {k}");
                let n = match (lap + k) % 3 {
                    0 => rx.try_recv_into(&mut buf).unwrap(),
                    1 => rx.try_recv().unwrap().len(),
                    _ => {
                        let mut out = Vec::new();
                        assert_eq!(rx.try_recv_many(&mut out, 4).unwrap(), 1);
                        out[0].len()
                    }
                };
                assert_eq!(n, len);
                assert_eq!(
                    rx.core.prefetch, small,
                    "lap {lap}: after a message of {len} bytes"
                );
            }
        }
    }
}
