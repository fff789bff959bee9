//! Round trips between two processes over one shared word: busy-polling (the
//! floor for latency) and bare futex (the floor for a sleeping hand-off); and
//! busy-polling over two words, one per direction (the bare shape of a pair
//! of one-way channels).
//!
//! The ball is a `u32`: the parent writes odd values, the child even ones.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::super::Res;
use super::super::proc::{ChildCtx, RawShm, Session, Spawn};
use super::{futex_wait_until_eq, futex_wake, ns_per, spin_until_eq};
use crate::Ctx;
use crate::figures::{FUTEX_ROUND_TRIPS, SPIN_ROUND_TRIPS};

/// Raw atomic ping-pong between two processes, busy-polling: ns per round trip.
pub(crate) fn spin(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SPIN_ROUND_TRIPS);
    let shm = RawShm::create("spin", 4096)?;
    let ball = shm.word(0);
    let mut s = Session::start(vec![Spawn::pinned(
        "spin-word-pong",
        vec![shm.name().into(), n.to_string()],
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

/// Child of [`spin`].
pub(crate) fn spin_pong_child(c: &ChildCtx) -> Res<()> {
    let shm = RawShm::open(c.str_arg(0)?, 4096)?;
    let n: u64 = c.arg(1)?;
    let ball = shm.word(0);
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

/// Raw atomic ping-pong between two processes over two words on separate
/// 128-byte lines, one per direction (the parent writes `ping`, the child
/// `pong`), busy-polling: the bare shape of a pair of one-way channels, such
/// as two SPSC rings. Not a floor for them: on the machine of BENCHMARKS.md,
/// two `SpscRing`s whose consumer prefetches the slot line beside the tail
/// beat it. ns per round trip.
pub(crate) fn spin_two_words(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SPIN_ROUND_TRIPS);
    let shm = RawShm::create("spin2", 4096)?;
    let (ping, pong) = (shm.word(0), shm.word(128));
    let mut s = Session::start(vec![Spawn::pinned(
        "spin-two-words-pong",
        vec![shm.name().into(), n.to_string()],
    )])?;
    let t0 = s.go();
    for i in 1..=n as u32 {
        // Release: pairs with the child's Acquire spin on `ping`.
        ping.store(i, Ordering::Release);
        spin_until_eq(pong, i, t0)?;
    }
    let dt = t0.elapsed();
    s.wait_done()?;
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`spin_two_words`]: answers each `ping` value on `pong`.
pub(crate) fn spin_two_words_pong_child(c: &ChildCtx) -> Res<()> {
    let shm = RawShm::open(c.str_arg(0)?, 4096)?;
    let n: u64 = c.arg(1)?;
    let (ping, pong) = (shm.word(0), shm.word(128));
    c.ready()?;
    let t0 = Instant::now();
    for i in 1..=n as u32 {
        spin_until_eq(ping, i, t0)?;
        // Release: pairs with the parent's Acquire spin on `pong`.
        pong.store(i, Ordering::Release);
    }
    c.done();
    Ok(())
}

/// Bare futex ping-pong between two processes (FUTEX_WAIT/FUTEX_WAKE on a
/// shared word, no spinning, a wake on every hand-off): ns per round trip.
pub(crate) fn futex(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(FUTEX_ROUND_TRIPS);
    let shm = RawShm::create("futex", 4096)?;
    let ball = shm.word(0);
    let mut s = Session::start(vec![Spawn::pinned(
        "futex-pong",
        vec![shm.name().into(), n.to_string()],
    )])?;
    let t0 = s.go();
    for i in 0..n as u32 {
        // Release: pairs with the child's Acquire load after its wait.
        ball.store(2 * i + 1, Ordering::Release);
        futex_wake(ball);
        futex_wait_until_eq(ball, 2 * i + 2, t0)?;
    }
    let dt = t0.elapsed();
    s.wait_done()?;
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`futex`].
pub(crate) fn futex_pong_child(c: &ChildCtx) -> Res<()> {
    let shm = RawShm::open(c.str_arg(0)?, 4096)?;
    let n: u64 = c.arg(1)?;
    let ball = shm.word(0);
    c.ready()?;
    let t0 = Instant::now();
    for i in 0..n as u32 {
        futex_wait_until_eq(ball, 2 * i + 1, t0)?;
        // Release: pairs with the parent's Acquire load after its wait.
        ball.store(2 * i + 2, Ordering::Release);
        futex_wake(ball);
    }
    c.done();
    Ok(())
}
