//! A bounded lock-free multi-producer multi-consumer ring (Vyukov's array queue
//! with per-slot stamps, as crossbeam's `ArrayQueue`) that lives in shared memory
//! and survives the death of any producer or consumer at any instant. It carries
//! fixed-size slots of `slot_size` bytes: one `T: Pod` each for [`Queue`], or one
//! byte message of up to `slot_size` bytes (with its length) for [`ByteQueue`].
//! Python counterpart: the buffer behind `multiprocessing.Queue`.
//!
//! [`Queue`]: crate::Queue
//! [`ByteQueue`]: crate::ByteQueue
//!
//! # Layout
//!
//! ```text
//! MpmcState (128-byte aligned)
//!   config     capacity, slot_size, stride, record count (written once by
//!              init; the stride tells the slot form)
//!   head       next position to pop   (own 128-byte line)
//!   tail       next position to push  (own 128-byte line)
//!   signals    closed flag, not-empty and not-full futex words and waiter counts
//!   records    256 in-flight records, one 128-byte line pair each: {owner, claim}
//! slots, `stride` bytes each (a multiple of 8), right after the state:
//!   Fixed form (Queue<T>):    stamp u64 | data[slot_size]
//!   Bytes form (ByteQueue):   stamp u64 | len u32 | pad u32 | data[slot_size]
//! ```
//!
//! A fixed-size element needs no length word: a `u64` slot is 16 bytes, as in
//! crossbeam, so four share a cache line (a length word would make it 24).
//!
//! Positions (`head`, `tail`) are `u64` counters that only grow (below
//! 2^56: twenty years at 10^8 operations a second); position `p` lives in slot
//! `p % capacity`. Slots are not padded to a cache line, as in crossbeam: a
//! producer and a consumer are normally `capacity` slots apart, and packed slots
//! keep batches cache-friendly.
//!
//! # Slot stamps
//!
//! | stamp of the slot of position `p` | meaning                                          |
//! |-----------------------------------|--------------------------------------------------|
//! | `2p`                              | empty, ready for the producer of `p`             |
//! | `2p + 1`                          | holds the message of `p`                         |
//! | `2p + 1 \| SKIP`                  | the producer of `p` died: nothing there, move on |
//! | `2(p + capacity)`                 | released by the consumer of `p`: empty, next lap |
//!
//! A producer at `tail == p` that sees `2p` claims `p` by a CAS of `tail` (a batch
//! claims a run of free slots with one CAS), copies, and publishes `2p + 1`. A
//! consumer at `head == p` that sees `2p + 1` claims it by a CAS of `head`, copies
//! out, and releases the slot with `2(p + capacity)`. Stamps are doubled positions,
//! so even a capacity of 1 is unambiguous. With `head` (or `tail`) at `p`, any
//! stamp outside the few legal ones (the table, or the previous lap's still in
//! use) is impossible: that is `Corrupted`. Since a plain load may return a stale
//! value, an odd stamp is confirmed with read-modify-writes of the index (which
//! read its latest value) around a fresh load of the stamp before it is reported.
//! Every position read is checked below 2^56 and masked into the slot array; every
//! length is checked against `slot_size` before a copy.
//!
//! # Death of a participant
//!
//! Before claiming, a participant writes `{position, count, operation}` into its
//! in-flight record (whose `owner` is its liveness id), and clears it after it has
//! published or released the slots. The claim's CAS is a release, so anyone who
//! sees the moved `head`/`tail` also sees the record; the clear is a release after
//! the publication, so anyone who sees the record cleared also sees the stamp.
//!
//! | who died, when                                   | seen by                           | recovery                                        |
//! |--------------------------------------------------|-----------------------------------|-------------------------------------------------|
//! | producer, intent written, CAS not won            | nobody waits on it                | none needed (record is stale, matches no claim) |
//! | producer, after winning `tail`, before `2p + 1` (also mid-copy) | consumer at `p`: stamp `2p`, `tail > p` | stamp `2p` → `2p + 1 \| SKIP` (CAS); consumers skip `p` |
//! | producer, after publishing                       | nobody                            | none: its message is delivered                  |
//! | consumer, after winning `head`, before releasing | producer at `p + capacity`        | stamp `2p + 1` → `2(p + capacity)` (CAS)        |
//! | consumer, after releasing                        | nobody                            | none                                            |
//!
//! A survivor recovers position `p` only when every record that claims `p`
//! belongs to a dead participant (or no record claims it any more: the dead
//! claimer's record was reused) and the stamp is still the one it saw (the CAS
//! checks that). A live claimer always has a record naming `p` until the stamp has
//! moved, so a live claimer's slot is never touched. Waiters spin briefly, then
//! check, then sleep in slices of [`LIVENESS_SLICE`] and check again after each.
//!
//! **What is lost**: only the dead process's own in-flight messages: the message a
//! producer was putting when it died (it never became visible), or the message a
//! consumer had claimed and not yet returned to its caller. With batches, the
//! whole claimed batch of the dead process. Nothing is ever delivered twice.
//!
//! A process killed while asleep in a blocking call leaves the sleeper count it
//! raised behind: nothing is lost or wedged, but later pushes (or pops) then pay
//! one `futex_wake` system call each, until the ring is created again.
//!
//! # Blocking
//!
//! | waiter (get on empty; put on full)              | waker (a push; a pop)                              |
//! |-------------------------------------------------|----------------------------------------------------|
//! | `waiters += 1`, `fence(SeqCst)`                 | claim: SeqCst CAS of `tail` (push) or `head` (pop) |
//! | `w = word`, try the operation again             | `sleepers = waiters > 0` (SeqCst load)             |
//! | empty (full): `futex_wait(word, w)`, ≤ 50 ms    | publish (release) the claimed slots                |
//! | slot claimed, not yet published (released): poll| if `sleepers`: `word += 1`, `futex_wake`           |
//! | `waiters -= 1`                                  |                                                    |
//!
//! The waiter's fence and the waker's SeqCst claim and load make a Dekker pair
//! (the argument is at `sleepers_after_claim`): either the waker sees the
//! registration and wakes after publishing, or the waiter's retry sees the
//! claim. In that second case the waiter finds the slot claimed but not yet
//! published (or released) and is owed no wake-up, so it polls: a few yields,
//! then sleeps of 20 µs doubling to 1 ms, each ended early by any bump of the
//! word. The window between a claim and its publication is a few instructions
//! unless the claimer is descheduled.
//!
//! Checking at claim time rather than after publication is what keeps the
//! common put and get cheap: no fence after the slot's stores (which would wait
//! for them to reach the other cores), and on x86-64 no instruction beyond the
//! claim's locked CAS. A put or get with nobody asleep makes no syscall and no
//! read-modify-write beyond its claim. `close` sets the flag and bumps and
//! wakes both words unconditionally; a survivor that recovers a slot wakes
//! every sleeper.
//!
//! The loom models check this table with a modelled futex (a lost wake-up is a
//! deadlock there) and model the polling as a wait that any stamp change ends.
//!
//! # Example
//!
//! ```
//! use shmprim::ring::mpmc::{MpmcRing, AlwaysAlive};
//! let ring = MpmcRing::new(4, 8)?;
//! let me = ring.register(1, &AlwaysAlive)?;
//! ring.try_push(&me, &AlwaysAlive, b"hello")?;
//! let mut buf = [0u8; 8];
//! let n = ring.try_pop(&me, &AlwaysAlive, &mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! ring.unregister(me);
//! # Ok::<(), shmprim::Error>(())
//! ```

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Duration;

use bytemuck::Pod;

use super::CachePadded;
use crate::error::{Error, Result};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use crate::wait::{Deadline, LIVENESS_SLICE};

/// Number of in-flight records (two per liveness slot, so that a process may run
/// operations from a few threads at once).
#[cfg(not(shmprim_loom))]
pub const MAX_RECORDS: usize = 256;
/// Number of in-flight records (kept tiny under loom).
#[cfg(shmprim_loom)]
pub const MAX_RECORDS: usize = 4;

/// Largest capacity accepted.
pub const MAX_CAPACITY: u64 = 1 << 32;
/// Largest slot size accepted, in bytes.
pub const MAX_SLOT_SIZE: u64 = 1 << 30;
/// Most positions one batch claims with a single CAS.
pub const MAX_BATCH: usize = 63;

/// Positions stay below this; a larger one read from memory is corruption.
const POS_LIMIT: u64 = 1 << 56;
/// Ordering of the CAS that claims positions on `head` or `tail`: SeqCst, so
/// that together with the SeqCst load in `MpmcRing::sleepers_after_claim` it
/// orders the claim before the check for sleepers (the Blocking table). It is
/// also a Release, publishing the claim record to whoever sees the new index.
const CLAIM: Ordering = Ordering::SeqCst;
/// Stamp flag: the producer of this position died, there is nothing to deliver.
const SKIP: u64 = 1 << 63;
const OP_PUT: u64 = 1;
const OP_GET: u64 = 2;
const IDLE: u64 = 0;
const MAGIC: u64 = 0x4d50_4d43_5249_4e47; // "MPMCRING"
/// Failed attempts on a full or empty ring before going to sleep (a slot
/// another participant holds is waited for by [`busy_backoff`]).
const SPIN_TRIES: u32 = if cfg!(shmprim_loom) { 1 } else { 64 };

/// Waits a little after finding a slot claimed by another participant that has
/// not finished with it (its claimer is usually a few instructions from done).
/// As crossbeam's `Backoff`: 2, 4, ... 64 CPU hints, then a few yields (the
/// claimer may be waiting for this core); returns `true` once that is spent
/// and the claimer's liveness should be checked. Re-reading the slot at once
/// would pull its line away from the claimer just as it writes it: a copy of
/// this ring's algorithm that retried with one hint each time ran at a quarter
/// of crossbeam's speed between two threads, and at 0.85x with this backoff.
fn busy_backoff(rounds: &mut u32) -> bool {
    /// Rounds of doubling spins, then rounds of yields (crossbeam's limits).
    const SPIN_ROUNDS: u32 = if cfg!(shmprim_loom) { 0 } else { 6 };
    const YIELD_ROUNDS: u32 = if cfg!(shmprim_loom) { 1 } else { 10 };
    *rounds += 1;
    if *rounds <= SPIN_ROUNDS {
        for _ in 0..1u32 << *rounds {
            crate::sync::spin_hint();
        }
        false
    } else if *rounds <= YIELD_ROUNDS {
        crate::sync::yield_now();
        false
    } else {
        true
    }
}

/// Fast attempts a one-element put or get ([`MpmcRing::push_value`] /
/// [`MpmcRing::pop_value`]) makes while each loses its claim CAS to another
/// participant, before it takes the general path.
const LOST_CLAIM_RETRIES: u32 = if cfg!(shmprim_loom) { 2 } else { 8 };

/// Waits after the `lost`-th claim CAS in a row that another participant won
/// (crossbeam's backoff after a lost CAS, started further up): 32 CPU hints,
/// then 64 for each later one. Retrying at once pulls the index's line back
/// while the winner is still using it; with this wait, the winner finishes its
/// operation and often the next ones with the lines still in its cache. Two
/// threads on their own cores, each putting and getting, went from 0.25x
/// crossbeam's `ArrayQueue` to 1.3x with it (BENCHMARKS.md, session 10).
#[inline(always)]
fn lost_claim_pause(lost: u32) {
    let spins = if cfg!(shmprim_loom) {
        1
    } else {
        1u32 << (lost + 4).min(6)
    };
    for _ in 0..spins {
        crate::sync::spin_hint();
    }
}

