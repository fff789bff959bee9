//! A pool whose workers are SIGKILLed at random moments loses exactly the
//! task the dead worker was running, runs every other task exactly once, and
//! keeps its number of workers.

mod common;

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use shmprim::{Error, Pool, Segment};

shmprim::test_harness!();

const TASKS: u64 = 10_000;
const WORKERS: usize = 8;

/// In a worker: the segment holding one execution counter per task.
static COUNTERS: OnceLock<Segment> = OnceLock::new();

fn open_counters(name: String) {
    let _ = COUNTERS.set(Segment::open(&name).expect("the counters segment"));
}

/// Counts its own execution, then spins a little so that a kill can land
/// while a task runs.
fn counted(x: u64) -> u64 {
    let seg = COUNTERS.get().expect("the initializer ran");
    common::word(seg, x as usize).fetch_add(1, Ordering::AcqRel);
    let mut acc = x;
    for i in 0..20_000u64 {
        acc = std::hint::black_box(acc.wrapping_mul(31).wrapping_add(i));
    }
    std::hint::black_box(acc);
    x
}

#[test]
fn a_killed_worker_costs_exactly_its_running_task() {
    // 50 rounds take seconds optimised and minutes unoptimised: the debug
    // run does a few, `.ci/run` runs all 50 in release.
    let rounds: u64 = std::env::var("SHMPRIM_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 4 } else { 50 });
    let mut rng = common::Rng(0x9e37_79b9_7f4a_7c15);
    let name = common::ShmName::new("pool-crash");
    let seg = Segment::create(&name, TASKS as usize * 4).unwrap();
    let pool = Pool::builder()
        .workers(WORKERS)
        .initializer(open_counters, name.to_string())
        .unwrap()
        .build()
        .unwrap();
    let mut lost_total = 0;
    for round in 0..rounds {
        for i in 0..TASKS as usize {
            common::word(&seg, i).store(0, Ordering::Relaxed);
        }
        assert!(
            common::wait_until(Duration::from_secs(30), || pool.worker_pids().len()
                == WORKERS),
            "round {round}: the pool did not get back to {WORKERS} workers"
        );
        let pids = pool.worker_pids();
        let victim = pids[rng.below(pids.len() as u64) as usize];
        let delay = Duration::from_micros(rng.below(40_000));
        let pending = pool.map_async(counted, 0..TASKS, Some(1)).unwrap();
        std::thread::sleep(delay);
        // SAFETY: kill with a pid the pool reported as its live worker.
        unsafe { libc::kill(victim as i32, libc::SIGKILL) };
        let (results, waited) = {
            let t = std::time::Instant::now();
            assert!(
                pending.wait_timeout(Duration::from_secs(120)).is_ok(),
                "round {round}: map did not finish"
            );
            (pending.each(), t.elapsed())
        };
        let mut lost = Vec::new();
        for (x, r) in results.iter().enumerate() {
            let runs = common::word(&seg, x).load(Ordering::Acquire);
            match r {
                Ok(v) => {
                    assert_eq!(*v, x as u64);
                    assert_eq!(runs, 1, "round {round}: task {x} ran {runs} times");
                }
                Err(Error::WorkerDied { pid, exitcode }) => {
                    assert_eq!(*pid, victim, "round {round}: task {x} blamed on {pid}");
                    assert_eq!(*exitcode, -9);
                    assert!(runs <= 1, "round {round}: lost task {x} ran {runs} times");
                    lost.push(x);
                }
                Err(e) => panic!("round {round}: task {x}: {e}"),
            }
        }
        assert!(
            lost.len() <= 1,
            "round {round}: {} tasks lost to one death (chunksize 1): {lost:?}",
            lost.len()
        );
        lost_total += lost.len();
        assert!(waited < Duration::from_secs(120));
    }
    assert!(
        common::wait_until(Duration::from_secs(30), || pool.worker_pids().len()
            == WORKERS),
        "the pool did not keep {WORKERS} workers"
    );
    eprintln!("{rounds} rounds: {lost_total} tasks lost to a kill mid-task");
    // A kill that lands between tasks loses nothing; over the rounds some
    // must land inside one, or the test did not test the loss.
    if rounds >= 20 {
        assert!(lost_total > 0, "no kill ever landed on a running task");
    }
}
