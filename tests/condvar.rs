//! Condvar (Python `Condition`): waking a waiter in another process, timeouts,
//! a waiter killed while asleep, and the mutex owner's death reaching a waiter.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{ShmName, wait_until, word};
use shmprim::{Condvar, Error, LockError, Mismatch, Mutex, Segment};

const LIMIT: Duration = Duration::from_secs(20);

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "consumer" => child_consumer(&args[0], &args[1], args[2].parse().unwrap()),
        "sleep_on_condvar" => child_sleep_on_condvar(&args[0], &args[1]),
        "lock_and_hang" => child_lock_and_hang(&args[0], &args[1]),
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

/// Sleepers registered on a condvar: the second word of its state.
fn sleepers(cv: &Condvar) -> u32 {
    word(cv.segment(), 1).load(Ordering::SeqCst)
}

/// Consumes `rounds` items: waits for the slot to be odd (full), makes it even
/// (empty) and notifies.
fn child_consumer(m: &str, cv: &str, rounds: u64) {
    let m = Mutex::<u64>::open(m).unwrap();
    let cv = Condvar::open(cv).unwrap();
    for r in 0..rounds {
        let g = m.lock().unwrap();
        let (mut g, t) = cv.wait_timeout_while(g, LIMIT, |v| *v % 2 == 0).unwrap();
        assert!(!t.timed_out(), "round {r}: never notified");
        assert_eq!(*g, 2 * r + 1);
        *g += 1;
        drop(g);
        cv.notify_all();
    }
}

#[test]
fn a_waiter_in_another_process_is_woken_by_notify() {
    let m_name = ShmName::new("cv_pc_m");
    let cv_name = ShmName::new("cv_pc_cv");
    let m = Mutex::create(&m_name, 0u64).unwrap();
    let cv = Condvar::create(&cv_name).unwrap();
    let mut child = spawn("consumer", &[&m_name, &cv_name, "200"]);

    // The first round: make sure the child really sleeps in the kernel first.
    assert!(
        wait_until(LIMIT, || sleepers(&cv) == 1),
        "the consumer never slept on the condvar"
    );
    for r in 0..200u64 {
        let g = m.lock().unwrap();
        let (mut g, t) = cv.wait_timeout_while(g, LIMIT, |v| *v != 2 * r).unwrap();
        assert!(!t.timed_out(), "round {r}: consumer never answered");
        *g += 1;
        drop(g);
        cv.notify_one();
    }
    let g = m.lock().unwrap();
    let (g, t) = cv.wait_timeout_while(g, LIMIT, |v| *v != 400).unwrap();
    assert!(!t.timed_out());
    assert_eq!(*g, 400);
    drop(g);
    child.expect_success(LIMIT);
    assert_eq!(sleepers(&cv), 0);
}

#[test]
fn wait_timeout_returns_timed_out_on_time_with_the_mutex_locked_again() {
    let m = Mutex::anonymous(5u32).unwrap();
    let cv = Condvar::anonymous().unwrap();
    for ms in [30u64, 200] {
        let g = m.lock().unwrap();
        let t = Instant::now();
        let (mut g, r) = cv.wait_timeout(g, Duration::from_millis(ms)).unwrap();
        let took = t.elapsed();
        assert!(r.timed_out());
        assert!(took >= Duration::from_millis(ms), "early: {took:?}");
        assert!(took < Duration::from_millis(ms + 500), "late: {took:?}");
        // The guard is live again: this thread holds the mutex.
        *g += 1;
        let refused = std::thread::scope(|s| {
            s.spawn(|| matches!(m.try_lock(), Err(LockError::Failed(Error::Timeout { .. }))))
                .join()
                .unwrap()
        });
        assert!(refused);
    }
    assert_eq!(*m.lock().unwrap(), 7);
    assert_eq!(sleepers(&cv), 0);
}

#[test]
fn wait_timeout_while_reports_a_condition_that_never_came() {
    let m = Mutex::anonymous(0u32).unwrap();
    let cv = Condvar::anonymous().unwrap();
    let g = m.lock().unwrap();
    let (g, r) = cv
        .wait_timeout_while(g, Duration::from_millis(50), |v| *v == 0)
        .unwrap();
    assert!(r.timed_out());
    assert_eq!(*g, 0);
}

#[test]
fn notify_all_wakes_every_waiting_thread() {
    let m = Mutex::anonymous(0u8).unwrap();
    let cv = Condvar::anonymous().unwrap();
    std::thread::scope(|s| {
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let g = m.lock().unwrap();
                    let (g, t) = cv.wait_timeout_while(g, LIMIT, |go| *go == 0).unwrap();
                    assert!(!t.timed_out());
                    assert_eq!(*g, 1);
                })
            })
            .collect();
        assert!(wait_until(LIMIT, || sleepers(&cv) == 3));
        *m.lock().unwrap() = 1;
        cv.notify_all();
        for w in waiters {
            w.join().unwrap();
        }
    });
}

fn child_sleep_on_condvar(m: &str, cv: &str) {
    let m = Mutex::<u32>::open(m).unwrap();
    let cv = Condvar::open(cv).unwrap();
    let g = m.lock().unwrap();
    let _ = cv.wait_timeout_while(g, LIMIT, |v| *v == 0);
}

