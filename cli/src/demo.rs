//! `shmprim demo`: the classic `multiprocessing` worker pool, done with shmprim.
//!
//! The parent re-executes itself as `workers` worker processes. It feeds tasks
//! into a byte `ByteQueue`; the workers take them, compute a checksum, and put
//! results into a second, typed `Queue`. A `Mutex`-guarded tally and a `Value`
//! counter track progress (the parent's progress bar reads the counter); each
//! worker sends log lines to the parent through its own `Pipe`; a `Barrier`
//! separates the processing phase from the summary phase, in which each worker
//! reads every worker's entry of an `Array` (complete only once all have passed
//! the barrier); an `Event` tells the workers to stop.
//!
//! The parent unlinks every name as soon as all workers have attached, so
//! nothing is left in /dev/shm however the run ends (Ctrl-C, a killed worker);
//! a Ctrl-C before that point is caught and cleaned up. It checks its own result
//! (every task done exactly once, tallies and checksums agree) and exits
//! non-zero if anything is off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use shmprim::{Array, Barrier, ByteQueue, Error, Event, Mutex, Pipe, Queue, Value};

/// `shmprim demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of worker processes.
    #[arg(long, default_value_t = 4)]
    workers: u32,
    /// Number of tasks to process.
    #[arg(long, default_value_t = 1_000_000)]
    tasks: u64,
    /// Size of each task message in bytes (at least 8).
    #[arg(long, default_value_t = 64)]
    message_size: usize,
    /// No progress bar (for scripts and tests).
    #[arg(long)]
    quiet: bool,
}

/// The hidden `shmprim demo-worker` role a worker process plays.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[arg(long)]
    base: String,
    #[arg(long)]
    id: u32,
    #[arg(long)]
    workers: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct TaskResult {
    task: u64,
    checksum: u64,
    worker: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
struct Tally {
    tasks: u64,
    bytes: u64,
    checksum_xor: u64,
}

/// Per-worker entries of the summary array.
const SUMMARY_FIELDS: usize = 4; // tasks, bytes, checksum xor, busy microseconds
const QUEUE_CAPACITY: usize = 1024;
const LOG_EVERY: u64 = 100_000;
const STALL_LIMIT: Duration = Duration::from_secs(30);

struct Names {
    base: String,
}

impl Names {
    fn tasks(&self) -> String {
        format!("{}-tasks", self.base)
    }
    fn results(&self) -> String {
        format!("{}-results", self.base)
    }
    fn tally(&self) -> String {
        format!("{}-tally", self.base)
    }
    fn done(&self) -> String {
        format!("{}-done", self.base)
    }
    fn phase(&self) -> String {
        format!("{}-phase", self.base)
    }
    fn stop(&self) -> String {
        format!("{}-stop", self.base)
    }
    fn summary(&self) -> String {
        format!("{}-summary", self.base)
    }
    fn log(&self, worker: u32) -> String {
        format!("{}-log-{worker}", self.base)
    }
    fn all(&self, workers: u32) -> Vec<String> {
        let mut v = vec![
            self.tasks(),
            self.results(),
            self.tally(),
            self.done(),
            self.phase(),
            self.stop(),
            self.summary(),
        ];
        v.extend((0..workers).map(|w| self.log(w)));
        v
    }
}

/// Fills `buf` with task `id`'s message: the id, then bytes derived from it.
fn task_message(id: u64, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&id.to_le_bytes());
    for (i, b) in buf[8..].iter_mut().enumerate() {
        *b = (id.wrapping_mul(31).wrapping_add(i as u64)) as u8;
    }
}

