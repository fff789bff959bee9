//! Interruptible waits: inside `wait::interruptible`, a signal handler that
//! runs while a call waits ends the call with `Interrupted`, for every kind
//! of wait, also when the handler was installed with `SA_RESTART` (as C's
//! `signal()` does); outside, waits absorb the signal and go on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmprim::wait::interruptible;
use shmprim::{Barrier, Condvar, Error, Event, Mutex, Pipe, Queue, Semaphore, SpscRing};

const LIMIT: Duration = Duration::from_secs(20);

extern "C" fn ignore(_: libc::c_int) {}

/// A handler for SIGUSR2 that does nothing, installed with `SA_RESTART`: the
/// case in which the kernel would restart an untimed wait by itself.
fn install_handler() {
    // SAFETY: a zeroed sigaction is valid; `ignore` is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
    }
}

/// Runs `op` on this thread while another one signals it every 20 ms until
/// `op` returns; returns `op`'s answer and how long it took.
fn under_signals<R>(op: impl FnOnce() -> R) -> (R, Duration) {
    install_handler();
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let end = Instant::now() + LIMIT;
            while !done.load(Ordering::SeqCst) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
                // SAFETY: `me` is a live thread of this process (it waits
                // for this scope to end); SIGUSR2 has a handler.
                unsafe { libc::pthread_kill(me, libc::SIGUSR2) };
            }
        });
        let start = Instant::now();
        let r = op();
        let took = start.elapsed();
        done.store(true, Ordering::SeqCst);
        (r, took)
    })
}

#[track_caller]
fn interrupted<T: std::fmt::Debug>(what: &str, op: impl FnOnce() -> shmprim::Result<T>) {
    let (r, took) = under_signals(|| interruptible(op));
    assert!(matches!(r, Err(Error::Interrupted { .. })), "{what}: {r:?}");
    assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
}

#[test]
fn every_kind_of_wait_ends_with_interrupted_when_a_handler_runs() {
    let q = Queue::<u64>::anonymous(4).unwrap();
    interrupted("Queue::get", || q.get());
    let ring = SpscRing::<u64>::anonymous(4).unwrap();
    let (_tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    interrupted("Consumer::pop", || rx.pop());
    let pipe = Pipe::anonymous(4096, 64, true).unwrap();
    let (_b, mut a) = (pipe.end_b().unwrap(), pipe.end_a().unwrap());
    interrupted("PipeEnd::recv", || a.recv());
    let e = Event::anonymous().unwrap();
    interrupted("Event::wait_timeout", || e.wait_timeout(LIMIT));
    interrupted("Event::wait", || e.wait());
    let sem = Semaphore::anonymous(0, 0).unwrap();
    interrupted("Semaphore::acquire_timeout", || sem.acquire_timeout(LIMIT));
    let b = Barrier::anonymous(2).unwrap();
    interrupted("Barrier::wait", || b.wait());
    let cv = Condvar::anonymous().unwrap();
    let m = Mutex::anonymous(0u64).unwrap();
    interrupted("Condvar::wait_for", || {
        let (g, holds) = cv
            .wait_for(m.lock().unwrap(), None, |v| *v == 1)
            .map_err(|_| Error::NotOwner {
                name: shmprim::ObjectName::unknown(),
            })?;
        // The mutex is held again after an interrupted wait.
        assert!(m.is_locked());
        drop(g);
        if holds {
            Ok(())
        } else {
            Err(Error::timeout(&shmprim::ObjectName::unknown()))
        }
    });
}

#[test]
fn outside_interruptible_a_wait_absorbs_the_signal_and_goes_on() {
    let q = Queue::<u64>::anonymous(4).unwrap();
    let (r, took) = under_signals(|| q.get_timeout(Duration::from_millis(300)));
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    // And a call that succeeds inside `interruptible` keeps its answer.
    q.put(7).unwrap();
    assert_eq!(interruptible(|| q.get()).unwrap(), 7);
}

/// An interrupted wait's error names the object it waited on.
#[test]
fn an_interrupted_wait_names_its_object() {
    let name = format!("shmprim-test-{}-interrupted-names", std::process::id());
    let q = Queue::<u64>::create(&name, 4).unwrap();
    // The handle keeps the queue; the name goes at once.
    Queue::<u64>::unlink(&name).unwrap();
    let (r, _) = under_signals(|| interruptible(|| q.get_timeout(LIMIT)));
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Interrupted { .. }), "{e:?}");
    assert_eq!(e.object_name(), Some(name.as_str()));
    assert!(
        e.to_string().starts_with(&format!("segment {name:?}: ")),
        "{e}"
    );
}
