//! Pipe: an echo server in a child process, end-of-file on close and on death,
//! poll, timeouts, simplex direction, values, and one process per end.

mod common;

use std::time::{Duration, Instant};

use common::ShmName;
use shmprim::pipe::{End, Pipe};
use shmprim::{Deadline, Error};

const LIMIT: Duration = Duration::from_secs(30);

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "echo" => {
            let mut b = Pipe::open(&args[0]).unwrap().end_b().unwrap();
            loop {
                match b.recv_timeout(LIMIT) {
                    Ok(msg) => b.send_timeout(&msg, LIMIT).unwrap(),
                    Err(Error::Closed { .. }) => break,
                    Err(e) => panic!("echo server: {e}"),
                }
            }
        }
        "hold" => {
            let mut b = Pipe::open(&args[0]).unwrap().end_b().unwrap();
            b.send(b"ready").unwrap();
            std::thread::sleep(LIMIT * 2);
        }
        "send_and_close" => {
            let mut b = Pipe::open(&args[0]).unwrap().end_b().unwrap();
            let n: u64 = args[1].parse().unwrap();
            for i in 0..n {
                b.send_value(&i).unwrap();
            }
            b.close();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

fn request(seq: u64) -> Vec<u8> {
    let mut msg = seq.to_le_bytes().to_vec();
    msg.extend((0..(seq % 57) as u8).map(|i| i ^ seq as u8));
    msg
}

#[test]
fn an_echo_server_in_a_child_process_answers_100k_requests_in_order() {
    let name = ShmName::new("pipe_echo");
    let pipe = Pipe::create(&name, 64 * 1024, 128).unwrap();
    let mut a = pipe.end_a().unwrap();
    let mut child = spawn("echo", &[&name]);
    const N: u64 = 100_000;
    // Keep a window of requests in flight (far less than a ring holds), so the
    // server never blocks on a full reply ring while we block on a full request
    // ring.
    const WINDOW: u64 = 64;
    let mut next_reply = 0u64;
    for seq in 0..N {
        a.send_timeout(&request(seq), LIMIT).unwrap();
        if seq >= WINDOW {
            assert_eq!(a.recv_timeout(LIMIT).unwrap(), request(next_reply));
            next_reply += 1;
        }
    }
    while next_reply < N {
        assert_eq!(a.recv_timeout(LIMIT).unwrap(), request(next_reply));
        next_reply += 1;
    }
    drop(a);
    child.expect_success(LIMIT);
}

#[test]
fn killing_the_peer_process_makes_recv_return_closed_promptly() {
    let name = ShmName::new("pipe_kill");
    let pipe = Pipe::create(&name, 4096, 64).unwrap();
    let mut a = pipe.end_a().unwrap();
    let mut child = spawn("hold", &[&name]);
    assert_eq!(a.recv_timeout(LIMIT).unwrap(), b"ready");
    // The child holds end B: nobody else may claim it.
    assert!(matches!(pipe.end_b(), Err(Error::InvalidArgument { .. })));
    let waiter = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = a.recv_timeout(LIMIT);
        (r, t0.elapsed(), a)
    });
    std::thread::sleep(Duration::from_millis(100));
    child.kill();
    let (r, elapsed, mut a) = waiter.join().unwrap();
    assert!(matches!(r, Err(Error::Closed { .. })), "{r:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(matches!(a.send(b"anyone?"), Err(Error::Closed { .. })));
    assert!(matches!(a.try_recv(), Err(Error::Closed { .. })));
    // End-of-file is final: the dead end cannot be claimed again.
    assert!(matches!(pipe.end_b(), Err(Error::Closed { .. })));
}

#[test]
fn a_peer_that_closes_its_end_is_drained_then_reads_as_closed() {
    let name = ShmName::new("pipe_close");
    let pipe = Pipe::create(&name, 4096, 64).unwrap();
    let mut a = pipe.end_a().unwrap();
    let mut child = spawn("send_and_close", &[&name, "100"]);
    child.expect_success(LIMIT);
    for i in 0..100u64 {
        assert_eq!(a.recv_value::<u64>().unwrap(), i);
    }
    assert!(matches!(a.recv_timeout(LIMIT), Err(Error::Closed { .. })));
    assert!(
        a.poll(Duration::ZERO).unwrap(),
        "poll is true at end-of-file"
    );
    assert!(matches!(a.send(b"x"), Err(Error::Closed { .. })));
    assert!(matches!(pipe.end_b(), Err(Error::Closed { .. })));
}

