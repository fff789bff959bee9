//! Multi-producer multi-consumer queues in named shared memory: [`Queue<T>`] of
//! fixed-size `T: Pod` elements and [`ByteQueue`] of byte messages up to a
//! maximum length fixed at creation. Python counterpart: `multiprocessing.Queue`
//! (`put`, `get`, `put_nowait` → [`Queue::try_put`], `get_nowait` →
//! [`Queue::try_get`], `qsize` → [`Queue::len`], `empty`, `full`, `close`).
//!
//! Both are thin handles over the lock-free ring of [`crate::ring::mpmc`], whose
//! module doc has the slot protocol, the blocking protocol and the crash-recovery
//! table. In short:
//!
//! - Non-blocking operations never sleep; blocking ones spin briefly, then sleep
//!   on a shared futex, and a put or get with nobody asleep makes no syscall.
//! - **End of stream** (crossbeam-channel's disconnection, across
//!   processes): each handle has a [`Role`] (in [`Options`]): it puts and
//!   gets ([`Role::Both`], the default), or it is opened to put
//!   ([`Role::Send`]) or only to get ([`Role::Receive`]: its puts fail with
//!   `Closed`). A handle that may put counts as a sender until it is
//!   [`close`](Queue::close)d ("this handle puts no more", Python's
//!   `Queue.close`) or dropped, or its process dies. Once some sender was
//!   there and none is left, gets drain what is queued and then fail with
//!   [`Error::Closed`]; a blocked get is woken at once by the last close, and
//!   within 50 ms ([`LIVENESS_SLICE`](crate::wait::LIVENESS_SLICE)) of the
//!   last sender's death. A handle that may put never sees its own stream
//!   end. As with a channel, hand the senders out before the last one leaves:
//!   a producer that opens after every sender has gone starts the stream
//!   again, but consumers may already have ended. The usual shape: the
//!   parent creates the queue, starts producers that open it with
//!   `Role::Send` and say so (a [`Semaphore`](crate::Semaphore)), then closes
//!   its own handle's sending side.
//! - [`shutdown`](Queue::shutdown) closes the queue for everyone (Python
//!   3.13's `Queue.shutdown`): later puts fail with `Closed`; gets drain what
//!   is left, then fail with `Closed`; every sleeper is woken. With
//!   `immediate`, what is queued is discarded first. A put racing with
//!   `shutdown` may still land, and is then drained like the rest.
//! - **`JoinableQueue`**: a queue created with [`Options::joinable`] counts
//!   every put as an unfinished task before its item becomes visible;
//!   [`task_done`](Queue::task_done) takes one off (more calls than puts are
//!   `InvalidArgument`, Python's `ValueError`) and [`join`](Queue::join)
//!   waits for none to be left. A consumer that dies between its get and its
//!   `task_done` leaves its task unfinished for ever, as in Python: use
//!   [`join_timeout`](Queue::join_timeout) where consumers may die.
//! - **When a participant dies** (even `SIGKILL` between claiming a slot and
//!   finishing with it), survivors find the dead claimer through the segment's
//!   liveness table and skip or release its slot: nobody waits forever and nothing
//!   is delivered twice. Lost are only the dead process's own in-flight messages:
//!   the one it was putting (or the batch of `put_many`), or the one it had taken
//!   but not yet returned to its caller (or the batch of `get_many`).
//! - **`Full` and `Empty` are read from the slot at hand**, as in Vyukov's
//!   original bounded queue: [`try_put`](Queue::try_put) fails with `Full`
//!   while the oldest message is still in its slot, even if a concurrent get
//!   has already claimed it and is copying it out; [`try_get`](Queue::try_get)
//!   fails with `Empty` while the oldest claimed slot is not yet published,
//!   even if a concurrent put has claimed it (and later puts have completed).
//!   Both are answers a moment earlier or later would give; what they save is
//!   the read of the other side's index, whose cache line the other side
//!   updates on every operation (crossbeam's `ArrayQueue` reads it to tell
//!   these cases apart). After 64 such answers in a row, a handle checks the
//!   index once, which is also how a `try_` loop facing a dead participant's
//!   slot recovers it. ([`ByteQueue`], batches and the C ABI
//!   check the index every time.) [`len`](Queue::len), `is_empty` and
//!   `is_full` read both indices; like Python's `qsize`, they are approximate
//!   while others operate.
//!
//! Each handle claims in-flight records of the ring lazily, one per lane of up
//! to 8 threads using it at once (`MAX_RECORDS` = 256 per queue); a thread that
//! finds every lane busy takes a temporary record for the one operation. For the
//! best throughput, give each thread its own handle or keep to a few threads. A
//! handle inherited through `fork` claims fresh records in the child on its first
//! operation there, so a parent and its children can share an
//! [`anonymous`](Queue::anonymous) queue; note that they also share the
//! segment's participant slot, so the death of one is only seen once all of
//! them have exited.
//!
//! ```
//! use std::time::Duration;
//! use shmprim::{ByteQueue, Error, Queue};
//! # let name = format!("doc-queue-{}", std::process::id());
//! let q: Queue<u64> = Queue::create(&name, 8)?;
//! let other: Queue<u64> = Queue::open(&name)?; // in another process, usually
//! q.put(7)?;
//! q.put_many(&[8, 9])?;
//! assert_eq!(other.len(), 3);
//! assert_eq!(other.get()?, 7);
//! let mut buf = [0u64; 4];
//! assert_eq!(other.get_many(&mut buf)?, 2);
//! assert!(matches!(other.try_get(), Err(Error::Empty { .. })));
//! assert!(matches!(other.get_timeout(Duration::from_millis(1)), Err(Error::Timeout { .. })));
//! q.shutdown(false);
//! assert!(matches!(q.put(1), Err(Error::Closed { .. })));
//! assert!(matches!(other.get(), Err(Error::Closed { .. })));
//! Queue::<u64>::unlink(&name)?;
//!
//! let bq = ByteQueue::anonymous(4, 64)?;
//! bq.put(b"hello")?;
//! assert_eq!(bq.get()?, b"hello");
//! # Ok::<(), Error>(())
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::ring::mpmc::{Agent, Fast, Liveness, MpmcRing, MpmcState, SlotForm};
use crate::segment::{
    Disposition, FLAG_JOINABLE, Kind, Options, ParticipantId, Role, Segment, SegmentBuilder,
    TypeDesc,
};
use crate::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, compiler_fence,
};
use crate::wait::{Deadline, Patience, is_timeout, try_first};

