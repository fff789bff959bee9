//! Lock-free rings in shared memory: single-producer single-consumer rings of
//! fixed-size elements and of byte messages ([`spsc`]), and the bounded
//! multi-producer multi-consumer ring ([`mpmc`]) behind [`Queue`](crate::Queue)
//! and [`ByteQueue`](crate::ByteQueue). The [`Pipe`](crate::pipe) is built from
//! two SPSC byte rings; the [`duplex`] channel from two SPSC rings of values
//! whose slots are interleaved.

pub mod duplex;
pub mod mpmc;
pub mod spsc;

use std::alloc::Layout;
use std::ptr::NonNull;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::segment::{ParticipantId, Segment};
use crate::wait::Deadline;

/// Which end of a two-ended object: a [`Pipe`](crate::Pipe) or a
/// [`DuplexRing`](crate::DuplexRing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// End A (Python's first connection; the reader of a simplex pipe).
    A = 0,
    /// End B (Python's second connection; the writer of a simplex pipe).
    B = 1,
}

impl End {
    /// The other end.
    pub(crate) fn peer(self) -> End {
        match self {
            End::A => End::B,
            End::B => End::A,
        }
    }
}

/// Alignment of every ring region: two cache lines, so that the adjacent-line
/// prefetcher of x86 does not pull a neighbour's line along with ours.
pub(crate) const RING_ALIGN: usize = 128;

/// Checks an element type known only by its size and alignment (what the C
/// functions give): a size in `1..2^32`, an alignment that is a power of two
/// up to [`RING_ALIGN`] and divides the size.
pub(crate) fn check_elem_shape(size: usize, align: usize) -> crate::error::Result<()> {
    use crate::error::Error;
    if size == 0 || size > u32::MAX as usize {
        return Err(Error::invalid_argument(format!(
            "element size {size} is not in 1..2^32"
        )));
    }
    if !align.is_power_of_two() || align > RING_ALIGN || size % align != 0 {
        return Err(Error::invalid_argument(format!(
            "element alignment {align} is not a power of two up to {RING_ALIGN} \
             dividing the element size {size}"
        )));
    }
    Ok(())
}

/// A `T` alone on its two cache lines, so that two fields never share one
/// (nor its adjacent-line prefetch pair).
#[repr(C, align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

/// Zeroed heap memory aligned to [`RING_ALIGN`], for rings that live in one
/// process (and for loom models, whose atomics must never be placed in a
/// segment).
#[derive(Debug)]
pub(crate) struct HeapMem {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl HeapMem {
    /// `size` zeroed bytes (at least one), aligned to `RING_ALIGN`.
    pub(crate) fn zeroed(size: usize) -> Result<HeapMem> {
        let layout = Layout::from_size_align(size.max(1), RING_ALIGN)
            .map_err(|_| Error::invalid_argument(format!("{size} bytes is too large")))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| {
            Error::invalid_argument(format!("cannot allocate {size} bytes on the heap"))
        })?;
        Ok(HeapMem { ptr, layout })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

// SAFETY: `HeapMem` uniquely owns its allocation, like a `Box<[u8]>`; what is
// stored in it is accessed through atomics or the rings' hand-over protocol.
unsafe impl Send for HeapMem {}
// SAFETY: as above.
unsafe impl Sync for HeapMem {}

impl Drop for HeapMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this very layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// Where a ring's memory lives: a mapped segment (shared between processes) or
/// the heap (one process). Ends of a ring are claimed with the segment's
/// participant ids; on the heap every claim is made by participant `1`, which is
/// always alive.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per handle, never moved on a hot path
pub(crate) enum Backing {
    /// A named or anonymous segment.
    Segment(Segment),
    /// Heap memory of one process.
    Heap(HeapMem),
}

/// How long an end that does not wait goes between two looks at its peer's
/// liveness.
pub(crate) const POLL_LIVENESS_EVERY: Duration = Duration::from_millis(1);
/// An end that does not wait reads the clock on one in this many of its
/// `Empty` or `Full` answers, so that a polling loop pays for neither a clock
/// read nor a liveness look on most of them.
pub(crate) const POLL_CLOCK_EVERY: u32 = 32;

/// How every end of a ring, pipe or duplex ring that does not wait learns
/// that its peer is gone: the one rule for `try_` forms, in Rust and C.
///
/// After an `Empty` answer (a receiver) or a `Full` one (a sender), the end
/// asks [`peer_gone`](Self::peer_gone). On the first such answer, and then
/// at most once per [`POLL_LIVENESS_EVERY`], it looks whether the peer's
/// process died (the liveness table, one `fcntl`); a peer's close is seen at
/// once by the ring itself. Once gone, always gone: a receiver drains what
/// the peer sent and then answers `Closed`, a sender answers `Closed`.
#[derive(Debug)]
pub(crate) struct PeerWatch {
    polls: u32,
    next_look: Deadline,
    gone: bool,
}

impl PeerWatch {
    /// A watch that looks on the first `Empty` or `Full` answer.
    pub(crate) fn new() -> PeerWatch {
        PeerWatch {
            polls: 0,
            next_look: Deadline::now(),
            gone: false,
        }
    }

