//! A pool of worker processes: Python's `multiprocessing.Pool` and
//! `concurrent.futures.ProcessPoolExecutor`, which loses only the task a dead
//! worker was running.
//!
//! Workers are spawned (the program calls [`process::init`](crate::process::init)
//! first in `main`) and run functions `fn(A) -> R` on [`Payload`] arguments.
//! Each worker has its own pair of shared-memory rings to the parent; a
//! manager thread in the parent hands out tasks, collects results and runs
//! callbacks.
//!
//! **When a worker dies** (SIGKILL, `abort`, `exit`), the manager sees it
//! within a few milliseconds. The task it was running completes with
//! [`Error::WorkerDied`] (its pid and exit code), or runs again on another
//! worker when the pool was built with [`retries`](PoolBuilder::retries); the
//! tasks queued behind it go to other workers, never having started; a
//! replacement starts. Every other task completes exactly once and nothing
//! waits for ever. Python's `Pool` hangs here, and `ProcessPoolExecutor` fails
//! every pending task. A task that panics completes with
//! [`Error::Panicked`] and its worker goes on serving.
//!
//! ```no_run
//! use shmprim::Pool;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> shmprim::Result<()> {
//!     shmprim::process::init();
//!     let pool = Pool::new(4)?;
//!     assert_eq!(pool.map(square, 0..10)?, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
//!     Ok(())
//! }
//! ```

mod batch;
mod manager;
mod raw;
mod record;
mod worker;

use std::marker::PhantomData;
use std::sync::{Arc, Mutex as StdMutex};
use std::thread::JoinHandle;
use std::time::Duration;

use batch::{Batch, Item, OnItem, deadline_after};
use manager::{Config, Inbox, Shared, Task};
pub use raw::{RawStatus, RawTaskFn};
use record::{Args, TASK_HEADER};
use worker::Control;

use super::Start;
use super::entry::Entry;
use super::payload::{Payload, from_bytes, to_bytes};
use crate::error::{Error, ObjectName, Result};

/// What a pool's own errors name: a pool has no segment name of its own.
fn pool_name() -> &'static ObjectName {
    static NAME: std::sync::OnceLock<ObjectName> = std::sync::OnceLock::new();
    NAME.get_or_init(|| ObjectName::described("the pool"))
}

/// A task or a wait of the pool that reached its deadline.
pub(crate) fn timed_out() -> Error {
    Error::timeout(pool_name())
}

/// A task the pool will never run: it was closed or terminated.
pub(crate) fn closed() -> Error {
    Error::closed(pool_name())
}

/// Tasks handed to the manager at a time while a call encodes its items.
const SUBMIT_SLICE: usize = 256;
/// Bytes each ring of a worker holds, by default.
const DEFAULT_CAPACITY: usize = 1 << 20;
/// The largest task or result record, by default.
const DEFAULT_MAX_MESSAGE: usize = 256 << 10;

/// How to build a [`Pool`] (Python's `Pool(processes, initializer, initargs,
/// maxtasksperchild)` and more).
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    workers: usize,
    initializer: Option<(Entry, Vec<u8>)>,
    max_tasks: u64,
    capacity: usize,
    max_message: usize,
    retries: u32,
    task_timeout: Option<Duration>,
    start: Start,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder {
            workers: super::cpu_count(),
            initializer: None,
            max_tasks: 0,
            capacity: DEFAULT_CAPACITY,
            max_message: DEFAULT_MAX_MESSAGE,
            retries: 0,
            task_timeout: None,
            start: Start::Spawn,
        }
    }
}

impl PoolBuilder {
    /// Python's defaults: one worker per CPU, no initializer, workers that
    /// live as long as the pool.
    pub fn new() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// How many workers (Python's `processes`).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// A function each worker runs on `arg` when it starts (Python's
    /// `initializer` and `initargs`).
    pub fn initializer<A: Payload>(mut self, f: fn(A), arg: A) -> Result<Self> {
        self.initializer = Some((Entry::of(f)?, to_bytes(&arg)));
        Ok(self)
    }

