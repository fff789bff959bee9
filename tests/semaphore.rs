//! Semaphore: admission across processes, bounds, timeouts, a killed waiter,
//! kind checks, and random operation sequences against a counter model.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{ShmName, wait_until, word};
use proptest::prelude::*;
use shmprim::segment::HEADER_SIZE;
use shmprim::semaphore::{SemaphoreState, UNBOUNDED};
use shmprim::{Deadline, Error, Event, Mismatch, Segment, Semaphore};

const LIMIT: Duration = Duration::from_secs(20);

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "admission" => child_admission(&args[0], &args[1], args[2].parse().unwrap()),
        "block_acquire" => child_block_acquire(&args[0], &args[1]),
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

// ---------------------------------------------------------------- admission

const WORKERS: usize = 5;
const ROUNDS: usize = 40;
// Control words: 0 = workers started, 1 = inside now, 2 = most ever inside.
const STARTED: usize = 0;
const INSIDE: usize = 1;
const MAX_INSIDE: usize = 2;

fn child_admission(sem_name: &str, ctl_name: &str, rounds: usize) {
    let sem = Semaphore::open(sem_name).unwrap();
    let ctl = Segment::open(ctl_name).unwrap();
    word(&ctl, STARTED).fetch_add(1, Ordering::SeqCst);
    assert!(wait_until(LIMIT, || {
        word(&ctl, STARTED).load(Ordering::SeqCst) == WORKERS as u32
    }));
    for _ in 0..rounds {
        sem.acquire_timeout(LIMIT).unwrap();
        let now = word(&ctl, INSIDE).fetch_add(1, Ordering::SeqCst) + 1;
        word(&ctl, MAX_INSIDE).fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_micros(300));
        word(&ctl, INSIDE).fetch_sub(1, Ordering::SeqCst);
        sem.release(1).unwrap();
    }
}

#[test]
fn semaphore_of_two_never_admits_a_third_process() {
    let name = ShmName::new("sem_admission");
    let ctl_name = ShmName::new("sem_admission_ctl");
    let sem = Semaphore::create(&name, 2).unwrap();
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    let mut children: Vec<_> = (0..WORKERS)
        .map(|_| spawn("admission", &[&name, &ctl_name, &ROUNDS.to_string()]))
        .collect();
    for c in &mut children {
        c.expect_success(Duration::from_secs(60));
    }
    let max = word(&ctl, MAX_INSIDE).load(Ordering::SeqCst);
    assert!(max <= 2, "{max} processes were inside a semaphore of 2");
    assert_eq!(max, 2, "never two inside at once: it behaved like a mutex");
    assert_eq!(sem.value(), 2, "every permit came back");
}

// ---------------------------------------------------------------- a killed waiter

fn child_block_acquire(sem_name: &str, ctl_name: &str) {
    let sem = Semaphore::open(sem_name).unwrap();
    let ctl = Segment::open(ctl_name).unwrap();
    word(&ctl, 0).fetch_add(1, Ordering::SeqCst);
    sem.acquire_timeout(LIMIT).unwrap();
    word(&ctl, 1).fetch_add(1, Ordering::SeqCst);
}

#[test]
fn semaphore_keeps_working_after_a_waiter_is_killed_in_acquire() {
    let name = ShmName::new("sem_killed");
    let ctl_name = ShmName::new("sem_killed_ctl");
    let sem = Semaphore::create(&name, 0).unwrap();
    let ctl = Segment::create(&ctl_name, 64).unwrap();

    let mut victim = spawn("block_acquire", &[&name, &ctl_name]);
    assert!(wait_until(LIMIT, || word(&ctl, 0).load(Ordering::SeqCst) == 1));
    std::thread::sleep(Duration::from_millis(100)); // let it fall asleep
    victim.kill();
    assert_eq!(
        word(&ctl, 1).load(Ordering::SeqCst),
        0,
        "victim got no permit"
    );

    let mut survivor = spawn("block_acquire", &[&name, &ctl_name]);
    assert!(wait_until(LIMIT, || word(&ctl, 0).load(Ordering::SeqCst) == 2));
    std::thread::sleep(Duration::from_millis(50));
    sem.release(1).unwrap();
    survivor.expect_success(LIMIT);
    assert_eq!(word(&ctl, 1).load(Ordering::SeqCst), 1);
    assert_eq!(sem.value(), 0, "the survivor took the one permit");
    sem.release(1).unwrap();
    assert!(sem.try_acquire());
}

