//! `Array<T>`: bulk copies across processes, checked indices, length and type
//! checks on open, per-element atomics, and the zero-copy guard.

mod common;

use std::time::Duration;

use common::ShmName;
use shmprim::{Array, Error, LockError, Mismatch, Value};

const LIMIT: Duration = Duration::from_secs(30);
const BIG: usize = 1_000_000;

fn pattern(i: usize) -> f64 {
    // Values that need every bit of the mantissa, and a few special ones.
    match i % 1000 {
        0 => -0.0,
        1 => f64::MAX,
        2 => f64::MIN_POSITIVE,
        _ => (i as f64) * std::f64::consts::PI - 1.0 / (i as f64 + 0.5),
    }
}

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "fill_big" => {
            let a = Array::<f64>::open_with_len(&args[0], BIG).unwrap();
            let data: Vec<f64> = (0..BIG).map(pattern).collect();
            a.write_from(&data).unwrap();
        }
        "element_adds" => {
            let a = Array::<u32>::open(&args[0]).unwrap();
            for _ in 0..20_000 {
                a.fetch_add(3, 1).unwrap();
                a.fetch_sub(5, 1).unwrap();
            }
        }
        "die_holding_guard" => {
            let a = Array::<u64>::open(&args[0]).unwrap();
            let mut g = a.lock().unwrap();
            g[0] = 111; // half of a two-element write, then death
            let flag = Value::<u32>::open(&args[1]).unwrap();
            flag.store(1);
            std::thread::sleep(LIMIT);
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

#[test]
fn an_array_of_a_million_f64_filled_by_one_process_is_read_back_exactly_by_another() {
    for lock in [true, false] {
        let name = ShmName::new(if lock { "big_locked" } else { "big_unlocked" });
        let a = Array::<f64>::create_with_options(&name, BIG, lock, &Default::default()).unwrap();
        assert_eq!(a.len(), BIG);
        assert!(a.segment().len() < 8 * BIG + 4096, "no wasted space");
        spawn("fill_big", &[&name]).expect_success(LIMIT);
        let mut out = vec![0.0f64; BIG];
        a.read_into(&mut out).unwrap();
        for (i, x) in out.iter().enumerate() {
            assert_eq!(x.to_bits(), pattern(i).to_bits(), "element {i}");
        }
        assert_eq!(
            a.get(BIG - 1).unwrap().to_bits(),
            pattern(BIG - 1).to_bits()
        );
    }
}

#[test]
fn indices_outside_the_array_are_errors_not_panics() {
    let name = ShmName::new("bounds");
    let a = Array::<u16>::create(&name, 10).unwrap();
    let oob = |r: shmprim::Result<_>| matches!(r, Err(Error::IndexOutOfRange { len: 10, .. }));
    assert!(oob(a.get(10).map(|_| ())));
    assert!(oob(a.set(10, 1)));
    assert!(oob(a.set(usize::MAX, 1)));
    assert!(oob(a.read_range(9, &mut [0; 2])));
    assert!(oob(a.write_range(usize::MAX, &[1, 2])));
    assert!(oob(a.fetch_add(10, 1).map(|_| ())));
    assert!(matches!(
        a.read_into(&mut [0; 9]),
        Err(Error::InvalidArgument { .. })
    ));
    a.write_range(8, &[7, 8]).unwrap();
    assert_eq!(a.get(9).unwrap(), 8);
    let empty_name = ShmName::new("empty");
    let e = Array::<u64>::create(&empty_name, 0).unwrap();
    assert!(e.is_empty());
    assert!(oob2(e.get(0)));
    fn oob2(r: shmprim::Result<u64>) -> bool {
        matches!(
            r,
            Err(Error::IndexOutOfRange {
                index: 0,
                len: 0,
                ..
            })
        )
    }
}

#[test]
fn opening_with_the_wrong_length_or_type_is_refused_with_a_clear_error() {
    let name = ShmName::new("wrong_len");
    let _a = Array::<f32>::create(&name, 100).unwrap();
    let err = Array::<f32>::open_with_len(&name, 99).unwrap_err();
    match &err {
        Error::Incompatible {
            what: Mismatch::Parameter,
            expected,
            found,
            ..
        } => {
            assert_eq!(expected, "length 99");
            assert_eq!(found, "length 100");
        }
        other => panic!("expected a length mismatch, got {other:?}"),
    }
    assert!(err.to_string().contains("length 99"), "{err}");
    assert!(matches!(
        Array::<u32>::open(&name),
        Err(Error::Incompatible {
            what: Mismatch::Payload,
            ..
        })
    ));
    assert!(matches!(
        Value::<f32>::open(&name),
        Err(Error::Incompatible {
            what: Mismatch::Kind,
            ..
        })
    ));
    assert!(matches!(
        Array::<f32>::open_or_create(&name, 7),
        Err(Error::Incompatible {
            what: Mismatch::Parameter,
            ..
        })
    ));
    assert_eq!(Array::<f32>::open(&name).unwrap().len(), 100);
}

#[test]
fn per_element_atomics_from_two_processes_lose_nothing() {
    for lock in [true, false] {
        let name = ShmName::new(if lock { "elem_locked" } else { "elem_unlocked" });
        let a = Array::<u32>::create_with_options(&name, 8, lock, &Default::default()).unwrap();
        a.store(5, 100_000).unwrap();
        let mut kids = [
            spawn("element_adds", &[&name]),
            spawn("element_adds", &[&name]),
        ];
        for k in &mut kids {
            k.expect_success(LIMIT);
        }
        assert_eq!(a.load(3).unwrap(), 40_000);
        assert_eq!(a.get(5).unwrap(), 60_000);
        assert_eq!(a.fetch_or(0, 0b101).unwrap(), 0);
        assert_eq!(a.fetch_and(0, 0b100).unwrap(), 0b101);
        assert_eq!(a.swap(0, 9).unwrap(), 0b100);
        assert_eq!(a.compare_exchange(0, 9, 1).unwrap(), Ok(9));
        assert_eq!(a.compare_exchange(0, 9, 2).unwrap(), Err(1));
    }
}

#[test]
fn the_guard_is_a_zero_copy_view_that_excludes_other_operations() {
    let name = ShmName::new("guard");
    let a = Array::<u64>::create(&name, 4).unwrap();
    let b = Array::<u64>::open(&name).unwrap();
    let mut g = a.lock().expect("a fresh lock is acquired normally");
    assert_eq!(g.as_ptr().cast::<u8>(), {
        let p = a.segment().as_ptr();
        p.wrapping_add(a.segment().info().params[2] as usize) as *const u8
    });
    g.copy_from_slice(&[1, 2, 3, 4]);
    std::thread::scope(|s| {
        let reader = s.spawn(|| b.get(2).unwrap());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!reader.is_finished(), "get waits for the guard");
        let busy = s
            .spawn(|| matches!(b.try_lock(), Err(LockError::Failed(Error::Timeout { .. }))))
            .join()
            .unwrap();
        assert!(busy, "try_lock from another thread finds the lock held");
        // The lock is not reentrant: the holder's own thread gets an error.
        assert!(matches!(b.set(0, 1), Err(Error::InvalidArgument { .. })));
        g[2] = 30;
        drop(g);
        assert_eq!(reader.join().unwrap(), 30);
    });
    let mut out = [0; 4];
    b.read_into(&mut out).unwrap();
    assert_eq!(out, [1, 2, 30, 4]);
}