/// [`lost_claim_pause`] after a one-element fast path's first lost claim, out
/// of line so that the fast path stays as short as it was without it.
#[cold]
#[inline(never)]
fn first_lost_claim_pause() {
    lost_claim_pause(1);
}

/// Runs a one-element fast `attempt`, and again after each `Lost` (after a
/// [`lost_claim_pause`]), up to [`LOST_CLAIM_RETRIES`] attempts in all.
#[inline(always)]
fn retrying_lost<R>(mut attempt: impl FnMut() -> Fast<R>) -> Fast<R> {
    let mut lost = 1;
    loop {
        match attempt() {
            Fast::Lost if lost < LOST_CLAIM_RETRIES => {
                lost += 1;
                lost_claim_pause(lost);
            }
            fast => return fast,
        }
    }
}

/// Packs a claim: position (56 bits), count (6 bits), operation (2 bits).
fn encode_claim(pos: u64, count: usize, op: u64) -> u64 {
    (pos << 8) | ((count as u64) << 2) | op
}

/// Whether `claim` covers position `pos` for operation `op`.
fn claim_covers(claim: u64, op: u64, pos: u64) -> bool {
    let start = claim >> 8;
    let count = (claim >> 2) & 63;
    claim & 3 == op && start <= pos && pos - start < count
}

/// Tells whether the holder of an in-flight record is alive. The named queues
/// ask the segment's liveness table; heap rings (tests, loom) use a closure.
pub trait Liveness {
    /// Whether the participant with this id (never 0) is alive.
    fn is_alive(&self, owner: u64) -> bool;
}

impl<F: Fn(u64) -> bool> Liveness for F {
    fn is_alive(&self, owner: u64) -> bool {
        self(owner)
    }
}

/// Liveness for rings used inside one process: everybody is alive.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysAlive;

impl Liveness for AlwaysAlive {
    fn is_alive(&self, _owner: u64) -> bool {
        true
    }
}

/// The futex words and flags of the blocking protocol.
#[repr(C)]
struct Signals {
    /// 0 open, 1 closed.
    closed: AtomicU32,
    /// Bumped after a push when a consumer may sleep.
    not_empty: AtomicU32,
    /// Consumers registered to sleep on `not_empty`.
    not_empty_waiters: AtomicU32,
    /// Bumped after a pop when a producer may sleep.
    not_full: AtomicU32,
    /// Producers registered to sleep on `not_full`.
    not_full_waiters: AtomicU32,
    /// One more than the highest record index ever claimed: `recover` looks
    /// at the records below it only. Only grows, by a `fetch_max` in
    /// `register` before the new holder's first claim.
    records_used: AtomicU32,
}

/// One participant's in-flight record.
#[repr(C, align(128))]
struct Record {
    /// Liveness id of the holder, 0 when free.
    owner: AtomicU64,
    /// `IDLE`, or the packed claim (position, count, operation) in progress.
    claim: AtomicU64,
}

/// How a ring's slots hold their messages, fixed when the ring is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotForm {
    /// Every message fills its slot (`slot_size` bytes): a slot is its stamp
    /// and the data, with no length word. [`Queue`](crate::Queue) of a `T`:
    /// a `u64` slot is 16 bytes, as in crossbeam's `ArrayQueue`.
    Fixed,
    /// Messages of 0 to `slot_size` bytes: a slot is its stamp, the message's
    /// length (`u32`), padding, and the data. [`ByteQueue`](crate::ByteQueue).
    Bytes,
}

impl SlotForm {
    /// Bytes before a slot's data.
    const fn header(self) -> u64 {
        match self {
            SlotForm::Fixed => 8,
            SlotForm::Bytes => 16,
        }
    }
}

/// The header of a slot of the [`SlotForm::Bytes`] form (a `Fixed` slot has
/// only the stamp), and of every slot of a heap ring.
#[repr(C)]
struct SlotHeader {
    /// See the stamp table in the module doc.
    stamp: AtomicU64,
    /// Length of the message in bytes (byte form; `slot_size` for elements).
    len: AtomicU32,
    _pad: u32,
}

/// The shared state of a ring, followed in memory by its slots. `#[repr(C)]`,
/// fixed-width atomics only, no pointers.
#[repr(C)]
pub struct MpmcState {
    // Config, written once by `init` and validated by `from_raw`.
    magic: u64,
    capacity: u64,
    slot_size: u64,
    stride: u64,
    records_len: u64,
    head: CachePadded<AtomicU64>,
    tail: CachePadded<AtomicU64>,
    signals: CachePadded<Signals>,
    records: [Record; MAX_RECORDS],
}

/// Bytes between slots: the header and the data, rounded up to 8. The two
/// forms' headers differ by 8 bytes, so the stride in the config also tells a
/// ring's form, and `from_raw` checks it.
fn stride_of(slot_size: u64, form: SlotForm) -> u64 {
    (form.header() + slot_size).div_ceil(8) * 8
}

fn check_params(capacity: u64, slot_size: u64) -> Result<()> {
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(Error::invalid_argument(format!(
            "capacity {capacity} is not in 1..={MAX_CAPACITY}"
        )));
    }
    if slot_size == 0 || slot_size > MAX_SLOT_SIZE {
        return Err(Error::invalid_argument(format!(
            "slot size {slot_size} is not in 1..={MAX_SLOT_SIZE}"
        )));
    }
    Ok(())
}

impl MpmcState {
    /// Offset of `head` (a `u64`) from the start of the state, for tools and
    /// corruption tests.
    pub const HEAD_OFFSET: usize = std::mem::offset_of!(MpmcState, head);
    /// Offset of `tail` (a `u64`).
    pub const TAIL_OFFSET: usize = std::mem::offset_of!(MpmcState, tail);
    /// Offset of the count of in-flight records ever claimed (`u32`): one more
    /// than the highest record index handed out.
    pub const RECORDS_USED_OFFSET: usize =
        std::mem::offset_of!(MpmcState, signals) + std::mem::offset_of!(Signals, records_used);
    /// Offset of the first in-flight record; record `i` starts
    /// `i * RECORD_SIZE` bytes later with its holder's liveness id (`u64`,
    /// 0 when free), then its claim (`u64`, at byte 8): `IDLE` (0), or
    /// `position << 8 | count << 2 | operation`, the operation 1 for a put and
    /// 2 for a get.
    pub const RECORDS_OFFSET: usize = std::mem::offset_of!(MpmcState, records);
    /// Bytes between consecutive in-flight records.
    pub const RECORD_SIZE: usize = std::mem::size_of::<Record>();
    /// Offset of the first slot; slot `i` starts `i * slot_stride` bytes later
    /// with its stamp (`u64`), then (in the [`SlotForm::Bytes`] form) its
    /// length (`u32`, at byte 8).
    pub const SLOTS_OFFSET: usize = std::mem::size_of::<MpmcState>();

    /// Offset of the closed flag (`u32`, non-zero when closed).
    pub(crate) const CLOSED_OFFSET: usize =
        std::mem::offset_of!(MpmcState, signals) + std::mem::offset_of!(Signals, closed);
    /// Offset of the count of consumers registered to sleep (`u32`).
    pub(crate) const GET_WAITERS_OFFSET: usize =
        std::mem::offset_of!(MpmcState, signals) + std::mem::offset_of!(Signals, not_empty_waiters);
    /// Offset of the count of producers registered to sleep (`u32`).
    pub(crate) const PUT_WAITERS_OFFSET: usize =
        std::mem::offset_of!(MpmcState, signals) + std::mem::offset_of!(Signals, not_full_waiters);

    /// Bytes between consecutive slots in shared memory.
    pub fn slot_stride(slot_size: u64, form: SlotForm) -> usize {
        stride_of(slot_size, form) as usize
    }

    fn new(capacity: u64, slot_size: u64, form: SlotForm) -> MpmcState {
        MpmcState {
            magic: MAGIC,
            capacity,
            slot_size,
            stride: stride_of(slot_size, form),
            records_len: MAX_RECORDS as u64,
            head: CachePadded(AtomicU64::new(0)),
            tail: CachePadded(AtomicU64::new(0)),
            signals: CachePadded(Signals {
                closed: AtomicU32::new(0),
                not_empty: AtomicU32::new(0),
                not_empty_waiters: AtomicU32::new(0),
                not_full: AtomicU32::new(0),
                not_full_waiters: AtomicU32::new(0),
                records_used: AtomicU32::new(0),
            }),
            records: std::array::from_fn(|_| Record {
                owner: AtomicU64::new(0),
                claim: AtomicU64::new(IDLE),
            }),
        }
    }

    /// Bytes needed for a ring of `capacity` slots of `slot_size` bytes in the
    /// given form (state and slots), or `InvalidArgument` when a parameter is
    /// out of range.
    pub fn memory_size(capacity: u64, slot_size: u64, form: SlotForm) -> Result<usize> {
        check_params(capacity, slot_size)?;
        capacity
            .checked_mul(stride_of(slot_size, form))
            .and_then(|s| s.checked_add(std::mem::size_of::<MpmcState>() as u64))
            .filter(|&s| s <= isize::MAX as u64)
            .map(|s| s as usize)
            .ok_or_else(|| Error::invalid_argument("ring size overflows"))
    }

    /// Alignment the memory must have.
    pub const fn align() -> usize {
        std::mem::align_of::<MpmcState>()
    }

    /// Writes a fresh, empty ring into `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for writes of `memory_size(capacity, slot_size,
    /// form)` bytes, aligned to [`MpmcState::align`], and not in use by anyone
    /// else during the call.
    pub unsafe fn init(ptr: *mut u8, capacity: u64, slot_size: u64, form: SlotForm) -> Result<()> {
        MpmcState::memory_size(capacity, slot_size, form)?;
        let state = ptr.cast::<MpmcState>();
        // SAFETY: the caller guarantees `ptr` is valid, aligned and exclusive for
        // the whole ring, which starts with the state.
        unsafe { state.write(MpmcState::new(capacity, slot_size, form)) };
        let stride = stride_of(slot_size, form) as usize;
        for i in 0..capacity as usize {
            // SAFETY: slot `i` lies inside the `memory_size` bytes (checked above)
            // and is 8-byte aligned (the state's size and the stride are); it
            // starts with its stamp, then (Bytes form) its length word.
            unsafe {
                let slot = ptr.add(std::mem::size_of::<MpmcState>() + i * stride);
                slot.cast::<AtomicU64>().write(AtomicU64::new(2 * i as u64));
                if form == SlotForm::Bytes {
                    slot.add(8).cast::<AtomicU32>().write(AtomicU32::new(0));
                }
            };
        }
        Ok(())
    }
}

