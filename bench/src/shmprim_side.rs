//! The shmprim runners: what is measured for shmprim itself.
//!
//! Measured today: a busy-polling ping-pong over a word of a [`Segment`]; a
//! ping-pong that sleeps with [`shmprim::wait`] (spin, then a shared futex, woken
//! only when a waiter count says someone sleeps) over a [`Segment`]; `Mutex<u64>`
//! uncontended and contended; `Event`, `Semaphore` and `Barrier` round trips;
//! `Value<u64>` and a 64-byte `Value`; `SpscRing<u64>` and `SpscByteRing`
//! throughput and a ping-pong over two `SpscRing<u64>`; `Queue<u64>` throughput
//! with 1, 2 and 4 producer and consumer processes and a blocking round trip
//! over two `Queue<u64>`. Each primitive adds its
//! runners here in the same shape: the parent creates the object under the name
//! of a `ShmNameGuard` (unlinked on drop and on Ctrl-C), starts the peer with
//! [`Session::start`], measures from [`Session::go`], and checks what it got.
//!
//! For example, figure `spsc-u64` (`spsc_u64` below) is, in outline:
//!
//! ```text
//! pub(crate) fn spsc_u64(ctx: &Ctx) -> Res<f64> {
//!     let n = ctx.n(SPSC_U64_MSGS);
//!     let name = ShmNameGuard::new("spsc");   // unlinked on drop and on Ctrl-C
//!     let ring = SpscRing::<u64>::create(name.name(), SPSC_U64_CAPACITY as usize).map_err(err)?;
//!     let mut rx = ring.consumer().map_err(err)?;
//!     let s = Session::start(vec![Spawn::pinned("shmprim-spsc-producer", vec![name.name().into(), n.to_string()])])?;
//!     let t0 = s.go();
//!     let (mut tries, mut sum) = (0, 0u64);
//!     for _ in 0..n { sum += busy_pop(&mut rx, &mut tries, t0)?; }  // spin on try_pop, bounded
//!     let dt = t0.elapsed();
//!     s.finish()?;
//!     if sum != n * (n + 1) / 2 { return Err("wrong checksum".into()); }
//!     Ok(mmsgs(dt, n))
//! }
//! // + a child role `("shmprim-spsc-producer", shmprim_side::spsc_producer_child)` in
//! //   `ROLES` (open by name, take the producer end, `c.ready()?`, push 1..=n, `c.done()`),
//! // + `shmprim: Some(Impl { name: "SpscRing<u64>", run: shmprim_side::spsc_u64, .. })`
//! //   on the figure in figures.rs.
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Res;
use super::proc::{ChildCtx, Session, ShmNameGuard, Spawn};
use super::refs::{mmsgs, ns_per, spin_until_eq};
use crate::Ctx;
use crate::figures::{
    BARRIER_ROUNDS, FUTEX_ROUND_TRIPS, MPMC_CAPACITY, MPMC_MSGS, MUTEX_CONTENDED_OPS,
    MUTEX_UNCONTENDED_OPS, QUEUE_ROUND_TRIPS, SEM_ROUND_TRIPS, SPIN_ROUND_TRIPS, SPSC_4K_MSGS,
    SPSC_64B_MSGS, SPSC_BYTES_CAPACITY, SPSC_U64_CAPACITY, SPSC_U64_MSGS, VALUE_OPS,
};
use shmprim::ring::spsc::{Consumer, Producer, TryError};
use shmprim::wait::{wait_while_eq, wake};
use shmprim::{
    Barrier, Deadline, DuplexEnd, DuplexRing, Error, Event, Kind, Mutex, Pipe, PipeEnd, Queue,
    Segment, SegmentBuilder, Semaphore, SpscByteRing, SpscRing, Value,
};

/// A named raw segment for a run, unlinked on drop (and by the Ctrl-C handler).
struct NamedSegment {
    seg: Segment,
    name: ShmNameGuard,
}

impl NamedSegment {
    fn create(tag: &str) -> Res<NamedSegment> {
        let name = ShmNameGuard::new(tag);
        let seg = SegmentBuilder::new(Kind::Raw)
            .data_size(64)
            .create(name.name())
            .map_err(|e| e.to_string())?;
        Ok(NamedSegment { seg, name })
    }

    fn name(&self) -> String {
        self.name.name().to_owned()
    }
}

/// Word 0 (the ball) and word 1 (sleepers) of a segment's data area.
fn words(seg: &Segment) -> Res<(&AtomicU32, &AtomicU32)> {
    if seg.len() < 8 {
        return Err("segment too small".into());
    }
    // SAFETY: the data area is page aligned and at least 8 bytes (checked); both
    // words are only ever accessed atomically, by both processes.
    unsafe {
        let p = seg.as_ptr().cast::<AtomicU32>();
        Ok((&*p, &*p.add(1)))
    }
}

/// Busy-polling ping-pong over a word of a shmprim `Segment`: ns per round trip.
pub(crate) fn spin_pingpong(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SPIN_ROUND_TRIPS);
    let seg = NamedSegment::create("seg-spin")?;
    let (ball, _) = words(&seg.seg)?;
    let mut s = Session::start(vec![Spawn::pinned(
        "shmprim-spin-pong",
        vec![seg.name(), n.to_string()],
    )])?;
    let t0 = s.go();
    for i in 0..n as u32 {
        // Release: pairs with the child's Acquire spin.
        ball.store(2 * i + 1, Ordering::Release);
        spin_until_eq(ball, 2 * i + 2, t0)?;
    }
    let dt = t0.elapsed();
    s.wait_done()?;
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`spin_pingpong`].
pub(crate) fn spin_pong_child(c: &ChildCtx) -> Res<()> {
    let seg = Segment::open(c.str_arg(0)?).map_err(|e| e.to_string())?;
    let n: u64 = c.arg(1)?;
    let (ball, _) = words(&seg)?;
    c.ready()?;
    let t0 = Instant::now();
    for i in 0..n as u32 {
        spin_until_eq(ball, 2 * i + 1, t0)?;
        // Release: pairs with the parent's Acquire spin.
        ball.store(2 * i + 2, Ordering::Release);
    }
    c.done();
    Ok(())
}

