//! `Value<T>`: lock-free atomics, consistent `get` under concurrent writers,
//! the lock and its guard, type checks on open, and dead-writer recovery, in
//! one process and across processes.

mod common;

use std::time::{Duration, Instant};

use common::{ShmName, wait_until};
use shmprim::cell::ShmType;
use shmprim::{Array, Error, LockError, Mismatch, ParticipantId, Value};

const LIMIT: Duration = Duration::from_secs(30);

/// A 64-byte payload whose fields a correct writer always sets all equal.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Wide {
    fields: [u64; 8],
}

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "fetch_add" => {
            let v = Value::<u64>::open(&args[0]).unwrap();
            let n: u64 = args[1].parse().unwrap();
            for _ in 0..n {
                v.fetch_add(1);
            }
        }
        "wide_writer" => child_wide_writer(&args[0], &args[1], args[2].parse().unwrap()),
        "wide_reader" => child_wide_reader(&args[0]),
        "hold_guard" => {
            let v = Value::<u64>::open(&args[0]).unwrap();
            let flag = Value::<u32>::open(&args[1]).unwrap();
            let mut g = v.lock().unwrap();
            *g = 999; // never written back: the process dies holding the guard
            flag.store(1);
            std::thread::sleep(LIMIT);
        }
        "open_and_leave" => {
            let _v = Value::<Wide>::open(&args[0]).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

// ------------------------------------------------------------- atomics

#[test]
fn four_processes_fetch_add_100000_each_give_exactly_400000() {
    let name = ShmName::new("fetch_add4");
    let v = Value::<u64>::create(&name, 0).unwrap();
    let mut children: Vec<_> = (0..4)
        .map(|_| spawn("fetch_add", &[&name, "100000"]))
        .collect();
    for c in &mut children {
        c.expect_success(LIMIT);
    }
    assert_eq!(v.load(), 400_000);
    assert_eq!(v.get().unwrap(), 400_000);
}

#[test]
fn integer_atomics_wrap_and_return_the_previous_value() {
    let name = ShmName::new("int_atomics");
    let v = Value::<u8>::create(&name, 250).unwrap();
    assert_eq!(v.fetch_add(10), 250);
    assert_eq!(v.load(), 4, "fetch_add wraps like u8::wrapping_add");
    assert_eq!(v.fetch_sub(5), 4);
    assert_eq!(v.load(), 255);
    assert_eq!(v.fetch_and(0x0f), 255);
    assert_eq!(v.fetch_or(0x30), 0x0f);
    assert_eq!(v.swap(7), 0x3f);
    assert_eq!(v.compare_exchange(8, 9), Err(7));
    assert_eq!(v.compare_exchange(7, 9), Ok(7));
    v.store(1);
    assert_eq!(v.get().unwrap(), 1);

    let name = ShmName::new("i64_atomics");
    let v = Value::<i64>::create(&name, -5).unwrap();
    assert_eq!(v.fetch_add(3), -5);
    assert_eq!(v.fetch_sub(10), -2);
    assert_eq!(v.load(), -12);
    assert_eq!(v.update(|x| x * 2).unwrap(), -12);
    assert_eq!(v.load(), -24);
}

#[test]
fn float_fetch_add_is_exact_under_contention() {
    let name = ShmName::new("f64_add");
    let v = Value::<f64>::create(&name, 0.5).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10_000 {
                    v.fetch_add(1.0);
                }
            });
        }
    });
    assert_eq!(v.load(), 40_000.5);
    assert_eq!(v.fetch_sub(0.5), 40_000.5);
    assert_eq!(v.compare_exchange(40_000.0, -1.0), Ok(40_000.0));
    assert_eq!(v.get().unwrap(), -1.0);
}

// ------------------------------------------------------------- seqlock

/// Writes `Wide { fields: [k; 8] }` with ever-new `k` until the parent sets
/// `stop` (or `LIMIT` passes, so a lost parent cannot leave it running).
fn child_wide_writer(name: &str, stop: &str, id: u64) {
    let v = Value::<Wide>::open(name).unwrap();
    let stop = Value::<u32>::open(stop).unwrap();
    let end = Instant::now() + LIMIT;
    let mut k = id << 40;
    while stop.load() == 0 && Instant::now() < end {
        k += 1;
        v.set(Wide { fields: [k; 8] }).unwrap();
    }
}

