//! SPSC rings: element and byte forms against a `VecDeque` model, blocking
//! between threads and processes, end claims, closing and death, and corrupted
//! indices and lengths.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Rng, ShmName};
use proptest::prelude::*;
use shmprim::ring::spsc::{SpscByteRing, SpscRing, TryError, record_size};
use shmprim::{Error, Mismatch};

const LIMIT: Duration = Duration::from_secs(20);

// Offsets documented in the layout table of `shmprim::ring::spsc`.
const TAIL_OFFSET: usize = 128;
const HEAD_OFFSET: usize = 256;
const PRODUCER_END_OFFSET: usize = 512;
const DATA_OFFSET: usize = 640;

fn word32(ptr: *mut u8, offset: usize) -> &'static AtomicU32 {
    // SAFETY: callers pass offsets inside a live segment's data area, 4-aligned;
    // the ring accesses these words only atomically.
    unsafe { &*ptr.add(offset).cast::<AtomicU32>() }
}

fn word64(ptr: *mut u8, offset: usize) -> &'static AtomicU64 {
    // SAFETY: as above, 8-aligned.
    unsafe { &*ptr.add(offset).cast::<AtomicU64>() }
}

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "produce_blocking" => {
            let ring = SpscRing::<u64>::open(&args[0]).unwrap();
            let n: u64 = args[1].parse().unwrap();
            let mut tx = ring.producer().unwrap();
            for i in 0..n {
                tx.push_timeout(i, LIMIT).unwrap();
            }
        }
        "produce_then_hang" => {
            let ring = SpscRing::<u64>::open(&args[0]).unwrap();
            let n: u64 = args[1].parse().unwrap();
            let mut tx = ring.producer().unwrap();
            for i in 0..n {
                tx.push(i).unwrap();
            }
            std::thread::sleep(LIMIT * 2);
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

// ------------------------------------------------------------ element model

#[derive(Debug, Clone)]
enum Op {
    Push(u64),
    Pop,
    PushSlice(Vec<u64>),
    PopInto(usize),
    Len,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u64>().prop_map(Op::Push),
        Just(Op::Pop),
        proptest::collection::vec(any::<u64>(), 0..12).prop_map(Op::PushSlice),
        (0usize..12).prop_map(Op::PopInto),
        Just(Op::Len),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random pushes, pops and batches (wrapping many times around small
    /// rings) behave exactly like a bounded `VecDeque`.
    #[test]
    fn element_ring_matches_a_vecdeque(cap_log in 0u32..4, ops in proptest::collection::vec(op(), 1..300)) {
        let cap = 1usize << cap_log;
        let ring = SpscRing::<u64>::new(cap).unwrap();
        prop_assert_eq!(ring.capacity(), cap);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(v) => {
                    let r = tx.try_push(v);
                    if model.len() < cap {
                        prop_assert!(r.is_ok());
                        model.push_back(v);
                    } else {
                        prop_assert_eq!(r, Err(TryError::Full));
                    }
                }
                Op::Pop => {
                    match (rx.try_pop(), model.pop_front()) {
                        (Ok(v), Some(m)) => prop_assert_eq!(v, m),
                        (Err(TryError::Empty), None) => {}
                        (r, m) => prop_assert!(false, "ring {:?}, model {:?}", r, m),
                    }
                }
                Op::PushSlice(vs) => {
                    let n = tx.push_slice(&vs).unwrap();
                    prop_assert_eq!(n, vs.len().min(cap - model.len()));
                    model.extend(&vs[..n]);
                }
                Op::PopInto(k) => {
                    let mut out = vec![0u64; k];
                    let n = rx.pop_into(&mut out).unwrap();
                    prop_assert_eq!(n, k.min(model.len()));
                    for v in &out[..n] {
                        prop_assert_eq!(Some(*v), model.pop_front());
                    }
                }
                Op::Len => {
                    prop_assert_eq!(rx.len().unwrap(), model.len());
                    prop_assert_eq!(tx.len().unwrap(), model.len());
                }
            }
        }
    }
}

// --------------------------------------------------------------- byte model

#[derive(Debug, Clone)]
enum ByteOp {
    Send(usize, u8),
    Recv,
    RecvIntoSmall,
    SendMany(Vec<usize>),
    RecvMany(usize),
}

