//! A reusable barrier for a fixed number of parties, in shared memory. Python
//! counterpart: `multiprocessing.Barrier` (the semantics of
//! `threading.Barrier`).
//!
//! Each of `parties` callers of [`Barrier::wait`] blocks until the last one
//! arrives; then all return, each with a distinct index in `0..parties` (the
//! arrival order, 0 for the first, as in Python). Exactly one party of each
//! generation gets index 0: use `barrier.wait()? == 0` to elect a leader, as
//! Python's documentation does. The barrier is then ready for the next
//! generation.
//!
//! The barrier *breaks* when a waiter times out, or on [`Barrier::abort`]: every
//! party waiting then gets [`Error::BrokenBarrier`], and so does every later
//! `wait`, until [`Barrier::reset`] returns it to the empty state. `reset` while
//! parties wait breaks their generation (they get `BrokenBarrier`) and starts a
//! fresh one at once. The caller whose timeout broke the barrier gets
//! [`Error::Timeout`] (Python raises `BrokenBarrierError` for it too; here it
//! learns *why*), the others `BrokenBarrier`. Python's `action` and `timeout`
//! arguments are [`Barrier::with_action`] (run by the last party to arrive,
//! before any is released) and [`Barrier::with_timeout`] (what `wait` waits
//! at most).
//!
//! # Death of a participant
//!
//! A party of a named (or anonymous) [`Barrier`] that dies while waiting
//! breaks the barrier: the others, who sleep in slices of
//! [`LIVENESS_SLICE`] and look in the barrier's
//! waiter table for parties of their generation whose process has died, get
//! [`Error::BrokenBarrier`] within about one slice, as they would after an
//! [`abort`](Barrier::abort). A party that dies before it arrives never
//! arrives: the others wait until their timeouts break the barrier, or until
//! someone calls [`abort`](Barrier::abort) or [`reset`](Barrier::reset).
//! No state needs the dead to recover: `reset` always works. A
//! [`BarrierState`] placed in memory of one's own has no participant table
//! and sees no death.
//!
//! # State
//!
//! One futex word holds everything, so that arriving, releasing and breaking
//! are single compare-and-swaps and generations cannot mix:
//!
//! | bits    | field    | meaning                                                  |
//! |---------|----------|----------------------------------------------------------|
//! | 0..12   | `count`  | parties arrived in the current generation (< `parties`)  |
//! | 12      | `broken` | the current generation is broken                         |
//! | 13..21  | `hist`   | outcomes of the 8 previous generations (bit i: `gen-1-i`), 1 = broken |
//! | 21..32  | `gen`    | generation number, modulo 2048                           |
//!
//! | operation       | from                          | to                                      | then                       |
//! |-----------------|-------------------------------|-----------------------------------------|----------------------------|
//! | wait (arrive)   | `broken`                      | —                                       | `BrokenBarrier`            |
//! | wait (arrive)   | `count + 1 < parties`         | `count + 1`                             | sleep until the word moves |
//! | wait (last)     | `count + 1 == parties`        | `gen + 1`, `hist << 1 \| 0`, `count 0`  | wake all, index `count`    |
//! | wait timed out  | same `gen`, not broken        | `broken`                                | wake all, `Timeout`        |
//! | abort           | not broken                    | `broken`                                | wake all                   |
//! | reset           | broken, or `count > 0`        | `gen + 1`, `hist << 1 \| 1`, `count 0`  | wake all                   |
//! | reset           | not broken, `count == 0`      | — (already empty)                       |                            |
//!
//! A waiter remembers the `gen` it arrived in, `g`. Reading the word, with
//! `d = gen - g`: `d == 0` and not broken, it sleeps on; `d == 0` and broken, it
//! gets `BrokenBarrier`; `1 ≤ d ≤ 8`, its generation ended and `hist` bit `d-1`
//! says how (released: its index; broken by a reset: `BrokenBarrier`), even if
//! later generations already ran. A waiter that sleeps through more than 8
//! generation ends (possible only if more processes than `parties` use the
//! barrier, or others abort and reset it repeatedly meanwhile) cannot tell and
//! reports `BrokenBarrier`; one that sleeps through a multiple of 2048 would
//! mistake a later generation for its own (the price of fitting everything in
//! one futex word). `parties` is at most [`MAX_PARTIES`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use shmprim::Barrier;
//! # let name = format!("doc-barrier-{}", std::process::id());
//! let barrier = Barrier::create(&name, 2)?;
//! let t = std::thread::spawn({
//!     let name = name.clone();
//!     move || Barrier::open(&name)?.wait() // another process would do this
//! });
//! let mine = barrier.wait()?;
//! let theirs = t.join().unwrap()?;
//! assert_eq!(mine + theirs, 1); // indices 0 and 1
//! // Nobody else comes: the wait times out and breaks the barrier.
//! assert!(matches!(barrier.wait_timeout(Duration::from_millis(10)), Err(shmprim::Error::Timeout { .. })));
//! assert!(barrier.is_broken());
//! barrier.reset();
//! assert!(!barrier.is_broken());
//! Barrier::unlink(&name)?;
//! # Ok::<(), shmprim::Error>(())
//! ```

