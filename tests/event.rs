//! Event: waking waiters in other processes, the set/clear race, timeouts, a
//! killed waiter, and kind checks.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{ShmName, wait_until, word};
use shmprim::semaphore::UNBOUNDED;
use shmprim::{Deadline, Error, Event, Mismatch, Segment, Semaphore};

const LIMIT: Duration = Duration::from_secs(20);

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "waiter" => child_waiter(&args[0], &args[1], args[2].parse().unwrap()),
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

// Control words: 0 = waiters about to wait; 1 + i = waiter i's result
// (0 pending, 1 returned true, 2 returned false).
const READY: usize = 0;
const PENDING: u32 = 0;
const WOKEN: u32 = 1;
const TIMED_OUT: u32 = 2;

fn child_waiter(ev_name: &str, ctl_name: &str, index: usize) {
    let ev = Event::open(ev_name).unwrap();
    let ctl = Segment::open(ctl_name).unwrap();
    word(&ctl, READY).fetch_add(1, Ordering::SeqCst);
    let set = ev.wait_timeout(LIMIT).is_ok();
    word(&ctl, 1 + index).store(if set { WOKEN } else { TIMED_OUT }, Ordering::SeqCst);
}

#[test]
fn set_in_one_process_wakes_waiters_in_three_others() {
    let name = ShmName::new("event_three");
    let ctl_name = ShmName::new("event_three_ctl");
    let ev = Event::create(&name).unwrap();
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    let mut children: Vec<_> = (0..3)
        .map(|i| spawn("waiter", &[&name, &ctl_name, &i.to_string()]))
        .collect();
    assert!(wait_until(LIMIT, || word(&ctl, READY)
        .load(Ordering::SeqCst)
        == 3));
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..3 {
        assert_eq!(
            word(&ctl, 1 + i).load(Ordering::SeqCst),
            PENDING,
            "waiter {i} returned before the event was set"
        );
    }
    ev.set();
    for c in &mut children {
        c.expect_success(LIMIT);
    }
    for i in 0..3 {
        assert_eq!(
            word(&ctl, 1 + i).load(Ordering::SeqCst),
            WOKEN,
            "waiter {i}"
        );
    }
}

#[test]
fn event_keeps_working_after_a_waiter_is_killed() {
    let name = ShmName::new("event_killed");
    let ctl_name = ShmName::new("event_killed_ctl");
    let ev = Event::create(&name).unwrap();
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    let mut victim = spawn("waiter", &[&name, &ctl_name, "0"]);
    assert!(wait_until(LIMIT, || word(&ctl, READY)
        .load(Ordering::SeqCst)
        == 1));
    std::thread::sleep(Duration::from_millis(100));
    victim.kill();
    assert_eq!(word(&ctl, 1).load(Ordering::SeqCst), PENDING);

    let mut survivor = spawn("waiter", &[&name, &ctl_name, "1"]);
    assert!(wait_until(LIMIT, || word(&ctl, READY)
        .load(Ordering::SeqCst)
        == 2));
    std::thread::sleep(Duration::from_millis(50));
    ev.set();
    survivor.expect_success(LIMIT);
    assert_eq!(word(&ctl, 2).load(Ordering::SeqCst), WOKEN);
}

#[test]
fn waiter_woken_by_set_returns_true_even_if_cleared_at_once() {
    let ev = Event::anonymous().unwrap();
    for round in 0..10 {
        std::thread::scope(|s| {
            let t = s.spawn(|| ev.wait_timeout(Duration::from_secs(5)).is_ok());
            std::thread::sleep(Duration::from_millis(20)); // asleep by now
            ev.set();
            ev.clear();
            assert!(t.join().unwrap(), "round {round}: the set was lost");
        });
        assert!(!ev.is_set());
    }
}

#[test]
fn wait_timeout_on_an_unset_event_returns_false_on_time() {
    let ev = Event::anonymous().unwrap();
    let asked = Duration::from_millis(200);
    let start = Instant::now();
    let set = ev.wait_timeout(asked).is_ok();
    let took = start.elapsed();
    assert!(!set);
    assert!(took >= asked, "returned early: {took:?}");
    assert!(
        took < asked + Duration::from_millis(500),
        "returned late: {took:?}"
    );
}

#[test]
fn set_clear_and_is_set_follow_the_flag() {
    let ev = Event::anonymous().unwrap();
    assert!(!ev.is_set());
    assert!(matches!(
        ev.wait_deadline(Deadline::now()),
        Err(Error::Timeout { .. })
    ));
    ev.set();
    ev.set(); // idempotent
    assert!(ev.is_set());
    assert!(ev.wait_deadline(Deadline::now()).is_ok());
    ev.wait().unwrap(); // returns at once
    ev.clear();
    ev.clear();
    assert!(!ev.is_set());
    assert!(matches!(
        ev.wait_deadline(Deadline::now()),
        Err(Error::Timeout { .. })
    ));
}

#[test]
fn open_or_create_shares_one_event() {
    let name = ShmName::new("event_ooc");
    let (a, how_a) = Event::open_or_create(&name).unwrap();
    let (b, how_b) = Event::open_or_create(&name).unwrap();
    assert_eq!(
        (how_a, how_b),
        (shmprim::Disposition::Created, shmprim::Disposition::Opened)
    );
    a.set();
    assert!(b.is_set());
    b.clear();
    assert!(!a.is_set());
}

#[test]
fn opening_a_semaphore_as_an_event_is_incompatible() {
    let name = ShmName::new("event_kind");
    let _sem = Semaphore::create(&name, 1).unwrap();
    let err = Event::open(&name).unwrap_err();
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
    assert!(Semaphore::open_or_create(&name, 1, UNBOUNDED).is_ok());
    assert!(matches!(
        Event::open_or_create(&name),
        Err(Error::Incompatible { .. })
    ));
}