fn byte_op(max: usize) -> impl Strategy<Value = ByteOp> {
    prop_oneof![
        3 => (0..=max, any::<u8>()).prop_map(|(n, b)| ByteOp::Send(n, b)),
        3 => Just(ByteOp::Recv),
        1 => Just(ByteOp::RecvIntoSmall),
        1 => proptest::collection::vec(0..=max, 0..5).prop_map(ByteOp::SendMany),
        1 => (0usize..5).prop_map(ByteOp::RecvMany),
    ]
}

/// The byte ring's space accounting: records of `8 + round8(len)` bytes,
/// contiguous, with padding to the end of the buffer when one does not fit.
struct ByteModel {
    cap: usize,
    head: usize,
    tail: usize,
    queue: VecDeque<(Vec<u8>, usize)>,
}

impl ByteModel {
    fn try_send(&mut self, msg: Vec<u8>) -> bool {
        let rec = record_size(msg.len());
        let to_end = self.cap - self.tail % self.cap;
        let need = if rec <= to_end { rec } else { to_end + rec };
        if need > self.cap - (self.tail - self.head) {
            return false;
        }
        self.tail += need;
        self.queue.push_back((msg, need));
        true
    }

    fn recv(&mut self) -> Option<Vec<u8>> {
        let (msg, need) = self.queue.pop_front()?;
        self.head += need;
        Some(msg)
    }
}

