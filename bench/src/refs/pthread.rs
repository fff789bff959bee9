//! pthreads in shared memory, process-shared: a robust mutex (uncontended and
//! contended by two processes), a bounded queue guarded by a mutex and two
//! condition variables (Boost.Interprocess's `message_queue` design), POSIX
//! semaphores and a pthread barrier.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use super::super::Res;
use super::super::proc::{ChildCtx, PEER_TIMEOUT, RawShm, Session, Spawn};
use super::{mmsgs, ns_per};
use crate::Ctx;
use crate::figures::{
    BARRIER_ROUNDS, MPMC_CAPACITY, MPMC_MSGS, MUTEX_CONTENDED_OPS, MUTEX_UNCONTENDED_OPS,
    SEM_ROUND_TRIPS,
};

fn check(rc: libc::c_int, call: &str) -> Res<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("{call}: {}", std::io::Error::from_raw_os_error(rc)))
    }
}

/// Initialises a process-shared mutex at `m`, robust when asked.
///
/// # Safety
/// `m` points to writable memory for a `pthread_mutex_t` that no one uses yet.
pub(crate) unsafe fn init_mutex(m: *mut libc::pthread_mutex_t, robust: bool) -> Res<()> {
    // SAFETY: attr is initialised by pthread_mutexattr_init before use and
    // destroyed after; `m` is valid per the caller.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        check(
            libc::pthread_mutexattr_init(&mut attr),
            "pthread_mutexattr_init",
        )?;
        check(
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
            "pthread_mutexattr_setpshared",
        )?;
        if robust {
            check(
                libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
                "pthread_mutexattr_setrobust",
            )?;
        }
        let rc = libc::pthread_mutex_init(m, &attr);
        libc::pthread_mutexattr_destroy(&mut attr);
        check(rc, "pthread_mutex_init")
    }
}

/// Locks `m`, making it consistent again if its owner died.
///
/// # Safety
/// `m` is an initialised process-shared mutex.
#[inline]
pub(crate) unsafe fn lock(m: *mut libc::pthread_mutex_t) -> Res<()> {
    // SAFETY: `m` is initialised per the caller.
    let rc = unsafe { libc::pthread_mutex_lock(m) };
    if rc == libc::EOWNERDEAD {
        // SAFETY: we hold the lock (EOWNERDEAD means acquired).
        return check(unsafe { libc::pthread_mutex_consistent(m) }, "consistent");
    }
    check(rc, "pthread_mutex_lock")
}

/// Unlocks `m`.
///
/// # Safety
/// The caller holds `m`.
#[inline]
pub(crate) unsafe fn unlock(m: *mut libc::pthread_mutex_t) -> Res<()> {
    // SAFETY: held per the caller.
    check(
        unsafe { libc::pthread_mutex_unlock(m) },
        "pthread_mutex_unlock",
    )
}

#[repr(C)]
struct MutexState {
    mutex: libc::pthread_mutex_t,
    counter: u64,
}

fn state_len<T>() -> usize {
    std::mem::size_of::<T>().next_multiple_of(4096)
}

/// A robust process-shared mutex, lock+unlock with nobody else: ns per pair.
pub(crate) fn mutex_uncontended(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(MUTEX_UNCONTENDED_OPS);
    let shm = RawShm::create("pmutex", state_len::<MutexState>())?;
    let st = shm.at::<MutexState>(0);
    // SAFETY: fresh mapping, large enough and aligned for MutexState.
    unsafe { init_mutex(&raw mut (*st).mutex, true)? };
    let t0 = Instant::now();
    for _ in 0..n {
        // SAFETY: initialised above; lock and unlock pair up.
        unsafe {
            lock(&raw mut (*st).mutex)?;
            (*st).counter += 1;
            unlock(&raw mut (*st).mutex)?;
        }
    }
    let dt = t0.elapsed();
    // SAFETY: no other user.
    if unsafe { (*st).counter } != n {
        return Err("lost increments".into());
    }
    Ok(ns_per(dt, n))
}