    /// A worker exits after this many tasks (chunks) and a fresh one replaces
    /// it (Python's `maxtasksperchild`); 0, the default, means never.
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks = n;
        self
    }

    /// Bytes each worker's task ring and result ring hold.
    pub fn queue_capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// The largest encoded task (a chunk's arguments) or result, in bytes.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// How many times a task whose worker died runs again before it fails
    /// with [`Error::WorkerDied`] (default 0).
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// A task (chunk) that runs longer than this has its worker killed and
    /// replaced, and completes with [`Error::Timeout`].
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// How workers start (Python's start methods). [`Start::Spawn`], the
    /// default, runs functions `fn(A) -> R` found in a fresh copy of the
    /// program. [`Start::Fork`] copies the parent: the pool must be built
    /// while the process has one thread, and the manager thread later forks
    /// replacements from a process that then has several, so a task function
    /// must not take a lock another thread of the parent may hold (Python's
    /// fork pools share that caveat). Fork is what C programs use
    /// ([`map_raw`](Pool::map_raw)).
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// Starts the pool: its manager thread, which starts the workers.
    pub fn build(self) -> Result<Pool> {
        match self.start {
            Start::Spawn => super::check_initialised()?,
            Start::Fork => super::child::refuse_if_threaded()?,
        }
        if self.workers == 0 || self.workers > 4096 {
            return Err(Error::invalid_argument(format!(
                "a pool needs 1 to 4096 workers, not {}",
                self.workers
            )));
        }
        if self.max_message == 0 || self.capacity < self.max_message {
            return Err(Error::invalid_argument(format!(
                "queue_capacity ({}) must be at least max_message ({}), which must not be 0",
                self.capacity, self.max_message
            )));
        }
        let control = Control::create(self.workers)?;
        let workers = self.workers;
        let max_message = self.max_message;
        let shared = Arc::new(Shared {
            inbox: StdMutex::new(Inbox::default()),
            control,
            config: Config {
                workers: self.workers,
                initializer: self.initializer,
                max_tasks: self.max_tasks,
                capacity: self.capacity,
                max_message: self.max_message,
                retries: self.retries,
                task_timeout: self.task_timeout,
                start: self.start,
            },
            pids: StdMutex::new(vec![0; workers]),
        });
        let for_thread = Arc::clone(&shared);
        let manager = std::thread::Builder::new()
            .name("shmprim-pool".into())
            .spawn(move || manager::run(for_thread))
            .map_err(|e| Error::Io {
                name: "<pool>".into(),
                op: "thread spawn",
                source: e,
            })?;
        Ok(Pool {
            shared,
            manager: StdMutex::new(Some(manager)),
            workers,
            max_message,
            start: self.start,
        })
    }
}

/// A pool of worker processes (Python's `multiprocessing.Pool`). Dropping it
/// terminates and reaps its workers.
pub struct Pool {
    shared: Arc<Shared>,
    manager: StdMutex<Option<JoinHandle<()>>>,
    workers: usize,
    max_message: usize,
    start: Start,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers)
            .field("pids", &self.worker_pids())
            .finish()
    }
}

/// Python's default `chunksize` for `map`: the items spread over four
/// chunks per worker.
pub fn default_chunksize(items: usize, workers: usize) -> usize {
    let per = workers.max(1) * 4;
    items.div_ceil(per).max(1)
}

impl Pool {
    /// A pool of `workers` processes with Python's other defaults.
    pub fn new(workers: usize) -> Result<Pool> {
        PoolBuilder::new().workers(workers).build()
    }

    /// A builder for a pool with more settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// How many workers the pool keeps running.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The pids of the workers running now (a dead worker's replacement has a
    /// new one).
    pub fn worker_pids(&self) -> Vec<u32> {
        let pids = self.shared.pids.lock().unwrap_or_else(|p| p.into_inner());
        pids.iter().copied().filter(|&p| p != 0).collect()
    }

