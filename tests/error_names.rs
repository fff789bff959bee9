//! Every error names its object: the outcomes a handle returns (`Timeout`,
//! `Full`, `Empty`, `Closed`, `BrokenBarrier`, `NotOwner`, `Overflow`,
//! `IndexOutOfRange`, `BufferTooSmall`) carry the name of the segment they
//! are about, in their field, in `object_name()` and in their message, also
//! when they come from a layer that does not know the name (the in-place lock
//! and semaphore states, the rings' cores) and when a child process reports
//! them.

mod common;

use std::time::Duration;

use common::ShmName;
use shmprim::mutex::ByteLock;
use shmprim::ring::spsc::raw::RawSpscRing;
use shmprim::ring::spsc::{SpscByteRing, SpscRing, TryError};
use shmprim::{
    Array, Barrier, ByteQueue, DuplexRing, Error, Event, Mutex, Pipe, Pool, Process, Queue,
    RawReentrantMutex, Semaphore,
};

shmprim::test_harness!();

const SHORT: Duration = Duration::from_millis(20);

/// Asserts that `r` failed with an error `is` accepts, naming `name` in its
/// field, in `object_name` and in both its messages.
#[track_caller]
fn names<T: std::fmt::Debug>(r: shmprim::Result<T>, is: fn(&Error) -> bool, name: &str) {
    let e = r.expect_err("the call was to fail");
    assert!(is(&e), "unexpected error {e:?}");
    assert_eq!(e.object_name(), Some(name), "{e:?}");
    let shown = e.to_string();
    assert!(shown.contains(&format!("segment {name:?}")), "{shown}");
    assert!(format!("{e:?}").contains(name), "{e:?}");
}

fn timeout(e: &Error) -> bool {
    matches!(e, Error::Timeout { .. })
}
fn full(e: &Error) -> bool {
    matches!(e, Error::Full { .. })
}
fn empty(e: &Error) -> bool {
    matches!(e, Error::Empty { .. })
}
fn closed(e: &Error) -> bool {
    matches!(e, Error::Closed { .. })
}
fn too_small(e: &Error) -> bool {
    matches!(e, Error::BufferTooSmall { .. })
}

#[test]
fn queue_errors_name_the_queue() {
    let name = ShmName::new("names-queue");
    let q = Queue::<u64>::create(&name, 1).unwrap();
    names(q.try_get(), empty, &name);
    names(q.get_timeout(SHORT), timeout, &name);
    q.put(1).unwrap();
    names(q.try_put(2), full, &name);
    names(q.put_timeout(2, SHORT), timeout, &name);
    q.close();
    names(q.put(3), closed, &name);

    let bname = ShmName::new("names-bytes");
    let b = ByteQueue::create(&bname, 2, 16).unwrap();
    names(b.try_get(), empty, &bname);
    b.put(b"twelve bytes").unwrap();
    names(b.try_get_into(&mut [0; 4]), too_small, &bname);
}

