//! A pipe between two processes: Python's `multiprocessing.Pipe(duplex)`.
//!
//! A [`Pipe`] has two ends, A and B ([`PipeEnd`]). Duplex (the default), each end
//! sends and receives, over two SPSC byte rings (A→B and B→A). Simplex
//! ([`Pipe::create_simplex`]), as in Python's `Pipe(False)`, end A
//! ([`Pipe::reader`]) only receives and end B ([`Pipe::writer`]) only sends. Each
//! message is a byte string of at most `max_message` bytes; `send_value` /
//! `recv_value` carry one `Pod` value.
//!
//! # One process per end
//!
//! An end is claimed by one participant of the segment (one handle, so one
//! process) and cannot be claimed again: a second claim while the holder lives is
//! refused (`InvalidArgument`), and a claim after the holder closed the end or
//! died gets `Closed` (end-of-file is final, as for an OS pipe).
//!
//! # Closing and death
//!
//! Closing an end ([`PipeEnd::close`] or drop) marks it closed and wakes the
//! peer. The death of the process holding an end is seen through the segment's
//! liveness table ([`Segment::is_alive`] on the end's recorded participant id):
//! a blocked `recv`/`send` re-checks every 50 ms, a `try_recv` at most once a
//! millisecond, and `send` every 256 messages and whenever the ring is full. In
//! both cases the other end's `recv` returns what was sent before and then
//! `Error::Closed` (end-of-file), and its `send` fails with `Error::Closed`.
//!
//! # State
//!
//! | `ends[e]` value         | meaning                                     |
//! |-------------------------|---------------------------------------------|
//! | `0`                     | end `e` not claimed yet                     |
//! | participant id          | held by that participant (dead ⇒ closed)    |
//! | `u64::MAX` (`CLOSED`)   | closed by its holder                        |
//!
//! Layout: a 256-byte header (meta, `ends`), then the ring B→A, then (duplex)
//! the ring A→B, each an [`SpscByteRing`](crate::ring::spsc::SpscByteRing) state.
//!
//! # Example
//!
//! ```
//! use shmprim::pipe::Pipe;
//! # let name = format!("doc-pipe-{}", std::process::id());
//! let pipe = Pipe::create(&name, 4096, 256)?;
//! let mut a = pipe.end_a()?;
//! // Another process would run `Pipe::open(&name)?.end_b()?`.
//! let mut b = Pipe::open(&name)?.end_b()?;
//! a.send(b"ping")?;
//! assert_eq!(b.recv()?, b"ping");
//! b.send_value(&42u64)?;
//! assert_eq!(a.recv_value::<u64>()?, 42);
//! b.close();
//! assert!(matches!(a.recv(), Err(shmprim::Error::Closed { .. })));
//! Pipe::unlink(&name)?;
//! # Ok::<(), shmprim::Error>(())
//! ```

mod message;

use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Error, Result};
pub use crate::ring::End;
use crate::ring::spsc::{ConsumerCore, ProducerCore, RingHeader, RingRef, byte_capacity};
use crate::ring::{Backing, CachePadded, HeapMem, PeerWatch, RING_ALIGN, UNCLAIMED};
use crate::segment::Disposition;
use crate::segment::{Kind, Options, Segment, SegmentBuilder};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::wait::{Deadline, is_timeout, try_first};

/// `b"PIPE"`.
const MAGIC: u32 = u32::from_le_bytes(*b"PIPE");
/// `ends[e]` of an end closed by its holder.
const CLOSED_OWNER: u64 = u64::MAX;
/// A sender checks the receiver's liveness once per this many messages.
const SEND_LIVENESS_EVERY: u32 = 256;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct PipeMeta {
    magic: u32,
    duplex: u32,
    /// Bytes of each ring.
    capacity: u32,
    max_message: u32,
}

