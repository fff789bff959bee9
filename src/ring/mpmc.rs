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
#[cfg(not(shmprim_loom))]
use std::time::Duration;

use bytemuck::Pod;

use super::CachePadded;
use crate::error::{Error, Result};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use crate::wait::Deadline;
#[cfg(not(shmprim_loom))]
use crate::wait::LIVENESS_SLICE;

mod blocking;
mod claim;
mod fast;

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
/// crossbeam's `ArrayQueue` to 1.3x with it (BENCHMARKS.md).
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

    /// Whether every sender is gone, so that an empty ring means the end of
    /// the stream (see the queue module): a pop then fails with `Closed` as
    /// after [`close`](MpmcRing::close). Asked only when the ring is found
    /// empty by a try, or before a pop goes to sleep: it may make system
    /// calls. Heap rings have no senders to lose.
    fn stream_ended(&self) -> bool {
        false
    }
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
        let mut v = Vec::new();
        self.append_to(&mut v);
        v
    }

    /// Appends the message to `out`, with no zero-filling of the room first.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.len);
        let start = out.len();
        // SAFETY: `ptr..ptr+len` lies inside a slot this caller has claimed
        // (the ring checked `len <= slot_size`); the destination is the
        // vector's spare capacity, at least `len` bytes after `reserve`, and
        // distinct from the slot. The bytes are initialised by the copy
        // before `set_len` exposes them.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr, out.as_mut_ptr().add(start), self.len);
            out.set_len(start + self.len);
        }
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
    name: crate::ObjectName,
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
            name: crate::ObjectName::unknown(),
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
            name: crate::ObjectName::new(name),
            _heap: None,
        })
    }

    /// The name errors about the ring carry (unknown for a heap ring).
    pub fn name(&self) -> &crate::ObjectName {
        &self.name
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
fn too_small_error(name: &crate::ObjectName, limit: usize, len: usize) -> Error {
    Error::BufferTooSmall {
        name: name.clone(),
        needed: len,
        available: limit,
    }
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests;