use std::ptr::NonNull;
use std::time::Duration;

use crate::error::{Error, ObjectName, Of, Result};
use crate::segment::Disposition;
use crate::segment::{Kind, MAX_PARTICIPANTS, Options, ParticipantId, Segment, SegmentBuilder};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{Deadline, LIVENESS_SLICE, wait_while_eq, wake};

const COUNT_MASK: u32 = (1 << 12) - 1;
const BROKEN: u32 = 1 << 12;
const HIST_SHIFT: u32 = 13;
const HIST_LEN: u32 = 8;
const HIST_MASK: u32 = (1 << HIST_LEN) - 1;
const GEN_SHIFT: u32 = 21;
const GEN_MASK: u32 = (1 << (32 - GEN_SHIFT)) - 1;

/// The largest number of parties a barrier can have.
pub const MAX_PARTIES: u32 = COUNT_MASK;

/// Header parameter holding the number of parties.
const PARAM_PARTIES: usize = 0;

/// Where a named barrier's waiter table starts in its data area (after the
/// 12-byte state, aligned for its 8-byte entries).
const WAITERS_OFFSET: usize = 16;

/// Bytes of a named barrier's data area: the state, then one waiter entry
/// per participant slot.
const DATA_SIZE: usize = WAITERS_OFFSET + MAX_PARTICIPANTS * 8;

/// A named barrier's table of waiting parties, so that a party that dies
/// while waiting breaks the barrier instead of staying counted for ever.
///
/// Entry `s` belongs to participant slot `s`:
///
/// | value                                   | meaning                                   |
/// |-----------------------------------------|-------------------------------------------|
/// | 0                                       | the slot's holder waits in no generation  |
/// | `slot generation << 32 \| (gen + 1)`    | it waits (or is arriving) in `gen`        |
///
/// A waiter sleeps in slices of [`LIVENESS_SLICE`]; after each it looks for
/// entries of its own generation whose holder is dead (the segment's
/// liveness table, immune to pid reuse), and breaks the generation if it
/// finds one. An entry left by a party killed after its generation ended
/// names an older generation and is ignored. The entries are hints read from
/// shared memory: a scribbled one can at worst break a generation (as
/// `abort` can), never stop a live party.
struct Watch<'a> {
    table: &'a [AtomicU64],
    seg: &'a Segment,
    me: ParticipantId,
}

impl Watch<'_> {
    fn entry(&self) -> Option<&AtomicU64> {
        self.table.get(self.me.slot as usize)
    }

    /// Records this party as waiting in `generation`, before it arrives.
    fn enter(&self, generation: u32) {
        if let Some(e) = self.entry() {
            let v = (u64::from(self.me.generation) << 32) | u64::from(generation + 1);
            // Release: pairs with the Acquire load in `someone_died`.
            e.store(v, Ordering::Release);
        }
    }

    /// Records that this party waits no more.
    fn leave(&self) {
        if let Some(e) = self.entry() {
            e.store(0, Ordering::Relaxed);
        }
    }

    /// Whether a party recorded as waiting in `generation` has died.
    fn someone_died(&self, generation: u32) -> bool {
        let mine = self.me.slot as usize;
        self.table.iter().enumerate().any(|(slot, e)| {
            // Acquire: pairs with the Release store in `enter`.
            let v = e.load(Ordering::Acquire);
            slot != mine
                && v as u32 == generation + 1
                && !self.seg.is_alive(ParticipantId {
                    slot: slot as u32,
                    generation: (v >> 32) as u32,
                })
        })
    }
}

