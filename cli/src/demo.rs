//! `shmprim demo`: the articles' `multiprocessing` programs in one run, on
//! shmprim's Process and Pool.
//!
//! **Processes and a Queue.** A writer Process puts numbered items into a
//! Queue and a reader Process takes them, adding each to a Value; both print
//! through a Lock-guarded printer. A Barrier separates setting up (every
//! process has opened every object; the parent then unlinks their names, so
//! nothing is left in /dev/shm however the run ends) from the work; an Event
//! tells the reader to stop once the writer is done.
//!
//! **A Pool.** `imap_unordered` over the tasks with a progress bar. Midway, one
//! task reports its worker's pid and the parent SIGKILLs that worker: the pool
//! carries on, that one task comes back as `WorkerDied`, a replacement worker
//! starts, every other task is done exactly once.
//!
//! The parent checks all of it and exits non-zero if anything is off. Ctrl-C
//! unlinks whatever names still exist; the children are daemons and die with
//! the parent.

use std::ffi::CString;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shmprim::process::{Builder, Process};
use shmprim::{Barrier, Error, Event, Mutex, Pool, Queue, Value};

/// `shmprim demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of pool workers.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Number of pool tasks.
    #[arg(long, default_value_t = 200_000)]
    tasks: u64,
    /// Number of items the writer process puts into the queue.
    #[arg(long, default_value_t = 20_000)]
    items: u64,
    /// No progress bar (for scripts and tests).
    #[arg(long)]
    quiet: bool,
}

/// The names of the run's objects, all under `shmprim-demo-<pid>-`.
#[derive(Clone)]
struct Names {
    base: String,
}

impl Names {
    fn of(&self, what: &str) -> String {
        format!("{}-{what}", self.base)
    }
    fn all(&self) -> [String; 6] {
        ["queue", "lock", "sum", "phase", "stop", "victim"].map(|w| self.of(w))
    }
}

/// Paths the Ctrl-C handler unlinks, made before it is installed (a handler
/// must not allocate).
static PATHS: OnceLock<Vec<CString>> = OnceLock::new();

extern "C" fn on_sigint(_: libc::c_int) {
    if let Some(paths) = PATHS.get() {
        for p in paths {
            // SAFETY: unlink is async-signal-safe; `p` is a valid C string.
            unsafe { libc::unlink(p.as_ptr()) };
        }
    }
    // SAFETY: _exit is async-signal-safe and ends the process.
    unsafe { libc::_exit(130) };
}

fn catch_ctrl_c(names: &Names) {
    let paths = names
        .all()
        .iter()
        .map(|n| CString::new(format!("/dev/shm/{n}")).expect("no NUL in names"))
        .collect();
    let _ = PATHS.set(paths);
    // SAFETY: the handler only calls unlink and _exit, both async-signal-safe,
    // and reads `PATHS`, set before this call and never changed.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("shmprim demo: {msg}");
    1
}