/// Two processes (one per core) each doing lock, increment, unlock: ns per
/// lock+unlock pair over both.
pub(crate) fn mutex_contended(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(MUTEX_CONTENDED_OPS);
    let shm = RawShm::create("pmutex-c", state_len::<MutexState>())?;
    let st = shm.at::<MutexState>(0);
    // SAFETY: fresh mapping, large enough and aligned for MutexState.
    unsafe { init_mutex(&raw mut (*st).mutex, true)? };
    let mut s = Session::start(vec![Spawn::pinned(
        "pmutex-contender",
        vec![shm.name().into(), n.to_string()],
    )])?;
    let t0 = s.go();
    contend(st, n)?;
    s.wait_done()?;
    let dt = t0.elapsed();
    s.finish()?;
    // SAFETY: both processes are done with the mutex.
    if unsafe { (*st).counter } != 2 * n {
        return Err("lost increments".into());
    }
    Ok(ns_per(dt, 2 * n))
}

fn contend(st: *mut MutexState, n: u64) -> Res<()> {
    for _ in 0..n {
        // SAFETY: the mutex was initialised by the parent; counter is only
        // touched under it.
        unsafe {
            lock(&raw mut (*st).mutex)?;
            (*st).counter += 1;
            unlock(&raw mut (*st).mutex)?;
        }
    }
    Ok(())
}

/// Child of [`mutex_contended`].
pub(crate) fn mutex_contender_child(c: &ChildCtx) -> Res<()> {
    let shm = RawShm::open(c.str_arg(0)?, state_len::<MutexState>())?;
    let n: u64 = c.arg(1)?;
    c.ready()?;
    contend(shm.at::<MutexState>(0), n)?;
    c.done();
    Ok(())
}

// ---------------------------------------------------------------------------
// Mutex + condvar bounded queue (Boost.Interprocess message_queue design)
// ---------------------------------------------------------------------------

#[repr(C)]
struct CvQueue {
    mutex: libc::pthread_mutex_t,
    not_empty: libc::pthread_cond_t,
    not_full: libc::pthread_cond_t,
    /// Receivers / senders blocked on the condvars: signal only when non-zero,
    /// as Boost does.
    blocked_receivers: u32,
    blocked_senders: u32,
    head: u64,
    len: u64,
    /// Sum of every value received, added by each consumer at the end.
    received_sum: AtomicU64,
    slots: [u64; MPMC_CAPACITY as usize],
}

fn cvq_len() -> usize {
    state_len::<CvQueue>()
}

/// A `CLOCK_REALTIME` deadline one peer timeout from now.
fn realtime_deadline() -> libc::timespec {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        + PEER_TIMEOUT;
    libc::timespec {
        tv_sec: now.as_secs() as libc::time_t,
        tv_nsec: now.subsec_nanos() as libc::c_long,
    }
}

/// Waits on `cond` (holding the queue's mutex) with a deadline.
///
/// # Safety
/// `q` is an initialised queue whose mutex the caller holds.
unsafe fn cv_wait(
    q: *mut CvQueue,
    cond: *mut libc::pthread_cond_t,
    dl: &libc::timespec,
) -> Res<()> {
    // SAFETY: per the caller.
    let rc = unsafe { libc::pthread_cond_timedwait(cond, &raw mut (*q).mutex, dl) };
    match rc {
        0 => Ok(()),
        libc::EOWNERDEAD => {
            // SAFETY: we hold the mutex again.
            unsafe { libc::pthread_mutex_consistent(&raw mut (*q).mutex) };
            Ok(())
        }
        libc::ETIMEDOUT => Err("peer made no progress in time".into()),
        e => check(e, "pthread_cond_timedwait"),
    }
}

/// Blocking send.
///
/// # Safety
/// `q` is an initialised queue in shared memory.
unsafe fn cvq_send(q: *mut CvQueue, v: u64, dl: &libc::timespec) -> Res<()> {
    // SAFETY: the queue's fields are only touched under its mutex.
    unsafe {
        lock(&raw mut (*q).mutex)?;
        while (*q).len == MPMC_CAPACITY {
            (*q).blocked_senders += 1;
            let r = cv_wait(q, &raw mut (*q).not_full, dl);
            (*q).blocked_senders -= 1;
            if let Err(e) = r {
                unlock(&raw mut (*q).mutex)?;
                return Err(e);
            }
        }
        let tail = ((*q).head + (*q).len) % MPMC_CAPACITY;
        (*q).slots[tail as usize] = v;
        (*q).len += 1;
        if (*q).blocked_receivers > 0 {
            libc::pthread_cond_signal(&raw mut (*q).not_empty);
        }
        unlock(&raw mut (*q).mutex)
    }
}

