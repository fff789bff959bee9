//! Pool: Python's map, apply_async, imap, imap_unordered, starmap,
//! maxtasksperchild, close/join/terminate, and what a dying worker costs.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmprim::process::pool::default_chunksize;
use shmprim::{Error, Pool};

shmprim::test_harness!();

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn pid_of(_: u32) -> u32 {
    std::process::id()
}

fn fail_on_seven(x: u32) -> u32 {
    if x == 7 {
        panic!("seven is not allowed");
    }
    x
}

fn abort_on(x: (u32, u32)) -> u32 {
    if x.0 == x.1 {
        std::process::abort();
    }
    x.0
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Whether every one of `pids` is gone from the process table (reaped).
fn all_gone(pids: &[u32]) -> bool {
    common::wait_until(Duration::from_secs(10), || {
        pids.iter()
            .all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    })
}

#[test]
fn map_of_ten_thousand_keeps_order() {
    let pool = Pool::new(4).unwrap();
    let out = pool.map(square, 0..10_000u64).unwrap();
    assert_eq!(out.len(), 10_000);
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, &v)| v == (i as u64) * (i as u64))
    );
    let out = pool.map_chunked(square, 0..1000u64, 1).unwrap();
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, &v)| v == (i as u64) * (i as u64))
    );
    assert_eq!(default_chunksize(10_000, 4), 625);
    assert_eq!(default_chunksize(3, 4), 1);
}

#[test]
fn starmap_unpacks_pairs() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(
        pool.starmap(add, [(1, 2), (3, 4), (5, 6)]).unwrap(),
        [3, 7, 11]
    );
}

#[test]
fn apply_and_apply_async_callbacks_run_in_the_parent() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.apply(square, 9).unwrap(), 81);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for x in 0..20u32 {
        let (s, e) = (Arc::clone(&seen), Arc::clone(&errors));
        handles.push(
            pool.apply_async_with(
                fail_on_seven,
                x,
                move |v| s.lock().unwrap().push((v, std::process::id())),
                move |err| e.lock().unwrap().push(err.to_string()),
            )
            .unwrap(),
        );
    }
    for (x, h) in handles.iter().enumerate() {
        assert!(h.wait_timeout(Duration::from_secs(20)).is_ok());
        assert!(h.ready());
        if x == 7 {
            assert_eq!(h.successful(), Some(false));
            assert!(
                matches!(h.get(), Err(Error::Panicked { message }) if message == "seven is not allowed")
            );
        } else {
            assert_eq!(h.get().unwrap(), x as u32);
        }
    }
    // Callbacks run before the result is marked ready, in this process.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 19);
    assert!(seen.iter().all(|&(_, pid)| pid == std::process::id()));
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("seven is not allowed"), "{}", errors[0]);
    // The worker that panicked serves on: the pool still has two.
    assert_eq!(pool.map(square, 0..10u64).unwrap()[9], 81);
}

