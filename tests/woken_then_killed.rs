//! The worst moment to die: a waiter that a wake-up chose (an unlock, a
//! semaphore post, a condvar `notify_one`) is killed before it acts on it.
//! The other waiters must still get the lock, the permit, the notification.
//!
//! Deterministic: the children install shmprim's after-wake hook, which stops
//! the process (`SIGSTOP`) right after a futex wake-up ended its sleep. The
//! parent makes one wake-up, finds the child it stopped, and kills it there.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{ChildProc, ShmName, wait_until, word};
use shmprim::{Condvar, Mutex, Segment, Semaphore};

shmprim::test_harness!();

/// How long the surviving waiter may take: a liveness slice is 50 ms.
const SURVIVOR_LIMIT: Duration = Duration::from_secs(5);
const LIMIT: Duration = Duration::from_secs(20);
/// Attempts at the interleaving (a wake-up that lands while both children are
/// between two slices of sleep reaches neither; the round is then repeated).
const ATTEMPTS: usize = 5;

// Control words, one per child (index 0 and 1): 1 = about to wait,
// 2 = got what it waited for.
const ABOUT_TO_WAIT: u32 = 1;
const GOT_IT: u32 = 2;

fn child_entry((role, args): (String, Vec<String>)) {
    shmprim::wait::set_after_wake_hook(Some(stop_self));
    let ctl = Segment::open(&args[1]).unwrap();
    let me: usize = args[2].parse().unwrap();
    let said = |v: u32| word(&ctl, me).store(v, Ordering::SeqCst);
    match role.as_str() {
        "lock" => {
            let m = Mutex::<u32>::open(&args[0]).unwrap();
            said(ABOUT_TO_WAIT);
            let mut g = m.lock().unwrap();
            *g += 1;
            said(GOT_IT);
        }
        "acquire" => {
            let s = Semaphore::open(&args[0]).unwrap();
            said(ABOUT_TO_WAIT);
            s.acquire();
            said(GOT_IT);
        }
        "wait" => {
            let m = Mutex::<u32>::open(&format!("{}_m", args[0])).unwrap();
            let cv = Condvar::open(&args[0]).unwrap();
            let g = m.lock().unwrap();
            said(ABOUT_TO_WAIT);
            let g = cv.wait(g).unwrap();
            drop(g);
            said(GOT_IT);
        }
        other => panic!("unknown role {other}"),
    }
}

/// The hook: stop this process where it was woken.
fn stop_self() {
    // SAFETY: raise has no preconditions; SIGSTOP stops the whole process.
    unsafe { libc::raise(libc::SIGSTOP) };
}

/// The state letter of process `pid` in `/proc` (`T` when stopped).
fn state(pid: u32) -> u8 {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.iter()
        .rposition(|&b| b == b')')
        .and_then(|i| stat.get(i + 2).copied())
        .unwrap_or(b'?')
}

/// Runs the scenario for `role`: two children wait on `name`; `wake` makes
/// one wake-up; the child it woke is killed where it stopped; the other must
/// get what it waited for. Returns `false` if the interleaving was not
/// reached (a child got through without either being stopped).
fn woken_waiter_killed(role: &str, name: &str, wake: &dyn Fn()) -> bool {
    let ctl_name = ShmName::new(&format!("wtk_ctl_{role}"));
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    let mut kids: Vec<ChildProc> = (0..2)
        .map(|i| common::spawn_with(child_entry, role, &[name, &ctl_name, &i.to_string()]))
        .collect();
    assert!(wait_until(LIMIT, || (0..2)
        .all(|i| word(&ctl, i).load(Ordering::SeqCst) == ABOUT_TO_WAIT)));
    // Past their spin phase, both sleep in the kernel.
    std::thread::sleep(Duration::from_millis(300));
    wake();
    let pids: Vec<u32> = kids.iter().map(ChildProc::pid).collect();
    let mut stopped = None;
    assert!(
        wait_until(LIMIT, || {
            stopped = (0..2).find(|&i| state(pids[i]) == b'T');
            stopped.is_some() || (0..2).any(|i| word(&ctl, i).load(Ordering::SeqCst) == GOT_IT)
        }),
        "{role}: the wake-up reached nobody"
    );
    let Some(victim) = stopped else {
        return false;
    };
    let survivor = 1 - victim;
    assert_ne!(
        word(&ctl, victim).load(Ordering::SeqCst),
        GOT_IT,
        "{role}: the stopped child got it first"
    );
    kids[victim].kill();
    assert!(
        wait_until(SURVIVOR_LIMIT, || word(&ctl, survivor)
            .load(Ordering::SeqCst)
            == GOT_IT),
        "{role}: the other waiter was stranded (state {})",
        state(pids[survivor]) as char
    );
    kids[survivor].expect_success(LIMIT);
    true
}

/// Retries the scenario until the interleaving is reached.
fn reach(role: &str, mut round: impl FnMut(usize) -> bool) {
    for attempt in 0..ATTEMPTS {
        if round(attempt) {
            return;
        }
    }
    panic!("{role}: no wake-up landed on a sleeping child in {ATTEMPTS} attempts");
}

#[test]
fn a_lock_waiter_woken_and_killed_before_it_retakes_the_lock_strands_nobody() {
    reach("lock", |attempt| {
        let name = ShmName::new(&format!("wtk_mutex_{attempt}"));
        let m = Mutex::create(&name, 0u32).unwrap();
        let g = std::cell::RefCell::new(Some(m.lock().unwrap()));
        let reached = woken_waiter_killed("lock", &name, &|| drop(g.borrow_mut().take()));
        if reached {
            assert_eq!(*m.lock().unwrap(), 1, "exactly the survivor took the lock");
        }
        reached
    });
}

#[test]
fn a_semaphore_waiter_woken_and_killed_before_it_takes_its_permit_strands_nobody() {
    reach("acquire", |attempt| {
        let name = ShmName::new(&format!("wtk_sem_{attempt}"));
        let s = Semaphore::create(&name, 0).unwrap();
        let reached = woken_waiter_killed("acquire", &name, &|| s.release(1).unwrap());
        if reached {
            assert_eq!(s.value(), 0, "the one permit went to the survivor");
        }
        reached
    });
}

#[test]
fn a_condvar_waiter_chosen_by_notify_one_and_killed_passes_the_notification_on() {
    reach("wait", |attempt| {
        let name = ShmName::new(&format!("wtk_cv_{attempt}"));
        let m_name = ShmName(format!("{}_m", name.as_str()));
        let m = Mutex::create(&m_name, 0u32).unwrap();
        let cv = Condvar::create(&name).unwrap();
        let reached = woken_waiter_killed("wait", &name, &|| {
            let _g = m.lock().unwrap();
            cv.notify_one();
        });
        drop(m_name);
        reached
    });
}