/// Blocking receive.
///
/// # Safety
/// `q` is an initialised queue in shared memory.
unsafe fn cvq_recv(q: *mut CvQueue, dl: &libc::timespec) -> Res<u64> {
    // SAFETY: the queue's fields are only touched under its mutex.
    unsafe {
        lock(&raw mut (*q).mutex)?;
        while (*q).len == 0 {
            (*q).blocked_receivers += 1;
            let r = cv_wait(q, &raw mut (*q).not_empty, dl);
            (*q).blocked_receivers -= 1;
            if let Err(e) = r {
                unlock(&raw mut (*q).mutex)?;
                return Err(e);
            }
        }
        let v = (*q).slots[((*q).head % MPMC_CAPACITY) as usize];
        (*q).head = ((*q).head + 1) % MPMC_CAPACITY;
        (*q).len -= 1;
        if (*q).blocked_senders > 0 {
            libc::pthread_cond_signal(&raw mut (*q).not_full);
        }
        unlock(&raw mut (*q).mutex)?;
        Ok(v)
    }
}

/// `p` producer and `p` consumer processes over the condvar queue: Mmsg/s.
fn cvq(ctx: &Ctx, p: u64) -> Res<f64> {
    let per = ctx.n(MPMC_MSGS) / p;
    let total = per * p;
    let shm = RawShm::create("cvq", cvq_len())?;
    let q = shm.at::<CvQueue>(0);
    // SAFETY: fresh zeroed mapping, large enough and aligned for CvQueue; the
    // condvar attributes are initialised before use and destroyed after.
    unsafe {
        init_mutex(&raw mut (*q).mutex, true)?;
        let mut attr: libc::pthread_condattr_t = std::mem::zeroed();
        check(
            libc::pthread_condattr_init(&mut attr),
            "pthread_condattr_init",
        )?;
        check(
            libc::pthread_condattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
            "pthread_condattr_setpshared",
        )?;
        check(
            libc::pthread_cond_init(&raw mut (*q).not_empty, &attr),
            "pthread_cond_init",
        )?;
        check(
            libc::pthread_cond_init(&raw mut (*q).not_full, &attr),
            "pthread_cond_init",
        )?;
        libc::pthread_condattr_destroy(&mut attr);
    }
    let mut spawns = Vec::new();
    for k in 0..2 * p {
        let producer = k < p;
        let role = if producer {
            "cvq-producer"
        } else {
            "cvq-consumer"
        };
        let args = vec![shm.name().into(), per.to_string(), (k * per).to_string()];
        spawns.push(if p == 1 {
            Spawn {
                role,
                args,
                cpu: Some(if producer { 1 } else { 0 }),
            }
        } else {
            Spawn::free(role, args)
        });
    }
    let mut s = Session::start(spawns)?;
    let t0 = s.go();
    s.wait_done()?;
    let dt = t0.elapsed();
    s.finish()?;
    // SAFETY: `q` is in our live mapping; the field is atomic.
    let sum = unsafe { (*q).received_sum.load(Ordering::Acquire) };
    if sum != total * (total + 1) / 2 {
        return Err("wrong checksum".into());
    }
    Ok(mmsgs(dt, total))
}

/// Child: sends `base+1 ..= base+per`.
pub(crate) fn cvq_producer_child(c: &ChildCtx) -> Res<()> {
    let shm = RawShm::open(c.str_arg(0)?, cvq_len())?;
    let per: u64 = c.arg(1)?;
    let base: u64 = c.arg(2)?;
    let q = shm.at::<CvQueue>(0);
    c.ready()?;
    let dl = realtime_deadline();
    for i in 1..=per {
        // SAFETY: the parent initialised the queue before starting us.
        unsafe { cvq_send(q, base + i, &dl)? };
    }
    c.done();
    Ok(())
}