// ---------------------------------------------------------------- timeouts

#[test]
fn acquire_timeout_on_an_empty_semaphore_returns_timeout_on_time() {
    let sem = Semaphore::anonymous(0, UNBOUNDED).unwrap();
    let asked = Duration::from_millis(200);
    let start = Instant::now();
    let r = sem.acquire_timeout(asked);
    let took = start.elapsed();
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(took >= asked, "returned early: {took:?}");
    assert!(
        took < asked + Duration::from_millis(500),
        "returned late: {took:?}"
    );
    assert_eq!(sem.value(), 0);
}

#[test]
fn release_from_another_thread_wakes_a_blocked_acquirer() {
    let sem = Semaphore::anonymous(0, UNBOUNDED).unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| sem.acquire_timeout(LIMIT));
        std::thread::sleep(Duration::from_millis(50));
        sem.release(1).unwrap();
        assert!(t.join().unwrap().is_ok());
    });
    assert_eq!(sem.value(), 0);
}

#[test]
fn release_of_two_wakes_two_blocked_acquirers() {
    let sem = Semaphore::anonymous(0, UNBOUNDED).unwrap();
    std::thread::scope(|s| {
        let start = Instant::now();
        let ts: Vec<_> = (0..2)
            .map(|_| s.spawn(|| sem.acquire_timeout(Duration::from_secs(5))))
            .collect();
        std::thread::sleep(Duration::from_millis(50)); // both asleep by now
        sem.release(2).unwrap();
        for t in ts {
            assert!(t.join().unwrap().is_ok());
        }
        // Had only one been woken, the other would have slept to its timeout.
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    });
    assert_eq!(sem.value(), 0);
}

#[test]
fn try_acquire_takes_only_available_permits() {
    let sem = Semaphore::anonymous(2, UNBOUNDED).unwrap();
    assert!(sem.try_acquire());
    assert!(sem.try_acquire());
    assert!(!sem.try_acquire());
    assert_eq!(sem.value(), 0);
    assert!(matches!(
        sem.acquire_deadline(Deadline::now()),
        Err(Error::Timeout { .. })
    ));
    sem.release(1).unwrap();
    assert!(sem.acquire_deadline(Deadline::now()).is_ok());
}

#[test]
fn guard_gives_its_permit_back_when_dropped() {
    let sem = Semaphore::anonymous(1, 1).unwrap();
    {
        let _g = sem.acquire_guard();
        assert_eq!(sem.value(), 0);
        assert!(!sem.try_acquire());
    }
    assert_eq!(sem.value(), 1);
}

// ---------------------------------------------------------------- bounds

#[test]
fn bounded_release_above_the_bound_is_overflow_and_changes_nothing() {
    let sem = Semaphore::anonymous(2, 2).unwrap();
    assert_eq!(sem.bound(), Some(2));
    assert!(matches!(
        sem.release(1),
        Err(Error::Overflow { bound: 2, .. })
    ));
    assert_eq!(sem.value(), 2);
    sem.acquire();
    assert!(matches!(
        sem.release(2),
        Err(Error::Overflow { bound: 2, .. })
    ));
    assert_eq!(sem.value(), 1);
    sem.release(1).unwrap();
    assert_eq!(sem.value(), 2);
}

#[test]
fn unbounded_release_past_u32_max_is_overflow_not_wraparound() {
    let sem = Semaphore::anonymous(u32::MAX - 1, UNBOUNDED).unwrap();
    assert_eq!(sem.bound(), None);
    sem.release(1).unwrap();
    assert!(matches!(
        sem.release(1),
        Err(Error::Overflow {
            bound: u32::MAX,
            ..
        })
    ));
    assert_eq!(sem.value(), u32::MAX);
}

#[test]
fn release_of_zero_and_value_above_bound_are_invalid_arguments() {
    let sem = Semaphore::anonymous(0, UNBOUNDED).unwrap();
    assert!(matches!(sem.release(0), Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        Semaphore::anonymous(3, 2),
        Err(Error::InvalidArgument { .. })
    ));
}

