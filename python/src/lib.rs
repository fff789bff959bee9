//! `shmprim._native`: the shmprim objects a Python process holds. The
//! `shmprim` package (`python/shmprim/`) gives them multiprocessing's names
//! and signatures; this module keeps to handles, bytes and numbers.
//!
//! Every call that can wait releases the GIL, waits in slices of at most
//! [`SLICE`] inside [`shmprim::wait::interruptible`], and between slices (or
//! as soon as a signal handler interrupted one) lets Python run its signal
//! handlers: Ctrl-C raises `KeyboardInterrupt` out of a blocked `get`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pyo3::exceptions::{
    PyEOFError, PyFileExistsError, PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use shmprim::mutex::ByteLock;
use shmprim::pipe::{End, PipeEnd};
use shmprim::queue::ObjectQueue;
use shmprim::semaphore::UNBOUNDED;
use shmprim::{
    Array, Barrier, Condvar, Deadline, Error, Event, LockStatus, MutexOptions, Options, Pipe,
    RawMutex, RawReentrantMutex, Role, Semaphore,
};

/// The longest a wait runs without giving Python's signal handlers a turn.
const SLICE: Duration = Duration::from_millis(100);

pyo3::create_exception!(
    _native,
    QueueClosed,
    PyValueError,
    "The queue was shut down, or every process that put on it is gone and it is drained."
);

/// Python's exception for a shmprim error that is not a timeout.
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let from_module = |module: &str, class: &str, msg: String| -> PyErr {
        match py.import(module).and_then(|m| m.getattr(class)) {
            Ok(cls) => PyErr::from_value(
                cls.call1((msg,))
                    .unwrap_or_else(|e| e.into_value(py).into_bound(py).into_any()),
            ),
            Err(err) => err,
        }
    };
    let msg = e.to_string();
    match e {
        Error::Empty { .. } => from_module("queue", "Empty", msg),
        Error::Full { .. } => from_module("queue", "Full", msg),
        Error::BrokenBarrier { .. } => from_module("threading", "BrokenBarrierError", msg),
        Error::Closed { .. } => QueueClosed::new_err(msg),
        Error::NotFound { .. } => PyFileNotFoundError::new_err(msg),
        Error::AlreadyExists { .. } => PyFileExistsError::new_err(msg),
        Error::InvalidArgument { .. } | Error::InvalidName { .. } | Error::Overflow { .. } => {
            PyValueError::new_err(msg)
        }
        Error::NotOwner { .. } => PyRuntimeError::new_err(msg),
        _ => PyOSError::new_err(msg),
    }
}

/// The wait a Python call asks for: `block=False` is a single look, a
/// `timeout` of `None` waits for ever, a negative one counts as 0.
fn patience(block: bool, timeout: Option<f64>) -> Option<Duration> {
    if !block {
        return Some(Duration::ZERO);
    }
    timeout.map(|t| Duration::try_from_secs_f64(t.max(0.0)).unwrap_or(Duration::MAX))
}

/// Runs `f` until it answers something other than a timeout, or `timeout`
/// passes (`Ok(None)`), with the GIL released, in slices between which
/// Python's signal handlers run (an exception they raise ends the wait).
fn wait_loop<T: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    f: impl Fn(Deadline) -> shmprim::Result<T> + Sync,
) -> PyResult<Option<T>> {
    let end = timeout.map(|t| Instant::now().checked_add(t));
    loop {
        let now = Instant::now();
        let slice = match end {
            Some(Some(end)) => end.saturating_duration_since(now).min(SLICE),
            _ => SLICE,
        };
        let r = py.allow_threads(|| shmprim::wait::interruptible(|| f(Deadline::after(slice))));
        match r {
            Ok(v) => return Ok(Some(v)),
            Err(Error::Timeout { .. }) | Err(Error::Interrupted { .. }) => {
                py.check_signals()?;
                if let Some(Some(end)) = end {
                    if Instant::now() >= end {
                        return Ok(None);
                    }
                }
            }
            Err(e) => return Err(to_py(py, e)),
        }
    }
}

fn options(unlink_on_drop: bool) -> Options {
    Options::default().unlink_on_drop(unlink_on_drop)
}