fn message(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random sends and receives of 0..=max bytes (with padding at the wrap,
    /// batches, and too-small buffers) behave like a `VecDeque` of messages,
    /// and the ring is full exactly when the record accounting says so.
    #[test]
    fn byte_ring_matches_a_vecdeque(max in 0usize..40, ops in proptest::collection::vec(byte_op(40), 1..200)) {
        let ring = SpscByteRing::new(0, max).unwrap();
        let cap = ring.capacity();
        prop_assert!(cap >= 2 * record_size(max));
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut model = ByteModel { cap, head: 0, tail: 0, queue: VecDeque::new() };
        for op in ops {
            match op {
                ByteOp::Send(len, seed) => {
                    let msg = message(len, seed);
                    let r = tx.try_send(&msg);
                    if len > max {
                        prop_assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{:?}", r);
                    } else if model.try_send(msg) {
                        prop_assert!(r.is_ok(), "{:?}", r);
                    } else {
                        prop_assert!(matches!(r, Err(Error::Full { .. })), "{:?}", r);
                    }
                }
                ByteOp::Recv => match (rx.try_recv(), model.recv()) {
                    (Ok(v), Some(m)) => prop_assert_eq!(v, m),
                    (Err(Error::Empty { .. }), None) => {}
                    (r, m) => prop_assert!(false, "ring {:?}, model {:?}", r, m),
                },
                ByteOp::RecvIntoSmall => {
                    let Some((front, _)) = model.queue.front() else {
                        prop_assert!(matches!(rx.try_recv_into(&mut []), Err(Error::Empty { .. })), "not empty");
                        continue;
                    };
                    let len = front.len();
                    prop_assert_eq!(rx.next_len().unwrap(), len);
                    if len > 0 {
                        let mut small = vec![0u8; len - 1];
                        let r = rx.try_recv_into(&mut small);
                        prop_assert!(
                            matches!(r, Err(Error::BufferTooSmall { needed, available, .. }) if needed == len && available == len - 1),
                            "{:?}", r
                        );
                    }
                    let mut exact = vec![0u8; len];
                    prop_assert_eq!(rx.try_recv_into(&mut exact).unwrap(), len);
                    prop_assert_eq!(Some(exact), model.recv());
                }
                ByteOp::SendMany(lens) => {
                    let msgs: Vec<Vec<u8>> = lens.iter().map(|&n| message(n.min(max), n as u8)).collect();
                    let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
                    let n = tx.try_send_many(&refs).unwrap();
                    let mut expect = 0;
                    for m in &msgs {
                        if !model.try_send(m.clone()) {
                            break;
                        }
                        expect += 1;
                    }
                    prop_assert_eq!(n, expect);
                }
                ByteOp::RecvMany(k) => {
                    let mut out = Vec::new();
                    let n = rx.try_recv_many(&mut out, k).unwrap();
                    prop_assert_eq!(n, k.min(model.queue.len()));
                    for m in out {
                        prop_assert_eq!(Some(m), model.recv());
                    }
                }
            }
        }
    }
}

#[test]
fn byte_ring_send_with_writes_the_message_in_place() {
    let ring = SpscByteRing::new(256, 64).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    for round in 0..20u8 {
        tx.try_send_with(33, |buf| {
            assert_eq!(buf.len(), 33);
            buf.fill(round);
        })
        .unwrap();
        assert_eq!(rx.try_recv().unwrap(), vec![round; 33]);
    }
}

#[test]
fn byte_ring_refuses_a_message_longer_than_the_maximum() {
    let ring = SpscByteRing::new(1024, 16).unwrap();
    let mut tx = ring.producer().unwrap();
    assert!(matches!(
        tx.try_send(&[0; 17]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(tx.try_send(&[0; 16]).is_ok());
}

// ------------------------------------------------------------ index wrap

#[test]
fn indices_wrap_past_two_to_the_31() {
    let name = ShmName::new("spsc_wrap31");
    let ring = SpscRing::<u64>::create(&name, 8).unwrap();
    let base = ring.segment().unwrap().as_ptr();
    // Start both indices 5 short of the 31-bit wrap, before any end is claimed.
    let start = (1u32 << 31) - 5;
    word32(base, TAIL_OFFSET).store(start, Ordering::SeqCst);
    word32(base, HEAD_OFFSET).store(start, Ordering::SeqCst);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut next_out = 0u64;
    for i in 0..100u64 {
        tx.try_push(i).unwrap();
        if i % 3 == 2 {
            while let Ok(v) = rx.try_pop() {
                assert_eq!(v, next_out);
                next_out += 1;
            }
        }
    }
    while let Ok(v) = rx.try_pop() {
        assert_eq!(v, next_out);
        next_out += 1;
    }
    assert_eq!(next_out, 100);
    assert!(word32(base, TAIL_OFFSET).load(Ordering::SeqCst) < 200);
}

// ------------------------------------------------------------ threads

#[test]
fn blocking_push_and_pop_carry_100k_values_in_order_between_threads() {
    let ring = SpscRing::<u64>::new(64).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    const N: u64 = 100_000;
    let t = std::thread::spawn(move || {
        for i in 0..N {
            tx.push_timeout(i, LIMIT).unwrap();
        }
    });
    for i in 0..N {
        assert_eq!(rx.pop_timeout(LIMIT).unwrap(), i);
    }
    t.join().unwrap();
}

#[test]
fn batches_carry_values_in_order_between_threads() {
    let ring = SpscRing::<u32>::new(128).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    const N: u32 = 200_000;
    let t = std::thread::spawn(move || {
        let mut next = 0u32;
        let end = Instant::now() + LIMIT;
        while next < N {
            let batch: Vec<u32> = (next..N.min(next + 50)).collect();
            next += tx.push_slice(&batch).unwrap() as u32;
            assert!(Instant::now() < end);
        }
    });
    let mut buf = [0u32; 37];
    let mut expect = 0u32;
    let end = Instant::now() + LIMIT;
    while expect < N {
        let n = rx.pop_into(&mut buf).unwrap();
        for v in &buf[..n] {
            assert_eq!(*v, expect);
            expect += 1;
        }
        assert!(Instant::now() < end);
    }
    t.join().unwrap();
}

#[test]
fn blocking_byte_messages_of_varied_lengths_arrive_intact_between_threads() {
    let ring = SpscByteRing::new(512, 100).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    const N: usize = 20_000;
    let t = std::thread::spawn(move || {
        for i in 0..N {
            tx.send_timeout(&message(i % 101, i as u8), LIMIT).unwrap();
        }
    });
    for i in 0..N {
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), message(i % 101, i as u8));
    }
    t.join().unwrap();
}

#[test]
fn recv_into_waits_for_a_message_keeps_one_too_big_and_ends_with_closed() {
    let ring = SpscByteRing::new(512, 100).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut buf = [0u8; 100];
    let t0 = Instant::now();
    assert!(matches!(
        rx.recv_into_timeout(&mut buf, Duration::from_millis(30)),
        Err(Error::Timeout { .. })
    ));
    assert!(t0.elapsed() >= Duration::from_millis(30));
    // A message sent while the consumer sleeps wakes it.
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send_timeout(&message(40, 7), LIMIT).unwrap();
        tx.send_timeout(&message(90, 8), LIMIT).unwrap();
        tx
    });
    let n = rx.recv_into_timeout(&mut buf, LIMIT).unwrap();
    assert_eq!(&buf[..n], &message(40, 7)[..]);
    let tx = t.join().unwrap();
    // Too small: the message stays queued, and the error says what it needs.
    let mut small = [0u8; 10];
    assert!(matches!(
        rx.recv_into(&mut small),
        Err(Error::BufferTooSmall {
            needed: 90,
            available: 10,
            ..
        })
    ));
    assert_eq!(rx.recv_into(&mut buf).unwrap(), 90);
    assert_eq!(&buf[..90], &message(90, 8)[..]);
    drop(tx);
    assert!(matches!(rx.recv_into(&mut buf), Err(Error::Closed { .. })));
}

