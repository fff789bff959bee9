//! Processes: Python's `multiprocessing.Process` and `Pool`.
//!
//! Two start methods, as Python names them:
//!
//! - **spawn** ([`Process::spawn`]): the current executable starts again and
//!   runs a function `fn(A) -> R` on an argument `A`. `main` calls [`init`]
//!   first: in the parent it returns at once, in a child it runs the function
//!   and never returns. A test file puts [`test_harness!`](crate::test_harness)
//!   at its top instead.
//! - **fork** ([`Process::fork`]): the child runs a closure in a copy of the
//!   parent. Refused with [`Error::ForkWithThreads`] when the parent has more
//!   than one thread, where a copy could inherit a lock held by a thread that
//!   does not exist in it.
//!
//! Arguments and results are [`Payload`]s: numbers, strings, vectors, tuples,
//! plain-old-data structs ([`pod_payload!`](crate::pod_payload)), any serde
//! type with the `serde` feature.
//!
//! **When a participant dies.** A child that dies (a signal, `exit`, a panic)
//! is reported by [`Process::exitcode`] in Python's convention (minus the
//! signal number), and [`Process::join`] returns [`Error::ProcessDied`] or
//! [`Error::Panicked`] with the panic's message. A daemon child dies with its
//! parent, also when the parent is SIGKILLed; a parent that drops a running
//! non-daemon child waits for it, as Python waits for them at exit.
//!
//! ```no_run
//! use shmprim::process::{self, Process};
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> shmprim::Result<()> {
//!     process::init(); // in a child: runs `square` and exits
//!     let child = Process::spawn(square, 7)?;
//!     assert_eq!(child.join()?, 49);
//!     Ok(())
//! }
//! ```

mod child;
pub(crate) mod entry;
mod outcome;
mod payload;
pub mod pool;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

pub use child::{Builder, ChildInfo, Process, active_children, current_name};
#[cfg(feature = "serde")]
pub use payload::Serde;
pub use payload::{Payload, from_bytes, take, to_bytes};
pub use pool::{AsyncResult, Pool, PoolBuilder};

use crate::error::{Error, Result};

/// The environment variable that carries the boot descriptor to a spawned child.
const BOOT_FD_VAR: &str = "SHMPRIM_PROCESS_FD";

/// Set by [`init`]: spawning is allowed.
static INITIALISED: AtomicBool = AtomicBool::new(false);
/// Set by [`test_harness!`](crate::test_harness): the path of the test that
/// calls [`init`] in a child of a test binary.
static HARNESS_TEST: OnceLock<String> = OnceLock::new();

/// Call first thing in `main`. In the parent it records that children may be
/// spawned and returns; in a spawned child it runs the child's function and
/// exits the process, never returning.
pub fn init() {
    INITIALISED.store(true, Ordering::Relaxed);
    let Some(fd) = std::env::var_os(BOOT_FD_VAR) else {
        return;
    };
    // SAFETY: `init` runs first in `main` (or as the only test of a harness
    // child), before this process starts threads that read the environment.
    unsafe { std::env::remove_var(BOOT_FD_VAR) };
    child::run_spawned(fd)
}

/// Called by [`test_harness!`](crate::test_harness) before `main`: children of
/// this test binary run `<module>::shmprim_process_child`.
#[doc(hidden)]
pub fn enable_test_harness(module_path: &str) {
    let within_crate = module_path.split_once("::").map(|(_, rest)| rest);
    let test = match within_crate {
        Some(path) => format!("{path}::shmprim_process_child"),
        None => "shmprim_process_child".to_owned(),
    };
    let _ = HARNESS_TEST.set(test);
    INITIALISED.store(true, Ordering::Relaxed);
}

/// Lets a test binary (a `#[test]` file, whose `main` the test harness owns)
/// spawn children: put it once at the top level of the file.
///
/// It defines a test, `shmprim_process_child`, that each spawned child runs
/// alone and that does nothing in the parent's run, and registers it before
/// `main` starts.
#[macro_export]
macro_rules! test_harness {
    () => {
        #[test]
        fn shmprim_process_child() {
            $crate::process::init();
        }

        #[used]
        #[unsafe(link_section = ".init_array")]
        static SHMPRIM_PROCESS_HARNESS: extern "C" fn() = {
            extern "C" fn register() {
                $crate::process::enable_test_harness(::std::module_path!());
            }
            register
        };
    };
}

/// The error for a spawn before [`init`].
fn not_initialised() -> Error {
    Error::NotInitialised
}

/// The number of CPUs this process may run on (the default pool size).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How a child starts (Python's start methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// Re-execute the current executable, which runs a registered function.
    #[default]
    Spawn,
    /// Fork: the child is a copy of the parent (refused when it has threads).
    Fork,
}

pub(crate) fn check_initialised() -> Result<()> {
    if INITIALISED.load(Ordering::Relaxed) {
        Ok(())
    } else {
        Err(not_initialised())
    }
}