/// `shmprim demo`: 0 when every check passed.
pub fn run(args: Args) -> i32 {
    if args.workers == 0 || args.workers > 64 {
        return fail("--workers must be 1 to 64");
    }
    if args.tasks < 10 {
        return fail("--tasks must be at least 10");
    }
    if args.items == 0 {
        return fail("--items must be at least 1");
    }
    let names = Names {
        base: format!("shmprim-demo-{}", std::process::id()),
    };
    catch_ctrl_c(&names);
    let result = processes_and_queue(&args, &names).and_then(|()| pool(&args, &names));
    for n in names.all() {
        let _ = shmprim::Segment::unlink(&n);
    }
    match result {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// Prints `line` holding the shared lock, so that lines of different
/// processes never mix.
fn say(lock: &Mutex<()>, line: &str) {
    let _held = lock.lock();
    println!("{line}");
}

fn writer((base, items): (String, u64)) -> u64 {
    let n = Names { base };
    let q = Queue::<u64>::open(&n.of("queue")).expect("queue");
    let lock = Mutex::<()>::open(&n.of("lock")).expect("lock");
    Barrier::open(&n.of("phase"))
        .expect("barrier")
        .wait()
        .expect("set-up barrier");
    for i in 1..=items {
        q.put(i).expect("put");
    }
    say(
        &lock,
        &format!("writer  (pid {}): put {items} items", std::process::id()),
    );
    items * (items + 1) / 2
}

fn reader(base: String) -> u64 {
    let n = Names { base };
    let q = Queue::<u64>::open(&n.of("queue")).expect("queue");
    let lock = Mutex::<()>::open(&n.of("lock")).expect("lock");
    let sum = Value::<u64>::open(&n.of("sum")).expect("value");
    let stop = Event::open(&n.of("stop")).expect("event");
    Barrier::open(&n.of("phase"))
        .expect("barrier")
        .wait()
        .expect("set-up barrier");
    let mut count = 0u64;
    loop {
        match q.get_timeout(Duration::from_millis(10)) {
            Ok(v) => {
                sum.fetch_add(v);
                count += 1;
            }
            Err(Error::Timeout { .. }) if stop.is_set() => break,
            Err(Error::Timeout { .. }) => {}
            Err(e) => panic!("get: {e}"),
        }
    }
    say(
        &lock,
        &format!("reader  (pid {}): got {count} items", std::process::id()),
    );
    count
}

/// Joins a child within `limit`, or kills it and says so.
fn join<R: shmprim::process::Payload>(mut p: Process<R>, limit: Duration) -> Result<R, String> {
    if p.join_timeout(limit).map_err(|e| e.to_string())?.is_none() {
        let _ = p.kill();
        return Err(format!("{} did not finish within {limit:?}", p.name()));
    }
    let name = p.name().to_owned();
    p.join().map_err(|e| format!("{name}: {e}"))
}

fn processes_and_queue(args: &Args, n: &Names) -> Result<(), String> {
    let e = |what: &'static str| move |err: Error| format!("{what}: {err}");
    let _q = Queue::<u64>::create(&n.of("queue"), 1024).map_err(e("queue"))?;
    let lock = Mutex::create(&n.of("lock"), ()).map_err(e("lock"))?;
    let sum = Value::create(&n.of("sum"), 0u64).map_err(e("value"))?;
    let stop = Event::create(&n.of("stop")).map_err(e("event"))?;
    let phase = Barrier::create(&n.of("phase"), 3).map_err(e("barrier"))?;
    say(
        &lock,
        &format!(
            "parent  (pid {}): starting a writer and a reader",
            std::process::id()
        ),
    );
    let daemon = |name: &str| Builder::new().name(name).daemon(true);
    let w = daemon("writer")
        .spawn(writer, (n.base.clone(), args.items))
        .map_err(e("spawn"))?;
    let r = daemon("reader")
        .spawn(reader, n.base.clone())
        .map_err(e("spawn"))?;
    phase
        .wait_timeout(Duration::from_secs(30))
        .map_err(e("set-up barrier"))?;
    for name in ["queue", "lock", "sum", "stop", "phase"] {
        let _ = shmprim::Segment::unlink(&n.of(name));
    }
    // The writer finishes only if the reader keeps taking: watch both.
    let mut r = r;
    let mut w = w;
    let end = Instant::now() + Duration::from_secs(120);
    while w
        .join_timeout(Duration::from_millis(10))
        .map_err(e("join"))?
        .is_none()
    {
        if let Some(code) = r.exitcode() {
            let _ = w.kill();
            return Err(format!(
                "the reader (pid {}) died early: exit code {code}",
                r.pid()
            ));
        }
        if Instant::now() >= end {
            return Err("the writer did not finish within 120 s".into());
        }
    }
    let written = join(w, Duration::ZERO)?;
    stop.set();
    let count = join(r, Duration::from_secs(60))?;
    if count != args.items || sum.load() != written {
        return Err(format!(
            "the reader got {count} items summing to {}, the writer put {} summing to {written}",
            sum.load(),
            args.items
        ));
    }
    say(
        &lock,
        &format!("ok: {count} items through the queue, sum {written}"),
    );
    Ok(())
}

/// The work a pool task does: a few rounds of a 64-bit mix.
fn checksum(x: u64) -> u64 {
    let mut h = x ^ 0x9e37_79b9_7f4a_7c15;
    for _ in 0..64 {
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    }
    h ^ (h >> 31)
}

/// A pool task. The one given a name reports its worker's pid in that Value
/// and waits to be killed.
fn task((x, victim): (u64, Option<String>)) -> (u64, u64) {
    if let Some(name) = victim {
        let v = Value::<u32>::open(&name).expect("victim value");
        v.store(std::process::id());
        std::thread::sleep(Duration::from_secs(60));
    }
    (x, checksum(x))
}

fn pool(args: &Args, n: &Names) -> Result<(), String> {
    let victim_name = n.of("victim");
    let victim = Value::create(&victim_name, 0u32).map_err(|e| format!("value: {e}"))?;
    let pool = Pool::new(args.workers).map_err(|e| format!("pool: {e}"))?;
    let victim_at = args.tasks / 2;
    println!(
        "pool: {} workers, {} tasks; the worker that runs task {victim_at} will be killed",
        args.workers, args.tasks
    );
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(args.tasks)
    };
    // The killer waits for the victim task to report its worker, then kills it.
    let killer = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(120);
        while Instant::now() < end {
            let pid = victim.load();
            if pid != 0 {
                // SAFETY: kill(2) on the pool worker that reported its pid.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                return Some(pid);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    });
    let start = Instant::now();
    let inputs = (0..args.tasks).map(|x| (x, (x == victim_at).then(|| victim_name.clone())));
    let mut seen = vec![false; args.tasks as usize];
    let mut lost = Vec::new();
    for r in pool
        .imap_unordered(task, inputs, 1)
        .map_err(|e| format!("imap_unordered: {e}"))?
    {
        bar.inc(1);
        match r {
            Ok((x, sum)) => {
                let slot = seen
                    .get_mut(x as usize)
                    .ok_or(format!("task {x} out of range"))?;
                if *slot || sum != checksum(x) {
                    return Err(format!("task {x} came back twice or wrong"));
                }
                *slot = true;
            }
            Err(Error::WorkerDied { pid, exitcode }) => lost.push((pid, exitcode)),
            Err(e) => return Err(format!("a task failed: {e}")),
        }
    }
    bar.finish_and_clear();
    let took = start.elapsed();
    let killed = killer.join().map_err(|_| "the killer thread panicked")?;
    let _ = shmprim::Segment::unlink(&victim_name);
    let Some(killed) = killed else {
        return Err("the victim task never reported its worker".into());
    };
    println!("pool: killed worker {killed} while it ran task {victim_at}");
    let missing: Vec<u64> = (0..args.tasks).filter(|&x| !seen[x as usize]).collect();
    if lost != [(killed, -libc::SIGKILL)] || missing != [victim_at] {
        return Err(format!(
            "expected exactly task {victim_at} lost to worker {killed}; lost {lost:?}, missing {missing:?}"
        ));
    }
    println!(
        "pool: {} tasks in {:.2} s ({:.0} tasks/s); task {victim_at} reported WorkerDied \
         {{ pid: {killed}, exitcode: -9 }}",
        args.tasks,
        took.as_secs_f64(),
        args.tasks as f64 / took.as_secs_f64()
    );
    let back = (0..2000).any(|_| {
        std::thread::sleep(Duration::from_millis(5));
        pool.worker_pids().len() == args.workers && !pool.worker_pids().contains(&killed)
    });
    if !back {
        return Err(format!(
            "the pool did not get back to {} workers",
            args.workers
        ));
    }
    pool.close();
    pool.join().map_err(|e| format!("join: {e}"))?;
    println!(
        "ok: every other task done exactly once; a replacement kept the pool at {} workers",
        args.workers
    );
    Ok(())
}
