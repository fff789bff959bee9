//! ReentrantMutex<T> (Python `RLock`): recursion by the owner, `NotOwner` on a
//! release one does not hold, exclusion across processes, owner death.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{ShmName, wait_until, word};
use shmprim::{
    Deadline, Error, LockError, LockStatus, Mismatch, Mutex, MutexOptions, RawReentrantMutex,
    ReentrantMutex, Segment,
};

const LIMIT: Duration = Duration::from_secs(20);

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "increment" => child_increment(&args[0], args[1].parse().unwrap()),
        "lock_twice_and_hang" => child_lock_twice_and_hang(&args[0], &args[1]),
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

#[test]
fn the_owning_thread_locks_again_and_each_level_needs_its_release() {
    let m = ReentrantMutex::anonymous(1u32).unwrap();
    let a = m.lock().unwrap();
    let b = m.try_lock().expect("owner relocks without blocking");
    let c = m.lock_timeout(Duration::from_millis(10)).unwrap();
    c.set(c.get() + 1);
    assert_eq!(a.get(), 2);
    drop(c);
    drop(b);
    // Still held at depth 1: another thread cannot take it.
    let refused = std::thread::scope(|s| {
        s.spawn(|| matches!(m.try_lock(), Err(LockError::Failed(Error::Timeout { .. }))))
            .join()
            .unwrap()
    });
    assert!(refused);
    assert_eq!(a.update(|v| v * 10), 20);
    drop(a);
    let free = std::thread::scope(|s| s.spawn(|| m.try_lock().is_ok()).join().unwrap());
    assert!(free, "fully released");
}

#[test]
fn releasing_a_lock_one_does_not_hold_is_not_owner() {
    let m = RawReentrantMutex::new(&MutexOptions::default()).unwrap();
    // Never held.
    assert!(matches!(m.unlock(), Err(Error::NotOwner { .. })));
    // Held twice, released twice, then once too often.
    assert_eq!(m.lock(Deadline::never()).unwrap(), LockStatus::Acquired);
    assert_eq!(m.try_lock().unwrap(), Some(LockStatus::Acquired));
    m.unlock().unwrap();
    m.unlock().unwrap();
    assert!(matches!(m.unlock(), Err(Error::NotOwner { .. })));
    // Held by this thread, released by another.
    m.lock(Deadline::never()).unwrap();
    let from_other = std::thread::scope(|s| s.spawn(|| m.unlock()).join().unwrap());
    assert!(matches!(from_other, Err(Error::NotOwner { .. })));
    // The failed release changed nothing: still ours, once.
    let taken = std::thread::scope(|s| s.spawn(|| m.try_lock().unwrap()).join().unwrap());
    assert_eq!(taken, None);
    m.unlock().unwrap();
    assert!(matches!(m.unlock(), Err(Error::NotOwner { .. })));
}

fn child_increment(name: &str, n: u64) {
    let m = ReentrantMutex::<u64>::open(name).unwrap();
    for _ in 0..n {
        let outer = m.lock().unwrap();
        let inner = m.lock().unwrap();
        let v = std::hint::black_box(inner.get());
        inner.set(v + 1);
        drop(inner);
        drop(outer);
    }
}

#[test]
fn processes_incrementing_under_the_reentrant_mutex_lose_no_update() {
    let name = ShmName::new("rmutex_count");
    let m = ReentrantMutex::create(&name, 0u64).unwrap();
    let mut children: Vec<_> = (0..3)
        .map(|_| spawn("increment", &[&name, "5000"]))
        .collect();
    for c in &mut children {
        c.expect_success(LIMIT);
    }
    assert_eq!(m.lock().unwrap().get(), 15_000);
}

fn child_lock_twice_and_hang(name: &str, ctl: &str) {
    let m = ReentrantMutex::<u64>::open(name).unwrap();
    let ctl = Segment::open(ctl).unwrap();
    let a = m.lock().unwrap();
    let b = m.lock().unwrap();
    b.set(77);
    word(&ctl, 0).store(1, Ordering::Release);
    std::thread::sleep(LIMIT);
    drop((a, b));
}