fn role_of(role: &str) -> PyResult<Role> {
    match role {
        "both" => Ok(Role::Both),
        "send" => Ok(Role::Send),
        "receive" => Ok(Role::Receive),
        other => Err(PyValueError::new_err(format!(
            "role {other:?} is not 'both', 'send' or 'receive'"
        ))),
    }
}

// ------------------------------------------------------------------ queue

/// A queue of byte messages of any length (an `ObjectQueue`: short ones in a
/// slot, long ones out of line); `put` and `get` pickle objects into them.
#[pyclass(module = "shmprim._native", frozen)]
struct Queue {
    q: ObjectQueue<Vec<u8>>,
    /// `pickle.dumps`, `pickle.loads`, `queue.Empty` and `queue.Full`,
    /// looked up once.
    dumps: PyObject,
    loads: PyObject,
    empty: PyObject,
    full: PyObject,
    /// What `queue.Empty` and `queue.Full` name.
    name: shmprim::ObjectName,
}

#[pymethods]
impl Queue {
    #[new]
    #[pyo3(signature = (name, maxsize, max_message, create, role="both", joinable=false, unlink_on_drop=false))]
    // Python's keyword arguments, one per option.
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &str,
        maxsize: usize,
        max_message: usize,
        create: bool,
        role: &str,
        joinable: bool,
        unlink_on_drop: bool,
    ) -> PyResult<Queue> {
        let opts = options(unlink_on_drop)
            .role(role_of(role)?)
            .joinable(joinable);
        let q = if create {
            ObjectQueue::create_with_options(name, maxsize, max_message, &opts)
        } else {
            ObjectQueue::open_with_options(name, &opts)
        };
        let pickle = py.import("pickle")?;
        let queue = py.import("queue")?;
        Ok(Queue {
            q: q.map_err(|e| to_py(py, e))?,
            dumps: pickle.getattr("dumps")?.unbind(),
            loads: pickle.getattr("loads")?.unbind(),
            empty: queue.getattr("Empty")?.unbind(),
            full: queue.getattr("Full")?.unbind(),
            name: shmprim::ObjectName::new(name),
        })
    }

    /// Python's `Queue.put`: pickles `obj` (protocol 5) and puts it;
    /// `queue.Full` when there is no room within the wait.
    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let data = self.dumps.call1(py, (obj, 5))?;
        let data = data.downcast_bound::<PyBytes>(py)?;
        if self.put_bytes(py, data.as_bytes(), block, timeout)? {
            Ok(())
        } else {
            let msg = Error::full(&self.name).to_string();
            Err(PyErr::from_value(self.full.bind(py).call1((msg,))?))
        }
    }

    /// Python's `Queue.get`: the next object; `queue.Empty` when none comes
    /// within the wait.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<PyObject> {
        // A message that is there is unpickled straight from the copy of its
        // slot: no bytes object in between.
        match self
            .q
            .try_get_with(|bytes| self.loads.call1(py, (PyBytes::new(py, bytes),)))
        {
            Ok(obj) => return obj,
            Err(Error::Empty { .. }) => {}
            Err(e) => return Err(to_py(py, e)),
        }
        match self.get_bytes(py, block, timeout)? {
            Some(data) => self.loads.call1(py, (data,)),
            None => {
                let msg = Error::empty(&self.name).to_string();
                Err(PyErr::from_value(self.empty.bind(py).call1((msg,))?))
            }
        }
    }

    /// Puts `data`; `False` when it could not within the wait asked for.
    #[pyo3(signature = (data, block=true, timeout=None))]
    fn put_bytes(
        &self,
        py: Python<'_>,
        data: &[u8],
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        // A put with room takes no clock read and keeps the GIL.
        match self.q.try_put_message(data) {
            Ok(()) => return Ok(true),
            Err(Error::Full { .. }) if patience(block, timeout) == Some(Duration::ZERO) => {
                return Ok(false);
            }
            Err(Error::Full { .. }) => {}
            Err(e) => return Err(to_py(py, e)),
        }
        let r = wait_loop(py, patience(block, timeout), |d| {
            self.q.put_message(data, d)
        })?;
        Ok(r.is_some())
    }

    /// The next message; `None` when none came within the wait asked for.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get_bytes<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        // A get that finds a message takes no clock read and keeps the GIL.
        match self.q.try_get_message() {
            Ok(v) => return Ok(Some(PyBytes::new(py, &v))),
            Err(Error::Empty { .. }) if patience(block, timeout) == Some(Duration::ZERO) => {
                return Ok(None);
            }
            Err(Error::Empty { .. }) => {}
            Err(e) => return Err(to_py(py, e)),
        }
        let r = wait_loop(py, patience(block, timeout), |d| self.q.get_message(d))?;
        Ok(r.map(|v| PyBytes::new(py, &v)))
    }

    fn qsize(&self) -> usize {
        self.q.len()
    }

    fn capacity(&self) -> usize {
        self.q.byte_queue().capacity()
    }

    fn close(&self) {
        self.q.close();
    }

    #[pyo3(signature = (immediate=false))]
    fn shutdown(&self, immediate: bool) {
        self.q.shutdown(immediate);
    }

    fn is_shutdown(&self) -> bool {
        self.q.is_shutdown()
    }

    fn task_done(&self, py: Python<'_>) -> PyResult<()> {
        self.q.task_done().map_err(|e| to_py(py, e))
    }

    /// Waits until every item put is done; `False` at the timeout.
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let r = wait_loop(py, patience(true, timeout), |d| {
            self.q.byte_queue().join_deadline(d)
        })?;
        Ok(r.is_some())
    }

    fn unfinished_tasks(&self) -> usize {
        self.q.byte_queue().unfinished_tasks()
    }

    /// This handle's participant slot and generation in the segment.
    fn participant(&self) -> (u32, u32) {
        let id = self.q.byte_queue().segment().participant_id();
        (id.slot, id.generation)
    }

    #[staticmethod]
    fn unlink(py: Python<'_>, name: &str) -> PyResult<()> {
        shmprim::ByteQueue::unlink(name).map_err(|e| to_py(py, e))
    }
}

