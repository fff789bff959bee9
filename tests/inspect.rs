//! Inspection: read-only, reports every shape a segment can be in, and drives
//! `rm` and `gc` safely.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{ShmName, python_eval, wait_until, word};
use shmprim::inspect::{self, Health};
use shmprim::segment::{HEADER_SIZE, MAGIC};
use shmprim::{Error, Kind, Segment, SegmentBuilder};

const LIMIT: Duration = Duration::from_secs(20);

/// Held by the `gc` test and by every test that leaves one of its own
/// segments garbage (all participants dead) for a moment: `gc` removes every
/// garbage segment on the machine, so without it those tests, which run in
/// parallel with it, could find their segment gone.
static GARBAGE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn garbage_lock() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed while holding the lock poisons it; the others still run.
    GARBAGE.lock().unwrap_or_else(|e| e.into_inner())
}

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        // Creates (or opens) the segment, says so in word 1, then waits to be killed.
        "create_and_hold" => {
            let seg = Segment::open_or_create(&args[0], 64).unwrap().0;
            word(&seg, 1).store(1, Ordering::Release);
            std::thread::sleep(LIMIT);
        }
        // Locks the mutex, sets its value, says so in a flag file, then waits to be killed.
        "hold_mutex" => {
            let m = shmprim::Mutex::<u64>::open(&args[0]).unwrap();
            let mut g = m.lock().unwrap();
            *g = 77;
            std::fs::write(&args[1], b"locked").unwrap();
            std::thread::sleep(LIMIT);
        }
        // Creates the segment and sleeps inside its initialisation.
        "stuck_initialising" => {
            let _ = SegmentBuilder::new(Kind::Raw)
                .data_size(64)
                .create_with(&args[0], |_, _| {
                    std::fs::write(&args[1], b"in init").unwrap();
                    std::thread::sleep(LIMIT);
                    Ok(())
                });
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

#[test]
fn inspection_reports_a_ready_segment_and_takes_no_slot_and_writes_nothing() {
    let name = ShmName::new("inspect_ready");
    let seg = SegmentBuilder::new(Kind::Event)
        .data_size(128)
        .create(&name)
        .unwrap();
    let before = std::fs::read(name.path()).unwrap();
    let report = inspect::inspect(&name).unwrap();
    assert_eq!(report.health, Health::Ready);
    assert_eq!(report.kind(), Some(Kind::Event));
    assert_eq!(report.creator_pid(), Some(std::process::id()));
    assert_eq!(
        report.live_participants(),
        1,
        "only `seg`: inspection takes no slot"
    );
    assert_eq!(report.mode, 0o600);
    assert_eq!(
        std::fs::read(name.path()).unwrap(),
        before,
        "inspection wrote to the segment"
    );
    assert_eq!(seg.participants().unwrap().len(), 1);
}

#[test]
fn a_corrupted_segment_is_listed_as_corrupted() {
    let name = ShmName::new("inspect_corrupt");
    let mut bytes: Vec<u8> = (0..2 * HEADER_SIZE)
        .map(|i| (i * 7919 % 251) as u8)
        .collect();
    bytes[..8].copy_from_slice(&MAGIC);
    std::fs::write(name.path(), &bytes).unwrap();
    let listed = inspect::list().unwrap();
    let entry = listed
        .iter()
        .find(|i| i.name == name.as_str())
        .expect("a file with the magic is listed");
    assert!(
        matches!(entry.health, Health::Corrupted(_)),
        "{:?}",
        entry.health
    );
    // Opening it for use is refused too.
    assert!(Segment::open(&name).is_err());
}

#[test]
fn foreign_files_are_not_listed_and_rm_refuses_them() {
    let name = ShmName::new("inspect_foreign");
    std::fs::write(name.path(), vec![0u8; 2 * HEADER_SIZE]).unwrap();
    assert!(
        inspect::list()
            .unwrap()
            .iter()
            .all(|i| i.name != name.as_str())
    );
    let err = inspect::remove(&name).unwrap_err();
    assert!(matches!(err, Error::NotShmprim { .. }), "{err}");
    assert!(
        std::path::Path::new(&name.path()).exists(),
        "rm must leave a foreign file alone"
    );
    let small = ShmName::new("inspect_foreign_small");
    std::fs::write(small.path(), b"hello world").unwrap();
    assert!(matches!(
        inspect::remove(&small),
        Err(Error::NotShmprim { .. })
    ));
    assert!(std::path::Path::new(&small.path()).exists());
}

#[test]
fn rm_removes_a_shmprim_segment() {
    let name = ShmName::new("inspect_rm");
    drop(Segment::create(&name, 8).unwrap());
    inspect::remove(&name).unwrap();
    assert!(!std::path::Path::new(&name.path()).exists());
}

#[test]
fn gc_removes_exactly_the_segments_whose_participants_are_all_dead() {
    let _gc = garbage_lock();
    // Orphan: created by a child that is then killed; nobody else has it open.
    let orphan = ShmName::new("gc_orphan");
    let mut c1 = spawn("create_and_hold", &[&orphan]);
    // Held: created by a child that stays alive.
    let held = ShmName::new("gc_held");
    let mut c2 = spawn("create_and_hold", &[&held]);
    // Ours: created by this (live) process, handle closed: the creator is alive.
    let ours = ShmName::new("gc_ours");
    drop(Segment::create(&ours, 64).unwrap());
    for n in [&orphan, &held] {
        assert!(wait_until(LIMIT, || {
            Segment::open(n).is_ok_and(|s| word(&s, 1).load(Ordering::Acquire) == 1)
        }));
    }
    c1.kill();

    // Another prefix sees none of this test's segments.
    let elsewhere = inspect::gc_prefixed(true, &format!("{}x", common::own_prefix())).unwrap();
    assert!(elsewhere.is_empty(), "{elsewhere:?}");
    let dry = inspect::gc_prefixed(true, &common::own_prefix()).unwrap();
    let names: Vec<&str> = dry.iter().map(|i| i.name.as_str()).collect();
    assert!(names.contains(&orphan.as_str()), "{names:?}");
    assert!(
        !names.contains(&held.as_str()) && !names.contains(&ours.as_str()),
        "{names:?}"
    );
    assert!(
        std::path::Path::new(&orphan.path()).exists(),
        "--dry-run removed something"
    );

    let removed = inspect::gc_prefixed(false, &common::own_prefix()).unwrap();
    assert!(removed.iter().any(|i| i.name == orphan.as_str()));
    assert!(!std::path::Path::new(&orphan.path()).exists());
    assert!(std::path::Path::new(&held.path()).exists());
    assert!(std::path::Path::new(&ours.path()).exists());
    c2.kill();
}

#[test]
fn inspection_reports_a_dead_participant() {
    let name = ShmName::new("inspect_dead");
    let seg = Segment::create(&name, 64).unwrap();
    let mut child = spawn("create_and_hold", &[&name]);
    assert!(wait_until(LIMIT, || word(&seg, 1).load(Ordering::Acquire) == 1));
    assert_eq!(inspect::inspect(&name).unwrap().live_participants(), 2);
    child.kill();
    let report = inspect::inspect(&name).unwrap();
    assert_eq!(report.live_participants(), 1);
    assert_eq!(report.dead_participants(), 1);
    assert!(!report.is_garbage(), "a live participant remains");
}

#[test]
fn inspection_of_a_truncated_segment_says_so() {
    let name = ShmName::new("inspect_truncated");
    drop(Segment::create(&name, 3 * 4096).unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(name.path())
        .unwrap()
        .set_len(2 * 4096)
        .unwrap();
    assert_eq!(inspect::inspect(&name).unwrap().health, Health::Truncated);
}

#[test]
fn json_reports_are_valid_and_carry_the_state() {
    let name = ShmName::new("inspect_json");
    let _seg = Segment::create(&name, 64).unwrap();
    let one = inspect::inspect(&name).unwrap().to_json();
    assert_eq!(
        python_eval(
            &one,
            "(d['kind'], d['health'], d['live_participants'], d['mode'], d['state']['bytes'])"
        ),
        "('raw', 'ready', 1, '600', 64)"
    );
    let all = inspect::render_json(&inspect::list().unwrap());
    let expr = format!(
        "[x['participants'][0]['status'] for x in d if x['name'] == '{}']",
        name.as_str()
    );
    assert_eq!(python_eval(&all, &expr), "['alive']");
    let table = inspect::render_table(&inspect::list().unwrap());
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(name.as_str()) && l.contains("raw")),
        "{table}"
    );
}

