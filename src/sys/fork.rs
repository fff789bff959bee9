//! Fork detection: a counter bumped in every child right after `fork`, so that
//! handles can tell that they were inherited and must not share per-process
//! bookkeeping (such as a queue's in-flight records) with their parent; and
//! thread keys that a forked child's thread never shares with a thread of its
//! parent.

// A process-local counter, never placed in shared memory and never modelled by
// loom (a loom atomic cannot live in a `static`), hence std's atomic here.
use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

static GENERATION: AtomicU32 = AtomicU32::new(0);
static REGISTER: Once = Once::new();

/// The next thread key to hand out (keys start at 1).
static NEXT_KEY: AtomicUsize = AtomicUsize::new(1);
/// A thread key that no thread is ever given.
pub(crate) const NO_KEY: usize = 0;
/// What [`THREAD_KEY`] holds before the thread's first [`thread_key`] call.
const UNSET_KEY: usize = usize::MAX;

thread_local! {
    /// This thread's key, or `UNSET_KEY`. Constant-initialised and without a
    /// destructor, so reading it is a plain thread-local load, and writing it
    /// from the fork handler is async-signal-safe.
    static THREAD_KEY: Cell<usize> = const { Cell::new(UNSET_KEY) };
    /// This thread's kernel thread id, or 0 before its first [`thread_id`].
    /// Constant-initialised and without a destructor, like `THREAD_KEY`.
    static THREAD_ID: Cell<u32> = const { Cell::new(0) };
}

extern "C" fn bump_in_child() {
    // Async-signal-safe: one atomic add on a static, one store to this
    // thread's constant-initialised thread-local.
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // The forking thread, the child's only one, still holds its parent
    // thread's key; it takes a fresh one on its next `thread_key`.
    THREAD_KEY.with(|k| k.set(UNSET_KEY));
    // It also has a thread id of its own now.
    THREAD_ID.with(|t| t.set(0));
}

/// Registers `bump_in_child` as this process's fork child handler, once.
#[inline]
fn register_handler() {
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only does an atomic add and a
        // thread-local store; the handler is a plain `extern "C"` function that
        // lives for the program.
        unsafe { libc::pthread_atfork(None, None, Some(bump_in_child)) };
    });
}

/// How many forks separate this process from the one that first called this
/// function (0 there; 1 in a child forked after that call, and so on). Cheap:
/// one load once the handler is registered.
#[inline]
pub(crate) fn fork_generation() -> u32 {
    register_handler();
    // Relaxed: the handler runs in the child's only thread before `fork`
    // returns there, so program order makes the bump visible.
    GENERATION.load(Ordering::Relaxed)
}

/// This thread's key: never [`NO_KEY`], distinct among the threads of this
/// process, and never one that a thread of an ancestor process had before the
/// fork (the forking thread's key is dropped in the child, and keys handed out
/// later come after every key the parent had handed out by then). Registers
/// the fork handler that makes the last point hold.
pub(crate) fn thread_key() -> usize {
    let key = thread_key_if_set();
    if key != UNSET_KEY {
        return key;
    }
    register_handler();
    // Relaxed: only uniqueness matters, which the read-modify-write gives.
    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
    THREAD_KEY.with(|k| k.set(key));
    key
}

/// This thread's key if it has one (see [`thread_key`]), else a value that no
/// thread key and not [`NO_KEY`] equals. One thread-local load: for a fast
/// path that compares it with a key recorded by [`thread_key`].
#[inline(always)]
pub(crate) fn thread_key_if_set() -> usize {
    THREAD_KEY.with(Cell::get)
}

/// The calling thread's kernel thread id (`gettid`), cached: one
/// thread-local load after the first call. The fork handler forgets the
/// cached id in the child, whose only thread has a new one.
#[inline(always)]
pub(crate) fn thread_id() -> u32 {
    let tid = THREAD_ID.with(Cell::get);
    if tid != 0 { tid } else { fetch_thread_id() }
}

#[cold]
#[inline(never)]
fn fetch_thread_id() -> u32 {
    register_handler();
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    THREAD_ID.with(|t| t.set(tid));
    tid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_keys_are_distinct_and_stable() {
        let mine = thread_key();
        assert_ne!(mine, NO_KEY);
        assert_ne!(mine, UNSET_KEY);
        assert_eq!(thread_key(), mine);
        assert_eq!(thread_key_if_set(), mine);
        let other = std::thread::spawn(|| (thread_key_if_set(), thread_key()))
            .join()
            .unwrap();
        assert_eq!(other.0, UNSET_KEY, "a new thread has no key until it asks");
        assert_ne!(other.1, mine);
    }

    #[test]
    fn thread_id_is_gettid() {
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() } as u32;
        assert_eq!(thread_id(), me);
        assert_eq!(thread_id(), me, "cached");
        let other = std::thread::spawn(|| {
            // SAFETY: as above.
            (thread_id(), unsafe { libc::gettid() } as u32)
        })
        .join()
        .unwrap();
        assert_eq!(other.0, other.1);
        assert_ne!(other.0, me);
    }
}