/// Parameter index of the capacity in the segment header.
const PARAM_CAPACITY: usize = 0;
/// Parameter index of the slot size (element size, or largest message).
const PARAM_SLOT_SIZE: usize = 1;

/// The slot form of a queue segment's ring: `ByteQueue`s keep each message's
/// length, `Queue`s (Rust and C) have fixed-size elements.
fn form_of(kind: Kind) -> SlotForm {
    if kind == Kind::ByteQueue {
        SlotForm::Bytes
    } else {
        SlotForm::Fixed
    }
}

/// Liveness through a segment's participant table, for a handle that sends
/// (`sending`: then the stream has not ended) or not.
struct SegmentLiveness<'a> {
    seg: &'a Segment,
    sending: bool,
}

impl Liveness for SegmentLiveness<'_> {
    fn is_alive(&self, owner: u64) -> bool {
        ParticipantId::from_u64(owner).is_some_and(|id| self.seg.is_alive(id))
    }

    fn stream_ended(&self) -> bool {
        !self.sending && self.seg.senders_gone()
    }
}

/// Lanes of in-flight records per handle. Lane 0 belongs to one thread, the
/// first to use the handle (usually the only one): it takes its record with
/// plain loads and stores. Other threads sharing the handle pick one of the
/// other lanes by a hash of their thread key and take it
/// with an atomic swap, so that each usually finds its lane free, on its own
/// cache line.
const LANES: usize = 8;
/// The bit of `Lane::state` set while a thread uses the lane.
const BUSY: usize = 1 << (usize::BITS - 1);
/// `Lane::state` of a free lane that has not claimed a record yet; a free lane
/// with a record holds the record's index (below `MAX_RECORDS`), so one
/// comparison tells the owner's fast path that the lane is free and ready.
const NO_RECORD: usize = BUSY - 1;
/// `Core::owner` before any thread has used the handle.
const NO_OWNER: usize = NO_KEY;

/// How many `Full` / `Empty` answers in a row lane 0's owner may read from a
/// slot's stamp alone (see [`Fast::Full`]) before it checks once with the
/// other index, which is also what notices a dead participant's claim on the
/// slot: a `try_put` / `try_get` loop facing a dead claimer recovers its slot
/// by attempt `STAMP_ANSWERS + 1`.
pub(crate) const STAMP_ANSWERS: u32 = 64;

/// One lane: a ring record claimed on first use (its index, or `NO_RECORD`),
/// with the `BUSY` bit while a thread is using it.
#[repr(C, align(128))]
struct Lane {
    state: AtomicUsize,
    /// Lane 0 only: `Full` / `Empty` answers read from a stamp alone since the
    /// last check with the index (owner thread only, so plain loads and stores).
    /// Kept in the lane rather than in `Core` so that its stores stay on the
    /// owner's own line pair, away from the fields other threads read.
    by_stamp: AtomicU32,
}

impl Lane {
    fn new(record: usize) -> Lane {
        Lane {
            state: AtomicUsize::new(record),
            by_stamp: AtomicU32::new(0),
        }
    }

    /// Runs `f` with this lane marked busy by plain stores: only for lane 0,
    /// by its owner thread (the only thread that ever marks it), which found
    /// it free in state `idle`. `f` gets the lane's record (or `NO_RECORD`)
    /// and may replace it with one it claimed; the lane keeps that.
    #[inline(always)]
    fn own_span<R>(&self, idle: usize, f: impl FnOnce(&mut usize) -> R) -> R {
        self.state.store(idle | BUSY, Ordering::Relaxed);
        // Keeps the compiler from moving the lane's use outside the busy span
        // (a signal handler on this thread must see it busy).
        compiler_fence(Ordering::SeqCst);
        let mut record = idle;
        let r = f(&mut record);
        compiler_fence(Ordering::SeqCst);
        self.state.store(record, Ordering::Relaxed);
        r
    }
}

use crate::sys::fork::{NO_KEY, thread_key, thread_key_if_set};