/// A claimed in-flight record: what a participant uses to push and pop. Used by
/// one thread at a time (it is `Send` but not `Sync`).
#[derive(Debug)]
pub struct Agent {
    pub(crate) index: usize,
    pub(crate) id: u64,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl Agent {
    pub(crate) fn from_parts(index: usize, id: u64) -> Agent {
        Agent {
            index,
            id,
            _not_sync: PhantomData,
        }
    }

    /// The liveness id this record is held under.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Outcome of one non-blocking attempt.
enum Step {
    /// This many positions were pushed, or this many messages delivered (a pop of
    /// only skipped positions delivers 0 and counts as progress).
    Done(usize),
    Full,
    Empty,
    /// The next message is larger than the caller's buffer (byte form).
    TooBig(usize),
    /// The position is claimed by someone still working on it.
    Busy {
        op: u64,
        pos: u64,
        stamp: u64,
    },
}

/// Outcome of an inlined one-element attempt (`push_value_fast`,
/// `pop_value_fast`): small, so that it comes back in registers, unlike a
/// `Result` carrying an [`Error`].
#[derive(Debug)]
pub(crate) enum Fast<T> {
    /// Pushed, or popped this value.
    Done(T),
    /// (`try_` forms) full: no slot at `tail` to take. With `by_stamp`, the
    /// answer comes from the slot's stamp alone (the previous lap's message
    /// is still in it), as in Vyukov's original queue: a consumer may have
    /// claimed that message and be copying it out. Without, `head` confirms
    /// that no consumer has (crossbeam's check): but reading `head` pulls the
    /// consumers' busiest line away from them, on every failed attempt.
    Full,
    /// (`try_` forms) empty: nothing published at `head`. With `by_stamp`,
    /// from the slot's stamp alone (a producer may have claimed the slot and
    /// be copying in); without, `tail` confirms that none has.
    Empty,
    /// (`try_` forms) empty and closed.
    Closed,
    /// Popped a slot whose length word is not the element size (a corrupted
    /// ring of the Bytes form); the slot is released.
    WrongLength { pos: u64, len: usize },
    /// Nothing done but a cleared claim record: take the general path.
    Slow,
    /// As `Slow`, because another participant won the claim CAS (the fast
    /// path has already waited [`first_lost_claim_pause`]): the caller may
    /// try again, as [`MpmcRing::push_value`] does.
    Lost,
}

/// A one-element attempt that found nothing to take, classified out of line
/// (the [`Fast`] answers that carry no value).
#[derive(Debug, Clone, Copy)]
enum Miss {
    Full,
    Empty,
    Closed,
    Slow,
}

impl<T> From<Miss> for Fast<T> {
    #[inline(always)]
    fn from(miss: Miss) -> Fast<T> {
        match miss {
            Miss::Full => Fast::Full,
            Miss::Empty => Fast::Empty,
            Miss::Closed => Fast::Closed,
            Miss::Slow => Fast::Slow,
        }
    }
}

/// Owned memory of a ring placed on the heap.
struct HeapStorage {
    _state: Box<MpmcState>,
    _slots: Vec<SlotHeader>,
    _data: Vec<u8>,
}

/// Bytes of one message inside a slot, valid while the caller owns the slot.
pub struct SlotBytes<'a> {
    ptr: *const u8,
    len: usize,
    _slot: PhantomData<&'a [u8]>,
}

impl SlotBytes<'_> {
    /// Length of the message.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the message into the start of `dst`, which must be at least
    /// [`len`](Self::len) bytes long (panics otherwise: a caller bug).
    pub fn copy_to(&self, dst: &mut [u8]) {
        let dst = &mut dst[..self.len];
        // SAFETY: `ptr..ptr+len` lies inside a slot this caller has claimed (the
        // ring checked `len <= slot_size`), and `dst` is a distinct local buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr, dst.as_mut_ptr(), self.len) };
    }

    /// The message as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        self.copy_to(&mut v);
        v
    }
}

/// A view of an MPMC ring: in a segment ([`MpmcRing::from_raw`]) or on the heap
/// ([`MpmcRing::new`]). Every operation takes the caller's [`Agent`] and a
/// [`Liveness`] oracle.
pub struct MpmcRing {
    state: NonNull<MpmcState>,
    hdr_base: *mut u8,
    hdr_stride: usize,
    data_base: *mut u8,
    data_stride: usize,
    cap: u64,
    mask: Option<u64>,
    slot_size: usize,
    /// Whether slots carry a length word (the [`SlotForm::Bytes`] form), at
    /// byte 8 of their header.
    has_len: bool,
    name: Box<str>,
    _heap: Option<HeapStorage>,
}

// SAFETY: the ring is a view of memory that other processes use concurrently
// anyway: all shared fields are atomics, and slot data is only touched by the
// participant that has claimed the slot.
unsafe impl Send for MpmcRing {}
// SAFETY: as above; `&MpmcRing` methods only do atomic operations and copies into
// claimed slots.
unsafe impl Sync for MpmcRing {}

impl std::fmt::Debug for MpmcRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcRing")
            .field("name", &self.name)
            .field("capacity", &self.cap)
            .field("slot_size", &self.slot_size)
            .finish()
    }
}

impl MpmcRing {
    /// A ring on the heap with `capacity` slots of up to `slot_size` bytes (the
    /// [`SlotForm::Bytes`] form; for tests, loom models and in-process use).
    pub fn new(capacity: u64, slot_size: u64) -> Result<MpmcRing> {
        MpmcRing::with_form(capacity, slot_size, SlotForm::Bytes)
    }

    /// A ring on the heap with `capacity` slots of `slot_size` bytes in the
    /// given form.
    pub fn with_form(capacity: u64, slot_size: u64, form: SlotForm) -> Result<MpmcRing> {
        MpmcState::memory_size(capacity, slot_size, form)?;
        let mut state = Box::new(MpmcState::new(capacity, slot_size, form));
        let mut slots: Vec<SlotHeader> = (0..capacity)
            .map(|i| SlotHeader {
                stamp: AtomicU64::new(2 * i),
                len: AtomicU32::new(0),
                _pad: 0,
            })
            .collect();
        let mut data = vec![0u8; (capacity * slot_size) as usize];
        let state_ptr = NonNull::from(&mut *state);
        let hdr_base = slots.as_mut_ptr().cast::<u8>();
        let data_base = data.as_mut_ptr();
        Ok(MpmcRing {
            state: state_ptr,
            hdr_base,
            hdr_stride: std::mem::size_of::<SlotHeader>(),
            data_base,
            data_stride: slot_size as usize,
            cap: capacity,
            mask: capacity.is_power_of_two().then_some(capacity - 1),
            slot_size: slot_size as usize,
            has_len: form == SlotForm::Bytes,
            name: "<heap>".into(),
            _heap: Some(HeapStorage {
                _state: state,
                _slots: slots,
                _data: data,
            }),
        })
    }

