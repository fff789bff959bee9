//! The native references of the process figures: a thread pool (std threads
//! and crossbeam-channel, the floor a process pool cannot beat), procspawn's
//! pool, the kernel's own kill-to-wait, and `std::process::Command` starting
//! this executable.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::super::Res;
use crate::Ctx;
use crate::figures::{POOL_TASKS, POOL_WORKERS, PROCESS_STARTS};
use crate::proc::unpinned;

/// `POOL_WORKERS` threads taking task indices from one channel and sending
/// `(index, result)` back on another; the caller puts results in order.
/// Millions of tasks/s.
pub(crate) fn thread_pool_cs1(ctx: &Ctx) -> Res<f64> {
    unpinned(|| thread_pool(ctx))
}

fn thread_pool(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(POOL_TASKS);
    let (task_tx, task_rx) = crossbeam_channel::bounded::<u64>(1024);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<(u64, u64)>(1024);
    let workers: Vec<_> = (0..POOL_WORKERS)
        .map(|_| {
            let (rx, tx) = (task_rx.clone(), done_tx.clone());
            std::thread::spawn(move || {
                for x in rx {
                    if tx.send((x, std::hint::black_box(x))).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(done_tx);
    let t = Instant::now();
    let feeder = std::thread::spawn(move || {
        for x in 0..n {
            if task_tx.send(x).is_err() {
                return;
            }
        }
    });
    let mut out = vec![u64::MAX; n as usize];
    for _ in 0..n {
        let (i, v) = done_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|e| format!("thread pool: {e}"))?;
        out[i as usize] = v;
    }
    let dt = t.elapsed();
    feeder.join().map_err(|_| "feeder panicked")?;
    for w in workers {
        w.join().map_err(|_| "worker panicked")?;
    }
    if out.iter().enumerate().any(|(i, &v)| v != i as u64) {
        return Err("thread pool returned wrong results".into());
    }
    Ok(n as f64 / dt.as_secs_f64() / 1e6)
}

/// Tasks per procspawn run: its pool moves each task through serde over a
/// socket, a few thousand a second.
const PROCSPAWN_TASKS: u64 = 5_000;

/// procspawn's `Pool(2)`: one `spawn` per task (its pool has no map), the
/// handles joined in order. Millions of tasks/s.
pub(crate) fn procspawn_pool_cs1(ctx: &Ctx) -> Res<f64> {
    unpinned(|| {
        let n = ctx.n(PROCSPAWN_TASKS);
        let pool = procspawn::Pool::new(POOL_WORKERS).map_err(|e| format!("procspawn: {e}"))?;
        // Warm up: every worker started and served a task.
        for h in (0..8u64)
            .map(|i| pool.spawn(i, |x: u64| x))
            .collect::<Vec<_>>()
        {
            h.join().map_err(|e| format!("procspawn: {e}"))?;
        }
        let t = Instant::now();
        let handles: Vec<_> = (0..n).map(|i| pool.spawn(i, |x: u64| x)).collect();
        for (i, h) in handles.into_iter().enumerate() {
            if h.join().map_err(|e| format!("procspawn: {e}"))? != i as u64 {
                return Err("procspawn returned a wrong result".into());
            }
        }
        let dt = t.elapsed();
        pool.shutdown();
        Ok(n as f64 / dt.as_secs_f64() / 1e6)
    })
}

/// A sleeping child SIGKILLed: ns until `wait` returns its status.
pub(crate) fn kill_to_wait(_ctx: &Ctx) -> Res<f64> {
    unpinned(kill_to_wait_free)
}

fn kill_to_wait_free() -> Res<f64> {
    let mut child = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("sleep: {e}"))?;
    std::thread::sleep(Duration::from_millis(5));
    let t = Instant::now();
    child.kill().map_err(|e| format!("kill: {e}"))?;
    child.wait().map_err(|e| format!("wait: {e}"))?;
    Ok(t.elapsed().as_nanos() as f64)
}

/// `Command::new(this executable).arg("--version").status()`: ns per process.
pub(crate) fn command_start_wait(ctx: &Ctx) -> Res<f64> {
    unpinned(|| command_start_wait_free(ctx))
}

fn command_start_wait_free(ctx: &Ctx) -> Res<f64> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let n = ctx.n(PROCESS_STARTS);
    let t = Instant::now();
    for _ in 0..n {
        let status = Command::new(&exe)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("spawn: {e}"))?;
        if !status.success() {
            return Err(format!("{} --version: {status}", exe.display()));
        }
    }
    Ok(t.elapsed().as_nanos() as f64 / n as f64)
}
