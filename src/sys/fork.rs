//! Fork detection: a counter bumped in every child right after `fork`, so that
//! handles can tell that they were inherited and must not share per-process
//! bookkeeping (such as a queue's in-flight records) with their parent.

// A process-local counter, never placed in shared memory and never modelled by
// loom (a loom atomic cannot live in a `static`), hence std's atomic here.
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

static GENERATION: AtomicU32 = AtomicU32::new(0);
static REGISTER: Once = Once::new();

extern "C" fn bump_in_child() {
    // Async-signal-safe: one atomic add on a static.
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// How many forks separate this process from the one that first called this
/// function (0 there; 1 in a child forked after that call, and so on). Cheap:
/// one load once the handler is registered.
#[inline]
pub(crate) fn fork_generation() -> u32 {
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only does an atomic add; the
        // handler is a plain `extern "C"` function that lives for the program.
        unsafe { libc::pthread_atfork(None, None, Some(bump_in_child)) };
    });
    // Relaxed: the handler runs in the child's only thread before `fork`
    // returns there, so program order makes the bump visible.
    GENERATION.load(Ordering::Relaxed)
}