#[test]
fn pop_times_out_on_an_empty_ring_and_push_on_a_full_one() {
    let ring = SpscRing::<u64>::new(2).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let t0 = Instant::now();
    assert!(matches!(
        rx.pop_timeout(Duration::from_millis(30)),
        Err(Error::Timeout { .. })
    ));
    assert!(t0.elapsed() >= Duration::from_millis(30));
    tx.try_push(1).unwrap();
    tx.try_push(2).unwrap();
    assert_eq!(tx.try_push(3), Err(TryError::Full));
    assert!(matches!(
        tx.push_timeout(3, Duration::from_millis(30)),
        Err(Error::Timeout { .. })
    ));
}

// ------------------------------------------------------------ ends

#[test]
fn dropping_the_producer_makes_the_consumer_drain_then_see_closed() {
    let ring = SpscRing::<u64>::new(8).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.push_slice(&[1, 2, 3]).unwrap();
    drop(tx);
    assert_eq!(rx.try_pop().unwrap(), 1);
    assert_eq!(rx.pop().unwrap(), 2);
    assert_eq!(rx.try_pop().unwrap(), 3);
    assert_eq!(rx.try_pop(), Err(TryError::Closed));
    assert!(matches!(rx.pop(), Err(Error::Closed { .. })));
    // A new producer reopens the ring.
    let mut tx = ring.producer().unwrap();
    tx.try_push(4).unwrap();
    assert_eq!(rx.try_pop().unwrap(), 4);
    assert_eq!(rx.try_pop(), Err(TryError::Empty));
}

#[test]
fn dropping_the_consumer_wakes_a_blocked_producer_with_closed() {
    let ring = SpscRing::<u64>::new(1).unwrap();
    let mut tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    tx.try_push(1).unwrap();
    let t = std::thread::spawn(move || tx.push_timeout(2, LIMIT));
    std::thread::sleep(Duration::from_millis(20));
    drop(rx);
    assert!(matches!(t.join().unwrap(), Err(Error::Closed { .. })));
}

#[test]
fn an_end_cannot_be_claimed_twice_while_its_holder_lives() {
    let name = ShmName::new("spsc_claim");
    let ring = SpscRing::<u64>::create(&name, 8).unwrap();
    let other = SpscRing::<u64>::open(&name).unwrap();
    let tx = ring.producer().unwrap();
    assert!(matches!(
        other.producer(),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        ring.producer(),
        Err(Error::InvalidArgument { .. })
    ));
    let rx = other.consumer().unwrap();
    assert!(matches!(
        ring.consumer(),
        Err(Error::InvalidArgument { .. })
    ));
    drop(tx);
    drop(rx);
    let _tx = other.producer().unwrap();
    let _rx = ring.consumer().unwrap();
}

#[test]
fn opening_with_another_element_type_is_incompatible() {
    let name = ShmName::new("spsc_type");
    let _ring = SpscRing::<u64>::create(&name, 8).unwrap();
    match SpscRing::<u32>::open(&name) {
        Err(Error::Incompatible { what, .. }) => assert_eq!(what, Mismatch::Payload),
        other => panic!("expected Incompatible, got {other:?}"),
    }
    assert!(matches!(
        SpscByteRing::open(&name),
        Err(Error::Incompatible {
            what: Mismatch::Kind,
            ..
        })
    ));
    assert_eq!(SpscRing::<u64>::open(&name).unwrap().capacity(), 8);
}

