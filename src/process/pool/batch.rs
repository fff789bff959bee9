//! Where a pool's results land: one batch per `apply_async`, `map` or `imap`
//! call, filled by the manager thread, read by the caller.
//!
//! Results are kept as the records brought them, a run of item outcomes per
//! record, and decoded when taken.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::process::outcome::read_item;

/// What the manager runs in the parent as each item completes (the
/// `callback` / `error_callback` of `apply_async`): the item's encoded value,
/// or its error.
pub(crate) type OnItem = Box<dyn FnMut(std::result::Result<&[u8], Error>) + Send>;

/// The results of one call, by item index.
pub(crate) struct Batch {
    /// Whether items are taken in completion order (`imap_unordered`).
    unordered: bool,
    state: Mutex<BatchState>,
    cond: Condvar,
    on_item: Mutex<Option<OnItem>>,
}

/// A run of consecutive items' outcomes.
struct Run {
    /// How many items it holds.
    count: u32,
    /// The outcomes, back to back.
    bytes: Vec<u8>,
    /// The next item to take, and where its outcome starts.
    next: u32,
    at: usize,
}

#[derive(Default)]
struct BatchState {
    /// Runs not yet taken in full, by the index of their first item.
    runs: BTreeMap<u64, Run>,
    /// Runs in the order they completed (kept for `imap_unordered` only).
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
    /// The run holding item `index`, if it completed.
    fn run_of(&mut self, index: u64) -> Option<(u64, &mut Run)> {
        let (&first, run) = self.runs.range_mut(..=index).next_back()?;
        (index < first + run.count as u64).then_some((first, run))
    }

    fn met(&mut self, want: Want) -> bool {
        match want {
            Want::Count(n) => self.completed >= n,
            Want::Index(i) => self.run_of(i).is_some(),
            Want::Any => !self.order.is_empty(),
        }
    }
}

/// An item as the caller decodes it: its encoded value, or its error.
pub(crate) type Item<'a> = std::result::Result<&'a [u8], Error>;

/// Reads item `k` of `run` (scanning from the start unless it is the next)
/// and hands it to `f`.
fn read_at<T>(
    run: &mut Run,
    k: u32,
    consume: bool,
    f: impl FnOnce(Item<'_>) -> Result<T>,
) -> Result<T> {
    let (mut input, mut i) = if k >= run.next {
        (&run.bytes[run.at..], run.next)
    } else {
        (&run.bytes[..], 0)
    };
    while i < k {
        crate::process::outcome::skip_item(&mut input, true)?;
        i += 1;
    }
    let before = input.len();
    let item = read_item(&mut input);
    let used = before - input.len();
    if consume && k == run.next {
        run.at += used;
        run.next += 1;
    }
    f(item?)
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

    /// Records the outcomes of items `first..first + count`, back to back in
    /// `bytes` (the manager thread), after running the callback on each, and
    /// wakes the threads whose wait they end.
    pub(crate) fn complete(&self, first: u64, count: u32, bytes: Vec<u8>) {
        if let Some(cb) = self
            .on_item
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            let mut input = &bytes[..];
            for _ in 0..count {
                let item = read_item(&mut input).unwrap_or_else(Err);
                // A panicking callback must not take the manager thread down
                // with it (Python logs and carries on): the item completes
                // regardless.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(item)));
            }
        }
        let mut st = self.lock();
        st.runs.insert(
            first,
            Run {
                count,
                bytes,
                next: 0,
                at: 0,
            },
        );
        if self.unordered {
            st.order.push_back(first);
        }
        st.completed += count as u64;
        let wants = std::mem::take(&mut st.wants);
        let wake = wants.iter().any(|&w| st.met(w));
        st.wants = wants;
        drop(st);
        if wake {
            self.cond.notify_all();
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
    /// Items of a run are taken in order; a run taken in full is dropped.
    pub(crate) fn take<T>(
        &self,
        index: u64,
        deadline: Option<Instant>,
        f: impl FnOnce(Item<'_>) -> Result<T>,
    ) -> Option<Result<T>> {
        self.read(index, deadline, true, f)
    }

    /// Reads item `index` without taking it (for `AsyncResult::get`, which
    /// may be called more than once).
    pub(crate) fn peek<T>(
        &self,
        index: u64,
        deadline: Option<Instant>,
        f: impl FnOnce(Item<'_>) -> Result<T>,
    ) -> Option<Result<T>> {
        self.read(index, deadline, false, f)
    }

    fn read<T>(
        &self,
        index: u64,
        deadline: Option<Instant>,
        consume: bool,
        f: impl FnOnce(Item<'_>) -> Result<T>,
    ) -> Option<Result<T>> {
        let mut st = self.lock();
        loop {
            if let Some((first, run)) = st.run_of(index) {
                let item = read_at(run, (index - first) as u32, consume, f);
                if run.next == run.count {
                    st.runs.remove(&first);
                }
                return Some(item);
            }
            st = self.wait(st, Want::Index(index), deadline)?;
        }
    }

    /// Takes items `0..len` in order once all completed, decoding each with
    /// `f` under one lock.
    pub(crate) fn take_all<T>(
        &self,
        len: u64,
        mut f: impl FnMut(Item<'_>) -> Result<T>,
    ) -> Vec<Result<T>> {
        self.wait_completed(len, None);
        let mut st = self.lock();
        let mut out = Vec::with_capacity(len as usize);
        while (out.len() as u64) < len {
            let index = out.len() as u64;
            let Some((first, run)) = st.run_of(index) else {
                out.push(Err(Error::corrupted(
                    "<pool>",
                    format!("item {index} has no result"),
                )));
                continue;
            };
            let k = (index - first) as u32;
            for _ in k..run.count {
                out.push(read_at(run, run.next, true, &mut f));
            }
            st.runs.remove(&first);
        }
        out
    }

    /// Takes the next item of whichever run completed first, waiting for one
    /// (in a batch made `unordered`).
    pub(crate) fn take_any<T>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(Item<'_>) -> Result<T>,
    ) -> Option<Result<T>> {
        let mut st = self.lock();
        loop {
            if let Some(&first) = st.order.front() {
                let run = st.runs.get_mut(&first).expect("ordered runs are stored");
                let item = read_at(run, run.next, true, f);
                if run.next == run.count {
                    st.runs.remove(&first);
                    st.order.pop_front();
                }
                return Some(item);
            }
            st = self.wait(st, Want::Any, deadline)?;
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

/// Turns `timeout` into a deadline.
pub(crate) fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}
