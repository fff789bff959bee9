//! The shmprim runners: what is measured for shmprim itself.
//!
//! Measured today: a busy-polling ping-pong over a word of a [`Segment`]; a
//! ping-pong that sleeps with [`crate::wait`] (spin, then a shared futex, woken
//! only when a waiter count says someone sleeps) over a [`Segment`]; `Mutex<u64>`
//! uncontended and contended; `Event`, `Semaphore` and `Barrier` round trips;
//! `Value<u64>` and a 64-byte `Value`. The rings and queues are still to come. Each primitive adds its
//! runners here in the same shape: the parent creates the object under the name
//! of a `ShmNameGuard` (unlinked on drop and on Ctrl-C), starts the peer with
//! [`Session::start`], measures from [`Session::go`], and checks what it got.
//!
//! For example, once `SpscRing<u64>` is merged, figure `spsc-u64` needs:
//!
//! ```text
//! pub(crate) fn spsc_u64(ctx: &Ctx) -> Res<f64> {
//!     let n = ctx.n(SPSC_U64_MSGS);
//!     let name = ShmNameGuard::new("spsc");   // unlinked on drop and on Ctrl-C
//!     let ring = SpscRing::<u64>::create(name.name(), SPSC_U64_CAPACITY).map_err(|e| e.to_string())?;
//!     let s = Session::start(vec![Spawn::pinned("shmprim-spsc-producer", vec![name.name().into(), n.to_string()])])?;
//!     let t0 = s.go();
//!     let mut sum = 0;
//!     for _ in 0..n { sum += busy_pop(&ring, t0)?; }       // spin on try_pop, bounded
//!     let dt = t0.elapsed();
//!     s.finish()?;
//!     if sum != n * (n + 1) / 2 { return Err("wrong checksum".into()); }
//!     Ok(mmsgs(dt, n))
//! }
//! // + a child role `("shmprim-spsc-producer", shmprim_side::spsc_producer_child)` in
//! //   `ROLES` (open by name, `c.ready()?`, push 1..=n, `c.done()`),
//! // + `shmprim: Some(Impl { name: "SpscRing<u64>", run: shmprim_side::spsc_u64, .. })`
//! //   on the figure in figures.rs.
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::Res;
use super::proc::{ChildCtx, Session, ShmNameGuard, Spawn};
use super::refs::{ns_per, spin_until_eq};
use crate::bench::Ctx;
use crate::bench::figures::{
    BARRIER_ROUNDS, FUTEX_ROUND_TRIPS, MUTEX_CONTENDED_OPS, MUTEX_UNCONTENDED_OPS, SEM_ROUND_TRIPS,
    SPIN_ROUND_TRIPS, VALUE_OPS,
};
use crate::wait::{wait_while_eq, wake};
use crate::{Barrier, Deadline, Event, Kind, Mutex, Segment, SegmentBuilder, Semaphore, Value};

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
// Mutex, Event, Semaphore, Barrier (issue 3)
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
        if !pong.wait_deadline(peer_deadline()) {
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
        if !ping.wait_deadline(peer_deadline()) {
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
// Value (issue 5)
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