/// Waits with `shmprim::wait` until the ball is `want`, then serves `want + 1`.
fn volley(ball: &AtomicU32, sleepers: &AtomicU32, want: u32) -> Res<()> {
    let deadline = Deadline::after(Duration::from_secs(20));
    loop {
        // Acquire: pairs with the peer's Release store before its wake.
        let seen = ball.load(Ordering::Acquire);
        if seen == want {
            break;
        }
        wait_while_eq(ball, sleepers, seen, deadline).map_err(|_| "peer timed out")?;
    }
    // Release: pairs with the peer's Acquire load after its wait.
    ball.store(want + 1, Ordering::Release);
    wake(ball, sleepers, 1);
    Ok(())
}

/// Ping-pong where each side waits with `shmprim::wait::wait_while_eq` and
/// serves with `wake`, over a shmprim `Segment`: ns per round trip.
pub(crate) fn wait_pingpong(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(FUTEX_ROUND_TRIPS);
    let seg = NamedSegment::create("seg-wait")?;
    let (ball, sleepers) = words(&seg.seg)?;
    let mut s = Session::start(vec![Spawn::pinned(
        "shmprim-wait-pong",
        vec![seg.name(), n.to_string()],
    )])?;
    let t0 = s.go();
    // The parent serves 0 -> 1 and waits for 2, serves 2 -> 3, ...
    ball.store(1, Ordering::Release);
    wake(ball, sleepers, 1);
    for i in 1..n as u32 {
        volley(ball, sleepers, 2 * i)?;
    }
    // Wait for the child's last answer.
    let last = 2 * n as u32;
    let deadline = Deadline::after(Duration::from_secs(20));
    while ball.load(Ordering::Acquire) != last {
        let seen = ball.load(Ordering::Acquire);
        if seen != last {
            wait_while_eq(ball, sleepers, seen, deadline).map_err(|_| "peer timed out")?;
        }
    }
    let dt = t0.elapsed();
    s.wait_done()?;
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`wait_pingpong`]: answers every odd value.
pub(crate) fn wait_pong_child(c: &ChildCtx) -> Res<()> {
    let seg = Segment::open(c.str_arg(0)?).map_err(|e| e.to_string())?;
    let n: u64 = c.arg(1)?;
    let (ball, sleepers) = words(&seg)?;
    c.ready()?;
    for i in 0..n as u32 {
        volley(ball, sleepers, 2 * i + 1)?;
    }
    c.done();
    Ok(())
}

// ---------------------------------------------------------------------------
// Mutex, Event, Semaphore, Barrier
// ---------------------------------------------------------------------------

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A deadline far enough for any peer, so that a dead one gives an error.
fn peer_deadline() -> Deadline {
    Deadline::after(super::proc::PEER_TIMEOUT)
}

/// Locks, increments the counter, unlocks, `n` times.
fn bump(m: &Mutex<u64>, n: u64) -> Res<()> {
    for _ in 0..n {
        let mut g = m.lock().map_err(err)?;
        *g += 1;
        drop(g);
    }
    Ok(())
}

fn counter(m: &Mutex<u64>) -> Res<u64> {
    Ok(*m.lock().map_err(err)?)
}

/// `Mutex<u64>` lock, increment, unlock with nobody else: ns per pair.
pub(crate) fn mutex_uncontended(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(MUTEX_UNCONTENDED_OPS);
    let name = ShmNameGuard::new("mutex");
    let m = Mutex::<u64>::create(name.name(), 0).map_err(err)?;
    let t0 = Instant::now();
    bump(&m, n)?;
    let dt = t0.elapsed();
    if counter(&m)? != n {
        return Err("lost increments".into());
    }
    Ok(ns_per(dt, n))
}

/// `Mutex<u64>` contended by two processes: ns per lock+unlock pair over both.
pub(crate) fn mutex_contended(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(MUTEX_CONTENDED_OPS);
    let name = ShmNameGuard::new("mutex-c");
    let m = Mutex::<u64>::create(name.name(), 0).map_err(err)?;
    let mut s = Session::start(vec![Spawn::pinned(
        "shmprim-mutex-contender",
        vec![name.name().into(), n.to_string()],
    )])?;
    let t0 = s.go();
    bump(&m, n)?;
    s.wait_done()?;
    let dt = t0.elapsed();
    s.finish()?;
    if counter(&m)? != 2 * n {
        return Err("lost increments".into());
    }
    Ok(ns_per(dt, 2 * n))
}

/// Child of [`mutex_contended`].
pub(crate) fn mutex_contender_child(c: &ChildCtx) -> Res<()> {
    let m = Mutex::<u64>::open(c.str_arg(0)?).map_err(err)?;
    let n: u64 = c.arg(1)?;
    c.ready()?;
    bump(&m, n)?;
    c.done();
    Ok(())
}