#[test]
fn close_wakes_a_receiver_blocked_in_another_thread() {
    let pipe = Pipe::new(1024, 64, true).unwrap();
    let mut a = pipe.end_a().unwrap();
    let b = pipe.end_b().unwrap();
    let t = std::thread::spawn(move || {
        let t0 = Instant::now();
        (a.recv_timeout(LIMIT), t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    b.close();
    let (r, elapsed) = t.join().unwrap();
    assert!(matches!(r, Err(Error::Closed { .. })), "{r:?}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[test]
fn poll_reports_whether_a_message_is_waiting() {
    let pipe = Pipe::new(1024, 64, true).unwrap();
    let mut a = pipe.end_a().unwrap();
    let mut b = pipe.end_b().unwrap();
    let t0 = Instant::now();
    assert!(!a.poll(Duration::from_millis(20)).unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(20));
    b.send(b"hi").unwrap();
    assert!(a.poll(Duration::ZERO).unwrap());
    assert!(a.poll(Duration::ZERO).unwrap(), "poll does not consume");
    assert_eq!(a.try_recv().unwrap(), b"hi");
    assert!(matches!(a.try_recv(), Err(Error::Empty { .. })));
}

#[test]
fn duplex_ends_talk_both_ways() {
    let pipe = Pipe::new(1024, 64, true).unwrap();
    let mut a = pipe.end_a().unwrap();
    let mut b = pipe.end_b().unwrap();
    a.send(b"to b").unwrap();
    b.send(b"to a").unwrap();
    assert_eq!(b.recv().unwrap(), b"to b");
    assert_eq!(a.recv().unwrap(), b"to a");
    assert_eq!(a.which(), End::A);
}

/// A byte ring's capacity is a power of two from 16, so rings of 16 to 64
/// bytes are shorter than the 128-byte alignment their headers need: the
/// second ring of a duplex pipe must still start aligned. (Before the fix it
/// did not, and this test, in a debug build, stopped at the misaligned
/// header.) Named and heap pipes share the layout; both are exercised.
#[test]
fn duplex_pipes_smaller_than_a_ring_alignment_talk_both_ways() {
    let name = ShmName::new("pipe_small");
    for capacity in [16, 32, 64, 100, 128] {
        let named = Pipe::create(name.as_str(), capacity, 4).unwrap();
        Pipe::unlink(name.as_str()).unwrap();
        for pipe in [named, Pipe::new(capacity, 4, true).unwrap()] {
            let mut a = pipe.end_a().unwrap();
            let mut b = pipe.end_b().unwrap();
            for round in 0u32..40 {
                a.send_value(&round).unwrap();
                b.send_value(&!round).unwrap();
                assert_eq!(b.recv_value::<u32>().unwrap(), round, "capacity {capacity}");
                assert_eq!(
                    a.recv_value::<u32>().unwrap(),
                    !round,
                    "capacity {capacity}"
                );
            }
        }
    }
}

#[test]
fn a_simplex_pipe_only_carries_messages_from_writer_to_reader() {
    let name = ShmName::new("pipe_simplex");
    let pipe = Pipe::create_simplex(&name, 1024, 64).unwrap();
    assert!(!pipe.is_duplex());
    let mut reader = pipe.reader().unwrap();
    let mut writer = Pipe::open(&name).unwrap().writer().unwrap();
    assert!(matches!(
        reader.send(b"x"),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(writer.recv(), Err(Error::InvalidArgument { .. })));
    writer.send(b"one way").unwrap();
    assert_eq!(reader.recv().unwrap(), b"one way");
}

#[test]
fn timeouts_bound_recv_on_empty_and_send_on_full() {
    let pipe = Pipe::new(0, 64, true).unwrap();
    let mut a = pipe.end_a().unwrap();
    let _b = pipe.end_b().unwrap();
    assert!(matches!(
        a.recv_timeout(Duration::from_millis(20)),
        Err(Error::Timeout { .. })
    ));
    let msg = [1u8; 64];
    let mut sent = 0;
    while a.try_send(&msg).is_ok() {
        sent += 1;
    }
    assert!(sent >= 2, "a ring holds at least two maximal messages");
    assert!(matches!(a.try_send(&msg), Err(Error::Full { .. })));
    let t0 = Instant::now();
    assert!(matches!(
        a.send_timeout(&msg, Duration::from_millis(20)),
        Err(Error::Timeout { .. })
    ));
    assert!(t0.elapsed() >= Duration::from_millis(20));
    assert!(matches!(
        a.send_deadline(&msg, Deadline::now()),
        Err(Error::Timeout { .. })
    ));
}

#[test]
fn values_round_trip_and_a_wrong_size_is_an_error() {
    let pipe = Pipe::new(1024, 64, true).unwrap();
    let mut a = pipe.end_a().unwrap();
    let mut b = pipe.end_b().unwrap();
    a.send_value(&[1.5f64, -2.0]).unwrap();
    assert_eq!(b.recv_value::<[f64; 2]>().unwrap(), [1.5, -2.0]);
    a.send_value(&7u32).unwrap();
    assert!(matches!(
        b.recv_value::<u64>(),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn recv_into_a_small_buffer_keeps_the_message_and_tells_its_size() {
    let pipe = Pipe::new(1024, 64, true).unwrap();
    let mut a = pipe.end_a().unwrap();
    let mut b = pipe.end_b().unwrap();
    a.send(&[9u8; 40]).unwrap();
    let mut small = [0u8; 10];
    assert!(matches!(
        b.recv_into(&mut small),
        Err(Error::BufferTooSmall {
            needed: 40,
            available: 10,
            ..
        })
    ));
    assert_eq!(b.next_len().unwrap(), 40);
    let mut buf = vec![0u8; b.next_len().unwrap()];
    assert_eq!(b.recv_into(&mut buf).unwrap(), 40);
    assert_eq!(buf, [9u8; 40]);
    assert!(matches!(
        a.send(&[0u8; 65]),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn try_recv_into_takes_what_is_there_without_waiting() {
    let pipe = Pipe::new(1024, 64, true).unwrap();
    let mut a = pipe.end_a().unwrap();
    let mut b = pipe.end_b().unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(
        b.try_recv_into(&mut buf),
        Err(Error::Empty { .. })
    ));
    a.send(b"first").unwrap();
    a.send(&[7u8; 30]).unwrap();
    assert_eq!(b.try_recv_into(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"first");
    // Too small: the message stays, and the error names its size.
    assert!(matches!(
        b.try_recv_into(&mut buf[..8]),
        Err(Error::BufferTooSmall {
            needed: 30,
            available: 8,
            ..
        })
    ));
    assert_eq!(b.try_recv_into(&mut buf).unwrap(), 30);
    assert_eq!(buf[..30], [7u8; 30]);
    // What was sent before a close still comes first, then end-of-file.
    a.send(b"last").unwrap();
    a.close();
    assert_eq!(b.try_recv_into(&mut buf).unwrap(), 4);
    let t0 = Instant::now();
    let r = loop {
        match b.try_recv_into(&mut buf) {
            Err(Error::Empty { .. }) if t0.elapsed() < LIMIT => std::thread::yield_now(),
            r => break r,
        }
    };
    assert!(matches!(r, Err(Error::Closed { .. })), "{r:?}");
}

#[test]
fn each_end_is_claimed_once_and_a_closed_end_stays_closed() {
    let name = ShmName::new("pipe_claim");
    let pipe = Pipe::create(&name, 1024, 64).unwrap();
    let other = Pipe::open(&name).unwrap();
    let a = pipe.end_a().unwrap();
    assert!(matches!(other.end_a(), Err(Error::InvalidArgument { .. })));
    assert!(matches!(pipe.end_a(), Err(Error::InvalidArgument { .. })));
    a.close();
    assert!(matches!(other.end_a(), Err(Error::Closed { .. })));
    let mut b = other.end_b().unwrap();
    assert!(matches!(b.send(b"x"), Err(Error::Closed { .. })));
    assert!(matches!(b.recv(), Err(Error::Closed { .. })));
}

#[test]
fn threads_exchange_many_messages_through_a_small_pipe() {
    let pipe = Pipe::new(256, 32, true).unwrap();
    let mut a = pipe.end_a().unwrap();
    let mut b = pipe.end_b().unwrap();
    const N: u32 = 20_000;
    let t = std::thread::spawn(move || {
        for i in 0..N {
            let v: u32 = b.recv_value().unwrap();
            assert_eq!(v, i);
            b.send_value(&(v * 2)).unwrap();
        }
    });
    for i in 0..N {
        a.send_value(&i).unwrap();
        assert_eq!(a.recv_value::<u32>().unwrap(), i * 2);
    }
    t.join().unwrap();
}

#[test]
fn sends_to_a_killed_peer_fail_with_closed_within_a_bounded_number_of_messages() {
    let name = ShmName::new("pipe_kill_send");
    let pipe = Pipe::create(&name, 64 * 1024, 64).unwrap();
    let mut a = pipe.end_a().unwrap();
    let mut child = spawn("hold", &[&name]);
    assert_eq!(a.recv_timeout(LIMIT).unwrap(), b"ready");
    child.kill();
    // Without ever receiving, the sender notices within 256 messages (its
    // periodic liveness check), long before the 64 KiB ring is full.
    let mut sent = 0;
    let r = loop {
        match a.send_timeout(&[0u8; 8], LIMIT) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent <= 256, "still sending after {sent} messages");
    };
    assert!(matches!(r, Error::Closed { .. }), "{r:?}");
}

#[test]
fn opening_a_pipe_whose_header_was_overwritten_is_corrupted() {
    let name = ShmName::new("pipe_bad_header");
    let pipe = Pipe::create(&name, 1024, 64).unwrap();
    let base = pipe.segment().unwrap().as_ptr();
    // SAFETY: the pipe's header starts the data area; its capacity field is
    // the third u32 (see the layout in `shmprim::pipe`), and nobody uses the
    // pipe concurrently.
    unsafe { base.add(8).cast::<u32>().write_volatile(1 << 20) };
    assert!(matches!(Pipe::open(&name), Err(Error::Corrupted { .. })));
}
