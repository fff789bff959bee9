//! Boost.Interprocess, the C++ library a user would reach for instead:
//! `message_queue` (1, 2 and 4 producer and consumer processes, and a round
//! trip through two of them), `interprocess_mutex` in a shared-memory object
//! (uncontended, and contended by two processes) and `named_semaphore` (a
//! round trip), all from `cpp/boost_ipc.cpp`. Built only when Boost's headers
//! are installed (`cfg(shmprim_boost)`); otherwise [`available`] is false and
//! the rows are skipped with that reason.

use std::ffi::CString;

use super::super::Res;
use super::super::proc::{
    ChildCtx, CleanupKind, RawShm, Session, Spawn, register_name, unique_name, unregister_name,
};
use super::{mmsgs, ns_per};
use crate::Ctx;
use crate::figures::{
    MPMC_CAPACITY, MPMC_MSGS, MUTEX_CONTENDED_OPS, MUTEX_UNCONTENDED_OPS, QUEUE_ROUND_TRIPS,
    SEM_ROUND_TRIPS,
};

#[cfg(shmprim_boost)]
mod ffi {
    unsafe extern "C" {
        pub fn bipc_mq_create(name: *const libc::c_char, max_msgs: u64) -> libc::c_int;
        pub fn bipc_mq_remove(name: *const libc::c_char) -> libc::c_int;
        pub fn bipc_mq_send_range(name: *const libc::c_char, base: u64, n: u64) -> libc::c_int;
        pub fn bipc_mq_recv_sum(name: *const libc::c_char, n: u64, sum: *mut u64) -> libc::c_int;
        pub fn bipc_mq_echo(
            ping: *const libc::c_char,
            pong: *const libc::c_char,
            n: u64,
        ) -> libc::c_int;
        pub fn bipc_mq_round_trips(
            ping: *const libc::c_char,
            pong: *const libc::c_char,
            n: u64,
        ) -> libc::c_int;
        pub fn bipc_mutex_create(name: *const libc::c_char) -> libc::c_int;
        pub fn bipc_mutex_remove(name: *const libc::c_char) -> libc::c_int;
        pub fn bipc_mutex_loop(name: *const libc::c_char, n: u64, counter: *mut u64)
        -> libc::c_int;
        pub fn bipc_sem_create(name: *const libc::c_char) -> libc::c_int;
        pub fn bipc_sem_remove(name: *const libc::c_char) -> libc::c_int;
        pub fn bipc_sem_ping_pong(
            ping: *const libc::c_char,
            pong: *const libc::c_char,
            n: u64,
            initiator: libc::c_int,
        ) -> libc::c_int;
    }
}

#[cfg(not(shmprim_boost))]
#[allow(clippy::missing_safety_doc)]
mod ffi {
    //! Stand-ins with the same signatures, answering `NOT_BUILT`: the rows
    //! are skipped before they call them (see `available`).
    pub unsafe fn bipc_mq_create(_name: *const libc::c_char, _max_msgs: u64) -> libc::c_int {
        super::NOT_BUILT
    }
    pub unsafe fn bipc_mq_remove(_name: *const libc::c_char) -> libc::c_int {
        super::NOT_BUILT
    }
    pub unsafe fn bipc_mq_send_range(
        _name: *const libc::c_char,
        _base: u64,
        _n: u64,
    ) -> libc::c_int {
        super::NOT_BUILT
    }
    pub unsafe fn bipc_mq_recv_sum(
        _name: *const libc::c_char,
        _n: u64,
        _sum: *mut u64,
    ) -> libc::c_int {
        super::NOT_BUILT
    }
    pub unsafe fn bipc_mq_echo(
        _ping: *const libc::c_char,
        _pong: *const libc::c_char,
        _n: u64,
    ) -> libc::c_int {
        super::NOT_BUILT
    }
    pub unsafe fn bipc_mq_round_trips(
        _ping: *const libc::c_char,
        _pong: *const libc::c_char,
        _n: u64,
    ) -> libc::c_int {
        super::NOT_BUILT
    }
    pub unsafe fn bipc_mutex_create(_name: *const libc::c_char) -> libc::c_int {
        super::NOT_BUILT
    }
    pub unsafe fn bipc_mutex_remove(_name: *const libc::c_char) -> libc::c_int {
        super::NOT_BUILT
    }
    pub unsafe fn bipc_mutex_loop(
        _name: *const libc::c_char,
        _n: u64,
        _counter: *mut u64,
    ) -> libc::c_int {
        super::NOT_BUILT
    }
    pub unsafe fn bipc_sem_create(_name: *const libc::c_char) -> libc::c_int {
        super::NOT_BUILT
    }
    pub unsafe fn bipc_sem_remove(_name: *const libc::c_char) -> libc::c_int {
        super::NOT_BUILT
    }
    pub unsafe fn bipc_sem_ping_pong(
        _ping: *const libc::c_char,
        _pong: *const libc::c_char,
        _n: u64,
        _initiator: libc::c_int,
    ) -> libc::c_int {
        super::NOT_BUILT
    }
}