    /// Whether the peer is gone for good, calling `died` when a look is due.
    #[cold]
    #[inline(never)]
    pub(crate) fn peer_gone(&mut self, died: impl FnOnce() -> bool) -> bool {
        if self.gone {
            return true;
        }
        let due = self.polls % POLL_CLOCK_EVERY == 0;
        self.polls = self.polls.wrapping_add(1);
        if due && self.next_look.has_passed() {
            self.next_look = Deadline::after(POLL_LIVENESS_EVERY);
            self.gone = died();
        }
        self.gone
    }

    /// Records that the peer is gone (its close was seen).
    pub(crate) fn set_gone(&mut self) {
        self.gone = true;
    }

    /// Whether the peer was seen gone.
    pub(crate) fn is_gone(&self) -> bool {
        self.gone
    }
}

/// Claim word value of an end nobody holds.
pub(crate) const UNCLAIMED: u64 = 0;
/// The owner id every heap claim uses.
const HEAP_OWNER: u64 = 1;

impl Backing {
    /// Start of the primitive's memory.
    pub(crate) fn base(&self) -> *mut u8 {
        match self {
            Backing::Segment(seg) => seg.as_ptr(),
            Backing::Heap(mem) => mem.as_ptr(),
        }
    }

    /// The name errors carry (unknown for a heap ring).
    pub(crate) fn object_name(&self) -> &crate::ObjectName {
        match self {
            Backing::Segment(seg) => seg.object_name(),
            Backing::Heap(_) => &crate::error::UNKNOWN,
        }
    }

    /// The name used in error messages.
    pub(crate) fn display_name(&self) -> &str {
        match self {
            Backing::Segment(seg) => seg.display_name(),
            Backing::Heap(_) => "<heap>",
        }
    }

    /// The owner id this handle writes into claim words (never `UNCLAIMED`).
    pub(crate) fn my_id(&self) -> u64 {
        match self {
            Backing::Segment(seg) => seg.participant_id().to_u64(),
            Backing::Heap(_) => HEAP_OWNER,
        }
    }

    /// Whether the owner `id` read from a claim word is a live participant.
    /// Garbage ids read as dead.
    pub(crate) fn is_alive(&self, id: u64) -> bool {
        match self {
            Backing::Segment(seg) => ParticipantId::from_u64(id).is_some_and(|p| seg.is_alive(p)),
            Backing::Heap(_) => id == HEAP_OWNER,
        }
    }

    /// The segment, if the memory is one.
    pub(crate) fn segment(&self) -> Option<&Segment> {
        match self {
            Backing::Segment(seg) => Some(seg),
            Backing::Heap(_) => None,
        }
    }
}

/// Copies `len` bytes from `src` to `dst`; the sizes of one small element
/// without a call to `memcpy` (a C caller, whose element size is known only at
/// run time, pays one call per element already).
///
/// # Safety
/// `src` readable and `dst` writable for `len` bytes; they do not overlap.
#[inline(always)]
pub(crate) unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: in bounds (caller); unaligned accesses of the exact length.
    unsafe {
        match len {
            0 => {}
            4 => dst
                .cast::<u32>()
                .write_unaligned(src.cast::<u32>().read_unaligned()),
            8 => dst
                .cast::<u64>()
                .write_unaligned(src.cast::<u64>().read_unaligned()),
            16 => dst
                .cast::<u128>()
                .write_unaligned(src.cast::<u128>().read_unaligned()),
            _ => std::ptr::copy_nonoverlapping(src, dst, len),
        }
    }
}