/// The first of the shared lanes (1..LANES) a thread with `key` tries.
fn preferred_shared_lane(key: usize) -> usize {
    ((key as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize % (LANES - 1)
}

/// What `Queue` and `ByteQueue` share: a segment, a ring view into it and this
/// handle's in-flight records.
pub(crate) struct Core {
    pub(crate) ring: MpmcRing,
    /// This process's participant id, which owns the records (a new one in
    /// a child forked since, see `forget_parent_records`).
    id: AtomicU64,
    /// The thread key of lane 0's owner, or `NO_OWNER`.
    owner: AtomicUsize,
    /// Lane 0, inside the handle (on its own 128-byte line pair, as `Lane` is
    /// aligned so): the owner thread's operations reach its record with one
    /// load less than through the box of shared lanes.
    own: Lane,
    /// Lanes 1..LANES, for the other threads.
    shared: Box<[Lane; LANES - 1]>,
    /// `sys::fork::fork_generation()` when the lanes' records were claimed: a
    /// child forked since then must claim its own (see `with_agent`).
    fork_generation: AtomicU32,
    /// Whether this handle may still put: its role sends and it was not
    /// [`close`](Queue::close)d.
    sends: AtomicBool,
    /// `sends` and not `joinable`: a put may take the inlined path, which
    /// counts no task (one load on the put's fast path).
    plain_put: AtomicBool,
    /// Whether the queue was created joinable: puts count unfinished tasks.
    joinable: bool,
    seg: Segment,
}

impl Core {
    pub(crate) fn builder(
        kind: Kind,
        capacity: u64,
        slot: u64,
        payload: TypeDesc,
    ) -> Result<SegmentBuilder> {
        let size = MpmcState::memory_size(capacity, slot, form_of(kind))?;
        Ok(SegmentBuilder::new(kind)
            .data_size(size as u64)
            .param(PARAM_CAPACITY, capacity)
            .param(PARAM_SLOT_SIZE, slot)
            .payload(payload))
    }

    pub(crate) fn init(
        kind: Kind,
        capacity: u64,
        slot: u64,
    ) -> impl FnOnce(std::ptr::NonNull<u8>, usize) -> Result<()> {
        let form = form_of(kind);
        move |ptr, len| {
            debug_assert!(len >= MpmcState::memory_size(capacity, slot, form)?);
            // SAFETY: the data area is `len >= memory_size` bytes, page aligned,
            // and nobody else sees the segment before it is published as ready.
            unsafe { MpmcState::init(ptr.as_ptr(), capacity, slot, form) }
        }
    }

    /// Builds the handle on a created or opened segment, checking the header's
    /// parameters (and, with `slot`, that the slot size is the expected one),
    /// and registers it as a sender if its `role` sends.
    pub(crate) fn attach(seg: Segment, slot: Option<u64>, role: Role) -> Result<Core> {
        let name = seg.display_name().to_owned();
        if let Some(slot) = slot {
            seg.expect_param(PARAM_SLOT_SIZE, slot, "element size")?;
        }
        let capacity = seg.param(PARAM_CAPACITY);
        let slot = seg.param(PARAM_SLOT_SIZE);
        let form = form_of(seg.kind());
        let needed = MpmcState::memory_size(capacity, slot, form).map_err(|_| {
            Error::corrupted(
                &name,
                format!("queue parameters capacity {capacity}, slot size {slot}"),
            )
        })?;
        seg.expect_data_size(needed as u64)?;
        let (ptr, len) = (seg.as_ptr(), seg.len());
        // SAFETY: the data area is page aligned, `len` bytes long, mapped for as
        // long as `seg` lives (it is dropped after `ring`, see the field order),
        // and only accessed through rings.
        let ring = unsafe { MpmcRing::from_raw(ptr, len, capacity, slot, form, &name)? };
        let id = seg.participant_id().to_u64();
        // Claim the first lane's record now, so that a queue with no free record
        // fails at open rather than at its first operation.
        let first = ring.register(
            id,
            &SegmentLiveness {
                seg: &seg,
                sending: true,
            },
        )?;
        if role.sends() {
            seg.set_sending(true);
        }
        let joinable = seg.has_flag(FLAG_JOINABLE);
        Ok(Core {
            id: AtomicU64::new(id),
            sends: AtomicBool::new(role.sends()),
            plain_put: AtomicBool::new(role.sends() && !joinable),
            joinable,
            ring,
            owner: AtomicUsize::new(NO_OWNER),
            own: Lane::new(first.index),
            shared: Box::new(std::array::from_fn(|_| Lane::new(NO_RECORD))),
            fork_generation: AtomicU32::new(crate::sys::fork::fork_generation()),
            seg,
        })
    }

    /// Runs `f` with lane 0's record if this thread owns lane 0 and its record
    /// is ready (the common case of a handle used by one thread), else
    /// [`Fast::Slow`] without calling it. Small enough to inline into `Queue`'s one-element
    /// operations, whose fast paths then run without a call. `f`'s flag says
    /// whether it may answer `Full` / `Empty` from a stamp alone: at most
    /// [`STAMP_ANSWERS`] times in a row.
    #[inline(always)]
    pub(crate) fn on_own_lane_fast<T>(
        &self,
        f: impl FnOnce(&MpmcRing, &Agent, bool) -> Fast<T>,
    ) -> Fast<T> {
        let lane = &self.own;
        let record = lane.state.load(Ordering::Relaxed);
        // As in `with_agent`: lane 0 is only ever used by its owner thread.
        // No fork check: a forked child's threads never have the key of a
        // thread of its parent (see `thread_key`), so an inherited handle
        // takes the slow path, which notices the fork. `record >= NO_RECORD`:
        // busy, or no record yet.
        if self.owner.load(Ordering::Relaxed) != thread_key_if_set() || record >= NO_RECORD {
            return Fast::Slow;
        }
        let answered = lane.by_stamp.load(Ordering::Relaxed);
        let by_stamp = answered < STAMP_ANSWERS;
        // `inline(always)` here and on the callers' closures: this is the
        // whole fast path, and the compiler's own choice varied from build to
        // build; outlined, it ran 20 to 35% slower (BENCHMARKS.md).
        let r = lane.own_span(
            record,
            #[inline(always)]
            |_| f(&self.ring, &Agent::from_parts(record, self.id()), by_stamp),
        );
        let next = match r {
            Fast::Full | Fast::Empty if by_stamp => answered + 1,
            _ => 0,
        };
        if next != answered {
            lane.by_stamp.store(next, Ordering::Relaxed);
        }
        r
    }

    /// Runs `f` with an in-flight record: lane 0's if this thread owns it, else
    /// the one of this thread's shared lane (or of the next free one), each
    /// claimed from the ring on first use; a temporary one when every lane is
    /// busy.
    #[inline]
    pub(crate) fn with_agent<R>(
        &self,
        f: impl FnOnce(&MpmcRing, &Agent, &dyn Liveness) -> Result<R>,
    ) -> Result<R> {
        let lane = &self.own;
        let idle = lane.state.load(Ordering::Relaxed);
        // Lane 0 is only ever used by its owner thread, so plain loads and
        // stores suffice; `BUSY` guards against a signal handler on this
        // thread re-entering between them. An inherited handle fails the
        // owner check in a forked child (see `on_own_lane_fast`).
        if self.owner.load(Ordering::Relaxed) == thread_key_if_set() && idle & BUSY == 0 {
            return self.on_own_lane(lane, idle, &self.liveness(), f);
        }
        self.with_agent_slow(thread_key(), f)
    }

    /// [`with_agent`](Self::with_agent) for everything but an owner thread
    /// whose lane 0 is ready: after a fork, the first use, other threads.
    #[inline(never)]
    fn with_agent_slow<R>(
        &self,
        me: usize,
        f: impl FnOnce(&MpmcRing, &Agent, &dyn Liveness) -> Result<R>,
    ) -> Result<R> {
        let generation = crate::sys::fork::fork_generation();
        if generation != self.fork_generation.load(Ordering::Relaxed) {
            self.forget_parent_records(generation);
        }
        let live = self.liveness();
        // Load first: a failed CAS would still take the line holding the ring's
        // view away from the owner thread on every call of the other threads.
        if self.owner.load(Ordering::Relaxed) == NO_OWNER {
            let _ = self
                .owner
                .compare_exchange(NO_OWNER, me, Ordering::Relaxed, Ordering::Relaxed);
        }
        if self.owner.load(Ordering::Relaxed) == me {
            let lane = &self.own;
            let idle = lane.state.load(Ordering::Relaxed);
            if idle & BUSY == 0 {
                return self.on_own_lane(lane, idle, &live, f);
            }
        }
        let start = preferred_shared_lane(me);
        for j in 0..LANES - 1 {
            let lane = &self.shared[(start + j) % (LANES - 1)];
            // Acquire: pairs with the Release below; the lane is ours alone.
            let mut record = lane.state.fetch_or(BUSY, Ordering::Acquire);
            if record & BUSY != 0 {
                continue;
            }
            let r = self.with_lane_record(&mut record, &live, f);
            // Release: hands the lane (and its record's last claim) to the next
            // thread of this handle.
            lane.state.store(record, Ordering::Release);
            return r;
        }
        let agent = self.ring.register(self.id(), &live)?;
        let r = f(&self.ring, &agent, &live);
        self.ring.unregister(agent);
        r
    }

    /// Runs `f` on lane 0, which the caller (its owner thread) found free in
    /// state `idle`: marks it busy with plain stores, which only this thread
    /// makes.
    #[inline]
    fn on_own_lane<R>(
        &self,
        lane: &Lane,
        idle: usize,
        live: &SegmentLiveness<'_>,
        f: impl FnOnce(&MpmcRing, &Agent, &dyn Liveness) -> Result<R>,
    ) -> Result<R> {
        lane.own_span(idle, |record| self.with_lane_record(record, live, f))
    }

    /// Runs `f` with a lane's `record` (the lane held busy by the caller),
    /// claiming one from the ring first if the lane has none (`NO_RECORD`);
    /// `record` is left as the lane should keep it.
    #[inline]
    fn with_lane_record<R>(
        &self,
        record: &mut usize,
        live: &SegmentLiveness<'_>,
        f: impl FnOnce(&MpmcRing, &Agent, &dyn Liveness) -> Result<R>,
    ) -> Result<R> {
        if *record == NO_RECORD {
            *record = self.ring.register(self.id(), live)?.index;
        }
        f(&self.ring, &Agent::from_parts(*record, self.id()), live)
    }
}

impl Core {
    fn liveness(&self) -> SegmentLiveness<'_> {
        SegmentLiveness {
            seg: &self.seg,
            sending: self.sends.load(Ordering::Relaxed),
        }
    }

    /// Whether a put may take the inlined path: the handle sends and the
    /// queue counts no tasks. Otherwise it goes through
    /// [`counted_put`](Self::counted_put).
    #[inline(always)]
    pub(crate) fn plain_put(&self) -> bool {
        self.plain_put.load(Ordering::Relaxed)
    }

    /// A try that found the queue empty, on a handle that does not send:
    /// whether to look again through the general path, which answers
    /// `Closed` once the senders are gone.
    #[cold]
    pub(crate) fn empty_may_have_ended(&self) -> bool {
        !self.sends.load(Ordering::Relaxed) && self.stream_ended()
    }

    /// `Closed` once this handle sends no more (see [`Queue::close`]).
    #[inline(always)]
    pub(crate) fn may_send(&self) -> Result<()> {
        if self.sends.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(Error::closed(self.ring.name()))
        }
    }

    /// Runs a put of `n` items, `put` returning how many it put, counting
    /// them as unfinished tasks first if the queue is joinable (so that a
    /// consumer's `task_done` always finds its task counted).
    #[inline(always)]
    pub(crate) fn counted_put(
        &self,
        n: usize,
        put: impl FnOnce() -> Result<usize>,
    ) -> Result<usize> {
        self.may_send()?;
        if !self.joinable {
            return put();
        }
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.seg.task_added(n);
        let r = put();
        let done = *r.as_ref().unwrap_or(&0) as u32;
        self.seg.task_withdrawn(n.saturating_sub(done));
        r
    }

    /// This handle sends no more: its puts fail with `Closed`, and once every
    /// sending handle has done so (or died) receivers drain the queue and get
    /// `Closed`.
    pub(crate) fn close_sending(&self) {
        self.sends.store(false, Ordering::Relaxed);
        self.plain_put.store(false, Ordering::Relaxed);
        if self.seg.set_sending(false) {
            self.ring.wake_receivers();
        }
    }

    /// Closes the queue for everyone; with `immediate`, discards what is
    /// queued (counting each discarded item done, for `join`).
    pub(crate) fn shutdown(&self, immediate: bool) {
        self.ring.close();
        if !immediate {
            return;
        }
        let mut discarded = 0u32;
        loop {
            let r = self.with_agent(|ring, a, live| {
                ring.pop_with(a, live, 64, None, |_, _| {}, Deadline::never(), true)
            });
            match r {
                Ok(k) => discarded = discarded.saturating_add(k as u32),
                Err(_) => break,
            }
        }
        if self.joinable {
            self.seg
                .task_withdrawn(discarded.min(self.seg.unfinished()));
        }
    }

    /// Python's `JoinableQueue.task_done` (`InvalidArgument` when the queue
    /// is not joinable, or when called more often than items were put).
    pub(crate) fn task_done(&self) -> Result<()> {
        self.check_joinable()?;
        self.seg.task_done()
    }

    /// Python's `JoinableQueue.join`, until `deadline` (`Timeout`).
    pub(crate) fn join(&self, deadline: Deadline) -> Result<()> {
        self.check_joinable()?;
        self.seg.join_tasks(deadline)
    }

    fn check_joinable(&self) -> Result<()> {
        if self.joinable {
            Ok(())
        } else {
            Err(Error::invalid_argument(format!(
                "{} was not created joinable (Options::joinable)",
                self.seg.display_name()
            )))
        }
    }

    /// Whether the stream has ended for this handle: it does not send, some
    /// handle did, and none that did is alive (see the module doc).
    pub(crate) fn stream_ended(&self) -> bool {
        self.liveness().stream_ended()
    }

    /// In a child forked after this handle claimed its records: those records
    /// still serve the parent, and sharing one would let the two overwrite each
    /// other's claims (a survivor could then recover a slot whose claimer is
    /// alive). Forget them here; the lanes claim fresh records on first use.
    /// The parent keeps and releases its own.
    #[cold]
    fn forget_parent_records(&self, generation: u32) {
        for lane in std::iter::once(&self.own).chain(self.shared.iter()) {
            lane.state.store(NO_RECORD, Ordering::Release);
        }
        self.owner.store(NO_OWNER, Ordering::Relaxed);
        // The child is a participant of its own: its records, and its
        // registration as a sender, are under its own slot, so that its
        // death is seen while the parent lives.
        self.id
            .store(self.seg.participant_id().to_u64(), Ordering::Relaxed);
        if self.sends.load(Ordering::Relaxed) {
            self.seg.set_sending(true);
        }
        self.fork_generation.store(generation, Ordering::Relaxed);
    }

    /// The participant id that owns this handle's records (Relaxed: it
    /// changes only in `forget_parent_records`, on the thread that then
    /// claims records with it).
    #[inline(always)]
    fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if crate::sys::fork::fork_generation() != self.fork_generation.load(Ordering::Relaxed) {
            // Inherited and never used here: the records are the parent's.
            return;
        }
        self.close_sending();
        for lane in std::iter::once(&self.own).chain(self.shared.iter()) {
            // Without `BUSY`: set still if an operation panicked inside it.
            let record = lane.state.load(Ordering::Relaxed) & !BUSY;
            if record != NO_RECORD {
                self.ring.unregister(Agent::from_parts(record, self.id()));
            }
        }
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.seg.display_name())
            .field("capacity", &self.ring.capacity())
            .field("slot_size", &self.ring.slot_size())
            .field("len", &self.ring.len())
            .finish()
    }
}

