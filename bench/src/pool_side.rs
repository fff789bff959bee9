//! shmprim's side of the process figures: `Pool.map`, a worker's death seen
//! by its task, and `Process` start + join. The pool's workers and the
//! processes are spawned from this executable, which calls
//! `shmprim::process::init()` first in `main`. Every runner here, and every
//! reference beside it, runs unpinned: workers inherit the caller's CPU mask.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shmprim::process::Process;
use shmprim::{Error, Pool, Value};

use super::Res;
use crate::Ctx;
use crate::figures::{POOL_TASKS, POOL_WORKERS, PROCESS_STARTS};
use crate::proc::{name_prefix, unpinned};

fn ident(x: u64) -> u64 {
    x
}

fn noop(_: ()) {}

fn err(e: Error) -> String {
    e.to_string()
}

/// A pool warmed up: its workers started and have run a task each.
fn warm_pool() -> Res<Pool> {
    let pool = Pool::new(POOL_WORKERS).map_err(err)?;
    pool.map_chunked(ident, 0..1000, 1).map_err(err)?;
    Ok(pool)
}

fn timed_map(ctx: &Ctx, n: u64, chunksize: Option<usize>) -> Res<f64> {
    let pool = warm_pool()?;
    let n = ctx.n(n);
    let t = Instant::now();
    let out = pool
        .map_async(ident, 0..n, chunksize)
        .map_err(err)?
        .get()
        .map_err(err)?;
    let dt = t.elapsed();
    if out.len() as u64 != n || out.iter().enumerate().any(|(i, &v)| v != i as u64) {
        return Err("Pool.map returned wrong results".into());
    }
    Ok(n as f64 / dt.as_secs_f64() / 1e6)
}

/// `Pool(2).map_chunked(ident, 0..n, 1)`: millions of tasks/s.
pub(crate) fn pool_map_cs1(ctx: &Ctx) -> Res<f64> {
    unpinned(|| timed_map(ctx, POOL_TASKS, Some(1)))
}

/// `Pool(2).map(ident, 0..n)`, Python's default chunksize: millions of tasks/s.
pub(crate) fn pool_map_default(ctx: &Ctx) -> Res<f64> {
    unpinned(|| timed_map(ctx, POOL_TASKS * 20, None))
}

/// A task that reports its worker's pid in the Value named `name` and waits
/// to be killed.
fn report_and_wait(name: String) {
    if let Ok(v) = Value::<u32>::open(&name) {
        v.store(std::process::id());
    }
    std::thread::sleep(Duration::from_secs(30));
}

static VICTIMS: AtomicUsize = AtomicUsize::new(0);

/// A running task's worker SIGKILLed: ns until its `AsyncResult` returns
/// `WorkerDied`.
pub(crate) fn worker_death(_ctx: &Ctx) -> Res<f64> {
    unpinned(worker_death_pinned_off)
}

fn worker_death_pinned_off() -> Res<f64> {
    let name = format!(
        "{}victim-{}",
        name_prefix(),
        VICTIMS.fetch_add(1, Ordering::Relaxed)
    );
    let value = Value::create(&name, 0u32).map_err(err)?;
    let result = (|| {
        let pool = Pool::new(1).map_err(err)?;
        let task = pool
            .apply_async(report_and_wait, name.clone())
            .map_err(err)?;
        let end = Instant::now() + Duration::from_secs(20);
        let pid = loop {
            let pid = value.load();
            if pid != 0 {
                break pid;
            }
            if Instant::now() > end {
                return Err("the task never started".to_string());
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let t = Instant::now();
        // SAFETY: kill(2) on the pool worker that reported its pid.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        match task.get_timeout(Duration::from_secs(20)) {
            Err(Error::WorkerDied {
                pid: p,
                exitcode: -9,
            }) if p == pid => Ok(t.elapsed().as_nanos() as f64),
            other => Err(format!("expected WorkerDied from {pid}, got {other:?}")),
        }
    })();
    let _ = Value::<u32>::unlink(&name);
    result
}

/// `Process::spawn(noop, ()).join()`: ns per process.
pub(crate) fn process_start_join(ctx: &Ctx) -> Res<f64> {
    unpinned(|| process_start_join_free(ctx))
}

fn process_start_join_free(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(PROCESS_STARTS);
    let t = Instant::now();
    for _ in 0..n {
        Process::spawn(noop, ()).map_err(err)?.join().map_err(err)?;
    }
    Ok(t.elapsed().as_nanos() as f64 / n as f64)
}
