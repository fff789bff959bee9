//! The fork start method, in a binary of its own: the test harness runs tests
//! on threads, and fork is refused in a process that has more than one. This
//! one runs its checks in order on its only thread.

use std::time::Duration;

use std::ffi::{c_int, c_void};

use shmprim::process::pool::RawStatus;
use shmprim::process::{Builder, Process, Start, current_name};
use shmprim::{Error, Pool};

/// A C-ABI task: squares a u64, and aborts on 5. `ctx` points to the
/// offset added to every result.
unsafe extern "C" fn square_or_abort(
    task: *const c_void,
    result: *mut c_void,
    ctx: *mut c_void,
) -> c_int {
    // SAFETY: map_raw hands 8-byte task and result buffers (unaligned) and
    // the context pointer given to it, valid in the forked worker.
    unsafe {
        let x = task.cast::<u64>().read_unaligned();
        if x == 5 {
            libc::abort();
        }
        if x == 7 {
            return 42;
        }
        let offset = ctx.cast::<u64>().read();
        result.cast::<u64>().write_unaligned(x * x + offset);
    }
    0
}

fn triple(x: u32) -> u32 {
    x * 3
}

fn check(name: &str, f: impl FnOnce()) {
    f();
    println!("fork: {name} ... ok");
}

fn main() {
    // This binary also runs the spawn pool's worker below.
    shmprim::process::init();
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
    check(
        "a child dropping an inherited unlink-on-drop handle leaves the name",
        || {
            let name = format!("shmprim-test-{}-fork-unlink", std::process::id());
            let opts = shmprim::Options::default().unlink_on_drop(true);
            let q = shmprim::Queue::<u64>::create_with_options(&name, 4, &opts).unwrap();
            let path = format!("/dev/shm/{name}");
            let addr = &q as *const shmprim::Queue<u64> as usize;
            let p = Process::fork(move || {
                // SAFETY: the child's memory is a copy of the parent's; this takes
                // the child's copy of `q`, which nothing else in the child uses
                // (it leaves through `_exit`, running no destructor of its own).
                drop(unsafe { std::ptr::read(addr as *const shmprim::Queue<u64>) });
            })
            .unwrap();
            p.join().unwrap();
            assert!(
                std::path::Path::new(&path).exists(),
                "the child removed the name"
            );
            drop(q);
            assert!(
                !std::path::Path::new(&path).exists(),
                "the parent kept the name"
            );
        },
    );
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
    check(
        "a fork pool runs C-ABI tasks; an abort costs its task only",
        || {
            let pool = Pool::builder()
                .workers(2)
                .start(Start::Fork)
                .build()
                .unwrap();
            let tasks: Vec<u8> = (0..12u64).flat_map(|x| x.to_le_bytes()).collect();
            let mut results = vec![0u8; 12 * 8];
            let mut offset = 1000u64;
            // SAFETY: the function reads and writes 8 bytes and reads the u64
            // behind ctx, which lives until map_raw returns.
            let statuses = unsafe {
                pool.map_raw(
                    square_or_abort,
                    (&raw mut offset).cast(),
                    &tasks,
                    8,
                    &mut results,
                    8,
                )
            }
            .unwrap();
            for (x, status) in statuses.iter().enumerate() {
                let got = u64::from_le_bytes(results[x * 8..x * 8 + 8].try_into().unwrap());
                match x {
                    5 => assert!(
                        matches!(status, RawStatus::WorkerDied { exitcode, .. } if *exitcode == -libc::SIGABRT),
                        "{status:?}"
                    ),
                    7 => assert_eq!((status, got), (&RawStatus::Failed(42), 0)),
                    _ => assert_eq!((status, got), (&RawStatus::Ok, (x * x) as u64 + 1000)),
                }
            }
            // Rust functions run in fork workers too.
            fn double(x: u32) -> u32 {
                x * 2
            }
            assert_eq!(pool.map(double, 0..5).unwrap(), [0, 2, 4, 6, 8]);
            pool.close();
            pool.join().unwrap();
        },
    );
    check(
        "a forked child's death is seen through the pipe and ring it inherited",
        || {
            let limit = Duration::from_secs(20);
            let pipe = shmprim::Pipe::anonymous(4096, 256, true).unwrap();
            let mut a = pipe.end_a().unwrap();
            let ring = shmprim::SpscRing::<u64>::anonymous(16).unwrap();
            let mut consumer = ring.consumer().unwrap();
            // The child claims the other ends after the fork, through the
            // handles it inherited, says so, and hangs until killed.
            let mut child = Builder::new()
                .daemon(true)
                .fork(move || {
                    let mut b = pipe.end_b().unwrap();
                    let mut producer = ring.producer().unwrap();
                    producer.push(7).unwrap();
                    b.send(b"claimed").unwrap();
                    std::thread::sleep(Duration::from_secs(60));
                })
                .unwrap();
            assert_eq!(a.recv_timeout(limit).unwrap(), b"claimed");
            assert_eq!(consumer.pop_timeout(limit).unwrap(), 7);
            child.kill().unwrap();
            assert_eq!(child.join_timeout(limit).unwrap(), Some(-9));
            let t = std::time::Instant::now();
            assert!(matches!(a.recv_timeout(limit), Err(Error::Closed { .. })));
            assert!(matches!(
                consumer.pop_timeout(limit),
                Err(Error::Closed { .. })
            ));
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "end of stream took {:?}",
                t.elapsed()
            );
        },
    );
    check(
        "a forked child killed mid-write of an inherited value is seen as dead",
        || {
            // A large value takes long to write: a kill lands mid-write most
            // of the time. The readers must see the child (not its live
            // parent) as the writer, and report the torn value at once
            // instead of waiting seconds for a writer that looks alive.
            let v = shmprim::Value::anonymous([0u64; 4096], false).unwrap();
            let mut torn = 0;
            for round in 0..20u64 {
                let mut child = Builder::new()
                    .daemon(true)
                    .fork(|| {
                        for n in 0u64.. {
                            v.set([n; 4096]).unwrap();
                        }
                    })
                    .unwrap();
                std::thread::sleep(Duration::from_millis(5 + round % 7));
                child.kill().unwrap();
                child.join_timeout(Duration::from_secs(20)).unwrap();
                let t = std::time::Instant::now();
                match v.get() {
                    Ok(a) => assert!(a.iter().all(|&x| x == a[0])),
                    Err(Error::Corrupted { .. }) => torn += 1,
                    Err(e) => panic!("{e:?}"),
                }
                assert!(
                    t.elapsed() < Duration::from_millis(500),
                    "round {round}: reading took {:?}",
                    t.elapsed()
                );
                v.set([0; 4096]).unwrap();
            }
            assert!(torn > 0, "no kill landed mid-write in 20 rounds");
        },
    );
    check(
        "a child forked while another thread holds the slot registry opens handles",
        || {
            // The per-process registry of participant slots is held across
            // fork: `fork` waits for the other thread to let it go. Were it
            // not, the child would find it locked for ever at its first open.
            let name = format!("shmprim-test-{}-fork-registry", std::process::id());
            // Removed on drop, also when a failed check unwinds past it.
            let seg = shmprim::SegmentBuilder::new(shmprim::Kind::Raw)
                .data_size(64)
                .unlink_on_drop(true)
                .create(&name)
                .unwrap();
            let holder = std::thread::spawn(|| {
                shmprim::segment::hold_registry_for(Duration::from_millis(300));
            });
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: the child only opens a segment and leaves with `_exit`;
            // the registry and the allocator are held across fork by their
            // atfork handlers.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                let ok = shmprim::Segment::open(&name).is_ok();
                // SAFETY: _exit never returns.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            let end = std::time::Instant::now() + Duration::from_secs(5);
            let mut status = 0;
            // SAFETY: reaping our own child; `status` is writable.
            while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != pid {
                if std::time::Instant::now() > end {
                    // SAFETY: killing and reaping our own child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, &mut status, 0);
                    }
                    panic!("the child hung at its first open");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            holder.join().unwrap();
            drop(seg);
            assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
        },
    );
    check("a fork pool is refused once threads exist", || {
        let t = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(300)));
        assert!(matches!(
            Pool::builder().start(Start::Fork).build(),
            Err(Error::ForkWithThreads { .. })
        ));
        t.join().unwrap();
    });
    check("a spawn pool refuses map_raw", || {
        let pool = Pool::new(1).unwrap();
        let mut results = [0u8; 8];
        // SAFETY: refused before anything runs.
        let r = unsafe {
            pool.map_raw(
                square_or_abort,
                std::ptr::null_mut(),
                &[0; 8],
                8,
                &mut results,
                8,
            )
        };
        assert!(matches!(r, Err(Error::InvalidArgument { .. })));
    });
}