/// The header flags of a queue created with `opts`.
fn create_flags(opts: &Options) -> u32 {
    if opts.joinable { FLAG_JOINABLE } else { 0 }
}

/// The size, end-of-stream and `JoinableQueue` calls, the same on [`Queue`],
/// [`ByteQueue`] and [`RawQueue`] (each holds a `core: Core`).
macro_rules! stream_methods {
    () => {
        /// Number of items in the queue (Python's `qsize`; a snapshot).
        pub fn len(&self) -> usize {
            self.core.ring.len()
        }

        /// Whether the queue holds no item (a snapshot).
        pub fn is_empty(&self) -> bool {
            self.core.ring.is_empty()
        }

        /// Whether the queue is full (a snapshot).
        pub fn is_full(&self) -> bool {
            self.core.ring.is_full()
        }

        /// Most items the queue holds.
        pub fn capacity(&self) -> usize {
            self.core.ring.capacity()
        }

        /// This handle puts no more (Python's `Queue.close`: "no more data
        /// will be put on this queue by the current process"): its puts fail
        /// with `Closed`, its gets still work. Once every sending handle has
        /// closed (or been dropped, or its process has died), receivers drain
        /// what is queued and then get `Closed`: see the end of stream in the
        /// [module doc](crate::queue).
        pub fn close(&self) {
            self.core.close_sending();
        }

        /// Closes the queue for every process (Python 3.13's
        /// `Queue.shutdown`): puts fail with `Closed`, gets drain what is
        /// queued and then fail with `Closed`, and every sleeper is woken. With
        /// `immediate`, what is queued is discarded first (and, on a joinable
        /// queue, counted done), so that gets fail at once.
        pub fn shutdown(&self, immediate: bool) {
            self.core.shutdown(immediate);
        }

        /// Whether the queue was [`shutdown`](Self::shutdown).
        pub fn is_shutdown(&self) -> bool {
            self.core.ring.is_closed()
        }

        /// Whether this handle may still put: its [`Role`] sends and it was
        /// not [`close`](Self::close)d.
        pub fn is_sending(&self) -> bool {
            self.core.sends.load(Ordering::Relaxed)
        }

        /// Whether a get on this handle, once the queue is drained, fails
        /// with `Closed`: the queue was shut down, or this handle does not
        /// send and every handle that did is gone.
        pub fn is_ended(&self) -> bool {
            self.core.ring.is_closed() || self.core.stream_ended()
        }

        /// Sending handles open now in live processes (one system call
        /// each; a snapshot).
        pub fn senders(&self) -> usize {
            self.core.seg.live_senders()
        }

        /// Python's `JoinableQueue.task_done`: the consumer of an item says it
        /// is finished with it. `InvalidArgument` when the queue was not
        /// created [joinable](Options::joinable), or when called more often
        /// than items were put (Python's `ValueError`).
        pub fn task_done(&self) -> Result<()> {
            self.core.task_done()
        }

        /// Python's `JoinableQueue.join`: waits until every item put has
        /// been [`task_done`](Self::task_done). An item whose consumer died
        /// before its `task_done` is never done: use
        /// [`join_timeout`](Self::join_timeout) where consumers may die.
        pub fn join(&self) -> Result<()> {
            self.core.join(Deadline::never())
        }

        /// [`join`](Self::join), waiting at most `timeout` (`Timeout`).
        pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
            self.core.join(Deadline::after(timeout))
        }

        /// [`join`](Self::join), waiting until `deadline` (`Timeout`).
        pub fn join_deadline(&self, deadline: Deadline) -> Result<()> {
            self.core.join(deadline)
        }

        /// Items put and not yet done (a joinable queue; 0 otherwise).
        pub fn unfinished_tasks(&self) -> usize {
            self.core.seg.unfinished() as usize
        }
    };
}

