//! A queue's end of stream (every sender closed or dead: receivers drain, then
//! `Closed`), Python 3.13's `shutdown(immediate)`, and `JoinableQueue`'s
//! `task_done` / `join`. Tests named `test_*` mirror the CPython test of that
//! name (`_test_multiprocessing.py`, `test_queue.py`).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::ShmName;
use shmprim::process::Builder;
use shmprim::{ByteQueue, Error, Options, Process, Queue, Role, Semaphore};

shmprim::test_harness!();

const LIMIT: Duration = Duration::from_secs(30);

fn send_only() -> Options {
    Options::default().role(Role::Send)
}

fn receive_only() -> Options {
    Options::default().role(Role::Receive)
}

/// A producer process: opens the queue to send, says so on `ready`, puts
/// `count` values `id << 32 | i` (for ever with `u64::MAX`, until killed),
/// then closes its handle.
fn producer((queue, ready, id, count): (String, String, u64, u64)) {
    let q = Queue::<u64>::open_with_options(&queue, &send_only()).unwrap();
    Semaphore::open(&ready).unwrap().release(1).unwrap();
    let mut i = 0;
    while i < count {
        q.put(id << 32 | i).unwrap();
        i += 1;
    }
    q.close();
    assert!(matches!(q.put(0), Err(Error::Closed { .. })));
}

/// A consumer process: takes values until the stream ends; returns them.
fn consumer(queue: String) -> Vec<u64> {
    let q = Queue::<u64>::open_with_options(&queue, &receive_only()).unwrap();
    let mut got = Vec::new();
    loop {
        match q.get() {
            Ok(v) => got.push(v),
            Err(Error::Closed { .. }) => return got,
            Err(e) => panic!("get: {e}"),
        }
    }
}

fn spawn<A: shmprim::process::Payload, R: shmprim::process::Payload>(
    f: fn(A) -> R,
    arg: A,
) -> Process<R> {
    Builder::new().daemon(true).spawn(f, arg).unwrap()
}

/// Four producers and two consumers in processes of their own; producers
/// `killed` are SIGKILLed while putting. The consumers must receive every value
/// of the producers that finished, a gapless prefix of each killed one's, each
/// exactly once, and then `Closed`.
fn four_producers_two_consumers(test: &str, killed: &[u64]) {
    const PER: u64 = 20_000;
    let name = ShmName::new(test);
    let ready = ShmName::new(&format!("{test}-ready"));
    let q = Queue::<u64>::create(&name, 64).unwrap();
    let sem = Semaphore::create(&ready, 0).unwrap();
    let consumers: Vec<_> = (0..2).map(|_| spawn(consumer, name.to_string())).collect();
    let mut producers: Vec<_> = (0..4u64)
        .map(|id| {
            let count = if killed.contains(&id) { u64::MAX } else { PER };
            spawn(producer, (name.to_string(), ready.to_string(), id, count))
        })
        .collect();
    for _ in 0..4 {
        sem.acquire_timeout(LIMIT).unwrap();
    }
    // Every producer has its sending handle: the parent's may go.
    q.close();
    std::thread::sleep(Duration::from_millis(30));
    for (id, mut p) in producers.drain(..).enumerate() {
        if killed.contains(&(id as u64)) {
            p.kill().unwrap();
        } else {
            p.join().unwrap();
        }
    }
    let mut seen = HashSet::new();
    let mut per = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for mut c in consumers {
        // Bounded: a consumer that never saw the end of the stream would
        // block for ever (it is killed when dropped).
        let code = c.join_timeout(LIMIT).unwrap();
        assert_eq!(
            code,
            Some(0),
            "a consumer did not see the end of the stream"
        );
        for v in c.join().unwrap() {
            assert!(seen.insert(v), "value {v:#x} delivered twice");
            per[(v >> 32) as usize].push(v & 0xffff_ffff);
        }
    }
    for (id, got) in per.iter_mut().enumerate() {
        got.sort_unstable();
        let want = if killed.contains(&(id as u64)) {
            got.len() as u64
        } else {
            PER
        };
        assert!(
            got.iter().copied().eq(0..want),
            "producer {id}: {} values, not 0..{want}",
            got.len()
        );
    }
    assert_eq!(q.senders(), 0);
    drop((q, sem));
    Queue::<u64>::unlink(&name).unwrap();
    Semaphore::unlink(&ready).unwrap();
}