/// Two `Event`s: the parent sets `ping` and waits for `pong`; the child waits
/// for `ping`, clears it and sets `pong`. ns per round trip.
pub(crate) fn event_rtt(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(FUTEX_ROUND_TRIPS);
    let (ping_name, pong_name) = (ShmNameGuard::new("ev-ping"), ShmNameGuard::new("ev-pong"));
    let ping = Event::create(ping_name.name()).map_err(err)?;
    let pong = Event::create(pong_name.name()).map_err(err)?;
    let s = Session::start(vec![Spawn::pinned(
        "shmprim-event-pong",
        vec![
            ping_name.name().into(),
            pong_name.name().into(),
            n.to_string(),
        ],
    )])?;
    let t0 = s.go();
    for _ in 0..n {
        ping.set();
        if pong.wait_deadline(peer_deadline()).is_err() {
            return Err("peer timed out".into());
        }
        pong.clear();
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`event_rtt`].
pub(crate) fn event_pong_child(c: &ChildCtx) -> Res<()> {
    let ping = Event::open(c.str_arg(0)?).map_err(err)?;
    let pong = Event::open(c.str_arg(1)?).map_err(err)?;
    let n: u64 = c.arg(2)?;
    c.ready()?;
    for _ in 0..n {
        if ping.wait_deadline(peer_deadline()).is_err() {
            return Err("peer timed out".into());
        }
        ping.clear();
        pong.set();
    }
    c.done();
    Ok(())
}

/// Two `Semaphore`s at 0: the parent releases `ping` and acquires `pong`; the
/// child acquires `ping` and releases `pong`. ns per round trip.
pub(crate) fn semaphore_rtt(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SEM_ROUND_TRIPS);
    let (ping_name, pong_name) = (ShmNameGuard::new("sem-ping"), ShmNameGuard::new("sem-pong"));
    let ping = Semaphore::create(ping_name.name(), 0).map_err(err)?;
    let pong = Semaphore::create(pong_name.name(), 0).map_err(err)?;
    let s = Session::start(vec![Spawn::pinned(
        "shmprim-semaphore-pong",
        vec![
            ping_name.name().into(),
            pong_name.name().into(),
            n.to_string(),
        ],
    )])?;
    let t0 = s.go();
    for _ in 0..n {
        ping.release(1).map_err(err)?;
        pong.acquire_deadline(peer_deadline()).map_err(err)?;
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`semaphore_rtt`].
pub(crate) fn semaphore_pong_child(c: &ChildCtx) -> Res<()> {
    let ping = Semaphore::open(c.str_arg(0)?).map_err(err)?;
    let pong = Semaphore::open(c.str_arg(1)?).map_err(err)?;
    let n: u64 = c.arg(2)?;
    c.ready()?;
    for _ in 0..n {
        ping.acquire_deadline(peer_deadline()).map_err(err)?;
        pong.release(1).map_err(err)?;
    }
    c.done();
    Ok(())
}

/// `Barrier(2)`, one party per process, `n` rounds: ns per round.
pub(crate) fn barrier_round(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(BARRIER_ROUNDS);
    let name = ShmNameGuard::new("barrier");
    let b = Barrier::create(name.name(), 2).map_err(err)?;
    let s = Session::start(vec![Spawn::pinned(
        "shmprim-barrier-peer",
        vec![name.name().into(), n.to_string()],
    )])?;
    let t0 = s.go();
    for _ in 0..n {
        b.wait_deadline(peer_deadline()).map_err(err)?;
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`barrier_round`].
pub(crate) fn barrier_peer_child(c: &ChildCtx) -> Res<()> {
    let b = Barrier::open(c.str_arg(0)?).map_err(err)?;
    let n: u64 = c.arg(1)?;
    c.ready()?;
    for _ in 0..n {
        b.wait_deadline(peer_deadline()).map_err(err)?;
    }
    c.done();
    Ok(())
}

// ---------------------------------------------------------------------------
// Value
// ---------------------------------------------------------------------------

/// `Value<u64>::fetch_add(1)`, uncontended: ns per operation.
pub(crate) fn value_fetch_add(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(VALUE_OPS);
    let name = ShmNameGuard::new("value");
    let v = Value::<u64>::create(name.name(), 0).map_err(err)?;
    let t0 = Instant::now();
    for _ in 0..n {
        v.fetch_add(1);
    }
    let dt = t0.elapsed();
    if v.get().map_err(err)? != n {
        return Err("lost increments".into());
    }
    Ok(ns_per(dt, n))
}

/// `Value<u64>::get()`, uncontended: ns per operation.
pub(crate) fn value_get(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(VALUE_OPS);
    let name = ShmNameGuard::new("value");
    let v = Value::<u64>::create(name.name(), 7).map_err(err)?;
    let t0 = Instant::now();
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(std::hint::black_box(&v).get().map_err(err)?);
    }
    let dt = t0.elapsed();
    if sum != n.wrapping_mul(7) {
        return Err("wrong sum".into());
    }
    Ok(ns_per(dt, n))
}

/// `Value<[u64; 8]>::get()` (64 bytes) while a child process keeps calling
/// `set`: ns per get. Checks that no read is torn (all eight words equal).
pub(crate) fn value_64b_get(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(VALUE_OPS);
    let (name, stop_name) = (
        ShmNameGuard::new("value64"),
        ShmNameGuard::new("value64-stop"),
    );
    let v = Value::<[u64; 8]>::create(name.name(), [0; 8]).map_err(err)?;
    let stop = Event::create(stop_name.name()).map_err(err)?;
    let s = Session::start(vec![Spawn::pinned(
        "shmprim-value-writer",
        vec![name.name().into(), stop_name.name().into()],
    )])?;
    let t0 = s.go();
    for _ in 0..n {
        let got = v.get().map_err(err)?;
        if got.iter().any(|w| *w != got[0]) {
            return Err("torn read".into());
        }
    }
    let dt = t0.elapsed();
    stop.set();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`value_64b_get`]: sets the value over and over until `stop` is set.
pub(crate) fn value_writer_child(c: &ChildCtx) -> Res<()> {
    let v = Value::<[u64; 8]>::open(c.str_arg(0)?).map_err(err)?;
    let stop = Event::open(c.str_arg(1)?).map_err(err)?;
    c.ready()?;
    let t0 = Instant::now();
    let mut k = 0u64;
    while !stop.is_set() {
        k += 1;
        v.set([k; 8]).map_err(err)?;
        if t0.elapsed() > super::proc::PEER_TIMEOUT {
            return Err("never told to stop".into());
        }
    }
    c.done();
    Ok(())
}

// ---------------------------------------------------------------------------
// SPSC rings
// ---------------------------------------------------------------------------

/// Called after a non-blocking ring operation found nothing to do: a CPU hint,
/// like the C ring's wait loops; every 64 Ki tries, `Err` once the peer timeout
/// has passed since `t0`, so that a dead peer gives an error instead of a hang.
#[inline(always)]
fn relax(tries: &mut u32, t0: Instant) -> Res<()> {
    *tries = tries.wrapping_add(1);
    if *tries & 0xffff == 0 && t0.elapsed() > super::proc::PEER_TIMEOUT {
        return Err(stalled());
    }
    std::hint::spin_loop();
    Ok(())
}

#[cold]
fn stalled() -> String {
    "peer made no progress in time".into()
}

/// Busy-polls `try_pop` until an element arrives.
#[inline(always)]
fn busy_pop(rx: &mut Consumer<u64>, tries: &mut u32, t0: Instant) -> Res<u64> {
    loop {
        match rx.try_pop() {
            Ok(v) => return Ok(v),
            Err(TryError::Empty) => relax(tries, t0)?,
            Err(e) => return Err(format!("try_pop: {e}")),
        }
    }
}

/// Busy-polls `try_push` until `v` is in.
#[inline(always)]
fn busy_push(tx: &mut Producer<u64>, v: u64, tries: &mut u32, t0: Instant) -> Res<()> {
    loop {
        match tx.try_push(v) {
            Ok(()) => return Ok(()),
            Err(TryError::Full) => relax(tries, t0)?,
            Err(e) => return Err(format!("try_push: {e}")),
        }
    }
}

/// `SpscRing<u64>` of `SPSC_U64_CAPACITY` slots, producer in a child process
/// (`try_push` of 1..=n, spinning while full), consumer here (`try_pop`,
/// spinning while empty), one element per call as the C ring does: Mmsg/s.
pub(crate) fn spsc_u64(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SPSC_U64_MSGS);
    let name = ShmNameGuard::new("spsc");
    let ring = SpscRing::<u64>::create(name.name(), SPSC_U64_CAPACITY as usize).map_err(err)?;
    let mut rx = ring.consumer().map_err(err)?;
    let s = Session::start(vec![Spawn::pinned(
        "shmprim-spsc-producer",
        vec![name.name().into(), n.to_string()],
    )])?;
    let t0 = s.go();
    let mut tries = 0;
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(busy_pop(&mut rx, &mut tries, t0)?);
    }
    let dt = t0.elapsed();
    s.finish()?;
    if sum != n * (n + 1) / 2 {
        return Err("SpscRing delivered a wrong sum".into());
    }
    Ok(mmsgs(dt, n))
}