#[test]
fn owner_killed_at_depth_two_is_reported_until_a_locker_marks_it_consistent() {
    let ctl_name = ShmName::new("rmutex_death_ctl");
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    for i in 0..10 {
        let name = ShmName::new(&format!("rmutex_death_{i}"));
        let m = ReentrantMutex::create(&name, 0u64).unwrap();
        word(&ctl, 0).store(0, Ordering::Relaxed);
        let mut child = spawn("lock_twice_and_hang", &[&name, &ctl_name]);
        assert!(wait_until(LIMIT, || word(&ctl, 0).load(Ordering::Acquire) == 1));
        child.kill();
        let t = Instant::now();
        let g = match m.lock_timeout(Duration::from_secs(1)) {
            Err(LockError::OwnerDied(g)) => g,
            other => panic!("iteration {i}: expected owner-died, got {other:?}"),
        };
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(g.get(), 77);
        if i % 2 == 0 {
            g.mark_consistent().unwrap();
            drop(g);
            // Depth was reset to one: a single release freed it.
            let free = std::thread::scope(|s| s.spawn(|| m.try_lock().is_ok()).join().unwrap());
            assert!(free, "iteration {i}");
        } else {
            // Dropped undecided: the next locker is told, and may decide.
            drop(g);
            let g = match m.lock() {
                Err(LockError::OwnerDied(g)) => g,
                other => panic!("iteration {i}: expected owner-died again, got {other:?}"),
            };
            g.mark_consistent().unwrap();
            drop(g);
            assert!(m.lock().is_ok(), "iteration {i}");
        }
    }
}

/// After an owner's death the new holder may lock again before it decides:
/// releasing that inner level succeeds (the header asks for `consistent`
/// only before the *last* release), and the mutex stays usable.
#[test]
fn an_inner_release_after_owner_died_succeeds_and_consistent_keeps_the_mutex() {
    let ctl_name = ShmName::new("rmutex_inner_ctl");
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    let name = ShmName::new("rmutex_inner");
    let m = ReentrantMutex::create(&name, 0u64).unwrap();
    // The raw lock under the handle: what the C ABI's `shmprim_rmutex_*` call.
    let bytes = shmprim::mutex::ByteLock::<RawReentrantMutex>::open(&name).unwrap();
    let raw = bytes.raw();
    let mut child = spawn("lock_twice_and_hang", &[&name, &ctl_name]);
    assert!(wait_until(LIMIT, || word(&ctl, 0).load(Ordering::Acquire) == 1));
    child.kill();
    assert_eq!(
        raw.lock(Deadline::after(LIMIT)).unwrap(),
        LockStatus::OwnerDied
    );
    assert_eq!(raw.lock(Deadline::now()).unwrap(), LockStatus::Acquired);
    raw.unlock().expect("the inner release succeeds");
    raw.mark_consistent().unwrap();
    raw.unlock().unwrap();
    let free = std::thread::scope(|s| s.spawn(|| m.try_lock().is_ok()).join().unwrap());
    assert!(free, "the mutex is free and recoverable");
}

#[test]
fn opening_a_plain_mutex_or_another_type_as_reentrant_is_incompatible() {
    let name = ShmName::new("rmutex_types");
    let _m = Mutex::create(&name, 0u64).unwrap();
    match ReentrantMutex::<u64>::open(&name) {
        Err(Error::Incompatible { what, .. }) => assert_eq!(what, Mismatch::Kind),
        other => panic!("expected Incompatible, got {other:?}"),
    }
    let name2 = ShmName::new("rmutex_types2");
    let _r = ReentrantMutex::create(&name2, 0u64).unwrap();
    match ReentrantMutex::<i64>::open(&name2) {
        Err(Error::Incompatible { what, .. }) => assert_eq!(what, Mismatch::Payload),
        other => panic!("expected Incompatible, got {other:?}"),
    }
}

/// Python's `Lock.locked()` and the owner and count an `RLock` shows: free,
/// then held at depth 1 and 2 by this thread, then free again.
#[test]
fn is_locked_owner_and_depth_follow_the_holder() {
    let name = ShmName::new("rmutex_state");
    let m = ReentrantMutex::create(&name, 0u64).unwrap();
    assert!(!m.is_locked());
    assert_eq!((m.owner_tid(), m.depth()), (None, 0));
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() } as u32;
    let a = m.lock().unwrap();
    assert!(m.is_locked());
    assert_eq!((m.owner_tid(), m.depth()), (Some(me), 1));
    let b = m.lock().unwrap();
    assert_eq!(m.depth(), 2);
    // Another thread sees the same holder.
    let seen = std::thread::scope(|s| s.spawn(|| (m.is_locked(), m.owner_tid())).join().unwrap());
    assert_eq!(seen, (true, Some(me)));
    drop(b);
    assert_eq!(m.depth(), 1);
    drop(a);
    assert!(!m.is_locked());
    assert_eq!((m.owner_tid(), m.depth()), (None, 0));

    let plain = ShmName::new("mutex_locked");
    let m = Mutex::create(&plain, 0u64).unwrap();
    assert!(!m.is_locked());
    let g = m.lock().unwrap();
    assert!(m.is_locked());
    drop(g);
    assert!(!m.is_locked());
}
