//! In-process references between threads: `rtrb` and `crossbeam`'s `ArrayQueue`
//! as SPSC rings (producer thread on core 1, consumer on core 0), and
//! `ArrayQueue` as an MPMC queue with 1, 2 or 4 producers and consumers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use super::super::Res;
use super::super::proc::{PEER_TIMEOUT, mpmc_cpu, pin_to_cpu, unpin};
use super::mmsgs;
use crate::Ctx;
use crate::figures::{
    MPMC_CAPACITY, MPMC_MSGS, SPSC_4K_MSGS, SPSC_64B_MSGS, SPSC_BYTES_CAPACITY, SPSC_U64_CAPACITY,
    SPSC_U64_MSGS,
};

/// A message type: made from its sequence number, which it carries.
pub(crate) trait Msg: Copy + Send + 'static {
    /// Message number `i`.
    fn make(i: u64) -> Self;
    /// The number it carries.
    fn tag(&self) -> u64;
}

impl Msg for u64 {
    #[inline]
    fn make(i: u64) -> Self {
        i
    }
    #[inline]
    fn tag(&self) -> u64 {
        *self
    }
}

impl<const N: usize> Msg for [u8; N] {
    #[inline]
    fn make(i: u64) -> Self {
        let mut m = [0xa5u8; N];
        m[..8].copy_from_slice(&i.to_ne_bytes());
        m
    }
    #[inline]
    fn tag(&self) -> u64 {
        u64::from_ne_bytes(self[..8].try_into().expect("messages are at least 8 bytes"))
    }
}

/// Backs off in a spin loop: a CPU hint, and a yield every 64 tries (threads may
/// outnumber cores); `Err` once the peer timeout has passed.
#[inline]
fn backoff(tries: &mut u32, started: Instant) -> Res<()> {
    *tries = tries.wrapping_add(1);
    if *tries % 64 == 0 {
        std::thread::yield_now();
        if *tries % 65536 == 0 && started.elapsed() > PEER_TIMEOUT {
            return Err("peer made no progress in time".into());
        }
    } else {
        std::hint::spin_loop();
    }
    Ok(())
}

/// Runs `produce` on a thread pinned to core 1 and `consume` here (core 0),
/// timing from the start signal to the last message consumed.
fn spsc_pair(
    produce: impl FnOnce(Instant) -> Res<()> + Send + 'static,
    consume: impl FnOnce(Instant) -> Res<u64>,
    msgs: u64,
) -> Res<f64> {
    let go = Arc::new(AtomicBool::new(false));
    let go2 = go.clone();
    let producer = std::thread::spawn(move || {
        pin_to_cpu(1);
        // Acquire: pairs with the Release store below.
        while !go2.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        produce(Instant::now())
    });
    pin_to_cpu(0);
    let t0 = Instant::now();
    // Release: pairs with the producer's Acquire spin.
    go.store(true, Ordering::Release);
    let sum = consume(t0);
    let dt = t0.elapsed();
    producer
        .join()
        .map_err(|_| "producer thread panicked".to_string())??;
    if sum? != msgs * (msgs + 1) / 2 {
        return Err("wrong checksum".into());
    }
    Ok(mmsgs(dt, msgs))
}

fn rtrb_spsc<M: Msg>(msgs: u64, capacity: u64) -> Res<f64> {
    let (mut tx, mut rx) = rtrb::RingBuffer::<M>::new(capacity as usize);
    spsc_pair(
        move |t0| {
            let mut tries = 0;
            for i in 1..=msgs {
                let mut m = M::make(i);
                loop {
                    match tx.push(m) {
                        Ok(()) => break,
                        Err(rtrb::PushError::Full(back)) => {
                            m = back;
                            backoff(&mut tries, t0)?;
                        }
                    }
                }
            }
            Ok(())
        },
        move |t0| {
            let mut sum = 0u64;
            let mut tries = 0;
            for _ in 0..msgs {
                loop {
                    if let Ok(m) = rx.pop() {
                        sum += m.tag();
                        break;
                    }
                    backoff(&mut tries, t0)?;
                }
            }
            Ok(sum)
        },
        msgs,
    )
}

fn crossbeam_spsc<M: Msg>(msgs: u64, capacity: u64) -> Res<f64> {
    let q = Arc::new(ArrayQueue::<M>::new(capacity as usize));
    let tx = q.clone();
    spsc_pair(
        move |t0| {
            let mut tries = 0;
            for i in 1..=msgs {
                let mut m = M::make(i);
                while let Err(back) = tx.push(m) {
                    m = back;
                    backoff(&mut tries, t0)?;
                }
            }
            Ok(())
        },
        move |t0| {
            let mut sum = 0u64;
            let mut tries = 0;
            for _ in 0..msgs {
                loop {
                    if let Some(m) = q.pop() {
                        sum += m.tag();
                        break;
                    }
                    backoff(&mut tries, t0)?;
                }
            }
            Ok(sum)
        },
        msgs,
    )
}