// ------------------------------------------------------------ processes

#[test]
fn a_child_process_pushes_50k_values_that_arrive_in_order() {
    let name = ShmName::new("spsc_xproc");
    let ring = SpscRing::<u64>::create(&name, 256).unwrap();
    let mut rx = ring.consumer().unwrap();
    const N: u64 = 50_000;
    let mut child = spawn("produce_blocking", &[&name, &N.to_string()]);
    for i in 0..N {
        assert_eq!(rx.pop_timeout(LIMIT).unwrap(), i);
    }
    child.expect_success(LIMIT);
    assert!(matches!(
        rx.pop_timeout(Duration::from_secs(5)),
        Err(Error::Closed { .. })
    ));
}

#[test]
fn death_of_the_producer_process_reads_as_closed_after_draining() {
    let name = ShmName::new("spsc_death");
    let ring = SpscRing::<u64>::create(&name, 64).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut child = spawn("produce_then_hang", &[&name, "10"]);
    for i in 0..10 {
        assert_eq!(rx.pop_timeout(LIMIT).unwrap(), i);
    }
    let producer_word = word64(ring.segment().unwrap().as_ptr(), PRODUCER_END_OFFSET);
    assert_ne!(
        producer_word.load(Ordering::SeqCst),
        0,
        "child holds the end"
    );
    assert!(matches!(
        ring.producer(),
        Err(Error::InvalidArgument { .. })
    ));
    child.kill();
    let t0 = Instant::now();
    assert!(matches!(rx.pop_timeout(LIMIT), Err(Error::Closed { .. })));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // The dead participant's end can be claimed again.
    let mut tx = ring.producer().unwrap();
    tx.try_push(99).unwrap();
    assert_eq!(rx.try_pop().unwrap(), 99);
}

// ------------------------------------------------------------ corruption

/// Mostly small values near the capacity, sometimes anything.
fn index(rng: &mut Rng, cap: u64) -> u32 {
    match rng.next() % 4 {
        0 => rng.next() as u32,
        1 => (rng.next() % (4 * cap)) as u32,
        2 => (rng.next() as u32) | (1 << 31),
        _ => ((1u64 << 31) - rng.next() % (2 * cap)) as u32,
    }
}

fn is_allowed(r: &Result<impl Sized, Error>) -> bool {
    matches!(
        r,
        Ok(_)
            | Err(Error::Corrupted { .. })
            | Err(Error::Full { .. })
            | Err(Error::Empty { .. })
            | Err(Error::Closed { .. })
            | Err(Error::InvalidArgument { .. })
            | Err(Error::BufferTooSmall { .. })
            | Err(Error::Timeout { .. })
    )
}

#[test]
fn scribbled_indices_make_element_ring_operations_fail_cleanly() {
    let name = ShmName::new("spsc_scribble");
    let ring = SpscRing::<u64>::create(&name, 16).unwrap();
    let base = ring.segment().unwrap().as_ptr();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut corrupted = 0;
    for round in 0..2000 {
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        tx.push_slice(&[1, 2, 3]).unwrap_or(0);
        // Scribble over one or both indices after the ends were claimed.
        if round % 3 != 0 {
            word32(base, TAIL_OFFSET).store(index(&mut rng, 16), Ordering::SeqCst);
        }
        if round % 3 != 1 {
            word32(base, HEAD_OFFSET).store(index(&mut rng, 16), Ordering::SeqCst);
        }
        for _ in 0..20 {
            let results = [
                tx.try_push(7).map_err(Error::from),
                tx.push_slice(&[1; 20]).map(|_| ()).map_err(Error::from),
                rx.try_pop().map(|_| ()).map_err(Error::from),
                rx.pop_into(&mut [0; 20]).map(|_| ()).map_err(Error::from),
                rx.len().map(|_| ()),
                tx.len().map(|_| ()),
                rx.pop_timeout(Duration::ZERO).map(|_| ()),
            ];
            for r in &results {
                assert!(is_allowed(r), "{r:?}");
                corrupted += matches!(r, Err(Error::Corrupted { .. })) as u32;
            }
        }
        drop((tx, rx));
        // Claiming ends re-reads the indices: that must fail cleanly too.
        word32(base, TAIL_OFFSET).store(index(&mut rng, 16), Ordering::SeqCst);
        if let Ok(tx) = ring.producer() {
            drop(tx);
        }
        word32(base, TAIL_OFFSET).store(0, Ordering::SeqCst);
        word32(base, HEAD_OFFSET).store(0, Ordering::SeqCst);
    }
    assert!(
        corrupted > 1000,
        "only {corrupted} operations saw corruption"
    );
}

