//! A typed unlink removes only a shmprim segment of its own kind: `/dev/shm`
//! also holds other programs' files, glibc's named semaphores, and shmprim
//! objects of other kinds, and each is refused and left where it was.

mod common;

use std::path::Path;

use common::ShmName;
use shmprim::{
    Array, Barrier, ByteQueue, Condvar, DuplexRing, Error, Event, Mismatch, Mutex, Pipe, Queue,
    ReentrantMutex, Segment, Semaphore, SpscByteRing, SpscRing, Value,
};

fn exists(name: &str) -> bool {
    Path::new(&format!("/dev/shm/{name}")).exists()
}

/// A typed unlink function, such as `Mutex::<u64>::unlink`.
type Unlink = fn(&str) -> shmprim::Result<()>;

/// Every typed unlink, as a list to run the same checks over.
fn typed_unlinks() -> Vec<(&'static str, Unlink)> {
    vec![
        ("Mutex", Mutex::<u64>::unlink),
        ("ReentrantMutex", ReentrantMutex::<u64>::unlink),
        ("Semaphore", Semaphore::unlink),
        ("Condvar", Condvar::unlink),
        ("Barrier", Barrier::unlink),
        ("Value", Value::<u64>::unlink),
        ("Queue", Queue::<u64>::unlink),
        ("ByteQueue", ByteQueue::unlink),
        ("SpscRing", SpscRing::<u64>::unlink),
        ("SpscByteRing", SpscByteRing::unlink),
        ("Pipe", Pipe::unlink),
        ("DuplexRing", DuplexRing::<u64>::unlink),
        ("Array", Array::<u64>::unlink),
    ]
}

#[test]
fn a_typed_unlink_refuses_a_file_of_another_program_and_leaves_it() {
    let foreign = ShmName::new("unlink_foreign");
    std::fs::write(foreign.path(), vec![7u8; 8192]).unwrap();
    for (what, unlink) in typed_unlinks() {
        let err = unlink(&foreign).unwrap_err();
        assert!(matches!(err, Error::NotShmprim { .. }), "{what}: {err}");
        assert!(exists(&foreign), "{what} removed a foreign file");
    }
    assert!(matches!(
        Event::unlink(&foreign),
        Err(Error::NotShmprim { .. })
    ));
    let err = Segment::unlink(&foreign).unwrap_err();
    assert!(matches!(err, Error::NotShmprim { .. }), "{err}");
    assert!(exists(&foreign));
    // A short file cannot hold a header: refused too.
    let short = ShmName::new("unlink_short");
    std::fs::write(short.path(), b"x").unwrap();
    assert!(matches!(
        Mutex::<u64>::unlink(&short),
        Err(Error::NotShmprim { .. })
    ));
    assert!(exists(&short));
}

#[test]
fn a_typed_unlink_refuses_a_glibc_named_semaphore() {
    // glibc keeps `sem_open("/x")` as /dev/shm/sem.x.
    let base = format!("shmprim-test-{}-unlink_sem", std::process::id());
    let c_name = std::ffi::CString::new(format!("/{base}")).unwrap();
    // SAFETY: a valid NUL-terminated name; the semaphore is closed and
    // unlinked below.
    let sem = unsafe { libc::sem_open(c_name.as_ptr(), libc::O_CREAT | libc::O_EXCL, 0o600, 1) };
    assert_ne!(sem, libc::SEM_FAILED, "sem_open failed");
    let file = format!("sem.{base}");
    assert!(exists(&file));
    let refused = Mutex::<u64>::unlink(&file);
    let still_there = exists(&file);
    // SAFETY: `sem` came from sem_open above and is closed once.
    unsafe {
        libc::sem_close(sem);
        libc::sem_unlink(c_name.as_ptr());
    }
    assert!(
        matches!(refused, Err(Error::NotShmprim { .. })),
        "{refused:?}"
    );
    assert!(still_there, "Mutex::unlink removed a glibc semaphore");
}

#[test]
fn a_typed_unlink_refuses_another_kind_and_removes_its_own() {
    let name = ShmName::new("unlink_kind");
    let ev = Event::create(&name).unwrap();
    let err = Mutex::<u64>::unlink(&name).unwrap_err();
    match &err {
        Error::Incompatible {
            what: Mismatch::Kind,
            expected,
            found,
            ..
        } => assert_eq!((expected.as_str(), found.as_str()), ("mutex", "event")),
        other => panic!("{other}"),
    }
    assert!(exists(&name), "Mutex::unlink removed an event");
    for (what, unlink) in typed_unlinks() {
        assert!(unlink(&name).is_err(), "{what} removed an event");
        assert!(exists(&name));
    }
    // Its own kind's unlink, and the untyped one, remove it.
    Event::unlink(&name).unwrap();
    assert!(!exists(&name));
    drop(ev);
    let seg = Segment::create(&name, 64).unwrap();
    Segment::unlink(&name).unwrap();
    assert!(!exists(&name));
    drop(seg);
}
