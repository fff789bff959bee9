//! C functions for the process pool (`shmprim_pool_*`), Python's
//! `Pool(n).map`: workers forked from the calling process run a C function
//! over an array of fixed-size tasks. A worker that dies (a signal, `abort`,
//! `exit`) costs only the task it was running, reported on that task as
//! `SHMPRIM_WORKER_DIED`; a replacement is forked and every other task
//! completes.

use std::ffi::{c_int, c_void};

use super::{boundary, check, fail_with, free, handle, non_null, put, shmprim_status};
use shmprim::process::Start;
use shmprim::process::pool::RawStatus;
use shmprim::{Error, Pool};

/// A task function: reads the task at `task` (the map's `task_size` bytes),
/// writes its result at `result` (`result_size` bytes), returns 0 on
/// success and anything else on failure. `ctx` is the map's context pointer,
/// as the forked worker sees it. It runs in a worker process: what it writes
/// elsewhere in memory stays in that process.
pub type shmprim_task_fn = Option<
    unsafe extern "C" fn(task: *const c_void, result: *mut c_void, ctx: *mut c_void) -> c_int,
>;

/// A pool of forked worker processes. Opaque; free it with
/// `shmprim_pool_close`. Use it from one thread at a time.
pub struct shmprim_pool {
    inner: Pool,
}

/// Forks `workers` worker processes (1 to 4096). The calling process must
/// have one thread: a process with more is refused with
/// `SHMPRIM_INVALID_ARGUMENT` (a forked copy could inherit a lock another
/// thread holds). The workers die with the process. Returns `SHMPRIM_OK` (a
/// new handle in `*out`), `SHMPRIM_INVALID_ARGUMENT`, `SHMPRIM_NULL_POINTER`
/// or `SHMPRIM_IO`.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pool_create(
    workers: u32,
    out: *mut *mut shmprim_pool,
) -> shmprim_status {
    boundary(|| {
        non_null(out, "out")?;
        let inner = Pool::builder()
            .workers(workers as usize)
            .start(Start::Fork)
            .build()
            .map_err(|e| match e {
                Error::ForkWithThreads { .. } => {
                    fail_with(shmprim_status::SHMPRIM_INVALID_ARGUMENT, &e.to_string())
                }
                e => super::fail(&e),
            })?;
        put(out, shmprim_pool { inner })
    })
}

/// Runs `task_fn` over `count` tasks of `task_size` bytes, back to back at
/// `tasks`, and writes each task's result (`result_size` bytes, 0 allowed)
/// at its place in `results`, in order. `statuses[i]` tells how task `i`
/// ended: `SHMPRIM_OK`, `SHMPRIM_TASK_FAILED` (`task_fn` returned nonzero; its
/// result is zeroed), `SHMPRIM_WORKER_DIED` (its worker died running it;
/// its result is zeroed) or `SHMPRIM_INTERNAL`. Blocks until every task
/// ended. Returns `SHMPRIM_OK` when the map ran (each task's own outcome is
/// in `statuses`), `SHMPRIM_NULL_POINTER`, `SHMPRIM_INVALID_ARGUMENT`
/// (`task_size` 0, sizes that overflow) or `SHMPRIM_CLOSED` (the pool was
/// terminated).
///
/// # Safety
/// `pool` must be a live handle; `tasks` readable for `count * task_size`
/// bytes, `results` writable for `count * result_size`, `statuses` for
/// `count` `int32_t`s (any may be null when `count` is 0); `task_fn` safe to call
/// in a forked worker with such buffers and `ctx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pool_map(
    pool: *const shmprim_pool,
    task_fn: shmprim_task_fn,
    ctx: *mut c_void,
    tasks: *const c_void,
    count: usize,
    task_size: usize,
    results: *mut c_void,
    result_size: usize,
    statuses: *mut i32,
) -> shmprim_status {
    boundary(|| {
        // SAFETY: null or a live handle, by the contract.
        let pool = unsafe { handle(pool, "pool") }?;
        let Some(f) = task_fn else {
            return Err(fail_with(
                shmprim_status::SHMPRIM_NULL_POINTER,
                "task_fn is null",
            ));
        };
        let sizes = count
            .checked_mul(task_size)
            .zip(count.checked_mul(result_size));
        let Some((task_bytes, result_bytes)) = sizes.filter(|_| task_size > 0) else {
            return Err(fail_with(
                shmprim_status::SHMPRIM_INVALID_ARGUMENT,
                "task_size is 0, or count times a size overflows",
            ));
        };
        if count == 0 {
            return Ok(());
        }
        non_null(tasks, "tasks")?;
        non_null(statuses, "statuses")?;
        if result_bytes > 0 {
            non_null(results, "results")?;
        }
        // SAFETY: non-null and readable for `task_bytes`, by the contract.
        let tasks = unsafe { std::slice::from_raw_parts(tasks.cast::<u8>(), task_bytes) };
        let results: &mut [u8] = if result_bytes == 0 {
            &mut []
        } else {
            // SAFETY: non-null and writable for `result_bytes`, by the contract.
            unsafe { std::slice::from_raw_parts_mut(results.cast::<u8>(), result_bytes) }
        };
        // SAFETY: `f` is safe to call in a forked worker with these sizes and
        // `ctx`, by the contract; the pool's workers are forked.
        let out = check(unsafe {
            pool.inner
                .map_raw(f, ctx, tasks, task_size, results, result_size)
        })?;
        // SAFETY: writable for `count` int32_t, by the contract.
        let statuses = unsafe { std::slice::from_raw_parts_mut(statuses, count) };
        for (slot, status) in statuses.iter_mut().zip(out) {
            *slot = match status {
                RawStatus::Ok => shmprim_status::SHMPRIM_OK,
                RawStatus::Failed(_) => shmprim_status::SHMPRIM_TASK_FAILED,
                RawStatus::WorkerDied { .. } => shmprim_status::SHMPRIM_WORKER_DIED,
                RawStatus::Error(_) => shmprim_status::SHMPRIM_INTERNAL,
            } as i32;
        }
        Ok(())
    })
}

/// The number of workers the pool keeps running.
///
/// # Safety
/// `pool` must be null (0 is returned) or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pool_workers(pool: *const shmprim_pool) -> u32 {
    if pool.is_null() {
        return 0;
    }
    // SAFETY: a live handle, by the contract.
    unsafe { &*pool }.inner.workers() as u32
}

/// Kills every worker at once (Python's `terminate`); a map running on
/// another thread returns with its unfinished tasks failed. Free the handle
/// with `shmprim_pool_close` afterwards.
///
/// # Safety
/// `pool` must be null (ignored) or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pool_terminate(pool: *const shmprim_pool) {
    if !pool.is_null() {
        // SAFETY: a live handle, by the contract.
        unsafe { &*pool }.inner.terminate();
    }
}

/// Lets the workers finish and exit, waits for them, and frees the handle
/// (Python's `close(); join()`); null is ignored.
///
/// # Safety
/// `pool` must be null or a handle not yet closed, not in use by another
/// thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmprim_pool_close(pool: *mut shmprim_pool) {
    if !pool.is_null() {
        // SAFETY: a live handle, by the contract.
        let p = unsafe { &*pool };
        p.inner.close();
        let _ = p.inner.join();
    }
    // SAFETY: forwarded contract.
    unsafe { free(pool) }
}
