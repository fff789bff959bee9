//! Segments: sharing across processes, the creation race, header validation,
//! modes and names, the liveness table, and cross-process waiting.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{ShmName, wait_until, word};
use shmprim::segment::{HEADER_SIZE, LAYOUT_VERSION};
use shmprim::wait::{TimedOut, wait_while_eq, wake};
use shmprim::{
    Deadline, Disposition, Error, Kind, Mismatch, Segment, SegmentBuilder, TypeCode, TypeDesc,
};

const LIMIT: Duration = Duration::from_secs(20);

shmprim::test_harness!();

/// What the children of these tests play: a role, with its arguments.
fn child_entry((role, args): (String, Vec<String>)) {
    match role.as_str() {
        "answer_write" => child_answer_write(&args[0]),
        "futex_waiter" => child_futex_waiter(&args[0]),
        "race" => child_race(
            &args[0],
            &args[1],
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
        ),
        "hold_open" => child_hold_open(&args[0]),
        "die_initialising" => child_die_initialising(&args[0]),
        "memfd_fork" => child_memfd_fork(),
        "fork_drop" => child_fork_drop(&args[0]),
        other => panic!("unknown role {other}"),
    }
}

/// Starts a child playing `role` (see `child_entry`).
fn spawn(role: &str, args: &[&str]) -> common::ChildProc {
    common::spawn_with(child_entry, role, args)
}

// ---------------------------------------------------------------- sharing

fn child_answer_write(name: &str) {
    let seg = Segment::open(name).unwrap();
    assert!(wait_until(LIMIT, || word(&seg, 0).load(Ordering::Acquire) == 1));
    seg.write(64, b"written by the child").unwrap();
    word(&seg, 0).store(2, Ordering::Release);
}

#[test]
fn two_processes_see_each_others_writes_through_a_named_segment() {
    let name = ShmName::new("two_processes");
    let seg = Segment::create(&name, 4096).unwrap();
    seg.write(128, b"written by the parent").unwrap();
    let mut child = spawn("answer_write", &[&name]);
    word(&seg, 0).store(1, Ordering::Release);
    assert!(wait_until(LIMIT, || word(&seg, 0).load(Ordering::Acquire) == 2));
    let mut buf = [0u8; 20];
    seg.read(64, &mut buf).unwrap();
    assert_eq!(&buf, b"written by the child");
    child.expect_success(LIMIT);
}

fn child_memfd_fork() {
    let seg = Segment::anonymous(4096).unwrap();
    let w = word(&seg, 0);
    w.store(7, Ordering::SeqCst);
    // SAFETY: fork in this single-purpose child; the forked process performs
    // only async-signal-safe operations (atomic stores and _exit).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        if w.load(Ordering::SeqCst) == 7 {
            w.store(42, Ordering::SeqCst);
        }
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child; `status` is writable.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid);
    assert_eq!(
        w.load(Ordering::SeqCst),
        42,
        "forked child's write not visible"
    );
}

fn child_fork_drop(name: &str) {
    let seg = Segment::open(name).unwrap();
    let id = seg.participant_id();
    // SAFETY: libtest keeps a second (idle) thread even with --test-threads=1, so
    // the forked process does only what is safe after fork in a multi-threaded
    // process: it drops the inherited handle (atomic store, fcntl, munmap, close,
    // and one free(), which glibc makes fork-safe with its atfork handlers) and
    // calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        drop(seg); // the inherited handle: must not release the parent's slot
        // SAFETY: _exit never returns.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child; `status` is writable.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    word(&seg, 0).store(id.slot + 1, Ordering::Release);
    assert!(wait_until(LIMIT, || word(&seg, 1).load(Ordering::Acquire) == 1));
}