mod bytes;
#[cfg(not(shmprim_loom))]
mod object;
mod raw;
pub use bytes::ByteQueue;
#[cfg(not(shmprim_loom))]
pub use object::{MIN_OBJECT_SLOT, ObjectQueue};
pub use raw::RawQueue;

fn capacity_u64(capacity: usize) -> u64 {
    capacity as u64
}

/// A multi-producer multi-consumer queue of `T` in shared memory (Python's
/// `multiprocessing.Queue` for plain-data values). See the [module doc](self).
///
/// `T` is `Pod` and so `Copy`: a `try_put` that fails with `Full` leaves the
/// caller's value with the caller.
pub struct Queue<T: Pod> {
    core: Core,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Pod> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

impl<T: Pod> Queue<T> {
    fn slot() -> u64 {
        std::mem::size_of::<T>() as u64
    }

    fn builder(capacity: usize, opts: &Options) -> Result<SegmentBuilder> {
        Ok(Core::builder(
            Kind::Queue,
            capacity_u64(capacity),
            Self::slot(),
            crate::cell::payload_desc::<T>(),
        )?
        .options(opts)
        .flags(create_flags(opts)))
    }

    fn wrap(seg: Segment, role: Role) -> Result<Queue<T>> {
        Ok(Queue {
            core: Core::attach(seg, Some(Self::slot()), role)?,
            _t: PhantomData,
        })
    }