/// The shared state of a pipe: this header, followed by one (simplex) or two
/// (duplex) byte rings.
#[repr(C)]
pub struct PipeHeader {
    meta: CachePadded<PipeMeta>,
    /// Owner of each end: see the module's table.
    ends: CachePadded<[AtomicU64; 2]>,
}

/// Bytes from one ring of a pipe to the next: the ring's size rounded up to
/// 128, so that the second ring's header is aligned as it must be also when
/// the capacity (a power of two from 16) is under 128 bytes.
fn ring_stride(capacity: usize, max_message: usize) -> Result<usize> {
    Ok(RingHeader::memory_size_bytes(capacity, max_message)?.next_multiple_of(RING_ALIGN))
}

impl PipeHeader {
    /// Bytes of memory a pipe needs (capacity rounded as for a byte ring).
    pub fn memory_size(capacity: usize, max_message: usize, duplex: bool) -> Result<usize> {
        let ring = ring_stride(capacity, max_message)?;
        Ok(std::mem::size_of::<PipeHeader>() + ring * if duplex { 2 } else { 1 })
    }

    /// Writes a fresh pipe with no end claimed at `mem`.
    ///
    /// # Safety
    ///
    /// `mem` is valid for writes of [`memory_size`](Self::memory_size) bytes,
    /// aligned to 128, and nobody else uses that memory during the call.
    pub unsafe fn init(
        mem: *mut u8,
        capacity: usize,
        max_message: usize,
        duplex: bool,
    ) -> Result<()> {
        let cap = byte_capacity(capacity, max_message)?;
        let ring = ring_stride(cap, max_message)?;
        let header = PipeHeader {
            meta: CachePadded(PipeMeta {
                magic: MAGIC,
                duplex: duplex as u32,
                capacity: cap as u32,
                max_message: max_message as u32,
            }),
            ends: CachePadded([AtomicU64::new(UNCLAIMED), AtomicU64::new(UNCLAIMED)]),
        };
        let rings = if duplex { 2 } else { 1 };
        // SAFETY: the caller provides the whole region, aligned to 128; each ring
        // starts at a multiple of 128 (header and ring sizes are).
        unsafe {
            mem.cast::<PipeHeader>().write(header);
            for i in 0..rings {
                RingHeader::init_bytes(
                    mem.add(std::mem::size_of::<PipeHeader>() + i * ring),
                    cap,
                    max_message,
                )?;
            }
        }
        Ok(())
    }
}

struct PipeShared {
    backing: Backing,
    hdr: *const PipeHeader,
    /// The ring B→A.
    to_a: RingRef,
    /// The ring A→B (duplex only).
    to_b: Option<RingRef>,
}

// SAFETY: the header pointer targets memory owned by `backing`; the shared state
// behind it is atomics.
unsafe impl Send for PipeShared {}
// SAFETY: as above.
unsafe impl Sync for PipeShared {}

impl PipeShared {
    /// Validates the pipe at `mem` against the geometry and makes its views.
    ///
    /// # Safety
    /// `mem` holds `memory_size(cap, max, duplex)` bytes, aligned to 128, owned by
    /// `backing`.
    unsafe fn new(backing: Backing, cap: u32, max: u32, duplex: bool) -> Result<PipeShared> {
        let mem = backing.base();
        let name = backing.object_name().clone();
        let hdr = mem.cast::<PipeHeader>();
        // SAFETY: in bounds (caller); plain integers copied once, then validated.
        let meta: PipeMeta = unsafe { std::ptr::read_volatile(&raw const (*hdr).meta.0) };
        if (meta.magic, meta.duplex, meta.capacity, meta.max_message)
            != (MAGIC, duplex as u32, cap, max)
        {
            return Err(Error::corrupted(
                &name,
                format!("pipe header {meta:?} does not match its parameters"),
            ));
        }
        let ring = ring_stride(cap as usize, max as usize)?;
        let base = std::mem::size_of::<PipeHeader>();
        // SAFETY: the rings lie inside the region (caller), at multiples of 128.
        let to_a = unsafe { RingRef::open_bytes(mem.add(base), cap, max, &name)? };
        let to_b = if duplex {
            // SAFETY: as above.
            Some(unsafe { RingRef::open_bytes(mem.add(base + ring), cap, max, &name)? })
        } else {
            None
        };
        Ok(PipeShared {
            backing,
            hdr,
            to_a,
            to_b,
        })
    }