/// Child of [`spsc_u64`]: pushes 1..=n.
pub(crate) fn spsc_producer_child(c: &ChildCtx) -> Res<()> {
    let ring = SpscRing::<u64>::open(c.str_arg(0)?).map_err(err)?;
    let n: u64 = c.arg(1)?;
    let mut tx = ring.producer().map_err(err)?;
    c.ready()?;
    let t0 = Instant::now();
    let mut tries = 0;
    for i in 1..=n {
        busy_push(&mut tx, i, &mut tries, t0)?;
    }
    c.done();
    Ok(())
}

/// A ring's C handle, opened through the C ABI (`shmprim_spsc_open`), with
/// one end claimed; both closed on drop.
struct CEnd<E> {
    ring: *mut crate::capi::shmprim_spsc,
    end: *mut E,
    close: unsafe extern "C" fn(*mut E),
}

impl<E> CEnd<E> {
    /// Opens `name` and claims an end with `claim`.
    fn open(
        name: &str,
        claim: unsafe extern "C" fn(
            *const crate::capi::shmprim_spsc,
            *mut *mut E,
        ) -> crate::capi::shmprim_status,
        close: unsafe extern "C" fn(*mut E),
    ) -> Res<CEnd<E>> {
        use crate::capi::shmprim_status::SHMPRIM_OK;
        use crate::capi::{shmprim_spsc_close, shmprim_spsc_open};
        let c_name = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
        let mut ring = std::ptr::null_mut();
        // SAFETY: a NUL-terminated name and a valid out-pointer.
        let st = unsafe { shmprim_spsc_open(c_name.as_ptr(), &mut ring) };
        if st != SHMPRIM_OK {
            return Err(format!("shmprim_spsc_open: {st:?}"));
        }
        let mut end = std::ptr::null_mut();
        // SAFETY: a live ring handle and a valid out-pointer.
        let st = unsafe { claim(ring, &mut end) };
        if st != SHMPRIM_OK {
            // SAFETY: the handle opened above, closed once.
            unsafe { shmprim_spsc_close(ring) };
            return Err(format!("claiming an end: {st:?}"));
        }
        Ok(CEnd { ring, end, close })
    }
}

impl<E> Drop for CEnd<E> {
    fn drop(&mut self) {
        // SAFETY: the end and the ring handle from `open`, each closed once.
        unsafe {
            (self.close)(self.end);
            crate::capi::shmprim_spsc_close(self.ring);
        }
    }
}

/// Elements per call in the batch form of [`spsc_u64_c_abi`].
const C_ABI_BATCH: usize = 64;

/// The same ring and loop as [`spsc_u64`], but every element goes through the
/// C ABI, as a C program's would: `shmprim_spsc_push` / `shmprim_spsc_pop`
/// with a timeout of 0 (try once), one element per call. Mmsg/s.
pub(crate) fn spsc_u64_c_abi(ctx: &Ctx) -> Res<f64> {
    spsc_c_abi(ctx, false)
}

/// As [`spsc_u64_c_abi`], with `shmprim_spsc_push_many` / `_pop_many` of up to
/// [`C_ABI_BATCH`] elements per call. Mmsg/s.
pub(crate) fn spsc_u64_c_abi_batch(ctx: &Ctx) -> Res<f64> {
    spsc_c_abi(ctx, true)
}

