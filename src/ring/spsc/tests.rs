use super::*;

/// The line `prefetch_slot` asks for is the one the next pop reads (the
/// element of the position, on every lap), and only rings of elements of
/// up to a line prefetch at all: not larger elements.
#[test]
fn the_prefetched_slot_is_the_one_a_pop_reads() {
    fn prefetches<T: Pod>() -> bool {
        let ring = SpscRing::<T>::anonymous(8).unwrap();
        let on_ring = ring.shared.ring.prefetch;
        let consumer = ring.consumer().unwrap();
        assert_eq!(consumer.core.prefetch, on_ring);
        on_ring
    }
    assert!(prefetches::<u64>());
    assert!(prefetches::<[u8; 64]>());
    assert!(!prefetches::<[u8; 65]>());
    let ring = SpscRing::<[u8; 24]>::anonymous(8).unwrap();
    let r = &ring.shared.ring;
    assert_eq!(r.cap, 8);
    for pos in 0..3 * r.cap {
        // SAFETY: `pos & mask < cap`: a slot of the ring.
        let read = unsafe { r.slots::<[u8; 24]>().add((pos & r.mask) as usize) };
        assert_eq!(
            r.slot_start(pos),
            read.cast::<u8>(),
            "element position {pos}"
        );
    }
}

/// A byte ring's consumer prefetches after a record of up to two lines,
/// and not after a larger one, whichever way it took the message; the
/// line it asks for holds the first word the next receive reads (the
/// record's header, or a pad), on every lap.
#[test]
fn a_byte_consumer_prefetches_the_next_header_after_a_small_message() {
    let ring = SpscByteRing::anonymous(512, 200).unwrap();
    assert!(!ring.shared.ring.prefetch);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    assert!(!rx.core.prefetch, "nothing received yet");
    let mut buf = [0u8; 200];
    // (length, expected decision): records of 8 + length rounded up to 8.
    let cases = [
        (8, true),
        (120, true),
        (121, false),
        (0, true),
        (200, false),
        (64, true),
        (193, false),
    ];
    for lap in 0..6 {
        for (k, &(len, small)) in cases.iter().enumerate() {
            let msg = vec![k as u8; len];
            tx.try_send(&msg).unwrap();
            // The word a receive reads first: the header, or a pad.
            let r = &rx.core.ring;
            let first = r
                .words()
                .cast::<u8>()
                .wrapping_add((rx.core.head & r.mask) as usize);
            assert_eq!(r.slot_start(rx.core.head), first, "lap {lap}, message {k}");
            let n = match (lap + k) % 3 {
                0 => rx.try_recv_into(&mut buf).unwrap(),
                1 => rx.try_recv().unwrap().len(),
                _ => {
                    let mut out = Vec::new();
                    assert_eq!(rx.try_recv_many(&mut out, 4).unwrap(), 1);
                    out[0].len()
                }
            };
            assert_eq!(n, len);
            assert_eq!(
                rx.core.prefetch, small,
                "lap {lap}: after a message of {len} bytes"
            );
        }
    }
}
