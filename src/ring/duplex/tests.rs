use super::*;

#[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C, align(16))]
struct Wide {
    a: [u64; 2],
    b: [u32; 4],
}

/// The layout computed from a size and an alignment (what a C caller
/// gives) is the one Rust gives `StampedSlot<T>`, for elements smaller
/// and larger than the stamp and aligned below, at and above it.
#[test]
fn a_layout_from_size_and_alignment_is_rusts_layout_of_the_slot() {
    fn same<T: Pod>() {
        let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
        assert_eq!(
            SlotLayout::new(size, align).unwrap(),
            SlotLayout::of::<T>().unwrap(),
            "{size} bytes aligned to {align}"
        );
    }
    same::<u8>();
    same::<[u8; 3]>();
    same::<u16>();
    same::<u32>();
    same::<[u8; 13]>();
    same::<u64>();
    same::<[u64; 3]>();
    same::<u128>();
    same::<Wide>();
    for (size, align) in [
        (0, 1),
        (8, 3),
        (12, 8),
        (256, 256),
        (1 << 32, 1),
        (usize::MAX, 1),
    ] {
        assert!(SlotLayout::new(size, align).is_err(), "{size}, {align}");
    }
}

/// A typed end and a raw end (the C functions' form) on one named ring,
/// for an element that puts its value after padding (16-byte aligned):
/// values cross both ways intact, by stamp and by the blocking path.
#[test]
fn a_raw_end_and_a_typed_end_share_one_ring() {
    let name = format!("shmprim-unit-duplex-raw-{}", std::process::id());
    let ring = DuplexRing::<Wide>::create(&name, 4).unwrap();
    let mut a = ring.end_a().unwrap();
    let raw = RawDuplexRing::open(&name).unwrap();
    DuplexRing::<Wide>::unlink(&name).unwrap();
    assert_eq!(raw.elem_size(), 32);
    assert_eq!(raw.capacity(), 4);
    let mut b = raw.end(End::B).unwrap();
    assert!(matches!(
        raw.end(End::B),
        Err(Error::InvalidArgument { .. })
    ));
    let mut buf = [0u8; 32];
    assert_eq!(b.try_recv(&mut buf), Err(TryError::Empty));
    for i in 0..10u64 {
        let w = Wide {
            a: [i, !i],
            b: [i as u32, 7, 8, 9],
        };
        a.send(w).unwrap();
        b.recv(&mut buf, Deadline::after(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(&buf[..], bytemuck::bytes_of(&w));
        // Answer with the halves swapped.
        let back = Wide {
            a: [w.a[1], w.a[0]],
            b: w.b,
        };
        b.try_send(bytemuck::bytes_of(&back)).unwrap();
        let got = a.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got.a, [!i, i]);
        assert_eq!(got.b, w.b);
    }
    // Four fill the ring; the fifth does not fit.
    for _ in 0..4 {
        b.try_send(&buf).unwrap();
    }
    assert_eq!(b.try_send(&buf), Err(TryError::Full));
    drop(a);
    // The typed end's close reads as end-of-file on the raw end.
    assert!(matches!(
        b.recv(&mut buf, Deadline::after(Duration::from_secs(5))),
        Err(Error::Closed { .. })
    ));
}