/// Child: receives `per` values and adds their sum to `received_sum`.
pub(crate) fn cvq_consumer_child(c: &ChildCtx) -> Res<()> {
    let shm = RawShm::open(c.str_arg(0)?, cvq_len())?;
    let per: u64 = c.arg(1)?;
    let q = shm.at::<CvQueue>(0);
    c.ready()?;
    let dl = realtime_deadline();
    let mut sum = 0;
    for _ in 0..per {
        // SAFETY: the parent initialised the queue before starting us.
        sum += unsafe { cvq_recv(q, &dl)? };
    }
    // SAFETY: `q` is in our live mapping; the field is atomic.
    // Release: pairs with the parent's Acquire load after every child is done.
    unsafe { (*q).received_sum.fetch_add(sum, Ordering::Release) };
    c.done();
    Ok(())
}

/// Condvar queue, 1 producer and 1 consumer process.
pub(crate) fn cvq_1(ctx: &Ctx) -> Res<f64> {
    cvq(ctx, 1)
}
/// Condvar queue, 2 producer and 2 consumer processes.
pub(crate) fn cvq_2(ctx: &Ctx) -> Res<f64> {
    cvq(ctx, 2)
}
/// Condvar queue, 4 producer and 4 consumer processes.
pub(crate) fn cvq_4(ctx: &Ctx) -> Res<f64> {
    cvq(ctx, 4)
}

// ---------------------------------------------------------------------------
// POSIX semaphores and pthread barrier
// ---------------------------------------------------------------------------

#[repr(C)]
struct SemPair {
    ping: libc::sem_t,
    pong: libc::sem_t,
}

fn sem_wait(s: *mut libc::sem_t, dl: &libc::timespec) -> Res<()> {
    loop {
        // SAFETY: `s` is an initialised process-shared semaphore.
        if unsafe { libc::sem_timedwait(s, dl) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("sem_timedwait: {e}"));
        }
    }
}

/// Two process-shared POSIX semaphores (`sem_post` / `sem_wait`): ns per round trip.
pub(crate) fn sem(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SEM_ROUND_TRIPS);
    let shm = RawShm::create("psem", state_len::<SemPair>())?;
    let st = shm.at::<SemPair>(0);
    // SAFETY: fresh mapping, large enough and aligned for SemPair.
    unsafe {
        if libc::sem_init(&raw mut (*st).ping, 1, 0) != 0
            || libc::sem_init(&raw mut (*st).pong, 1, 0) != 0
        {
            return Err(super::os_err("sem_init"));
        }
    }
    let s = Session::start(vec![Spawn::pinned(
        "psem-pong",
        vec![shm.name().into(), n.to_string()],
    )])?;
    let dl = realtime_deadline();
    let t0 = s.go();
    for _ in 0..n {
        // SAFETY: initialised above.
        unsafe { libc::sem_post(&raw mut (*st).ping) };
        // SAFETY: field address within our live mapping; no reference made.
        sem_wait(unsafe { &raw mut (*st).pong }, &dl)?;
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`sem`].
pub(crate) fn sem_pong_child(c: &ChildCtx) -> Res<()> {
    let shm = RawShm::open(c.str_arg(0)?, state_len::<SemPair>())?;
    let n: u64 = c.arg(1)?;
    let st = shm.at::<SemPair>(0);
    c.ready()?;
    let dl = realtime_deadline();
    for _ in 0..n {
        // SAFETY: field address within our live mapping; no reference made.
        sem_wait(unsafe { &raw mut (*st).ping }, &dl)?;
        // SAFETY: the parent initialised the semaphores before starting us.
        unsafe { libc::sem_post(&raw mut (*st).pong) };
    }
    c.done();
    Ok(())
}

#[repr(C)]
struct BarrierState {
    barrier: libc::pthread_barrier_t,
}