// ------------------------------------------------------------------ locks

enum AnyLock {
    Plain(ByteLock<RawMutex>),
    Reentrant(ByteLock<RawReentrantMutex>),
}

/// A robust lock: `Lock` (not reentrant) or `RLock`.
#[pyclass(module = "shmprim._native", frozen)]
struct Lock {
    lock: AnyLock,
}

impl Lock {
    fn lock_once(&self, d: Deadline) -> shmprim::Result<LockStatus> {
        match &self.lock {
            AnyLock::Plain(l) => l.lock_until(d),
            AnyLock::Reentrant(l) => l.lock_until(d),
        }
    }

    fn unlock_once(&self) -> shmprim::Result<()> {
        match &self.lock {
            // SAFETY: the lock guards no data that Python could still be
            // using through it.
            AnyLock::Plain(l) => unsafe { l.unlock() },
            // SAFETY: as above.
            AnyLock::Reentrant(l) => unsafe { l.unlock() },
        }
    }
}

#[pymethods]
impl Lock {
    #[new]
    #[pyo3(signature = (name, create, recursive, unlink_on_drop=false))]
    fn new(
        py: Python<'_>,
        name: &str,
        create: bool,
        recursive: bool,
        unlink_on_drop: bool,
    ) -> PyResult<Lock> {
        let opts = options(unlink_on_drop);
        let mopts = MutexOptions::default();
        let lock = if recursive {
            if create {
                ByteLock::create(Some(name), 0, 1, &mopts, &opts)
            } else {
                ByteLock::open(name)
            }
            .map(AnyLock::Reentrant)
        } else {
            if create {
                ByteLock::create(Some(name), 0, 1, &mopts, &opts)
            } else {
                ByteLock::open(name)
            }
            .map(AnyLock::Plain)
        };
        Ok(Lock {
            lock: lock.map_err(|e| to_py(py, e))?,
        })
    }