#[test]
fn a_guard_holder_killed_mid_update_is_reported_to_the_next_locker() {
    let name = ShmName::new("arr_owner_died");
    let flag_name = ShmName::new("arr_owner_died_flag");
    let a = Array::<u64>::create(&name, 2).unwrap();
    let flag = Value::<u32>::create(&flag_name, 0).unwrap();
    let mut child = spawn("die_holding_guard", &[&name, &flag_name]);
    assert!(common::wait_until(LIMIT, || flag.load() == 1));
    child.kill();
    let g = match a.lock_timeout(LIMIT) {
        Err(LockError::OwnerDied(g)) => g,
        other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
    };
    let mut g = g;
    assert_eq!(
        &g[..],
        &[111, 0],
        "zero-copy: the half-done update is visible"
    );
    g[1] = 111;
    g.mark_consistent().unwrap();
    drop(g);
    assert_eq!(a.get(1).unwrap(), 111);
    assert!(a.lock().is_ok(), "marked consistent: a normal lock again");
}

#[test]
fn an_array_without_a_lock_refuses_lock_and_never_blocks() {
    let name = ShmName::new("nolock");
    let a = Array::<[u8; 3]>::create_unlocked(&name, 5).unwrap();
    let err = a.lock().map(|_| ()).unwrap_err();
    assert!(
        matches!(err, LockError::Failed(Error::InvalidArgument { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("without a lock"), "{err}");
    a.write_range(1, &[[1, 2, 3], [4, 5, 6]]).unwrap();
    assert_eq!(a.get(2).unwrap(), [4, 5, 6]);
    assert_eq!(a.get(0).unwrap(), [0, 0, 0]);
}

#[test]
fn bulk_writes_of_an_unlocked_array_are_never_seen_half_done() {
    let name = ShmName::new("bulk_consistent");
    let a = Array::<u64>::create_unlocked(&name, 512).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for k in 1..2_000u64 {
                a.write_from(&[k; 512]).unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Release);
        });
        let mut buf = [0u64; 512];
        let mut reads = 0;
        while !stop.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
            a.read_into(&mut buf).unwrap();
            assert!(buf.iter().all(|&x| x == buf[0]), "mixed read");
            reads += 1;
        }
    });
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Get(usize),
        Set(usize, [u8; 3]),
        WriteRange(usize, Vec<[u8; 3]>),
        ReadRange(usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..12usize).prop_map(Op::Get),
            (0..12usize, any::<[u8; 3]>()).prop_map(|(i, v)| Op::Set(i, v)),
            (
                0..12usize,
                proptest::collection::vec(any::<[u8; 3]>(), 0..6)
            )
                .prop_map(|(i, v)| Op::WriteRange(i, v)),
            (0..12usize, 0..6usize).prop_map(|(i, n)| Op::ReadRange(i, n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

        /// Random element and range operations (3-byte elements, so copies start
        /// and end mid-word) agree with a `Vec`, including out-of-range errors.
        #[test]
        fn operations_match_a_vec(ops in proptest::collection::vec(op(), 1..50), lock: bool) {
            const LEN: usize = 10;
            let name = ShmName::new("prop_array");
            let a = Array::<[u8; 3]>::create_with_options(&name, LEN, lock, &Default::default()).unwrap();
            let mut model = vec![[0u8; 3]; LEN];
            for op in ops {
                match op {
                    Op::Get(i) => match model.get(i) {
                        Some(v) => prop_assert_eq!(a.get(i).unwrap(), *v),
                        None => prop_assert!(a.get(i).is_err()),
                    },
                    Op::Set(i, v) => {
                        let r = a.set(i, v);
                        if i < LEN { r.unwrap(); model[i] = v; } else { prop_assert!(r.is_err()); }
                    }
                    Op::WriteRange(i, v) => {
                        let r = a.write_range(i, &v);
                        if i + v.len() <= LEN {
                            r.unwrap();
                            model[i..i + v.len()].copy_from_slice(&v);
                        } else {
                            let is_oob = matches!(r, Err(Error::IndexOutOfRange { .. }));
                            prop_assert!(is_oob);
                        }
                    }
                    Op::ReadRange(i, n) => {
                        let mut out = vec![[9u8; 3]; n];
                        let r = a.read_range(i, &mut out);
                        if i + n <= LEN {
                            r.unwrap();
                            prop_assert_eq!(&out[..], &model[i..i + n]);
                        } else {
                            prop_assert!(r.is_err());
                        }
                    }
                }
            }
            let mut all = vec![[0u8; 3]; LEN];
            a.read_into(&mut all).unwrap();
            prop_assert_eq!(all, model);
        }
    }
}

