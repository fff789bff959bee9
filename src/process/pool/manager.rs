//! The pool's manager thread: it starts workers, hands them tasks, collects
//! their results, sees them die, and starts their replacements.
//!
//! One thread in the parent does all of it (Python's pool has three): callers
//! put tasks in the inbox and ring the doorbell, workers ring it after each
//! result, and between rings the manager sleeps on it for at most
//! [`TICK`], so that a worker's death is seen within a tick even when nothing
//! rings.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::{Duration, Instant};

use super::batch::Batch;
use super::record::{Args, RESULT_HEADER, result_header};
use super::worker::{Control, WorkerBoot, worker_main};
use crate::error::{Error, Result};
use crate::pipe::{Pipe, PipeEnd};
use crate::process::Start;
use crate::process::child::{Builder, Process};
use crate::process::entry::Entry;
use crate::process::outcome;
use crate::wait::{Deadline, wait_while_eq};

/// The longest the manager sleeps between looks at its workers.
const TICK: Duration = Duration::from_millis(2);
/// How long closed workers get to exit on their own before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// The most result records one look at a worker takes, so that a busy
/// worker does not keep the manager from the others.
const DRAIN_AT_MOST: usize = 1024;
/// How long the manager waits before trying again to start a worker that
/// failed to start.
const RESPAWN_BACKOFF: Duration = Duration::from_millis(50);

/// One unit of work: a chunk of items for one function.
pub(crate) struct Task {
    pub(crate) id: u64,
    pub(crate) entry: Entry,
    pub(crate) args: Args,
    pub(crate) batch: Arc<Batch>,
    /// The batch index of the first item.
    pub(crate) first: u64,
    /// How many times it ran on a worker that died.
    pub(crate) attempts: u32,
    /// How many of its items (from the first) have their results.
    pub(crate) done: u32,
}

impl Task {
    /// Completes every item without a result yet with `err`.
    fn fail(self, err: Error) {
        let left = self.args.count - self.done;
        let mut bytes = Vec::new();
        for _ in 0..left {
            outcome::lost(&mut bytes, &err);
        }
        self.batch
            .complete(self.first + self.done as u64, left, bytes);
    }

    /// The task made of the items still without a result, to run again.
    fn remainder(mut self) -> Task {
        if self.done > 0 {
            // The arguments were encoded by this process: they parse.
            let _ = self.args.drop_front(self.done);
            self.first += self.done as u64;
            self.done = 0;
        }
        self
    }
}

/// How the pool was built.
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) initializer: Option<(Entry, Vec<u8>)>,
    pub(crate) max_tasks: u64,
    pub(crate) capacity: usize,
    pub(crate) max_message: usize,
    pub(crate) retries: u32,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) start: Start,
}

/// What callers hand to the manager.
#[derive(Default)]
pub(crate) struct Inbox {
    pub(crate) pending: VecDeque<Task>,
    pub(crate) next_id: u64,
    pub(crate) closed: bool,
    pub(crate) terminate: bool,
}

/// What the callers and the manager share.
pub(crate) struct Shared {
    pub(crate) inbox: StdMutex<Inbox>,
    pub(crate) control: Control,
    pub(crate) config: Config,
    /// The pids of the running workers, by slot (0: none).
    pub(crate) pids: StdMutex<Vec<u32>>,
}

impl Shared {
    pub(crate) fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Worker {
    process: Process<()>,
    end: PipeEnd,
    /// Kept so that the ring's memory outlives the end.
    _pipe: Pipe,
    /// Tasks sent to it and not yet answered, oldest first.
    sent: VecDeque<Task>,
    /// The task it was last seen running, and since when (for timeouts).
    running: Option<(u64, Instant)>,
    /// The task it was killed for overrunning.
    timed_out: Option<u64>,
}

/// The manager thread's body.
pub(crate) fn run(shared: Arc<Shared>) {
    let mut m = Manager {
        workers: (0..shared.config.workers).map(|_| None).collect(),
        local: VecDeque::new(),
        buf: vec![0; shared.config.max_message],
        next_number: 1,
        respawn_at: None,
        shared,
    };
    m.main_loop();
}

struct Manager {
    shared: Arc<Shared>,
    workers: Vec<Option<Worker>>,
    /// Tasks taken from the inbox, not yet sent.
    local: VecDeque<Task>,
    /// Where results are received.
    buf: Vec<u8>,
    next_number: u64,
    respawn_at: Option<Instant>,
}

impl Manager {
    fn main_loop(&mut self) {
        let mut last_look = Instant::now();
        let shared = Arc::clone(&self.shared);
        loop {
            let (word, waiters) = shared.control.doorbell();
            // Acquire: pairs with the Release bump in `Control::ring`.
            let bell = word.load(Ordering::Acquire);
            let (closed, terminate) = {
                let mut inbox = self.shared.inbox();
                self.local.extend(inbox.pending.drain(..));
                (inbox.closed, inbox.terminate)
            };
            if terminate {
                self.terminate();
                return;
            }
            self.fill_slots();
            let mut progressed = self.dispatch();
            progressed |= self.collect();
            if !progressed || last_look.elapsed() >= TICK {
                self.look_at_workers();
                last_look = Instant::now();
            }
            if closed
                && self.local.is_empty()
                && self.workers.iter().flatten().all(|w| w.sent.is_empty())
            {
                self.stop_workers();
                return;
            }
            if !progressed {
                let _ = wait_while_eq(word, waiters, bell, Deadline::after(TICK));
            }
        }
    }