/// Reads for at least `MIN_READING`, and on until it has made `MIN_READS`
/// reads and seen `MIN_CHANGES` different values, so that how much it checks
/// does not depend on how busy the machine is. Only if that takes longer than
/// `LIMIT` (a reader starved for good) does it fail.
fn child_wide_reader(name: &str) {
    const MIN_READING: Duration = Duration::from_secs(2);
    const MIN_READS: u64 = 1000;
    const MIN_CHANGES: u64 = 10;
    let v = Value::<Wide>::open(name).unwrap();
    let start = Instant::now();
    let (mut reads, mut changes, mut last) = (0u64, 0u64, 0u64);
    while start.elapsed() < MIN_READING || reads < MIN_READS || changes < MIN_CHANGES {
        assert!(
            start.elapsed() < LIMIT,
            "only {reads} reads and {changes} changes seen in {LIMIT:?}"
        );
        let w = v.get().unwrap();
        assert!(
            w.fields.iter().all(|&f| f == w.fields[0]),
            "torn read: {w:?}"
        );
        if w.fields[0] != last {
            changes += 1;
            last = w.fields[0];
        }
        reads += 1;
    }
}

#[test]
fn two_writers_and_two_readers_of_a_64_byte_value_never_see_a_torn_read() {
    let name = ShmName::new("torn");
    // Without a lock, so that only the seqlock's writer claim serialises the
    // two writers.
    let v = Value::<Wide>::create_unlocked(&name, Wide { fields: [0; 8] }).unwrap();
    let stop_name = ShmName::new("torn_stop");
    let stop = Value::<u32>::create(&stop_name, 0).unwrap();
    let mut writers = vec![
        spawn("wide_writer", &[&name, &stop_name, "1"]),
        spawn("wide_writer", &[&name, &stop_name, "2"]),
    ];
    let mut readers = vec![
        spawn("wide_reader", &[&name]),
        spawn("wide_reader", &[&name]),
    ];
    // The readers decide how long this runs; the writers go on until they end.
    for c in &mut readers {
        c.expect_success(LIMIT + LIMIT);
    }
    stop.store(1);
    for c in &mut writers {
        c.expect_success(LIMIT);
    }
    let w = v.get().unwrap();
    assert!(w.fields.iter().all(|&f| f == w.fields[0]));
    assert_ne!(w.fields[0], 0, "the writers wrote");
}

#[test]
fn update_is_atomic_among_threads_for_a_wide_value() {
    let name = ShmName::new("update_wide");
    let v = Value::<Wide>::create_unlocked(&name, Wide { fields: [0; 8] }).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..2_000 {
                    v.update(|mut w| {
                        for f in &mut w.fields {
                            *f += 1;
                        }
                        w
                    })
                    .unwrap();
                }
            });
        }
    });
    assert_eq!(v.get().unwrap().fields, [8_000; 8]);
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Get,
        Set([u32; 5]),
        AddToAll(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Get),
            any::<[u32; 5]>().prop_map(Op::Set),
            any::<u32>().prop_map(Op::AddToAll),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

        /// Random get/set/update sequences on a seqlocked value (20 bytes) and a
        /// word-sized one agree with a plain variable.
        #[test]
        fn get_set_update_match_a_plain_model(ops in proptest::collection::vec(op(), 1..60), lock: bool) {
            let name = ShmName::new("prop_value");
            let wide = Value::<[u32; 5]>::create_with_options(&name, [0; 5], lock, &Default::default()).unwrap();
            let name2 = ShmName::new("prop_value_word");
            let word = Value::<u32>::create_with_options(&name2, 0, lock, &Default::default()).unwrap();
            let mut model = [0u32; 5];
            for op in ops {
                match op {
                    Op::Get => {
                        prop_assert_eq!(wide.get().unwrap(), model);
                        prop_assert_eq!(word.get().unwrap(), model[0]);
                    }
                    Op::Set(v) => {
                        wide.set(v).unwrap();
                        word.set(v[0]).unwrap();
                        model = v;
                    }
                    Op::AddToAll(d) => {
                        let old = wide.update(|v| v.map(|x| x.wrapping_add(d))).unwrap();
                        prop_assert_eq!(old, model);
                        let old0 = word.update(|x| x.wrapping_add(d)).unwrap();
                        prop_assert_eq!(old0, model[0]);
                        model = model.map(|x| x.wrapping_add(d));
                    }
                }
            }
            prop_assert_eq!(wide.get().unwrap(), model);
            prop_assert_eq!(word.load(), model[0]);
        }
    }
}