/// FNV-1a over a message: the work each task asks for.
fn checksum(msg: &[u8]) -> u64 {
    msg.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn catch_ctrl_c() {
    // SAFETY: installing a handler that only stores to an atomic, which is
    // async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
}

/// Unlinks every name of the run (those already gone are fine).
fn unlink_all(names: &Names, workers: u32) {
    for n in names.all(workers) {
        let _ = shmprim::Segment::unlink(&n);
    }
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("shmprim demo: {msg}");
    1
}

pub fn run(args: Args) -> i32 {
    if args.workers == 0 || args.workers > 64 {
        return fail("--workers must be 1 to 64");
    }
    if args.message_size < 8 || args.message_size > 1 << 20 {
        return fail("--message-size must be 8 bytes to 1 MiB");
    }
    catch_ctrl_c();
    let names = Names {
        base: format!("shmprim-demo-{}", std::process::id()),
    };
    let result = run_parent(&args, &names);
    unlink_all(&names, args.workers);
    match result {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run_parent(args: &Args, names: &Names) -> Result<(), String> {
    let e = |what: &str| {
        let what = what.to_owned();
        move |err: Error| format!("{what}: {err}")
    };
    let workers = args.workers;
    let tasks = ByteQueue::create(&names.tasks(), QUEUE_CAPACITY, args.message_size)
        .map_err(e("task queue"))?;
    let results =
        Queue::<TaskResult>::create(&names.results(), QUEUE_CAPACITY).map_err(e("result queue"))?;
    let tally = Mutex::create(&names.tally(), Tally::default()).map_err(e("tally"))?;
    let done = Value::<u64>::create(&names.done(), 0).map_err(e("counter"))?;
    let phase = Barrier::create(&names.phase(), workers + 1).map_err(e("barrier"))?;
    let stop = Event::create(&names.stop()).map_err(e("stop event"))?;
    let summary = Array::<u64>::create(&names.summary(), workers as usize * SUMMARY_FIELDS)
        .map_err(e("summary"))?;
    let mut logs = Vec::new();
    for w in 0..workers {
        let pipe = Pipe::create_simplex(&names.log(w), 16 * 1024, 256).map_err(e("log pipe"))?;
        logs.push(pipe.reader().map_err(e("log pipe reader"))?);
    }

    let exe = std::env::current_exe().map_err(|err| format!("current_exe: {err}"))?;
    let mut children = Children(Vec::new());
    for w in 0..workers {
        let child = std::process::Command::new(&exe)
            .args([
                "demo-worker",
                "--base",
                &names.base,
                "--id",
                &w.to_string(),
                "--workers",
                &workers.to_string(),
            ])
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|err| format!("spawn worker: {err}"))?;
        children.0.push(child);
    }
    // Phase 0: every worker has opened everything. From here on nothing needs a
    // name: unlink them all, so nothing can be left behind.
    wait_barrier(&phase, &mut children, "attach")?;
    unlink_all(names, workers);
    println!(
        "shmprim demo: {workers} worker processes, {} tasks of {} bytes; pids {:?}",
        args.tasks,
        args.message_size,
        children.0.iter().map(|c| c.id()).collect::<Vec<_>>()
    );

    let start = Instant::now();
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(args.tasks);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40.cyan/blue} {pos}/{len} tasks, {elapsed} elapsed, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    };

    // The producer: a thread feeding the task queue, then closing it.
    let n_tasks = args.tasks;
    let size = args.message_size;
    let producer = std::thread::scope(|scope| -> Result<(u64, Vec<u64>), String> {
        let tasks_ref = &tasks;
        let feeder = scope.spawn(move || -> Result<u64, Error> {
            let mut expected_xor = 0u64;
            let mut buf = vec![0u8; size];
            for id in 0..n_tasks {
                task_message(id, &mut buf);
                expected_xor ^= checksum(&buf);
                loop {
                    if INTERRUPTED.load(Ordering::Relaxed) {
                        return Err(Error::Closed);
                    }
                    match tasks_ref.put_timeout(&buf, Duration::from_millis(100)) {
                        Ok(()) => break,
                        Err(Error::Timeout) => continue,
                        Err(err) => return Err(err),
                    }
                }
            }
            tasks_ref.close();
            Ok(expected_xor)
        });
        let seen = collect(&results, &mut logs, &done, &bar, &mut children, n_tasks);
        if seen.is_err() {
            tasks.close();
        }
        let fed = feeder.join().map_err(|_| "producer panicked".to_owned())?;
        // The collector's error is the cause (the producer only sees the close).
        let seen = seen?;
        Ok((fed.map_err(e("producer"))?, seen))
    });
    let (expected_xor, seen) = producer?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();

    // Phase 1 → 2: all summaries are written once everyone passes the barrier.
    wait_barrier(&phase, &mut children, "summary")?;
    let mut entries = vec![0u64; workers as usize * SUMMARY_FIELDS];
    summary.read_into(&mut entries).map_err(e("summary"))?;
    // Workers log their phase-2 line, then wait for the stop event.
    println!("phase 2 (after the barrier): each worker reads every summary from the Array:");
    drain_logs_until(&mut logs, workers as usize, Duration::from_secs(10));
    stop.set();
    for c in &mut children.0 {
        let status = wait_child(c, Duration::from_secs(10))?;
        if !status.success() {
            return Err(format!("worker pid {} failed: {status}", c.id()));
        }
    }

    // Check everything agrees.
    let totals = *tally
        .lock()
        .map_err(|err| format!("tally: {:?}", err.error()))?;
    let mut problems = Vec::new();
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let duplicated = seen.iter().filter(|&&n| n > 1).count();
    if missing + duplicated > 0 {
        problems.push(format!(
            "{missing} tasks missing, {duplicated} done more than once"
        ));
    }
    if totals.tasks != n_tasks || done.load() != n_tasks {
        problems.push(format!(
            "tally {} and counter {} != {n_tasks}",
            totals.tasks,
            done.load()
        ));
    }
    if totals.checksum_xor != expected_xor {
        problems.push("checksums do not match the tasks".into());
    }
    let per_worker: Vec<u64> = entries.chunks(SUMMARY_FIELDS).map(|c| c[0]).collect();
    if per_worker.iter().sum::<u64>() != n_tasks {
        problems.push(format!(
            "per-worker summary adds to {}",
            per_worker.iter().sum::<u64>()
        ));
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "shmprim demo: {n_tasks} tasks in {:.3} s: {:.0} tasks/s, {:.1} MB/s through the task queue",
        secs,
        n_tasks as f64 / secs,
        (n_tasks * args.message_size as u64) as f64 / secs / 1e6
    );
    for (w, c) in entries.chunks(SUMMARY_FIELDS).enumerate() {
        println!(
            "  worker {w}: {:>8} tasks, {:>10} bytes, busy {:.3} s",
            c[0],
            c[1],
            c[3] as f64 / 1e6
        );
    }
    if problems.is_empty() {
        println!(
            "shmprim demo: ok: every task done exactly once; tally, counter, summary and checksums agree"
        );
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Arrives at the barrier last: polls until every worker waits there (watching
/// for Ctrl-C and dead workers, which a plain timed wait could only notice by
/// breaking the barrier for everyone), then completes the generation.
fn wait_barrier(phase: &Barrier, children: &mut Children, what: &str) -> Result<(), String> {
    let end = Instant::now() + STALL_LIMIT;
    while phase.n_waiting() + 1 < phase.parties() {
        check_workers(children)?;
        if Instant::now() > end {
            return Err(format!(
                "{what} barrier: workers did not arrive within {STALL_LIMIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    phase
        .wait_timeout(STALL_LIMIT)
        .map(|_| ())
        .map_err(|err| format!("{what} barrier: {err}"))
}

fn check_workers(children: &mut Children) -> Result<(), String> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
    for c in &mut children.0 {
        if let Ok(Some(status)) = c.try_wait() {
            if !status.success() {
                return Err(format!("worker pid {} died ({status})", c.id()));
            }
        }
    }
    Ok(())
}

fn wait_child(
    c: &mut std::process::Child,
    limit: Duration,
) -> Result<std::process::ExitStatus, String> {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = c.try_wait().map_err(|err| err.to_string())? {
            return Ok(status);
        }
        if Instant::now() > end {
            return Err(format!("worker pid {} did not stop", c.id()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Collects results until every task has one; returns how often each was seen.
fn collect(
    results: &Queue<TaskResult>,
    logs: &mut [shmprim::PipeEnd],
    done: &Value<u64>,
    bar: &indicatif::ProgressBar,
    children: &mut Children,
    n_tasks: u64,
) -> Result<Vec<u64>, String> {
    let mut seen = vec![0u64; n_tasks as usize];
    let mut received = 0u64;
    let mut buf = vec![TaskResult::zeroed(); 256];
    let mut last_progress = Instant::now();
    while received < n_tasks {
        check_workers(children)?;
        match results.get_many_timeout(&mut buf, Duration::from_millis(20)) {
            Ok(n) => {
                for r in &buf[..n] {
                    let slot = seen
                        .get_mut(r.task as usize)
                        .ok_or_else(|| format!("result for unknown task {}", r.task))?;
                    *slot += 1;
                }
                received += n as u64;
                last_progress = Instant::now();
            }
            Err(Error::Timeout) => {}
            Err(err) => return Err(format!("results: {err}")),
        }
        for log in logs.iter_mut() {
            while let Ok(line) = log.try_recv() {
                bar.println(String::from_utf8_lossy(&line));
            }
        }
        bar.set_position(done.load());
        if last_progress.elapsed() > STALL_LIMIT {
            return Err("no progress for 30 s".into());
        }
    }
    Ok(seen)
}

/// Prints log lines until `expected` workers have logged their summary line.
fn drain_logs_until(logs: &mut [shmprim::PipeEnd], expected: usize, limit: Duration) {
    let end = Instant::now() + limit;
    let mut summaries = 0;
    while summaries < expected && Instant::now() < end {
        for log in logs.iter_mut() {
            while let Ok(line) = log.try_recv() {
                let line = String::from_utf8_lossy(&line).into_owned();
                if line.contains("share of the work") {
                    summaries += 1;
                }
                println!("{line}");
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A worker process: attach, process tasks until the queue closes, write its
/// summary, pass the barrier, report its share, wait for the stop event.
pub fn worker(args: WorkerArgs) -> i32 {
    match run_worker(&args) {
        Ok(()) => 0,
        Err(err) => fail(format!("worker {}: {err}", args.id)),
    }
}

fn run_worker(args: &WorkerArgs) -> Result<(), Error> {
    let names = Names {
        base: args.base.clone(),
    };
    let tasks = ByteQueue::open(&names.tasks())?;
    let results = Queue::<TaskResult>::open(&names.results())?;
    let tally = Mutex::<Tally>::open(&names.tally())?;
    let done = Value::<u64>::open(&names.done())?;
    let phase = Barrier::open(&names.phase())?;
    let stop = Event::open(&names.stop())?;
    let summary = Array::<u64>::open(&names.summary())?;
    let mut log = Pipe::open(&names.log(args.id))?.writer()?;
    phase.wait_timeout(STALL_LIMIT)?;

    let started = Instant::now();
    let (mut count, mut bytes, mut xor) = (0u64, 0u64, 0u64);
    let mut buf = vec![0u8; tasks.max_message()];
    loop {
        let n = match tasks.get_into(&mut buf) {
            Ok(n) => n,
            Err(Error::Closed) => break,
            Err(err) => return Err(err),
        };
        let msg = &buf[..n];
        let task = u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"));
        let sum = checksum(msg);
        results.put(TaskResult {
            task,
            checksum: sum,
            worker: args.id,
            _pad: 0,
        })?;
        {
            let mut t = tally
                .lock()
                .or_else(|err| err.into_guard().ok_or(Error::Closed))?;
            t.tasks += 1;
            t.bytes += n as u64;
            t.checksum_xor ^= sum;
        }
        done.fetch_add(1);
        count += 1;
        bytes += n as u64;
        xor ^= sum;
        if count % LOG_EVERY == 0 {
            let _ = log.try_send(
                format!(
                    "  worker {} (pid {}): {count} tasks",
                    args.id,
                    std::process::id()
                )
                .as_bytes(),
            );
        }
    }
    let busy = started.elapsed().as_micros() as u64;
    let base = args.id as usize * SUMMARY_FIELDS;
    for (i, v) in [count, bytes, xor, busy].into_iter().enumerate() {
        summary.set(base + i, v)?;
    }
    phase.wait_timeout(STALL_LIMIT)?;
    // Phase 2: every summary is complete now.
    let mut all = vec![0u64; args.workers as usize * SUMMARY_FIELDS];
    summary.read_into(&mut all)?;
    let total: u64 = all.chunks(SUMMARY_FIELDS).map(|c| c[0]).sum();
    let share = if total == 0 {
        0.0
    } else {
        100.0 * count as f64 / total as f64
    };
    log.send_timeout(
        format!(
            "  worker {}: {count} of {total} tasks, {share:.1}% share of the work",
            args.id
        )
        .as_bytes(),
        STALL_LIMIT,
    )?;
    if !stop.wait_timeout(STALL_LIMIT) {
        return Err(Error::Timeout);
    }
    Ok(())
}
