use super::*;

/// Producer and consumer threads on a ring of 2 slots: 3 values arrive in
/// order, none lost or duplicated, across the wrap. Slots are loom cells,
/// so a missing Release/Acquire pair shows up as a data race.
#[test]
fn loom_spsc_elements_arrive_in_order() {
    loom::model(|| {
        let ring = SpscRing::<u64>::new(2).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let t = loom::thread::spawn(move || {
            let mut next = 1u64;
            while next <= 3 {
                match tx.try_push(next) {
                    Ok(()) => next += 1,
                    Err(TryError::Full) => loom::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let mut expect = 1u64;
        while expect <= 3 {
            match rx.try_pop() {
                Ok(v) => {
                    assert_eq!(v, expect);
                    expect += 1;
                }
                Err(TryError::Empty) => loom::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        t.join().unwrap();
    });
}

/// Three variable-length messages through a 32-byte byte ring; the third
/// starts 8 bytes before the end, so it needs a padding record and wraps.
/// All arrive intact and in order.
#[test]
fn loom_spsc_bytes_across_the_wrap() {
    loom::model(|| {
        let ring = SpscByteRing::new(32, 8).unwrap();
        assert_eq!(ring.capacity(), 32);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let t = loom::thread::spawn(move || {
            // Records of 8 (empty message) and 16 bytes: the tail ends at 24.
            for msg in [&b""[..], &[1u8; 8][..], &[7u8; 5][..]] {
                loop {
                    match tx.try_send(msg) {
                        Ok(()) => break,
                        Err(Error::Full { .. }) => loom::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            match rx.try_recv() {
                Ok(m) => got.push(m),
                Err(Error::Empty { .. }) => loom::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, [vec![], vec![1u8; 8], vec![7u8; 5]]);
        t.join().unwrap();
    });
}

/// A consumer that finds the ring empty and sleeps is always woken by the
/// producer's blocking push (a lost wake-up is a loom deadlock).
#[test]
fn loom_spsc_blocking_pop_is_woken_by_push() {
    loom::model(|| {
        let ring = SpscRing::<u64>::new(1).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let t = loom::thread::spawn(move || {
            tx.push(5).unwrap();
            // Keep the end open until the consumer is done: dropping it
            // would wake the consumer through the closed flag instead.
            tx
        });
        assert_eq!(rx.pop().unwrap(), 5);
        drop(t.join().unwrap());
    });
}

/// A producer that finds the ring full and sleeps is always woken by the
/// consumer's blocking pop.
#[test]
fn loom_spsc_blocking_push_is_woken_by_pop() {
    loom::model(|| {
        let ring = SpscRing::<u64>::new(1).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        tx.try_push(1).unwrap();
        let t = loom::thread::spawn(move || {
            assert_eq!(rx.pop().unwrap(), 1);
            rx
        });
        tx.push(2).unwrap();
        let mut rx = t.join().unwrap();
        assert_eq!(rx.try_pop().unwrap(), 2);
    });
}