#[test]
fn four_producers_that_close_let_two_consumers_drain_everything_then_closed() {
    four_producers_two_consumers("eos-close", &[]);
}

#[test]
fn producers_sigkilled_while_putting_end_the_stream_too() {
    four_producers_two_consumers("eos-kill", &[1, 3]);
}

/// Python's `Queue.close` means "this process puts no more": it must not fail
/// another producer's puts (the global close is `shutdown`).
#[test]
fn closing_one_producer_leaves_the_others_putting() {
    let name = ShmName::new("eos-one-close");
    let a = Queue::<u32>::create(&name, 8).unwrap();
    let b = Queue::<u32>::open_with_options(&name, &send_only()).unwrap();
    let r = Queue::<u32>::open_with_options(&name, &receive_only()).unwrap();
    a.put(1).unwrap();
    a.close();
    assert!(!a.is_sending());
    assert!(matches!(a.put(2), Err(Error::Closed { .. })));
    b.put(3).unwrap();
    assert_eq!(r.get().unwrap(), 1);
    assert_eq!(r.get().unwrap(), 3);
    assert!(!r.is_ended(), "b still sends");
    assert!(matches!(r.try_get(), Err(Error::Empty { .. })));
    assert_eq!(r.senders(), 1);
    drop(a);
    Queue::<u32>::unlink(&name).unwrap();
}

/// CPython `test_closed_queue_put_get_exceptions`: after `close`, `put`
/// fails, and so does `get` on the drained queue. (Python raises
/// `ValueError`; shmprim's close ends the stream instead, so the get is
/// `Closed` once nothing is left.)
#[test]
fn test_closed_queue_put_get_exceptions() {
    let q = Queue::<u32>::anonymous(4).unwrap();
    q.put(7).unwrap();
    q.close();
    assert!(matches!(q.put(8), Err(Error::Closed { .. })));
    assert_eq!(q.get().unwrap(), 7);
    assert!(matches!(q.get(), Err(Error::Closed { .. })));
    let r = q.try_get();
    assert!(matches!(r, Err(Error::Closed { .. })), "{r:?}");
}

#[test]
fn a_receive_only_handle_refuses_puts_and_never_holds_the_stream_open() {
    let name = ShmName::new("eos-receive");
    let r = Queue::<u8>::create_with_options(&name, 4, &receive_only()).unwrap();
    assert!(matches!(r.try_put(1), Err(Error::Closed { .. })));
    // Nobody has sent yet: not the end, only empty.
    assert!(!r.is_ended());
    assert!(matches!(r.try_get(), Err(Error::Empty { .. })));
    let s = Queue::<u8>::open_with_options(&name, &send_only()).unwrap();
    s.put(5).unwrap();
    drop(s);
    assert!(r.is_ended());
    assert_eq!(r.try_get().unwrap(), 5);
    assert!(matches!(r.try_get(), Err(Error::Closed { .. })));
    Queue::<u8>::unlink(&name).unwrap();
}

#[test]
fn the_last_sender_closing_wakes_a_blocked_receiver_at_once() {
    let name = ShmName::new("eos-wake");
    let s = Queue::<u64>::create_with_options(&name, 4, &send_only()).unwrap();
    let r = Queue::<u64>::open_with_options(&name, &receive_only()).unwrap();
    std::thread::scope(|scope| {
        let getter = scope.spawn(|| {
            let t = Instant::now();
            (r.get_timeout(LIMIT), t)
        });
        std::thread::sleep(Duration::from_millis(100));
        let closed_at = Instant::now();
        s.close();
        let (got, _) = getter.join().unwrap();
        assert!(matches!(got, Err(Error::Closed { .. })), "{got:?}");
        // Woken by the close, not by a liveness slice (50 ms).
        assert!(closed_at.elapsed() < Duration::from_millis(40));
    });
    drop((s, r));
    Queue::<u64>::unlink(&name).unwrap();
}

#[test]
fn byte_queues_end_their_stream_the_same_way() {
    let name = ShmName::new("eos-bytes");
    let r = ByteQueue::create_with_options(&name, 4, 16, &receive_only()).unwrap();
    let s = ByteQueue::open_with_options(&name, &send_only()).unwrap();
    s.put(b"last words").unwrap();
    s.close();
    assert_eq!(r.get().unwrap(), b"last words");
    assert!(matches!(r.get(), Err(Error::Closed { .. })));
    let mut buf = [0u8; 16];
    assert!(matches!(
        r.try_get_into(&mut buf),
        Err(Error::Closed { .. })
    ));
    drop((s, r));
    ByteQueue::unlink(&name).unwrap();
}