#[test]
fn pipe_and_ring_errors_name_their_segment() {
    let name = ShmName::new("names-pipe");
    let p = Pipe::create(&name, 64, 16).unwrap();
    let (mut a, mut b) = (p.end(shmprim::ring::End::A).unwrap(), p.writer().unwrap());
    names(a.try_recv(), empty, &name);
    names(a.recv_timeout(SHORT), timeout, &name);
    let msg = b"0123456789abcdef";
    while b.try_send(msg).is_ok() {}
    names(b.try_send(msg), full, &name);
    names(a.try_recv_into(&mut [0; 4]), too_small, &name);
    drop(a);
    names(b.try_send(b"x"), closed, &name);
    drop(b);
    names(p.reader(), closed, &name);

    let name = ShmName::new("names-bytering");
    let ring = SpscByteRing::create(&name, 64, 16).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    names(rx.try_recv(), empty, &name);
    names(rx.recv_timeout(SHORT), timeout, &name);
    while tx.try_send(msg).is_ok() {}
    names(tx.try_send(msg), full, &name);
    names(rx.try_recv_into(&mut [0; 2]), too_small, &name);
    drop(rx);
    names(tx.try_send(msg), closed, &name);

    let name = ShmName::new("names-spsc");
    let ring = SpscRing::<u64>::create(&name, 2).unwrap();
    let (tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    names(rx.pop_timeout(SHORT), timeout, &name);
    // A try's `TryError` names nothing; the end gives the `Error` it stands for.
    assert_eq!(rx.try_pop(), Err(TryError::Empty));
    names(Err::<(), _>(rx.error(TryError::Empty)), empty, &name);
    let nameless = Error::from(TryError::Empty);
    assert_eq!(
        (nameless.object_name(), nameless.to_string()),
        (None, "empty".into())
    );
    drop(tx);
    names(rx.pop(), closed, &name);

    // The C functions' tries name the ring through the raw ends' `error`.
    let name = ShmName::new("names-raw-spsc");
    let ring = RawSpscRing::create(&name, 2, 8, 8, &Default::default()).unwrap();
    let (tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    drop(tx);
    let answer = rx.try_pop(&mut [0; 8]).unwrap_err();
    assert_eq!(answer, TryError::Closed);
    names(Err::<(), _>(rx.error(answer)), closed, &name);

    let name = ShmName::new("names-duplex");
    let ring = DuplexRing::<u64>::create(&name, 2).unwrap();
    let (mut a, b) = (ring.end_a().unwrap(), ring.end_b().unwrap());
    names(a.recv_timeout(SHORT), timeout, &name);
    drop(b);
    names(a.recv(), closed, &name);
}

#[test]
fn lock_and_counter_errors_name_their_segment() {
    let name = ShmName::new("names-mutex");
    let m = Mutex::create(&name, 0u64).unwrap();
    let held = m.lock().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let r = m.lock_timeout(SHORT).map(drop).map_err(Error::from);
            names(r, timeout, &name);
        });
    });
    drop(held);

    let name = ShmName::new("names-rlock");
    let r = ByteLock::<RawReentrantMutex>::create(
        Some(&name),
        8,
        8,
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    // SAFETY: nothing refers to the payload; the unlock is refused, not done.
    let unheld = unsafe { r.unlock() };
    names(unheld, |e| matches!(e, Error::NotOwner { .. }), &name);
    r.lock_until(shmprim::Deadline::now()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| names(r.lock_until(shmprim::Deadline::now()), timeout, &name));
    });
    // SAFETY: as above; this thread holds it.
    unsafe { r.unlock() }.unwrap();

    let name = ShmName::new("names-sem");
    let sem = Semaphore::create_bounded(&name, 1, 1).unwrap();
    names(
        sem.release(1),
        |e| matches!(e, Error::Overflow { .. }),
        &name,
    );
    sem.acquire();
    names(sem.acquire_timeout(SHORT), timeout, &name);

    let name = ShmName::new("names-event");
    let ev = Event::create(&name).unwrap();
    names(ev.wait_timeout(SHORT), timeout, &name);

    let name = ShmName::new("names-barrier");
    let bar = Barrier::create(&name, 2).unwrap();
    names(bar.wait_timeout(SHORT), timeout, &name);
    names(
        bar.wait(),
        |e| matches!(e, Error::BrokenBarrier { .. }),
        &name,
    );

    let name = ShmName::new("names-array");
    let arr = Array::<u32>::create(&name, 4).unwrap();
    names(
        arr.get(9),
        |e| matches!(e, Error::IndexOutOfRange { .. }),
        &name,
    );
}

/// Python's pool names no segment: its own errors say "the pool".
#[test]
fn pool_errors_name_the_pool() {
    fn nap(ms: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }
    let pool = Pool::new(1).unwrap();
    let r = pool.apply_async(nap, 2_000).unwrap();
    let e = r.get_timeout(SHORT).unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert_eq!(e.object_name(), Some("the pool"));
    assert_eq!(e.to_string(), "the pool: operation timed out");
    pool.terminate();
}

/// What a child reports of the error its receive ended with: its message and
/// its debug form (what `main` returning it prints after `Error: `).
fn receive_until_closed(name: String) -> (String, String) {
    let p = Pipe::open(&name).unwrap();
    let mut rx = p.reader().unwrap();
    let e = loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    (e.to_string(), format!("{e:?}"))
}

#[test]
fn a_child_reports_the_name_of_what_it_found_closed() {
    let name = ShmName::new("names-child");
    let p = Pipe::create_simplex(&name, 256, 16).unwrap();
    let mut tx = p.writer().unwrap();
    let child = Process::spawn(receive_until_closed, name.to_string()).unwrap();
    tx.send(b"one").unwrap();
    drop(tx);
    let (shown, debug) = child.join().unwrap();
    assert_eq!(shown, format!("segment {:?}: closed", name.as_str()));
    assert_eq!(debug, format!("Closed {{ name: {:?} }}", name.as_str()));
}