fn count_of(w: u32) -> u32 {
    w & COUNT_MASK
}

fn gen_of(w: u32) -> u32 {
    w >> GEN_SHIFT
}

fn hist_of(w: u32) -> u32 {
    (w >> HIST_SHIFT) & HIST_MASK
}

/// The first word of the generation after `w`'s, recording whether `w`'s broke.
fn next_generation(w: u32, broke: bool) -> u32 {
    let generation = (gen_of(w) + 1) & GEN_MASK;
    let hist = ((hist_of(w) << 1) | u32::from(broke)) & HIST_MASK;
    (generation << GEN_SHIFT) | (hist << HIST_SHIFT)
}

/// What the word says about the generation `g` a waiter arrived in.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Waiting,
    Passed,
    Broken,
}

fn outcome(w: u32, g: u32) -> Outcome {
    let d = gen_of(w).wrapping_sub(g) & GEN_MASK;
    if d == 0 {
        if w & BROKEN != 0 {
            Outcome::Broken
        } else {
            Outcome::Waiting
        }
    } else if d <= HIST_LEN && (hist_of(w) >> (d - 1)) & 1 == 0 {
        Outcome::Passed
    } else {
        Outcome::Broken
    }
}

fn check_parties(parties: u32) -> Result<()> {
    if parties == 0 || parties > MAX_PARTIES {
        return Err(Error::invalid_argument(format!(
            "a barrier needs 1 to {MAX_PARTIES} parties, not {parties}"
        )));
    }
    Ok(())
}

/// Breaks the barrier if dropped: armed around a party's `action`, so that a
/// panic in it breaks the generation for the others, as an exception in
/// Python's `action` does.
struct BreakOnUnwind<'a>(&'a BarrierState);

impl Drop for BreakOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A [`BrokenBarrier`](Error::BrokenBarrier) of a state that knows no name
/// ([`Barrier`] gives it its segment's).
fn broken() -> Error {
    Error::BrokenBarrier {
        name: ObjectName::unknown(),
    }
}

/// The barrier's state as it lives in shared memory (12 bytes, align 4).
///
/// Place it anywhere with [`BarrierState::init`] (the C API's
/// `shmprim_barrier_init(void *mem, parties)`), or on the heap with
/// [`BarrierState::new`]. Its methods report a corrupted state as
/// `Error::Corrupted` with an empty segment name.
#[repr(C)]
#[derive(Debug)]
pub struct BarrierState {
    /// `gen | hist | broken | count` (see the module's table); the futex word.
    word: AtomicU32,
    /// Processes that may be asleep on `word`.
    waiters: AtomicU32,
    /// Number of parties, `1..=MAX_PARTIES`. Written once by `init`.
    parties: AtomicU32,
}

impl BarrierState {
    /// Bytes the state occupies.
    pub const SIZE: usize = std::mem::size_of::<BarrierState>();
    /// Alignment the state needs.
    pub const ALIGN: usize = std::mem::align_of::<BarrierState>();

    /// A fresh barrier for `parties` parties; `InvalidArgument` unless
    /// `1 <= parties <= MAX_PARTIES`.
    pub fn new(parties: u32) -> Result<BarrierState> {
        check_parties(parties)?;
        Ok(BarrierState {
            word: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            parties: AtomicU32::new(parties),
        })
    }

    /// Writes a fresh barrier at `ptr`; `InvalidArgument` (and nothing written)
    /// unless `1 <= parties <= MAX_PARTIES`.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of [`BarrierState::SIZE`] bytes, aligned to
    /// [`BarrierState::ALIGN`], and not in use by any other thread or process
    /// while this runs.
    pub unsafe fn init(ptr: *mut BarrierState, parties: u32) -> Result<()> {
        let state = BarrierState::new(parties)?;
        // SAFETY: the caller guarantees `ptr` is valid, aligned and unshared.
        unsafe { ptr.write(state) };
        Ok(())
    }

    /// Number of parties; `Corrupted` if the stored value is out of range.
    pub fn parties(&self) -> Result<u32> {
        let parties = self.parties.load(Ordering::Relaxed);
        check_parties(parties)
            .map(|()| parties)
            .map_err(|_| Error::corrupted("", format!("barrier parties {parties}")))
    }