/// Python 3.13 `test_shutdown_immediate_all_methods_in_many_threads`, in
/// short: an immediate shutdown discards what is queued and wakes every
/// blocked getter and putter, whose calls fail.
#[test]
fn test_shutdown_immediate_all_methods_in_many_threads() {
    let full = Queue::<u32>::anonymous(2).unwrap();
    full.put_many(&[1, 2]).unwrap();
    let empty = Queue::<u32>::anonymous(2).unwrap();
    let full_ref = &full;
    std::thread::scope(|scope| {
        let putters: Vec<_> = (0..3)
            .map(|i| scope.spawn(move || full_ref.put_timeout(10 + i, LIMIT)))
            .collect();
        let getters: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| empty.get_timeout(LIMIT)))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        full.shutdown(true);
        empty.shutdown(true);
        for p in putters {
            assert!(matches!(p.join().unwrap(), Err(Error::Closed { .. })));
        }
        for g in getters {
            assert!(matches!(g.join().unwrap(), Err(Error::Closed { .. })));
        }
    });
    assert!(full.is_shutdown());
    assert_eq!(full.len(), 0, "immediate discards what was queued");
    assert!(matches!(full.get(), Err(Error::Closed { .. })));
}

/// Python 3.13 `test_shutdown_nonempty`: a shutdown that is not immediate
/// still hands out what was queued, then fails.
#[test]
fn test_shutdown_nonempty() {
    let q = Queue::<u32>::anonymous(4).unwrap();
    q.put(1).unwrap();
    q.shutdown(false);
    assert!(matches!(q.put(2), Err(Error::Closed { .. })));
    assert_eq!(q.get().unwrap(), 1);
    assert!(matches!(q.get(), Err(Error::Closed { .. })));
}

fn joinable() -> Options {
    Options::default().joinable(true)
}

/// CPython `test_task_done` (JoinableQueue): workers take items and call
/// `task_done`; `join` returns once every item is done, not before.
#[test]
fn test_task_done() {
    let name = ShmName::new("joinable");
    let q = Queue::<u32>::create_with_options(&name, 16, &joinable()).unwrap();
    let done = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (name, done) = (&name, &done);
            scope.spawn(move || {
                let w = Queue::<u32>::open_with_options(name, &receive_only()).unwrap();
                while let Ok(v) = w.get_timeout(LIMIT) {
                    std::thread::sleep(Duration::from_micros(200 * v as u64 % 3));
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    w.task_done().unwrap();
                }
            });
        }
        for i in 0..40 {
            q.put(i).unwrap();
        }
        q.join_timeout(LIMIT).unwrap();
        assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 40);
        assert_eq!(q.unfinished_tasks(), 0);
        q.close();
    });
    drop(q);
    Queue::<u32>::unlink(&name).unwrap();
}

/// Python raises `ValueError('task_done() called too many times')`.
#[test]
fn task_done_called_more_often_than_items_put_is_an_error() {
    let q = Queue::<u8>::anonymous_with_options(4, &joinable()).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.unfinished_tasks(), 2);
    q.get().unwrap();
    q.task_done().unwrap();
    assert!(matches!(
        q.join_timeout(Duration::from_millis(20)),
        Err(Error::Timeout { .. })
    ));
    q.task_done().unwrap();
    q.join().unwrap();
    assert!(matches!(q.task_done(), Err(Error::InvalidArgument { .. })));
    // A queue not created joinable says so.
    let plain = Queue::<u8>::anonymous(4).unwrap();
    assert!(matches!(
        plain.task_done(),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(plain.join(), Err(Error::InvalidArgument { .. })));
}

#[test]
fn a_put_that_fails_counts_no_task_and_an_immediate_shutdown_counts_the_discarded_done() {
    let q = Queue::<u8>::anonymous_with_options(2, &joinable()).unwrap();
    q.put_many(&[1, 2]).unwrap();
    assert!(matches!(q.try_put(3), Err(Error::Full { .. })));
    assert_eq!(q.unfinished_tasks(), 2);
    q.shutdown(true);
    assert_eq!(q.unfinished_tasks(), 0);
    q.join_timeout(Duration::from_millis(1)).unwrap();
}