fn state_of(name: &str) -> String {
    let report = inspect::inspect(name).unwrap();
    assert_eq!(report.health, Health::Ready);
    report.state_line()
}

#[test]
fn inspection_reports_a_mutex_free_held_by_a_pid_and_with_its_owner_dead() {
    let name = ShmName::new("inspect_mutex");
    let flag = ShmName::new("inspect_mutex_flag");
    let m = shmprim::Mutex::<u64>::create(&name, 5).unwrap();
    assert_eq!(state_of(&name), "free, value 5");
    let mut child = spawn("hold_mutex", &[&name, &flag.path()]);
    assert!(wait_until(LIMIT, || std::path::Path::new(&flag.path()).exists()));
    assert_eq!(
        state_of(&name),
        format!("held by pid {}, value 77", child.pid())
    );
    child.kill();
    assert!(
        state_of(&name).starts_with("owner died"),
        "{}",
        state_of(&name)
    );
    // The next locker drops its guard without deciding: the decision passes
    // on, and the inspection says so.
    let err = m.lock().unwrap_err();
    assert!(err.is_owner_died());
    drop(err);
    assert!(
        state_of(&name).starts_with("owner died, data not yet marked consistent"),
        "{}",
        state_of(&name)
    );
    let json = inspect::inspect(&name).unwrap().to_json();
    assert!(json.contains("\"owner_died\":true"), "{json}");
    let guard = m.lock().unwrap_err().into_guard().unwrap();
    guard.mark_consistent().unwrap();
    drop(guard);
    assert_eq!(state_of(&name), "free, value 77");
}