    /// Starts a worker in every empty slot.
    fn fill_slots(&mut self) {
        if self.respawn_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.respawn_at = None;
        for slot in 0..self.workers.len() {
            if self.workers[slot].is_some() {
                continue;
            }
            match self.start_worker(slot) {
                Ok(w) => {
                    self.set_pid(slot, w.process.pid());
                    self.workers[slot] = Some(w);
                }
                Err(e) => {
                    eprintln!("shmprim pool: cannot start a worker: {e}");
                    self.respawn_at = Some(Instant::now() + RESPAWN_BACKOFF);
                    if self.workers.iter().all(Option::is_none) {
                        // Nobody can run the tasks: fail them rather than
                        // let their callers wait for ever.
                        let msg = e.to_string();
                        for t in self.local.drain(..) {
                            t.fail(Error::invalid_argument(format!(
                                "no worker could start: {msg}"
                            )));
                        }
                    }
                    return;
                }
            }
        }
    }

    fn set_pid(&self, slot: usize, pid: u32) {
        let mut pids = self.shared.pids.lock().unwrap_or_else(|p| p.into_inner());
        pids[slot] = pid;
    }

    fn start_worker(&mut self, slot: usize) -> Result<Worker> {
        let cfg = &self.shared.config;
        let pipe = Pipe::anonymous(cfg.capacity, cfg.max_message, true)?;
        let end = pipe.end_a()?;
        let pipe_fd = pipe
            .segment()
            .expect("an anonymous pipe has a segment")
            .raw_fd();
        let control_fd = self.shared.control.raw_fd();
        self.shared
            .control
            .started(slot)
            .store(0, Ordering::Relaxed);
        let boot = WorkerBoot {
            pipe_fd,
            control_fd,
            slot: slot as u32,
            initializer: cfg.initializer.clone(),
            max_tasks: cfg.max_tasks,
        };
        let number = self.next_number;
        self.next_number += 1;
        let builder = Builder::new()
            .name(format!("PoolWorker-{number}"))
            .daemon(true)
            .inherit(&[pipe_fd, control_fd]);
        let process = match cfg.start {
            Start::Spawn => builder.spawn(worker_main, boot)?,
            // SAFETY: the worker loop takes no lock of the parent's; the task
            // functions are the pool owner's (see `PoolBuilder::start`).
            Start::Fork => unsafe { builder.fork_unchecked(move || worker_main(boot)) }?,
        };
        Ok(Worker {
            process,
            end,
            _pipe: pipe,
            sent: VecDeque::new(),
            running: None,
            timed_out: None,
        })
    }

    /// Sends tasks to workers, keeping each one's queue about as long as its
    /// share of what waits (deep queues keep small tasks flowing; short ones
    /// keep long tasks spread).
    fn dispatch(&mut self) -> bool {
        let live = self.workers.iter().flatten().count();
        if live == 0 || self.local.is_empty() {
            return false;
        }
        let waiting: usize = self.local.len()
            + self
                .workers
                .iter()
                .flatten()
                .map(|w| w.sent.len())
                .sum::<usize>();
        let depth = (waiting / live + 1).clamp(2, 256);
        let mut progressed = false;
        for w in self.workers.iter_mut().flatten() {
            while w.sent.len() < depth {
                let Some(mut task) = self.local.pop_front() else {
                    return progressed;
                };
                let (id, entry) = (task.id, task.entry);
                match w.end.try_send(task.args.record(id, entry)) {
                    Ok(()) => {
                        w.sent.push_back(task);
                        progressed = true;
                    }
                    Err(e @ Error::InvalidArgument { .. }) => {
                        task.fail(e);
                        progressed = true;
                    }
                    // Full, or its worker is gone (seen by `look_at_workers`).
                    Err(_) => {
                        self.local.push_front(task);
                        break;
                    }
                }
            }
        }
        progressed
    }

    /// Takes every result the workers sent.
    fn collect(&mut self) -> bool {
        let mut progressed = false;
        for w in self.workers.iter_mut().flatten() {
            progressed |= drain(w, &mut self.buf);
        }
        progressed
    }

    /// Sees workers that ended and workers that overran the task timeout.
    fn look_at_workers(&mut self) {
        for slot in 0..self.workers.len() {
            let Some(w) = self.workers[slot].as_mut() else {
                continue;
            };
            if let Some(timeout) = self.shared.config.task_timeout {
                // Acquire: pairs with the worker's Release store of the id.
                let running = self.shared.control.started(slot).load(Ordering::Acquire);
                match w.running {
                    Some((id, since)) if id == running => {
                        if since.elapsed() > timeout && w.timed_out.is_none() {
                            w.timed_out = Some(id);
                            let _ = w.process.kill();
                        }
                    }
                    _ => w.running = (running != 0).then(|| (running, Instant::now())),
                }
            }
            if let Some(exitcode) = w.process.exitcode() {
                let w = self.workers[slot].take().expect("looked at just above");
                self.set_pid(slot, 0);
                self.bury(slot, w, exitcode);
            }
        }
    }

