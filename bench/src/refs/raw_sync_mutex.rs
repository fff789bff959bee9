//! `raw_sync`'s mutex (a process-shared, non-robust pthread mutex behind a
//! boxed trait object) in shared memory: lock+unlock uncontended, and contended
//! by two processes.

use raw_sync::locks::{LockImpl, LockInit, Mutex};

use super::super::Res;
use super::super::proc::{ChildCtx, RawShm, Session, Spawn};
use super::ns_per;
use crate::Ctx;
use crate::figures::{MUTEX_CONTENDED_OPS, MUTEX_UNCONTENDED_OPS};

const LEN: usize = 4096;
/// Offset of the protected `u64` counter; the lock sits at offset 0.
const DATA: usize = 2048;

fn open(shm: &RawShm, create: bool) -> Res<Box<dyn LockImpl>> {
    assert!(Mutex::size_of(None) <= DATA);
    let data = shm.at::<u64>(DATA).cast::<u8>();
    // SAFETY: the mapping holds `LEN` bytes: the lock at 0 (smaller than
    // `DATA`, asserted) and its data at `DATA`; `create` is true only in the
    // parent, before any other process maps it.
    let r = unsafe {
        if create {
            Mutex::new(shm.ptr(), data)
        } else {
            Mutex::from_existing(shm.ptr(), data)
        }
    };
    r.map(|(m, _)| m).map_err(|e| format!("raw_sync: {e}"))
}

fn bump(m: &dyn LockImpl, n: u64) -> Res<()> {
    for _ in 0..n {
        let guard = m.lock().map_err(|e| format!("raw_sync lock: {e}"))?;
        // SAFETY: the guard holds the lock that protects the counter at `*guard`
        // (an aligned u64 inside the mapping).
        unsafe { *(*guard).cast::<u64>() += 1 };
        drop(guard);
    }
    Ok(())
}

fn counter(shm: &RawShm) -> u64 {
    // SAFETY: aligned u64 in the live mapping; every writer has finished.
    unsafe { *shm.at::<u64>(DATA) }
}

/// Uncontended lock+unlock: ns per pair.
pub(crate) fn uncontended(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(MUTEX_UNCONTENDED_OPS);
    let shm = RawShm::create("rawsync", LEN)?;
    let m = open(&shm, true)?;
    let t0 = std::time::Instant::now();
    bump(m.as_ref(), n)?;
    let dt = t0.elapsed();
    if counter(&shm) != n {
        return Err("lost increments".into());
    }
    Ok(ns_per(dt, n))
}

/// Two processes contending: ns per lock+unlock pair over both.
pub(crate) fn contended(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(MUTEX_CONTENDED_OPS);
    let shm = RawShm::create("rawsync-c", LEN)?;
    let m = open(&shm, true)?;
    let mut s = Session::start(vec![Spawn::pinned(
        "raw-sync-contender",
        vec![shm.name().into(), n.to_string()],
    )])?;
    let t0 = s.go();
    bump(m.as_ref(), n)?;
    s.wait_done()?;
    let dt = t0.elapsed();
    s.finish()?;
    if counter(&shm) != 2 * n {
        return Err("lost increments".into());
    }
    Ok(ns_per(dt, 2 * n))
}

/// Child of [`contended`].
pub(crate) fn contender_child(c: &ChildCtx) -> Res<()> {
    let shm = RawShm::open(c.str_arg(0)?, LEN)?;
    let n: u64 = c.arg(1)?;
    let m = open(&shm, false)?;
    c.ready()?;
    bump(m.as_ref(), n)?;
    c.done();
    Ok(())
}