/// rtrb, `u64`.
pub(crate) fn rtrb_u64(ctx: &Ctx) -> Res<f64> {
    rtrb_spsc::<u64>(ctx.n(SPSC_U64_MSGS), SPSC_U64_CAPACITY)
}
/// rtrb, 64-byte messages.
pub(crate) fn rtrb_64b(ctx: &Ctx) -> Res<f64> {
    rtrb_spsc::<[u8; 64]>(ctx.n(SPSC_64B_MSGS), SPSC_BYTES_CAPACITY)
}
/// rtrb, 4-KiB messages.
pub(crate) fn rtrb_4k(ctx: &Ctx) -> Res<f64> {
    rtrb_spsc::<[u8; 4096]>(ctx.n(SPSC_4K_MSGS), SPSC_BYTES_CAPACITY)
}
/// crossbeam ArrayQueue as SPSC, `u64`.
pub(crate) fn crossbeam_u64(ctx: &Ctx) -> Res<f64> {
    crossbeam_spsc::<u64>(ctx.n(SPSC_U64_MSGS), SPSC_U64_CAPACITY)
}
/// crossbeam ArrayQueue as SPSC, 64-byte messages.
pub(crate) fn crossbeam_64b(ctx: &Ctx) -> Res<f64> {
    crossbeam_spsc::<[u8; 64]>(ctx.n(SPSC_64B_MSGS), SPSC_BYTES_CAPACITY)
}
/// crossbeam ArrayQueue as SPSC, 4-KiB messages.
pub(crate) fn crossbeam_4k(ctx: &Ctx) -> Res<f64> {
    crossbeam_spsc::<[u8; 4096]>(ctx.n(SPSC_4K_MSGS), SPSC_BYTES_CAPACITY)
}

/// crossbeam ArrayQueue<u64> with `p` producer and `p` consumer threads: Mmsg/s.
/// With one of each, they are pinned to cores 1 and 0; with more, they float.
fn crossbeam_mpmc(ctx: &Ctx, p: u64, split: bool) -> Res<f64> {
    let per = ctx.n(MPMC_MSGS) / p;
    let total = per * p;
    let q = Arc::new(ArrayQueue::<u64>::new(MPMC_CAPACITY as usize));
    let go = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for k in 0..2 * p {
        let q = q.clone();
        let go = go.clone();
        let producer = k < p;
        handles.push(std::thread::spawn(move || -> Res<u64> {
            match mpmc_cpu(p, k, split) {
                Some(cpu) => pin_to_cpu(cpu),
                None => unpin(),
            }
            // Acquire: pairs with the Release store of `go`.
            while !go.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            let t0 = Instant::now();
            let mut tries = 0;
            let mut sum = 0;
            if producer {
                let base = k * per;
                for i in 1..=per {
                    let mut m = base + i;
                    while let Err(back) = q.push(m) {
                        m = back;
                        backoff(&mut tries, t0)?;
                    }
                }
            } else {
                for _ in 0..per {
                    loop {
                        if let Some(m) = q.pop() {
                            sum += m;
                            break;
                        }
                        backoff(&mut tries, t0)?;
                    }
                }
            }
            Ok(sum)
        }));
    }
    let t0 = Instant::now();
    // Release: pairs with the workers' Acquire spin.
    go.store(true, Ordering::Release);
    let mut sum = 0;
    for h in handles {
        sum += h.join().map_err(|_| "worker panicked".to_string())??;
    }
    let dt = t0.elapsed();
    if sum != total * (total + 1) / 2 {
        return Err("wrong checksum".into());
    }
    Ok(mmsgs(dt, total))
}

/// crossbeam ArrayQueue, 1 producer and 1 consumer thread.
pub(crate) fn crossbeam_mpmc_1(ctx: &Ctx) -> Res<f64> {
    crossbeam_mpmc(ctx, 1, false)
}
/// crossbeam ArrayQueue, 2 producers and 2 consumers.
pub(crate) fn crossbeam_mpmc_2(ctx: &Ctx) -> Res<f64> {
    crossbeam_mpmc(ctx, 2, false)
}
/// crossbeam ArrayQueue, 2 producers and 2 consumers, one of each per core.
pub(crate) fn crossbeam_mpmc_2_split(ctx: &Ctx) -> Res<f64> {
    crossbeam_mpmc(ctx, 2, true)
}
/// crossbeam ArrayQueue, 4 producers and 4 consumers.
pub(crate) fn crossbeam_mpmc_4(ctx: &Ctx) -> Res<f64> {
    crossbeam_mpmc(ctx, 4, false)
}