#[test]
fn scribbled_indices_and_lengths_make_byte_ring_operations_fail_cleanly() {
    let name = ShmName::new("spsc_scribble_bytes");
    let ring = SpscByteRing::create(&name, 256, 40).unwrap();
    let cap = ring.capacity();
    let base = ring.segment().unwrap().as_ptr();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut corrupted = 0;
    for round in 0..2000 {
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        for i in 0..5 {
            let _ = tx.try_send(&message(i * 7, i as u8));
        }
        match round % 4 {
            0 => word32(base, TAIL_OFFSET).store(index(&mut rng, cap as u64), Ordering::SeqCst),
            1 => word32(base, HEAD_OFFSET).store(index(&mut rng, cap as u64), Ordering::SeqCst),
            _ => {
                // Scribble over record headers (lengths, padding markers).
                for _ in 0..3 {
                    let slot = (rng.next() as usize % (cap / 8)) * 8;
                    let v = match rng.next() % 3 {
                        0 => u64::MAX,
                        1 => rng.next() % 100,
                        _ => rng.next(),
                    };
                    word64(base, DATA_OFFSET + slot).store(v, Ordering::SeqCst);
                }
            }
        }
        for _ in 0..10 {
            let mut small = [0u8; 8];
            let mut many = Vec::new();
            let results = [
                tx.try_send(&[1; 33]).map(|_| ()),
                tx.try_send_many(&[&[2u8; 3][..], &[3u8; 40][..]])
                    .map(|_| ()),
                rx.try_recv().map(|_| ()),
                rx.try_recv_into(&mut small).map(|_| ()),
                rx.next_len().map(|_| ()),
                rx.try_recv_many(&mut many, 4).map(|_| ()),
                rx.recv_timeout(Duration::ZERO).map(|_| ()),
            ];
            for r in &results {
                assert!(is_allowed(r), "{r:?}");
                corrupted += matches!(r, Err(Error::Corrupted { .. })) as u32;
            }
            for m in many {
                assert!(m.len() <= 40);
            }
        }
        drop((tx, rx));
        word32(base, TAIL_OFFSET).store(0, Ordering::SeqCst);
        word32(base, HEAD_OFFSET).store(0, Ordering::SeqCst);
    }
    assert!(
        corrupted > 500,
        "only {corrupted} operations saw corruption"
    );
}

fn is_corrupted<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::Corrupted { .. }))
}