    /// Python's `acquire(block, timeout)`: whether it was acquired. A lock
    /// whose holder died is acquired and marked consistent (Python has no
    /// repair step), with a `shmprim.OwnerDiedWarning`. A second acquire of
    /// a `Lock` by its holder answers `False` after the wait asked for, or
    /// `RuntimeError` for a wait without end (Python's would deadlock).
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        // A free lock is taken with the GIL held: no clock read, no release.
        let first = match &self.lock {
            AnyLock::Plain(l) => l.raw().try_lock(),
            AnyLock::Reentrant(l) => l.raw().try_lock(),
        };
        let wait = patience(block, timeout);
        let status = match first {
            Ok(Some(LockStatus::Acquired)) => return Ok(true),
            Ok(Some(status)) => Some(status),
            // pthread answers a holder's relock of an error-checking mutex
            // with EDEADLK, or (trylock) with busy.
            Ok(None) | Err(Error::InvalidArgument { .. })
                if matches!(self.lock, AnyLock::Plain(_)) && self.is_owned() =>
            {
                return match wait {
                    None => Err(PyRuntimeError::new_err(
                        "this thread already holds the lock (a deadlock)",
                    )),
                    Some(t) => {
                        wait_loop(py, Some(t), |d| {
                            std::thread::sleep(d.remaining().unwrap_or_default());
                            Err::<(), _>(Error::timeout(&shmprim::ObjectName::unknown()))
                        })?;
                        Ok(false)
                    }
                };
            }
            Ok(None) if wait == Some(Duration::ZERO) => None,
            Ok(None) => wait_loop(py, wait, |d| self.lock_once(d))?,
            Err(e) => return Err(to_py(py, e)),
        };
        match status {
            None => Ok(false),
            Some(LockStatus::Acquired) => Ok(true),
            Some(LockStatus::OwnerDied) => {
                let r = match &self.lock {
                    AnyLock::Plain(l) => l.raw().mark_consistent(),
                    AnyLock::Reentrant(l) => l.raw().mark_consistent(),
                };
                r.map_err(|e| to_py(py, e))?;
                let warning = py.import("shmprim")?.getattr("OwnerDiedWarning")?;
                let name = match &self.lock {
                    AnyLock::Plain(l) => l.segment().display_name().to_owned(),
                    AnyLock::Reentrant(l) => l.segment().display_name().to_owned(),
                };
                let msg =
                    std::ffi::CString::new(format!("{name}: its previous holder died holding it"))
                        .unwrap_or_default();
                PyErr::warn(py, &warning, &msg, 1)?;
                Ok(true)
            }
        }
    }

    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.unlock_once().map_err(|e| to_py(py, e))
    }

    fn locked(&self) -> bool {
        match &self.lock {
            AnyLock::Plain(l) => l.raw().is_locked(),
            AnyLock::Reentrant(l) => l.raw().is_locked(),
        }
    }

    /// Whether the calling thread holds it.
    fn is_owned(&self) -> bool {
        match &self.lock {
            AnyLock::Plain(l) => l.raw().held_by_current_thread(),
            AnyLock::Reentrant(l) => l.raw().held_by_current_thread(),
        }
    }
}

// ------------------------------------------------------------------ condvar

/// A condition variable waited on with a [`Lock`] held.
#[pyclass(module = "shmprim._native", frozen)]
struct Condvar_ {
    cv: Condvar,
}

#[pymethods]
impl Condvar_ {
    #[new]
    #[pyo3(signature = (name, create, unlink_on_drop=false))]
    fn new(py: Python<'_>, name: &str, create: bool, unlink_on_drop: bool) -> PyResult<Condvar_> {
        let cv = if create {
            Condvar::create_with_options(name, &options(unlink_on_drop))
        } else {
            Condvar::open(name)
        };
        Ok(Condvar_ {
            cv: cv.map_err(|e| to_py(py, e))?,
        })
    }

    /// Releases `lock` (every level of an `RLock` this thread holds), waits
    /// for a notification or the timeout, and takes it back as it was.
    /// Whether it was notified.
    #[pyo3(signature = (lock, timeout=None))]
    fn wait(&self, py: Python<'_>, lock: &Lock, timeout: Option<f64>) -> PyResult<bool> {
        if !lock.is_owned() {
            return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
        }
        let depth = match &lock.lock {
            AnyLock::Reentrant(l) => l.raw().depth().max(1),
            AnyLock::Plain(_) => 1,
        };
        let deadline = match patience(true, timeout) {
            Some(t) => Deadline::after(t),
            None => Deadline::never(),
        };
        let (relocked, timed_out) = py.allow_threads(|| {
            let (r, timed_out) = shmprim::wait::interruptible_with(|| {
                self.cv.state().wait_with(
                    || {
                        for _ in 0..depth {
                            let _ = lock.unlock_once();
                        }
                    },
                    || -> shmprim::Result<()> {
                        for _ in 0..depth {
                            lock.lock_once(Deadline::never())?;
                        }
                        Ok(())
                    },
                    deadline,
                )
            });
            (r.0, r.1 || timed_out)
        });
        relocked.map_err(|e| to_py(py, e))?;
        py.check_signals()?;
        Ok(!timed_out)
    }

