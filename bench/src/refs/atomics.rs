//! A bare `AtomicU64` in a shared mapping: `fetch_add` and `load`, the floor for
//! `Value<u64>`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::super::Res;
use super::super::proc::RawShm;
use super::ns_per;
use crate::Ctx;
use crate::figures::VALUE_OPS;

fn with_atomic(f: impl FnOnce(&AtomicU64) -> Res<f64>) -> Res<f64> {
    let shm = RawShm::create("atomic", 4096)?;
    // SAFETY: aligned, in bounds (checked by `at`), only accessed atomically.
    let a = unsafe { &*shm.at::<AtomicU64>(0) };
    f(a)
}

/// `fetch_add(1, SeqCst)` on a mapped `AtomicU64`: ns per operation.
pub(crate) fn fetch_add(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(VALUE_OPS);
    with_atomic(|a| {
        let t0 = Instant::now();
        for _ in 0..n {
            a.fetch_add(1, Ordering::SeqCst);
        }
        let dt = t0.elapsed();
        if a.load(Ordering::Relaxed) != n {
            return Err("lost increments".into());
        }
        Ok(ns_per(dt, n))
    })
}

/// `load(SeqCst)` of a mapped `AtomicU64`: ns per operation.
pub(crate) fn load(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(VALUE_OPS);
    with_atomic(|a| {
        a.store(7, Ordering::Relaxed);
        let t0 = Instant::now();
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(std::hint::black_box(a).load(Ordering::SeqCst));
        }
        let dt = t0.elapsed();
        if sum != n.wrapping_mul(7) {
            return Err("wrong sum".into());
        }
        Ok(ns_per(dt, n))
    })
}