/// Whether the Boost references were built (Boost's headers were installed).
pub(crate) fn available() -> bool {
    cfg!(shmprim_boost)
}

/// The status of a call into a build without Boost.
#[cfg_attr(shmprim_boost, allow(dead_code))]
const NOT_BUILT: libc::c_int = -4;

fn c_name(name: &str) -> Res<CString> {
    CString::new(name).map_err(|_| "a name with a NUL byte".to_string())
}

/// A status of `cpp/boost_ipc.cpp` as a result.
fn status(rc: libc::c_int, call: &str) -> Res<()> {
    match rc {
        0 => Ok(()),
        -2 => Err(format!("{call}: timed out waiting for the peer")),
        -3 => Err(format!("{call}: a wrong value")),
        NOT_BUILT => {
            Err("Boost.Interprocess headers were not found when the suite was built".into())
        }
        _ => Err(format!("{call}: Boost threw an exception")),
    }
}

/// A Boost object in `/dev/shm` under a unique name, removed on drop (and by
/// the suite's Ctrl-C handler).
struct Named {
    name: String,
    c: CString,
    kind: CleanupKind,
    reg: Option<usize>,
}

impl Named {
    fn new(tag: &str, kind: CleanupKind) -> Res<Named> {
        let name = unique_name(tag);
        let c = c_name(&name)?;
        let reg = register_name(kind, &name);
        Ok(Named { name, c, kind, reg })
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        // SAFETY: a valid NUL-terminated name; removing a missing object is a
        // no-op in Boost.
        unsafe {
            match self.kind {
                CleanupKind::Mq => ffi::bipc_mq_remove(self.c.as_ptr()),
                CleanupKind::Sem => ffi::bipc_sem_remove(self.c.as_ptr()),
                CleanupKind::Shm => {
                    ffi::bipc_mq_remove(self.c.as_ptr());
                    ffi::bipc_mutex_remove(self.c.as_ptr())
                }
            };
        }
        unregister_name(self.reg);
    }
}

// ------------------------------------------------------------ message_queue