    /// Creates a queue of `capacity` elements (1 to 2^32; any value, powers of two
    /// are a little faster); `AlreadyExists` if the name is taken.
    pub fn create(name: &str, capacity: usize) -> Result<Queue<T>> {
        Self::create_with_options(name, capacity, &Options::default())
    }

    /// [`create`](Self::create) with handle [`Options`].
    pub fn create_with_options(name: &str, capacity: usize, opts: &Options) -> Result<Queue<T>> {
        let init = Core::init(Kind::Queue, capacity_u64(capacity), Self::slot());
        let seg = Self::builder(capacity, opts)?.create_with(name, init)?;
        crate::segment::finish_create(seg, |seg| Self::wrap(seg, opts.role))
    }

    /// Opens an existing queue of `T` (`Incompatible` for another kind or type).
    pub fn open(name: &str) -> Result<Queue<T>> {
        Self::open_with_options(name, &Options::default())
    }

    /// [`open`](Self::open) with handle [`Options`].
    pub fn open_with_options(name: &str, opts: &Options) -> Result<Queue<T>> {
        let seg = SegmentBuilder::new(Kind::Queue)
            .payload(crate::cell::payload_desc::<T>())
            .options(opts)
            .open(name)?;
        Self::wrap(seg, opts.role)
    }

    /// Opens the queue, or creates it with `capacity` if it does not exist.
    pub fn open_or_create(name: &str, capacity: usize) -> Result<(Queue<T>, Disposition)> {
        Self::open_or_create_with_options(name, capacity, &Options::default())
    }