#[test]
fn a_process_killed_while_waiting_leaves_the_condvar_usable() {
    let m_name = ShmName::new("cv_kill_m");
    let cv_name = ShmName::new("cv_kill_cv");
    let m = Mutex::create(&m_name, 0u32).unwrap();
    let cv = Condvar::create(&cv_name).unwrap();
    let mut victim = spawn("sleep_on_condvar", &[&m_name, &cv_name]);
    assert!(wait_until(LIMIT, || sleepers(&cv) == 1));
    victim.kill();

    // The mutex was free while it slept, so it is still healthy.
    assert!(m.try_lock().is_ok());
    // A new waiter in another process is woken as usual.
    let mut waiter = spawn("sleep_on_condvar", &[&m_name, &cv_name]);
    // The dead process's registration stays counted (documented).
    assert!(wait_until(LIMIT, || sleepers(&cv) == 2));
    *m.lock().unwrap() = 1;
    cv.notify_one();
    waiter.expect_success(LIMIT);
    // And a waiter in this process too.
    std::thread::scope(|s| {
        let w = s.spawn(|| {
            let g = m.lock().unwrap();
            let (_, t) = cv.wait_timeout_while(g, LIMIT, |v| *v == 1).unwrap();
            assert!(!t.timed_out());
        });
        assert!(wait_until(LIMIT, || sleepers(&cv) == 2));
        *m.lock().unwrap() = 2;
        cv.notify_all();
        w.join().unwrap();
    });
}

/// Takes the mutex, says so, and hangs until killed.
fn child_lock_and_hang(m: &str, ctl: &str) {
    let m = Mutex::<u32>::open(m).unwrap();
    let ctl = Segment::open(ctl).unwrap();
    let mut g = m.lock().unwrap();
    *g = 9;
    word(&ctl, 0).store(1, Ordering::Release);
    std::thread::sleep(LIMIT);
}

#[test]
fn the_mutex_owner_dying_reaches_a_waiter_as_owner_died() {
    let m_name = ShmName::new("cv_od_m");
    let ctl_name = ShmName::new("cv_od_ctl");
    let m = Mutex::create(&m_name, 0u32).unwrap();
    let cv = Condvar::anonymous().unwrap();
    let ctl = Segment::create(&ctl_name, 64).unwrap();

    let g = m.lock().unwrap();
    let mut child = spawn("lock_and_hang", &[&m_name, &ctl_name]);
    std::thread::scope(|s| {
        // Once the child holds the mutex (we released it by waiting): notify,
        // so our wait returns and blocks re-locking, then kill the child.
        s.spawn(|| {
            assert!(wait_until(LIMIT, || word(&ctl, 0).load(Ordering::Acquire) == 1));
            cv.notify_all();
            std::thread::sleep(Duration::from_millis(20));
            child.kill();
        });
        match cv.wait_timeout(g, LIMIT) {
            Err(LockError::OwnerDied((g, t))) => {
                assert!(!t.timed_out());
                assert_eq!(*g, 9);
                g.mark_consistent().unwrap();
            }
            other => panic!("expected owner-died, got {other:?}"),
        }
    });
    assert_eq!(*m.lock().unwrap(), 9);
}

#[test]
fn opening_another_kind_as_a_condvar_is_incompatible() {
    let name = ShmName::new("cv_kind");
    let _m = Mutex::create(&name, 0u32).unwrap();
    match Condvar::open(&name) {
        Err(Error::Incompatible { what, .. }) => assert_eq!(what, Mismatch::Kind),
        other => panic!("expected Incompatible, got {other:?}"),
    }
    let name2 = ShmName::new("cv_ooc");
    let (a, how_a) = Condvar::open_or_create(&name2).unwrap();
    let (b, how_b) = Condvar::open_or_create(&name2).unwrap();
    assert_eq!(
        (how_a, how_b),
        (shmprim::Disposition::Created, shmprim::Disposition::Opened)
    );
    a.notify_all();
    b.notify_one();
    assert_eq!(sleepers(&a), 0);
}

/// Python's `Condition.notify(n)`: of three sleepers, `notify(2)` wakes
/// two, and the third sleeps on until `notify_all`.
#[test]
fn notify_n_wakes_that_many_sleepers() {
    let cv_name = ShmName::new("cv_notify_n");
    let m_name = ShmName::new("cv_notify_n_mutex");
    let cv = Condvar::create(&cv_name).unwrap();
    let m = Mutex::create(&m_name, 0u64).unwrap();
    let woken = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let g = m.lock().unwrap();
                let g = cv.wait(g).unwrap();
                woken.fetch_add(1, Ordering::SeqCst);
                drop(g);
            });
        }
        assert!(wait_until(LIMIT, || sleepers(&cv) == 3));
        cv.notify(2);
        assert!(wait_until(LIMIT, || woken.load(Ordering::SeqCst) == 2));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(woken.load(Ordering::SeqCst), 2, "notify(2) woke a third");
        cv.notify_all();
    });
    assert_eq!(woken.load(Ordering::SeqCst), 3);
}

/// Python's `Condition.wait_for(predicate, timeout)`: returns `true` once
/// the predicate holds, `false` when the timeout passes first.
#[test]
fn wait_for_returns_on_the_predicate_and_on_timeout() {
    let cv_name = ShmName::new("cv_wait_for");
    let m_name = ShmName::new("cv_wait_for_mutex");
    let cv = Condvar::create(&cv_name).unwrap();
    let m = Mutex::create(&m_name, 0u64).unwrap();
    let start = Instant::now();
    let (g, holds) = cv
        .wait_for(m.lock().unwrap(), Some(Duration::from_millis(50)), |v| {
            *v == 3
        })
        .unwrap();
    assert!(!holds);
    assert!(start.elapsed() >= Duration::from_millis(50));
    drop(g);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(5));
                *m.lock().unwrap() += 1;
                cv.notify_all();
            }
        });
        let (g, holds) = cv.wait_for(m.lock().unwrap(), None, |v| *v == 3).unwrap();
        assert!(holds);
        assert_eq!(*g, 3);
    });
}
