//! Python's `multiprocessing.Queue`: a round trip through two queues between two
//! Python processes (`benches/py/mp_queue_rtt.py`, run with `python3 -c`), run
//! only when `python3` is on PATH. The script times its own loop and prints
//! nanoseconds per round trip.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::super::Res;
use super::super::proc::{PEER_TIMEOUT, register_pid, unregister_pid};
use crate::Ctx;
use crate::figures::PYTHON_ROUND_TRIPS;

const SCRIPT: &str = include_str!("../../py/mp_queue_rtt.py");

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
    let n = ctx.n(PYTHON_ROUND_TRIPS);
    let child = Command::new("python3")
        .args(["-c", SCRIPT, &n.to_string()])
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
