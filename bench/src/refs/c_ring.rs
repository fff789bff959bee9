//! The hand-written C SPSC ring with cached indices (`c/ring.c`, built
//! by build.rs): producer in a child process, consumer in the parent, over one
//! shared mapping. Its whole loops are in C, so no FFI call sits on the path.

use super::super::Res;
use super::super::proc::{ChildCtx, PEER_TIMEOUT, RawShm, Session, Spawn};
use super::mmsgs;
use crate::Ctx;
use crate::figures::{SPSC_BYTES_CAPACITY, SPSC_U64_CAPACITY};

unsafe extern "C" {
    fn shmprim_bench_cring_size(capacity: u64, slot_size: u64) -> u64;
    fn shmprim_bench_cring_init(mem: *mut u8, capacity: u64, slot_size: u64);
    fn shmprim_bench_cring_produce_u64(mem: *mut u8, count: u64, timeout_ns: u64) -> i32;
    fn shmprim_bench_cring_consume_u64(
        mem: *mut u8,
        count: u64,
        timeout_ns: u64,
        sum: *mut u64,
    ) -> i32;
    fn shmprim_bench_cring_produce_bytes(
        mem: *mut u8,
        count: u64,
        msg_size: u64,
        timeout_ns: u64,
    ) -> i32;
    fn shmprim_bench_cring_consume_bytes(
        mem: *mut u8,
        count: u64,
        msg_size: u64,
        timeout_ns: u64,
        sum: *mut u64,
    ) -> i32;
}

fn timeout_ns() -> u64 {
    PEER_TIMEOUT.as_nanos() as u64
}

fn ring_len(capacity: u64, slot: u64) -> usize {
    // SAFETY: pure arithmetic on its arguments.
    let len = unsafe { shmprim_bench_cring_size(capacity, slot) } as usize;
    len.next_multiple_of(4096)
}

/// `msg_size == 0` means `u64` messages; returns Mmsg/s.
fn run(msgs: u64, msg_size: u64) -> Res<f64> {
    let (capacity, slot) = if msg_size == 0 {
        (SPSC_U64_CAPACITY, 8)
    } else {
        (SPSC_BYTES_CAPACITY, msg_size.next_multiple_of(64))
    };
    let len = ring_len(capacity, slot);
    let shm = RawShm::create("cring", len)?;
    // SAFETY: the mapping is `len` bytes, enough for the ring (size from C), and
    // page aligned; nobody else maps it yet.
    unsafe { shmprim_bench_cring_init(shm.ptr(), capacity, slot) };
    let s = Session::start(vec![Spawn::pinned(
        "c-ring-producer",
        vec![
            shm.name().into(),
            len.to_string(),
            msgs.to_string(),
            msg_size.to_string(),
        ],
    )])?;
    let mut sum = 0u64;
    let t0 = s.go();
    // SAFETY: the ring was initialised above; this process is its only consumer.
    let rc = unsafe {
        if msg_size == 0 {
            shmprim_bench_cring_consume_u64(shm.ptr(), msgs, timeout_ns(), &mut sum)
        } else {
            shmprim_bench_cring_consume_bytes(shm.ptr(), msgs, msg_size, timeout_ns(), &mut sum)
        }
    };
    let dt = t0.elapsed();
    if rc != 0 {
        return Err(format!("C ring consumer failed ({rc})"));
    }
    if sum != msgs * (msgs + 1) / 2 {
        return Err("C ring delivered a wrong sum".into());
    }
    s.finish()?;
    Ok(mmsgs(dt, msgs))
}

/// Child: the producer.
pub(crate) fn producer_child(c: &ChildCtx) -> Res<()> {
    let len: usize = c.arg(1)?;
    let msgs: u64 = c.arg(2)?;
    let msg_size: u64 = c.arg(3)?;
    let shm = RawShm::open(c.str_arg(0)?, len)?;
    c.ready()?;
    // SAFETY: the parent initialised the ring in this mapping before starting us;
    // this process is its only producer.
    let rc = unsafe {
        if msg_size == 0 {
            shmprim_bench_cring_produce_u64(shm.ptr(), msgs, timeout_ns())
        } else {
            shmprim_bench_cring_produce_bytes(shm.ptr(), msgs, msg_size, timeout_ns())
        }
    };
    c.done();
    if rc != 0 {
        return Err(format!("C ring producer failed ({rc})"));
    }
    Ok(())
}

/// `u64` messages, Mmsg/s.
pub(crate) fn u64s(ctx: &Ctx) -> Res<f64> {
    run(ctx.n(crate::figures::SPSC_U64_MSGS), 0)
}

/// 64-byte messages, Mmsg/s.
pub(crate) fn bytes64(ctx: &Ctx) -> Res<f64> {
    run(ctx.n(crate::figures::SPSC_64B_MSGS), 64)
}

/// 4-KiB messages, Mmsg/s.
pub(crate) fn bytes4k(ctx: &Ctx) -> Res<f64> {
    run(ctx.n(crate::figures::SPSC_4K_MSGS), 4096)
}