    /// Waits for all parties, until `deadline`: `Ok(index)` with the arrival
    /// order in `0..parties`; `BrokenBarrier` if the barrier is or becomes
    /// broken or reset; `Timeout` if the deadline passed first, which breaks the
    /// barrier for the others.
    pub fn wait(&self, deadline: Deadline) -> Result<usize> {
        self.wait_watched(deadline, None, None)
    }

    /// [`wait`](Self::wait), recording this party in `watch`'s table while it
    /// waits and breaking the barrier when another recorded party of its
    /// generation has died.
    fn wait_watched(
        &self,
        deadline: Deadline,
        watch: Option<&Watch<'_>>,
        action: Option<&mut dyn FnMut()>,
    ) -> Result<usize> {
        let r = self.arrive_and_wait(deadline, watch, action);
        if let Some(watch) = watch {
            watch.leave();
        }
        r
    }

    fn arrive_and_wait(
        &self,
        deadline: Deadline,
        watch: Option<&Watch<'_>>,
        mut action: Option<&mut dyn FnMut()>,
    ) -> Result<usize> {
        let parties = self.parties()?;
        let mut w = self.word.load(Ordering::Relaxed);
        let (generation, index) = loop {
            if w & BROKEN != 0 {
                return Err(broken());
            }
            if let Some(watch) = watch {
                // Before the arrival: a party that dies between the two is
                // recorded as waiting in this generation, and the others
                // break it, as they must (it will never arrive).
                watch.enter(gen_of(w));
            }
            let c = count_of(w);
            if c >= parties {
                return Err(Error::corrupted(
                    "",
                    format!("barrier count {c} with {parties} parties"),
                ));
            }
            let last = c + 1 == parties;
            if last {
                if let Some(action) = action.take() {
                    // Every other party of this generation waits: run the
                    // action before releasing them (Python's `action`), then
                    // look at the word again. A panic breaks the barrier.
                    let broke = BreakOnUnwind(self);
                    action();
                    std::mem::forget(broke);
                    // Acquire: pairs with the AcqRel of any change made
                    // while the action ran (a break, a reset).
                    w = self.word.load(Ordering::Acquire);
                    continue;
                }
            }
            let new = if last {
                next_generation(w, false)
            } else {
                w + 1
            };
            // AcqRel, on every change of the word (all are read-modify-writes, so
            // each arrival's Release heads a release sequence the last arrival
            // reads from): Acquire makes the earlier parties' writes visible to
            // us, Release publishes ours (and theirs) to the waiters' Acquire
            // loads of the new generation.
            match self
                .word
                .compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) if last => {
                    wake(&self.word, &self.waiters, u32::MAX);
                    return Ok(c as usize);
                }
                Ok(_) => break (gen_of(w), c as usize),
                Err(now) => w = now,
            }
        };
        w += 1;
        loop {
            match outcome(w, generation) {
                Outcome::Passed => return Ok(index),
                Outcome::Broken => return Err(broken()),
                Outcome::Waiting => {}
            }
            // A watched waiter sleeps in slices, to look for dead parties.
            let until = match watch {
                Some(_) => deadline.min(Deadline::after(LIVENESS_SLICE)),
                None => deadline,
            };
            if wait_while_eq(&self.word, &self.waiters, w, until).is_err() {
                let timed_out = deadline.has_passed();
                if timed_out || watch.is_some_and(|watch| watch.someone_died(generation)) {
                    // Our deadline passed, or a party of our generation died
                    // waiting: break the generation for everyone. AcqRel: as
                    // above (the waiters' Acquire loads see the break).
                    match self.word.compare_exchange(
                        w,
                        w | BROKEN,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            wake(&self.word, &self.waiters, u32::MAX);
                            return Err(if timed_out {
                                Error::timeout(&ObjectName::unknown())
                            } else {
                                broken()
                            });
                        }
                        Err(now) => {
                            w = now;
                            continue;
                        }
                    }
                }
            }
            // Acquire: pairs with the AcqRel CAS that released or broke us.
            w = self.word.load(Ordering::Acquire);
        }
    }

    /// Breaks the barrier: every party waiting, and every later `wait`, gets
    /// `BrokenBarrier` until [`reset`](Self::reset).
    pub fn abort(&self) {
        let mut w = self.word.load(Ordering::Relaxed);
        while w & BROKEN == 0 {
            // AcqRel: as in `wait`.
            match self.word.compare_exchange_weak(
                w,
                w | BROKEN,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    wake(&self.word, &self.waiters, u32::MAX);
                    return;
                }
                Err(now) => w = now,
            }
        }
    }

    /// Returns the barrier to the empty, unbroken state. Parties waiting get
    /// `BrokenBarrier`; the next `wait`s form a fresh generation.
    pub fn reset(&self) {
        let mut w = self.word.load(Ordering::Relaxed);
        while w & BROKEN != 0 || count_of(w) != 0 {
            // AcqRel: as in `wait`.
            match self.word.compare_exchange_weak(
                w,
                next_generation(w, true),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    wake(&self.word, &self.waiters, u32::MAX);
                    return;
                }
                Err(now) => w = now,
            }
        }
    }

    /// Parties waiting in the current generation (0 when broken); a snapshot.
    pub fn n_waiting(&self) -> u32 {
        let w = self.word.load(Ordering::Relaxed);
        if w & BROKEN != 0 { 0 } else { count_of(w) }
    }

    /// Whether the barrier is broken (until a `reset`).
    pub fn is_broken(&self) -> bool {
        self.word.load(Ordering::Relaxed) & BROKEN != 0
    }
}