#[test]
fn get_timeout_times_out_on_a_slow_task() {
    let pool = Pool::new(1).unwrap();
    let h = pool.apply_async(nap, 2000).unwrap();
    let t = Instant::now();
    assert!(matches!(
        h.get_timeout(Duration::from_millis(100)),
        Err(Error::Timeout { .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(!h.ready());
    assert_eq!(h.successful(), None);
}

#[test]
fn imap_over_an_endless_iterator_is_lazy_and_ordered() {
    let pool = Pool::new(2).unwrap();
    let fed = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&fed);
    let endless = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let got: Vec<u64> = pool
        .imap(square, endless, 3)
        .unwrap()
        .take(500)
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, (0..500u64).map(|x| x * x).collect::<Vec<_>>());
    // Only a window beyond what was read was ever pulled from the input.
    let pulled = fed.load(Ordering::Relaxed);
    assert!(pulled < 500 + 200, "pulled {pulled} items for 500 results");
}

#[test]
fn imap_unordered_yields_every_result_once() {
    let pool = Pool::new(3).unwrap();
    let mut got: Vec<u64> = pool
        .imap_unordered(square, 0..2000u64, 7)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..2000u64).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn max_tasks_per_child_recycles_workers() {
    let pool = Pool::builder()
        .workers(2)
        .max_tasks_per_child(5)
        .build()
        .unwrap();
    let pids = pool.map_chunked(pid_of, 0..60u32, 1).unwrap();
    let distinct: std::collections::BTreeSet<u32> = pids.iter().copied().collect();
    // 60 tasks at 5 per worker: at least 12 workers took part.
    assert!(
        distinct.len() >= 12,
        "only {} distinct workers",
        distinct.len()
    );
    assert!(!distinct.contains(&std::process::id()));
}

#[test]
fn close_join_and_terminate() {
    let pool = Pool::new(2).unwrap();
    let pending = pool.map_async(square, 0..100u64, Some(10)).unwrap();
    pool.close();
    assert!(matches!(pool.apply(square, 1), Err(Error::Closed { .. })));
    pool.join().unwrap();
    // Tasks queued before close still complete.
    assert_eq!(pending.get().unwrap()[99], 99 * 99);
    assert!(pool.worker_pids().is_empty());

    let pool = Pool::new(2).unwrap();
    assert!(common::wait_until(Duration::from_secs(20), || pool
        .worker_pids()
        .len()
        == 2));
    let pids = pool.worker_pids();
    assert!(pool.join().is_err(), "join on an open pool is refused");
    let slow = pool.apply_async(nap, 30_000).unwrap();
    let t = Instant::now();
    pool.terminate();
    pool.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(matches!(slow.get(), Err(Error::Closed { .. })));
    assert!(all_gone(&pids), "terminated workers still exist");
}

#[test]
fn drop_leaves_no_child() {
    let pids = {
        let pool = Pool::new(3).unwrap();
        assert!(common::wait_until(Duration::from_secs(20), || pool
            .worker_pids()
            .len()
            == 3));
        let _busy = pool.apply_async(nap, 30_000).unwrap();
        pool.worker_pids()
    };
    assert_eq!(pids.len(), 3);
    assert!(all_gone(&pids), "a worker outlived its pool");
}

#[test]
fn an_aborting_task_fails_alone_and_the_pool_carries_on() {
    let pool = Pool::new(2).unwrap();
    let each = pool
        .map_async(abort_on, (0..50u32).map(|x| (x, 17)), Some(1))
        .unwrap()
        .each();
    for (x, r) in each.iter().enumerate() {
        if x == 17 {
            match r {
                Err(Error::WorkerDied { exitcode, pid }) => {
                    assert_eq!(*exitcode, -libc::SIGABRT);
                    assert!(*pid > 0);
                }
                other => panic!("task 17: expected WorkerDied, got {other:?}"),
            }
        } else {
            assert_eq!(*r.as_ref().unwrap(), x as u32);
        }
    }
    assert!(common::wait_until(Duration::from_secs(20), || pool
        .worker_pids()
        .len()
        == 2));
}

#[test]
fn retries_run_a_dead_workers_task_again() {
    let pool = Pool::builder().workers(2).retries(1).build().unwrap();
    // The task aborts on every try: it runs twice, then fails.
    let r = pool.apply(abort_on, (3, 3));
    assert!(matches!(r, Err(Error::WorkerDied { .. })), "{r:?}");
}

#[test]
fn a_task_over_its_timeout_kills_its_worker_and_times_out() {
    let pool = Pool::builder()
        .workers(2)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let slow = pool.apply_async(nap, 20_000).unwrap();
    let quick = pool.apply_async(nap, 10).unwrap();
    let t = Instant::now();
    assert!(matches!(slow.get(), Err(Error::Timeout { .. })));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(quick.get().unwrap(), 10);
    assert!(common::wait_until(Duration::from_secs(20), || pool
        .worker_pids()
        .len()
        == 2));
}

#[test]
fn oversized_tasks_and_bad_settings_are_refused() {
    assert!(matches!(Pool::new(0), Err(Error::InvalidArgument { .. })));
    let pool = Pool::builder()
        .workers(1)
        .max_message(1024)
        .queue_capacity(4096)
        .build()
        .unwrap();
    let big = vec![0u8; 4096];
    assert!(matches!(
        pool.apply(std::convert::identity::<Vec<u8>>, big),
        Err(Error::InvalidArgument { .. })
    ));
}

fn kilobyte(x: u16) -> Vec<u8> {
    vec![x as u8; 1000]
}

#[test]
fn chunks_and_results_larger_than_a_message_are_split() {
    let pool = Pool::builder()
        .workers(2)
        .max_message(4096)
        .queue_capacity(16384)
        .build()
        .unwrap();
    // Python's default chunksize here is 2500 items, 30 KB of arguments: the
    // chunks are cut to fit a message.
    let out = pool.map(square, 0..20_000u64).unwrap();
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, &v)| v == (i as u64) * (i as u64))
    );
    // Ten results of 1000 bytes each do not fit one 4096-byte message: they
    // come back in several.
    let out = pool.map_chunked(kilobyte, 0..40u16, 10).unwrap();
    for (i, v) in out.iter().enumerate() {
        assert_eq!(v.len(), 1000);
        assert!(v.iter().all(|&b| b == i as u8));
    }
    // One result too big for any message fails alone.
    let pool = Pool::builder()
        .workers(1)
        .max_message(512)
        .queue_capacity(4096)
        .build()
        .unwrap();
    let each = pool.map_async(kilobyte, 0..3u16, Some(3)).unwrap().each();
    assert_eq!(each.len(), 3);
    assert!(
        each.iter().all(
            |r| matches!(r, Err(Error::TaskFailed { detail }) if detail.contains("max_message"))
        )
    );
}

/// In a child: builds a pool, publishes its workers' pids in the segment
/// named `name`, and waits to be killed.
fn pool_owner(name: String) {
    let seg = shmprim::Segment::open(&name).unwrap();
    let pool = Pool::new(2).unwrap();
    assert!(common::wait_until(Duration::from_secs(20), || pool
        .worker_pids()
        .len()
        == 2));
    for (i, pid) in pool.worker_pids().into_iter().enumerate() {
        common::word(&seg, i).store(pid, Ordering::Release);
    }
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn workers_die_with_their_sigkilled_parent() {
    let name = common::ShmName::new("pool-owner");
    let seg = shmprim::Segment::create(&name, 64).unwrap();
    let mut owner = shmprim::process::Builder::new()
        .daemon(true)
        .spawn(pool_owner, name.to_string())
        .unwrap();
    let w = |i| common::word(&seg, i).load(Ordering::Acquire);
    assert!(
        common::wait_until(Duration::from_secs(30), || w(0) != 0 && w(1) != 0),
        "the pool's workers never started"
    );
    let pids = [w(0), w(1)];
    owner.kill().unwrap();
    assert_eq!(
        owner.join_timeout(Duration::from_secs(10)).unwrap(),
        Some(-9)
    );
    // Re-parented to init, which reaps them once they die.
    assert!(all_gone(&pids), "workers outlived their SIGKILLed parent");
}

#[test]
fn imap_on_a_closed_pool_ends_with_the_refusal() {
    let pool = Pool::new(1).unwrap();
    pool.close();
    let mut it = pool.imap(square, 0..10u64, 2).unwrap();
    assert!(matches!(it.next(), Some(Err(Error::Closed { .. }))));
    assert!(it.next().is_none());
}