fn spsc_c_abi(ctx: &Ctx, batch: bool) -> Res<f64> {
    use crate::capi::shmprim_status::{SHMPRIM_EMPTY, SHMPRIM_OK};
    use crate::capi::{
        shmprim_spsc_claim_consumer, shmprim_spsc_consumer_close, shmprim_spsc_pop,
        shmprim_spsc_pop_many,
    };
    let n = ctx.n(SPSC_U64_MSGS);
    let name = ShmNameGuard::new("spsc-c");
    let _ring = SpscRing::<u64>::create(name.name(), SPSC_U64_CAPACITY as usize).map_err(err)?;
    let rx = CEnd::open(
        name.name(),
        shmprim_spsc_claim_consumer,
        shmprim_spsc_consumer_close,
    )?;
    let s = Session::start(vec![Spawn::pinned(
        "shmprim-spsc-c-producer",
        vec![
            name.name().into(),
            n.to_string(),
            u8::from(batch).to_string(),
        ],
    )])?;
    let t0 = s.go();
    let (mut tries, mut sum, mut v) = (0, 0u64, 0u64);
    let mut buf = [0u64; C_ABI_BATCH];
    let mut got = 0;
    while batch && got < n {
        let mut popped = 0;
        // SAFETY: a live consumer end used by this thread alone; `buf` holds
        // `C_ABI_BATCH` elements of 8 bytes; `popped` is writable.
        let st = unsafe {
            shmprim_spsc_pop_many(rx.end, buf.as_mut_ptr().cast(), C_ABI_BATCH, &mut popped)
        };
        match st {
            SHMPRIM_OK => {
                sum = buf[..popped].iter().fold(sum, |a, &x| a.wrapping_add(x));
                got += popped as u64;
            }
            SHMPRIM_EMPTY => relax(&mut tries, t0)?,
            st => return Err(format!("shmprim_spsc_pop_many: {st:?}")),
        }
    }
    // The single-element form (when not `batch`).
    for _ in 0..if batch { 0 } else { n } {
        loop {
            // SAFETY: a live consumer end used by this thread alone, and an
            // 8-byte buffer for the 8-byte elements.
            let st = unsafe {
                shmprim_spsc_pop(rx.end, (&raw mut v).cast(), 8, std::ptr::null_mut(), 0)
            };
            match st {
                SHMPRIM_OK => break,
                SHMPRIM_EMPTY => relax(&mut tries, t0)?,
                st => return Err(format!("shmprim_spsc_pop: {st:?}")),
            }
        }
        sum = sum.wrapping_add(v);
    }
    let dt = t0.elapsed();
    s.finish()?;
    if sum != n * (n + 1) / 2 {
        return Err("the C ABI ring delivered a wrong sum".into());
    }
    Ok(mmsgs(dt, n))
}

/// Child of [`spsc_u64_c_abi`]: pushes 1..=n through `shmprim_spsc_push`.
pub(crate) fn spsc_c_producer_child(c: &ChildCtx) -> Res<()> {
    use crate::capi::shmprim_status::{SHMPRIM_FULL, SHMPRIM_OK};
    use crate::capi::{
        shmprim_spsc_claim_producer, shmprim_spsc_producer_close, shmprim_spsc_push,
        shmprim_spsc_push_many,
    };
    let tx = CEnd::open(
        c.str_arg(0)?,
        shmprim_spsc_claim_producer,
        shmprim_spsc_producer_close,
    )?;
    let n: u64 = c.arg(1)?;
    let batch = c.arg::<u8>(2)? != 0;
    c.ready()?;
    let t0 = Instant::now();
    let mut tries = 0;
    let mut next = 1;
    while batch && next <= n {
        let len = (n + 1 - next).min(C_ABI_BATCH as u64);
        let values: [u64; C_ABI_BATCH] = std::array::from_fn(|k| next + k as u64);
        let mut pushed = 0;
        // SAFETY: a live producer end used by this thread alone; `values`
        // holds `len <= C_ABI_BATCH` elements of 8 bytes; `pushed` is writable.
        let st = unsafe {
            shmprim_spsc_push_many(tx.end, values.as_ptr().cast(), len as usize, &mut pushed)
        };
        if st != SHMPRIM_OK {
            return Err(format!("shmprim_spsc_push_many: {st:?}"));
        }
        if pushed == 0 {
            relax(&mut tries, t0)?;
        }
        next += pushed as u64;
    }
    // The single-element form (when not `batch`: `next` is still 1).
    for i in next..=if batch { 0 } else { n } {
        loop {
            // SAFETY: a live producer end used by this thread alone, and an
            // 8-byte element.
            let st = unsafe { shmprim_spsc_push(tx.end, (&raw const i).cast(), 8, 0) };
            match st {
                SHMPRIM_OK => break,
                SHMPRIM_FULL => relax(&mut tries, t0)?,
                st => return Err(format!("shmprim_spsc_push: {st:?}")),
            }
        }
    }
    c.done();
    Ok(())
}

/// Byte capacity of the shmprim byte ring for `msg_size`-byte messages: the
/// same buffer as the C ring's `SPSC_BYTES_CAPACITY` slots of `msg_size` bytes
/// (16 KiB or 1 MiB). With its 8-byte record headers it then holds slightly
/// fewer messages (227 of 64 B, 255 of 4 KiB) than the C ring's 256.
fn byte_ring_capacity(msg_size: usize) -> usize {
    SPSC_BYTES_CAPACITY as usize * msg_size
}