    /// Settles the tasks of a worker that ended: the one it was running fails
    /// (or runs again when retries allow); the ones queued behind it go back
    /// to be sent to other workers.
    fn bury(&mut self, slot: usize, mut w: Worker, exitcode: i32) {
        drain(&mut w, &mut self.buf);
        // Acquire: pairs with the worker's Release store of the id it ran.
        let running = self.shared.control.started(slot).load(Ordering::Acquire);
        let pid = w.process.pid();
        let mut back = Vec::new();
        for mut task in w.sent.drain(..) {
            if task.id != running {
                back.push(task.remainder());
            } else if w.timed_out == Some(task.id) {
                task.fail(super::timed_out());
            } else if task.attempts < self.shared.config.retries {
                task.attempts += 1;
                back.push(task.remainder());
            } else {
                task.fail(Error::WorkerDied { pid, exitcode });
            }
        }
        for task in back.into_iter().rev() {
            self.local.push_front(task);
        }
        self.shared
            .control
            .started(slot)
            .store(0, Ordering::Relaxed);
    }

    /// Closes every worker's ring (each exits when it finds it closed) and
    /// reaps them; those that do not exit in time are killed.
    fn stop_workers(&mut self) {
        let workers: Vec<Worker> = self.workers.iter_mut().filter_map(Option::take).collect();
        let mut processes = Vec::new();
        for w in workers {
            let Worker { process, end, .. } = w;
            end.close();
            processes.push(process);
        }
        let until = Instant::now() + STOP_GRACE;
        for mut p in processes {
            let left = until.saturating_duration_since(Instant::now());
            if matches!(p.join_timeout(left), Ok(None)) {
                let _ = p.kill();
            }
        }
        let mut pids = self.shared.pids.lock().unwrap_or_else(|p| p.into_inner());
        pids.iter_mut().for_each(|p| *p = 0);
    }

    /// Kills every worker and fails every task not finished.
    fn terminate(&mut self) {
        for w in self.workers.iter_mut().flatten() {
            let _ = w.process.kill();
        }
        for slot in 0..self.workers.len() {
            if let Some(mut w) = self.workers[slot].take() {
                drain(&mut w, &mut self.buf);
                for task in w.sent.drain(..) {
                    task.fail(super::closed());
                }
                // Dropping the daemon process reaps it (it was killed above).
            }
        }
        for task in self.local.drain(..) {
            task.fail(super::closed());
        }
        let rest: Vec<Task> = self.shared.inbox().pending.drain(..).collect();
        for task in rest {
            task.fail(super::closed());
        }
        let mut pids = self.shared.pids.lock().unwrap_or_else(|p| p.into_inner());
        pids.iter_mut().for_each(|p| *p = 0);
    }
}

/// Completes the items whose results `w` sent; whether there were any.
fn drain(w: &mut Worker, buf: &mut [u8]) -> bool {
    // Results of consecutive items of one batch (a worker's share of a map)
    // are handed over as one run: one allocation and one lock per burst.
    let mut run: Option<(Arc<Batch>, u64, u32, Vec<u8>)> = None;
    let mut records = 0;
    while records < DRAIN_AT_MOST {
        let Ok(len) = w.end.try_recv_into(buf) else {
            break;
        };
        records += 1;
        let record = &buf[..len];
        let Ok(head) = result_header(record) else {
            eprintln!(
                "shmprim pool: a malformed result from worker {}",
                w.process.pid()
            );
            continue;
        };
        let Some(pos) = w.sent.iter().position(|t| t.id == head.id) else {
            continue;
        };
        let task = &mut w.sent[pos];
        if head.first != task.done || head.count > task.args.count - task.done {
            eprintln!(
                "shmprim pool: results out of order from worker {}",
                w.process.pid()
            );
            continue;
        }
        let start = task.first + head.first as u64;
        let outcomes = &record[RESULT_HEADER..];
        match &mut run {
            Some((batch, first, count, bytes))
                if Arc::ptr_eq(batch, &task.batch) && *first + *count as u64 == start =>
            {
                *count += head.count;
                bytes.extend_from_slice(outcomes);
            }
            _ => {
                if let Some((batch, first, count, bytes)) = run.take() {
                    batch.complete(first, count, bytes);
                }
                run = Some((
                    Arc::clone(&task.batch),
                    start,
                    head.count,
                    outcomes.to_vec(),
                ));
            }
        }
        task.done += head.count;
        if task.done == task.args.count {
            w.sent.remove(pos);
        }
    }
    if let Some((batch, first, count, bytes)) = run {
        batch.complete(first, count, bytes);
    }
    records > 0
}