    fn owner(&self, end: End) -> &AtomicU64 {
        // SAFETY: `hdr` points into memory `backing` keeps mapped.
        unsafe { &(*self.hdr).ends.0[end as usize] }
    }

    /// Whether `end` was closed or its holder died.
    fn is_gone(&self, end: End) -> bool {
        // Acquire: pairs with the Release store of CLOSED_OWNER in `close`.
        let owner = self.owner(end).load(Ordering::Acquire);
        owner == CLOSED_OWNER || (owner != UNCLAIMED && !self.backing.is_alive(owner))
    }
}

#[cfg(shmprim_loom)]
impl Drop for PipeShared {
    fn drop(&mut self) {
        if let Backing::Heap(mem) = &self.backing {
            // SAFETY: `init` wrote these headers; nothing uses them any more.
            unsafe {
                std::ptr::drop_in_place(mem.as_ptr().cast::<PipeHeader>());
            }
        }
    }
}

/// A named (or anonymous, or heap) pipe. Take its ends with
/// [`end_a`](Self::end_a) / [`end_b`](Self::end_b) (or [`reader`](Self::reader)
/// / [`writer`](Self::writer) for a simplex pipe), one per process.
#[derive(Clone)]
pub struct Pipe {
    shared: Arc<PipeShared>,
}

impl std::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipe")
            .field("name", &self.shared.backing.display_name())
            .field("duplex", &self.is_duplex())
            .field("capacity", &self.capacity())
            .finish()
    }
}

fn builder(cap: usize, max_message: usize, duplex: bool) -> Result<SegmentBuilder> {
    Ok(SegmentBuilder::new(Kind::Pipe)
        .data_size(PipeHeader::memory_size(cap, max_message, duplex)? as u64)
        .param(0, cap as u64)
        .param(1, max_message as u64)
        .param(2, duplex as u64))
}

impl Pipe {
    /// Creates a named duplex pipe whose rings hold at least `capacity` bytes
    /// each, for messages of at most `max_message` bytes.
    pub fn create(name: &str, capacity: usize, max_message: usize) -> Result<Pipe> {
        Self::create_with_options(name, capacity, max_message, true, &Options::default())
    }

    /// Creates a named simplex pipe: end A reads, end B writes.
    pub fn create_simplex(name: &str, capacity: usize, max_message: usize) -> Result<Pipe> {
        Self::create_with_options(name, capacity, max_message, false, &Options::default())
    }

    /// Creates a named pipe, duplex or simplex, with handle options.
    pub fn create_with_options(
        name: &str,
        capacity: usize,
        max_message: usize,
        duplex: bool,
        opts: &Options,
    ) -> Result<Pipe> {
        let cap = byte_capacity(capacity, max_message)?;
        let seg = builder(cap, max_message, duplex)?
            .options(opts)
            .create_with(name, |ptr, _| {
                // SAFETY: the data area is `memory_size` bytes, page aligned, ours.
                unsafe { PipeHeader::init(ptr.as_ptr(), cap, max_message, duplex) }
            })?;
        crate::segment::finish_create(seg, Self::from_segment)
    }

    /// Opens a named pipe.
    pub fn open(name: &str) -> Result<Pipe> {
        Self::from_segment(SegmentBuilder::new(Kind::Pipe).open(name)?)
    }