    #[pyo3(signature = (n=1))]
    fn notify(&self, n: u32) {
        self.cv.notify(n);
    }

    fn notify_all(&self) {
        self.cv.notify_all();
    }
}

// ------------------------------------------------------------------ semaphore

#[pyclass(module = "shmprim._native", frozen)]
struct Semaphore_ {
    sem: Semaphore,
}

#[pymethods]
impl Semaphore_ {
    #[new]
    #[pyo3(signature = (name, value, bound, create, unlink_on_drop=false))]
    fn new(
        py: Python<'_>,
        name: &str,
        value: u32,
        bound: Option<u32>,
        create: bool,
        unlink_on_drop: bool,
    ) -> PyResult<Semaphore_> {
        let sem = if create {
            Semaphore::create_with_options(
                name,
                value,
                bound.unwrap_or(UNBOUNDED),
                &options(unlink_on_drop),
            )
        } else {
            Semaphore::open(name)
        };
        Ok(Semaphore_ {
            sem: sem.map_err(|e| to_py(py, e))?,
        })
    }

    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        if self.sem.try_acquire() {
            return Ok(true);
        }
        if patience(block, timeout) == Some(Duration::ZERO) {
            return Ok(false);
        }
        Ok(wait_loop(py, patience(block, timeout), |d| {
            self.sem.acquire_deadline(d)
        })?
        .is_some())
    }

    #[pyo3(signature = (n=1))]
    fn release(&self, py: Python<'_>, n: u32) -> PyResult<()> {
        self.sem.release(n).map_err(|e| to_py(py, e))
    }

    fn get_value(&self) -> u32 {
        self.sem.value()
    }

    fn bound(&self) -> Option<u32> {
        self.sem.bound()
    }
}

// ------------------------------------------------------------------ event

#[pyclass(module = "shmprim._native", frozen)]
struct Event_ {
    ev: Event,
}

#[pymethods]
impl Event_ {
    #[new]
    #[pyo3(signature = (name, create, unlink_on_drop=false))]
    fn new(py: Python<'_>, name: &str, create: bool, unlink_on_drop: bool) -> PyResult<Event_> {
        let ev = if create {
            Event::create_with_options(name, &options(unlink_on_drop))
        } else {
            Event::open(name)
        };
        Ok(Event_ {
            ev: ev.map_err(|e| to_py(py, e))?,
        })
    }

    fn set(&self) {
        self.ev.set();
    }

    fn clear(&self) {
        self.ev.clear();
    }

    fn is_set(&self) -> bool {
        self.ev.is_set()
    }

    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.ev.is_set() {
            return Ok(true);
        }
        Ok(wait_loop(py, patience(true, timeout), |d| self.ev.wait_deadline(d))?.is_some())
    }
}

// ------------------------------------------------------------------ barrier

#[pyclass(module = "shmprim._native", frozen)]
struct Barrier_ {
    b: Barrier,
}

#[pymethods]
impl Barrier_ {
    #[new]
    #[pyo3(signature = (name, parties, create, unlink_on_drop=false))]
    fn new(
        py: Python<'_>,
        name: &str,
        parties: u32,
        create: bool,
        unlink_on_drop: bool,
    ) -> PyResult<Barrier_> {
        let b = if create {
            Barrier::create_with_options(name, parties, &options(unlink_on_drop))
        } else {
            Barrier::open(name)
        };
        Ok(Barrier_ {
            b: b.map_err(|e| to_py(py, e))?,
        })
    }

