//! Queue and ByteQueue: the Python `multiprocessing.Queue` API, a model check
//! against `VecDeque`, cross-process stress, crash recovery under `SIGKILL`, and
//! corruption of the ring's indices and lengths.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{ChildProc, Rng, ShmName, wait_until};
use proptest::prelude::*;
use shmprim::ring::mpmc::{MpmcState, SlotForm};
use shmprim::{ByteQueue, Deadline, Error, Mismatch, Queue, Segment};

const LIMIT: Duration = Duration::from_secs(30);

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    let num = |i: usize| args[i].parse::<u64>().unwrap();
    match role.as_str() {
        "producer" => child_producer(&args[0], &args[1], num(2), num(3)),
        "consumer" => child_consumer(&args[0], &args[1], num(2)),
        "blocked_get" => child_blocked_get(&args[0]),
        "fork_share" => child_fork_share(),
        "open_and_vanish" => {
            // Dies holding its record, as a killed process would.
            std::mem::forget(Queue::<u64>::open(&args[0]).unwrap());
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

// ---------------------------------------------------------------- the API

#[test]
fn put_then_get_returns_values_in_fifo_order() {
    let q: Queue<u64> = Queue::anonymous(4).unwrap();
    for v in [10, 20, 30] {
        q.put(v).unwrap();
    }
    assert_eq!(q.get().unwrap(), 10);
    assert_eq!(q.get().unwrap(), 20);
    q.put(40).unwrap();
    assert_eq!(q.get().unwrap(), 30);
    assert_eq!(q.get().unwrap(), 40);
}

#[test]
fn try_put_on_full_is_full_and_try_get_on_empty_is_empty() {
    let q: Queue<u32> = Queue::anonymous(3).unwrap();
    assert!(matches!(q.try_get(), Err(Error::Empty { .. })));
    for v in 0..3 {
        q.try_put(v).unwrap();
    }
    assert!(q.is_full());
    assert!(matches!(q.try_put(9), Err(Error::Full { .. })));
    assert_eq!(q.try_get().unwrap(), 0);
    q.try_put(9).unwrap();
    assert_eq!(q.len(), 3);
}

#[test]
fn timeouts_expire_on_empty_and_full_queues() {
    let q: Queue<u8> = Queue::anonymous(1).unwrap();
    let t = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(30)),
        Err(Error::Timeout { .. })
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
    q.put(1).unwrap();
    let t = Instant::now();
    assert!(matches!(
        q.put_timeout(2, Duration::from_millis(30)),
        Err(Error::Timeout { .. })
    ));
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(q.get_timeout(Duration::from_millis(30)).unwrap(), 1);
}

#[test]
fn len_is_empty_is_full_and_capacity_track_contents() {
    let q: Queue<u16> = Queue::anonymous(5).unwrap();
    assert_eq!(q.capacity(), 5);
    assert!(q.is_empty() && !q.is_full());
    assert_eq!(q.put_many(&[1, 2, 3, 4, 5, 6]).unwrap(), 5);
    assert!(q.is_full() && !q.is_empty());
    assert_eq!(q.len(), 5);
    let mut buf = [0u16; 3];
    assert_eq!(q.get_many(&mut buf).unwrap(), 3);
    assert_eq!(buf, [1, 2, 3]);
    assert_eq!(q.len(), 2);
    assert!(matches!(q.put_many(&[]), Ok(0)));
}

#[test]
fn shutdown_fails_puts_and_lets_gets_drain_then_fail() {
    let q: Queue<u64> = Queue::anonymous(4).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.shutdown(false);
    assert!(q.is_shutdown());
    assert!(matches!(q.put(3), Err(Error::Closed { .. })));
    assert!(matches!(q.try_put(3), Err(Error::Closed { .. })));
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.try_get().unwrap(), 2);
    assert!(matches!(q.get(), Err(Error::Closed { .. })));
    assert!(matches!(q.try_get(), Err(Error::Closed { .. })));
}

#[test]
fn shutdown_wakes_a_getter_blocked_in_another_thread() {
    let q: Queue<u64> = Queue::anonymous(2).unwrap();
    std::thread::scope(|s| {
        let getter = s.spawn(|| q.get());
        std::thread::sleep(Duration::from_millis(50));
        q.shutdown(false);
        assert!(matches!(getter.join().unwrap(), Err(Error::Closed { .. })));
    });
}

fn child_blocked_get(name: &str) {
    let q: Queue<u64> = Queue::open(name).unwrap();
    assert_eq!(q.get_timeout(LIMIT).unwrap(), 77);
}

#[test]
fn put_wakes_a_getter_blocked_in_another_process() {
    let name = ShmName::new("blocked_get");
    let q: Queue<u64> = Queue::create(&name, 2).unwrap();
    let mut child = spawn("blocked_get", &[&name]);
    // Let the child go to sleep on the empty queue, then put.
    std::thread::sleep(Duration::from_millis(200));
    q.put(77).unwrap();
    child.expect_success(LIMIT);
    assert!(q.is_empty());
}

