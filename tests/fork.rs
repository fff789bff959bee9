//! The fork start method, in a binary of its own: the test harness runs tests
//! on threads, and fork is refused in a process that has more than one. This
//! one runs its checks in order on its only thread.

use std::time::Duration;

use shmprim::Error;
use shmprim::process::{Builder, Process, Start, current_name};

fn triple(x: u32) -> u32 {
    x * 3
}

fn check(name: &str, f: impl FnOnce()) {
    f();
    println!("fork: {name} ... ok");
}

fn main() {
    check("a returned value comes back", || {
        let base = 6u64;
        let p = Process::fork(move || base * 7).unwrap();
        assert_eq!(p.join().unwrap(), 42);
    });
    check("the child runs in a copy of the parent", || {
        let captured = [String::from("copied"), String::from("memory")];
        let p = Builder::new()
            .name("copy")
            .fork(move || format!("{}:{}", current_name(), captured.join(" ")))
            .unwrap();
        assert_eq!(p.join().unwrap(), "copy:copied memory");
    });
    check("a panic's message reaches the parent", || {
        let mut p = Process::fork(|| -> u8 { panic!("forked and failed") }).unwrap();
        assert_eq!(p.join_timeout(Duration::from_secs(20)).unwrap(), Some(1));
        assert!(
            matches!(p.join(), Err(Error::Panicked { message }) if message == "forked and failed")
        );
    });
    check("exit(3) and SIGKILL give Python's exit codes", || {
        let mut p = Process::<()>::fork(|| std::process::exit(3)).unwrap();
        assert_eq!(p.join_timeout(Duration::from_secs(20)).unwrap(), Some(3));
        let mut p = Process::fork(|| {
            // SAFETY: raising a signal in this process has no memory-safety effect.
            unsafe { libc::raise(libc::SIGKILL) };
        })
        .unwrap();
        assert_eq!(p.join_timeout(Duration::from_secs(20)).unwrap(), Some(-9));
        assert!(matches!(
            p.join(),
            Err(Error::ProcessDied { exitcode: -9, .. })
        ));
    });
    check("Start::Fork runs a function on an argument", || {
        let p = Builder::new().start(Start::Fork, triple, 14).unwrap();
        assert_eq!(p.join().unwrap(), 42);
    });
    check("a dropped daemon child is killed and reaped", || {
        let p = Builder::new()
            .daemon(true)
            .fork(|| std::thread::sleep(Duration::from_secs(60)))
            .unwrap();
        let pid = p.pid();
        drop(p);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    });
    check("spawn needs init even where fork does not", || {
        assert!(matches!(
            Process::spawn(triple, 1),
            Err(Error::NotInitialised)
        ));
    });
}