    /// The party's index, or `None` at the timeout (the barrier is then
    /// broken, as Python's is).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<usize>> {
        let deadline = match patience(true, timeout) {
            Some(t) => Deadline::after(t),
            None => Deadline::never(),
        };
        // One wait for the whole timeout: a barrier wait cannot be cut into
        // slices (leaving it breaks the barrier), so a signal interrupts it.
        let r =
            py.allow_threads(|| shmprim::wait::interruptible(|| self.b.wait_deadline(deadline)));
        match r {
            Ok(i) => Ok(Some(i)),
            Err(Error::Timeout { .. }) => Ok(None),
            Err(Error::Interrupted { .. }) => {
                py.check_signals()?;
                Err(to_py(
                    py,
                    Error::BrokenBarrier {
                        name: self.b.segment().object_name().clone(),
                    },
                ))
            }
            Err(e) => Err(to_py(py, e)),
        }
    }

    fn abort(&self) {
        self.b.abort();
    }

    fn reset(&self) {
        self.b.reset();
    }

    fn parties(&self) -> u32 {
        self.b.parties()
    }

    fn n_waiting(&self) -> u32 {
        self.b.n_waiting()
    }

    fn broken(&self) -> bool {
        self.b.is_broken()
    }
}

// ------------------------------------------------------------------ pipe

/// The segment of a pipe, held by its creator.
#[pyclass(module = "shmprim._native", frozen)]
struct Pipe_ {
    _pipe: Pipe,
}

#[pymethods]
impl Pipe_ {
    #[new]
    #[pyo3(signature = (name, capacity, max_message, duplex, unlink_on_drop=false))]
    fn new(
        py: Python<'_>,
        name: &str,
        capacity: usize,
        max_message: usize,
        duplex: bool,
        unlink_on_drop: bool,
    ) -> PyResult<Pipe_> {
        let opts = options(unlink_on_drop);
        let pipe = Pipe::create_with_options(name, capacity, max_message, duplex, &opts);
        Ok(Pipe_ {
            _pipe: pipe.map_err(|e| to_py(py, e))?,
        })
    }
}

/// One end of a pipe, claimed by the first process that uses it.
#[pyclass(module = "shmprim._native", frozen)]
struct Connection_ {
    name: String,
    end: End,
    inner: StdMutex<Option<PipeEnd>>,
    closed: AtomicBool,
}

/// Python's `EOFError` for a connection whose other end is gone, naming the
/// pipe (`what` shows as `segment "name": closed`).
fn end_of_file(what: &dyn std::fmt::Display) -> PyErr {
    PyEOFError::new_err(format!(
        "{what} (the other end is closed or its process is gone)"
    ))
}

/// `EOFError` in place of the `QueueClosed` a wait loop raised.
fn eof_of_closed(py: Python<'_>, e: PyErr) -> PyErr {
    if e.is_instance_of::<QueueClosed>(py) {
        end_of_file(e.value(py))
    } else {
        e
    }
}

fn eof(py: Python<'_>, e: Error) -> PyErr {
    match e {
        e @ Error::Closed { .. } => end_of_file(&e),
        e => to_py(py, e),
    }
}

impl Connection_ {
    fn with_end<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut PipeEnd) -> PyResult<R>,
    ) -> PyResult<R> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PyOSError::new_err("handle is closed"));
        }
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| PyRuntimeError::new_err("connection used by a thread that panicked"))?;
        if guard.is_none() {
            let end = Pipe::open(&self.name)
                .and_then(|p| p.end(self.end))
                .map_err(|e| eof(py, e))?;
            *guard = Some(end);
        }
        f(guard.as_mut().expect("claimed above"))
    }
}

#[pymethods]
impl Connection_ {
    #[new]
    fn new(name: &str, end: u8) -> PyResult<Connection_> {
        let end = match end {
            0 => End::A,
            1 => End::B,
            _ => return Err(PyValueError::new_err("end is 0 (A) or 1 (B)")),
        };
        Ok(Connection_ {
            name: name.to_owned(),
            end,
            inner: StdMutex::new(None),
            closed: AtomicBool::new(false),
        })
    }