    /// A view of a ring that [`MpmcState::init`] wrote at `ptr`, checked against
    /// the expected `capacity`, `slot_size` and `form` (from the segment
    /// header): a mismatch is `Corrupted`. `name` is used in errors.
    ///
    /// # Safety
    ///
    /// `ptr` must be aligned to [`MpmcState::align`] and valid for reads and
    /// writes of `len` bytes for as long as the ring is used; the memory may be
    /// shared with other processes but must only be accessed through rings.
    pub unsafe fn from_raw(
        ptr: *mut u8,
        len: usize,
        capacity: u64,
        slot_size: u64,
        form: SlotForm,
        name: &str,
    ) -> Result<MpmcRing> {
        let needed = MpmcState::memory_size(capacity, slot_size, form)?;
        if len < needed {
            return Err(Error::corrupted(
                name,
                format!("ring needs {needed} bytes, has {len}"),
            ));
        }
        let state = ptr.cast::<MpmcState>();
        // SAFETY: `len >= needed >= size_of::<MpmcState>()` and `ptr` is aligned
        // (caller), so the plain config fields are in bounds; they are written
        // once before the segment is published and read here by volatile copies.
        let (magic, cap, size, stride, recs) = unsafe {
            (
                std::ptr::addr_of!((*state).magic).read_volatile(),
                std::ptr::addr_of!((*state).capacity).read_volatile(),
                std::ptr::addr_of!((*state).slot_size).read_volatile(),
                std::ptr::addr_of!((*state).stride).read_volatile(),
                std::ptr::addr_of!((*state).records_len).read_volatile(),
            )
        };
        if magic != MAGIC
            || cap != capacity
            || size != slot_size
            || stride != stride_of(slot_size, form)
            || recs != MAX_RECORDS as u64
        {
            return Err(Error::corrupted(
                name,
                format!(
                    "ring header (magic {magic:#x}, capacity {cap}, slot size {size}, stride \
                     {stride}, records {recs}) does not match capacity {capacity}, slot \
                     size {slot_size}, form {form:?}"
                ),
            ));
        }
        // SAFETY: `ptr` is valid and non-null (caller).
        let state = unsafe { NonNull::new_unchecked(state) };
        let slots = ptr.wrapping_add(std::mem::size_of::<MpmcState>());
        Ok(MpmcRing {
            state,
            hdr_base: slots,
            hdr_stride: stride as usize,
            data_base: slots.wrapping_add(form.header() as usize),
            data_stride: stride as usize,
            cap,
            mask: cap.is_power_of_two().then_some(cap - 1),
            slot_size: size as usize,
            has_len: form == SlotForm::Bytes,
            name: name.into(),
            _heap: None,
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Size of a slot's data (the element size, or the largest message).
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    fn state(&self) -> &MpmcState {
        // SAFETY: `state` points at a live MpmcState for the ring's lifetime
        // (heap box or mapping, see the constructors); all shared fields are atomic.
        unsafe { self.state.as_ref() }
    }

    fn signals(&self) -> &Signals {
        &self.state().signals.0
    }

    #[inline]
    fn index(&self, pos: u64) -> usize {
        (match self.mask {
            Some(m) => pos & m,
            None => pos % self.cap,
        }) as usize
    }

    /// The stamp of the slot of `pos`.
    #[inline]
    fn stamp(&self, pos: u64) -> &AtomicU64 {
        let i = self.index(pos);
        // SAFETY: `i < capacity`, so the slot lies inside the slot area, whose
        // `capacity` slots each start with an initialised, 8-byte aligned stamp.
        unsafe { &*self.hdr_base.add(i * self.hdr_stride).cast::<AtomicU64>() }
    }

    /// The stamp and the data area of the slot of `pos`, from one index
    /// computation (for the one-element fast paths).
    #[inline(always)]
    fn slot_at(&self, pos: u64) -> (&AtomicU64, *mut u8) {
        let i = self.index(pos);
        // SAFETY: `i < capacity`, so the slot's header (an initialised, 8-byte
        // aligned stamp first) and its `slot_size` data bytes lie inside the
        // slot area (see `stamp` and `data`).
        unsafe {
            (
                &*self.hdr_base.add(i * self.hdr_stride).cast::<AtomicU64>(),
                self.data_base.add(i * self.data_stride),
            )
        }
    }

    /// Length of the message in the slot of `pos`, which the caller has
    /// claimed: its length word (Bytes form; not yet checked against
    /// `slot_size`), or `slot_size` (Fixed form).
    #[inline]
    fn msg_len(&self, pos: u64) -> usize {
        if !self.has_len {
            return self.slot_size;
        }
        // Relaxed: the Acquire load of the stamp ordered it after the producer's write.
        self.len_word(pos).load(Ordering::Relaxed) as usize
    }

    /// The length word of the slot of `pos`; only for the Bytes form.
    #[inline]
    fn len_word(&self, pos: u64) -> &AtomicU32 {
        debug_assert!(self.has_len);
        let i = self.index(pos);
        // SAFETY: `i < capacity`; in the Bytes form (and on the heap) each slot
        // header has an initialised `u32` length word at byte 8 (`SlotHeader`).
        unsafe {
            &*self
                .hdr_base
                .add(i * self.hdr_stride + 8)
                .cast::<AtomicU32>()
        }
    }

    /// Records the length of the message the caller is putting into the slot
    /// of `pos` (nothing to record in the Fixed form, where it is `slot_size`).
    #[inline]
    fn set_len(&self, pos: u64, len: usize) {
        if !self.has_len {
            debug_assert_eq!(len, self.slot_size);
            return;
        }
        // Relaxed: published by the Release store of the stamp that follows.
        self.len_word(pos).store(len as u32, Ordering::Relaxed);
    }

    #[inline]
    fn data(&self, pos: u64) -> *mut u8 {
        // SAFETY: `index < capacity`, so the slot's `slot_size` data bytes lie
        // inside the slot area.
        unsafe { self.data_base.add(self.index(pos) * self.data_stride) }
    }

    fn corrupted(&self, detail: String) -> Error {
        Error::corrupted(&self.name, detail)
    }

    fn record(&self, agent: &Agent) -> &Record {
        &self.state().records[agent.index]
    }

    // ------------------------------------------------------------ records

    /// Claims an in-flight record for the participant `id` (non-zero): a free one,
    /// else one whose owner is dead. `TooManyParticipants` if all are held.
    pub fn register(&self, id: u64, live: &dyn Liveness) -> Result<Agent> {
        assert_ne!(id, 0, "participant ids are non-zero");
        let records = &self.state().records;
        for free_only in [true, false] {
            for (i, r) in records.iter().enumerate() {
                let owner = r.owner.load(Ordering::Relaxed);
                let takeable = if free_only {
                    owner == 0
                } else {
                    owner != 0 && !live.is_alive(owner)
                };
                // Acquire: pairs with the Release clear of the previous holder,
                // so its last claim is settled before we overwrite it.
                if takeable
                    && r.owner
                        .compare_exchange(owner, id, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    // Relaxed: ordered before our first claim by program order;
                    // a survivor that sees that claim's CAS (Acquire) sees it.
                    self.signals()
                        .records_used
                        .fetch_max(i as u32 + 1, Ordering::Relaxed);
                    r.claim.store(IDLE, Ordering::Release);
                    return Ok(Agent::from_parts(i, id));
                }
            }
        }
        Err(Error::TooManyParticipants {
            name: self.name.to_string(),
            slots: MAX_RECORDS as u32,
        })
    }

    /// Gives a record back (it must not be in the middle of an operation).
    pub fn unregister(&self, agent: Agent) {
        let r = self.record(&agent);
        r.claim.store(IDLE, Ordering::Relaxed);
        // Release: pairs with the Acquire CAS in `register` by the next holder.
        let _ = r
            .owner
            .compare_exchange(agent.id, 0, Ordering::Release, Ordering::Relaxed);
    }

    // ------------------------------------------------------------ one attempt

    /// One attempt to push up to `n` items (at most [`MAX_BATCH`]); `item(i)` gives
    /// the bytes of the `i`-th (at most `slot_size`).
    fn push_step<'s>(
        &self,
        agent: &Agent,
        n: usize,
        item: &impl Fn(usize) -> &'s [u8],
    ) -> Result<Step> {
        let st = self.state();
        let cap = self.cap;
        let want = n.min(MAX_BATCH).min(self.cap as usize);
        let mut lost = 0u32;
        loop {
            let t = st.tail.0.load(Ordering::Relaxed);
            if t >= POS_LIMIT {
                return Err(self.corrupted(format!("tail position {t} out of range")));
            }
            // Acquire: pairs with the consumer's Release of the slot, so its copy
            // out of the previous lap happens before our copy in.
            let s = self.stamp(t).load(Ordering::Acquire);
            if s == 2 * t {
                let mut k = 1;
                while k < want
                    && self.stamp(t + k as u64).load(Ordering::Acquire) == 2 * (t + k as u64)
                {
                    k += 1;
                }
                let rec = self.record(agent);
                rec.claim
                    .store(encode_claim(t, k, OP_PUT), Ordering::Relaxed);
                // CLAIM (SeqCst, so Release): publishes the claim record above to
                // anyone who sees the new tail (survivors looking for the claimer
                // of `t`); SeqCst for the sleeper check, see `sleepers_after_claim`.
                if st
                    .tail
                    .0
                    .compare_exchange_weak(t, t + k as u64, CLAIM, Ordering::Relaxed)
                    .is_err()
                {
                    // The claim names a position we did not win: clear it, or a
                    // survivor could take it for the claim of the live winner's
                    // position and never recover that one if its winner dies.
                    rec.claim.store(IDLE, Ordering::Relaxed);
                    lost = lost.saturating_add(1);
                    lost_claim_pause(lost);
                    continue;
                }
                let sleepers = self.sleepers_after_claim(&self.signals().not_empty_waiters);
                for i in 0..k {
                    let pos = t + i as u64;
                    let bytes = item(i);
                    debug_assert!(bytes.len() <= self.slot_size);
                    // SAFETY: we own slot `pos` (won the CAS on a free stamp), the
                    // data area has `slot_size >= bytes.len()` bytes, and `bytes`
                    // is the caller's own memory.
                    unsafe {
                        std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data(pos), bytes.len())
                    };
                    self.set_len(pos, bytes.len());
                    // Release: pairs with the consumer's Acquire load of the stamp:
                    // the data and length are visible before the stamp says full.
                    publish_stamp(self.stamp(pos), 2 * pos + 1);
                }
                // Release: a survivor that sees the record cleared sees the stamps.
                rec.claim.store(IDLE, Ordering::Release);
                if sleepers {
                    let sig = self.signals();
                    wake_up(&sig.not_empty, k);
                }
                return Ok(Step::Done(k));
            }
            if t >= cap && (s & !SKIP == 2 * (t - cap) + 1 || s == 2 * (t - cap)) {
                // SeqCst fence: as crossbeam, so that `head` is not older than the
                // stamp we just read.
                fence(Ordering::SeqCst);
                // Acquire: pairs with the Release CAS of a consumer that claimed
                // `t - cap`, so its record is visible to `recover`.
                let h = st.head.0.load(Ordering::Acquire);
                if h.saturating_add(cap) <= t {
                    return Ok(Step::Full);
                }
                // The slot is still held by the previous lap: by its producer
                // (stamp `2(t - cap)`) or its consumer (full stamp, head past it).
                let op = if s == 2 * (t - cap) { OP_PUT } else { OP_GET };
                return Ok(Step::Busy {
                    op,
                    pos: t - cap,
                    stamp: s,
                });
            }
            let legit = |s: u64| {
                s == 2 * t || (t >= cap && (s & !SKIP == 2 * (t - cap) + 1 || s == 2 * (t - cap)))
            };
            self.confirm_impossible(&st.tail.0, t, s, legit, "tail")?;
        }
    }

    /// Called when stamp `s` of position `pos` looks impossible for the index
    /// (`head` or `tail`) at `pos`. Loads may return stale values, so this checks
    /// with read-modify-writes, which read the index's latest value: if the index
    /// is still `pos` before and after a fresh load of the stamp, and that stamp
    /// is not `legit`, the ring is corrupted. Returns `Ok` to retry.
    fn confirm_impossible(
        &self,
        index: &AtomicU64,
        pos: u64,
        s: u64,
        legit: impl Fn(u64) -> bool,
        what: &str,
    ) -> Result<()> {
        // Acquire: synchronises with every claim CAS on the index so far (they
        // form one release sequence), so the stamp load below is not older than
        // the claims that led to `pos`.
        if index
            .compare_exchange(pos, pos, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Ok(());
        }
        // Acquire: as for every stamp load.
        let s2 = self.stamp(pos).load(Ordering::Acquire);
        if legit(s2) {
            return Ok(());
        }
        // A stamp moved past `pos` by a claim of `pos` would make this RMW see the
        // index past `pos` (the claim happens before the stamp we read).
        if index
            .compare_exchange(pos, pos, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Ok(());
        }
        Err(self.corrupted(format!(
            "slot stamp {s2:#x} (first seen {s:#x}) impossible at {what} position {pos}"
        )))
    }

    /// One attempt to pop up to `n` messages (at most [`MAX_BATCH`]), handing each
    /// to `sink(i, bytes)`. With `limit`, a first message longer than `limit` is
    /// left in place and reported as `TooBig`.
    fn pop_step(
        &self,
        agent: &Agent,
        n: usize,
        limit: Option<usize>,
        sink: &mut impl FnMut(usize, SlotBytes<'_>),
    ) -> Result<Step> {
        let st = self.state();
        let cap = self.cap;
        let want = n.min(MAX_BATCH).min(self.cap as usize);
        let mut lost = 0u32;
        loop {
            let h = st.head.0.load(Ordering::Relaxed);
            if h >= POS_LIMIT {
                return Err(self.corrupted(format!("head position {h} out of range")));
            }
            // Acquire: pairs with the producer's Release publication of the slot.
            let s = self.stamp(h).load(Ordering::Acquire);
            if s & !SKIP == 2 * h + 1 {
                if let Some(limit) = limit {
                    let len = self.msg_len(h);
                    if s & SKIP == 0 && len > limit && len <= self.slot_size {
                        return Ok(Step::TooBig(len));
                    }
                }
                let mut k = 1;
                while k < want
                    && self.stamp(h + k as u64).load(Ordering::Acquire) & !SKIP
                        == 2 * (h + k as u64) + 1
                {
                    k += 1;
                }
                if limit.is_some() {
                    k = 1;
                }
                let rec = self.record(agent);
                rec.claim
                    .store(encode_claim(h, k, OP_GET), Ordering::Relaxed);
                // CLAIM (SeqCst, so Release): publishes the claim record to anyone
                // who sees the new head (producers of the next lap looking for our
                // record); SeqCst for the sleeper check, see `sleepers_after_claim`.
                if st
                    .head
                    .0
                    .compare_exchange_weak(h, h + k as u64, CLAIM, Ordering::Relaxed)
                    .is_err()
                {
                    // As in `push_step`: a lost claim must not stay on record.
                    rec.claim.store(IDLE, Ordering::Relaxed);
                    lost = lost.saturating_add(1);
                    lost_claim_pause(lost);
                    continue;
                }
                let sleepers = self.sleepers_after_claim(&self.signals().not_full_waiters);
                let mut delivered = 0;
                let mut bad = None;
                for i in 0..k {
                    let pos = h + i as u64;
                    let slot = self.stamp(pos);
                    // Acquire: as above, for the slots after the first.
                    let stamp = slot.load(Ordering::Acquire);
                    let len = self.msg_len(pos);
                    if stamp & SKIP == 0 {
                        if len > self.slot_size || limit.is_some_and(|l| len > l) {
                            bad = Some(format!(
                                "message length {len} exceeds slot size {} at position {pos}",
                                self.slot_size
                            ));
                        } else if bad.is_none() {
                            sink(
                                delivered,
                                SlotBytes {
                                    ptr: self.data(pos),
                                    len,
                                    _slot: PhantomData,
                                },
                            );
                            delivered += 1;
                        }
                    }
                    // Release: pairs with the next lap's producer's Acquire load:
                    // our copy out happens before its copy in.
                    publish_stamp(slot, 2 * (pos + cap));
                }
                // Release: a survivor that sees the record cleared sees the stamps.
                rec.claim.store(IDLE, Ordering::Release);
                if sleepers {
                    let sig = self.signals();
                    wake_up(&sig.not_full, k);
                }
                if let Some(detail) = bad {
                    return Err(self.corrupted(detail));
                }
                return Ok(Step::Done(delivered));
            }
            let prev_lap_full = h >= cap && s & !SKIP == 2 * (h - cap) + 1;
            if s == 2 * h || prev_lap_full {
                // SeqCst fence: as crossbeam, so `tail` is not older than the stamp.
                fence(Ordering::SeqCst);
                // Acquire: pairs with the Release CAS of the producer that claimed
                // `h`, so its record is visible to `recover`.
                let t = st.tail.0.load(Ordering::Acquire);
                if t <= h {
                    return Ok(Step::Empty);
                }
                // Claimed by the producer of `h`, which has not published yet; or
                // the slot is still held by the consumer of the previous lap.
                return Ok(if s == 2 * h {
                    Step::Busy {
                        op: OP_PUT,
                        pos: h,
                        stamp: s,
                    }
                } else {
                    Step::Busy {
                        op: OP_GET,
                        pos: h - cap,
                        stamp: s,
                    }
                });
            }
            let legit = |s: u64| {
                s & !SKIP == 2 * h + 1 || s == 2 * h || (h >= cap && s & !SKIP == 2 * (h - cap) + 1)
            };
            self.confirm_impossible(&st.head.0, h, s, legit, "head")?;
        }
    }

    /// Recovers position `pos` claimed for `op` if every claimer is dead: see the
    /// module doc. Returns whether this call changed the stamp.
    fn recover(&self, live: &dyn Liveness, op: u64, pos: u64, stamp: u64) -> bool {
        // Relaxed: the claimer's `register` raised the count before its claim
        // CAS, and that CAS happens before this call (we acquired the index
        // value past it, by an Acquire load or a SeqCst fence, before we saw
        // the slot busy), so this load sees the raised count. Bounded, since
        // it is read from shared memory.
        let used = (self.signals().records_used.load(Ordering::Relaxed) as usize).min(MAX_RECORDS);
        for r in &self.state().records[..used] {
            // Acquire: pairs with the Release clear after publication: if the
            // claim is gone, the stamp CAS below sees the moved stamp and fails.
            let claim = r.claim.load(Ordering::Acquire);
            if claim_covers(claim, op, pos) {
                let owner = r.owner.load(Ordering::Acquire);
                if owner != 0 && live.is_alive(owner) {
                    return false;
                }
            }
        }
        let new = if op == OP_PUT {
            (2 * pos + 1) | SKIP
        } else {
            2 * (pos + self.cap)
        };
        // AcqRel: acquires the dead claimer's last writes (nothing we read), and
        // releases the new stamp to the next claimer, as a publication would.
        let changed = self
            .stamp(pos)
            .compare_exchange(stamp, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        #[cfg(shmprim_loom)]
        busy_model::stamp_changed();
        changed
    }

    // ------------------------------------------------------------ signals

    /// Called right after winning a claim of the index (`tail` for a push,
    /// `head` for a pop) with a [`CLAIM`] (SeqCst) CAS: whether a sleeper
    /// registered on `waiters` must be woken once the claimed slots are
    /// published or released. See the Blocking table: either the waiter's retry
    /// sees our claim (and then polls the slot rather than sleep), or we see its
    /// registration here.
    ///
    /// Why no fence is needed (C++20 [atomics.order] p4, which Rust follows):
    /// call the claim CAS `B`, this load `L` (both SeqCst, so `B` precedes `L` in
    /// the single order S), the waiter's registration `R`, its SeqCst fence `X`
    /// and its later load of the index `T`. If `L` missed `R`, `L` is
    /// coherence-ordered before `R`, which happens before `X`: `L` precedes `X`
    /// in S (rule 4.2). If `T` missed `B`, `X` happens before `T`, which is
    /// coherence-ordered before `B`: `X` precedes `B` (rule 4.3). Both at once
    /// would give `B < L < X < B` in S, a cycle. On x86-64 the CAS is a locked
    /// instruction and the load a plain one: the sleeper check costs nothing.
    ///
    /// Loom treats SeqCst accesses as AcqRel (it does model SeqCst fences), so
    /// under loom an explicit fence stands in here for that rule; the models
    /// then check the rest of the protocol (claim-time check, polling a claimed
    /// slot), and fail if this fence is removed.
    #[inline]
    fn sleepers_after_claim(&self, waiters: &AtomicU32) -> bool {
        // SeqCst fence (loom only): pairs with the waiter's fence between its
        // registration and its retry, standing in for the rule above.
        #[cfg(shmprim_loom)]
        fence(Ordering::SeqCst);
        // SeqCst: with the SeqCst claim CAS, the waker's half of the Dekker pair
        // with the waiter's registration and fence (see above).
        waiters.load(Ordering::SeqCst) != 0
    }

    /// After a recovery changed a stamp: wake every sleeper on both words (the
    /// claim-time check above does not cover a stamp changed by a survivor).
    fn notify_recovered(&self) {
        let sig = self.signals();
        // SeqCst fence: pairs with the waiter's fence between its registration
        // and its retry.
        fence(Ordering::SeqCst);
        for (word, waiters) in [
            (&sig.not_empty, &sig.not_empty_waiters),
            (&sig.not_full, &sig.not_full_waiters),
        ] {
            if waiters.load(Ordering::Relaxed) != 0 {
                wake_up(word, usize::MAX);
            }
        }
    }

    /// Whether [`close`](Self::close) was called.
    #[inline]
    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release store in `close`.
        self.signals().closed.load(Ordering::Acquire) != 0
    }

    /// Closes the ring: later pushes fail with `Closed`, pops drain what is left
    /// and then fail with `Closed`; every sleeper is woken.
    pub fn close(&self) {
        let sig = self.signals();
        // Release: pairs with the Acquire load in `is_closed`.
        sig.closed.store(1, Ordering::Release);
        for word in [&sig.not_empty, &sig.not_full] {
            // Release: a waiter woken by the bump sees `closed`.
            word.fetch_add(1, Ordering::Release);
            crate::wait::wake(word, &AtomicU32::new(1), u32::MAX);
        }
    }

    /// Number of messages in the ring (a snapshot; in-flight claims count as in).
    pub fn len(&self) -> usize {
        let st = self.state();
        loop {
            let t = st.tail.0.load(Ordering::SeqCst);
            let h = st.head.0.load(Ordering::SeqCst);
            if st.tail.0.load(Ordering::SeqCst) == t {
                return t.saturating_sub(h).min(self.cap) as usize;
            }
        }
    }

    /// Whether the ring holds no message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every slot is taken.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    // ------------------------------------------------------------ operations

    fn check_message(&self, len: usize) -> Result<()> {
        if len > self.slot_size {
            return Err(Error::invalid_argument(format!(
                "message of {len} bytes exceeds the maximum of {}",
                self.slot_size
            )));
        }
        if !self.has_len && len != self.slot_size {
            return Err(Error::invalid_argument(format!(
                "message of {len} bytes in a ring of {}-byte elements",
                self.slot_size
            )));
        }
        Ok(())
    }

    /// Pushes up to `n` items, `item(i)` giving each one's bytes, waiting until
    /// `deadline` for room for the first (with `try_once`, not waiting at all:
    /// `Full`; the deadline is then ignored, so pass [`Deadline::never`] and
    /// save a clock read); returns how many were pushed (at least
    /// one, and all that fit). `Full` replaced by `Timeout` when the deadline is
    /// not now, `Closed` after [`close`](Self::close).
    pub fn push_with<'s>(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        n: usize,
        item: impl Fn(usize) -> &'s [u8],
        deadline: Deadline,
        try_once: bool,
    ) -> Result<usize> {
        for i in 0..n {
            self.check_message(item(i).len())?;
        }
        if n == 0 {
            return Ok(0);
        }
        let sig = self.signals();
        let mut done = 0;
        let mut tries = 0u32;
        let mut busy_tries = 0u32;
        let mut busy_rounds = 0u32;
        loop {
            if self.is_closed() {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Error::Closed)
                };
            }
            let step = self.push_step(agent, n - done, &|i| item(done + i))?;
            match step {
                Step::Done(k) => {
                    done += k;
                    if done == n {
                        return Ok(done);
                    }
                    tries = 0;
                    busy_tries = 0;
                    continue;
                }
                _ if done > 0 => return Ok(done),
                Step::Busy { op, pos, stamp } => {
                    if !busy_backoff(&mut busy_tries) {
                        continue;
                    }
                    busy_tries = 0;
                    if self.recover(live, op, pos, stamp) {
                        self.notify_recovered();
                        continue;
                    }
                    if try_once {
                        return Err(Error::Full);
                    }
                }
                Step::Full => {
                    if try_once {
                        return Err(Error::Full);
                    }
                    if tries < SPIN_TRIES {
                        tries += 1;
                        crate::sync::spin_hint();
                        continue;
                    }
                }
                Step::Empty | Step::TooBig(_) => unreachable!("push never sees these"),
            }
            tries = 0;
            // Sleep until a pop (or close) bumps `not_full`.
            sig.not_full_waiters.fetch_add(1, Ordering::Relaxed);
            // SeqCst fence: pairs with the fence in `notify` (Dekker pair).
            fence(Ordering::SeqCst);
            let w = sig.not_full.load(Ordering::Acquire);
            let retry = if self.is_closed() {
                Err(Error::Closed)
            } else {
                self.push_step(agent, n, &item)
            };
            let mut busy = None;
            let outcome = match retry {
                Ok(Step::Done(k)) => Some(Ok(k)),
                Ok(Step::Busy { pos, stamp, .. }) => {
                    busy = Some((pos, stamp));
                    None
                }
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            };
            if outcome.is_none() {
                if deadline.has_passed() {
                    sig.not_full_waiters.fetch_sub(1, Ordering::Relaxed);
                    return Err(Error::Timeout);
                }
                if let Some((pos, stamp)) = busy {
                    // A consumer has claimed the slot and not released it yet; it
                    // may have checked for sleepers before we registered, so no
                    // wake-up is owed: poll.
                    self.busy_pause(&sig.not_full, w, deadline, &mut busy_rounds, pos, stamp);
                } else {
                    busy_rounds = 0;
                    sleep_slice(&sig.not_full, w, deadline);
                }
            }
            sig.not_full_waiters.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Some(Ok(k)) => {
                    done = k;
                    if done == n {
                        return Ok(done);
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
    }

    /// Pops up to `n` messages, handing each to `sink(i, bytes)`, waiting until
    /// `deadline` for the first; returns how many were delivered (at least one).
    /// With `limit`, pops one message only if it fits in `limit` bytes, else fails
    /// with `BufferTooSmall` naming the size needed and leaves it in place.
    #[allow(clippy::too_many_arguments)]
    pub fn pop_with(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        n: usize,
        limit: Option<usize>,
        mut sink: impl FnMut(usize, SlotBytes<'_>),
        deadline: Deadline,
        try_once: bool,
    ) -> Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        let sig = self.signals();
        let mut done = 0;
        let mut tries = 0u32;
        let mut busy_tries = 0u32;
        let too_big = |len: usize| too_small_error(limit.unwrap_or(0), len);
        let mut idle_rounds = 0u64;
        let mut busy_rounds = 0u32;
        loop {
            // Skipping dead producers' slots delivers nothing; on a corrupted ring
            // that could go on for a very long time, so it is bounded by the
            // deadline (and a try gives up after a lap's worth).
            idle_rounds += 1;
            if idle_rounds > 2 * self.cap + 2 * MAX_RECORDS as u64
                && (try_once || deadline.has_passed())
            {
                return Err(if try_once {
                    Error::Empty
                } else {
                    Error::Timeout
                });
            }
            let step = self.pop_step(agent, n - done, limit, &mut |i, b| sink(done + i, b))?;
            match step {
                Step::Done(k) => {
                    if k > 0 {
                        idle_rounds = 0;
                    }
                    done += k;
                    if done == n || (done > 0 && limit.is_some()) {
                        return Ok(done);
                    }
                    tries = 0;
                    busy_tries = 0;
                    continue;
                }
                _ if done > 0 => return Ok(done),
                Step::TooBig(len) => return Err(too_big(len)),
                Step::Busy { op, pos, stamp } => {
                    if !busy_backoff(&mut busy_tries) {
                        continue;
                    }
                    busy_tries = 0;
                    if self.recover(live, op, pos, stamp) {
                        self.notify_recovered();
                        continue;
                    }
                    if try_once {
                        return Err(Error::Empty);
                    }
                }
                Step::Empty => {
                    if self.is_closed() {
                        // Drained: `closed` was set before we found it empty.
                        return Err(Error::Closed);
                    }
                    if try_once {
                        return Err(Error::Empty);
                    }
                    if tries < SPIN_TRIES {
                        tries += 1;
                        crate::sync::spin_hint();
                        continue;
                    }
                }
                Step::Full => unreachable!("pop never sees Full"),
            }
            tries = 0;
            // Sleep until a push (or close) bumps `not_empty`.
            sig.not_empty_waiters.fetch_add(1, Ordering::Relaxed);
            // SeqCst fence: pairs with the fence in `notify` (Dekker pair).
            fence(Ordering::SeqCst);
            let w = sig.not_empty.load(Ordering::Acquire);
            let closed = self.is_closed();
            let mut busy = None;
            let outcome = match self.pop_step(agent, n, limit, &mut sink) {
                Ok(Step::Done(k)) => Some(Ok(k)),
                Ok(Step::TooBig(len)) => Some(Err(too_big(len))),
                Ok(Step::Empty) if closed => Some(Err(Error::Closed)),
                Ok(Step::Busy { pos, stamp, .. }) => {
                    busy = Some((pos, stamp));
                    None
                }
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            };
            if outcome.is_none() {
                if deadline.has_passed() {
                    sig.not_empty_waiters.fetch_sub(1, Ordering::Relaxed);
                    return Err(Error::Timeout);
                }
                if let Some((pos, stamp)) = busy {
                    // A producer has claimed the slot and not published it yet;
                    // it may have checked for sleepers before we registered, so
                    // no wake-up is owed: poll.
                    self.busy_pause(&sig.not_empty, w, deadline, &mut busy_rounds, pos, stamp);
                } else {
                    busy_rounds = 0;
                    sleep_slice(&sig.not_empty, w, deadline);
                }
            }
            sig.not_empty_waiters.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Some(Ok(k)) => {
                    done = k;
                    if done == n || (done > 0 && limit.is_some()) {
                        return Ok(done);
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
    }

    // ------------------------------------------------------------ one element

    /// What a fast-path outcome other than [`Fast::Slow`] means for the caller.
    #[inline]
    pub(crate) fn fast_result<T>(&self, fast: Fast<T>) -> Result<T> {
        match fast {
            Fast::Done(v) => Ok(v),
            Fast::Full => Err(Error::Full),
            Fast::Empty => Err(Error::Empty),
            Fast::Closed => Err(Error::Closed),
            Fast::WrongLength { pos, len } => Err(self.wrong_length(pos, len)),
            Fast::Slow | Fast::Lost => unreachable!("the caller takes the general path"),
        }
    }

    #[cold]
    fn wrong_length(&self, pos: u64, len: usize) -> Error {
        self.corrupted(format!(
            "message length {len} in a ring of {}-byte values at position {pos}",
            self.slot_size
        ))
    }

    /// Pushes one `T` (the ring's slots must be `size_of::<T>()` bytes, as in
    /// [`Queue`](crate::Queue)), waiting until `deadline` for room unless
    /// `try_once` (`Full` at once). The same as [`push_with`](Self::push_with) of
    /// its bytes, with the common case (room at `tail`, no contention) done
    /// inline: one claim CAS, a typed store, the stamp.
    #[inline]
    pub fn push_value<T: Pod>(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        value: &T,
        deadline: Deadline,
        try_once: bool,
    ) -> Result<()> {
        match retrying_lost(|| self.push_value_fast(agent, value, try_once, false)) {
            Fast::Slow | Fast::Lost => {}
            fast => return self.fast_result(fast),
        }
        self.push_with(
            agent,
            live,
            1,
            |_| bytemuck::bytes_of(value),
            deadline,
            try_once,
        )
        .map(drop)
    }

    /// One uncontended attempt at [`push_value`](Self::push_value): `Done` when
    /// it pushed, `Full` when (with `try_once`) it found the ring full (by the
    /// slot's stamp alone with `by_stamp`: see [`Fast::Full`]); `Lost` when
    /// another producer took the slot first; `Slow` leaves everything else
    /// (busy, closed, corruption) to the general path. `Lost` and `Slow` have
    /// changed nothing but a cleared claim record.
    ///
    /// Only the taking of a free slot is inlined; a slot that is not free is
    /// classified out of line ([`push_miss`](Self::push_miss)), so that the
    /// code around a caller's put stays short.
    #[inline(always)]
    pub(crate) fn push_value_fast<T: Pod>(
        &self,
        agent: &Agent,
        value: &T,
        try_once: bool,
        by_stamp: bool,
    ) -> Fast<()> {
        let size = std::mem::size_of::<T>();
        self.push_fast_by(agent, size, try_once, by_stamp, |data| {
            // SAFETY: `data` is the claimed slot's `slot_size == size_of::<T>()`
            // bytes (`push_fast_by`); unaligned because slot data is only
            // 8-byte aligned.
            unsafe { std::ptr::write_unaligned(data.cast::<T>(), *value) }
        })
    }

    /// [`push_value_fast`](Self::push_value_fast) of an element given as its
    /// bytes (the C functions); `msg.len()` must be the slot size, else `Slow`.
    #[inline(always)]
    pub(crate) fn push_bytes_fast(
        &self,
        agent: &Agent,
        msg: &[u8],
        try_once: bool,
        by_stamp: bool,
    ) -> Fast<()> {
        self.push_fast_by(agent, msg.len(), try_once, by_stamp, |data| {
            // SAFETY: `data` is the claimed slot's `slot_size == msg.len()`
            // bytes (`push_fast_by`), which `msg` does not overlap.
            unsafe { super::copy_bytes(msg.as_ptr(), data, msg.len()) }
        })
    }

    /// The protocol of the one-element fast push: `write` fills the claimed
    /// slot's `size` bytes (`size` must be the slot size, else `Slow`).
    #[inline(always)]
    fn push_fast_by(
        &self,
        agent: &Agent,
        size: usize,
        try_once: bool,
        by_stamp: bool,
        write: impl FnOnce(*mut u8),
    ) -> Fast<()> {
        if size != self.slot_size || self.is_closed() {
            return Fast::Slow;
        }
        let st = self.state();
        let t = st.tail.0.load(Ordering::Relaxed);
        if t >= POS_LIMIT {
            return Fast::Slow;
        }
        let (slot, data) = self.slot_at(t);
        // Acquire: pairs with the consumer's Release of the slot, as in `push_step`.
        let s = slot.load(Ordering::Acquire);
        if s != 2 * t {
            return self.push_miss(t, s, try_once, by_stamp).into();
        }
        let rec = self.record(agent);
        rec.claim
            .store(encode_claim(t, 1, OP_PUT), Ordering::Relaxed);
        // CLAIM: as in `push_step`.
        if st
            .tail
            .0
            .compare_exchange(t, t + 1, CLAIM, Ordering::Relaxed)
            .is_err()
        {
            // Not ours: the claim must not stay on record (see `push_step`).
            rec.claim.store(IDLE, Ordering::Relaxed);
            first_lost_claim_pause();
            return Fast::Lost;
        }
        let sleepers = self.sleepers_after_claim(&self.signals().not_empty_waiters);
        // We own slot `t` (won the CAS on its free stamp); its data area has
        // `slot_size == size` bytes.
        write(data);
        self.set_len(t, size);
        // Release: pairs with the consumer's Acquire load of the stamp.
        publish_stamp(slot, 2 * t + 1);
        // Release: a survivor that sees the record cleared sees the stamp.
        rec.claim.store(IDLE, Ordering::Release);
        if sleepers {
            wake_up(&self.signals().not_empty, 1);
        }
        Fast::Done(())
    }

    /// [`push_value_fast`](Self::push_value_fast) found stamp `s`, not `2t`, at
    /// `tail == t`: `Full` when (with `try_once`) the previous lap's message is
    /// still there and (unless `by_stamp`) `head` confirms that no consumer has
    /// claimed it; else `Slow`.
    #[inline(never)]
    fn push_miss(&self, t: u64, s: u64, try_once: bool, by_stamp: bool) -> Miss {
        let cap = self.cap;
        if try_once && t >= cap && s == 2 * (t - cap) + 1 {
            // The previous lap's message is still there: full, unless its
            // consumer has claimed it.
            if by_stamp {
                // Full as far as this slot can be taken now: see `Fast::Full`.
                return Miss::Full;
            }
            // SeqCst fence: as in `push_step`.
            fence(Ordering::SeqCst);
            // Acquire: as in `push_step`.
            if self
                .state()
                .head
                .0
                .load(Ordering::Acquire)
                .saturating_add(cap)
                <= t
            {
                return Miss::Full;
            }
        }
        Miss::Slow
    }

    /// Pops one `T` (the ring's slots must be `size_of::<T>()` bytes), waiting
    /// until `deadline` unless `try_once` (`Empty` at once); `Closed` once closed
    /// and drained. The common case (a message at `head`, no contention) is done
    /// inline, as in [`push_value`](Self::push_value).
    #[inline]
    pub fn pop_value<T: Pod>(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        deadline: Deadline,
        try_once: bool,
    ) -> Result<T> {
        match retrying_lost(|| self.pop_value_fast(agent, try_once, false)) {
            Fast::Slow | Fast::Lost => {}
            fast => return self.fast_result(fast),
        }
        let mut out = T::zeroed();
        let mut got = 0;
        self.pop_with(
            agent,
            live,
            1,
            None,
            |_, b| {
                got = b.len();
                b.copy_to(bytemuck::bytes_of_mut(&mut out));
            },
            deadline,
            try_once,
        )?;
        if got != std::mem::size_of::<T>() {
            return Err(self.corrupted(format!(
                "message of {got} bytes in a ring of {}-byte values",
                std::mem::size_of::<T>()
            )));
        }
        Ok(out)
    }

    /// One uncontended attempt at [`pop_value`](Self::pop_value): `Done` when it
    /// popped, `Empty` or `Closed` when (with `try_once`) it found the ring
    /// empty (`Empty` by the slot's stamp alone with `by_stamp`: see
    /// [`Fast::Empty`]); `Lost` when another consumer took the slot first;
    /// `Slow` leaves the rest to the general path. As in
    /// [`push_value_fast`](Self::push_value_fast), a slot with nothing to take
    /// is classified out of line ([`pop_miss`](Self::pop_miss)).
    #[inline(always)]
    pub(crate) fn pop_value_fast<T: Pod>(
        &self,
        agent: &Agent,
        try_once: bool,
        by_stamp: bool,
    ) -> Fast<T> {
        self.pop_fast_by(
            agent,
            std::mem::size_of::<T>(),
            try_once,
            by_stamp,
            |data| {
                // SAFETY: `data` is the claimed slot's `slot_size == size_of::<T>()`
                // bytes (`pop_fast_by`), and any bytes are a valid `T` (Pod).
                // Unaligned: slot data is only 8-byte aligned.
                unsafe { std::ptr::read_unaligned(data.cast::<T>()) }
            },
        )
    }

    /// [`pop_value_fast`](Self::pop_value_fast) into `buf` (the C functions),
    /// whose length must be the slot size, else `Slow`.
    #[inline(always)]
    pub(crate) fn pop_bytes_fast(
        &self,
        agent: &Agent,
        buf: &mut [u8],
        try_once: bool,
        by_stamp: bool,
    ) -> Fast<()> {
        let len = buf.len();
        self.pop_fast_by(agent, len, try_once, by_stamp, |data| {
            // SAFETY: `data` is the claimed slot's `slot_size == len` bytes
            // (`pop_fast_by`), which `buf` does not overlap.
            unsafe { super::copy_bytes(data, buf.as_mut_ptr(), len) }
        })
    }

    /// The protocol of the one-element fast pop: `read` copies the claimed
    /// slot's `size` bytes out (`size` must be the slot size, else `Slow`).
    #[inline(always)]
    fn pop_fast_by<R>(
        &self,
        agent: &Agent,
        size: usize,
        try_once: bool,
        by_stamp: bool,
        read: impl FnOnce(*const u8) -> R,
    ) -> Fast<R> {
        if size != self.slot_size {
            return Fast::Slow;
        }
        let st = self.state();
        let h = st.head.0.load(Ordering::Relaxed);
        if h >= POS_LIMIT {
            return Fast::Slow;
        }
        let (slot, data) = self.slot_at(h);
        // Acquire: pairs with the producer's Release publication, as in `pop_step`.
        let s = slot.load(Ordering::Acquire);
        if s != 2 * h + 1 {
            return self.pop_miss(h, s, try_once, by_stamp).into();
        }
        let rec = self.record(agent);
        rec.claim
            .store(encode_claim(h, 1, OP_GET), Ordering::Relaxed);
        // CLAIM: as in `pop_step`.
        if st
            .head
            .0
            .compare_exchange(h, h + 1, CLAIM, Ordering::Relaxed)
            .is_err()
        {
            // Not ours: the claim must not stay on record (see `push_step`).
            rec.claim.store(IDLE, Ordering::Relaxed);
            first_lost_claim_pause();
            return Fast::Lost;
        }
        let sleepers = self.sleepers_after_claim(&self.signals().not_full_waiters);
        let len = self.msg_len(h);
        // We own slot `h` (won the CAS on its full stamp); its data area has
        // `slot_size == size` bytes.
        let value = read(data);
        // Release: pairs with the next lap's producer's Acquire load of the stamp.
        publish_stamp(slot, 2 * (h + self.cap));
        // Release: a survivor that sees the record cleared sees the stamp.
        rec.claim.store(IDLE, Ordering::Release);
        if sleepers {
            wake_up(&self.signals().not_full, 1);
        }
        if len != size {
            return Fast::WrongLength { pos: h, len };
        }
        Fast::Done(value)
    }

    /// [`pop_value_fast`](Self::pop_value_fast) found stamp `s`, not `2h + 1`,
    /// at `head == h`: `Empty` (or `Closed` once closed) when (with
    /// `try_once`) nothing is published there and (unless `by_stamp`) `tail`
    /// confirms that no producer has claimed it; else `Slow`.
    #[inline(never)]
    fn pop_miss(&self, h: u64, s: u64, try_once: bool, by_stamp: bool) -> Miss {
        if try_once && s == 2 * h {
            // Nothing published at `head`: empty, unless a producer has
            // claimed it.
            if by_stamp && !self.is_closed() {
                // Empty as far as this slot can be taken now: see
                // `Fast::Empty`. (Once closed, `Closed` needs the index.)
                return Miss::Empty;
            }
            // SeqCst fence: as in `pop_step`.
            fence(Ordering::SeqCst);
            // Acquire: as in `pop_step`.
            if self.state().tail.0.load(Ordering::Acquire) <= h {
                // As the general path: drained once closed.
                return if self.is_closed() {
                    Miss::Closed
                } else {
                    Miss::Empty
                };
            }
        }
        Miss::Slow
    }

    /// Pushes one message, failing with `Full` at once when there is no room.
    pub fn try_push(&self, agent: &Agent, live: &dyn Liveness, msg: &[u8]) -> Result<()> {
        self.push_with(agent, live, 1, |_| msg, Deadline::never(), true)
            .map(drop)
    }

    /// Pushes one message, waiting until `deadline` for room (`Timeout`).
    pub fn push(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        msg: &[u8],
        deadline: Deadline,
    ) -> Result<()> {
        self.push_with(agent, live, 1, |_| msg, deadline, false)
            .map(drop)
    }

    /// Pops one message into `buf`, failing with `Empty` at once when there is
    /// none; returns its length. A message longer than `buf` stays in the ring
    /// (`InvalidArgument` naming its size).
    pub fn try_pop(&self, agent: &Agent, live: &dyn Liveness, buf: &mut [u8]) -> Result<usize> {
        self.pop(agent, live, buf, Deadline::never(), true)
    }

    /// Pops one message into `buf`, waiting until `deadline` (`Timeout`).
    pub fn pop_timeout(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        buf: &mut [u8],
        deadline: Deadline,
    ) -> Result<usize> {
        self.pop(agent, live, buf, deadline, false)
    }

    fn pop(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        buf: &mut [u8],
        deadline: Deadline,
        try_once: bool,
    ) -> Result<usize> {
        let mut got = 0;
        let limit = buf.len();
        self.pop_with(
            agent,
            live,
            1,
            Some(limit),
            |_, b| {
                b.copy_to(buf);
                got = b.len();
            },
            deadline,
            try_once,
        )?;
        Ok(got)
    }
}

/// Bumps `word` and wakes up to `n` of its sleepers (the caller saw some
/// registered).
fn wake_up(word: &AtomicU32, n: usize) {
    // Release: a waiter that sees the bump sees the stamps published before it.
    word.fetch_add(1, Ordering::Release);
    crate::wait::wake_sleepers(word, n.min(u32::MAX as usize) as u32);
}

/// Stores a slot's new stamp: a publication (full) or a release (empty for the
/// next lap).
#[inline]
fn publish_stamp(stamp: &AtomicU64, value: u64) {
    // Release: pairs with the Acquire load of the stamp by the next claimer (a
    // consumer after a publication, the next lap's producer after a release):
    // the copy in or out happens before its own.
    stamp.store(value, Ordering::Release);
    #[cfg(shmprim_loom)]
    busy_model::stamp_changed();
}

/// Under loom: polling a claimed slot until its stamp moves is modelled as a
/// wait that every stamp change ends (a poller with a timeout sees the change
/// eventually; loom cannot express "eventually" and would explore a poller
/// that never looks again). Sleeps on `not_empty` / `not_full` are not
/// touched by this: their wake-ups are checked as they are.
#[cfg(shmprim_loom)]
mod busy_model {
    use crate::sync::atomic::{AtomicU64, Ordering};

    loom::lazy_static! {
        static ref BUCKET: (loom::sync::Mutex<()>, loom::sync::Condvar) =
            (loom::sync::Mutex::new(()), loom::sync::Condvar::new());
    }

    /// After any stamp store or CAS.
    pub(super) fn stamp_changed() {
        let (lock, cond) = &*BUCKET;
        let _guard = lock.lock().unwrap();
        cond.notify_all();
    }

    /// Returns once `stamp` is no longer `seen`.
    pub(super) fn wait_while(stamp: &AtomicU64, seen: u64) {
        let (lock, cond) = &*BUCKET;
        let mut guard = lock.lock().unwrap();
        while stamp.load(Ordering::Acquire) == seen {
            guard = cond.wait(guard).unwrap();
        }
    }
}

impl MpmcRing {
    /// Waits a little for slot `pos`, claimed by someone, to be published or
    /// released (its stamp moving from `stamp`): yields at first (the claimer
    /// may be waiting for this core), then sleeps on `word` for 20 µs, doubling
    /// each round up to 1 ms, never past `deadline`. No wake-up is owed to us
    /// here (the claimer may have looked for sleepers before we registered), so
    /// this polls.
    fn busy_pause(
        &self,
        word: &AtomicU32,
        w: u32,
        deadline: Deadline,
        rounds: &mut u32,
        pos: u64,
        stamp: u64,
    ) {
        *rounds = rounds.saturating_add(1);
        #[cfg(shmprim_loom)]
        {
            let _ = (word, w, deadline);
            busy_model::wait_while(self.stamp(pos), stamp);
        }
        #[cfg(not(shmprim_loom))]
        {
            let _ = (pos, stamp);
            if *rounds <= 4 {
                std::thread::yield_now();
                return;
            }
            let micros = 20u64 << (*rounds - 5).min(6);
            let nap = Deadline::after(Duration::from_micros(micros.min(1000)));
            let scratch = AtomicU32::new(0);
            let _ = crate::wait::wait_while_eq(word, &scratch, w, deadline.min(nap));
        }
    }
}

/// Sleeps on `word` while it equals `w`, for at most one liveness slice.
fn sleep_slice(word: &AtomicU32, w: u32, deadline: Deadline) {
    #[cfg(not(shmprim_loom))]
    let deadline = deadline.min(Deadline::after(LIVENESS_SLICE));
    // The registration is ours (in the ring's waiter count); wait_while_eq's own
    // count is a local that nobody wakes through.
    let scratch = AtomicU32::new(0);
    let _ = crate::wait::wait_while_eq(word, &scratch, w, deadline);
}

/// The error of a receive into a buffer of `limit` bytes when the next message
/// has `len`: the message stays in the queue.
fn too_small_error(limit: usize, len: usize) -> Error {
    Error::BufferTooSmall {
        needed: len,
        available: limit,
    }
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    fn pop_value(ring: &MpmcRing, agent: &Agent, live: &dyn Liveness) -> u8 {
        let mut buf = [0u8; 1];
        let n = ring
            .pop_timeout(agent, live, &mut buf, Deadline::never())
            .unwrap();
        assert_eq!(n, 1);
        buf[0]
    }

    /// Two producers (one puts two values, one puts one) and one consumer on a
    /// ring of capacity 2: every value is delivered exactly once, each producer's
    /// values in order, and the consumer sleeping on an empty ring (or a producer
    /// on a full one) is always woken.
    #[test]
    fn loom_two_producers_one_consumer_exactly_once_in_order() {
        loom::model(|| {
            let ring = Arc::new(MpmcRing::new(2, 1).unwrap());
            let producers: Vec<_> = [vec![0u8, 1], vec![10u8]]
                .into_iter()
                .enumerate()
                .map(|(p, values)| {
                    let me = ring.register(p as u64 + 1, &AlwaysAlive).unwrap();
                    let ring = ring.clone();
                    loom::thread::spawn(move || {
                        for v in values {
                            ring.push(&me, &AlwaysAlive, &[v], Deadline::never())
                                .unwrap();
                        }
                    })
                })
                .collect();
            let me = ring.register(9, &AlwaysAlive).unwrap();
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(pop_value(&ring, &me, &AlwaysAlive));
            }
            let first: Vec<u8> = got.iter().copied().filter(|&v| v < 10).collect();
            assert_eq!(
                first,
                vec![0, 1],
                "producer 0's values out of order or lost"
            );
            assert!(got.contains(&10), "producer 1's value lost");
            for p in producers {
                p.join().unwrap();
            }
            assert!(ring.is_empty());
        });
    }

    /// One producer and two consumers on a ring of capacity 1: each value is
    /// taken by exactly one consumer, and the producer sleeping on the full ring
    /// is always woken by a pop.
    #[test]
    fn loom_one_producer_two_consumers_full_ring_wakes_producer() {
        loom::model(|| {
            let ring = Arc::new(MpmcRing::new(1, 1).unwrap());
            let consumers: Vec<_> = (0..2u64)
                .map(|c| {
                    let me = ring.register(c + 1, &AlwaysAlive).unwrap();
                    let ring = ring.clone();
                    loom::thread::spawn(move || pop_value(&ring, &me, &AlwaysAlive))
                })
                .collect();
            let me = ring.register(9, &AlwaysAlive).unwrap();
            for v in [1u8, 2] {
                ring.push(&me, &AlwaysAlive, &[v], Deadline::never())
                    .unwrap();
            }
            let mut got: Vec<u8> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
            got.sort();
            assert_eq!(got, vec![1, 2]);
        });
    }

    /// `close` wakes a consumer asleep on an empty ring and a producer asleep on
    /// a full one: both return `Closed`.
    #[test]
    fn loom_close_wakes_every_sleeper() {
        loom::model(|| {
            let full = Arc::new(MpmcRing::new(1, 1).unwrap());
            let empty = Arc::new(MpmcRing::new(1, 1).unwrap());
            let me = full.register(9, &AlwaysAlive).unwrap();
            full.try_push(&me, &AlwaysAlive, &[7]).unwrap();
            let (producer_agent, consumer_agent) = (
                full.register(1, &AlwaysAlive).unwrap(),
                empty.register(1, &AlwaysAlive).unwrap(),
            );
            let (f2, e2) = (full.clone(), empty.clone());
            let producer = loom::thread::spawn(move || {
                f2.push(&producer_agent, &AlwaysAlive, &[8], Deadline::never())
            });
            let consumer = loom::thread::spawn(move || {
                let mut buf = [0u8; 1];
                e2.pop_timeout(&consumer_agent, &AlwaysAlive, &mut buf, Deadline::never())
            });
            full.close();
            empty.close();
            assert!(matches!(producer.join().unwrap(), Err(Error::Closed)));
            assert!(matches!(consumer.join().unwrap(), Err(Error::Closed)));
        });
    }

    #[test]
    fn loom_producers_retrying_lost_claims_put_each_value_once() {
        // Two producers race for the same free slot: the loser's fast path
        // answers `Lost`, and `push_value` retries it (once under loom) before
        // the general path. Every value must land exactly once, and no claim
        // may stay on record.
        loom::model(|| {
            let ring = Arc::new(MpmcRing::with_form(2, 1, SlotForm::Fixed).unwrap());
            let producers: Vec<_> = (0..2u64)
                .map(|p| {
                    let me = ring.register(p + 1, &AlwaysAlive).unwrap();
                    let ring = ring.clone();
                    loom::thread::spawn(move || {
                        let v = p as u8 + 1;
                        ring.push_value(&me, &AlwaysAlive, &v, Deadline::never(), true)
                            .unwrap();
                    })
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            let me = ring.register(9, &AlwaysAlive).unwrap();
            let mut got = [0u8; 2];
            for g in &mut got {
                *g = ring
                    .pop_value::<u8>(&me, &AlwaysAlive, Deadline::never(), true)
                    .unwrap();
            }
            got.sort();
            assert_eq!(got, [1, 2], "a value lost or put twice");
            assert!(ring.is_empty());
            for r in &ring.state().records[..3] {
                assert_eq!(
                    r.claim.load(Ordering::Relaxed),
                    IDLE,
                    "a claim left on record"
                );
            }
        });
    }

    /// The typed one-element path (`push_value` / `pop_value`, whose fast path
    /// checks for sleepers at claim time): a producer putting two values into a
    /// ring of one slot and two consumers taking one each, all blocking. Every
    /// value arrives once and every sleeper (consumer on empty, producer on full)
    /// is woken or finds the slot claimed and polls it.
    #[test]
    fn loom_typed_values_blocking_no_lost_wakeup() {
        loom::model(|| {
            let ring = Arc::new(MpmcRing::with_form(1, 1, SlotForm::Fixed).unwrap());
            let consumers: Vec<_> = (0..2u64)
                .map(|c| {
                    let me = ring.register(c + 1, &AlwaysAlive).unwrap();
                    let ring = ring.clone();
                    loom::thread::spawn(move || {
                        ring.pop_value::<u8>(&me, &AlwaysAlive, Deadline::never(), false)
                            .unwrap()
                    })
                })
                .collect();
            let me = ring.register(9, &AlwaysAlive).unwrap();
            for v in [1u8, 2] {
                ring.push_value(&me, &AlwaysAlive, &v, Deadline::never(), false)
                    .unwrap();
            }
            let mut got: Vec<u8> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
            got.sort();
            assert_eq!(got, vec![1, 2]);
        });
    }

    /// A producer that loses the race for a position must not leave its claim
    /// on record: here producer 5 wins position 0 and dies before publishing
    /// (modelled by hand), while producer 1 may lose the CAS for 0 and then find
    /// the ring full. The live loser's stale claim would make the dead winner's
    /// slot look still claimed by a live process, so it would never be
    /// recovered; with the claim cleared, a consumer skips the slot and the live
    /// producer's next put goes through.
    #[test]
    fn loom_lost_claim_does_not_shield_a_dead_winner() {
        loom::model(|| {
            let ring = Arc::new(MpmcRing::new(1, 1).unwrap());
            let dead = ring.register(5, &AlwaysAlive).unwrap();
            let live = |id: u64| id != 5;
            let loser = ring.register(1, &AlwaysAlive).unwrap();
            let r2 = ring.clone();
            let winner = loom::thread::spawn(move || {
                r2.record(&dead)
                    .claim
                    .store(encode_claim(0, 1, OP_PUT), Ordering::Relaxed);
                r2.state()
                    .tail
                    .0
                    .compare_exchange(0, 1, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
            });
            let first = ring.try_push(&loser, &live, &[7]);
            let dead_won = winner.join().unwrap();
            let me = ring.register(2, &live).unwrap();
            let mut buf = [0u8; 1];
            if dead_won {
                assert!(matches!(first, Err(Error::Full)), "{first:?}");
                // The consumer finds position 0 claimed by the dead producer
                // only, skips it, and the ring is empty again.
                assert!(matches!(
                    ring.try_pop(&me, &live, &mut buf),
                    Err(Error::Empty)
                ));
                ring.try_push(&loser, &live, &[8]).unwrap();
                assert_eq!(ring.try_pop(&me, &live, &mut buf).unwrap(), 1);
                assert_eq!(buf[0], 8);
            } else {
                first.unwrap();
                assert_eq!(ring.try_pop(&me, &live, &mut buf).unwrap(), 1);
                assert_eq!(buf[0], 7);
            }
        });
    }

    /// A producer that died after claiming its slot (modelled: its claim recorded
    /// and `tail` moved, nothing published) does not block a consumer: the
    /// consumer skips the slot and takes the live producer's message, whose claim
    /// it never recovers.
    #[test]
    fn loom_dead_producer_slot_is_skipped_live_one_is_not() {
        loom::model(|| {
            let ring = Arc::new(MpmcRing::new(2, 1).unwrap());
            // Participant 5 "dies" after claiming position 0.
            let dead = ring.register(5, &AlwaysAlive).unwrap();
            ring.record(&dead)
                .claim
                .store(encode_claim(0, 1, OP_PUT), Ordering::Relaxed);
            ring.state().tail.0.store(1, Ordering::Release);
            let live = |id: u64| id != 5;
            let producer_agent = ring.register(1, &AlwaysAlive).unwrap();
            let r2 = ring.clone();
            let producer = loom::thread::spawn(move || {
                r2.push(&producer_agent, &live, &[42], Deadline::never())
                    .unwrap();
            });
            let me = ring.register(2, &live).unwrap();
            assert_eq!(pop_value(&ring, &me, &live), 42);
            producer.join().unwrap();
            assert!(ring.is_empty());
        });
    }

    /// A consumer that died after claiming a slot (modelled: claim recorded and
    /// `head` moved, the slot never released) does not block a producer of the
    /// next lap: the producer releases the slot (losing only the dead consumer's
    /// message) and its own message reaches a live consumer.
    #[test]
    fn loom_dead_consumer_slot_is_released() {
        loom::model(|| {
            let ring = Arc::new(MpmcRing::new(1, 1).unwrap());
            let me = ring.register(9, &AlwaysAlive).unwrap();
            ring.try_push(&me, &AlwaysAlive, &[1]).unwrap();
            // Participant 5 "dies" after claiming position 0.
            let dead = ring.register(5, &AlwaysAlive).unwrap();
            ring.record(&dead)
                .claim
                .store(encode_claim(0, 1, OP_GET), Ordering::Relaxed);
            ring.state().head.0.store(1, Ordering::Release);
            let live = |id: u64| id != 5;
            let consumer_agent = ring.register(1, &AlwaysAlive).unwrap();
            let r2 = ring.clone();
            let consumer = loom::thread::spawn(move || pop_value(&r2, &consumer_agent, &live));
            ring.push(&me, &live, &[2], Deadline::never()).unwrap();
            assert_eq!(consumer.join().unwrap(), 2);
        });
    }
}