/// A named (or anonymous) barrier: `multiprocessing.Barrier`. See the
/// [module documentation](self).
pub struct Barrier {
    seg: Segment,
    /// Python's `action`: run by the last party to arrive, before any is
    /// released ([`with_action`](Self::with_action)).
    action: Option<std::sync::Mutex<Box<dyn FnMut() + Send>>>,
    /// Python's `timeout`: what [`wait`](Self::wait) waits at most.
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("segment", &self.seg)
            .field("action", &self.action.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Barrier {
    fn from_segment(seg: Segment) -> Barrier {
        Barrier {
            seg,
            action: None,
            timeout: None,
        }
    }

    /// Python's `Barrier(parties, action=...)`: when this handle's party is
    /// the last to arrive, it runs `action` before any party is released.
    /// Each process gives its own handle the action; the party that trips
    /// the barrier runs its own. A panic in the action breaks the barrier
    /// for the others (`BrokenBarrier`) and goes on in the caller.
    pub fn with_action(mut self, action: impl FnMut() + Send + 'static) -> Barrier {
        self.action = Some(std::sync::Mutex::new(Box::new(action)));
        self
    }

    /// Python's `Barrier(parties, timeout=...)`: [`wait`](Self::wait) waits
    /// at most `timeout`, then breaks the barrier and answers `Timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Barrier {
        self.timeout = Some(timeout);
        self
    }

    /// The default timeout of [`wait`](Self::wait), if one was set.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn builder(parties: u32) -> Result<SegmentBuilder> {
        check_parties(parties)?;
        Ok(SegmentBuilder::new(Kind::Barrier)
            .data_size(DATA_SIZE as u64)
            .param(PARAM_PARTIES, parties.into()))
    }

    fn init_fn(parties: u32) -> impl FnOnce(NonNull<u8>, usize) -> Result<()> {
        move |ptr, len| {
            debug_assert!(len >= DATA_SIZE);
            // SAFETY: the data area is page aligned, at least DATA_SIZE bytes (we
            // asked for them; the waiter table after the state is zeroed), and
            // nobody else sees it before it is published as ready.
            unsafe { BarrierState::init(ptr.as_ptr().cast(), parties) }
        }
    }

    /// Creates a barrier for `parties` parties (`1..=MAX_PARTIES`);
    /// `AlreadyExists` if the name is taken.
    pub fn create(name: &str, parties: u32) -> Result<Barrier> {
        Self::create_with_options(name, parties, &Options::default())
    }

    /// Creates a barrier with handle [`Options`].
    pub fn create_with_options(name: &str, parties: u32, opts: &Options) -> Result<Barrier> {
        let seg = Self::builder(parties)?
            .options(opts)
            .create_with(name, Self::init_fn(parties))?;
        Ok(Barrier::from_segment(seg))
    }