#[test]
fn threads_sharing_one_handle_deliver_everything_once() {
    let q: Queue<u64> = Queue::anonymous(8).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let producers: Vec<_> = (0..3u64)
            .map(|p| {
                let q = &q;
                s.spawn(move || {
                    for i in 0..2000 {
                        q.put(p << 32 | i).unwrap();
                    }
                })
            })
            .collect();
        for _ in 0..2 {
            s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    match q.get() {
                        Ok(v) => mine.push(v),
                        Err(Error::Closed { .. }) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                seen.lock().unwrap().extend(mine);
            });
        }
        for p in producers {
            p.join().unwrap();
        }
        q.shutdown(false);
    });
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    let mut want: Vec<u64> = (0..3u64)
        .flat_map(|p| (0..2000).map(move |i| p << 32 | i))
        .collect();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn more_threads_than_lanes_on_one_handle_still_deliver_everything_once() {
    // 16 threads on one handle: more than its 8 lanes, so some operations run on
    // temporary records taken from the ring's table.
    let q: Queue<u64> = Queue::anonymous(4).unwrap();
    let total = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..16u64 {
            let (q, total) = (&q, &total);
            s.spawn(move || {
                for i in 0..500 {
                    q.put(t << 32 | i).unwrap();
                    let v = q.get().unwrap();
                    total.fetch_add(v, Ordering::Relaxed);
                }
            });
        }
    });
    let want: u64 = (0..16u64)
        .map(|t| (0..500).map(|i| t << 32 | i).sum::<u64>())
        .sum();
    assert_eq!(total.into_inner(), want);
    assert!(q.is_empty());
}

#[test]
fn opening_and_dropping_many_handles_never_exhausts_the_records() {
    let name = ShmName::new("records_back");
    let q: Queue<u8> = Queue::create(&name, 2).unwrap();
    // Far more handles than the ring has records (256), one after the other.
    for i in 0..600u32 {
        let h: Queue<u8> = Queue::open(&name).unwrap();
        h.put(i as u8).unwrap();
        assert_eq!(q.get().unwrap(), i as u8);
    }
}

fn child_fork_share() {
    const N: u64 = 50_000;
    let q: Queue<u64> = Queue::anonymous(4).unwrap();
    q.put(u64::MAX).unwrap(); // the parent's lane claims its record before the fork
    assert_eq!(q.get().unwrap(), u64::MAX);
    // SAFETY: the forked child only uses the queue (atomics, futex calls, no
    // allocation on these paths) and then calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = (0..N).all(|i| q.put_timeout(i, LIMIT).is_ok());
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    for i in 0..N {
        assert_eq!(q.get_timeout(LIMIT).unwrap(), i, "lost or reordered");
    }
    let mut status = 0;
    // SAFETY: waiting for our own child; `status` is writable.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    // The child's forking thread had the parent thread's key; had it kept it,
    // the child would have used the parent's in-flight record instead of
    // claiming its own (two processes overwriting one record's claims).
    assert_eq!(
        records_used(q.segment()),
        2,
        "the forked child must claim a record of its own"
    );
}

/// Lane 0 of a handle (the record it claimed at open) belongs to the first
/// thread that uses the handle; any other thread must take a lane and record of
/// its own, or two threads would overwrite each other's claims.
#[test]
fn a_second_thread_of_a_handle_claims_a_record_of_its_own() {
    let q: Queue<u64> = Queue::anonymous(8).unwrap();
    q.put(1).unwrap();
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(
        records_used(q.segment()),
        1,
        "the owner uses lane 0's record"
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            q.put(2).unwrap();
            assert_eq!(q.get().unwrap(), 2);
        });
    });
    assert_eq!(records_used(q.segment()), 2);
    // The owner is still on lane 0.
    q.put(3).unwrap();
    assert_eq!(q.get().unwrap(), 3);
    assert_eq!(records_used(q.segment()), 2);
}

/// Makes in-flight record `index` claim `pos` for a put (`op` 1) or a get
/// (`op` 2), in the packing `MpmcState::RECORDS_OFFSET` documents.
fn write_claim(seg: &Segment, index: usize, pos: u64, op: u64) {
    let offset = MpmcState::RECORDS_OFFSET + index * MpmcState::RECORD_SIZE + 8;
    scribble(seg, offset, (pos << 8) | (1 << 2) | op, 8);
}

/// A queue whose second in-flight record belongs to a process that has died.
fn queue_with_a_dead_participant(name: &ShmName, capacity: usize) -> Queue<u64> {
    let q: Queue<u64> = Queue::create(name, capacity).unwrap();
    spawn("open_and_vanish", &[name]).expect_success(LIMIT);
    assert_eq!(records_used(q.segment()), 2);
    q
}

/// Calls `op` until it gives something other than `Full` / `Empty`; panics
/// after `limit` calls.
fn retry<T>(limit: u32, mut op: impl FnMut() -> shmprim::Result<T>) -> (T, u32) {
    for attempt in 1..=limit {
        match op() {
            Ok(v) => return (v, attempt),
            Err(Error::Full { .. } | Error::Empty { .. }) => {}
            Err(e) => panic!("attempt {attempt}: {e}"),
        }
    }
    panic!("still full or empty after {limit} attempts");
}

