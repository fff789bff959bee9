//! Mutex<T> (Python `Lock`): mutual exclusion across processes, owner death
//! (owner-died, consistent, passed on until decided), try/timeout, type checks, priority
//! inheritance, and leaked guards.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{ShmName, wait_until, word};
use shmprim::{
    Condvar, Error, LockError, Mismatch, Mutex, MutexOptions, Options, RawMutex, Segment,
};

const LIMIT: Duration = Duration::from_secs(20);

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "increment" => child_increment(&args[0], args[1].parse().unwrap()),
        "lock_and_hang" => child_lock_and_hang(&args[0], &args[1], args[2].parse().unwrap()),
        "hold_until_told" => child_hold_until_told(&args[0], &args[1]),
        "leak_guard" => child_leak_guard(&args[0], &args[1]),
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

// ---------------------------------------------------------------- exclusion

fn child_increment(name: &str, n: u64) {
    let m = Mutex::<u64>::open(name).unwrap();
    for _ in 0..n {
        let mut g = m.lock().unwrap();
        // A read, then a write: two processes inside at once would lose updates.
        let v = std::hint::black_box(*g);
        *g = v + 1;
    }
}

#[test]
fn four_processes_incrementing_ten_thousand_times_each_give_exactly_forty_thousand() {
    let name = ShmName::new("mutex_count");
    let m = Mutex::create(&name, 0u64).unwrap();
    let mut children: Vec<_> = (0..4)
        .map(|_| spawn("increment", &[&name, "10000"]))
        .collect();
    for c in &mut children {
        c.expect_success(LIMIT);
    }
    assert_eq!(*m.lock().unwrap(), 40_000);
}

// ---------------------------------------------------------------- owner death

/// The natural `m.lock().unwrap()` after a holder's death panics (the
/// owner-died guard is dropped while unwinding, with no decision made): the
/// mutex must stay usable, and the next locker is told the owner died.
#[test]
fn lock_unwrap_after_a_holders_death_leaves_the_mutex_recoverable() {
    let ctl_name = ShmName::new("mutex_unwrap_ctl");
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    let name = ShmName::new("mutex_unwrap");
    let m = Mutex::create(&name, [0u64; 2]).unwrap();
    let mut child = spawn("lock_and_hang", &[&name, &ctl_name, "5"]);
    assert!(wait_until(LIMIT, || word(&ctl, 0).load(Ordering::Acquire) == 1));
    child.kill();
    let careless = std::thread::scope(|s| {
        s.spawn(|| {
            let g = m.lock().unwrap();
            g[0]
        })
        .join()
    });
    assert!(
        careless.is_err(),
        "unwrap of an owner-died lock did not panic"
    );
    let g = match m.lock_timeout(LIMIT) {
        Err(LockError::OwnerDied(g)) => g,
        other => panic!("the next locker was not told: {other:?}"),
    };
    assert_eq!(*g, [5, !5]);
    g.mark_consistent().unwrap();
    drop(g);
    assert_eq!(*m.lock().unwrap(), [5, !5]);
}

/// Locks, writes `value` to the guarded pair, says so in the control segment,
/// and hangs until killed.
fn child_lock_and_hang(name: &str, ctl: &str, value: u64) {
    let m = Mutex::<[u64; 2]>::open(name).unwrap();
    let ctl = Segment::open(ctl).unwrap();
    let mut g = m.lock().unwrap();
    g[0] = value;
    g[1] = !value;
    word(&ctl, 0).store(1, Ordering::Release);
    std::thread::sleep(LIMIT);
}

