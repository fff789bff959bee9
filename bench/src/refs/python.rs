//! Python's `multiprocessing`: a round trip through two queues between two
//! Python processes (`py/mp_queue_rtt.py`), a queue's throughput of strings
//! (`py/mp_queue_tput.py`), `Pool.map` and
//! `ProcessPoolExecutor.map`, and `Process().start(); join()` (`py/mp_pool.py`),
//! each run with `python3 -c` only when `python3` is on PATH. The scripts time
//! their own loops and print their figure's unit.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::super::Res;
use super::super::proc::{PEER_TIMEOUT, register_pid, unregister_pid};
use crate::Ctx;
use crate::figures::{
    OBJECT_MSGS, POOL_PYTHON_TASKS, POOL_WORKERS, PROCESS_STARTS, PYTHON_ROUND_TRIPS,
};

const SCRIPT: &str = include_str!("../../py/mp_queue_rtt.py");
const POOL_SCRIPT: &str = include_str!("../../py/mp_pool.py");
const TPUT_SCRIPT: &str = include_str!("../../py/mp_queue_tput.py");

/// Whether `python3` runs and has `multiprocessing` (checked once).
pub(crate) fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        Command::new("python3")
            .args(["-c", "import multiprocessing"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `multiprocessing.Queue` round trip: ns.
pub(crate) fn mp_queue(ctx: &Ctx) -> Res<f64> {
    run(SCRIPT, &[&ctx.n(PYTHON_ROUND_TRIPS).to_string()])
}

/// `multiprocessing.Queue` of `len`-character strings, one producer process:
/// Mmsg/s.
fn mp_queue_strings(ctx: &Ctx, len: usize) -> Res<f64> {
    let n = ctx.n(OBJECT_MSGS / 100).to_string();
    run(TPUT_SCRIPT, &[&n, &len.to_string()])
}

/// `multiprocessing.Queue` of 16-character strings: Mmsg/s.
pub(crate) fn mp_queue_str16(ctx: &Ctx) -> Res<f64> {
    mp_queue_strings(ctx, 16)
}

/// `multiprocessing.Queue` of 1024-character strings: Mmsg/s.
pub(crate) fn mp_queue_str1k(ctx: &Ctx) -> Res<f64> {
    mp_queue_strings(ctx, 1024)
}

fn pool_script(mode: &str, n: u64, chunksize: u64) -> Res<f64> {
    let args = [
        mode.to_owned(),
        n.to_string(),
        chunksize.to_string(),
        POOL_WORKERS.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // A pool's processes must spread over the cores: unpinned, as shmprim's
    // pool beside it.
    super::super::proc::unpinned(|| run(POOL_SCRIPT, &args))
}

/// `Pool(2).map(ident, range(n), chunksize=1)`: millions of tasks/s.
pub(crate) fn pool_map_cs1(ctx: &Ctx) -> Res<f64> {
    pool_script("pool", ctx.n(POOL_PYTHON_TASKS), 1)
}

/// `ProcessPoolExecutor(2).map(ident, range(n), chunksize=1)`: millions of tasks/s.
pub(crate) fn executor_map_cs1(ctx: &Ctx) -> Res<f64> {
    pool_script("executor", ctx.n(POOL_PYTHON_TASKS / 4), 1)
}

/// `Pool(2).map(ident, range(n))` with Python's default chunksize: millions of tasks/s.
pub(crate) fn pool_map_default(ctx: &Ctx) -> Res<f64> {
    pool_script("pool", ctx.n(POOL_PYTHON_TASKS * 40), 0)
}

/// `Process(target=noop).start(); join()`: ns per process.
pub(crate) fn process_start_join(ctx: &Ctx) -> Res<f64> {
    pool_script("process", ctx.n(PROCESS_STARTS), 0)
}

fn run(script: &str, args: &[&str]) -> Res<f64> {
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    // Killed by the Ctrl-C handler like every other child (its own child ends by
    // itself: every get in the script has a timeout).
    let reg = register_pid(child.id());
    let result = wait_and_parse(child);
    unregister_pid(reg);
    result
}

fn wait_and_parse(mut child: std::process::Child) -> Res<f64> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > PEER_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("python3 did not finish in time".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!("python3 failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .map_err(|_| format!("python3 printed {text:?}"))
}
