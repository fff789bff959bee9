//! shmprim's rows for values of any type: an `ObjectQueue<String>` between
//! two processes, beside a `ByteQueue` carrying the same bytes (the floor:
//! what the encoding and the tag cost) and Python's `multiprocessing.Queue`.

use std::time::Instant;

use shmprim::{ByteQueue, ObjectQueue};

use super::Res;
use super::proc::{ChildCtx, PEER_TIMEOUT, Session, ShmNameGuard, Spawn};
use crate::Ctx;
use crate::figures::OBJECT_MSGS;

/// Messages each queue holds.
const CAPACITY: usize = 1024;
/// Slot size: a 1 KiB string and its encoding fit.
const SLOT: usize = 1100;

fn err(e: shmprim::Error) -> String {
    e.to_string()
}

/// Mmsg/s of `len`-byte strings from a producer process to this one, through
/// an `ObjectQueue<String>` (`objects`) or a `ByteQueue` of the same bytes.
fn throughput(ctx: &Ctx, len: usize, objects: bool) -> Res<f64> {
    let n = ctx.n(OBJECT_MSGS);
    let name = ShmNameGuard::new("objq");
    let (oq, bq) = if objects {
        let q = ObjectQueue::<String>::create(name.name(), CAPACITY, SLOT).map_err(err)?;
        (Some(q), None)
    } else {
        let q = ByteQueue::create(name.name(), CAPACITY, SLOT).map_err(err)?;
        (None, Some(q))
    };
    let s = Session::start(vec![Spawn::pinned(
        "shmprim-objq-producer",
        vec![
            name.name().into(),
            n.to_string(),
            len.to_string(),
            u8::from(objects).to_string(),
        ],
    )])?;
    let t0 = s.go();
    for _ in 0..n {
        let got = match (&oq, &bq) {
            (Some(q), _) => q.get_timeout(PEER_TIMEOUT).map_err(err)?.len(),
            (_, Some(q)) => q.get_timeout(PEER_TIMEOUT).map_err(err)?.len(),
            _ => unreachable!("one of the two queues exists"),
        };
        if got != len {
            return Err(format!("a message of {got} bytes, not {len}"));
        }
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(n as f64 / dt.as_secs_f64() / 1e6)
}

/// Child of [`throughput`]: puts `n` strings of `len` bytes.
pub(crate) fn producer_child(c: &ChildCtx) -> Res<()> {
    let n: u64 = c.arg(1)?;
    let len: usize = c.arg(2)?;
    let objects: u8 = c.arg(3)?;
    let text = "x".repeat(len);
    let started = Instant::now();
    let check = || {
        if started.elapsed() > PEER_TIMEOUT {
            Err("the consumer stalled".to_string())
        } else {
            Ok(())
        }
    };
    if objects == 1 {
        let q = ObjectQueue::<String>::open(c.str_arg(0)?).map_err(err)?;
        c.ready()?;
        for _ in 0..n {
            q.put_timeout(&text, PEER_TIMEOUT).map_err(err)?;
        }
        check()?;
    } else {
        let q = ByteQueue::open(c.str_arg(0)?).map_err(err)?;
        c.ready()?;
        for _ in 0..n {
            q.put_timeout(text.as_bytes(), PEER_TIMEOUT).map_err(err)?;
        }
        check()?;
    }
    c.done();
    Ok(())
}

/// `ObjectQueue<String>` of 16-byte strings.
pub(crate) fn objq_str16(ctx: &Ctx) -> Res<f64> {
    throughput(ctx, 16, true)
}
/// `ObjectQueue<String>` of 1 KiB strings.
pub(crate) fn objq_str1k(ctx: &Ctx) -> Res<f64> {
    throughput(ctx, 1024, true)
}
/// `ByteQueue` of the same 16 bytes.
pub(crate) fn byteq_16(ctx: &Ctx) -> Res<f64> {
    throughput(ctx, 16, false)
}
/// `ByteQueue` of the same 1 KiB.
pub(crate) fn byteq_1k(ctx: &Ctx) -> Res<f64> {
    throughput(ctx, 1024, false)
}
