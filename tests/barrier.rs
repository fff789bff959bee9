//! Barrier: phases across processes, indices and leaders, timeouts that break
//! it, abort and reset, a killed party that breaks it, and parameter checks.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{ShmName, wait_until, word};
use shmprim::barrier::MAX_PARTIES;
use shmprim::segment::HEADER_SIZE;
use shmprim::{Barrier, Error, Mismatch, Segment, Semaphore};

const LIMIT: Duration = Duration::from_secs(20);

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "phases" => child_phases(&args[0], &args[1], args[2].parse().unwrap()),
        "wait_report" => child_wait_report(&args[0], &args[1]),
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

// ---------------------------------------------------------------- phases

const PROCS: usize = 4;
const PHASES: u32 = 100;
// Control words: 0..4 = each process's phase; LEADERS + k = index-0 count of
// phase k.
const LEADERS: usize = 8;

fn child_phases(b_name: &str, ctl_name: &str, me: usize) {
    let barrier = Barrier::open(b_name).unwrap();
    let ctl = Segment::open(ctl_name).unwrap();
    for k in 1..=PHASES {
        word(&ctl, me).store(k, Ordering::SeqCst);
        let index = barrier.wait_timeout(LIMIT).unwrap();
        assert!(index < PROCS, "index {index}");
        if index == 0 {
            word(&ctl, LEADERS + k as usize).fetch_add(1, Ordering::SeqCst);
        }
        for other in 0..PROCS {
            let p = word(&ctl, other).load(Ordering::SeqCst);
            assert!(
                p == k || p == k + 1,
                "after wait {k}, process {other} is at phase {p}"
            );
        }
    }
}

#[test]
fn four_processes_run_100_phases_with_none_a_phase_ahead() {
    let name = ShmName::new("barrier_phases");
    let ctl_name = ShmName::new("barrier_phases_ctl");
    let _barrier = Barrier::create(&name, PROCS as u32).unwrap();
    let ctl = Segment::create(&ctl_name, 4 * (LEADERS + PHASES as usize + 1)).unwrap();
    let mut children: Vec<_> = (0..PROCS)
        .map(|i| spawn("phases", &[&name, &ctl_name, &i.to_string()]))
        .collect();
    for c in &mut children {
        c.expect_success(Duration::from_secs(60));
    }
    for k in 1..=PHASES as usize {
        assert_eq!(
            word(&ctl, LEADERS + k).load(Ordering::SeqCst),
            1,
            "phase {k}: not exactly one index 0"
        );
    }
}

#[test]
fn every_generation_gets_distinct_indices_from_threads() {
    const PARTIES: usize = 3;
    const GENERATIONS: usize = 30;
    let barrier = Barrier::anonymous(PARTIES as u32).unwrap();
    let results: Vec<Vec<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PARTIES)
            .map(|_| {
                s.spawn(|| {
                    (0..GENERATIONS)
                        .map(|_| barrier.wait_timeout(LIMIT).unwrap())
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for g in 0..GENERATIONS {
        let mut indices: Vec<usize> = results.iter().map(|r| r[g]).collect();
        indices.sort_unstable();
        assert_eq!(indices, [0, 1, 2], "generation {g}");
    }
    assert_eq!(barrier.n_waiting(), 0);
}

#[test]
fn barrier_of_one_never_blocks() {
    let barrier = Barrier::anonymous(1).unwrap();
    for _ in 0..3 {
        assert_eq!(barrier.wait().unwrap(), 0);
    }
}

// ---------------------------------------------------------------- breaking

// Result codes a child writes to control word 0.
const OK: u32 = 1;
const BROKEN: u32 = 2;
const TIMEOUT: u32 = 3;
const OTHER: u32 = 4;

fn code(r: &shmprim::Result<usize>) -> u32 {
    match r {
        Ok(_) => OK,
        Err(Error::BrokenBarrier { .. }) => BROKEN,
        Err(Error::Timeout { .. }) => TIMEOUT,
        Err(_) => OTHER,
    }
}

fn child_wait_report(b_name: &str, ctl_name: &str) {
    let barrier = Barrier::open(b_name).unwrap();
    let ctl = Segment::open(ctl_name).unwrap();
    let r = barrier.wait_timeout(LIMIT);
    word(&ctl, 0).store(code(&r), Ordering::SeqCst);
}

#[test]
fn timeout_returns_on_time_and_breaks_the_barrier_for_other_waiters() {
    let name = ShmName::new("barrier_timeout");
    let ctl_name = ShmName::new("barrier_timeout_ctl");
    let barrier = Barrier::create(&name, 3).unwrap();
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    let mut other = spawn("wait_report", &[&name, &ctl_name]);
    assert!(wait_until(LIMIT, || barrier.n_waiting() == 1));

    let asked = Duration::from_millis(200);
    let start = Instant::now();
    let r = barrier.wait_timeout(asked);
    let took = start.elapsed();
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(took >= asked, "returned early: {took:?}");
    assert!(
        took < asked + Duration::from_millis(500),
        "returned late: {took:?}"
    );

    other.expect_success(LIMIT);
    assert_eq!(word(&ctl, 0).load(Ordering::SeqCst), BROKEN);
    assert!(barrier.is_broken());
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier { .. })));
}

