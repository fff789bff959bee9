//! Where a pool's results land: one batch per `apply_async`, `map` or `imap`
//! call, filled by the manager thread, read by the caller.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// What the manager runs in the parent as each item completes (the
/// `callback` / `error_callback` of `apply_async`).
pub(crate) type OnItem = Box<dyn FnMut(&Result<Vec<u8>>) + Send>;

/// The results of one call, by item index.
pub(crate) struct Batch {
    state: Mutex<BatchState>,
    cond: Condvar,
    on_item: Mutex<Option<OnItem>>,
}

#[derive(Default)]
struct BatchState {
    /// Completed items not yet taken, by index.
    done: BTreeMap<u64, Result<Vec<u8>>>,
    /// Indices in the order they completed (for `imap_unordered`).
    order: VecDeque<u64>,
    /// How many items completed so far.
    completed: u64,
}

impl Batch {
    pub(crate) fn new(on_item: Option<OnItem>) -> Batch {
        Batch {
            state: Mutex::new(BatchState::default()),
            cond: Condvar::new(),
            on_item: Mutex::new(on_item),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records item `index`'s outcome (the manager thread), after running the
    /// callback on it.
    pub(crate) fn complete(&self, index: u64, outcome: Result<Vec<u8>>) {
        if let Some(cb) = self
            .on_item
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            // A panicking callback must not take the manager thread down with
            // it (Python logs and carries on): the item completes regardless.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&outcome)));
        }
        let mut st = self.lock();
        st.done.insert(index, outcome);
        st.order.push_back(index);
        st.completed += 1;
        drop(st);
        self.cond.notify_all();
    }

    /// How many items have completed.
    pub(crate) fn completed(&self) -> u64 {
        self.lock().completed
    }

    /// Waits until `count` items completed or `deadline` passes; whether they did.
    pub(crate) fn wait_completed(&self, count: u64, deadline: Option<Instant>) -> bool {
        let mut st = self.lock();
        while st.completed < count {
            st = match deadline {
                None => self.cond.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    self.cond
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        true
    }

    /// Takes item `index`, waiting for it; `None` if `deadline` passes first.
    pub(crate) fn take(&self, index: u64, deadline: Option<Instant>) -> Option<Result<Vec<u8>>> {
        let mut st = self.lock();
        loop {
            if let Some(r) = st.done.remove(&index) {
                st.order.retain(|&i| i != index);
                return Some(r);
            }
            st = self.wait(st, deadline)?;
        }
    }

    /// Takes whichever item completed first, waiting for one.
    pub(crate) fn take_any(&self, deadline: Option<Instant>) -> Option<(u64, Result<Vec<u8>>)> {
        let mut st = self.lock();
        loop {
            if let Some(i) = st.order.pop_front() {
                let r = st.done.remove(&i).expect("ordered items are stored");
                return Some((i, r));
            }
            st = self.wait(st, deadline)?;
        }
    }

    /// Reads item `index` without taking it (for `AsyncResult::get`, which
    /// may be called more than once).
    pub(crate) fn peek<T>(
        &self,
        index: u64,
        deadline: Option<Instant>,
        f: impl FnOnce(&Result<Vec<u8>>) -> T,
    ) -> Option<T> {
        let mut st = self.lock();
        loop {
            if let Some(r) = st.done.get(&index) {
                return Some(f(r));
            }
            st = self.wait(st, deadline)?;
        }
    }

    fn wait<'a>(
        &'a self,
        st: MutexGuard<'a, BatchState>,
        deadline: Option<Instant>,
    ) -> Option<MutexGuard<'a, BatchState>> {
        match deadline {
            None => Some(self.cond.wait(st).unwrap_or_else(|p| p.into_inner())),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                Some(
                    self.cond
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0,
                )
            }
        }
    }
}

/// A fresh copy of an item's error (errors are not `Clone`): the variants a
/// pool produces keep their details, others keep their message.
pub(crate) fn copy_error(e: &Error) -> Error {
    match e {
        Error::Panicked { message } => Error::Panicked {
            message: message.clone(),
        },
        Error::WorkerDied { pid, exitcode } => Error::WorkerDied {
            pid: *pid,
            exitcode: *exitcode,
        },
        Error::Timeout => Error::Timeout,
        Error::Closed => Error::Closed,
        Error::Corrupted { name, detail } => Error::Corrupted {
            name: name.clone(),
            detail: detail.clone(),
        },
        Error::InvalidArgument { detail } => Error::InvalidArgument {
            detail: detail.clone(),
        },
        other => Error::invalid_argument(other.to_string()),
    }
}

/// Turns `timeout` into a deadline.
pub(crate) fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}
