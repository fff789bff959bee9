//! Tasks of the C ABI: a C function over fixed-size task and result buffers,
//! run by a pool whose workers are forked (they share the parent's addresses,
//! so a function pointer and a context pointer mean the same in them).

use std::ffi::{c_int, c_void};

use super::Pool;
use super::batch::Item;
use crate::error::{Error, Result};
use crate::process::Start;
use crate::process::entry::Entry;
use crate::process::payload::{Payload, malformed, take};

/// A task function of the C ABI: reads the task at `task`, writes the result
/// at `result` (both of the sizes given to [`Pool::map_raw`]), and returns 0
/// on success or any other value on failure. `ctx` is the pointer given to
/// `map_raw`, as the forked worker sees it.
pub type RawTaskFn =
    unsafe extern "C" fn(task: *const c_void, result: *mut c_void, ctx: *mut c_void) -> c_int;

/// How one task of [`Pool::map_raw`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawStatus {
    /// The function returned 0; its result is in place.
    Ok,
    /// The function returned this nonzero value; its result slot is zeroed.
    Failed(i32),
    /// The worker running it died (see [`Error::WorkerDied`]).
    WorkerDied {
        /// The worker's pid.
        pid: u32,
        /// Python's `exitcode` of the worker.
        exitcode: i32,
    },
    /// It did not complete for another reason (a timeout, a terminated pool).
    Error(String),
}

/// One task's argument as it travels: the context pointer, the result size,
/// then the task's bytes.
struct RawArg<'a> {
    ctx: u64,
    result_size: u64,
    task: &'a [u8],
}

impl Payload for RawArg<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.ctx.encode(out);
        self.result_size.encode(out);
        out.extend_from_slice(self.task);
    }
    fn decode(_input: &mut &[u8]) -> Result<Self> {
        Err(malformed("a raw task argument is read by its trampoline"))
    }
}

/// Calls the C function at `f` on one task; the outcome is its return value
/// and then its result.
fn raw_trampoline(f: usize, mut arg: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let input = &mut arg;
    let ctx = u64::decode(input)? as usize as *mut c_void;
    let size = usize::try_from(u64::decode(input)?).map_err(|_| malformed("result size"))?;
    let task = take(input, input.len())?;
    let rc_at = out.len();
    0i32.encode(out);
    let result_at = out.len();
    out.resize(result_at + size, 0);
    // SAFETY: `f` is the address of a `RawTaskFn` given to `map_raw` in the
    // parent, of which this worker is a fork; the task buffer holds the task
    // size given there, the result buffer `size` writable bytes.
    let rc = unsafe {
        let f = std::mem::transmute::<usize, RawTaskFn>(f);
        f(
            task.as_ptr().cast(),
            out[result_at..].as_mut_ptr().cast(),
            ctx,
        )
    };
    if rc != 0 {
        out[result_at..].fill(0);
    }
    out[rc_at..rc_at + 4].copy_from_slice(&rc.to_le_bytes());
    Ok(())
}

impl Pool {
    /// Runs `f` over `count` tasks of `task_size` bytes each, back to back in
    /// `tasks`, writing each result (`result_size` bytes) at its place in
    /// `results`: the C ABI's `Pool.map`, with one status per task. Only a
    /// pool built with [`Start::Fork`] can run it.
    ///
    /// # Safety
    /// `f` must be safe to call, in a forked worker, with a task of
    /// `task_size` readable bytes, a result of `result_size` writable bytes
    /// and `ctx`.
    pub unsafe fn map_raw(
        &self,
        f: RawTaskFn,
        ctx: *mut c_void,
        tasks: &[u8],
        task_size: usize,
        results: &mut [u8],
        result_size: usize,
    ) -> Result<Vec<RawStatus>> {
        if self.start != Start::Fork {
            return Err(Error::invalid_argument(
                "map_raw needs a pool whose workers are forked (PoolBuilder::start(Start::Fork))",
            ));
        }
        if task_size == 0 || tasks.len() % task_size != 0 {
            return Err(Error::invalid_argument(format!(
                "{} bytes of tasks are not a whole number of {task_size}-byte tasks",
                tasks.len()
            )));
        }
        let count = tasks.len() / task_size;
        if results.len() != count.saturating_mul(result_size) {
            return Err(Error::invalid_argument(format!(
                "{count} results of {result_size} bytes need {} bytes, not {}",
                count.saturating_mul(result_size),
                results.len()
            )));
        }
        let entry = Entry::forked(raw_trampoline, f as usize);
        let args = tasks.chunks(task_size).map(|task| RawArg {
            ctx: ctx as usize as u64,
            result_size: result_size as u64,
            task,
        });
        let pending = self.map_entry::<_, ()>(entry, args, Some(1))?;
        let mut slots = results.chunks_mut(result_size.max(1));
        let statuses = pending.batch.take_all(count as u64, |item: Item<'_>| {
            // Every item takes its slot, whatever happened to it.
            let slot = slots.next().filter(|_| result_size > 0);
            Ok(match item {
                Ok(mut bytes) => {
                    let rc = i32::decode(&mut bytes)?;
                    if bytes.len() != result_size {
                        return Err(malformed("a raw result of the wrong size"));
                    }
                    if let Some(slot) = slot {
                        slot.copy_from_slice(bytes);
                    }
                    if rc == 0 {
                        RawStatus::Ok
                    } else {
                        RawStatus::Failed(rc)
                    }
                }
                Err(Error::WorkerDied { pid, exitcode }) => RawStatus::WorkerDied { pid, exitcode },
                Err(e) => RawStatus::Error(e.to_string()),
            })
        });
        Ok(statuses
            .into_iter()
            .map(|s| s.unwrap_or_else(|e| RawStatus::Error(e.to_string())))
            .collect())
    }
}