/// `SpscByteRing`, `msg_size`-byte messages, producer child (`try_send` from a
/// private buffer whose first 8 bytes carry the message number), consumer here
/// (`try_recv_into` a private buffer), spinning on `Full`/`Empty`: Mmsg/s.
fn spsc_bytes(msgs: u64, msg_size: usize) -> Res<f64> {
    let name = ShmNameGuard::new("spsc-bytes");
    let ring =
        SpscByteRing::create(name.name(), byte_ring_capacity(msg_size), msg_size).map_err(err)?;
    let mut rx = ring.consumer().map_err(err)?;
    let s = Session::start(vec![Spawn::pinned(
        "shmprim-spsc-byte-producer",
        vec![name.name().into(), msgs.to_string(), msg_size.to_string()],
    )])?;
    let mut buf = vec![0u8; msg_size];
    let t0 = s.go();
    let mut tries = 0;
    let mut sum = 0u64;
    for _ in 0..msgs {
        loop {
            match rx.try_recv_into(&mut buf) {
                Ok(len) if len == msg_size => break,
                Ok(len) => return Err(format!("received {len} bytes, sent {msg_size}")),
                Err(Error::Empty { .. }) => relax(&mut tries, t0)?,
                Err(e) => return Err(format!("try_recv_into: {e}")),
            }
        }
        let tag: [u8; 8] = buf[..8].try_into().map_err(err)?;
        sum = sum.wrapping_add(u64::from_ne_bytes(tag));
    }
    let dt = t0.elapsed();
    s.finish()?;
    if sum != msgs * (msgs + 1) / 2 {
        return Err("SpscByteRing delivered a wrong sum".into());
    }
    if buf[8..].iter().any(|b| *b != 0xa5) {
        return Err("SpscByteRing delivered a corrupted payload".into());
    }
    Ok(mmsgs(dt, msgs))
}

/// Child of [`spsc_bytes`]: sends messages 1..=n.
pub(crate) fn spsc_byte_producer_child(c: &ChildCtx) -> Res<()> {
    let ring = SpscByteRing::open(c.str_arg(0)?).map_err(err)?;
    let n: u64 = c.arg(1)?;
    let msg_size: usize = c.arg(2)?;
    if msg_size < 8 {
        return Err("messages carry an 8-byte number".into());
    }
    let mut tx = ring.producer().map_err(err)?;
    let mut msg = vec![0xa5u8; msg_size];
    c.ready()?;
    let t0 = Instant::now();
    let mut tries = 0;
    for i in 1..=n {
        msg[..8].copy_from_slice(&i.to_ne_bytes());
        loop {
            match tx.try_send(&msg) {
                Ok(()) => break,
                Err(Error::Full { .. }) => relax(&mut tries, t0)?,
                Err(e) => return Err(format!("try_send: {e}")),
            }
        }
    }
    c.done();
    Ok(())
}

/// `SpscByteRing`, 64-byte messages: Mmsg/s.
pub(crate) fn spsc_bytes_64(ctx: &Ctx) -> Res<f64> {
    spsc_bytes(ctx.n(SPSC_64B_MSGS), 64)
}

/// `SpscByteRing`, 4-KiB messages: Mmsg/s.
pub(crate) fn spsc_bytes_4k(ctx: &Ctx) -> Res<f64> {
    spsc_bytes(ctx.n(SPSC_4K_MSGS), 4096)
}

/// Two `SpscRing<u64>` (ping: here to the child, pong: back), both sides
/// busy-polling `try_pop`: the parent pushes `i`, the child answers `i + 1`,
/// checked on every round trip. ns per round trip.
pub(crate) fn spsc_pingpong(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SPIN_ROUND_TRIPS);
    let (ping_name, pong_name) = (
        ShmNameGuard::new("spsc-ping"),
        ShmNameGuard::new("spsc-pong"),
    );
    let ping =
        SpscRing::<u64>::create(ping_name.name(), SPSC_U64_CAPACITY as usize).map_err(err)?;
    let pong =
        SpscRing::<u64>::create(pong_name.name(), SPSC_U64_CAPACITY as usize).map_err(err)?;
    let mut tx = ping.producer().map_err(err)?;
    let mut rx = pong.consumer().map_err(err)?;
    let mut s = Session::start(vec![Spawn::pinned(
        "shmprim-spsc-pong",
        vec![
            ping_name.name().into(),
            pong_name.name().into(),
            n.to_string(),
        ],
    )])?;
    let t0 = s.go();
    let mut tries = 0;
    for i in 0..n {
        busy_push(&mut tx, i, &mut tries, t0)?;
        if busy_pop(&mut rx, &mut tries, t0)? != i + 1 {
            return Err("wrong answer".into());
        }
    }
    let dt = t0.elapsed();
    s.wait_done()?;
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`spsc_pingpong`]: answers every `v` with `v + 1`.
pub(crate) fn spsc_pong_child(c: &ChildCtx) -> Res<()> {
    let ping = SpscRing::<u64>::open(c.str_arg(0)?).map_err(err)?;
    let pong = SpscRing::<u64>::open(c.str_arg(1)?).map_err(err)?;
    let n: u64 = c.arg(2)?;
    let mut rx = ping.consumer().map_err(err)?;
    let mut tx = pong.producer().map_err(err)?;
    c.ready()?;
    let t0 = Instant::now();
    let mut tries = 0;
    for _ in 0..n {
        let v = busy_pop(&mut rx, &mut tries, t0)?;
        busy_push(&mut tx, v + 1, &mut tries, t0)?;
    }
    c.done();
    Ok(())
}

/// A `DuplexRing<u64>` (end A here, end B in the child), both sides
/// busy-polling `try_recv`: the parent sends `i`, the child answers `i + 1`,
/// checked on every round trip. ns per round trip.
pub(crate) fn duplex_pingpong(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SPIN_ROUND_TRIPS);
    let name = ShmNameGuard::new("duplex");
    let ring = DuplexRing::<u64>::create(name.name(), SPSC_U64_CAPACITY as usize).map_err(err)?;
    let mut a = ring.end_a().map_err(err)?;
    let mut s = Session::start(vec![Spawn::pinned(
        "shmprim-duplex-pong",
        vec![name.name().into(), n.to_string()],
    )])?;
    let t0 = s.go();
    let mut tries = 0;
    for i in 0..n {
        duplex_send(&mut a, i, &mut tries, t0)?;
        if duplex_recv(&mut a, &mut tries, t0)? != i + 1 {
            return Err("wrong answer".into());
        }
    }
    let dt = t0.elapsed();
    s.wait_done()?;
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`duplex_pingpong`]: answers every `v` with `v + 1`.
pub(crate) fn duplex_pong_child(c: &ChildCtx) -> Res<()> {
    let ring = DuplexRing::<u64>::open(c.str_arg(0)?).map_err(err)?;
    let n: u64 = c.arg(1)?;
    let mut b = ring.end_b().map_err(err)?;
    c.ready()?;
    let t0 = Instant::now();
    let mut tries = 0;
    for _ in 0..n {
        let v = duplex_recv(&mut b, &mut tries, t0)?;
        duplex_send(&mut b, v + 1, &mut tries, t0)?;
    }
    c.done();
    Ok(())
}