#[test]
fn inspection_reports_semaphore_event_and_barrier_states() {
    let sem = ShmName::new("inspect_sem");
    let s = shmprim::Semaphore::create_bounded(&sem, 2, 3).unwrap();
    assert!(s.try_acquire());
    assert_eq!(state_of(&sem), "value 1/3, 0 waiting");

    let ev = ShmName::new("inspect_event");
    let e = shmprim::Event::create(&ev).unwrap();
    assert_eq!(state_of(&ev), "clear, 0 waiting");
    e.set();
    assert_eq!(state_of(&ev), "set, 0 waiting");

    let bar = ShmName::new("inspect_barrier");
    let b = shmprim::Barrier::create(&bar, 3).unwrap();
    assert_eq!(state_of(&bar), "0/3 waiting, generation 0");
    assert!(b.wait_timeout(Duration::from_millis(10)).is_err());
    let report = inspect::inspect(&bar).unwrap();
    assert!(
        report.state_line().ends_with("BROKEN"),
        "{}",
        report.state_line()
    );
    assert!(report.to_json().contains("\"broken\":true"));
}

#[test]
fn inspection_reports_a_values_type_and_current_value() {
    let name = ShmName::new("inspect_value");
    let v = shmprim::Value::<i64>::create(&name, -42).unwrap();
    let report = inspect::inspect(&name).unwrap();
    assert!(
        report.state_line().starts_with("= -42"),
        "{}",
        report.state_line()
    );
    assert_eq!(report.info.unwrap().payload.name_str(), "i64");
    v.store(7);
    assert!(
        inspect::inspect(&name)
            .unwrap()
            .state_line()
            .starts_with("= 7")
    );
    let json = inspect::inspect(&name).unwrap().to_json();
    assert_eq!(
        python_eval(
            &json,
            "(d['kind'], d['payload']['name'], d['state_line'].split(',')[0])"
        ),
        "('value', 'i64', '= 7')"
    );
}

#[test]
fn inspection_reports_ring_depth_and_pipe_bytes_pending_each_way() {
    let ring = ShmName::new("inspect_spsc");
    let r = shmprim::SpscRing::<u64>::create(&ring, 8).unwrap();
    let mut p = r.producer().unwrap();
    for v in 0..3u64 {
        p.try_push(v).unwrap();
    }
    assert_eq!(state_of(&ring), "3/8 messages pending");

    let pipe = ShmName::new("inspect_pipe");
    let pp = shmprim::Pipe::create(&pipe, 4096, 64).unwrap();
    let mut a = pp.end_a().unwrap();
    a.send(&[1u8; 16]).unwrap(); // A → B: one 16-byte message plus framing
    let line = state_of(&pipe);
    assert!(
        line.starts_with("0 bytes pending to A, ") && !line.contains(" 0 to B"),
        "{line}"
    );
    let report = inspect::inspect(&pipe).unwrap();
    let to_b = report
        .state
        .unwrap()
        .fields
        .into_iter()
        .find(|(k, _)| *k == "pending_to_b")
        .unwrap()
        .1;
    assert!(
        matches!(to_b, inspect::Field::U64(n) if n >= 16),
        "{to_b:?}"
    );
    a.close();
    assert!(
        state_of(&pipe).ends_with("an end is closed"),
        "{}",
        state_of(&pipe)
    );
}

#[test]
fn a_segment_being_initialised_is_reported_as_such_then_as_creator_died() {
    // Its segment is garbage once the child is killed.
    let _gc = garbage_lock();
    let name = ShmName::new("inspect_initialising");
    let flag = ShmName::new("inspect_initialising_flag");
    let mut child = spawn("stuck_initialising", &[&name, &flag.path()]);
    assert!(wait_until(LIMIT, || std::path::Path::new(&flag.path()).exists()));
    assert_eq!(
        inspect::inspect(&name).unwrap().health,
        Health::Initialising
    );
    let listed = inspect::list().unwrap();
    let entry = listed
        .iter()
        .find(|i| i.name == name.as_str())
        .expect("listed");
    assert_eq!(entry.state_line(), "initialising");
    assert!(
        !entry.is_garbage(),
        "gc must not remove a segment being created"
    );
    child.kill();
    let report = inspect::inspect(&name).unwrap();
    assert_eq!(report.health, Health::CreatorDied);
    assert!(report.is_garbage());
}