    /// [`open_or_create`](Self::open_or_create) with handle [`Options`].
    pub fn open_or_create_with_options(
        name: &str,
        capacity: usize,
        opts: &Options,
    ) -> Result<(Queue<T>, Disposition)> {
        let init = Core::init(Kind::Queue, capacity_u64(capacity), Self::slot());
        let (seg, how) = Self::builder(capacity, opts)?.open_or_create_with(name, init)?;
        if how == Disposition::Opened {
            seg.expect_param(PARAM_CAPACITY, capacity_u64(capacity), "capacity")?;
        }
        Ok((Self::wrap(seg, opts.role)?, how))
    }

    /// An anonymous queue, shared with children forked after this call.
    pub fn anonymous(capacity: usize) -> Result<Queue<T>> {
        Self::anonymous_with_options(capacity, &Options::default())
    }

    /// [`anonymous`](Self::anonymous) with handle [`Options`].
    pub fn anonymous_with_options(capacity: usize, opts: &Options) -> Result<Queue<T>> {
        let init = Core::init(Kind::Queue, capacity_u64(capacity), Self::slot());
        Self::wrap(
            Self::builder(capacity, opts)?.anonymous_with(init)?,
            opts.role,
        )
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::Queue)
    }

    /// The segment holding the queue.
    pub fn segment(&self) -> &Segment {
        &self.core.seg
    }

    #[inline(always)]
    fn put_deadline_raw(
        &self,
        value: &T,
        deadline: impl Into<Patience>,
        try_once: bool,
    ) -> Result<()> {
        if !self.core.plain_put() {
            return self.put_counted(value, deadline.into().fix(), try_once);
        }
        match self.core.on_own_lane_fast(
            #[inline(always)]
            |ring, a, by_stamp| ring.push_value_fast(a, value, try_once, by_stamp),
        ) {
            Fast::Slow | Fast::Lost => {}
            fast => return self.core.ring.fast_result(fast),
        }
        // The deadline is fixed here, off the fast path: a put that finds
        // room reads no clock.
        self.put_slow(value, deadline.into().fix(), try_once)
    }

    /// Everything [`put_deadline_raw`](Self::put_deadline_raw)'s inlined
    /// attempt leaves: other threads, waiting, contention, errors.
    #[inline(never)]
    fn put_slow(&self, value: &T, deadline: Deadline, try_once: bool) -> Result<()> {
        self.core
            .with_agent(|ring, a, live| ring.push_value(a, live, value, deadline, try_once))
    }

    /// A put on a handle that closed, or on a joinable queue.
    #[cold]
    fn put_counted(&self, value: &T, deadline: Deadline, try_once: bool) -> Result<()> {
        self.core
            .counted_put(1, || self.put_slow(value, deadline, try_once).map(|()| 1))
            .map(drop)
    }

    /// Puts `value`, waiting for room as long as it takes.
    #[inline]
    pub fn put(&self, value: T) -> Result<()> {
        self.put_deadline_raw(&value, Deadline::never(), false)
    }

    /// Puts `value`, waiting at most `timeout` for room (`Timeout`).
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<()> {
        self.put_deadline_raw(&value, Patience::Within(timeout), false)
    }

    /// Puts `value`, waiting until `deadline` for room (`Timeout`).
    pub fn put_deadline(&self, value: T, deadline: Deadline) -> Result<()> {
        self.put_deadline_raw(&value, deadline, false)
    }

    /// Puts `value` if there is room now, else fails with `Full` (also while
    /// a concurrent get is still taking the oldest value out: see the module
    /// doc).
    #[inline]
    pub fn try_put(&self, value: T) -> Result<()> {
        self.put_deadline_raw(&value, Deadline::never(), true)
    }

    /// Puts as many of `values` as there is room for now, in order, claiming up to
    /// 63 slots per atomic step; returns how many. `Full` if none fits.
    pub fn put_many(&self, values: &[T]) -> Result<usize> {
        self.put_many_deadline(values, Deadline::never(), true)
    }

    /// Like [`put_many`](Self::put_many), but waits until `deadline` for room for
    /// the first value (`Timeout`).
    pub fn put_many_timeout(&self, values: &[T], timeout: Duration) -> Result<usize> {
        try_first(
            timeout,
            |d| self.put_many_deadline(values, d, false),
            is_timeout,
        )
    }

    fn put_many_deadline(&self, values: &[T], deadline: Deadline, try_once: bool) -> Result<usize> {
        self.core.counted_put(values.len(), || {
            self.core.with_agent(|ring, a, live| {
                ring.push_with(
                    a,
                    live,
                    values.len(),
                    |i| bytemuck::bytes_of(&values[i]),
                    deadline,
                    try_once,
                )
            })
        })
    }

    #[inline(always)]
    fn get_raw(&self, deadline: impl Into<Patience>, try_once: bool) -> Result<T> {
        match self.core.on_own_lane_fast(
            #[inline(always)]
            |ring, a, by_stamp| ring.pop_value_fast(a, try_once, by_stamp),
        ) {
            Fast::Slow | Fast::Lost => {}
            Fast::Empty if self.core.empty_may_have_ended() => {}
            fast => return self.core.ring.fast_result(fast),
        }
        // As in `put_deadline_raw`: a get that finds a value reads no clock.
        self.get_slow(deadline.into().fix(), try_once)
    }

    /// Everything [`get_raw`](Self::get_raw)'s inlined attempt leaves.
    #[inline(never)]
    fn get_slow(&self, deadline: Deadline, try_once: bool) -> Result<T> {
        self.core
            .with_agent(|ring, a, live| ring.pop_value(a, live, deadline, try_once))
    }