    fn send_bytes(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        self.with_end(py, |end| {
            let ptr = SendPtr(end as *mut PipeEnd);
            let r = wait_loop(py, None, move |d| {
                // SAFETY: as in `recv_bytes`.
                let end = unsafe { &mut *ptr.get() };
                end.send_message_deadline(data, d)
            });
            match r {
                Ok(Some(())) => Ok(()),
                Ok(None) => Err(PyOSError::new_err("send did not complete")),
                Err(e) => Err(eof_of_closed(py, e)),
            }
        })
    }

    fn recv_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.with_end(py, |end| {
            let ptr = SendPtr(end as *mut PipeEnd);
            let r = wait_loop(py, None, move |d| {
                // SAFETY: the end is borrowed mutably for the whole loop and
                // used by one slice at a time, on this thread.
                let end = unsafe { &mut *ptr.get() };
                end.recv_message_deadline(d)
            });
            match r {
                Ok(Some(v)) => Ok(PyBytes::new(py, &v)),
                Ok(None) => Err(PyOSError::new_err("receive did not complete")),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| eof_of_closed(py, e))
    }

    /// Whether a message (or the end of the stream) is there, waiting up to
    /// `timeout` (0: just look; `None`: for ever).
    #[pyo3(signature = (timeout=Some(0.0)))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.with_end(py, |end| {
            let ptr = SendPtr(end as *mut PipeEnd);
            let r = wait_loop(py, patience(true, timeout), move |d| {
                // SAFETY: as in `recv_bytes`.
                let end = unsafe { &mut *ptr.get() };
                match end.poll_deadline(d) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(Error::timeout(&shmprim::ObjectName::unknown())),
                    Err(e) => Err(e),
                }
            })?;
            Ok(r.is_some())
        })
    }

    fn close(&self) -> PyResult<()> {
        self.closed.store(true, Ordering::Relaxed);
        if let Ok(mut g) = self.inner.lock() {
            if let Some(end) = g.take() {
                end.close();
            }
        }
        Ok(())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// A pointer to a pipe end, sent into the GIL-free part of a call on the
/// same thread (the end itself is `Send`; the mutable borrow is not `Sync`).
#[derive(Clone, Copy)]
struct SendPtr(*mut PipeEnd);
// SAFETY: only dereferenced on the thread that made it, while the borrow it
// came from is alive (see its uses).
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn get(self) -> *mut PipeEnd {
        self.0
    }
}

// ------------------------------------------------------------------ arrays

macro_rules! typed_arrays {
    (@format "b") => { c"b" };
    (@format "B") => { c"B" };
    (@format "h") => { c"h" };
    (@format "H") => { c"H" };
    (@format "i") => { c"i" };
    (@format "I") => { c"I" };
    // Python's `l` and `L` are the platform's long: 8 bytes here, `q`/`Q`.
    (@format "l") => { c"q" };
    (@format "L") => { c"Q" };
    (@format "q") => { c"q" };
    (@format "Q") => { c"Q" };
    (@format "f") => { c"f" };
    (@format "d") => { c"d" };
    ($($code:tt => $variant:ident($t:ty),)*) => {
        enum AnyArray { $($variant(Array<$t>),)* }

        impl AnyArray {
            fn make(name: &str, typecode: &str, len: usize, create: bool, opts: &Options) -> PyResult<Option<AnyArray>> {
                Ok(match typecode {
                    $($code => Some(AnyArray::$variant(if create {
                        Array::<$t>::create_with_options(name, len, false, opts)
                    } else {
                        Array::<$t>::open(name)
                    }.map_err(|e| Python::with_gil(|py| to_py(py, e)))?)),)*
                    _ => None,
                })
            }

            fn len(&self) -> usize {
                match self { $(AnyArray::$variant(a) => a.len(),)* }
            }

            /// The first element, its size, and its `struct` format letter.
            fn raw(&self) -> (*mut u8, usize, &'static std::ffi::CStr) {
                match self {
                    $(AnyArray::$variant(a) => (
                        a.as_ptr().cast::<u8>(),
                        std::mem::size_of::<$t>(),
                        typed_arrays!(@format $code),
                    ),)*
                }
            }

            fn get(&self, py: Python<'_>, i: usize) -> PyResult<PyObject> {
                match self {
                    $(AnyArray::$variant(a) => {
                        let v = a.get(i).map_err(|e| to_py(py, e))?;
                        Ok(v.into_pyobject(py)?.into_any().unbind())
                    })*
                }
            }

            fn set(&self, py: Python<'_>, i: usize, v: &Bound<'_, PyAny>) -> PyResult<()> {
                match self {
                    $(AnyArray::$variant(a) => {
                        let v: $t = v.extract()?;
                        a.set(i, v).map_err(|e| to_py(py, e))
                    })*
                }
            }
        }
    };
}