#[test]
fn a_try_put_loop_recovers_the_slot_of_a_getter_that_died_holding_it() {
    let name = ShmName::new("dead_getter");
    let q = queue_with_a_dead_participant(&name, 4);
    for v in 0..4 {
        q.try_put(v).unwrap();
    }
    // The dead process claimed position 0 for a get and never released it.
    write_claim(q.segment(), 1, 0, 2);
    scribble(q.segment(), MpmcState::HEAD_OFFSET, 1, 8);
    // `try_put` answers `Full` from the slot's stamp a bounded number of times
    // (64) before it checks `head`, finds the dead claimer and frees the slot.
    let ((), attempts) = retry(200, || q.try_put(9));
    assert!(attempts > 1, "the slot was free at once");
    // Only the dead getter's message (0) is gone.
    let got: Vec<u64> = (0..4).map(|_| q.try_get().unwrap()).collect();
    assert_eq!(got, [1, 2, 3, 9]);
    assert!(matches!(q.try_get(), Err(Error::Empty { .. })));
}

#[test]
fn a_try_get_loop_skips_the_slot_of_a_putter_that_died_holding_it() {
    let name = ShmName::new("dead_putter");
    let q = queue_with_a_dead_participant(&name, 4);
    q.try_put(1).unwrap();
    // The dead process claimed position 1 for a put and never published it.
    write_claim(q.segment(), 1, 1, 1);
    scribble(q.segment(), MpmcState::TAIL_OFFSET, 2, 8);
    q.try_put(3).unwrap();
    assert_eq!(q.try_get().unwrap(), 1);
    let (v, attempts) = retry(200, || q.try_get());
    assert!(attempts > 1, "the slot was skipped at once");
    assert_eq!(v, 3);
    assert!(matches!(q.try_get(), Err(Error::Empty { .. })));
}

/// The ring's count of in-flight records ever claimed.
fn records_used(seg: &shmprim::Segment) -> u32 {
    assert!(seg.len() >= MpmcState::RECORDS_USED_OFFSET + 4);
    // SAFETY: in bounds (checked), 4-byte aligned (a `u32` field of the
    // page-aligned state), and only ever accessed atomically.
    let word = unsafe {
        &*seg
            .as_ptr()
            .add(MpmcState::RECORDS_USED_OFFSET)
            .cast::<std::sync::atomic::AtomicU32>()
    };
    word.load(Ordering::Acquire)
}

#[test]
fn a_forked_child_and_its_parent_share_an_anonymous_queue() {
    spawn("fork_share", &[]).expect_success(Duration::from_secs(60));
}

