//! Duplex rings: values both ways in order against a model, the interleaved
//! layout, stamp answers and the tail check behind them, end claims, closing
//! and death across processes, and scribbled indices and stamps.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Rng, ShmName};
use proptest::prelude::*;
use shmprim::ring::duplex::{CLOSE_CHECK_EVERY, DuplexRing, STAMP_ANSWERS, memory_size};
use shmprim::ring::spsc::TryError;
use shmprim::{Error, pipe::End};

const LIMIT: Duration = Duration::from_secs(20);

// Offsets documented in the layout table of `shmprim::ring::duplex`.
const TAIL_A_TO_B: usize = 128;
const HEAD_A_TO_B: usize = 256;
const TAIL_B_TO_A: usize = 640 + 128;
const HEAD_B_TO_A: usize = 640 + 256;
const PAIRS: usize = 1280;

/// The `u32` at byte `offset` of the ring's segment (bounds-checked).
fn word32(ring: &DuplexRing<u64>, offset: usize) -> &AtomicU32 {
    common::word(ring.segment().unwrap(), offset / 4)
}

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        // Answers every value `v` with `v * 3 + 1` until the other end closes.
        "echo" => {
            let ring = DuplexRing::<u64>::open(&args[0]).unwrap();
            let mut b = ring.end_b().unwrap();
            loop {
                match b.recv_timeout(LIMIT) {
                    Ok(v) => b.send_timeout(v * 3 + 1, LIMIT).unwrap(),
                    Err(Error::Closed { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        // Sends `n` values, then waits to be killed.
        "send_then_hang" => {
            let ring = DuplexRing::<u64>::open(&args[0]).unwrap();
            let n: u64 = args[1].parse().unwrap();
            let mut b = ring.end_b().unwrap();
            for i in 0..n {
                b.send_timeout(i, LIMIT).unwrap();
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

// ------------------------------------------------------------ model

#[derive(Debug, Clone)]
enum Op {
    /// End A (`true`) or B sends the value.
    Send(bool, u64),
    /// End A or B receives.
    Recv(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), any::<u64>()).prop_map(|(a, v)| Op::Send(a, v)),
        any::<bool>().prop_map(Op::Recv),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Random sends and receives at both ends, across many wraps of small
    /// rings: each direction behaves as a bounded FIFO, independent of the
    /// other.
    #[test]
    fn each_direction_matches_a_vecdeque(cap_log in 0u32..4, ops in proptest::collection::vec(op(), 1..400)) {
        let cap = 1usize << cap_log;
        let ring = DuplexRing::<u64>::new(cap).unwrap();
        let (mut a, mut b) = (ring.end_a().unwrap(), ring.end_b().unwrap());
        // to_b[i]: queued from A to B.
        let (mut to_b, mut to_a) = (VecDeque::new(), VecDeque::new());
        for op in ops {
            match op {
                Op::Send(from_a, v) => {
                    let (end, model) = if from_a { (&mut a, &mut to_b) } else { (&mut b, &mut to_a) };
                    match end.try_send(v) {
                        Ok(()) => { prop_assert!(model.len() < cap); model.push_back(v); }
                        Err(TryError::Full) => prop_assert_eq!(model.len(), cap),
                        Err(e) => prop_assert!(false, "try_send: {e}"),
                    }
                }
                Op::Recv(at_a) => {
                    let (end, model) = if at_a { (&mut a, &mut to_a) } else { (&mut b, &mut to_b) };
                    match end.try_recv() {
                        Ok(v) => prop_assert_eq!(Some(v), model.pop_front()),
                        Err(TryError::Empty) => prop_assert!(model.is_empty()),
                        Err(e) => prop_assert!(false, "try_recv: {e}"),
                    }
                }
            }
        }
    }
}

#[test]
fn request_and_reply_share_a_pair_of_slots() {
    let name = ShmName::new("duplex_layout");
    let ring = DuplexRing::<u64>::create(&name, 8).unwrap();
    let seg = ring.segment().unwrap();
    assert_eq!(seg.info().data_size as usize, PAIRS + 8 * 32);
    assert_eq!(memory_size::<u64>(8).unwrap(), PAIRS + 8 * 32);
    let (mut a, mut b) = (ring.end_a().unwrap(), ring.end_b().unwrap());
    let base = seg.as_ptr();
    let value_at = |off: usize| {
        // SAFETY: inside the data area, 8-aligned; read after the writes below.
        unsafe { base.add(off).cast::<u64>().read_volatile() }
    };
    for k in 0..3u64 {
        a.try_send(1000 + k).unwrap();
        assert_eq!(b.try_recv().unwrap(), 1000 + k);
        b.try_send(2000 + k).unwrap();
        assert_eq!(a.try_recv().unwrap(), 2000 + k);
        // Pair k: [stamp, value] of A→B, then of B→A, 32 bytes in all.
        let pair = PAIRS + k as usize * 32;
        assert_eq!(value_at(pair + 8), 1000 + k);
        assert_eq!(value_at(pair + 24), 2000 + k);
        assert_eq!(
            word32(&ring, pair).load(Ordering::SeqCst),
            k as u32 | 1 << 31
        );
        assert_eq!(
            word32(&ring, pair + 16).load(Ordering::SeqCst),
            k as u32 | 1 << 31
        );
    }
    assert_eq!(word32(&ring, TAIL_A_TO_B).load(Ordering::SeqCst), 3);
    assert_eq!(word32(&ring, HEAD_B_TO_A).load(Ordering::SeqCst), 3);
    // `shmprim inspect` reads the same layout.
    a.try_send(1).unwrap();
    a.try_send(2).unwrap();
    b.try_send(3).unwrap();
    let report = shmprim::inspect::inspect(&name).unwrap();
    assert_eq!(report.kind(), Some(shmprim::Kind::Duplex));
    assert_eq!(
        report.state_line(),
        "2/8 values pending to B, 1 to A",
        "{}",
        report.to_text()
    );
    drop(b);
    let report = shmprim::inspect::inspect(&name).unwrap();
    assert!(
        report.state_line().ends_with(", an end is closed"),
        "{}",
        report.state_line()
    );
}

#[test]
fn a_value_published_by_its_tail_alone_is_received() {
    // A sender that died after the tail but before the stamp: the receiver's
    // stamp answers say empty, and its tail check then finds the value.
    let name = ShmName::new("duplex_tail_only");
    let ring = DuplexRing::<u64>::create(&name, 4).unwrap();
    let base = ring.segment().unwrap().as_ptr();
    let mut b = ring.end_b().unwrap();
    // SAFETY: the value of A→B slot 0; end A is not held, so nobody writes it.
    unsafe { base.add(PAIRS + 8).cast::<u64>().write_volatile(77) };
    word32(&ring, TAIL_A_TO_B).store(1, Ordering::SeqCst);
    let mut empties = 0;
    let v = loop {
        match b.try_recv() {
            Ok(v) => break v,
            Err(TryError::Empty) => empties += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(empties <= STAMP_ANSWERS, "{empties} empty answers");
    };
    assert_eq!(v, 77);
    assert_eq!(empties, STAMP_ANSWERS, "answers before the tail check");
}

#[test]
fn try_recv_sees_the_peer_close_after_the_stamp_answers() {
    let ring = DuplexRing::<u64>::new(4).unwrap();
    let (mut a, mut b) = (ring.end_a().unwrap(), ring.end_b().unwrap());
    a.try_send(5).unwrap();
    drop(a);
    assert_eq!(
        b.try_recv(),
        Ok(5),
        "what was sent before the close comes first"
    );
    let mut polls = 0;
    while b.try_recv() == Err(TryError::Empty) {
        polls += 1;
        assert!(polls <= STAMP_ANSWERS, "no close after {polls} polls");
    }
    assert_eq!(b.try_recv(), Err(TryError::Closed));
    assert!(matches!(b.recv_timeout(LIMIT), Err(Error::Closed { .. })));
}

#[test]
fn a_sender_sees_the_peer_close_within_the_check_interval() {
    let ring = DuplexRing::<u64>::new(4096).unwrap();
    let (mut a, b) = (ring.end_a().unwrap(), ring.end_b().unwrap());
    drop(b);
    let mut sent = 0;
    loop {
        match a.try_send(sent) {
            Ok(()) => sent += 1,
            Err(TryError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < u64::from(CLOSE_CHECK_EVERY), "{sent} sends");
    }
    assert!(matches!(
        a.send_timeout(1, LIMIT),
        Err(Error::Closed { .. })
    ));
}

#[test]
fn a_full_direction_blocks_then_times_out_and_the_other_still_flows() {
    let ring = DuplexRing::<u64>::new(2).unwrap();
    let (mut a, mut b) = (ring.end_a().unwrap(), ring.end_b().unwrap());
    a.try_send(1).unwrap();
    a.try_send(2).unwrap();
    assert_eq!(a.try_send(3), Err(TryError::Full));
    let t0 = Instant::now();
    assert!(matches!(
        a.send_timeout(3, Duration::from_millis(30)),
        Err(Error::Timeout { .. })
    ));
    assert!(t0.elapsed() >= Duration::from_millis(30));
    b.try_send(9).unwrap();
    assert_eq!(a.try_recv(), Ok(9));
    assert!(matches!(
        a.recv_timeout(Duration::from_millis(10)),
        Err(Error::Timeout { .. })
    ));
    assert_eq!(b.try_recv(), Ok(1));
}

#[test]
fn blocking_recv_is_woken_by_a_send_from_another_thread() {
    let ring = DuplexRing::<u64>::new(16).unwrap();
    let mut a = ring.end_a().unwrap();
    let ring2 = ring.clone();
    let t = std::thread::spawn(move || {
        let mut b = ring2.end_b().unwrap();
        for i in 0..20_000u64 {
            let v = b.recv_timeout(LIMIT).unwrap();
            assert_eq!(v, i);
            b.send_timeout(v + 1, LIMIT).unwrap();
        }
    });
    for i in 0..20_000u64 {
        a.send_timeout(i, LIMIT).unwrap();
        assert_eq!(a.recv_timeout(LIMIT).unwrap(), i + 1);
    }
    t.join().unwrap();
}

#[test]
fn an_end_cannot_be_claimed_twice_while_held_and_can_after_drop() {
    let name = ShmName::new("duplex_claims");
    let ring = DuplexRing::<u64>::create(&name, 8).unwrap();
    let a = ring.end(End::A).unwrap();
    assert_eq!(a.which(), End::A);
    let other = DuplexRing::<u64>::open(&name).unwrap();
    assert!(matches!(other.end_a(), Err(Error::InvalidArgument { .. })));
    let mut b = other.end_b().unwrap();
    drop(a);
    let mut a = other.end_a().unwrap();
    a.try_send(3).unwrap();
    assert_eq!(b.try_recv(), Ok(3));
    assert!(matches!(
        DuplexRing::<u32>::open(&name),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        DuplexRing::<u64>::new(0),
        Err(Error::InvalidArgument { .. })
    ));
}

// ------------------------------------------------------------ processes

#[test]
fn a_child_process_answers_100k_requests_in_order() {
    let name = ShmName::new("duplex_echo");
    let ring = DuplexRing::<u64>::create(&name, 64).unwrap();
    let mut a = ring.end_a().unwrap();
    let mut child = spawn("echo", &[&name]);
    for i in 0..100_000u64 {
        a.send_timeout(i, LIMIT).unwrap();
        assert_eq!(a.recv_timeout(LIMIT).unwrap(), i * 3 + 1);
    }
    // Busy-polling, as the benchmark does.
    for i in 0..1000u64 {
        while a.try_send(i).is_err() {}
        let t0 = Instant::now();
        let v = loop {
            match a.try_recv() {
                Ok(v) => break v,
                Err(TryError::Empty) => assert!(t0.elapsed() < LIMIT),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(v, i * 3 + 1);
    }
    drop(a);
    child.expect_success(LIMIT);
}

#[test]
fn death_of_the_peer_reads_as_closed_after_draining() {
    let name = ShmName::new("duplex_death");
    let ring = DuplexRing::<u64>::create(&name, 64).unwrap();
    let mut a = ring.end_a().unwrap();
    let mut child = spawn("send_then_hang", &[&name, "10"]);
    for i in 0..5 {
        assert_eq!(a.recv_timeout(LIMIT).unwrap(), i);
    }
    assert!(matches!(ring.end_b(), Err(Error::InvalidArgument { .. })));
    let tail = word32(&ring, TAIL_B_TO_A);
    assert!(common::wait_until(LIMIT, || tail.load(Ordering::SeqCst) == 10));
    child.kill();
    for i in 5..10 {
        assert_eq!(a.recv_timeout(LIMIT).unwrap(), i);
    }
    let t0 = Instant::now();
    assert!(matches!(a.recv_timeout(LIMIT), Err(Error::Closed { .. })));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // `try_recv` sees the death too; once an end has seen its peer gone, its
    // sends answer `Closed` at once, as a pipe's do.
    let t0 = Instant::now();
    while a.try_recv() != Err(TryError::Closed) {
        assert!(t0.elapsed() < LIMIT);
    }
    assert_eq!(a.try_send(0), Err(TryError::Closed));
    // The dead participant's end can be claimed again; nothing was sent to it.
    let mut b = ring.end_b().unwrap();
    assert_eq!(b.try_recv(), Err(TryError::Empty));
}

// ------------------------------------------------------------ corruption

#[test]
fn scribbled_indices_and_stamps_make_operations_fail_cleanly() {
    let name = ShmName::new("duplex_scribble");
    let ring = DuplexRing::<u64>::create(&name, 8).unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut corrupted = 0;
    for _ in 0..500 {
        let (mut a, mut b) = (ring.end_a().unwrap(), ring.end_b().unwrap());
        let _ = a.try_send(1);
        for _ in 0..1 + rng.next() % 3 {
            let off = match rng.next() % 5 {
                0 => TAIL_A_TO_B,
                1 => HEAD_A_TO_B,
                2 => TAIL_B_TO_A,
                3 => HEAD_B_TO_A,
                _ => PAIRS + (rng.next() % 16) as usize * 16,
            };
            let v = match rng.next() % 3 {
                0 => rng.next() as u32,
                1 => (rng.next() % 64) as u32,
                _ => (rng.next() % 64) as u32 | 1 << 31,
            };
            word32(&ring, off).store(v, Ordering::SeqCst);
        }
        for _ in 0..2 * STAMP_ANSWERS {
            for r in [
                a.try_send(7).map(|_| 0),
                b.try_send(8).map(|_| 0),
                a.try_recv(),
                b.try_recv(),
            ] {
                corrupted += (r == Err(TryError::Corrupted)) as u32;
            }
        }
        for r in [
            a.recv_timeout(Duration::ZERO).map(|_| ()),
            b.send_timeout(1, Duration::ZERO),
        ] {
            assert!(
                matches!(
                    r,
                    Ok(())
                        | Err(Error::Corrupted { .. }
                            | Error::Timeout { .. }
                            | Error::Closed { .. })
                ),
                "{r:?}"
            );
        }
        drop((a, b));
        for off in [TAIL_A_TO_B, HEAD_A_TO_B, TAIL_B_TO_A, HEAD_B_TO_A] {
            word32(&ring, off).store(0, Ordering::SeqCst);
        }
        for i in 0..16 {
            word32(&ring, PAIRS + i * 16).store(0, Ordering::SeqCst);
        }
    }
    assert!(
        corrupted > 100,
        "only {corrupted} operations saw corruption"
    );
}