// ------------------------------------------------------------- lock

#[test]
fn guard_changes_are_written_back_and_set_waits_for_the_guard() {
    let name = ShmName::new("guard");
    let v = Value::<Wide>::create(&name, Wide { fields: [1; 8] }).unwrap();
    let other = Value::<Wide>::open(&name).unwrap();
    let mut g = v.lock().expect("a fresh lock is acquired normally");
    g.fields = [5; 8];
    std::thread::scope(|s| {
        let setter = s.spawn(|| {
            other.set(Wide { fields: [7; 8] }).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!setter.is_finished(), "set must wait for the guard");
        // Readers never wait for a guard, and see the old value until it drops.
        assert_eq!(other.get().unwrap().fields, [1; 8]);
        drop(g);
        setter.join().unwrap();
    });
    assert_eq!(
        v.get().unwrap().fields,
        [7; 8],
        "set ran after the write-back"
    );
    {
        let mut g = v.lock().unwrap();
        g.fields[0] = 8;
    }
    assert_eq!(other.get().unwrap().fields[0], 8);
    assert!(v.try_lock().is_ok(), "a free lock is taken by try_lock");
}

#[test]
fn lock_on_a_cell_created_without_lock_is_an_error() {
    let name = ShmName::new("nolock");
    let v = Value::<u64>::create_unlocked(&name, 3).unwrap();
    assert!(!v.has_lock());
    let err = v.lock().map(|_| ()).unwrap_err();
    assert!(
        matches!(err, LockError::Failed(Error::InvalidArgument { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("without a lock"), "{err}");
    v.set(4).unwrap();
    assert_eq!(v.update(|x| x + 1).unwrap(), 4);
    assert_eq!(v.get().unwrap(), 5);
}

#[test]
fn lock_holder_killed_gives_the_next_locker_owner_died_and_an_unchanged_value() {
    let name = ShmName::new("owner_died");
    let flag_name = ShmName::new("owner_died_flag");
    let v = Value::<u64>::create(&name, 41).unwrap();
    let flag = Value::<u32>::create(&flag_name, 0).unwrap();
    let mut child = spawn("hold_guard", &[&name, &flag_name]);
    assert!(wait_until(LIMIT, || flag.load() == 1));
    assert!(matches!(
        v.lock_timeout(Duration::from_millis(20)).map(|_| ()),
        Err(LockError::Failed(Error::Timeout { .. }))
    ));
    child.kill();
    let mut g = match v.lock_timeout(LIMIT) {
        Err(LockError::OwnerDied(g)) => g,
        other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
    };
    assert_eq!(*g, 41, "the dead holder's copy was never written back");
    g.mark_consistent().unwrap();
    *g += 1;
    drop(g);
    assert_eq!(v.get().unwrap(), 42);
    assert!(v.lock().is_ok(), "marked consistent: a normal lock again");
}

// ------------------------------------------------------------- open checks

#[test]
fn opening_with_the_wrong_type_is_refused() {
    let name = ShmName::new("wrong_type");
    let _v = Value::<u64>::create(&name, 1).unwrap();
    match Value::<i64>::open(&name) {
        Err(Error::Incompatible {
            what: Mismatch::Payload,
            expected,
            found,
            ..
        }) => {
            assert!(expected.contains("I64"), "{expected}");
            assert!(found.contains("U64"), "{found}");
        }
        other => panic!("expected a payload mismatch, got {other:?}"),
    }
    assert!(matches!(
        Value::<u32>::open(&name),
        Err(Error::Incompatible {
            what: Mismatch::Payload,
            ..
        })
    ));
    assert!(matches!(
        Value::<Wide>::open(&name),
        Err(Error::Incompatible {
            what: Mismatch::Payload,
            ..
        })
    ));
    assert!(matches!(
        Array::<u64>::open(&name),
        Err(Error::Incompatible {
            what: Mismatch::Kind,
            ..
        })
    ));
    assert_eq!(Value::<u64>::open(&name).unwrap().load(), 1);
}

#[test]
fn open_or_create_creates_once_then_opens() {
    let name = ShmName::new("ooc");
    let (a, d) = Value::<u32>::open_or_create(&name, 5).unwrap();
    assert_eq!(d, shmprim::Disposition::Created);
    let (b, d) = Value::<u32>::open_or_create(&name, 9).unwrap();
    assert_eq!(d, shmprim::Disposition::Opened);
    assert_eq!(b.load(), 5);
    a.store(6);
    assert_eq!(b.load(), 6);
}

// ------------------------------------------------------------- dead writer

#[test]
fn a_writer_dead_mid_write_is_reported_by_get_and_repaired_by_set() {
    let name = ShmName::new("dead_writer");
    let v = Value::<Wide>::create_unlocked(&name, Wide { fields: [3; 8] }).unwrap();
    let mut child = spawn("open_and_leave", &[&name]);
    child.expect_success(LIMIT);
    let dead: ParticipantId = v
        .segment()
        .participants()
        .unwrap()
        .into_iter()
        .find(|p| !p.is_self)
        .expect("the child's slot")
        .id;
    assert!(!v.segment().is_alive(dead));
    // Forge the state a writer leaves when it dies mid-write: `seq` odd (offset
    // 0 of the data area), `writer` = its id (offset 8), half the fields new.
    let base = v.segment().as_ptr();
    // SAFETY: the data area starts with two 8-aligned u64 control words (the
    // cell state), accessed atomically by the library and here.
    let (seq, writer) = unsafe {
        (
            &*base.cast::<std::sync::atomic::AtomicU64>(),
            &*base.add(8).cast::<std::sync::atomic::AtomicU64>(),
        )
    };
    writer.store(dead.to_u64(), std::sync::atomic::Ordering::SeqCst);
    seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    for i in 0..4 {
        // SAFETY: the payload of a cell without a lock starts at offset 64 of
        // the data area and holds eight 8-aligned u64 fields.
        unsafe { &*base.add(64 + 8 * i).cast::<std::sync::atomic::AtomicU64>() }
            .store(9, std::sync::atomic::Ordering::SeqCst);
    }

    let start = Instant::now();
    let err = v.get().unwrap_err();
    assert!(start.elapsed() < LIMIT);
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
    assert!(err.to_string().contains("writer died"), "{err}");
    // `update` would compute from a torn value: refused, state unchanged.
    assert!(v.update(|w| w).is_err());
    assert!(v.get().is_err());
    v.set(Wide { fields: [4; 8] }).unwrap();
    assert_eq!(v.get().unwrap().fields, [4; 8]);
    assert_eq!(seq.load(std::sync::atomic::Ordering::SeqCst) % 2, 0);
}

/// Corrupted control words, an odd sequence naming a *live* writer (this
/// very handle), make `get`, `set` and `update` report `Corrupted` after a
/// bounded wait instead of spinning for ever.
#[test]
fn an_odd_sequence_held_by_a_live_writer_is_reported_not_spun_on() {
    let name = ShmName::new("stuck_writer");
    let v = Value::<Wide>::create_unlocked(&name, Wide { fields: [3; 8] }).unwrap();
    let me = v.segment().participant_id();
    assert!(v.segment().is_alive(me));
    let base = v.segment().as_ptr();
    // SAFETY: as in the dead-writer test: two 8-aligned u64 control words at
    // the start of the data area, accessed atomically.
    let (seq, writer) = unsafe {
        (
            &*base.cast::<std::sync::atomic::AtomicU64>(),
            &*base.add(8).cast::<std::sync::atomic::AtomicU64>(),
        )
    };
    writer.store(me.to_u64(), std::sync::atomic::Ordering::SeqCst);
    seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    for (what, r) in [
        ("get", v.get().map(drop)),
        ("set", v.set(Wide { fields: [5; 8] })),
        ("update", v.update(|w| w).map(drop)),
    ] {
        let err = r.unwrap_err();
        assert!(matches!(err, Error::Corrupted { .. }), "{what}: {err:?}");
        assert!(err.to_string().contains("held the value"), "{what}: {err}");
    }
    // Giving the words back makes the value usable again.
    writer.store(0, std::sync::atomic::Ordering::SeqCst);
    seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    v.set(Wide { fields: [6; 8] }).unwrap();
    assert_eq!(v.get().unwrap().fields, [6; 8]);
}

// ------------------------------------------------------------- C's view

#[test]
fn the_header_records_what_c_needs_to_check_the_type_and_find_the_payload() {
    use shmprim::cell::{Bool, CellLayout};
    use shmprim::{TypeCode, TypeDesc};
    let name = ShmName::new("c_view_u32");
    let v = Value::<u32>::create_unlocked(&name, 7).unwrap();
    let info = v.segment().info();
    assert_eq!(info.payload.code, TypeCode::U32 as u32);
    assert_eq!((info.payload.size, info.payload.align), (4, 4));
    assert_eq!(info.params[0], 1, "length");
    assert_eq!(info.params[1], 0, "no lock");
    let offset = info.params[2] as usize;
    assert_eq!(
        offset,
        CellLayout::of::<u32>(1, false).unwrap().payload_offset
    );
    let mut raw = [0u8; 4];
    v.segment().read(offset, &mut raw).unwrap();
    assert_eq!(
        u32::from_ne_bytes(raw),
        7,
        "the payload is where params[2] says"
    );
    // C opening with "bytes of size 4, align 4" is compatible; f32 is not.
    let bytes = TypeDesc::new(TypeCode::Bytes, 4, 4, "");
    assert!(info.payload.is_compatible_with(&bytes));
    assert!(!info.payload.is_compatible_with(&f32::type_desc()));

    let name = ShmName::new("c_view_wide");
    let w = Value::<Wide>::create(&name, Wide { fields: [0; 8] }).unwrap();
    let d = w.segment().info().payload;
    assert_eq!(d.code, TypeCode::Struct as u32);
    assert_eq!((d.size, d.align), (64, 8));
    assert!(d.name_str().ends_with("Wide"), "{}", d.name_str());
    assert_eq!(w.segment().info().params[1], 1, "has a lock");

    let name = ShmName::new("c_view_bool");
    let b = Value::<Bool>::create(&name, Bool::TRUE).unwrap();
    let d = b.segment().info().payload;
    assert_eq!(
        (d.code, d.size, d.name_str().as_str()),
        (TypeCode::Bool as u32, 1, "bool")
    );
    assert!(b.get().unwrap().get());
    b.set(false.into()).unwrap();
    assert!(!bool::from(b.get().unwrap()));
}

#[test]
fn an_anonymous_value_works_without_a_name() {
    let v = Value::<i32>::anonymous(-3, true).unwrap();
    assert_eq!(v.segment().name(), None);
    assert_eq!(v.fetch_add(5), -3);
    *v.lock().unwrap() += 10;
    assert_eq!(v.get().unwrap(), 12);
    let w = Value::<Wide>::anonymous(Wide { fields: [2; 8] }, false).unwrap();
    assert_eq!(w.update(|x| x).unwrap().fields, [2; 8]);
}

#[test]
fn inspection_shows_a_cells_value_length_and_lock() {
    let name = ShmName::new("inspect_value");
    let v = Value::<u64>::create(&name, 42).unwrap();
    let state = shmprim::inspect::inspect(&name)
        .unwrap()
        .state
        .expect("a summary");
    assert_eq!(state.line, "= 42, lock");
    v.store(43);
    let state = shmprim::inspect::inspect(&name).unwrap().state.unwrap();
    assert_eq!(state.line, "= 43, lock");

    let name = ShmName::new("inspect_array");
    let a = Array::<f64>::create_unlocked(&name, 6).unwrap();
    a.write_from(&[1.5, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let state = shmprim::inspect::inspect(&name).unwrap().state.unwrap();
    assert_eq!(state.line, "6 × [1.5, 2, 3, 4, …], no lock");
}