#[test]
fn a_forked_child_dropping_an_inherited_handle_does_not_release_the_parents_slot() {
    let name = ShmName::new("fork_drop");
    let seg = Segment::create(&name, 64).unwrap();
    let mut child = spawn("fork_drop", &[&name]);
    assert!(wait_until(LIMIT, || word(&seg, 0).load(Ordering::Acquire) != 0));
    let slot = word(&seg, 0).load(Ordering::Acquire) - 1;
    let p = seg
        .participants()
        .unwrap()
        .into_iter()
        .find(|p| p.id.slot == slot)
        .unwrap();
    assert!(p.alive && !p.left, "the child's slot must stay held: {p:?}");
    word(&seg, 1).store(1, Ordering::Release);
    child.expect_success(LIMIT);
}

#[test]
fn anonymous_segment_is_shared_with_a_forked_child() {
    spawn("memfd_fork", &[]).expect_success(LIMIT);
}

#[test]
fn anonymous_segment_is_not_named_and_leaves_nothing_in_dev_shm() {
    let names = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect()
    };
    let before = names();
    let seg = Segment::anonymous(100).unwrap();
    assert_eq!(seg.name(), None);
    assert_eq!(seg.len(), 100);
    // Other tests of this process create and remove their own names meanwhile;
    // anything else that appeared would be the anonymous segment's.
    let ours = format!("shmprim-test-{}-", std::process::id());
    let appeared: Vec<String> = names()
        .difference(&before)
        .filter(|n| !n.starts_with(&ours))
        .cloned()
        .collect();
    assert!(
        appeared.is_empty(),
        "an anonymous segment made {appeared:?}"
    );
    // Its memory really is shared memory: a memfd, not a private mapping.
    let fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(
        fds.iter().any(|l| l.starts_with("/memfd:shmprim")),
        "{fds:?}"
    );
}

// ---------------------------------------------------------------- creation race

const RACERS: usize = 16;
const ROUNDS: usize = 200;
const ROUND_PATTERN: u32 = 0xABCD_1234;

fn child_race(ctl_name: &str, base: &str, index: usize, rounds: usize) {
    let ctl = Segment::open(ctl_name).unwrap();
    let arrived = word(&ctl, 0);
    for r in 0..rounds {
        arrived.fetch_add(1, Ordering::AcqRel);
        let end = Instant::now() + LIMIT;
        while arrived.load(Ordering::Acquire) < ((r + 1) * RACERS) as u32 {
            assert!(Instant::now() < end, "racers did not meet");
            std::thread::yield_now();
        }
        let name = format!("{base}-{r}");
        let (seg, how) = SegmentBuilder::new(Kind::Raw)
            .data_size(64)
            .open_or_create_with(&name, |data, _| {
                // SAFETY: the data area is at least 64 bytes and page aligned.
                unsafe { data.cast::<u32>().write(ROUND_PATTERN) };
                Ok(())
            })
            .unwrap();
        let mut pattern = [0u8; 4];
        seg.read(0, &mut pattern).unwrap();
        assert_eq!(
            u32::from_ne_bytes(pattern),
            ROUND_PATTERN,
            "opener saw an unready segment"
        );
        let code = if how == Disposition::Created { 1 } else { 2 };
        ctl.write(64 + r * RACERS + index, &[code]).unwrap();
    }
}

#[test]
fn open_or_create_race_has_exactly_one_creator_each_time() {
    let ctl = ShmName::new("race_ctl");
    let base = ShmName::new("race");
    let names: Vec<ShmName> = (0..ROUNDS)
        .map(|r| ShmName(format!("{}-{r}", base.as_str())))
        .collect();
    let seg = Segment::create(&ctl, 64 + ROUNDS * RACERS).unwrap();
    let mut children: Vec<_> = (0..RACERS)
        .map(|i| spawn("race", &[&ctl, &base, &i.to_string(), &ROUNDS.to_string()]))
        .collect();
    for c in &mut children {
        c.expect_success(Duration::from_secs(120));
    }
    for r in 0..ROUNDS {
        let mut codes = vec![0u8; RACERS];
        seg.read(64 + r * RACERS, &mut codes).unwrap();
        let creators = codes.iter().filter(|&&c| c == 1).count();
        let openers = codes.iter().filter(|&&c| c == 2).count();
        assert_eq!((creators, openers), (1, RACERS - 1), "round {r}: {codes:?}");
    }
    drop(names);
}