/// Busy-polls `try_recv` until a value arrives.
#[inline(always)]
fn duplex_recv(end: &mut DuplexEnd<u64>, tries: &mut u32, t0: Instant) -> Res<u64> {
    loop {
        match end.try_recv() {
            Ok(v) => return Ok(v),
            Err(TryError::Empty) => relax(tries, t0)?,
            Err(e) => return Err(format!("try_recv: {e}")),
        }
    }
}

/// Busy-polls `try_send` until `v` is in.
#[inline(always)]
fn duplex_send(end: &mut DuplexEnd<u64>, v: u64, tries: &mut u32, t0: Instant) -> Res<()> {
    loop {
        match end.try_send(v) {
            Ok(()) => return Ok(()),
            Err(TryError::Full) => relax(tries, t0)?,
            Err(e) => return Err(format!("try_send: {e}")),
        }
    }
}

/// Bytes of each message of [`pipe_pingpong`]: a `u64`, as in the ring
/// ping-pongs beside it.
const PIPE_PING_BYTES: usize = 8;

/// Bytes each way of [`pipe_pingpong`]'s `Pipe`: `SPSC_U64_CAPACITY` records
/// of one 8-byte message (16 bytes with its length word), as many messages as
/// the ring ping-pong's slots.
const PIPE_PING_CAPACITY: usize =
    SPSC_U64_CAPACITY as usize * shmprim::ring::spsc::record_size(PIPE_PING_BYTES);

/// A duplex `Pipe` of [`PIPE_PING_CAPACITY`] bytes each way (end A here, end B
/// in the child), both sides busy-polling `try_recv_into`: the parent sends
/// `i` as 8 bytes, the child answers `i + 1`, checked on every round trip. ns
/// per round trip.
pub(crate) fn pipe_pingpong(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SPIN_ROUND_TRIPS);
    let name = ShmNameGuard::new("pipe");
    let pipe = Pipe::create(name.name(), PIPE_PING_CAPACITY, PIPE_PING_BYTES).map_err(err)?;
    let mut a = pipe.end_a().map_err(err)?;
    let mut s = Session::start(vec![Spawn::pinned(
        "shmprim-pipe-pong",
        vec![name.name().into(), n.to_string()],
    )])?;
    let t0 = s.go();
    let mut tries = 0;
    for i in 0..n {
        pipe_send(&mut a, i, &mut tries, t0)?;
        if pipe_recv(&mut a, &mut tries, t0)? != i + 1 {
            return Err("wrong answer".into());
        }
    }
    let dt = t0.elapsed();
    s.wait_done()?;
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`pipe_pingpong`]: answers every `v` with `v + 1`.
pub(crate) fn pipe_pong_child(c: &ChildCtx) -> Res<()> {
    let pipe = Pipe::open(c.str_arg(0)?).map_err(err)?;
    let n: u64 = c.arg(1)?;
    let mut b = pipe.end_b().map_err(err)?;
    c.ready()?;
    let t0 = Instant::now();
    let mut tries = 0;
    for _ in 0..n {
        let v = pipe_recv(&mut b, &mut tries, t0)?;
        pipe_send(&mut b, v + 1, &mut tries, t0)?;
    }
    c.done();
    Ok(())
}

/// Busy-polls `try_recv_into` until an 8-byte message arrives.
#[inline(always)]
fn pipe_recv(end: &mut PipeEnd, tries: &mut u32, t0: Instant) -> Res<u64> {
    let mut buf = [0u8; PIPE_PING_BYTES];
    loop {
        match end.try_recv_into(&mut buf) {
            Ok(PIPE_PING_BYTES) => return Ok(u64::from_le_bytes(buf)),
            Ok(n) => return Err(format!("a message of {n} bytes")),
            Err(Error::Empty { .. }) => relax(tries, t0)?,
            Err(e) => return Err(format!("try_recv_into: {e}")),
        }
    }
}