#[test]
fn an_anonymous_array_works_without_a_name() {
    let a = Array::<i16>::anonymous(3, false).unwrap();
    assert_eq!(a.segment().name(), None);
    a.write_from(&[-1, -2, -3]).unwrap();
    assert_eq!(a.fetch_add(1, 10).unwrap(), -2);
    assert_eq!(a.get(1).unwrap(), 8);
    let b = Array::<i16>::anonymous(2, true).unwrap();
    b.lock().unwrap().copy_from_slice(&[4, 5]);
    assert_eq!(b.get(1).unwrap(), 5);
}

/// Python's `Array(typecode, sequence)`: the array holds the values from the
/// start, and another handle opening it by name reads them.
#[test]
fn create_from_a_slice_holds_its_values_for_every_opener() {
    let name = ShmName::new("array_from");
    let values: Vec<i32> = (0..1000).map(|i| i * 3 - 7).collect();
    let a = Array::<i32>::create_from(&name, &values).unwrap();
    assert_eq!(a.len(), 1000);
    let b = Array::<i32>::open(&name).unwrap();
    let mut back = vec![0; 1000];
    b.read_range(0, &mut back).unwrap();
    assert_eq!(back, values);
    // It has a lock, as `Array(typecode, sequence)` does by default.
    assert!(a.lock().is_ok());
    let empty = ShmName::new("array_from_empty");
    assert_eq!(Array::<u8>::create_from(&empty, &[]).unwrap().len(), 0);
}