#[test]
fn abort_frees_waiters_and_keeps_the_barrier_broken_until_reset() {
    let barrier = Barrier::anonymous(3).unwrap();
    std::thread::scope(|s| {
        let waiters: Vec<_> = (0..2).map(|_| s.spawn(|| barrier.wait())).collect();
        assert!(wait_until(LIMIT, || barrier.n_waiting() == 2));
        barrier.abort();
        for w in waiters {
            assert!(matches!(
                w.join().unwrap(),
                Err(Error::BrokenBarrier { .. })
            ));
        }
    });
    assert!(barrier.is_broken());
    assert_eq!(barrier.n_waiting(), 0);
    assert!(matches!(
        barrier.wait_timeout(LIMIT),
        Err(Error::BrokenBarrier { .. })
    ));
    barrier.reset();
    assert!(!barrier.is_broken());
    run_one_generation(&barrier);
}

#[test]
fn reset_frees_waiters_and_the_barrier_is_usable_again() {
    let barrier = Barrier::anonymous(3).unwrap();
    std::thread::scope(|s| {
        let waiters: Vec<_> = (0..2).map(|_| s.spawn(|| barrier.wait())).collect();
        assert!(wait_until(LIMIT, || barrier.n_waiting() == 2));
        barrier.reset();
        for w in waiters {
            assert!(matches!(
                w.join().unwrap(),
                Err(Error::BrokenBarrier { .. })
            ));
        }
    });
    assert!(!barrier.is_broken());
    assert_eq!(barrier.n_waiting(), 0);
    run_one_generation(&barrier);
}

/// Three threads pass the (3-party) barrier, with indices 0, 1 and 2.
fn run_one_generation(barrier: &Barrier) {
    let mut indices: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| barrier.wait_timeout(LIMIT).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    indices.sort_unstable();
    assert_eq!(indices, [0, 1, 2]);
}

/// A party SIGKILLed inside `wait` breaks the barrier for the others within
/// about one liveness slice, instead of staying counted while they wait out
/// their timeouts; `reset` then makes it usable again.
#[test]
fn a_party_killed_while_waiting_breaks_the_barrier_for_the_others() {
    let name = ShmName::new("barrier_killed");
    let ctl_name = ShmName::new("barrier_killed_ctl");
    let barrier = Barrier::create(&name, 3).unwrap();
    let _ctl = Segment::create(&ctl_name, 64).unwrap();

    // Killed before the survivor arrives: the survivor's wait sees it.
    let mut victim = spawn("wait_report", &[&name, &ctl_name]);
    assert!(wait_until(LIMIT, || barrier.n_waiting() == 1));
    victim.kill();
    let t = Instant::now();
    let r = barrier.wait_timeout(LIMIT);
    assert!(matches!(r, Err(Error::BrokenBarrier { .. })), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    barrier.reset();
    run_one_generation(&barrier);

    // Killed while the survivor already sleeps in the same generation.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let b = Barrier::open(&name).unwrap();
            let r = b.wait_timeout(LIMIT);
            (r, Instant::now())
        });
        assert!(wait_until(LIMIT, || barrier.n_waiting() == 1));
        let mut victim = spawn("wait_report", &[&name, &ctl_name]);
        assert!(wait_until(LIMIT, || barrier.n_waiting() == 2));
        victim.kill();
        let killed = Instant::now();
        let (r, woke) = waiter.join().unwrap();
        assert!(matches!(r, Err(Error::BrokenBarrier { .. })), "{r:?}");
        assert!(
            woke - killed < Duration::from_secs(5),
            "{:?}",
            woke - killed
        );
    });
    barrier.reset();
    run_one_generation(&barrier);
}

// ---------------------------------------------------------------- parameters