    /// Encodes `items` into tasks of at most `chunksize` items, each fitting
    /// one ring message, for `batch`, numbering them from `first`, and queues
    /// them; how many items there were.
    fn submit<A: Payload>(
        &self,
        entry: Entry,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
        batch: &Arc<Batch>,
        first: u64,
    ) -> Result<u64> {
        let chunksize = chunksize.clamp(1, u32::MAX as usize) as u32;
        let mut tasks = Vec::new();
        let mut args = Args::default();
        let mut index = first;
        // Tasks go to the manager in slices, so that workers start on the
        // first ones while the rest are encoded.
        let send = |tasks: &mut Vec<Task>| -> Result<()> {
            let mut inbox = self.shared.inbox();
            if inbox.closed || inbox.terminate {
                return Err(closed());
            }
            for mut t in tasks.drain(..) {
                inbox.next_id += 1;
                t.id = inbox.next_id;
                inbox.pending.push_back(t);
            }
            drop(inbox);
            self.shared.control.ring();
            Ok(())
        };
        let task = |args: Args, index: &mut u64| {
            let task = Task {
                id: 0,
                entry,
                first: *index,
                batch: Arc::clone(batch),
                attempts: 0,
                done: 0,
                args,
            };
            *index += task.args.count as u64;
            task
        };
        for item in items {
            let at = args.bytes.len();
            args.push(&item)?;
            if args.bytes.len() > self.max_message {
                if args.count == 1 {
                    return Err(Error::invalid_argument(format!(
                        "an argument of {} bytes does not fit the pool's max_message of {} \
                         (PoolBuilder::max_message)",
                        args.bytes.len() - TASK_HEADER - 4,
                        self.max_message
                    )));
                }
                let next = args.pop_last(at);
                tasks.push(task(std::mem::replace(&mut args, next), &mut index));
            }
            if args.count == chunksize {
                tasks.push(task(std::mem::take(&mut args), &mut index));
            }
            if tasks.len() >= SUBMIT_SLICE {
                send(&mut tasks)?;
            }
        }
        if args.count > 0 {
            tasks.push(task(args, &mut index));
        }
        send(&mut tasks)?;
        Ok(index - first)
    }

    /// Runs `f(arg)` in a worker and waits for its result (Python's `apply`).
    pub fn apply<A: Payload, R: Payload>(&self, f: fn(A) -> R, arg: A) -> Result<R> {
        self.apply_async(f, arg)?.get()
    }

    /// Queues `f(arg)` and returns a handle to its result at once (Python's
    /// `apply_async`).
    pub fn apply_async<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<AsyncResult<R>> {
        self.apply_async_inner(Entry::of(f)?, arg, None)
    }