// ---------------------------------------------------------------- validation

fn patch(name: &ShmName, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(name.path())
        .unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

const VERSION_OFFSET: u64 = std::mem::offset_of!(shmprim::HeaderInfo, version) as u64;
const TOTAL_SIZE_OFFSET: u64 = std::mem::offset_of!(shmprim::HeaderInfo, total_size) as u64;
const STATE_OFFSET: u64 = std::mem::size_of::<shmprim::HeaderInfo>() as u64;

fn quick() -> SegmentBuilder {
    SegmentBuilder::new(Kind::Raw).ready_timeout(Duration::from_millis(50))
}

#[test]
fn open_refuses_a_file_smaller_than_a_header() {
    let name = ShmName::new("too_small");
    std::fs::write(name.path(), vec![0u8; 100]).unwrap();
    let err = quick().open(&name).unwrap_err();
    assert!(matches!(err, Error::TooSmall { size: 100, .. }), "{err}");
    assert!(
        err.to_string().contains(name.as_str()),
        "message names the segment: {err}"
    );
}

#[test]
fn open_refuses_a_wrong_magic() {
    let name = ShmName::new("bad_magic");
    drop(Segment::create(&name, 64).unwrap());
    patch(&name, 0, b"NOTSHMPR");
    let err = quick().open(&name).unwrap_err();
    assert!(matches!(err, Error::NotShmprim { .. }), "{err}");
}

#[test]
fn open_refuses_a_foreign_file_of_header_size() {
    let name = ShmName::new("foreign");
    std::fs::write(name.path(), vec![0x5au8; 2 * HEADER_SIZE]).unwrap();
    let err = quick().open(&name).unwrap_err();
    assert!(matches!(err, Error::NotShmprim { .. }), "{err}");
}

#[test]
fn open_refuses_a_wrong_layout_version() {
    let name = ShmName::new("bad_version");
    drop(Segment::create(&name, 64).unwrap());
    patch(&name, VERSION_OFFSET, &(LAYOUT_VERSION + 1).to_ne_bytes());
    let err = quick().open(&name).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Incompatible {
                what: Mismatch::Version,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn open_refuses_a_wrong_kind() {
    let name = ShmName::new("bad_kind");
    drop(
        SegmentBuilder::new(Kind::Event)
            .data_size(64)
            .create(&name)
            .unwrap(),
    );
    let err = quick().open(&name).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Incompatible {
                what: Mismatch::Kind,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("event"), "{err}");
}

#[test]
fn open_refuses_a_wrong_payload_type() {
    let name = ShmName::new("bad_payload");
    let u64_desc = TypeDesc::of::<u64>(TypeCode::U64);
    let u32_desc = TypeDesc::of::<u32>(TypeCode::U32);
    let builder = SegmentBuilder::new(Kind::Value).data_size(64);
    drop(builder.clone().payload(u64_desc).create(&name).unwrap());
    let err = builder.clone().payload(u32_desc).open(&name).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Incompatible {
                what: Mismatch::Payload,
                ..
            }
        ),
        "{err}"
    );
    // The same type opens; raw bytes of the same size and alignment open too.
    builder.clone().payload(u64_desc).open(&name).unwrap();
    builder
        .payload(TypeDesc::new(TypeCode::Bytes, 8, 8, ""))
        .open(&name)
        .unwrap();
}

#[test]
fn open_refuses_a_size_that_does_not_cover_what_the_header_claims() {
    let name = ShmName::new("truncated");
    drop(Segment::create(&name, 3 * 4096).unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(name.path())
        .unwrap()
        .set_len(2 * 4096)
        .unwrap();
    let err = quick().open(&name).unwrap_err();
    assert!(
        matches!(err, Error::Truncated { claimed, .. } if claimed == 4 * 4096),
        "{err}"
    );
    // A header claiming more than the file holds is refused the same way.
    let name2 = ShmName::new("claims_more");
    drop(Segment::create(&name2, 64).unwrap());
    patch(&name2, TOTAL_SIZE_OFFSET, &(1u64 << 40).to_ne_bytes());
    let err = quick().open(&name2).unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
}

#[test]
fn open_reports_an_unknown_state_as_corrupted() {
    let name = ShmName::new("bad_state");
    drop(Segment::create(&name, 64).unwrap());
    patch(&name, STATE_OFFSET, &0xdead_beefu32.to_ne_bytes());
    let err = quick().open(&name).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
}

#[test]
fn open_of_an_empty_file_with_no_creator_reports_creator_died_not_a_hang() {
    let name = ShmName::new("empty");
    std::fs::write(name.path(), b"").unwrap();
    let start = Instant::now();
    let err = quick().open(&name).unwrap_err();
    assert!(matches!(err, Error::CreatorDied { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

fn child_die_initialising(name: &str) {
    let _ = SegmentBuilder::new(Kind::Raw)
        .data_size(64)
        .create_with(name, |_, _| {
            std::fs::write(format!("/dev/shm/{name}.flag"), b"in init").unwrap();
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        });
}

#[test]
fn creator_dying_while_initialising_gives_creator_died() {
    let name = ShmName::new("dies_initialising");
    let flag = ShmName(format!("{}.flag", name.as_str()));
    let mut child = spawn("die_initialising", &[&name]);
    assert!(wait_until(LIMIT, || std::path::Path::new(&flag.path()).exists()));
    // While the creator is alive and initialising, a bounded open says NotReady.
    let err = quick().open(&name).unwrap_err();
    assert!(matches!(err, Error::NotReady { .. }), "{err}");
    child.kill();
    let start = Instant::now();
    let err = SegmentBuilder::new(Kind::Raw).open(&name).unwrap_err();
    assert!(matches!(err, Error::CreatorDied { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "no wait for a dead creator"
    );
    // `open_or_create` takes the dead creator's place: it initialises the
    // segment, and everyone can use the name again.
    let (seg, how) = SegmentBuilder::new(Kind::Raw)
        .data_size(64)
        .open_or_create(&name)
        .unwrap();
    assert_eq!(how, Disposition::Created);
    seg.write(0, b"taken over").unwrap();
    let other = Segment::open(&name).unwrap();
    let mut back = [0u8; 10];
    other.read(0, &mut back).unwrap();
    assert_eq!(&back, b"taken over");
}

/// What a creator killed at each step of its protocol leaves behind, an
/// empty file or a zeroed one of the full size with no creator lock, is
/// taken over by the next `open_or_create`: exactly one of several racing
/// callers initialises it, the others open what it made.
#[test]
fn open_or_create_takes_over_a_dead_creators_file_and_exactly_one_wins() {
    let total = 4096 + 4096; // a header page and one data page
    for (case, size) in [("empty", 0usize), ("sized", total)] {
        let name = ShmName::new(&format!("takeover_{case}"));
        std::fs::write(name.path(), vec![0u8; size]).unwrap();
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        SegmentBuilder::new(Kind::Raw)
                            .data_size(64)
                            .open_or_create_with(&name, |data, _| {
                                // SAFETY: the fresh data area is at least 64
                                // bytes, and nobody sees it before READY.
                                unsafe { data.as_ptr().write(7) };
                                Ok(())
                            })
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut created = 0;
        for r in results {
            let (seg, how) = r.unwrap_or_else(|e| panic!("{case}: {e}"));
            created += usize::from(how == Disposition::Created);
            let mut b = [0u8; 1];
            seg.read(0, &mut b).unwrap();
            assert_eq!(b[0], 7, "{case}: every handle sees the one initialisation");
        }
        assert_eq!(created, 1, "{case}: exactly one creator");
    }
}

mod random_headers {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        /// Random bytes are never a segment.
        #[test]
        fn random_file_contents_always_give_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..3 * HEADER_SIZE)) {
            let name = ShmName::new("prop_random");
            std::fs::write(name.path(), &bytes).unwrap();
            let r = SegmentBuilder::new(Kind::Raw).ready_timeout(Duration::from_millis(1)).open(&name);
            prop_assert!(r.is_err());
        }

        /// Random writes into a valid header never crash the opener (the result
        /// may be Ok when only harmless fields changed).
        #[test]
        fn scribbled_headers_never_crash(writes in proptest::collection::vec((0..HEADER_SIZE as u64, any::<u64>()), 1..8)) {
            let name = ShmName::new("prop_scribble");
            drop(Segment::create(&name, 4096).unwrap());
            for (offset, value) in writes {
                let offset = offset.min(HEADER_SIZE as u64 - 8);
                patch(&name, offset, &value.to_ne_bytes());
            }
            if let Ok(seg) = SegmentBuilder::new(Kind::Raw).ready_timeout(Duration::from_millis(1)).open(&name) {
                // A segment that opens must be usable within its claimed bounds.
                let mut buf = vec![0u8; seg.len()];
                seg.read(0, &mut buf).unwrap();
            }
        }

        /// Truncating a valid segment anywhere below its size is always an error.
        #[test]
        fn truncated_segments_always_give_an_error(len in 0u64..(HEADER_SIZE as u64 + 2 * 4096)) {
            let name = ShmName::new("prop_truncate");
            drop(Segment::create(&name, 2 * 4096 + 1).unwrap());
            std::fs::OpenOptions::new().write(true).open(name.path()).unwrap().set_len(len).unwrap();
            let r = SegmentBuilder::new(Kind::Raw).ready_timeout(Duration::from_millis(1)).open(&name);
            prop_assert!(r.is_err());
        }
    }
}

// ---------------------------------------------------------------- modes and names

#[test]
fn new_segments_have_mode_0600_by_default_and_the_mode_asked_for() {
    let name = ShmName::new("mode_default");
    let _seg = Segment::create(&name, 64).unwrap();
    let mode = std::fs::metadata(name.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let name2 = ShmName::new("mode_640");
    let _seg2 = SegmentBuilder::new(Kind::Raw)
        .mode(0o640)
        .create(&name2)
        .unwrap();
    let mode = std::fs::metadata(name2.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn invalid_names_are_refused_before_any_syscall() {
    let long = "x".repeat(201);
    let cases: [(&str, &str); 7] = [
        ("", "empty"),
        ("a/b", "'/'"),
        ("nul\0byte", "NUL"),
        (&long, "200 bytes"),
        (".hidden", "starts with"),
        ("sp ace", "character"),
        ("ünïcode", "character"),
    ];
    for (name, reason) in cases {
        // `open` of a name that does not exist would be NotFound if it reached
        // shm_open: InvalidName shows the check came first.
        let err = Segment::open(name).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidName { reason: r, .. } if r.contains(reason)),
            "{name:?}: {err}"
        );
        assert!(matches!(
            Segment::create(name, 8),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            Segment::unlink(name),
            Err(Error::InvalidName { .. })
        ));
    }
    assert!(!std::path::Path::new("/dev/shm/sp ace").exists());
    // The longest valid name is accepted.
    let ok = format!("shmprim-test-{}-{}", std::process::id(), "n".repeat(150));
    assert!(ok.len() <= 200);
    let name = ShmName(ok);
    Segment::create(&name, 8).unwrap();
}

#[test]
fn create_refuses_an_existing_name_and_open_a_missing_one() {
    let name = ShmName::new("exists");
    let _seg = Segment::create(&name, 8).unwrap();
    assert!(matches!(
        Segment::create(&name, 8),
        Err(Error::AlreadyExists { .. })
    ));
    let missing = ShmName::new("missing");
    assert!(matches!(
        Segment::open(&missing),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn unlink_removes_the_name_but_live_mappings_stay_valid() {
    let name = ShmName::new("unlink");
    let seg = Segment::create(&name, 64).unwrap();
    seg.write(0, b"still here").unwrap();
    Segment::unlink(&name).unwrap();
    assert!(matches!(Segment::open(&name), Err(Error::NotFound { .. })));
    let mut buf = [0u8; 10];
    seg.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"still here");
}

#[test]
fn unlink_on_drop_removes_the_name() {
    let name = ShmName::new("unlink_on_drop");
    let seg = SegmentBuilder::new(Kind::Raw)
        .unlink_on_drop(true)
        .create(&name)
        .unwrap();
    assert!(std::path::Path::new(&name.path()).exists());
    drop(seg);
    assert!(!std::path::Path::new(&name.path()).exists());
}

#[test]
fn reads_and_writes_outside_the_data_area_are_refused() {
    let name = ShmName::new("bounds");
    let seg = Segment::create(&name, 16).unwrap();
    assert!(matches!(
        seg.write(10, &[0; 7]),
        Err(Error::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        seg.read(usize::MAX, &mut [0; 2]),
        Err(Error::IndexOutOfRange { .. })
    ));
    seg.write(8, &[1; 8]).unwrap();
}

// ---------------------------------------------------------------- liveness

fn child_hold_open(name: &str) {
    let seg = Segment::open(name).unwrap();
    word(&seg, 1).fetch_add(1, Ordering::AcqRel);
    // Stay until told to leave (word 0 becomes 1), then close the handle normally.
    assert!(wait_until(LIMIT, || word(&seg, 0).load(Ordering::Acquire) == 1));
}

#[test]
fn liveness_tells_a_killed_child_from_a_live_one_and_reuses_dead_slots() {
    let name = ShmName::new("liveness");
    let seg = Segment::create(&name, 64).unwrap();
    let mut doomed = spawn("hold_open", &[&name]);
    let mut survivor = spawn("hold_open", &[&name]);
    assert!(wait_until(LIMIT, || word(&seg, 1).load(Ordering::Acquire) == 2));

    let find = |pid: u32| {
        seg.participants()
            .unwrap()
            .into_iter()
            .find(|p| p.pid == pid)
            .unwrap_or_else(|| panic!("pid {pid} not in the table"))
    };
    let (doomed_pid, survivor_pid) = (doomed.pid(), survivor.pid());
    assert!(find(doomed_pid).alive);
    assert!(find(survivor_pid).alive);
    assert!(find(std::process::id()).is_self);

    doomed.kill();
    let dead = find(doomed_pid);
    assert!(
        !dead.alive && !dead.left,
        "killed child must read as dead: {dead:?}"
    );
    assert!(!seg.is_alive(dead.id));
    assert!(find(survivor_pid).alive);

    // A newcomer process takes the dead participant's slot, with a new
    // generation.
    let mut newcomer = spawn("hold_open", &[&name]);
    assert!(wait_until(LIMIT, || word(&seg, 1).load(Ordering::Acquire) == 3));
    let id = find(newcomer.pid()).id;
    assert_eq!(id.slot, dead.id.slot);
    assert_ne!(id.generation, dead.id.generation);
    assert!(seg.is_alive(id));
    assert!(!seg.is_alive(dead.id), "the old tenure stays dead");

    // A participant that closes normally reads as having left.
    word(&seg, 0).store(1, Ordering::Release);
    survivor.expect_success(LIMIT);
    newcomer.expect_success(LIMIT);
    let gone = find(survivor_pid);
    assert!(!gone.alive && gone.left, "{gone:?}");
}

/// A process holds one participant slot per segment, however many handles
/// it opens: 300 handles (more than the table's 128 slots) share one, which
/// another process can still join beside; the slot is given back with the
/// last of them.
#[test]
fn one_process_holds_one_slot_however_many_handles_it_opens() {
    let name = ShmName::new("one_slot");
    let first = Segment::create(&name, 64).unwrap();
    let handles: Vec<Segment> = (0..300)
        .map(|i| Segment::open(&name).unwrap_or_else(|e| panic!("handle {i}: {e}")))
        .collect();
    let id = first.participant_id();
    assert!(handles.iter().all(|h| h.participant_id() == id));
    let mine = |seg: &Segment| {
        seg.participants()
            .unwrap()
            .into_iter()
            .filter(|p| p.pid == std::process::id() && p.alive)
            .count()
    };
    assert_eq!(mine(&first), 1, "one slot for the whole process");
    let mut other = spawn("hold_open", &[&name]);
    assert!(wait_until(LIMIT, || word(&first, 1)
        .load(Ordering::Acquire)
        == 1));
    assert_ne!(
        first
            .participants()
            .unwrap()
            .into_iter()
            .find(|p| p.pid == other.pid())
            .unwrap()
            .id
            .slot,
        id.slot
    );
    // Dropping all but one handle keeps the slot.
    drop(handles);
    assert!(first.is_alive(id));
    let table = shmprim::inspect::inspect(&name).unwrap();
    assert_eq!(table.live_participants(), 2, "this process and the child");
    drop(first);
    let after = shmprim::inspect::inspect(&name).unwrap();
    assert_eq!(after.live_participants(), 1, "only the child is left");
    let probe = Segment::open(&name).unwrap();
    word(&probe, 0).store(1, Ordering::Release);
    other.expect_success(LIMIT);
}

// ---------------------------------------------------------------- waiting

fn child_futex_waiter(name: &str) {
    let seg = Segment::open(name).unwrap();
    let (w, waiters) = (word(&seg, 0), word(&seg, 1));
    wait_while_eq(w, waiters, 0, Deadline::after(LIMIT)).expect("woken before the deadline");
    assert_eq!(w.load(Ordering::Acquire), 5);
    word(&seg, 2).store(1, Ordering::Release);
}

#[test]
fn a_waiter_in_another_process_is_woken_by_a_write() {
    let name = ShmName::new("futex_wake");
    let seg = Segment::create(&name, 64).unwrap();
    let mut child = spawn("futex_waiter", &[&name]);
    // The child is past its spin phase and asleep in the kernel once it counts
    // itself as a waiter.
    assert!(wait_until(LIMIT, || word(&seg, 1).load(Ordering::Acquire) == 1));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        word(&seg, 2).load(Ordering::Acquire),
        0,
        "child must still be waiting"
    );
    word(&seg, 0).store(5, Ordering::Release);
    wake(word(&seg, 0), word(&seg, 1), u32::MAX);
    child.expect_success(LIMIT);
    assert_eq!(word(&seg, 2).load(Ordering::Acquire), 1);
    assert_eq!(
        word(&seg, 1).load(Ordering::Acquire),
        0,
        "waiter count returns to 0"
    );
}

#[test]
fn a_wait_with_a_deadline_returns_on_time_with_no_write() {
    let (w, waiters) = (AtomicU32::new(0), AtomicU32::new(0));
    for ms in [0u64, 30, 120] {
        let start = Instant::now();
        let r = wait_while_eq(&w, &waiters, 0, Deadline::after(Duration::from_millis(ms)));
        let took = start.elapsed();
        assert_eq!(r, Err(TimedOut));
        assert!(
            took >= Duration::from_millis(ms),
            "returned early: {took:?} < {ms} ms"
        );
        assert!(
            took < Duration::from_millis(ms + 500),
            "returned late: {took:?}"
        );
    }
    assert_eq!(waiters.load(Ordering::Relaxed), 0);
}

#[test]
fn a_wait_returns_at_once_when_the_word_already_differs() {
    let (w, waiters) = (AtomicU32::new(3), AtomicU32::new(0));
    assert_eq!(wait_while_eq(&w, &waiters, 0, Deadline::never()), Ok(()));
}
