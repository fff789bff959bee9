//! Process: spawn, exit codes, panics, timeouts, daemons, and the errors for
//! a spawn without init.

mod common;

use std::time::{Duration, Instant};

use shmprim::Error;
use shmprim::process::{Builder, Process, active_children, current_name};

shmprim::test_harness!();

fn square(x: u64) -> u64 {
    x * x
}

fn exit_with(code: i32) {
    std::process::exit(code);
}

fn kill_self(_: ()) {
    // SAFETY: raising a signal in this process has no memory-safety effect.
    unsafe { libc::raise(libc::SIGKILL) };
}

fn panic_with(message: String) -> u8 {
    panic!("{message}");
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn name_of_self(_: ()) -> String {
    current_name()
}

fn concat(parts: (String, Vec<u32>)) -> String {
    format!("{}:{:?}", parts.0, parts.1)
}

/// A daemon child's parent: starts a daemon grandchild that sleeps, writes its
/// pid to the segment named `name`, then sleeps itself until killed.
fn daemon_parent(name: String) {
    let seg = shmprim::Segment::open(&name).unwrap();
    let grandchild = Builder::new().daemon(true).spawn(sleep_ms, 60_000).unwrap();
    common::word(&seg, 0).store(grandchild.pid(), std::sync::atomic::Ordering::Release);
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_returned_value_comes_back_with_exit_code_zero() {
    let mut p = Process::spawn(square, 12).unwrap();
    assert!(p.pid() > 0);
    assert_eq!(p.join_timeout(Duration::from_secs(20)).unwrap(), Some(0));
    assert_eq!(p.exitcode(), Some(0));
    assert!(!p.is_alive());
    assert_eq!(p.join().unwrap(), 144);
}

#[test]
fn compound_arguments_cross_intact() {
    let p = Process::spawn(concat, ("ab".to_string(), vec![1, 2, 3])).unwrap();
    assert_eq!(p.join().unwrap(), "ab:[1, 2, 3]");
}

#[test]
fn exit_three_is_exitcode_three() {
    let mut p = Process::spawn(exit_with, 3).unwrap();
    assert_eq!(p.join_timeout(Duration::from_secs(20)).unwrap(), Some(3));
    match p.join() {
        Err(Error::ProcessDied { exitcode: 3, pid }) => assert!(pid > 0),
        other => panic!("expected ProcessDied with 3, got {other:?}"),
    }
}

#[test]
fn sigkill_is_exitcode_minus_nine() {
    let mut p = Process::spawn(kill_self, ()).unwrap();
    assert_eq!(p.join_timeout(Duration::from_secs(20)).unwrap(), Some(-9));
    assert!(matches!(
        p.join(),
        Err(Error::ProcessDied { exitcode: -9, .. })
    ));
}

#[test]
fn a_panic_reaches_the_parent_with_its_message() {
    let mut p = Process::spawn(panic_with, "the answer is 42".to_string()).unwrap();
    assert_eq!(p.join_timeout(Duration::from_secs(20)).unwrap(), Some(1));
    match p.join() {
        Err(Error::Panicked { message }) => assert_eq!(message, "the answer is 42"),
        other => panic!("expected Panicked, got {other:?}"),
    }
}

#[test]
fn join_timeout_returns_on_time_and_terminate_ends_the_child() {
    let mut p = Builder::new()
        .name("sleeper")
        .spawn(sleep_ms, 30_000)
        .unwrap();
    assert_eq!(p.name(), "sleeper");
    let t = Instant::now();
    assert_eq!(p.join_timeout(Duration::from_millis(200)).unwrap(), None);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(p.is_alive());
    assert!(
        active_children()
            .iter()
            .any(|c| c.pid == p.pid() && c.name == "sleeper")
    );
    p.terminate().unwrap();
    assert_eq!(
        p.join_timeout(Duration::from_secs(10)).unwrap(),
        Some(-libc::SIGTERM)
    );
    assert!(!active_children().iter().any(|c| c.pid == p.pid()));
}

#[test]
fn a_child_knows_its_name() {
    let p = Builder::new()
        .name("worker-7")
        .spawn(name_of_self, ())
        .unwrap();
    assert_eq!(p.join().unwrap(), "worker-7");
    assert_eq!(current_name(), "MainProcess");
}

#[test]
fn a_daemon_dies_with_its_sigkilled_parent() {
    let name = common::ShmName::new("process-daemon");
    let seg = shmprim::Segment::create(&name, 64).unwrap();
    let mut parent = Process::spawn(daemon_parent, name.to_string()).unwrap();
    let word = common::word(&seg, 0);
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            word.load(std::sync::atomic::Ordering::Acquire) != 0
        }),
        "the grandchild never started"
    );
    let grandchild = word.load(std::sync::atomic::Ordering::Acquire);
    parent.kill().unwrap();
    assert_eq!(
        parent.join_timeout(Duration::from_secs(10)).unwrap(),
        Some(-9)
    );
    // The grandchild is re-parented and reaped by init once killed: it
    // disappears from the process table.
    let gone = common::wait_until(Duration::from_secs(5), || {
        // SAFETY: signal 0 only checks for existence.
        let missing = unsafe { libc::kill(grandchild as i32, 0) != 0 };
        missing
            || std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    });
    if !gone {
        // SAFETY: as above, cleaning up after the failed check.
        unsafe { libc::kill(grandchild as i32, libc::SIGKILL) };
    }
    assert!(gone, "the daemon grandchild outlived its SIGKILLed parent");
}

#[test]
fn fork_is_refused_when_threads_exist() {
    let other = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(500)));
    match Process::fork(|| 1u8) {
        Err(Error::ForkWithThreads { threads }) => assert!(threads >= 2),
        Err(e) => panic!("expected ForkWithThreads, got {e}"),
        Ok(p) => {
            let _ = p.join();
            panic!("fork went ahead with threads");
        }
    }
    other.join().unwrap();
}