    /// [`apply_async`](Self::apply_async) with Python's `callback` and
    /// `error_callback`: the manager thread calls one of them in this process
    /// as soon as the task completes.
    pub fn apply_async_with<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        arg: A,
        callback: impl FnOnce(R) + Send + 'static,
        error_callback: impl FnOnce(Error) + Send + 'static,
    ) -> Result<AsyncResult<R>> {
        let mut callbacks = Some((callback, error_callback));
        let on_item: OnItem = Box::new(move |item: Item<'_>| {
            let Some((ok, err)) = callbacks.take() else {
                return;
            };
            match item.and_then(from_bytes::<R>) {
                Ok(v) => ok(v),
                Err(e) => err(e),
            }
        });
        self.apply_async_inner(Entry::of(f)?, arg, Some(on_item))
    }

    fn apply_async_inner<A: Payload, R: Payload>(
        &self,
        entry: Entry,
        arg: A,
        on_item: Option<OnItem>,
    ) -> Result<AsyncResult<R>> {
        let batch = Arc::new(Batch::new(on_item, false));
        self.submit(entry, [arg], 1, &batch, 0)?;
        Ok(AsyncResult {
            batch,
            _r: PhantomData,
        })
    }

    /// Runs `f` on every item and returns the results in order, or the first
    /// item's error (Python's `map`, with its default chunksize).
    pub fn map<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>> {
        self.map_async(f, items, None)?.get()
    }

    /// [`map`](Self::map) with items sent `chunksize` to a task.
    pub fn map_chunked<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>> {
        self.map_async(f, items, Some(chunksize))?.get()
    }

    /// Queues `f` over every item and returns a handle at once (Python's
    /// `map_async`); `None` picks Python's default chunksize.
    pub fn map_async<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<R>> {
        self.map_entry(Entry::of(f)?, items, chunksize)
    }

    fn map_entry<A: Payload, R: Payload>(
        &self,
        entry: Entry,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<R>> {
        let items = items.into_iter();
        let batch = Arc::new(Batch::new(None, false));
        // Python's default chunksize needs the length; an iterator that does
        // not know it exactly is collected first.
        let len = match (chunksize, items.size_hint()) {
            (Some(c), _) => self.submit(entry, items, c, &batch, 0)?,
            (None, (lo, Some(hi))) if lo == hi => {
                self.submit(entry, items, default_chunksize(lo, self.workers), &batch, 0)?
            }
            (None, _) => {
                let all: Vec<A> = items.collect();
                let c = default_chunksize(all.len(), self.workers);
                self.submit(entry, all, c, &batch, 0)?
            }
        };
        Ok(MapResult {
            batch,
            len,
            _r: PhantomData,
        })
    }

    /// Python's `starmap`: `f(a, b)` for every pair.
    pub fn starmap<A: Payload, B: Payload, R: Payload>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>> {
        self.map_entry(Entry::of2(f)?, items, None)?.get()
    }

    /// Results of `f` over `items` in order, computed as the iterator is read
    /// (Python's `imap`): at most a window of chunks is in the pool at a time,
    /// so an endless input runs in bounded memory.
    pub fn imap<'p, A: Payload + 'p, R: Payload>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
        chunksize: usize,
    ) -> Result<Imap<'p, A, R>> {
        self.imap_inner(f, items, chunksize, true)
    }

    /// [`imap`](Self::imap) that yields results as they complete (Python's
    /// `imap_unordered`).
    pub fn imap_unordered<'p, A: Payload + 'p, R: Payload>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
        chunksize: usize,
    ) -> Result<Imap<'p, A, R>> {
        self.imap_inner(f, items, chunksize, false)
    }

    fn imap_inner<'p, A: Payload + 'p, R: Payload>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
        chunksize: usize,
        ordered: bool,
    ) -> Result<Imap<'p, A, R>> {
        let chunksize = chunksize.max(1);
        Ok(Imap {
            pool: self,
            entry: Entry::of(f)?,
            input: Box::new(items.into_iter()),
            batch: Arc::new(Batch::new(None, !ordered)),
            chunksize,
            window: (self.workers as u64 * 4 + 8) * chunksize as u64,
            submitted: 0,
            yielded: 0,
            exhausted: false,
            refused: None,
            ordered,
            _r: PhantomData,
        })
    }

    /// No more tasks may be queued; the workers exit once the queued ones are
    /// done (Python's `close`).
    pub fn close(&self) {
        self.shared.inbox().closed = true;
        self.shared.control.ring();
    }

    /// Kills the workers at once; tasks not finished complete with
    /// [`Error::Closed`] (Python's `terminate`).
    pub fn terminate(&self) {
        self.shared.inbox().terminate = true;
        self.shared.control.ring();
    }

    /// Waits for the workers to exit, after [`close`](Self::close) or
    /// [`terminate`](Self::terminate) (Python's `join`, which also refuses to
    /// wait on a pool still open).
    pub fn join(&self) -> Result<()> {
        {
            let inbox = self.shared.inbox();
            if !inbox.closed && !inbox.terminate {
                return Err(Error::invalid_argument(
                    "join needs close() or terminate() first (the workers would never exit)",
                ));
            }
        }
        let handle = self
            .manager
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            h.join().map_err(|_| Error::Panicked {
                message: "the pool's manager thread panicked".into(),
            })?;
        }
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
        let _ = self.join();
    }
}

/// The pending result of [`Pool::apply_async`] (Python's `AsyncResult`).
pub struct AsyncResult<R> {
    batch: Arc<Batch>,
    _r: PhantomData<fn() -> R>,
}

impl<R: Payload> AsyncResult<R> {
    /// Waits for the result and returns it (it can be asked for again).
    pub fn get(&self) -> Result<R> {
        self.get_inner(None)
    }