#[test]
fn owner_killed_holding_the_lock_is_reported_until_a_locker_marks_it_consistent_100_times() {
    let ctl_name = ShmName::new("mutex_death_ctl");
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    let start = Instant::now();
    for i in 0..100u64 {
        let name = ShmName::new(&format!("mutex_death_{i}"));
        let m = Mutex::create(&name, [0u64; 2]).unwrap();
        word(&ctl, 0).store(0, Ordering::Relaxed);
        let value = 1000 + i;
        let mut child = spawn("lock_and_hang", &[&name, &ctl_name, &value.to_string()]);
        assert!(
            wait_until(LIMIT, || word(&ctl, 0).load(Ordering::Acquire) == 1),
            "iteration {i}: child never held the lock"
        );
        child.kill();

        let t = Instant::now();
        let guard = match m.lock_timeout(Duration::from_secs(1)) {
            Err(LockError::OwnerDied(g)) => g,
            other => panic!("iteration {i}: expected owner-died, got {other:?}"),
        };
        assert!(t.elapsed() < Duration::from_secs(1), "iteration {i}");
        assert_eq!(*guard, [value, !value], "iteration {i}: data lost");

        if i % 2 == 0 {
            guard.mark_consistent().unwrap();
            drop(guard);
            for _ in 0..2 {
                let mut g = m.lock().expect("consistent mutex keeps working");
                assert_eq!(*g, [value, !value], "iteration {i}: data changed");
                g[0] += 1;
                g[0] -= 1;
            }
            assert!(m.try_lock().is_ok());
        } else {
            drop(guard); // no decision: it passes to every next locker
            for how in 0..3 {
                // Each guard is dropped (undecided) before the next lock.
                let r = match how {
                    0 => m.lock(),
                    1 => m.try_lock(),
                    _ => m.lock_timeout(Duration::from_millis(10)),
                }
                .map(drop)
                .map_err(|e| e.map(drop));
                match r {
                    Err(LockError::OwnerDied(())) => {}
                    other => panic!("iteration {i}: expected owner-died again, got {other:?}"),
                }
            }
            // Another handle sees the same, and `lock()?` carries it as an error.
            let other = Mutex::<[u64; 2]>::open(&name).unwrap();
            let through_question_mark = || -> shmprim::Result<()> {
                other.lock()?;
                Ok(())
            };
            match through_question_mark() {
                Err(Error::OwnerDied { name: n }) => assert_eq!(n, name.as_str()),
                other => panic!("iteration {i}: expected Error::OwnerDied, got {other:?}"),
            }
            let g = other.lock().unwrap_err().into_guard().unwrap();
            g.mark_consistent().unwrap();
            drop(g);
            assert_eq!(*m.lock().unwrap(), [value, !value]);
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "100 iterations took {:?}",
        start.elapsed()
    );
}

/// A loop of tries (Python's `acquire(block=False)`) on the lock of a
/// holder that was killed gets it, told so, within a slice or two: a try
/// cannot sleep a slice, so it looks at the holder once per slice itself.
#[test]
fn a_loop_of_tries_takes_a_killed_holders_lock_over() {
    let ctl_name = ShmName::new("mutex_try_death_ctl");
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    let name = ShmName::new("mutex_try_death");
    let m = Mutex::create(&name, [0u64; 2]).unwrap();
    let mut child = spawn("lock_and_hang", &[&name, &ctl_name, "5"]);
    assert!(wait_until(LIMIT, || word(&ctl, 0).load(Ordering::Acquire) == 1));
    // Busy while the holder lives.
    assert!(matches!(
        m.try_lock(),
        Err(LockError::Failed(Error::Timeout { .. }))
    ));
    child.kill();
    let t = Instant::now();
    let mut tries = 0u64;
    let guard = loop {
        tries += 1;
        match m.try_lock() {
            Err(LockError::OwnerDied(g)) => break g,
            Err(LockError::Failed(Error::Timeout { .. })) => {
                assert!(t.elapsed() < LIMIT, "still busy after {tries} tries");
            }
            other => panic!("{other:?}"),
        }
    };
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(*guard, [5, !5]);
    guard.mark_consistent().unwrap();
}

// ---------------------------------------------------------------- try and timeout

/// Locks, says so, and holds the lock until the parent writes 2.
fn child_hold_until_told(name: &str, ctl: &str) {
    let m = Mutex::<u32>::open(name).unwrap();
    let ctl = Segment::open(ctl).unwrap();
    let mut g = m.lock().unwrap();
    *g = 7;
    word(&ctl, 0).store(1, Ordering::Release);
    assert!(wait_until(LIMIT, || word(&ctl, 0).load(Ordering::Acquire) == 2));
}

#[test]
fn try_lock_and_lock_timeout_fail_with_timeout_while_another_process_holds_it() {
    let name = ShmName::new("mutex_timeout");
    let ctl_name = ShmName::new("mutex_timeout_ctl");
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    let m = Mutex::create(&name, 0u32).unwrap();
    let mut child = spawn("hold_until_told", &[&name, &ctl_name]);
    assert!(wait_until(LIMIT, || word(&ctl, 0).load(Ordering::Acquire) == 1));

    assert!(matches!(
        m.try_lock(),
        Err(LockError::Failed(Error::Timeout { .. }))
    ));
    for ms in [50u64, 300] {
        let t = Instant::now();
        let r = m.lock_timeout(Duration::from_millis(ms));
        let took = t.elapsed();
        assert!(
            matches!(r, Err(LockError::Failed(Error::Timeout { .. }))),
            "{r:?}"
        );
        assert!(
            took >= Duration::from_millis(ms),
            "returned early: {took:?}"
        );
        assert!(
            took < Duration::from_millis(ms + 500),
            "returned late: {took:?}"
        );
    }

    word(&ctl, 0).store(2, Ordering::Release);
    let g = m
        .lock_timeout(LIMIT)
        .expect("lock is free once the child releases it");
    assert_eq!(*g, 7);
    drop(g);
    child.expect_success(LIMIT);
}

#[test]
fn relocking_from_the_owning_thread_is_an_error_not_a_deadlock() {
    let m = Mutex::anonymous(0u8).unwrap();
    let _g = m.lock().unwrap();
    assert!(matches!(
        m.try_lock(),
        Err(LockError::Failed(Error::InvalidArgument { .. }))
    ));
    assert!(matches!(
        m.lock_timeout(Duration::from_millis(10)),
        Err(LockError::Failed(Error::InvalidArgument { .. }))
    ));
}

// ---------------------------------------------------------------- types and kinds

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Point {
    x: i32,
    y: i32,
}

#[test]
fn opening_with_another_value_type_or_kind_is_incompatible() {
    let name = ShmName::new("mutex_types");
    let m = Mutex::create(&name, Point { x: 1, y: 2 }).unwrap();
    match Mutex::<u64>::open(&name) {
        Err(Error::Incompatible { what, .. }) => assert_eq!(what, Mismatch::Payload),
        other => panic!("expected Incompatible, got {other:?}"),
    }
    match Mutex::<[i32; 2]>::open(&name) {
        Err(Error::Incompatible { what, .. }) => assert_eq!(what, Mismatch::Payload),
        other => panic!("expected Incompatible, got {other:?}"),
    }
    match Condvar::open(&name) {
        Err(Error::Incompatible { what, .. }) => assert_eq!(what, Mismatch::Kind),
        other => panic!("expected Incompatible, got {other:?}"),
    }
    let same = Mutex::<Point>::open(&name).unwrap();
    assert_eq!(*same.lock().unwrap(), Point { x: 1, y: 2 });
    drop(m);
}

#[test]
fn open_or_create_creates_once_and_shares_the_value() {
    let name = ShmName::new("mutex_ooc");
    let (a, how_a) = Mutex::open_or_create(&name, 5u32).unwrap();
    let (b, how_b) = Mutex::open_or_create(&name, 9u32).unwrap();
    assert_eq!(
        (how_a, how_b),
        (shmprim::Disposition::Created, shmprim::Disposition::Opened)
    );
    *a.lock().unwrap() += 1;
    assert_eq!(*b.lock().unwrap(), 6);
    assert!(matches!(
        Mutex::create(&name, 0u32),
        Err(Error::AlreadyExists { .. })
    ));
}

// ---------------------------------------------------------------- priority inheritance

#[test]
fn priority_inheritance_mutex_is_created_and_excludes_across_threads() {
    let name = ShmName::new("mutex_pi");
    let opts = MutexOptions {
        priority_inheritance: true,
    };
    let m = Mutex::create_with_options(&name, 0u64, &opts, &Options::default())
        .expect("Linux supports priority-inheriting futexes");
    let other = Mutex::<u64>::open(&name).unwrap();
    std::thread::scope(|s| {
        for h in [&m, &other] {
            s.spawn(move || {
                for _ in 0..2000 {
                    let mut g = h.lock().unwrap();
                    let v = std::hint::black_box(*g);
                    *g = v + 1;
                }
            });
        }
    });
    assert_eq!(*m.lock().unwrap(), 4000);
    let held = m.lock().unwrap();
    let refused = std::thread::scope(|s| {
        s.spawn(|| {
            matches!(
                other.try_lock(),
                Err(LockError::Failed(Error::Timeout { .. }))
            )
        })
        .join()
        .unwrap()
    });
    assert!(refused, "a held PI mutex refused another thread's try_lock");
    drop(held);
}

// ---------------------------------------------------------------- leaked guards

/// Locks `first`, then `second`, leaks `second`'s guard and drops its handle,
/// then unlocks `first`. glibc's unlock walks the thread's robust list through
/// `second`'s memory, so it must still be mapped (else: SIGSEGV).
fn child_leak_guard(first: &str, second: &str) {
    let a = Mutex::<u32>::open(first).unwrap();
    let b = Mutex::<u32>::open(second).unwrap();
    let ga = a.lock().unwrap();
    let gb = b.lock().unwrap();
    std::mem::forget(gb);
    drop(b);
    drop(ga);
    let b2 = Mutex::<u32>::open(second).unwrap();
    assert!(b2.lock().is_err(), "the leaked guard still holds the lock");
    let ga = a.lock().unwrap();
    drop(ga);
}

#[test]
fn dropping_a_handle_whose_guard_was_leaked_keeps_the_process_sound() {
    let first = ShmName::new("mutex_leak_a");
    let second = ShmName::new("mutex_leak_b");
    let _a = Mutex::create(&first, 0u32).unwrap();
    let _b = Mutex::create(&second, 0u32).unwrap();
    spawn("leak_guard", &[&first, &second]).expect_success(LIMIT);
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Mutex<u64>>();
    check::<shmprim::ReentrantMutex<u64>>();
    check::<Condvar>();
    check::<RawMutex>();
}

#[test]
fn raw_mutex_layout_is_a_pthread_mutex_for_priority_inheritance_and_shmprims_lock_words() {
    // pthread_mutex_t, the owner-died flag, then the lock word, depth and
    // type word.
    assert_eq!(
        RawMutex::SIZE,
        std::mem::size_of::<libc::pthread_mutex_t>() + 16
    );
    assert_eq!(
        RawMutex::ALIGN,
        std::mem::align_of::<libc::pthread_mutex_t>()
    );
}

/// Garbage in the lock's bytes cannot be repaired, but with a timeout it
/// yields an error (a type word shmprim never writes → `Corrupted`, or a
/// lock that looks held → `Timeout`), never a crash or a hang.
#[test]
fn garbage_in_the_mutex_bytes_gives_an_error_within_the_timeout_not_a_crash() {
    for pattern in [0xFFu8, 0x55, 0x80] {
        let name = ShmName::new(&format!("mutex_garbage_{pattern}"));
        let m = Mutex::create(&name, 0u64).unwrap();
        // A hostile or buggy process overwrites the lock state.
        let raw = shmprim::SegmentBuilder::new(shmprim::Kind::Mutex)
            .any_payload()
            .open(&name)
            .unwrap();
        raw.write(0, &[pattern; RawMutex::SIZE]).unwrap();
        let t = Instant::now();
        let r = m.lock_timeout(Duration::from_millis(100));
        assert!(
            matches!(
                r,
                Err(LockError::Failed(
                    Error::Corrupted { .. } | Error::Timeout { .. }
                ))
            ),
            "pattern {pattern:#x}: {r:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}

/// Index (in 32-bit words) of the type word of shmprim's lock in a
/// `RawMutex`: after the `pthread_mutex_t`, the owner-died flag, the lock
/// word and the depth.
const TYPE_WORD: usize = (std::mem::size_of::<libc::pthread_mutex_t>() + 12) / 4;

/// A lock whose type word was overwritten with one shmprim never writes is
/// refused as corrupted by every lock and checked unlock, and works again
/// once its type is put back. (glibc trusted its own type word: with the
/// lock-elision flag forged into it, its trylock ran `xbegin`, an illegal
/// instruction on a CPU without TSX, found by `tests/scribble.rs`.)
#[test]
fn a_forged_mutex_type_is_corrupted_not_a_crash() {
    /// glibc's `PTHREAD_MUTEX_ELISION_NP`, an unknown high flag, and the
    /// other mutex type's word.
    const FORGED_FLAGS: [u32; 3] = [256, 1 << 20, 3];
    let name = ShmName::new("forged_kind");
    let m = Mutex::create(&name, 5u64).unwrap();
    let kind = word(m.segment(), TYPE_WORD);
    let good = kind.load(Ordering::Relaxed);
    assert_ne!(good, 0, "a lock has a non-zero type word");
    for flag in FORGED_FLAGS {
        kind.store(good ^ flag, Ordering::Relaxed);
        let corrupted = |r: &shmprim::LockResult<shmprim::MutexGuard<'_, u64>>| {
            matches!(r, Err(LockError::Failed(Error::Corrupted { .. })))
        };
        assert!(
            corrupted(&m.try_lock()),
            "try_lock with type {:#x}",
            good ^ flag
        );
        assert!(corrupted(&m.lock_timeout(Duration::from_millis(1))));
        assert!(corrupted(&m.lock()), "lock with type {:#x}", good ^ flag);
        kind.store(good, Ordering::Relaxed);
        assert_eq!(*m.try_lock().unwrap(), 5);
    }
    // An unlock by a thread that may not hold the mutex (the C API's, or
    // `unlock_checked`) checks the type too.
    let raw = RawMutex::new(&MutexOptions::default()).unwrap();
    // SAFETY: the type word is a 4-byte aligned u32 inside the boxed
    // RawMutex, only accessed atomically.
    let raw_kind = unsafe {
        &*(std::ptr::from_ref::<RawMutex>(&raw)
            .cast::<AtomicU32>()
            .add(TYPE_WORD))
    };
    let good = raw_kind.load(Ordering::Relaxed);
    raw_kind.store(good ^ FORGED_FLAGS[0], Ordering::Relaxed);
    // SAFETY: nothing is protected by this lock.
    let r = unsafe { raw.unlock_checked() };
    assert!(matches!(r, Err(Error::Corrupted { .. })), "{r:?}");
    assert!(matches!(raw.try_lock(), Err(Error::Corrupted { .. })));
    raw_kind.store(good, Ordering::Relaxed);
    assert!(matches!(raw.try_lock(), Ok(Some(_))));
    // SAFETY: locked just above by this thread; nothing is protected.
    unsafe { raw.unlock() };
}