#[test]
fn open_checks_the_element_type_and_open_or_create_the_capacity() {
    let name = ShmName::new("open_checks");
    let q: Queue<u64> = Queue::create(&name, 4).unwrap();
    q.put(5).unwrap();
    let err = Queue::<u32>::open(&name).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Incompatible {
                what: Mismatch::Payload,
                ..
            }
        ),
        "{err}"
    );
    let err = ByteQueue::open(&name).unwrap_err();
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
    let (other, how) = Queue::<u64>::open_or_create(&name, 4).unwrap();
    assert_eq!(how, shmprim::Disposition::Opened);
    assert_eq!(other.get().unwrap(), 5);
    assert!(Queue::<u64>::open_or_create(&name, 8).is_err());
    assert!(matches!(
        Queue::<u64>::create(&name, 4),
        Err(Error::AlreadyExists { .. })
    ));
    Queue::<u64>::unlink(&name).unwrap();
    assert!(matches!(
        Queue::<u64>::open(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn inspection_shows_depth_capacity_and_closed() {
    let name = ShmName::new("inspect");
    let q: Queue<u32> = Queue::create(&name, 8).unwrap();
    q.put_many(&[1, 2, 3]).unwrap();
    let line = |n: &str| shmprim::inspect::inspect(n).unwrap().state.unwrap().line;
    assert_eq!(line(&name), "depth 3/8, open, 0 getting, 0 putting");
    q.get().unwrap();
    q.shutdown(false);
    assert_eq!(line(&name), "depth 2/8, closed, 0 getting, 0 putting");
}

#[test]
fn zero_capacity_is_refused() {
    assert!(matches!(
        Queue::<u64>::anonymous(0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        ByteQueue::anonymous(4, 0),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn byte_queue_carries_messages_of_every_length_up_to_the_maximum() {
    let q = ByteQueue::anonymous(3, 16).unwrap();
    assert_eq!(q.max_message(), 16);
    for len in 0..=16usize {
        let msg: Vec<u8> = (0..len as u8).collect();
        q.put(&msg).unwrap();
        assert_eq!(q.get().unwrap(), msg);
    }
    assert!(matches!(
        q.put(&[0u8; 17]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(q.is_empty(), "a refused message must not be queued");
}

#[test]
fn byte_queue_keeps_a_message_too_big_for_the_receive_buffer() {
    let q = ByteQueue::anonymous(2, 32).unwrap();
    q.put(b"a message of 24 bytes..!").unwrap();
    let mut small = [0u8; 8];
    let err = q.try_get_into(&mut small).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BufferTooSmall {
                needed: 24,
                available: 8,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(q.len(), 1, "the message stays queued");
    let mut big = [0u8; 32];
    let n = q.get_into(&mut big).unwrap();
    assert_eq!(&big[..n], b"a message of 24 bytes..!");
}

#[test]
fn byte_queue_batches_keep_order() {
    let q = ByteQueue::anonymous(4, 8).unwrap();
    let msgs: [&[u8]; 5] = [b"a", b"bb", b"", b"dddd", b"e"];
    assert_eq!(q.put_many(&msgs).unwrap(), 4);
    let got = q.get_many(10).unwrap();
    assert_eq!(
        got,
        vec![b"a".to_vec(), b"bb".to_vec(), vec![], b"dddd".to_vec()]
    );
    assert!(matches!(q.get_many(10), Err(Error::Empty { .. })));
}

// ---------------------------------------------------------------- model check

#[derive(Debug, Clone)]
enum Op {
    TryPut(u64),
    TryGet,
    PutMany(Vec<u64>),
    GetMany(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u64>().prop_map(Op::TryPut),
        3 => Just(Op::TryGet),
        1 => proptest::collection::vec(any::<u64>(), 0..80).prop_map(Op::PutMany),
        1 => (0usize..80).prop_map(Op::GetMany),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random operation sequences (wrapping many times around small, odd and
    /// power-of-two capacities, and batches longer than one claim) behave as a
    /// bounded `VecDeque`.
    #[test]
    fn element_queue_matches_a_vecdeque(cap in 1usize..10, ops in proptest::collection::vec(op(), 1..200)) {
        let q: Queue<u64> = Queue::anonymous(cap).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::TryPut(v) => {
                    let r = q.try_put(v);
                    if model.len() < cap {
                        prop_assert!(r.is_ok());
                        model.push_back(v);
                    } else {
                        prop_assert!(matches!(r, Err(Error::Full { .. })), "{:?}", r);
                    }
                }
                Op::TryGet => match model.pop_front() {
                    Some(v) => prop_assert_eq!(q.try_get().unwrap(), v),
                    None => prop_assert!(matches!(q.try_get(), Err(Error::Empty { .. })), "not empty"),
                },
                Op::PutMany(vs) => {
                    let room = cap - model.len();
                    let want = vs.len().min(room);
                    match q.put_many(&vs) {
                        Ok(n) => prop_assert_eq!(n, want),
                        Err(Error::Full { .. }) => prop_assert!(room == 0 && !vs.is_empty()),
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                    model.extend(&vs[..want]);
                }
                Op::GetMany(n) => {
                    let mut buf = vec![0u64; n];
                    let want = n.min(model.len());
                    match q.get_many(&mut buf) {
                        Ok(k) => prop_assert_eq!(k, want),
                        Err(Error::Empty { .. }) => prop_assert!(model.is_empty() && n > 0),
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                    let expected: Vec<u64> = model.drain(..want).collect();
                    prop_assert_eq!(&buf[..want], &expected[..]);
                }
            }
            prop_assert_eq!(q.len(), model.len());
            prop_assert_eq!(q.is_full(), model.len() == cap);
        }
    }

    /// The same for byte messages of random lengths up to the maximum.
    #[test]
    fn byte_queue_matches_a_vecdeque(cap in 1usize..10, max in 1usize..24, ops in proptest::collection::vec(op(), 1..200)) {
        let q = ByteQueue::anonymous(cap, max).unwrap();
        let msg = |v: u64| -> Vec<u8> { v.to_le_bytes().iter().cycle().take(v as usize % (max + 1)).copied().collect() };
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        for op in ops {
            match op {
                Op::TryPut(v) => {
                    let m = msg(v);
                    let r = q.try_put(&m);
                    if model.len() < cap {
                        prop_assert!(r.is_ok());
                        model.push_back(m);
                    } else {
                        prop_assert!(matches!(r, Err(Error::Full { .. })), "{:?}", r);
                    }
                }
                Op::TryGet => match model.pop_front() {
                    Some(m) => prop_assert_eq!(q.try_get().unwrap(), m),
                    None => prop_assert!(matches!(q.try_get(), Err(Error::Empty { .. })), "not empty"),
                },
                Op::PutMany(vs) => {
                    let ms: Vec<Vec<u8>> = vs.iter().map(|&v| msg(v)).collect();
                    let refs: Vec<&[u8]> = ms.iter().map(|m| m.as_slice()).collect();
                    let room = cap - model.len();
                    let want = ms.len().min(room);
                    match q.put_many(&refs) {
                        Ok(n) => prop_assert_eq!(n, want),
                        Err(Error::Full { .. }) => prop_assert!(room == 0 && !ms.is_empty()),
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                    model.extend(ms.into_iter().take(want));
                }
                Op::GetMany(n) => {
                    let want = n.min(model.len());
                    match q.get_many(n) {
                        Ok(got) => {
                            let expected: Vec<Vec<u8>> = model.drain(..want).collect();
                            prop_assert_eq!(got, expected);
                        }
                        Err(Error::Empty { .. }) => prop_assert!(model.is_empty() && n > 0),
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                }
            }
            prop_assert_eq!(q.len(), model.len());
        }
    }
}

// ---------------------------------------------------------------- cross-process

/// Layout of the results segment shared by the parent and the children of the
/// stress and crash tests (all `u64` words):
/// `[0..8)` per-producer count of completed puts, `[8..16)` per-consumer count of
/// received messages, `[16]` duplicates, `[17]` order violations, `[18]` total
/// received, `[19]` children attached, then the bitmap of received messages
/// (producer `p`, sequence `s` at bit `p * per_producer + s`).
const SENT: usize = 0;
const RECEIVED: usize = 8;
const DUPLICATES: usize = 16;
const ORDER_VIOLATIONS: usize = 17;
const TOTAL: usize = 18;
const ATTACHED: usize = 19;
const BITMAP: usize = 32;

fn results_size(producers: u64, per_producer: u64) -> usize {
    (BITMAP + (producers * per_producer).div_ceil(64) as usize) * 8
}

fn word(seg: &Segment, i: usize) -> &AtomicU64 {
    assert!((i + 1) * 8 <= seg.len());
    // SAFETY: in bounds (checked), 8-byte aligned (page-aligned data area), and
    // only ever accessed atomically.
    unsafe { &*seg.as_ptr().cast::<AtomicU64>().add(i) }
}

fn message(producer: u64, seq: u64) -> u64 {
    producer << 32 | seq
}

/// Puts `per_producer` messages; producers with an odd id use `put_many`.
fn child_producer(queue: &str, results: &str, id: u64, per_producer: u64) {
    let q: Queue<u64> = Queue::open(queue).unwrap();
    let res = Segment::open(results).unwrap();
    word(&res, ATTACHED).fetch_add(1, Ordering::SeqCst);
    let sent = word(&res, SENT + id as usize);
    let batch = id % 2 == 1;
    let mut seq = 0;
    while seq < per_producer {
        if batch {
            let n = (per_producer - seq).min(32);
            let msgs: Vec<u64> = (seq..seq + n).map(|s| message(id, s)).collect();
            let k = q.put_many_timeout(&msgs, LIMIT).unwrap() as u64;
            seq += k;
        } else {
            q.put_timeout(message(id, seq), LIMIT).unwrap();
            seq += 1;
        }
        // After the put returned: every message below `seq` is in the queue.
        sent.store(seq, Ordering::SeqCst);
    }
}

/// Takes messages until the queue is closed and drained, recording each one in
/// the bitmap before taking the next; consumers with an odd id use `get_many`.
fn child_consumer(queue: &str, results: &str, id: u64) {
    let q: Queue<u64> = Queue::open(queue).unwrap();
    let res = Segment::open(results).unwrap();
    word(&res, ATTACHED).fetch_add(1, Ordering::SeqCst);
    let per_producer = res.param(0);
    let mut last = [None::<u64>; 8];
    let mut record = |v: u64| {
        let (p, s) = (v >> 32, v & 0xffff_ffff);
        assert!(p < 8 && s < per_producer, "message {v:#x} was never sent");
        if last[p as usize].is_some_and(|l| l >= s) {
            word(&res, ORDER_VIOLATIONS).fetch_add(1, Ordering::SeqCst);
        }
        last[p as usize] = Some(s);
        let bit = p * per_producer + s;
        let old =
            word(&res, BITMAP + (bit / 64) as usize).fetch_or(1 << (bit % 64), Ordering::SeqCst);
        if old & (1 << (bit % 64)) != 0 {
            word(&res, DUPLICATES).fetch_add(1, Ordering::SeqCst);
        }
        word(&res, RECEIVED + id as usize).fetch_add(1, Ordering::SeqCst);
        word(&res, TOTAL).fetch_add(1, Ordering::SeqCst);
    };
    let mut buf = [0u64; 16];
    loop {
        let r = if id % 2 == 1 {
            q.get_many_timeout(&mut buf[..1 + (id as usize * 5) % 16], LIMIT)
                .map(|n| buf[..n].to_vec())
        } else {
            q.get_timeout(LIMIT).map(|v| vec![v])
        };
        match r {
            Ok(vs) => vs.into_iter().for_each(&mut record),
            Err(Error::Closed { .. }) => return,
            Err(e) => panic!("consumer {id}: {e}"),
        }
    }
}

struct Run {
    queue: ShmName,
    results: ShmName,
    q: Queue<u64>,
    res: Segment,
    producers: Vec<ChildProc>,
    consumers: Vec<ChildProc>,
}

fn start(tag: &str, capacity: usize, producers: u64, consumers: u64, per_producer: u64) -> Run {
    let queue = ShmName::new(&format!("{tag}_q"));
    let results = ShmName::new(&format!("{tag}_r"));
    let q: Queue<u64> = Queue::create(&queue, capacity).unwrap();
    let res = shmprim::SegmentBuilder::new(shmprim::Kind::Raw)
        .data_size(results_size(producers, per_producer) as u64)
        .param(0, per_producer)
        .create(&results)
        .unwrap();
    let per = per_producer.to_string();
    let consumers = (0..consumers)
        .map(|c| spawn("consumer", &[&queue, &results, &c.to_string()]))
        .collect();
    let producers = (0..producers)
        .map(|p| spawn("producer", &[&queue, &results, &p.to_string(), &per]))
        .collect();
    Run {
        queue,
        results,
        q,
        res,
        producers,
        consumers,
    }
}

impl Run {
    fn received(&self, p: u64, s: u64, per_producer: u64) -> bool {
        let bit = p * per_producer + s;
        word(&self.res, BITMAP + (bit / 64) as usize).load(Ordering::SeqCst) & (1 << (bit % 64))
            != 0
    }
}

#[test]
fn four_producers_four_consumers_lose_and_duplicate_nothing_and_keep_order() {
    const PRODUCERS: u64 = 4;
    const PER_PRODUCER: u64 = 250_000;
    let started = Instant::now();
    let mut run = start("stress", 1024, PRODUCERS, 4, PER_PRODUCER);
    for p in &mut run.producers {
        p.expect_success(Duration::from_secs(120));
    }
    run.q.shutdown(false);
    for c in &mut run.consumers {
        c.expect_success(LIMIT);
    }
    let res = &run.res;
    assert_eq!(
        word(res, DUPLICATES).load(Ordering::SeqCst),
        0,
        "duplicates"
    );
    assert_eq!(
        word(res, ORDER_VIOLATIONS).load(Ordering::SeqCst),
        0,
        "per-producer order broken"
    );
    assert_eq!(
        word(res, TOTAL).load(Ordering::SeqCst),
        PRODUCERS * PER_PRODUCER
    );
    for p in 0..PRODUCERS {
        let missing = (0..PER_PRODUCER)
            .filter(|&s| !run.received(p, s, PER_PRODUCER))
            .count();
        assert_eq!(missing, 0, "producer {p} lost {missing} messages");
    }
    let per_consumer: Vec<u64> = (0..4)
        .map(|c| word(res, RECEIVED + c).load(Ordering::SeqCst))
        .collect();
    assert!(run.q.is_empty());
    eprintln!(
        "stress: {} messages in {:?}, per consumer {per_consumer:?}",
        PRODUCERS * PER_PRODUCER,
        started.elapsed()
    );
    drop((run.queue, run.results));
}

#[test]
fn sigkilled_producers_and_consumers_lose_only_their_in_flight_messages() {
    const ROUNDS: u64 = 50;
    const PRODUCERS: u64 = 3;
    const CONSUMERS: u64 = 3;
    const PER_PRODUCER: u64 = 3_000;
    let started = Instant::now();
    let seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut rng = Rng(seed | 1);
    let mut kills = (0, 0);
    for round in 0..ROUNDS {
        let ctx = format!("round {round} (seed {seed:#x})");
        // Consumers with an odd id take batches, which may lose a whole batch
        // when killed: the crash test uses single gets and puts for precision.
        let mut run = start(
            &format!("crash{round}"),
            16,
            PRODUCERS,
            CONSUMERS,
            PER_PRODUCER,
        );
        let total = PRODUCERS * PER_PRODUCER;
        let kill_at = rng.below(total / 2);
        assert!(
            wait_until(LIMIT, || word(&run.res, TOTAL).load(Ordering::SeqCst)
                >= kill_at),
            "{ctx}: no progress"
        );
        // Kill a random subset, keeping at least one consumer so that the
        // surviving producers can finish.
        let killed_p: Vec<bool> = (0..PRODUCERS).map(|_| rng.below(3) == 0).collect();
        let mut killed_c: Vec<bool> = (0..CONSUMERS).map(|_| rng.below(3) == 0).collect();
        if killed_c.iter().all(|&k| k) {
            killed_c[0] = false;
        }
        for (i, &k) in killed_p.iter().enumerate() {
            if k {
                run.producers[i].kill();
                kills.0 += 1;
            }
        }
        for (i, &k) in killed_c.iter().enumerate() {
            if k {
                run.consumers[i].kill();
                kills.1 += 1;
            }
        }
        for (i, p) in run.producers.iter_mut().enumerate() {
            if !killed_p[i] {
                p.expect_success(LIMIT);
            }
        }
        run.q.shutdown(false);
        for (i, c) in run.consumers.iter_mut().enumerate() {
            if !killed_c[i] {
                c.expect_success(LIMIT);
            }
        }
        let res = &run.res;
        assert_eq!(
            word(res, DUPLICATES).load(Ordering::SeqCst),
            0,
            "{ctx}: duplicates"
        );
        assert_eq!(
            word(res, ORDER_VIOLATIONS).load(Ordering::SeqCst),
            0,
            "{ctx}: order"
        );
        // Messages a killed consumer may have taken without recording: at most one
        // per get, and consumers with an odd id take up to `1 + 5 * id % 16`.
        let consumer_allowance: u64 = (0..CONSUMERS)
            .filter(|&c| killed_c[c as usize])
            .map(|c| if c % 2 == 1 { 1 + (c * 5) % 16 } else { 1 })
            .sum();
        let mut missing = 0;
        for p in 0..PRODUCERS {
            let sent = word(res, SENT + p as usize).load(Ordering::SeqCst);
            // A killed producer's in flight: the put (or put_many batch of up to
            // 32) it had started but whose return it had not recorded.
            let in_flight = if killed_p[p as usize] {
                if p % 2 == 1 { 32 } else { 1 }
            } else {
                assert_eq!(sent, PER_PRODUCER, "{ctx}: producer {p} did not finish");
                0
            };
            for s in 0..PER_PRODUCER {
                let got = run.received(p, s, PER_PRODUCER);
                if s >= sent + in_flight {
                    assert!(
                        !got,
                        "{ctx}: producer {p} message {s} delivered but never put"
                    );
                } else if s < sent && !got {
                    missing += 1;
                }
            }
        }
        assert!(
            missing <= consumer_allowance,
            "{ctx}: {missing} put messages lost, killed consumers may hold at most {consumer_allowance}"
        );
        assert!(run.q.is_empty(), "{ctx}: queue not drained");
        drop((run.queue, run.results));
    }
    eprintln!(
        "crash: {ROUNDS} rounds, {} producers and {} consumers killed, in {:?}",
        kills.0,
        kills.1,
        started.elapsed()
    );
}

// ---------------------------------------------------------------- corruption

fn scribble(seg: &Segment, offset: usize, value: u64, bytes: usize) {
    let b = value.to_ne_bytes();
    seg.write(offset, &b[..bytes]).unwrap();
}

/// Every operation on a scribbled ring returns (`Ok` or an error) within its
/// deadline: no panic, no out-of-bounds access, no endless spin.
fn exercise(q: &ByteQueue, rng: &mut Rng) -> Vec<String> {
    let mut outcomes = Vec::new();
    let mut buf = [0u8; 64];
    for _ in 0..20 {
        let t = Instant::now();
        let r = match rng.below(6) {
            0 => q.try_put(&[7u8; 5]).map(|_| 0),
            1 => q.try_get().map(|v| v.len()),
            2 => q
                .put_deadline(b"xy", Deadline::after(Duration::from_millis(2)))
                .map(|_| 0),
            3 => q.get_into_deadline(&mut buf, Deadline::after(Duration::from_millis(2))),
            4 => q.put_many(&[b"a", b"bc", b"def"]),
            _ => q.get_many(5).map(|v| v.len()),
        };
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "operation took {:?}",
            t.elapsed()
        );
        let _ = (q.len(), q.is_empty(), q.is_full());
        outcomes.push(match r {
            Ok(_) => "ok".to_owned(),
            Err(Error::Corrupted { .. }) => "corrupted".to_owned(),
            Err(e) => format!("{e:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap()
                .to_owned(),
        });
    }
    outcomes
}

#[test]
fn scribbled_indices_stamps_and_lengths_give_errors_never_crashes() {
    const CAP: usize = 8;
    const MAX: usize = 16;
    let stride = MpmcState::slot_stride(MAX as u64, SlotForm::Bytes);
    let slot = |i: usize| MpmcState::SLOTS_OFFSET + i * stride;
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut corrupted_seen = 0;
    for round in 0..300 {
        let q = ByteQueue::anonymous(CAP, MAX).unwrap();
        for i in 0..rng.below(20) {
            let _ = q.try_put(&[i as u8; 3]);
            if rng.below(2) == 0 {
                let _ = q.try_get();
            }
        }
        let seg = q.segment();
        let value = match rng.below(4) {
            0 => rng.next(),
            1 => rng.below(64),
            2 => u64::MAX - rng.below(4),
            _ => 1 << (56 + rng.below(8)),
        };
        match rng.below(5) {
            0 => scribble(seg, MpmcState::HEAD_OFFSET, value, 8),
            1 => scribble(seg, MpmcState::TAIL_OFFSET, value, 8),
            2 => scribble(seg, slot(rng.below(CAP as u64) as usize), value, 8),
            3 => scribble(seg, slot(rng.below(CAP as u64) as usize) + 8, value, 4),
            _ => {
                for _ in 0..4 {
                    let off = [
                        MpmcState::HEAD_OFFSET,
                        MpmcState::TAIL_OFFSET,
                        slot(rng.below(CAP as u64) as usize),
                    ];
                    scribble(seg, off[rng.below(3) as usize], rng.next(), 8);
                }
            }
        }
        let outcomes = exercise(&q, &mut rng);
        if outcomes.iter().any(|o| o == "corrupted") {
            corrupted_seen += 1;
        }
        let _ = round;
    }
    // The checks have teeth: many scribbles are detected as corruption.
    assert!(
        corrupted_seen > 50,
        "only {corrupted_seen} rounds detected corruption"
    );
}

#[test]
fn a_length_beyond_the_maximum_is_corrupted_and_the_queue_goes_on() {
    let q = ByteQueue::anonymous(4, 16).unwrap();
    q.put(b"first").unwrap();
    q.put(b"second").unwrap();
    let len_offset = MpmcState::SLOTS_OFFSET + 8;
    scribble(q.segment(), len_offset, 1_000_000, 4);
    assert!(matches!(q.try_get(), Err(Error::Corrupted { .. })));
    assert_eq!(q.try_get().unwrap(), b"second");
}

/// A `Queue<T>` slot is its stamp and the value, nothing else (16 bytes for a
/// `u64`, as crossbeam's `ArrayQueue`): the segment is exactly that big, and
/// the value of position `i` is the 8 bytes after slot `i`'s stamp.
#[test]
fn a_typed_queue_slot_is_its_stamp_and_its_value() {
    const CAP: usize = 4;
    let stride = MpmcState::slot_stride(8, SlotForm::Fixed);
    assert_eq!(stride, 16);
    let q: Queue<u64> = Queue::anonymous(CAP).unwrap();
    assert_eq!(q.segment().len(), MpmcState::SLOTS_OFFSET + CAP * stride);
    q.put_many(&[1, 2, 3]).unwrap();
    scribble(q.segment(), MpmcState::SLOTS_OFFSET + stride + 8, 99, 8);
    let mut got = [0u64; 3];
    assert_eq!(q.get_many(&mut got).unwrap(), 3);
    assert_eq!(got, [1, 99, 3]);
    // A 12-byte element rounds up to 8 + 16 bytes.
    assert_eq!(MpmcState::slot_stride(12, SlotForm::Fixed), 24);
    assert_eq!(MpmcState::slot_stride(12, SlotForm::Bytes), 32);
}

/// The typed form has no length to scribble, but its indices and stamps are as
/// untrusted as the byte form's: every typed operation on a scribbled ring
/// returns within its deadline, and many report `Corrupted`.
#[test]
fn a_scribbled_typed_queue_gives_errors_never_crashes() {
    const CAP: usize = 8;
    let stride = MpmcState::slot_stride(8, SlotForm::Fixed);
    let slot = |i: u64| MpmcState::SLOTS_OFFSET + i as usize * stride;
    let mut rng = Rng(0x0fed_cba9_8765_4321);
    let mut corrupted_seen = 0;
    for _ in 0..300 {
        let q: Queue<u64> = Queue::anonymous(CAP).unwrap();
        for i in 0..rng.below(20) {
            let _ = q.try_put(i);
            if rng.below(2) == 0 {
                let _ = q.try_get();
            }
        }
        let value = match rng.below(3) {
            0 => rng.next(),
            1 => rng.below(64),
            _ => 1 << (56 + rng.below(8)),
        };
        let off = match rng.below(3) {
            0 => MpmcState::HEAD_OFFSET,
            1 => MpmcState::TAIL_OFFSET,
            _ => slot(rng.below(CAP as u64)),
        };
        scribble(q.segment(), off, value, 8);
        let mut buf = [0u64; 5];
        for _ in 0..20 {
            let t = Instant::now();
            let r = match rng.below(6) {
                0 => q.try_put(7).map(|_| 0),
                1 => q.try_get().map(|_| 1),
                2 => q
                    .put_deadline(8, Deadline::after(Duration::from_millis(2)))
                    .map(|_| 0),
                3 => q
                    .get_deadline(Deadline::after(Duration::from_millis(2)))
                    .map(|_| 1),
                4 => q.put_many(&[1, 2, 3]),
                _ => q.get_many(&mut buf),
            };
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "took {:?}",
                t.elapsed()
            );
            let _ = (q.len(), q.is_empty(), q.is_full());
            if matches!(r, Err(Error::Corrupted { .. })) {
                corrupted_seen += 1;
                break;
            }
        }
    }
    assert!(
        corrupted_seen > 50,
        "only {corrupted_seen} rounds detected corruption"
    );
}

#[test]
fn a_tail_beyond_the_position_limit_is_corrupted() {
    let q: Queue<u64> = Queue::anonymous(4).unwrap();
    scribble(q.segment(), MpmcState::TAIL_OFFSET, u64::MAX, 8);
    assert!(matches!(q.try_put(1), Err(Error::Corrupted { .. })));
    scribble(q.segment(), MpmcState::HEAD_OFFSET, 1 << 60, 8);
    assert!(matches!(q.try_get(), Err(Error::Corrupted { .. })));
}

/// A ring of fixed-size elements has no length word, so it takes only whole
/// elements; the byte form takes anything up to its slot size.
#[test]
fn a_fixed_ring_takes_only_whole_elements() {
    use shmprim::ring::mpmc::{AlwaysAlive, MpmcRing};
    let fixed = MpmcRing::with_form(4, 8, SlotForm::Fixed).unwrap();
    let me = fixed.register(1, &AlwaysAlive).unwrap();
    assert!(matches!(
        fixed.try_push(&me, &AlwaysAlive, b"abc"),
        Err(Error::InvalidArgument { .. })
    ));
    fixed.try_push(&me, &AlwaysAlive, b"12345678").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(fixed.try_pop(&me, &AlwaysAlive, &mut buf).unwrap(), 8);
    assert_eq!(&buf, b"12345678");
    fixed.unregister(me);

    let bytes = MpmcRing::with_form(4, 8, SlotForm::Bytes).unwrap();
    let me = bytes.register(1, &AlwaysAlive).unwrap();
    bytes.try_push(&me, &AlwaysAlive, b"abc").unwrap();
    assert_eq!(bytes.try_pop(&me, &AlwaysAlive, &mut buf).unwrap(), 3);
    bytes.unregister(me);
}

/// The slot form shows in the ring's checked config (its stride): a ring
/// written in one form and viewed in the other is `Corrupted`, not misread.
#[test]
fn a_ring_viewed_in_the_wrong_form_is_corrupted() {
    use shmprim::ring::mpmc::MpmcRing;
    let len = MpmcState::memory_size(4, 8, SlotForm::Bytes).unwrap();
    assert!(len > MpmcState::memory_size(4, 8, SlotForm::Fixed).unwrap());
    let layout = std::alloc::Layout::from_size_align(len, MpmcState::align()).unwrap();
    // SAFETY: the layout has a non-zero size.
    let mem = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!mem.is_null());
    // SAFETY: `mem` is `len` bytes (at least the Fixed form's size), aligned to
    // `MpmcState::align()`, and ours alone; it outlives both views below.
    unsafe {
        MpmcState::init(mem, 4, 8, SlotForm::Fixed).unwrap();
        assert!(MpmcRing::from_raw(mem, len, 4, 8, SlotForm::Fixed, "t").is_ok());
        assert!(matches!(
            MpmcRing::from_raw(mem, len, 4, 8, SlotForm::Bytes, "t"),
            Err(Error::Corrupted { .. })
        ));
        std::alloc::dealloc(mem, layout);
    }
}