    /// Opens an anonymous pipe whose descriptor a spawning parent handed down
    /// (see `SegmentBuilder::open_inherited`).
    #[cfg_attr(shmprim_loom, allow(dead_code))]
    pub(crate) fn open_inherited(fd: std::os::fd::RawFd) -> Result<Pipe> {
        Self::from_segment(SegmentBuilder::new(Kind::Pipe).open_inherited(fd)?)
    }

    /// Opens the named duplex pipe, or creates it.
    pub fn open_or_create(
        name: &str,
        capacity: usize,
        max_message: usize,
    ) -> Result<(Pipe, Disposition)> {
        let cap = byte_capacity(capacity, max_message)?;
        let (seg, how) = builder(cap, max_message, true)?.open_or_create_with(name, |ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { PipeHeader::init(ptr.as_ptr(), cap, max_message, true) }
        })?;
        seg.expect_param(0, cap as u64, "capacity")?;
        seg.expect_param(1, max_message as u64, "max_message")?;
        seg.expect_param(2, 1, "duplex")?;
        Ok((Self::from_segment(seg)?, how))
    }

    /// An anonymous pipe (`memfd`), shared with children forked afterwards.
    /// A forked child that takes an end becomes a participant of its own
    /// first, so its death is seen like any other process's. An end taken
    /// before the fork stays the parent's: take each end in the process that
    /// uses it.
    pub fn anonymous(capacity: usize, max_message: usize, duplex: bool) -> Result<Pipe> {
        let cap = byte_capacity(capacity, max_message)?;
        let seg = builder(cap, max_message, duplex)?.anonymous_with(|ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { PipeHeader::init(ptr.as_ptr(), cap, max_message, duplex) }
        })?;
        Self::from_segment(seg)
    }

    /// A pipe on the heap of this process (between threads).
    pub fn new(capacity: usize, max_message: usize, duplex: bool) -> Result<Pipe> {
        let cap = byte_capacity(capacity, max_message)?;
        let mem = HeapMem::zeroed(PipeHeader::memory_size(cap, max_message, duplex)?)?;
        // SAFETY: zeroed, aligned to 128, large enough, ours.
        unsafe { PipeHeader::init(mem.as_ptr(), cap, max_message, duplex)? };
        // SAFETY: initialised just above; `Backing::Heap` owns the memory.
        let shared =
            unsafe { PipeShared::new(Backing::Heap(mem), cap as u32, max_message as u32, duplex)? };
        Ok(Pipe {
            shared: Arc::new(shared),
        })
    }

    fn from_segment(seg: Segment) -> Result<Pipe> {
        let (cap, max, duplex) = (seg.param(0), seg.param(1), seg.param(2));
        let valid = duplex <= 1
            && cap <= u64::from(u32::MAX)
            && max <= u64::from(u32::MAX)
            && byte_capacity(cap as usize, max as usize).ok() == Some(cap as usize);
        if !valid {
            return Err(Error::corrupted(
                seg.display_name(),
                format!("pipe parameters: capacity {cap}, max_message {max}, duplex {duplex}"),
            ));
        }
        let duplex = duplex == 1;
        seg.expect_data_size(PipeHeader::memory_size(cap as usize, max as usize, duplex)? as u64)?;
        // SAFETY: the data area holds the memory size (checked), page aligned, and
        // is owned by the backing.
        let shared =
            unsafe { PipeShared::new(Backing::Segment(seg), cap as u32, max as u32, duplex)? };
        Ok(Pipe {
            shared: Arc::new(shared),
        })
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::Pipe)
    }

    /// The segment (`None` for a heap pipe).
    pub fn segment(&self) -> Option<&Segment> {
        self.shared.backing.segment()
    }

    /// Whether both ends send and receive.
    pub fn is_duplex(&self) -> bool {
        self.shared.to_b.is_some()
    }

    /// Bytes of each ring.
    pub fn capacity(&self) -> usize {
        byte_capacity_of(&self.shared.to_a).0
    }

    /// Largest message, in bytes.
    pub fn max_message(&self) -> usize {
        byte_capacity_of(&self.shared.to_a).1
    }

    /// Claims end A (the reader of a simplex pipe).
    pub fn end_a(&self) -> Result<PipeEnd> {
        self.end(End::A)
    }

    /// Claims end B (the writer of a simplex pipe).
    pub fn end_b(&self) -> Result<PipeEnd> {
        self.end(End::B)
    }

    /// Claims the reading end of a simplex pipe (end A).
    pub fn reader(&self) -> Result<PipeEnd> {
        self.end(End::A)
    }

    /// Claims the writing end of a simplex pipe (end B).
    pub fn writer(&self) -> Result<PipeEnd> {
        self.end(End::B)
    }

    /// Claims `end` for this handle's participant: `InvalidArgument` while a
    /// live participant holds it, `Closed` once it was closed or its holder died.
    pub fn end(&self, end: End) -> Result<PipeEnd> {
        let shared = &self.shared;
        let word = shared.owner(end);
        let me = shared.backing.my_id();
        // AcqRel: orders us after whatever the creator wrote; publishes the claim.
        match word.compare_exchange(UNCLAIMED, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {}
            Err(CLOSED_OWNER) => return Err(Error::closed(shared.backing.object_name())),
            Err(owner) if !shared.backing.is_alive(owner) => {
                return Err(Error::closed(shared.backing.object_name()));
            }
            Err(_) => {
                return Err(Error::invalid_argument(format!(
                    "end {end:?} of pipe {:?} is held by a live participant",
                    shared.backing.display_name()
                )));
            }
        }
        let (tx_ring, rx_ring) = match end {
            End::A => (shared.to_b.clone(), Some(shared.to_a.clone())),
            End::B => (Some(shared.to_a.clone()), shared.to_b.clone()),
        };
        let cores = (|| {
            let tx = tx_ring.map(ProducerCore::new).transpose()?;
            let rx = rx_ring.map(ConsumerCore::new).transpose()?;
            Ok::<_, Error>((tx, rx))
        })();
        let (tx, rx) = match cores {
            Ok(c) => c,
            Err(e) => {
                word.store(CLOSED_OWNER, Ordering::Release);
                return Err(e);
            }
        };
        Ok(PipeEnd {
            shared: shared.clone(),
            end,
            tx,
            rx,
            sends: 0,
            watch: PeerWatch::new(),
            partial: None,
        })
    }
}

