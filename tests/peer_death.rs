//! Calls that do not wait see a dead or closed peer by the same rule as the
//! waiting ones: after the peer is SIGKILLed or closes its end, every `try_`
//! receive of every ring, pipe and duplex ring form drains what the peer sent
//! and then answers `Closed`, and every `try_` send that finds the ring full
//! answers `Closed`, instead of `Empty` or `Full` for ever.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{ShmName, wait_until, word};
use shmprim::ring::spsc::raw::RawSpscRing;
use shmprim::ring::spsc::{SpscByteRing, SpscRing, TryError};
use shmprim::{DuplexRing, Error, Pipe, Segment};

const LIMIT: Duration = Duration::from_secs(20);
/// How long a polling end may take to see its peer gone: its liveness look
/// comes at most every millisecond; this leaves room for a loaded machine.
const SEEN_WITHIN: Duration = Duration::from_secs(2);

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    let ctl = Segment::open(&args[1]).unwrap();
    let ready = || word(&ctl, 0).store(1, Ordering::SeqCst);
    let name = &args[0];
    match role.as_str() {
        "spsc_produce" => {
            let ring = SpscRing::<u64>::open(name).unwrap();
            let mut tx = ring.producer().unwrap();
            for i in 0..3 {
                tx.try_push(i).unwrap();
            }
            ready();
            std::thread::sleep(LIMIT);
        }
        "spsc_consume" => {
            let ring = SpscRing::<u64>::open(name).unwrap();
            let _rx = ring.consumer().unwrap();
            ready();
            std::thread::sleep(LIMIT);
        }
        "bytes_produce" => {
            let ring = SpscByteRing::open(name).unwrap();
            let mut tx = ring.producer().unwrap();
            for m in [&b"one"[..], b"two"] {
                tx.try_send(m).unwrap();
            }
            ready();
            std::thread::sleep(LIMIT);
        }
        "bytes_consume" => {
            let ring = SpscByteRing::open(name).unwrap();
            let _rx = ring.consumer().unwrap();
            ready();
            std::thread::sleep(LIMIT);
        }
        "pipe_send" => {
            let pipe = Pipe::open(name).unwrap();
            let mut b = pipe.end_b().unwrap();
            b.try_send(b"hello").unwrap();
            ready();
            std::thread::sleep(LIMIT);
        }
        "duplex_send" => {
            let ring = DuplexRing::<u64>::open(name).unwrap();
            let mut b = ring.end_b().unwrap();
            b.try_send(41).unwrap();
            ready();
            std::thread::sleep(LIMIT);
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

/// Starts `role` on `name`, waits until it is set up, and SIGKILLs it.
fn kill_after_setup(role: &str, name: &str) {
    let ctl_name = ShmName(format!("{name}.ctl"));
    let ctl = Segment::create(&ctl_name, 64).unwrap();
    let mut child = spawn(role, &[name, &ctl_name]);
    assert!(wait_until(LIMIT, || word(&ctl, 0).load(Ordering::SeqCst) == 1));
    child.kill();
}

/// Polls `op` until it answers something other than `busy`, for at most
/// [`SEEN_WITHIN`]; returns that answer.
#[track_caller]
fn poll<R: std::fmt::Debug>(mut op: impl FnMut() -> R, busy: impl Fn(&R) -> bool) -> R {
    let start = Instant::now();
    loop {
        let r = op();
        if !busy(&r) {
            return r;
        }
        assert!(
            start.elapsed() < SEEN_WITHIN,
            "still {r:?} after {SEEN_WITHIN:?}: the dead peer was not seen"
        );
        std::hint::spin_loop();
    }
}

#[test]
fn spsc_try_receives_drain_a_killed_producer_then_answer_closed() {
    let name = ShmName::new("death_spsc_rx");
    let ring = SpscRing::<u64>::create(&name, 64).unwrap();
    let mut rx = ring.consumer().unwrap();
    kill_after_setup("spsc_produce", &name);
    let mut got = Vec::new();
    loop {
        match poll(|| rx.try_pop(), |r| *r == Err(TryError::Empty)) {
            Ok(v) => got.push(v),
            Err(e) => {
                assert_eq!(e, TryError::Closed);
                break;
            }
        }
    }
    assert_eq!(got, [0, 1, 2], "what the producer pushed comes first");
    assert_eq!(rx.pop_into(&mut [0; 4]), Err(TryError::Closed));
    assert_eq!(rx.try_pop(), Err(TryError::Closed), "closed stays closed");
}

#[test]
fn spsc_try_sends_to_a_killed_consumer_answer_closed_when_full() {
    let name = ShmName::new("death_spsc_tx");
    let ring = SpscRing::<u64>::create(&name, 4).unwrap();
    let mut tx = ring.producer().unwrap();
    for i in 0..4 {
        tx.try_push(i).unwrap();
    }
    assert_eq!(tx.try_push(9), Err(TryError::Full), "no consumer yet: full");
    kill_after_setup("spsc_consume", &name);
    let r = poll(|| tx.try_push(9), |r| *r == Err(TryError::Full));
    assert_eq!(r, Err(TryError::Closed));
    assert_eq!(tx.push_slice(&[1, 2]), Err(TryError::Closed));
}

#[test]
fn raw_ring_try_forms_see_a_killed_peer_as_the_c_calls_do() {
    // `RawSpscRing` is what `shmprim_spsc_pop(.., 0)` / `_push(.., 0)` call.
    let name = ShmName::new("death_raw");
    let ring = SpscRing::<u64>::create(&name, 64).unwrap();
    let raw = RawSpscRing::open(&name).unwrap();
    let mut rx = raw.consumer().unwrap();
    kill_after_setup("spsc_produce", &name);
    let mut buf = [0u8; 8];
    let mut n = 0;
    loop {
        match poll(|| rx.try_pop(&mut buf), |r| *r == Err(TryError::Empty)) {
            Ok(()) => n += 1,
            Err(e) => {
                assert_eq!(e, TryError::Closed);
                break;
            }
        }
    }
    assert_eq!(n, 3);
    assert_eq!(rx.try_pop_many(&mut [0u8; 32], 4), Err(TryError::Closed));
    drop((rx, ring));
}

#[test]
fn byte_ring_try_receives_and_next_len_see_a_killed_producer() {
    let name = ShmName::new("death_bytes_rx");
    let ring = SpscByteRing::create(&name, 256, 16).unwrap();
    let mut rx = ring.consumer().unwrap();
    kill_after_setup("bytes_produce", &name);
    let mut buf = [0u8; 16];
    let first = poll(
        || rx.try_recv_into(&mut buf),
        |r| matches!(r, Err(Error::Empty { .. })),
    );
    assert_eq!(first.unwrap(), 3);
    assert_eq!(
        rx.next_len().unwrap(),
        3,
        "the second message is still there"
    );
    assert_eq!(rx.try_recv().unwrap(), b"two");
    assert!(matches!(rx.next_len(), Err(Error::Closed { .. })));
    assert!(matches!(
        rx.try_recv_into(&mut buf),
        Err(Error::Closed { .. })
    ));
    assert!(matches!(
        rx.try_recv_many(&mut Vec::new(), 4),
        Err(Error::Closed { .. })
    ));
}

#[test]
fn byte_ring_try_send_to_a_killed_consumer_answers_closed_when_full() {
    let name = ShmName::new("death_bytes_tx");
    let ring = SpscByteRing::create(&name, 64, 8).unwrap();
    let mut tx = ring.producer().unwrap();
    while tx.try_send(b"12345678").is_ok() {}
    kill_after_setup("bytes_consume", &name);
    let r = poll(
        || tx.try_send(b"x"),
        |r| matches!(r, Err(Error::Full { .. })),
    );
    assert!(matches!(r, Err(Error::Closed { .. })), "{r:?}");
}

#[test]
fn pipe_try_receive_and_next_len_see_a_killed_peer() {
    let name = ShmName::new("death_pipe");
    let pipe = Pipe::create(&name, 4096, 64).unwrap();
    let mut a = pipe.end_a().unwrap();
    kill_after_setup("pipe_send", &name);
    let mut buf = [0u8; 64];
    let n = poll(
        || a.try_recv_into(&mut buf),
        |r| matches!(r, Err(Error::Empty { .. })),
    );
    assert_eq!(&buf[..n.unwrap()], b"hello");
    let r = poll(|| a.next_len(), |r| matches!(r, Err(Error::Empty { .. })));
    assert!(matches!(r, Err(Error::Closed { .. })), "{r:?}");
    assert!(matches!(
        a.try_recv_into(&mut buf),
        Err(Error::Closed { .. })
    ));
}

#[test]
fn duplex_try_forms_see_a_killed_peer() {
    let name = ShmName::new("death_duplex");
    let ring = DuplexRing::<u64>::create(&name, 4).unwrap();
    let mut a = ring.end_a().unwrap();
    for i in 0..4 {
        a.try_send(i).unwrap();
    }
    kill_after_setup("duplex_send", &name);
    let v = poll(|| a.try_recv(), |r| *r == Err(TryError::Empty));
    assert_eq!(v, Ok(41));
    let r = poll(|| a.try_recv(), |r| *r == Err(TryError::Empty));
    assert_eq!(r, Err(TryError::Closed));
    let r = poll(|| a.try_send(5), |r| *r == Err(TryError::Full));
    assert_eq!(r, Err(TryError::Closed));
}

#[test]
fn every_try_form_sees_a_clean_close_too() {
    let ring = SpscRing::<u64>::anonymous(4).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(7).unwrap();
    drop(tx);
    assert_eq!(rx.try_pop(), Ok(7));
    assert_eq!(rx.try_pop(), Err(TryError::Closed));
    let mut tx = ring.producer().unwrap();
    drop(rx);
    for _ in 0..4 {
        let _ = tx.try_push(1);
    }
    assert_eq!(tx.try_push(1), Err(TryError::Closed));

    let bytes = SpscByteRing::anonymous(64, 8).unwrap();
    let (tx, mut rx) = (bytes.producer().unwrap(), bytes.consumer().unwrap());
    drop(tx);
    assert!(matches!(rx.next_len(), Err(Error::Closed { .. })));
    assert!(matches!(rx.try_recv(), Err(Error::Closed { .. })));

    let duplex = DuplexRing::<u64>::anonymous(4).unwrap();
    let (a, mut b) = (duplex.end_a().unwrap(), duplex.end_b().unwrap());
    drop(a);
    let r = poll(|| b.try_recv(), |r| *r == Err(TryError::Empty));
    assert_eq!(r, Err(TryError::Closed));
}