#[test]
fn open_reads_parties_and_open_or_create_checks_them() {
    let name = ShmName::new("barrier_params");
    let _barrier = Barrier::create(&name, 4).unwrap();
    assert_eq!(Barrier::open(&name).unwrap().parties(), 4);
    let (b, how) = Barrier::open_or_create(&name, 4).unwrap();
    assert_eq!((b.parties(), how), (4, shmprim::Disposition::Opened));
    let err = Barrier::open_or_create(&name, 5).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Incompatible {
                what: Mismatch::Parameter,
                ..
            }
        ),
        "{err}"
    );
    let err = Semaphore::open(&name).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Incompatible {
                what: Mismatch::Kind,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn zero_or_too_many_parties_are_invalid_arguments() {
    assert!(matches!(
        Barrier::anonymous(0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Barrier::anonymous(MAX_PARTIES + 1),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(
        Barrier::anonymous(MAX_PARTIES).unwrap().parties(),
        MAX_PARTIES
    );
}

/// Overwrites bytes of the segment file, as a buggy or hostile process could.
fn patch(name: &ShmName, offset: usize, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(name.path())
        .unwrap();
    f.seek(SeekFrom::Start(offset as u64)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn corrupted_state_is_reported_never_trusted() {
    // State layout: word at 0, waiters at 4, parties at 8 of the data area.
    const WORD: usize = HEADER_SIZE;
    const PARTIES: usize = HEADER_SIZE + 8;
    let name = ShmName::new("barrier_corrupt");
    let barrier = Barrier::create(&name, 3).unwrap();
    let is_corrupted = |r: &shmprim::Result<usize>| matches!(r, Err(e @ Error::Corrupted { .. }) if e.to_string().contains(name.as_str()));

    patch(&name, PARTIES, &7u32.to_ne_bytes());
    let err = Barrier::open(&name).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");

    patch(&name, PARTIES, &0u32.to_ne_bytes());
    let r = barrier.wait_timeout(Duration::from_millis(10));
    assert!(is_corrupted(&r), "{r:?}");

    patch(&name, PARTIES, &3u32.to_ne_bytes());
    patch(&name, WORD, &4000u32.to_ne_bytes()); // count 4000 of 3 parties
    let r = barrier.wait_timeout(Duration::from_millis(10));
    assert!(is_corrupted(&r), "{r:?}");

    barrier.reset();
    run_one_generation(&barrier);
}

// ---------------------------------------------------------------- action

/// Python's `action`: run exactly once per trip, by the last party, before
/// any party is released (no party sees a generation's end without its
/// action having run); the index-0 party is unaffected.
#[test]
fn the_action_runs_once_per_trip_before_any_party_is_released() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    let name = ShmName::new("barrier_action");
    let runs = Arc::new(AtomicU64::new(0));
    let _owner = Barrier::create(&name, 3).unwrap();
    const ROUNDS: u64 = 50;
    std::thread::scope(|s| {
        for _ in 0..3 {
            let runs = runs.clone();
            let name = &name;
            s.spawn(move || {
                let counter = runs.clone();
                let b = Barrier::open(name).unwrap().with_action(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                });
                for round in 1..=ROUNDS {
                    b.wait_timeout(LIMIT).unwrap();
                    // Released only after this trip's action ran.
                    assert!(runs.load(Ordering::SeqCst) >= round, "round {round}");
                }
            });
        }
    });
    assert_eq!(runs.load(Ordering::SeqCst), ROUNDS, "one action per trip");
}

/// An action that panics breaks the barrier for the other parties, and the
/// panic goes on in the party that ran it.
#[test]
fn a_panicking_action_breaks_the_barrier() {
    let name = ShmName::new("barrier_action_panic");
    let b = Barrier::create(&name, 2).unwrap();
    std::thread::scope(|s| {
        let other = s.spawn(|| Barrier::open(&name).unwrap().wait_timeout(LIMIT));
        assert!(wait_until(LIMIT, || b.n_waiting() == 1));
        let b = Barrier::open(&name)
            .unwrap()
            .with_action(|| panic!("action failed"));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.wait_timeout(LIMIT)));
        assert!(
            r.is_err(),
            "the panic reaches the party that ran the action"
        );
        assert!(matches!(
            other.join().unwrap(),
            Err(Error::BrokenBarrier { .. })
        ));
    });
    assert!(b.is_broken());
}

/// Python's `timeout`: `wait` without one of its own waits at most the
/// barrier's default, then breaks it.
#[test]
fn wait_uses_the_default_timeout() {
    let name = ShmName::new("barrier_default_timeout");
    let b = Barrier::create(&name, 2)
        .unwrap()
        .with_timeout(Duration::from_millis(50));
    assert_eq!(b.timeout(), Some(Duration::from_millis(50)));
    let start = Instant::now();
    assert!(matches!(b.wait(), Err(Error::Timeout { .. })));
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(b.is_broken());
}