fn byte_capacity_of(ring: &RingRef) -> (usize, usize) {
    ring.geometry()
}

/// One end of a [`Pipe`]. Dropping it closes it (see [`close`](Self::close)).
pub struct PipeEnd {
    shared: Arc<PipeShared>,
    end: End,
    /// Producer of the ring towards the peer (`None`: read-only simplex end).
    tx: Option<ProducerCore>,
    /// Consumer of the ring from the peer (`None`: write-only simplex end).
    rx: Option<ConsumerCore>,
    sends: u32,
    /// When this end looks whether its peer is gone; once it has seen it
    /// closed or dead, sends fail at once.
    watch: PeerWatch,
    /// A message of any length whose first frames were received by a call
    /// that then timed out: the next receive goes on with it.
    partial: Option<message::Partial>,
}

impl std::fmt::Debug for PipeEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeEnd")
            .field("pipe", &self.shared.backing.display_name())
            .field("end", &self.end)
            .finish()
    }
}

fn read_only() -> Error {
    Error::invalid_argument("this end of the simplex pipe only receives")
}

fn write_only() -> Error {
    Error::invalid_argument("this end of the simplex pipe only sends")
}

impl PipeEnd {
    /// The name errors about the pipe carry.
    fn name(&self) -> &crate::ObjectName {
        self.shared.backing.object_name()
    }

    /// Whether the peer closed its end or died; remembered once seen.
    fn check_peer(&mut self) -> bool {
        if !self.watch.is_gone() && self.shared.is_gone(self.end.peer()) {
            self.watch.set_gone();
        }
        self.watch.is_gone()
    }