// ---------------------------------------------------------------- naming and kinds

#[test]
fn open_reads_value_and_bound_of_the_creator() {
    let name = ShmName::new("sem_open");
    let sem = Semaphore::create_bounded(&name, 1, 3).unwrap();
    let other = Semaphore::open(&name).unwrap();
    assert_eq!(other.bound(), Some(3));
    other.release(2).unwrap();
    assert_eq!(sem.value(), 3);
    assert!(matches!(
        other.release(1),
        Err(Error::Overflow { bound: 3, .. })
    ));
}

#[test]
fn open_or_create_refuses_another_bound_or_value() {
    let name = ShmName::new("sem_ooc");
    let (_sem, how_a) = Semaphore::open_or_create(&name, 1, 1).unwrap();
    let (same, how_b) = Semaphore::open_or_create(&name, 1, 1).unwrap();
    assert_eq!(
        (how_a, how_b),
        (shmprim::Disposition::Created, shmprim::Disposition::Opened)
    );
    assert_eq!(same.bound(), Some(1));
    for (value, bound) in [(1, 2), (0, 1), (1, UNBOUNDED)] {
        let err = Semaphore::open_or_create(&name, value, bound).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Incompatible {
                    what: Mismatch::Parameter,
                    ..
                }
            ),
            "({value}, {bound}): {err}"
        );
    }
}

#[test]
fn opening_an_event_as_a_semaphore_is_incompatible() {
    let name = ShmName::new("sem_kind");
    let _ev = Event::create(&name).unwrap();
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
    let err = Semaphore::open_or_create(&name, 1, UNBOUNDED).unwrap_err();
    assert!(matches!(err, Error::Incompatible { .. }), "{err}");
}

#[test]
fn open_refuses_a_bound_that_differs_from_the_header() {
    use std::io::{Seek, SeekFrom, Write};
    let name = ShmName::new("sem_corrupt");
    let _sem = Semaphore::create(&name, 1).unwrap();
    // State layout: count at 0, waiters at 4, bound at 8 of the data area.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(name.path())
        .unwrap();
    f.seek(SeekFrom::Start(HEADER_SIZE as u64 + 8)).unwrap();
    f.write_all(&5u32.to_ne_bytes()).unwrap();
    let err = Semaphore::open(&name).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
    assert!(err.to_string().contains(name.as_str()), "{err}");
}

// ---------------------------------------------------------------- model

#[derive(Debug, Clone)]
enum Op {
    TryAcquire,
    AcquireNow,
    Release(u32),
    Value,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::TryAcquire),
        Just(Op::AcquireNow),
        (0u32..4).prop_map(Op::Release),
        Just(Op::Value),
    ]
}

proptest! {
    /// Random sequences of operations behave like a plain counter with a bound.
    #[test]
    fn semaphore_operations_match_a_counter_model(
        value in 0u32..5,
        extra in proptest::option::of(0u32..4),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let bound = extra.map_or(UNBOUNDED, |e| value + e);
        let sem = SemaphoreState::new(value, bound).unwrap();
        let mut model = u64::from(value);
        for op in ops {
            match op {
                Op::TryAcquire => {
                    prop_assert_eq!(sem.try_acquire(), model > 0);
                    model = model.saturating_sub(1);
                }
                Op::AcquireNow => {
                    let r = sem.acquire(Deadline::now());
                    if model > 0 {
                        prop_assert!(r.is_ok());
                        model -= 1;
                    } else {
                        prop_assert!(matches!(r, Err(Error::Timeout { .. })), "{:?}", r);
                    }
                }
                Op::Release(n) => {
                    let r = sem.release(n);
                    if n == 0 {
                        prop_assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{:?}", r);
                    } else if model + u64::from(n) > u64::from(bound) {
                        prop_assert!(matches!(r, Err(Error::Overflow { bound: b, .. }) if b == bound), "{:?}", r);
                    } else {
                        prop_assert!(r.is_ok());
                        model += u64::from(n);
                    }
                }
                Op::Value => {}
            }
            prop_assert_eq!(u64::from(sem.value()), model);
        }
    }
}