    /// Opens an existing barrier, with the number of parties it was created
    /// with.
    pub fn open(name: &str) -> Result<Barrier> {
        Self::open_with_options(name, &Options::default())
    }

    /// [`open`](Self::open) with handle [`Options`].
    pub fn open_with_options(name: &str, opts: &Options) -> Result<Barrier> {
        let seg = SegmentBuilder::new(Kind::Barrier)
            .options(opts)
            .open(name)?;
        Self::validate(seg)
    }

    /// Opens the barrier, or creates it for `parties` parties. An existing
    /// barrier for another number of parties is `Incompatible { what: Parameter }`.
    pub fn open_or_create(name: &str, parties: u32) -> Result<(Barrier, Disposition)> {
        let (seg, how) =
            Self::builder(parties)?.open_or_create_with(name, Self::init_fn(parties))?;
        seg.expect_param(PARAM_PARTIES, parties.into(), "parties")?;
        Ok((Self::validate(seg)?, how))
    }

    /// An anonymous barrier, shared with children forked after this call.
    pub fn anonymous(parties: u32) -> Result<Barrier> {
        let seg = Self::builder(parties)?.anonymous_with(Self::init_fn(parties))?;
        Ok(Barrier::from_segment(seg))
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::Barrier)
    }

    fn validate(seg: Segment) -> Result<Barrier> {
        seg.expect_data_size(DATA_SIZE as u64)?;
        let param = seg.param(PARAM_PARTIES);
        let barrier = Barrier::from_segment(seg);
        let stored = barrier.state().parties.load(Ordering::Relaxed);
        if param == 0 || param > MAX_PARTIES.into() || u64::from(stored) != param {
            return Err(Error::corrupted(
                barrier.seg.display_name(),
                format!("barrier parties {stored}, header says {param}"),
            ));
        }
        Ok(barrier)
    }

    /// Puts this segment's name into an error from the state, which knows none.
    fn named<T>(&self, r: Result<T>) -> Result<T> {
        r.of(self.seg.object_name())
    }

    /// The state in the segment.
    pub fn state(&self) -> &BarrierState {
        // SAFETY: the data area is page aligned and holds at least SIZE bytes
        // (checked on open, requested on create); the state is only atomics, valid
        // for any bit pattern, and lives as long as the mapping `self.seg` owns.
        unsafe { &*self.seg.as_ptr().cast::<BarrierState>() }
    }

    /// The waiter table after the state.
    fn watch(&self) -> Watch<'_> {
        // The data area is page aligned and holds DATA_SIZE bytes (checked on
        // open, requested on create), so the table's MAX_PARTICIPANTS 8-byte
        // entries at WAITERS_OFFSET are in bounds and aligned.
        // SAFETY: in bounds and aligned, as just said; the entries are only
        // accessed atomically, valid for any bits, and live as long as the
        // mapping `self.seg` owns.
        let table = unsafe {
            std::slice::from_raw_parts(
                self.seg.as_ptr().add(WAITERS_OFFSET).cast::<AtomicU64>(),
                MAX_PARTICIPANTS,
            )
        };
        Watch {
            table,
            seg: &self.seg,
            me: self.seg.participant_id(),
        }
    }

    /// Waits for all parties, as long as it takes or for the default
    /// [`timeout`](Self::with_timeout): the arrival index in `0..parties`,
    /// or `BrokenBarrier` if the barrier is or becomes broken (also when a
    /// party dies while waiting).
    pub fn wait(&self) -> Result<usize> {
        self.wait_deadline(Deadline::from_timeout(self.timeout))
    }

    /// Waits at most `timeout` for all parties; on `Timeout` the barrier is
    /// broken for the others.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.wait_deadline(Deadline::after(timeout))
    }

    /// Waits until `deadline` for all parties; as [`wait_timeout`](Self::wait_timeout).
    pub fn wait_deadline(&self, deadline: Deadline) -> Result<usize> {
        let watch = self.watch();
        // Locked only by the party that runs it: threads of this process
        // sharing the handle must not queue on the action while they wait.
        let mut run = || {
            if let Some(action) = &self.action {
                (action
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner))();
            }
        };
        let action = self
            .action
            .is_some()
            .then_some(&mut run as &mut dyn FnMut());
        self.named(self.state().wait_watched(deadline, Some(&watch), action))
    }

    /// [`wait_deadline`](Self::wait_deadline) with an action for this call
    /// only: if this party is the last to arrive, it runs `action` before any
    /// party is released (instead of the handle's own
    /// [`with_action`](Self::with_action)).
    pub fn wait_with_action(&self, deadline: Deadline, action: impl FnOnce()) -> Result<usize> {
        let watch = self.watch();
        let mut action = Some(action);
        let mut run = || {
            if let Some(action) = action.take() {
                action();
            }
        };
        self.named(
            self.state()
                .wait_watched(deadline, Some(&watch), Some(&mut run)),
        )
    }

    /// Breaks the barrier: waiters and later `wait`s get `BrokenBarrier` until
    /// [`reset`](Self::reset).
    pub fn abort(&self) {
        self.state().abort()
    }

    /// Returns the barrier to the empty state; parties waiting get
    /// `BrokenBarrier`.
    pub fn reset(&self) {
        self.state().reset()
    }

    /// Number of parties (validated on open).
    pub fn parties(&self) -> u32 {
        self.seg.param(PARAM_PARTIES) as u32
    }

    /// Parties waiting in the current generation (0 when broken).
    pub fn n_waiting(&self) -> u32 {
        self.state().n_waiting()
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.state().is_broken()
    }

    /// The segment holding the barrier.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }
}