    /// Which end this is.
    pub fn which(&self) -> End {
        self.end
    }

    /// Sends `msg`, waiting for room as long as needed. `Closed` if the peer
    /// closed its end or died; `InvalidArgument` if `msg` is longer than the
    /// maximum or this end only receives.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_deadline(msg, Deadline::never())
    }

    /// Sends `msg`, waiting at most `timeout` for room (`Timeout`).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        try_first(timeout, |d| self.send_deadline(msg, d), is_timeout)
    }

    /// Sends `msg` if it fits now (`Full` if not).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        if self.tx.is_none() {
            return Err(read_only());
        }
        self.sends = self.sends.wrapping_add(1);
        if self.peer_closed_cheap() {
            return Err(Error::closed(self.name()));
        }
        let tx = self.tx.as_mut().ok_or_else(read_only)?;
        match tx.try_send(msg) {
            Ok(()) => {
                tx.wake();
                Ok(())
            }
            Err(Error::Full { .. }) if self.check_peer() => Err(Error::closed(self.name())),
            Err(e) => Err(e.named(self.name())),
        }
    }

    /// The per-send check: the peer's explicit close (one load of a line that
    /// is written only by claims and closes), and its liveness once every
    /// `SEND_LIVENESS_EVERY` sends.
    #[inline]
    fn peer_closed_cheap(&mut self) -> bool {
        if self.watch.is_gone() {
            return true;
        }
        // Acquire: pairs with the Release store of CLOSED_OWNER in `close`.
        let owner = self.shared.owner(self.end.peer()).load(Ordering::Acquire);
        if owner == CLOSED_OWNER || self.sends % SEND_LIVENESS_EVERY == 0 {
            return self.check_peer();
        }
        false
    }

    /// Sends `msg`, waiting until `deadline` for room.
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        if self.tx.is_none() {
            return Err(read_only());
        }
        self.sends = self.sends.wrapping_add(1);
        if self.peer_closed_cheap() {
            return Err(Error::closed(self.name()));
        }
        let shared = &self.shared;
        let peer = self.end.peer();
        let tx = self.tx.as_mut().ok_or_else(read_only)?;
        let r = loop {
            match tx.try_send(msg) {
                Ok(()) => {
                    tx.wake();
                    break Ok(());
                }
                Err(Error::Full { .. }) => {}
                Err(e) => break Err(e),
            }
            if let Err(e) = tx.wait_for_space(deadline, &mut || shared.is_gone(peer)) {
                break Err(e);
            }
        };
        if matches!(r, Err(Error::Closed { .. })) {
            self.watch.set_gone();
        }
        r
    }

    /// Sends one `Pod` value as a message of `size_of::<T>()` bytes.
    pub fn send_value<T: Pod>(&mut self, value: &T) -> Result<()> {
        self.send(bytemuck::bytes_of(value))
    }

    /// Receives the next message, waiting as long as needed. `Closed` once
    /// every message sent before the peer closed (or died) was received.
    pub fn recv(&mut self) -> Result<Vec<u8>> {
        self.recv_deadline(Deadline::never())
    }

    /// Receives the next message, waiting at most `timeout` (`Timeout`).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        try_first(timeout, |d| self.recv_deadline(d), is_timeout)
    }

    /// Receives the next message if there is one now (`Empty` if not).
    pub fn try_recv(&mut self) -> Result<Vec<u8>> {
        self.try_take(|rx| rx.try_recv())
    }

    /// Receives the next message into `buf` if there is one now, and returns
    /// its length: `Empty` if there is none, `Closed` as [`try_recv`](Self::try_recv),
    /// and `BufferTooSmall` (naming the size needed; the message stays
    /// queued) if `buf` is too small. Allocates nothing.
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.try_take(|rx| rx.try_recv_into(buf))
    }

    /// One non-blocking `take` from the receiving ring. On an empty ring it
    /// asks the end's [`PeerWatch`] whether the peer is gone: once it is,
    /// what it sent still comes first, then `Closed`.
    fn try_take<R>(&mut self, mut take: impl FnMut(&mut ConsumerCore) -> Result<R>) -> Result<R> {
        let rx = self.rx.as_mut().ok_or_else(write_only)?;
        match take(rx) {
            Ok(r) => {
                rx.wake();
                Ok(r)
            }
            Err(Error::Empty { .. }) => {
                let (shared, peer) = (&self.shared, self.end.peer());
                if self.watch.peer_gone(|| shared.is_gone(peer)) {
                    // Whatever the peer sent before it went comes first.
                    return match take(rx) {
                        Err(Error::Empty { .. }) => Err(Error::closed(rx.name())),
                        r => r,
                    };
                }
                Err(Error::empty(rx.name()))
            }
            Err(e) => Err(e),
        }
    }

    /// Receives the next message, waiting until `deadline`.
    pub fn recv_deadline(&mut self, deadline: Deadline) -> Result<Vec<u8>> {
        self.recv_with(deadline, |rx| rx.try_recv())
    }

    /// Receives the next message into `buf`, waiting until `deadline`; returns
    /// its length. If `buf` is too small the message stays queued and the error
    /// is `BufferTooSmall`, naming the size needed (as does [`next_len`](Self::next_len)).
    pub fn recv_into_deadline(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        self.recv_with(deadline, |rx| rx.try_recv_into(buf))
    }

    /// [`recv_into_deadline`](Self::recv_into_deadline) waiting as long as needed.
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into_deadline(buf, Deadline::never())
    }

    /// Length of the next message without taking it: `Empty` if none yet,
    /// `Closed` if none will come.
    pub fn next_len(&mut self) -> Result<usize> {
        let rx = self.rx.as_mut().ok_or_else(write_only)?;
        match rx.next_len() {
            Err(Error::Empty { .. }) => {
                let (shared, peer) = (&self.shared, self.end.peer());
                if self.watch.peer_gone(|| shared.is_gone(peer)) {
                    // What the peer sent before it went comes first.
                    return match rx.next_len() {
                        Err(Error::Empty { .. }) => Err(Error::closed(rx.name())),
                        r => r,
                    };
                }
                Err(Error::empty(rx.name()))
            }
            r => r,
        }
    }

    /// Receives one `Pod` value: the message must be exactly
    /// `size_of::<T>()` bytes (else `InvalidArgument`, and it is consumed).
    pub fn recv_value<T: Pod>(&mut self) -> Result<T> {
        let msg = self.recv()?;
        if msg.len() != std::mem::size_of::<T>() {
            return Err(Error::invalid_argument(format!(
                "received a message of {} bytes, expected a value of {} bytes",
                msg.len(),
                std::mem::size_of::<T>()
            )));
        }
        Ok(bytemuck::pod_read_unaligned(&msg))
    }

    fn recv_with<R>(
        &mut self,
        deadline: Deadline,
        mut take: impl FnMut(&mut ConsumerCore) -> Result<R>,
    ) -> Result<R> {
        let shared = &self.shared;
        let peer = self.end.peer();
        let rx = self.rx.as_mut().ok_or_else(write_only)?;
        let mut gone = self.watch.is_gone();
        let r = loop {
            match take(rx) {
                Ok(r) => {
                    rx.wake();
                    break Ok(r);
                }
                // Whatever the peer sent before it went comes first.
                Err(Error::Empty { .. }) if gone => break Err(Error::closed(rx.name())),
                Err(Error::Empty { .. }) => {}
                Err(e) => break Err(e),
            }
            match rx.wait_for_data(deadline, &mut || shared.is_gone(peer)) {
                Ok(()) => {}
                Err(Error::Closed { .. }) => gone = true,
                Err(e) => break Err(e),
            }
        };
        if gone {
            self.watch.set_gone();
        }
        r
    }

    /// Whether [`recv`](Self::recv) would return at once (a message is queued, or
    /// the peer is gone and `recv` would report `Closed`), waiting at most
    /// `timeout` for that: Python's `Connection.poll(timeout)`.
    pub fn poll(&mut self, timeout: Duration) -> Result<bool> {
        try_first(
            timeout,
            |d| self.poll_deadline(d),
            |r| matches!(r, Ok(false)),
        )
    }

    /// [`poll`](Self::poll) with a deadline.
    pub fn poll_deadline(&mut self, deadline: Deadline) -> Result<bool> {
        let shared = &self.shared;
        let peer = self.end.peer();
        let rx = self.rx.as_mut().ok_or_else(write_only)?;
        loop {
            match rx.next_len() {
                Ok(_) | Err(Error::Closed { .. }) => return Ok(true),
                Err(Error::Empty { .. }) => {}
                Err(e) => return Err(e),
            }
            match rx.wait_for_data(deadline, &mut || shared.is_gone(peer)) {
                Ok(()) => {}
                Err(Error::Closed { .. }) => return Ok(true),
                Err(Error::Timeout { .. }) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Closes this end: the peer receives what was already sent, then
    /// `Closed`; its sends fail with `Closed`. Dropping the end does the same.
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        // Release: pairs with the peer's Acquire loads of the owner word.
        self.shared
            .owner(self.end)
            .store(CLOSED_OWNER, Ordering::Release);
        if let Some(tx) = &self.tx {
            tx.close();
        }
        if let Some(rx) = &self.rx {
            rx.close();
        }
    }
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests {
    use super::*;

    /// A receiver blocked on an empty pipe is woken by the peer closing its end,
    /// after receiving what was sent before: no hang, messages first.
    #[test]
    fn loom_pipe_close_wakes_blocked_receiver_after_drain() {
        loom::model(|| {
            let pipe = Pipe::new(64, 8, false).unwrap();
            let mut reader = pipe.reader().unwrap();
            let mut writer = pipe.writer().unwrap();
            let t = loom::thread::spawn(move || {
                writer.send(b"last").unwrap();
                writer.close();
            });
            assert_eq!(reader.recv().unwrap(), b"last");
            assert!(matches!(reader.recv(), Err(Error::Closed { .. })));
            t.join().unwrap();
        });
    }
}

/// The `ls`/`stat` view of a pipe: bytes pending each way, and closed ends.
pub(crate) fn summarize(
    view: &crate::inspect::view::StateView<'_>,
) -> Option<crate::inspect::view::StateSummary> {
    use crate::inspect::view::{Field, StateSummary};
    let duplex = view.u32(4)? != 0;
    let capacity = view.u32(8)? as usize;
    let max_message = view.u32(12)? as usize;
    let ring = ring_stride(capacity, max_message).ok()?;
    let base = std::mem::size_of::<PipeHeader>();
    let to_a = crate::ring::spsc::view_ring(view, base)?;
    let mut fields = vec![
        ("duplex", Field::Bool(duplex)),
        ("pending_to_a", Field::U64(to_a.pending)),
    ];
    let mut line = format!("{} bytes pending to A", to_a.pending);
    let mut closed = to_a.producer_closed || to_a.consumer_closed;
    if duplex {
        let to_b = crate::ring::spsc::view_ring(view, base.checked_add(ring)?)?;
        line.push_str(&format!(", {} to B", to_b.pending));
        fields.push(("pending_to_b", Field::U64(to_b.pending)));
        closed |= to_b.producer_closed || to_b.consumer_closed;
    } else {
        line = format!("{} bytes pending (simplex, B to A)", to_a.pending);
    }
    if closed {
        line.push_str(", an end is closed");
    }
    fields.push(("closed", Field::Bool(closed)));
    Some(StateSummary { line, fields })
}