/// Busy-polls `try_send` until `v` is in, as 8 bytes.
#[inline(always)]
fn pipe_send(end: &mut PipeEnd, v: u64, tries: &mut u32, t0: Instant) -> Res<()> {
    loop {
        match end.try_send(&v.to_le_bytes()) {
            Ok(()) => return Ok(()),
            Err(Error::Full { .. }) => relax(tries, t0)?,
            Err(e) => return Err(format!("try_send: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------
// MPMC queue and blocking Queue
// ---------------------------------------------------------------------------

/// Backs off after a non-blocking queue operation found nothing to do, as the
/// crossbeam reference does: a CPU hint, a yield every 64 tries (processes may
/// outnumber cores), `Err` once the peer timeout has passed since `t0`.
#[inline(always)]
fn backoff(tries: &mut u32, t0: Instant) -> Res<()> {
    *tries = tries.wrapping_add(1);
    if *tries % 64 == 0 {
        std::thread::yield_now();
        if *tries % 65536 == 0 && t0.elapsed() > super::proc::PEER_TIMEOUT {
            return Err(stalled());
        }
    } else {
        std::hint::spin_loop();
    }
    Ok(())
}

/// The 64-bit word at the start of a raw segment's data area.
fn sum_word(seg: &Segment) -> Res<&AtomicU64> {
    if seg.len() < 8 {
        return Err("segment too small".into());
    }
    // SAFETY: the data area is page aligned and at least 8 bytes (checked); the
    // word is only ever accessed atomically, by every process.
    Ok(unsafe { &*seg.as_ptr().cast::<AtomicU64>() })
}

/// `Queue<u64>` of `MPMC_CAPACITY` with `p` producer and `p` consumer processes
/// (`try_put` / `try_get` one value at a time, backing off as crossbeam's
/// reference does): Mmsg/s over all of them. Placed by
/// [`mpmc_cpu`](super::proc::mpmc_cpu).
fn mpmc(ctx: &Ctx, p: u64, split: bool) -> Res<f64> {
    let per = ctx.n(MPMC_MSGS) / p;
    let total = per * p;
    let name = ShmNameGuard::new("mpmc");
    let _q = Queue::<u64>::create(name.name(), MPMC_CAPACITY as usize).map_err(err)?;
    let sums = NamedSegment::create("mpmc-sum")?;
    let mut spawns = Vec::new();
    for k in 0..2 * p {
        let producer = k < p;
        let (role, args) = if producer {
            (
                "shmprim-mpmc-producer",
                vec![name.name().into(), per.to_string(), (k * per).to_string()],
            )
        } else {
            (
                "shmprim-mpmc-consumer",
                vec![name.name().into(), per.to_string(), sums.name()],
            )
        };
        spawns.push(Spawn {
            role,
            args,
            cpu: super::proc::mpmc_cpu(p, k, split),
        });
    }
    let mut s = Session::start(spawns)?;
    let t0 = s.go();
    s.wait_done()?;
    let dt = t0.elapsed();
    s.finish()?;
    // Acquire: pairs with the consumers' Release fetch_add of their sums.
    let sum = sum_word(&sums.seg)?.load(Ordering::Acquire);
    if sum != total * (total + 1) / 2 {
        return Err("Queue delivered a wrong sum".into());
    }
    Ok(mmsgs(dt, total))
}

/// Child of [`mpmc`]: puts `base+1 ..= base+per`.
pub(crate) fn mpmc_producer_child(c: &ChildCtx) -> Res<()> {
    let q = Queue::<u64>::open(c.str_arg(0)?).map_err(err)?;
    let per: u64 = c.arg(1)?;
    let base: u64 = c.arg(2)?;
    c.ready()?;
    let t0 = Instant::now();
    let mut tries = 0;
    for i in 1..=per {
        loop {
            match q.try_put(base + i) {
                Ok(()) => break,
                Err(Error::Full { .. }) => backoff(&mut tries, t0)?,
                Err(e) => return Err(format!("try_put: {e}")),
            }
        }
    }
    c.done();
    Ok(())
}

/// Child of [`mpmc`]: gets `per` values and adds their sum to the sum word.
pub(crate) fn mpmc_consumer_child(c: &ChildCtx) -> Res<()> {
    let q = Queue::<u64>::open(c.str_arg(0)?).map_err(err)?;
    let per: u64 = c.arg(1)?;
    let sums = Segment::open(c.str_arg(2)?).map_err(err)?;
    c.ready()?;
    let t0 = Instant::now();
    let mut tries = 0;
    let mut sum = 0u64;
    for _ in 0..per {
        loop {
            match q.try_get() {
                Ok(v) => {
                    sum = sum.wrapping_add(v);
                    break;
                }
                Err(Error::Empty { .. }) => backoff(&mut tries, t0)?,
                Err(e) => return Err(format!("try_get: {e}")),
            }
        }
    }
    // Release: pairs with the parent's Acquire load once every child is done.
    sum_word(&sums)?.fetch_add(sum, Ordering::Release);
    c.done();
    Ok(())
}

/// `Queue<u64>`, 1 producer and 1 consumer process.
pub(crate) fn mpmc_1(ctx: &Ctx) -> Res<f64> {
    mpmc(ctx, 1, false)
}
/// `Queue<u64>`, 2 producer and 2 consumer processes.
pub(crate) fn mpmc_2(ctx: &Ctx) -> Res<f64> {
    mpmc(ctx, 2, false)
}
/// `Queue<u64>`, 2 producer and 2 consumer processes, one of each per core.
pub(crate) fn mpmc_2_split(ctx: &Ctx) -> Res<f64> {
    mpmc(ctx, 2, true)
}
/// `Queue<u64>`, 4 producer and 4 consumer processes.
pub(crate) fn mpmc_4(ctx: &Ctx) -> Res<f64> {
    mpmc(ctx, 4, false)
}

/// Two `Queue<u64>` (ping, pong) with blocking `put` / `get` (spin briefly,
/// then sleep on a futex): the parent puts `i`, the child answers `i + 1`,
/// checked every time. ns per round trip.
pub(crate) fn queue_rtt(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(QUEUE_ROUND_TRIPS);
    let (ping_name, pong_name) = (ShmNameGuard::new("q-ping"), ShmNameGuard::new("q-pong"));
    let ping = Queue::<u64>::create(ping_name.name(), MPMC_CAPACITY as usize).map_err(err)?;
    let pong = Queue::<u64>::create(pong_name.name(), MPMC_CAPACITY as usize).map_err(err)?;
    let s = Session::start(vec![Spawn::pinned(
        "shmprim-queue-pong",
        vec![
            ping_name.name().into(),
            pong_name.name().into(),
            n.to_string(),
        ],
    )])?;
    let deadline = peer_deadline();
    let t0 = s.go();
    for i in 0..n {
        ping.put_deadline(i, deadline).map_err(err)?;
        if pong.get_deadline(deadline).map_err(err)? != i + 1 {
            return Err("wrong answer".into());
        }
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`queue_rtt`]: answers every `v` with `v + 1`.
pub(crate) fn queue_pong_child(c: &ChildCtx) -> Res<()> {
    let ping = Queue::<u64>::open(c.str_arg(0)?).map_err(err)?;
    let pong = Queue::<u64>::open(c.str_arg(1)?).map_err(err)?;
    let n: u64 = c.arg(2)?;
    c.ready()?;
    let deadline = peer_deadline();
    for _ in 0..n {
        let v = ping.get_deadline(deadline).map_err(err)?;
        pong.put_deadline(v + 1, deadline).map_err(err)?;
    }
    c.done();
    Ok(())
}
