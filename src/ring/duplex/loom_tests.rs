use super::*;

/// End A sends 3 values through a 2-slot ring while end B polls
/// `try_recv`, whose stamp answers run out every third poll so that the
/// tail check runs between them: every value arrives once, in order, and
/// the tail check never finds the receiver ahead of the tail (which would
/// read as corrupted). Slots are loom cells, so a missing Release/Acquire
/// pair on the stamp shows up as a data race.
#[test]
fn loom_duplex_values_arrive_in_order_by_stamp_and_by_tail() {
    loom::model(|| {
        let ring = DuplexRing::<u64>::new(2).unwrap();
        let mut a = ring.end_a().unwrap();
        let mut b = ring.end_b().unwrap();
        let t = loom::thread::spawn(move || {
            let mut next = 1u64;
            while next <= 3 {
                match a.try_send(next) {
                    Ok(()) => next += 1,
                    Err(TryError::Full) => loom::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            a
        });
        let mut expect = 1u64;
        while expect <= 3 {
            match b.try_recv() {
                Ok(v) => {
                    assert_eq!(v, expect);
                    expect += 1;
                }
                Err(TryError::Empty) => loom::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        drop(t.join().unwrap());
    });
}

/// A blocking `recv` that finds nothing and sleeps is always woken by the
/// peer's `send`, and the reply comes back the same way.
#[test]
fn loom_duplex_blocking_recv_is_woken_by_send() {
    loom::model(|| {
        let ring = DuplexRing::<u64>::new(1).unwrap();
        let mut a = ring.end_a().unwrap();
        let mut b = ring.end_b().unwrap();
        let t = loom::thread::spawn(move || {
            let v = b.recv().unwrap();
            b.send(v + 1).unwrap();
            b
        });
        a.send(5).unwrap();
        assert_eq!(a.recv().unwrap(), 6);
        drop(t.join().unwrap());
    });
}