#[cfg(all(test, not(shmprim_loom)))]
mod tests {
    use super::*;
    use crate::test_support::until_asleep;

    /// Sleepers register and deregister, so a release with nobody asleep makes
    /// no syscall afterwards.
    #[test]
    fn sleeper_count_returns_to_zero_after_a_release() {
        let b = BarrierState::new(2).unwrap();
        std::thread::scope(|s| {
            let t = s.spawn(|| b.wait(Deadline::after(Duration::from_secs(10))));
            until_asleep(&b.waiters);
            assert!(b.wait(Deadline::never()).is_ok());
            assert!(t.join().unwrap().is_ok());
        });
        assert_eq!(b.waiters.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn outcome_reads_the_history_of_the_waiters_generation() {
        let g0 = 5 << GEN_SHIFT;
        assert_eq!(outcome(g0 | 2, 5), Outcome::Waiting);
        assert_eq!(outcome(g0 | BROKEN | 2, 5), Outcome::Broken);
        let released = next_generation(g0 | 2, false);
        assert_eq!(outcome(released, 5), Outcome::Passed);
        let reset = next_generation(g0 | 2, true);
        assert_eq!(outcome(reset, 5), Outcome::Broken);
        // A released generation is still read as released after 8 more broken
        // ones, and a generation broken by reset as broken after 8 released.
        let (mut a, mut b) = (released, reset);
        for _ in 0..7 {
            a = next_generation(a, true);
            b = next_generation(b, false);
        }
        assert_eq!(outcome(a, 5), Outcome::Passed);
        assert_eq!(outcome(b, 5), Outcome::Broken);
        // Beyond the history it cannot tell: broken.
        assert_eq!(outcome(next_generation(a, false), 5), Outcome::Broken);
        // Generation numbers wrap.
        let last = GEN_MASK << GEN_SHIFT;
        assert_eq!(gen_of(next_generation(last, false)), 0);
        assert_eq!(
            outcome(next_generation(last, false), GEN_MASK),
            Outcome::Passed
        );
    }
}

#[cfg(all(test, shmprim_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Three parties, one generation: all return (no lost wake-up), with the
    /// distinct indices 0, 1, 2 (so exactly one leader, index 0).
    #[test]
    fn loom_barrier_three_parties_distinct_indices() {
        loom::model(|| {
            let b = Arc::new(BarrierState::new(3).unwrap());
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    loom::thread::spawn(move || b.wait(Deadline::never()).unwrap())
                })
                .collect();
            let mut seen = vec![b.wait(Deadline::never()).unwrap()];
            for t in threads {
                seen.push(t.join().unwrap());
            }
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2]);
            assert_eq!(b.n_waiting(), 0);
        });
    }

    /// Two parties, two generations: a fast party re-entering the second
    /// generation is never counted in the first; after wait k each party sees
    /// the other reached phase k (nobody is a phase ahead), and each generation
    /// has one index 0 and one index 1.
    #[test]
    fn loom_barrier_generations_never_mix() {
        loom::model(|| {
            let b = Arc::new(BarrierState::new(2).unwrap());
            let phase = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
            let run = |me: usize, b: Arc<BarrierState>, phase: Arc<[AtomicU32; 2]>| {
                let mut indices = [0; 2];
                for (k, index) in indices.iter_mut().enumerate() {
                    phase[me].store(k as u32 + 1, Ordering::Relaxed);
                    *index = b.wait(Deadline::never()).unwrap();
                    let other = phase[1 - me].load(Ordering::Relaxed);
                    assert!(other == k as u32 + 1 || other == k as u32 + 2, "phase mix");
                }
                indices
            };
            let t = loom::thread::spawn({
                let (b, phase) = (b.clone(), phase.clone());
                move || run(1, b, phase)
            });
            let mine = run(0, b.clone(), phase.clone());
            let theirs = t.join().unwrap();
            for k in 0..2 {
                assert_eq!(mine[k] + theirs[k], 1, "generation {k} indices");
            }
        });
    }

    /// `abort` frees a waiter (it gets `BrokenBarrier`, whether it arrived
    /// before or after), and the barrier stays broken.
    #[test]
    fn loom_barrier_abort_frees_waiter() {
        loom::model(|| {
            let b = Arc::new(BarrierState::new(2).unwrap());
            let b2 = b.clone();
            let t = loom::thread::spawn(move || b2.wait(Deadline::never()));
            b.abort();
            assert!(matches!(
                t.join().unwrap(),
                Err(Error::BrokenBarrier { .. })
            ));
            assert!(b.is_broken());
        });
    }

    /// A waiter whose deadline passes breaks the barrier: it gets `Timeout`, the
    /// other waiter `BrokenBarrier`, never a hang.
    #[test]
    fn loom_barrier_timeout_breaks_for_the_other_waiter() {
        loom::model(|| {
            let b = Arc::new(BarrierState::new(3).unwrap());
            let b2 = b.clone();
            let t = loom::thread::spawn(move || b2.wait(Deadline::never()));
            // Under loom a finite deadline has already passed.
            let mine = b.wait(Deadline::after(Duration::from_millis(1)));
            assert!(matches!(mine, Err(Error::Timeout { .. })), "{mine:?}");
            assert!(matches!(
                t.join().unwrap(),
                Err(Error::BrokenBarrier { .. })
            ));
        });
    }

    /// `reset` while a party waits breaks its generation even if a new
    /// generation completes before it looks: the reset generation's waiter gets
    /// `BrokenBarrier`, the new generation's parties pass.
    #[test]
    fn loom_barrier_reset_is_not_mistaken_for_a_release() {
        loom::model(|| {
            let b = Arc::new(BarrierState::new(2).unwrap());
            let b1 = b.clone();
            let early = loom::thread::spawn(move || b1.wait(Deadline::never()));
            while b.n_waiting() == 0 {
                loom::thread::yield_now();
            }
            b.reset();
            let b2 = b.clone();
            let late = loom::thread::spawn(move || b2.wait(Deadline::never()));
            assert!(b.wait(Deadline::never()).is_ok());
            assert!(late.join().unwrap().is_ok());
            assert!(matches!(
                early.join().unwrap(),
                Err(Error::BrokenBarrier { .. })
            ));
        });
    }
}

/// The `ls`/`stat` view of a barrier's state (loads only).
pub(crate) fn summarize(
    view: &crate::inspect::view::StateView<'_>,
) -> Option<crate::inspect::view::StateSummary> {
    use crate::inspect::view::{Field, StateSummary};
    let word = view.u32(std::mem::offset_of!(BarrierState, word))?;
    let parties = view.u32(std::mem::offset_of!(BarrierState, parties))?;
    let broken = word & BROKEN != 0;
    let waiting = count_of(word);
    Some(StateSummary {
        line: format!(
            "{waiting}/{parties} waiting, generation {}{}",
            gen_of(word),
            if broken { ", BROKEN" } else { "" }
        ),
        fields: vec![
            ("waiting", Field::U64(waiting as u64)),
            ("parties", Field::U64(parties as u64)),
            ("broken", Field::Bool(broken)),
            ("generation", Field::U64(gen_of(word) as u64)),
        ],
    })
}