    /// Takes the oldest value, waiting as long as it takes; `Closed` once the
    /// queue is shut down or its stream has ended (see the module doc), and drained.
    #[inline]
    pub fn get(&self) -> Result<T> {
        self.get_raw(Deadline::never(), false)
    }

    /// Takes the oldest value, waiting at most `timeout` (`Timeout`).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_raw(Patience::Within(timeout), false)
    }

    /// Takes the oldest value, waiting until `deadline` (`Timeout`).
    pub fn get_deadline(&self, deadline: Deadline) -> Result<T> {
        self.get_raw(deadline, false)
    }

    /// Takes the oldest value if there is one now, else fails with `Empty`
    /// (also while a concurrent put is still writing the oldest value in: see
    /// the module doc).
    #[inline]
    pub fn try_get(&self) -> Result<T> {
        self.get_raw(Deadline::never(), true)
    }

    /// Takes as many values as are there now, up to `buf.len()`, into the start of
    /// `buf`; returns how many. `Empty` if there is none.
    pub fn get_many(&self, buf: &mut [T]) -> Result<usize> {
        self.get_many_deadline(buf, Deadline::never(), true)
    }

    /// Like [`get_many`](Self::get_many), but waits until `deadline` for the
    /// first value (`Timeout`).
    pub fn get_many_timeout(&self, buf: &mut [T], timeout: Duration) -> Result<usize> {
        try_first(
            timeout,
            |d| self.get_many_deadline(buf, d, false),
            is_timeout,
        )
    }

    fn get_many_deadline(
        &self,
        buf: &mut [T],
        deadline: Deadline,
        try_once: bool,
    ) -> Result<usize> {
        let n = buf.len();
        let size = std::mem::size_of::<T>();
        let mut wrong_len = None;
        let got = self.core.with_agent(|ring, a, live| {
            ring.pop_with(
                a,
                live,
                n,
                None,
                |i, b| {
                    if b.len() == size {
                        b.copy_to(bytemuck::bytes_of_mut(&mut buf[i]));
                    } else {
                        wrong_len.get_or_insert(b.len());
                    }
                },
                deadline,
                try_once,
            )
        })?;
        match wrong_len {
            // Every slot of a `Queue<T>` holds exactly one `T`: another length
            // read from the segment is corruption (the batch is reported, not
            // delivered with a hole in it).
            Some(len) => Err(Error::corrupted(
                self.core.seg.display_name(),
                format!("message of {len} bytes in a queue of {size}-byte values"),
            )),
            None => Ok(got),
        }
    }

    stream_methods!();
}

/// The inspection summary of a queue segment (`shmprim ls` / `stat`): depth,
/// capacity, open or closed, and sleepers. Loads only; a torn or corrupted state
/// shows as odd numbers, never a crash.
pub(crate) fn summarize(
    info: &crate::segment::HeaderInfo,
    view: &crate::inspect::view::StateView<'_>,
) -> Option<crate::inspect::view::StateSummary> {
    use crate::inspect::view::{Field, StateSummary};
    let capacity = info.params[PARAM_CAPACITY];
    let head = view.u64(MpmcState::HEAD_OFFSET)?;
    let tail = view.u64(MpmcState::TAIL_OFFSET)?;
    let closed = view.u32(MpmcState::CLOSED_OFFSET)? != 0;
    let getters = view.u32(MpmcState::GET_WAITERS_OFFSET)?;
    let putters = view.u32(MpmcState::PUT_WAITERS_OFFSET)?;
    let depth = tail.saturating_sub(head).min(capacity);
    Some(StateSummary {
        line: format!(
            "depth {depth}/{capacity}, {}, {getters} getting, {putters} putting",
            if closed { "closed" } else { "open" }
        ),
        fields: vec![
            ("depth", Field::U64(depth)),
            ("capacity", Field::U64(capacity)),
            ("slot_size", Field::U64(info.params[PARAM_SLOT_SIZE])),
            ("closed", Field::Bool(closed)),
            ("head", Field::U64(head)),
            ("tail", Field::U64(tail)),
            ("waiting_getters", Field::U64(getters as u64)),
            ("waiting_putters", Field::U64(putters as u64)),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `BUSY` mark on lane 0 is what keeps a nested use on the same
    /// thread (a signal handler putting on the handle its thread is in the
    /// middle of using) off the record of the operation it interrupted: it
    /// must take another lane's record, and lane 0 must be free again after.
    #[test]
    fn a_nested_use_on_the_owner_thread_takes_another_record_than_lane_0() {
        let q = Queue::<u64>::anonymous(4).unwrap();
        // The first operation makes this thread lane 0's owner.
        assert!(matches!(q.try_get(), Err(Error::Empty { .. })));
        let outer = q.core.on_own_lane_fast(|_, outer, _| {
            let inner = q.core.with_agent(|_, inner, _| Ok(inner.index)).unwrap();
            Fast::Done((outer.index, inner))
        });
        let Fast::Done((outer, inner)) = outer else {
            panic!("lane 0 was not ready for its owner: {outer:?}");
        };
        assert_ne!(outer, inner, "the nested use shared lane 0's record");
        assert_eq!(outer, q.core.own.state.load(Ordering::Relaxed));
        // Lane 0 was handed back free, with its record.
        let again = q.core.on_own_lane_fast(|_, a, _| Fast::Done(a.index));
        assert!(matches!(again, Fast::Done(i) if i == outer), "{again:?}");
        // And the nested use left the queue working.
        q.try_put(7).unwrap();
        assert_eq!(q.try_get().unwrap(), 7);
    }
}