typed_arrays! {
    "b" => I8(i8),
    "B" => U8(u8),
    "h" => I16(i16),
    "H" => U16(u16),
    "i" => I32(i32),
    "I" => U32(u32),
    "l" => I64(i64),
    "L" => U64(u64),
    "q" => I64Q(i64),
    "Q" => U64Q(u64),
    "f" => F32(f32),
    "d" => F64(f64),
}

/// Shared numbers of one C type (Python's typecodes `bBhHiIlLqQfd`).
#[pyclass(module = "shmprim._native", frozen)]
struct Array_ {
    a: AnyArray,
    /// The buffer protocol's shape and strides: they must stay put while a
    /// view is out, as this object does.
    shape: [isize; 1],
    strides: [isize; 1],
}

#[pymethods]
impl Array_ {
    #[new]
    #[pyo3(signature = (name, typecode, length, create, unlink_on_drop=false))]
    fn new(
        name: &str,
        typecode: &str,
        length: usize,
        create: bool,
        unlink_on_drop: bool,
    ) -> PyResult<Array_> {
        match AnyArray::make(name, typecode, length, create, &options(unlink_on_drop))? {
            Some(a) => {
                let (_, size, _) = a.raw();
                Ok(Array_ {
                    shape: [a.len() as isize],
                    strides: [size as isize],
                    a,
                })
            }
            None => Err(PyValueError::new_err(format!(
                "typecode {typecode:?} is not one of bBhHiIlLqQfd"
            ))),
        }
    }

    fn __len__(&self) -> usize {
        self.a.len()
    }

    fn get(&self, py: Python<'_>, i: usize) -> PyResult<PyObject> {
        self.a.get(py, i)
    }

    fn set(&self, py: Python<'_>, i: usize, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.a.set(py, i, v)
    }

    /// The buffer protocol: `memoryview(arr)` and `numpy.asarray(arr)` see
    /// the elements in shared memory, without a copy (and without the
    /// array's per-element atomicity: like Python's `RawArray`).
    ///
    /// # Safety
    /// Called by Python with a `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyValueError::new_err("no buffer view to fill"));
        }
        let this = slf.get();
        let (ptr, size, format) = this.a.raw();
        // SAFETY: `view` is a live Py_buffer Python handed us to fill; the
        // pointers stored in it (the elements, the format, shape and strides
        // of this object) stay valid while the view holds a reference to
        // `slf`, which it does through `obj`.
        unsafe {
            (*view).obj = slf.clone().into_any().into_ptr();
            (*view).buf = ptr.cast();
            (*view).len = (this.a.len() * size) as isize;
            (*view).readonly = 0;
            (*view).itemsize = size as isize;
            (*view).format = if flags & pyo3::ffi::PyBUF_FORMAT != 0 {
                format.as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape = if flags & pyo3::ffi::PyBUF_ND != 0 {
                this.shape.as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if flags & pyo3::ffi::PyBUF_STRIDES == pyo3::ffi::PyBUF_STRIDES {
                this.strides.as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }

    /// Nothing to undo: the view borrows this object's own fields.
    ///
    /// # Safety
    /// Called by Python with the view `__getbuffer__` filled.
    unsafe fn __releasebuffer__(&self, _view: *mut pyo3::ffi::Py_buffer) {}
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Queue>()?;
    m.add_class::<Lock>()?;
    m.add_class::<Condvar_>()?;
    m.add_class::<Semaphore_>()?;
    m.add_class::<Event_>()?;
    m.add_class::<Barrier_>()?;
    m.add_class::<Pipe_>()?;
    m.add_class::<Connection_>()?;
    m.add_class::<Array_>()?;
    m.add("QueueClosed", m.py().get_type::<QueueClosed>())?;
    m.add("UNBOUNDED", UNBOUNDED)?;
    Ok(())
}