/// A process-shared pthread barrier of two parties, one per process: ns per
/// barrier round. (`pthread_barrier_wait` has no timeout: a dead peer would
/// hang it, which only Ctrl-C ends.)
pub(crate) fn barrier(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(BARRIER_ROUNDS);
    let shm = RawShm::create("pbarrier", state_len::<BarrierState>())?;
    let st = shm.at::<BarrierState>(0);
    // SAFETY: fresh mapping, large enough and aligned; attr initialised before
    // use and destroyed after.
    unsafe {
        let mut attr: libc::pthread_barrierattr_t = std::mem::zeroed();
        check(
            libc::pthread_barrierattr_init(&mut attr),
            "pthread_barrierattr_init",
        )?;
        check(
            libc::pthread_barrierattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
            "pthread_barrierattr_setpshared",
        )?;
        check(
            libc::pthread_barrier_init(&raw mut (*st).barrier, &attr, 2),
            "pthread_barrier_init",
        )?;
        libc::pthread_barrierattr_destroy(&mut attr);
    }
    let s = Session::start(vec![Spawn::pinned(
        "pbarrier-peer",
        vec![shm.name().into(), n.to_string()],
    )])?;
    let t0 = s.go();
    for _ in 0..n {
        // SAFETY: initialised above; both parties wait `n` times.
        unsafe { libc::pthread_barrier_wait(&raw mut (*st).barrier) };
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`barrier`].
pub(crate) fn barrier_peer_child(c: &ChildCtx) -> Res<()> {
    let shm = RawShm::open(c.str_arg(0)?, state_len::<BarrierState>())?;
    let n: u64 = c.arg(1)?;
    let st = shm.at::<BarrierState>(0);
    c.ready()?;
    for _ in 0..n {
        // SAFETY: the parent initialised the barrier before starting us.
        unsafe { libc::pthread_barrier_wait(&raw mut (*st).barrier) };
    }
    c.done();
    Ok(())
}

// ---------------------------------------------------------------------------
// A 64-byte value behind a mutex, read while another process writes it
// ---------------------------------------------------------------------------

#[repr(C)]
struct MutexCopy {
    mutex: libc::pthread_mutex_t,
    stop: AtomicU32,
    value: [u8; 64],
}

/// Reads a mutex-protected 64-byte value (lock, copy out, unlock) while a
/// writer process rewrites it: ns per read. Checks no read is torn.
pub(crate) fn mutex_copy_get(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(crate::figures::VALUE_OPS);
    let shm = RawShm::create("pmutex-copy", state_len::<MutexCopy>())?;
    let st = shm.at::<MutexCopy>(0);
    // SAFETY: fresh mapping, large enough and aligned for MutexCopy.
    unsafe { init_mutex(&raw mut (*st).mutex, true)? };
    let s = Session::start(vec![Spawn::pinned(
        "pmutex-copy-writer",
        vec![shm.name().into()],
    )])?;
    let t0 = s.go();
    let mut buf = [0u8; 64];
    for _ in 0..n {
        // SAFETY: `value` is only accessed under the mutex.
        unsafe {
            lock(&raw mut (*st).mutex)?;
            std::ptr::copy_nonoverlapping(
                (&raw const (*st).value).cast::<u8>(),
                buf.as_mut_ptr(),
                64,
            );
            unlock(&raw mut (*st).mutex)?;
        }
        if buf.iter().any(|b| *b != buf[0]) {
            return Err("torn read".into());
        }
    }
    let dt = t0.elapsed();
    // SAFETY: atomic field of our live mapping.
    // Release: the writer's Acquire load sees it and stops.
    unsafe { (*st).stop.store(1, Ordering::Release) };
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`mutex_copy_get`]: rewrites the value until told to stop.
pub(crate) fn copy_writer_child(c: &ChildCtx) -> Res<()> {
    let shm = RawShm::open(c.str_arg(0)?, state_len::<MutexCopy>())?;
    let st = shm.at::<MutexCopy>(0);
    c.ready()?;
    let t0 = Instant::now();
    let mut v: u8 = 0;
    // SAFETY: `stop` is atomic; `value` is only accessed under the mutex, which
    // the parent initialised before starting us.
    // Acquire: pairs with the parent's Release store of `stop`.
    while unsafe { (*st).stop.load(Ordering::Acquire) } == 0 {
        v = v.wrapping_add(1);
        // SAFETY: as above.
        unsafe {
            lock(&raw mut (*st).mutex)?;
            std::ptr::write_bytes((&raw mut (*st).value).cast::<u8>(), v, 64);
            unlock(&raw mut (*st).mutex)?;
        }
        if t0.elapsed() > PEER_TIMEOUT {
            return Err("never told to stop".into());
        }
    }
    c.done();
    Ok(())
}
