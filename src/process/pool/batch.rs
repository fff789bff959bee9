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
    /// Whether items are taken in completion order (`imap_unordered`), which
    /// keeps that order; others take by index.
    unordered: bool,
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
    /// What each waiting thread waits for: completions wake them only when
    /// one of these is met, not once per item.
    wants: Vec<Want>,
}

/// What a waiting thread waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// At least this many items completed.
    Count(u64),
    /// This item completed.
    Index(u64),
    /// Any item completed and not taken.
    Any,
}

impl BatchState {
    fn met(&self, want: Want) -> bool {
        match want {
            Want::Count(n) => self.completed >= n,
            Want::Index(i) => self.done.contains_key(&i),
            Want::Any => !self.order.is_empty(),
        }
    }
}

impl Batch {
    pub(crate) fn new(on_item: Option<OnItem>, unordered: bool) -> Batch {
        Batch {
            unordered,
            state: Mutex::new(BatchState::default()),
            cond: Condvar::new(),
            on_item: Mutex::new(on_item),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records items' outcomes (the manager thread), after running the
    /// callback on each, and wakes the threads whose wait they end.
    pub(crate) fn complete_many(&self, items: impl Iterator<Item = (u64, Result<Vec<u8>>)>) {
        let mut on_item = self.on_item.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = None;
        for (index, outcome) in items {
            if let Some(cb) = on_item.as_mut() {
                // A panicking callback must not take the manager thread down
                // with it (Python logs and carries on): the item completes
                // regardless.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&outcome)));
            }
            let st = st.get_or_insert_with(|| self.lock());
            st.done.insert(index, outcome);
            if self.unordered {
                st.order.push_back(index);
            }
            st.completed += 1;
        }
        drop(on_item);
        if let Some(st) = st {
            let wake = st.wants.iter().any(|&w| st.met(w));
            drop(st);
            if wake {
                self.cond.notify_all();
            }
        }
    }

    /// How many items have completed.
    pub(crate) fn completed(&self) -> u64 {
        self.lock().completed
    }

    /// Waits until `count` items completed or `deadline` passes; whether they did.
    pub(crate) fn wait_completed(&self, count: u64, deadline: Option<Instant>) -> bool {
        let mut st = self.lock();
        loop {
            if st.completed >= count {
                return true;
            }
            match self.wait(st, Want::Count(count), deadline) {
                Some(s) => st = s,
                None => return false,
            }
        }
    }

    /// Takes item `index`, waiting for it; `None` if `deadline` passes first.
    pub(crate) fn take(&self, index: u64, deadline: Option<Instant>) -> Option<Result<Vec<u8>>> {
        let mut st = self.lock();
        loop {
            if let Some(r) = st.done.remove(&index) {
                return Some(r);
            }
            st = self.wait(st, Want::Index(index), deadline)?;
        }
    }

    /// Takes whichever item completed first, waiting for one (in a batch
    /// made `unordered`).
    pub(crate) fn take_any(&self, deadline: Option<Instant>) -> Option<(u64, Result<Vec<u8>>)> {
        let mut st = self.lock();
        loop {
            if let Some(i) = st.order.pop_front() {
                let r = st.done.remove(&i).expect("ordered items are stored");
                return Some((i, r));
            }
            st = self.wait(st, Want::Any, deadline)?;
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
            st = self.wait(st, Want::Index(index), deadline)?;
        }
    }

    /// Sleeps until a completion meets `want` (or spuriously), or until
    /// `deadline`; `None` once the deadline passed.
    fn wait<'a>(
        &'a self,
        mut st: MutexGuard<'a, BatchState>,
        want: Want,
        deadline: Option<Instant>,
    ) -> Option<MutexGuard<'a, BatchState>> {
        st.wants.push(want);
        let mut st = match deadline {
            None => self.cond.wait(st).unwrap_or_else(|p| p.into_inner()),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    drop_want(&mut st, want);
                    return None;
                }
                self.cond
                    .wait_timeout(st, d - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
        drop_want(&mut st, want);
        Some(st)
    }
}

fn drop_want(st: &mut BatchState, want: Want) {
    if let Some(i) = st.wants.iter().position(|&w| w == want) {
        st.wants.swap_remove(i);
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