    /// [`get`](Self::get), or [`Error::Timeout`] if it is not ready in time.
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        self.get_inner(deadline_after(Some(timeout)))
    }

    fn get_inner(&self, deadline: Option<std::time::Instant>) -> Result<R> {
        self.batch
            .peek(0, deadline, |item| item.and_then(from_bytes::<R>))
            .unwrap_or(Err(timed_out()))
    }

    /// Whether the task completed.
    pub fn ready(&self) -> bool {
        self.batch.completed() >= 1
    }

    /// Waits until the task completed.
    pub fn wait(&self) {
        self.batch.wait_completed(1, None);
    }

    /// Waits up to `timeout` for the task to complete (`Timeout` if it did
    /// not).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        timed_out_unless(self.batch.wait_completed(1, deadline_after(Some(timeout))))
    }

    /// Whether it completed without an error; `None` while not ready.
    pub fn successful(&self) -> Option<bool> {
        if !self.ready() {
            return None;
        }
        self.batch
            .peek(0, None, |item| Ok(item.is_ok()))
            .and_then(Result::ok)
    }
}

/// `Ok` when a wait ended with its condition met, else `Timeout`.
fn timed_out_unless(met: bool) -> Result<()> {
    if met { Ok(()) } else { Err(timed_out()) }
}

/// The pending results of [`Pool::map_async`].
pub struct MapResult<R> {
    batch: Arc<Batch>,
    len: u64,
    _r: PhantomData<fn() -> R>,
}

impl<R: Payload> MapResult<R> {
    /// Whether every item completed.
    pub fn ready(&self) -> bool {
        self.batch.completed() >= self.len
    }

    /// Waits up to `timeout` for every item to complete (`Timeout` if they
    /// did not).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        timed_out_unless(
            self.batch
                .wait_completed(self.len, deadline_after(Some(timeout))),
        )
    }

    /// Waits for every item; the results in order, or the first error.
    pub fn get(self) -> Result<Vec<R>> {
        self.each().into_iter().collect()
    }

    /// Waits for every item; each item's own result, in order (a dead
    /// worker's chunk shows as [`Error::WorkerDied`] on its items only).
    pub fn each(self) -> Vec<Result<R>> {
        self.batch
            .take_all(self.len, |item| item.and_then(from_bytes::<R>))
    }
}

/// The results of [`Pool::imap`] and [`Pool::imap_unordered`], computed as
/// they are read. Each item is `Ok(value)` or that item's error.
pub struct Imap<'p, A, R> {
    pool: &'p Pool,
    entry: Entry,
    input: Box<dyn Iterator<Item = A> + 'p>,
    batch: Arc<Batch>,
    chunksize: usize,
    /// Items in the pool or done and not yet yielded, at most.
    window: u64,
    submitted: u64,
    yielded: u64,
    exhausted: bool,
    /// Why the pool took no more items, yielded after the last result.
    refused: Option<Error>,
    ordered: bool,
    _r: PhantomData<fn() -> R>,
}

impl<A: Payload, R: Payload> Imap<'_, A, R> {
    fn refill(&mut self) -> Result<()> {
        while !self.exhausted && self.submitted - self.yielded < self.window {
            let chunk: Vec<A> = self.input.by_ref().take(self.chunksize).collect();
            if chunk.len() < self.chunksize {
                self.exhausted = true;
            }
            if chunk.is_empty() {
                break;
            }
            self.submitted += self.pool.submit(
                self.entry,
                chunk,
                self.chunksize,
                &self.batch,
                self.submitted,
            )?;
        }
        Ok(())
    }
}

impl<A: Payload, R: Payload> Iterator for Imap<'_, A, R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        if let Err(e) = self.refill() {
            // The pool refused more items (closed): the input ends here, and
            // the refusal is the last item, after those already in the pool.
            self.exhausted = true;
            self.refused = Some(e);
        }
        if self.yielded == self.submitted {
            return self.refused.take().map(Err);
        }
        let decode = |item: Item<'_>| item.and_then(from_bytes::<R>);
        let r = if self.ordered {
            self.batch.take(self.yielded, None, decode)
        } else {
            self.batch.take_any(None, decode)
        };
        self.yielded += 1;
        Some(r.expect("no deadline"))
    }
}