/// `message_queue` of `MPMC_CAPACITY` `u64` messages, `p` producer and `p`
/// consumer processes: Mmsg/s over all of them.
fn mq(ctx: &Ctx, p: u64) -> Res<f64> {
    let per = ctx.n(MPMC_MSGS / 8) / p;
    let total = per * p;
    // Boost's message queue lives in a shared-memory object of its name.
    let q = Named::new("bmq", CleanupKind::Shm)?;
    status(
        // SAFETY: a valid NUL-terminated name.
        unsafe { ffi::bipc_mq_create(q.c.as_ptr(), MPMC_CAPACITY) },
        "message_queue",
    )?;
    let sums = RawShm::create("bmq-sum", 64)?;
    let mut spawns = Vec::new();
    for k in 0..2 * p {
        let producer = k < p;
        let role = if producer {
            "bipc-mq-producer"
        } else {
            "bipc-mq-consumer"
        };
        let args = vec![
            q.name.clone(),
            per.to_string(),
            (k * per).to_string(),
            sums.name().into(),
        ];
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
    let sum = sum_word(&sums).load(std::sync::atomic::Ordering::Acquire);
    if sum != total * (total + 1) / 2 {
        return Err("Boost's message_queue delivered a wrong sum".into());
    }
    Ok(mmsgs(dt, total))
}

fn sum_word(shm: &RawShm) -> &std::sync::atomic::AtomicU64 {
    // SAFETY: the mapping is at least 64 bytes and page aligned; the word is
    // only used atomically by every process.
    unsafe { &*shm.at::<std::sync::atomic::AtomicU64>(0) }
}

/// Child of [`mq`]: sends `base+1 ..= base+per`.
pub(crate) fn mq_producer_child(c: &ChildCtx) -> Res<()> {
    let name = c_name(c.str_arg(0)?)?;
    let per: u64 = c.arg(1)?;
    let base: u64 = c.arg(2)?;
    c.ready()?;
    status(
        // SAFETY: a valid NUL-terminated name.
        unsafe { ffi::bipc_mq_send_range(name.as_ptr(), base, per) },
        "send",
    )?;
    {
        c.done();
        Ok(())
    }
}

/// Child of [`mq`]: receives `per` values and adds their sum to the sum word.
pub(crate) fn mq_consumer_child(c: &ChildCtx) -> Res<()> {
    let name = c_name(c.str_arg(0)?)?;
    let per: u64 = c.arg(1)?;
    let sums = RawShm::open(c.str_arg(3)?, 64)?;
    c.ready()?;
    let mut sum = 0u64;
    status(
        // SAFETY: a valid NUL-terminated name and a local to write.
        unsafe { ffi::bipc_mq_recv_sum(name.as_ptr(), per, &mut sum) },
        "receive",
    )?;
    {
        // Release: pairs with the parent's Acquire load once every child is done.
        sum_word(&sums).fetch_add(sum, std::sync::atomic::Ordering::Release);
        c.done();
        Ok(())
    }
}

/// `message_queue`, 1 producer and 1 consumer process.
pub(crate) fn mq_1(ctx: &Ctx) -> Res<f64> {
    mq(ctx, 1)
}
/// `message_queue`, 2 producer and 2 consumer processes.
pub(crate) fn mq_2(ctx: &Ctx) -> Res<f64> {
    mq(ctx, 2)
}
/// `message_queue`, 4 producer and 4 consumer processes.
pub(crate) fn mq_4(ctx: &Ctx) -> Res<f64> {
    mq(ctx, 4)
}

/// Two `message_queue`s: the parent sends `i`, the child answers `i + 1`. ns
/// per round trip.
pub(crate) fn mq_rtt(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(QUEUE_ROUND_TRIPS);
    let (ping, pong) = (
        Named::new("bmq-ping", CleanupKind::Shm)?,
        Named::new("bmq-pong", CleanupKind::Shm)?,
    );
    {
        // SAFETY: valid NUL-terminated names.
        unsafe {
            status(
                ffi::bipc_mq_create(ping.c.as_ptr(), MPMC_CAPACITY),
                "message_queue",
            )?;
            status(
                ffi::bipc_mq_create(pong.c.as_ptr(), MPMC_CAPACITY),
                "message_queue",
            )?;
        }
        let s = Session::start(vec![Spawn::pinned(
            "bipc-mq-pong",
            vec![ping.name.clone(), pong.name.clone(), n.to_string()],
        )])?;
        let t0 = s.go();
        status(
            // SAFETY: valid NUL-terminated names.
            unsafe { ffi::bipc_mq_round_trips(ping.c.as_ptr(), pong.c.as_ptr(), n) },
            "round trips",
        )?;
        let dt = t0.elapsed();
        s.finish()?;
        Ok(ns_per(dt, n))
    }
}

/// Child of [`mq_rtt`].
pub(crate) fn mq_pong_child(c: &ChildCtx) -> Res<()> {
    let (ping, pong) = (c_name(c.str_arg(0)?)?, c_name(c.str_arg(1)?)?);
    let n: u64 = c.arg(2)?;
    c.ready()?;
    {
        status(
            // SAFETY: valid NUL-terminated names.
            unsafe { ffi::bipc_mq_echo(ping.as_ptr(), pong.as_ptr(), n) },
            "echo",
        )?;
        c.done();
        Ok(())
    }
}

// ------------------------------------------------------------ interprocess_mutex

/// `interprocess_mutex` lock, increment, unlock: ns per pair, uncontended.
pub(crate) fn mutex_uncontended(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(MUTEX_UNCONTENDED_OPS);
    let m = Named::new("bmutex", CleanupKind::Shm)?;
    {
        status(
            // SAFETY: a valid NUL-terminated name.
            unsafe { ffi::bipc_mutex_create(m.c.as_ptr()) },
            "interprocess_mutex",
        )?;
        let mut count = 0;
        let t0 = std::time::Instant::now();
        status(
            // SAFETY: a valid NUL-terminated name and a local to write.
            unsafe { ffi::bipc_mutex_loop(m.c.as_ptr(), n, &mut count) },
            "lock loop",
        )?;
        let dt = t0.elapsed();
        if count != n {
            return Err("lost increments".into());
        }
        Ok(ns_per(dt, n))
    }
}

/// Two processes (one per core) each locking, incrementing, unlocking: ns
/// per pair over both.
pub(crate) fn mutex_contended(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(MUTEX_CONTENDED_OPS);
    let m = Named::new("bmutex-c", CleanupKind::Shm)?;
    {
        status(
            // SAFETY: a valid NUL-terminated name.
            unsafe { ffi::bipc_mutex_create(m.c.as_ptr()) },
            "interprocess_mutex",
        )?;
        let mut s = Session::start(vec![Spawn::pinned(
            "bipc-mutex-contender",
            vec![m.name.clone(), n.to_string()],
        )])?;
        let t0 = s.go();
        let mut count = 0;
        status(
            // SAFETY: a valid NUL-terminated name and a local to write.
            unsafe { ffi::bipc_mutex_loop(m.c.as_ptr(), n, &mut count) },
            "lock loop",
        )?;
        s.wait_done()?;
        let dt = t0.elapsed();
        s.finish()?;
        let mut after = 0;
        status(
            // SAFETY: as above; zero more increments, only the final count.
            unsafe { ffi::bipc_mutex_loop(m.c.as_ptr(), 0, &mut after) },
            "count",
        )?;
        if after != 2 * n {
            return Err("lost increments".into());
        }
        Ok(ns_per(dt, 2 * n))
    }
}

/// Child of [`mutex_contended`].
pub(crate) fn mutex_contender_child(c: &ChildCtx) -> Res<()> {
    let name = c_name(c.str_arg(0)?)?;
    let n: u64 = c.arg(1)?;
    c.ready()?;
    {
        let mut count = 0;
        status(
            // SAFETY: a valid NUL-terminated name and a local to write.
            unsafe { ffi::bipc_mutex_loop(name.as_ptr(), n, &mut count) },
            "lock loop",
        )?;
        c.done();
        Ok(())
    }
}

// ------------------------------------------------------------ named_semaphore

/// Two `named_semaphore`s posted and waited in turn by two processes: ns per
/// round trip.
pub(crate) fn sem_rtt(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(SEM_ROUND_TRIPS);
    let (ping, pong) = (
        Named::new("bsem-ping", CleanupKind::Sem)?,
        Named::new("bsem-pong", CleanupKind::Sem)?,
    );
    {
        // SAFETY: valid NUL-terminated names.
        unsafe {
            status(ffi::bipc_sem_create(ping.c.as_ptr()), "named_semaphore")?;
            status(ffi::bipc_sem_create(pong.c.as_ptr()), "named_semaphore")?;
        }
        let s = Session::start(vec![Spawn::pinned(
            "bipc-sem-pong",
            vec![ping.name.clone(), pong.name.clone(), n.to_string()],
        )])?;
        let t0 = s.go();
        status(
            // SAFETY: valid NUL-terminated names.
            unsafe { ffi::bipc_sem_ping_pong(ping.c.as_ptr(), pong.c.as_ptr(), n, 1) },
            "ping-pong",
        )?;
        let dt = t0.elapsed();
        s.finish()?;
        Ok(ns_per(dt, n))
    }
}

/// Child of [`sem_rtt`].
pub(crate) fn sem_pong_child(c: &ChildCtx) -> Res<()> {
    let (ping, pong) = (c_name(c.str_arg(0)?)?, c_name(c.str_arg(1)?)?);
    let n: u64 = c.arg(2)?;
    c.ready()?;
    {
        status(
            // SAFETY: valid NUL-terminated names.
            unsafe { ffi::bipc_sem_ping_pong(ping.as_ptr(), pong.as_ptr(), n, 0) },
            "ping-pong",
        )?;
        c.done();
        Ok(())
    }
}