#[test]
fn each_kind_of_bad_record_or_index_is_reported_as_corrupted() {
    let name = ShmName::new("spsc_corrupt_kinds");
    let ring = SpscByteRing::create(&name, 256, 40).unwrap();
    assert_eq!(ring.capacity(), 256);
    let base = ring.segment().unwrap().as_ptr();
    let header = |pos: usize| word64(base, DATA_OFFSET + pos);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();

    // Padding at the very start of the buffer (the producer never writes one).
    tx.try_send(b"").unwrap(); // at 0
    header(0).store(u64::MAX, Ordering::SeqCst);
    assert!(is_corrupted(rx.try_recv()));
    header(0).store(0, Ordering::SeqCst);
    assert_eq!(rx.try_recv().unwrap(), b"");

    // A length above the maximum.
    tx.try_send(b"abc").unwrap(); // at 8
    header(8).store(41, Ordering::SeqCst);
    assert!(is_corrupted(rx.next_len()));
    assert!(is_corrupted(rx.try_recv()));
    header(8).store(3, Ordering::SeqCst);
    assert_eq!(rx.try_recv().unwrap(), b"abc");

    // A length that runs past the end of the buffer (but not past the tail).
    for _ in 0..4 {
        tx.try_send(&[0; 40]).unwrap();
        rx.try_recv().unwrap();
    }
    tx.try_send(&[0; 16]).unwrap(); // 24 + 4 * 48 + 24 = 240
    let msgs: [&[u8]; 3] = [b"", b"", &[5; 40]]; // at 240, 248, then 0
    assert_eq!(tx.try_send_many(&msgs).unwrap(), 3);
    rx.try_recv().unwrap(); // the 16-byte message
    // 64 bytes are queued from 240 on, but only 16 remain before the end.
    header(240).store(40, Ordering::SeqCst);
    assert!(is_corrupted(rx.try_recv()));
    header(240).store(0, Ordering::SeqCst);
    rx.try_recv().unwrap();
    header(248).store(0, Ordering::SeqCst);
    rx.try_recv().unwrap();
    assert_eq!(rx.try_recv().unwrap(), [5; 40]);

    // A length within the maximum that runs past the tail.
    tx.try_send(&[6; 8]).unwrap(); // at 48, 16 bytes queued
    header(48).store(40, Ordering::SeqCst);
    assert!(is_corrupted(rx.try_recv()));
    header(48).store(8, Ordering::SeqCst);
    assert_eq!(rx.try_recv().unwrap(), [6; 8]);

    // Indices further apart than the capacity, seen by either end.
    let head = word32(base, HEAD_OFFSET).load(Ordering::SeqCst);
    word32(base, TAIL_OFFSET).store(head + 256 + 8, Ordering::SeqCst);
    assert!(is_corrupted(rx.try_recv()));
    word32(base, HEAD_OFFSET).store(head.wrapping_sub(1000) & 0x7fff_ffff, Ordering::SeqCst);
    let mut sent = 0;
    let r = loop {
        match tx.try_send(&[1; 40]) {
            Ok(()) => sent += 1,
            r => break r,
        }
        assert!(sent < 10);
    };
    assert!(matches!(r, Err(Error::Corrupted { .. })), "{r:?}");
    drop((tx, rx));
    assert!(is_corrupted(ring.consumer()));
}

#[test]
fn element_indices_further_apart_than_the_capacity_are_corrupted() {
    let name = ShmName::new("spsc_corrupt_elems");
    let ring = SpscRing::<u64>::create(&name, 4).unwrap();
    let base = ring.segment().unwrap().as_ptr();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_push(1).unwrap();
    word32(base, TAIL_OFFSET).store(6, Ordering::SeqCst);
    assert_eq!(rx.try_pop(), Err(TryError::Corrupted));
    assert_eq!(rx.pop_into(&mut [0; 2]), Err(TryError::Corrupted));
    assert!(is_corrupted(rx.len()));
    assert!(is_corrupted(rx.pop()));
    word32(base, TAIL_OFFSET).store(1, Ordering::SeqCst);
    assert_eq!(rx.try_pop().unwrap(), 1);
    for v in 0..4 {
        tx.try_push(v).unwrap();
    }
    word32(base, HEAD_OFFSET).store(0x7fff_fff0, Ordering::SeqCst);
    assert_eq!(tx.try_push(9), Err(TryError::Corrupted));
    assert_eq!(tx.push_slice(&[9]), Err(TryError::Corrupted));
    assert!(is_corrupted(tx.push(9)));
    assert!(matches!(
        Error::from(TryError::Corrupted),
        Error::Corrupted { .. }
    ));
}

#[test]
fn opening_a_ring_whose_header_disagrees_with_its_parameters_is_corrupted() {
    let name = ShmName::new("spsc_bad_meta");
    let ring = SpscRing::<u64>::create(&name, 8).unwrap();
    let base = ring.segment().unwrap().as_ptr();
    // meta.capacity is the third u32 of the ring state.
    word32(base, 8).store(1 << 20, Ordering::SeqCst);
    assert!(matches!(
        SpscRing::<u64>::open(&name),
        Err(Error::Corrupted { .. })
    ));
    let name2 = ShmName::new("spsc_bad_meta_bytes");
    let ring2 = SpscByteRing::create(&name2, 256, 16).unwrap();
    word32(ring2.segment().unwrap().as_ptr(), 0).store(0, Ordering::SeqCst);
    assert!(matches!(
        SpscByteRing::open(&name2),
        Err(Error::Corrupted { .. })
    ));
}
