//! The crate's one error type.
//!
//! Every variant says what happened and, where there is one, to which object:
//! the name of its segment (anonymous segments are shown as `<anonymous>`). A
//! child whose `main` returns `Err(e)` prints `Error: Closed { name: "jobs" }`,
//! not a bare `Closed`, and the message (`e.to_string()`) is
//! `segment "jobs": closed`.
//!
//! The outcomes that busy paths return often (`Timeout`, `Full`, `Empty`,
//! `Closed`, ...) carry an [`ObjectName`]: a shared reference to the handle's
//! name, so that returning them never allocates. Match them with `{ .. }`:
//!
//! ```
//! # use shmprim::Error;
//! fn is_end_of_stream(e: &Error) -> bool {
//!     matches!(e, Error::Closed { .. })
//! }
//! ```
//!
//! Only the hot try-forms of the SPSC and duplex rings return the nameless,
//! `Copy` [`TryError`](crate::ring::spsc::TryError) instead; converted into an
//! `Error` with `?` it carries no name ([`ObjectName::is_known`] is false).

use std::fmt;
use std::io;
use std::sync::Arc;

/// The name of the object an error is about: the name of its segment,
/// `<anonymous>` for an anonymous segment, or a description of an object that
/// has no segment name of its own (`the pool`). Cloning it only bumps a
/// reference count, so the errors that carry it are cheap to return.
///
/// An error made where the object is not known (a lock placed in memory the
/// program mapped itself, a [`TryError`](crate::ring::spsc::TryError) turned
/// into an `Error`) carries an unknown name: [`as_str`](Self::as_str) is empty.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ObjectName(Option<Arc<str>>, Sort);

/// Whether an [`ObjectName`] names a segment or describes another object.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
enum Sort {
    #[default]
    Segment,
    /// An object without a segment name of its own ("the pool").
    Described,
}

/// The unknown name, to lend where a name is needed by reference.
pub(crate) static UNKNOWN: ObjectName = ObjectName::unknown();

impl ObjectName {
    /// The name `name`.
    pub fn new(name: &str) -> ObjectName {
        ObjectName(Some(Arc::from(name)), Sort::Segment)
    }

    /// An object that is not known by a segment name, described by `what`
    /// ("the pool").
    pub(crate) fn described(what: &str) -> ObjectName {
        ObjectName(Some(Arc::from(what)), Sort::Described)
    }

    /// An unknown name.
    pub const fn unknown() -> ObjectName {
        ObjectName(None, Sort::Segment)
    }

    /// Whether the name is known.
    pub fn is_known(&self) -> bool {
        self.0.is_some()
    }

    /// The name; empty if unknown.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// `self` if known, otherwise `name`.
    fn or(self, name: &ObjectName) -> ObjectName {
        if self.is_known() { self } else { name.clone() }
    }
}

impl std::ops::Deref for ObjectName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for ObjectName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ObjectName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `segment "jobs": ` before a message, or nothing when the name is unknown.
struct Prefix<'a>(&'a ObjectName);

impl fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0.0, self.0.1) {
            (Some(n), Sort::Segment) => write!(f, "segment {n:?}: "),
            (Some(what), Sort::Described) => write!(f, "{what}: "),
            (None, _) => Ok(()),
        }
    }
}

/// Convenient alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which part of a segment's header did not match what the opener expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// The layout version written by the creator is not the one this build reads.
    Version,
    /// The segment holds another kind of primitive.
    Kind,
    /// The payload type (size, alignment or name) differs.
    Payload,
    /// A creation parameter (capacity, length, parties, ...) differs.
    Parameter,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mismatch::Version => "layout version",
            Mismatch::Kind => "primitive kind",
            Mismatch::Payload => "payload type",
            Mismatch::Parameter => "parameter",
        })
    }
}

/// Everything that can go wrong in shmprim.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The name breaks the naming rule; nothing was asked of the kernel.
    InvalidName {
        /// The name as given (lossily decoded).
        name: String,
        /// Which part of the rule it breaks.
        reason: &'static str,
    },
    /// `create` found a segment of that name already there.
    AlreadyExists {
        /// Segment name.
        name: String,
    },
    /// `open` found no segment of that name.
    NotFound {
        /// Segment name.
        name: String,
    },
    /// The kernel refused access (file mode or ownership).
    PermissionDenied {
        /// Segment name.
        name: String,
    },
    /// The file is not a shmprim segment (its magic bytes are wrong).
    NotShmprim {
        /// Segment name.
        name: String,
    },
    /// The file is smaller than a segment header.
    TooSmall {
        /// Segment name.
        name: String,
        /// Size of the file in bytes.
        size: u64,
        /// Smallest size a segment can have.
        min: u64,
    },
    /// The file is smaller than the size its header claims.
    Truncated {
        /// Segment name.
        name: String,
        /// Size of the file in bytes.
        size: u64,
        /// Size the header claims.
        claimed: u64,
    },
    /// The segment is valid but not what the opener asked for.
    Incompatible {
        /// Segment name.
        name: String,
        /// Which part differs.
        what: Mismatch,
        /// What the opener expected.
        expected: String,
        /// What the segment holds.
        found: String,
    },
    /// The segment's contents break an invariant (bad header field, index out of
    /// range, impossible length): another process wrote garbage into it.
    Corrupted {
        /// Segment name.
        name: String,
        /// What was found to be wrong.
        detail: String,
    },
    /// The process creating the segment died before it was ready.
    CreatorDied {
        /// Segment name.
        name: String,
    },
    /// The segment did not become ready within the open timeout, while its creator
    /// is still alive and initialising it.
    NotReady {
        /// Segment name.
        name: String,
    },
    /// Every participant slot of the segment is held by a live process.
    TooManyParticipants {
        /// Segment name.
        name: String,
        /// Number of slots.
        slots: u32,
    },
    /// A blocking operation reached its deadline.
    Timeout {
        /// The object waited on.
        name: ObjectName,
    },
    /// A non-blocking put found no free slot.
    Full {
        /// The object put into.
        name: ObjectName,
    },
    /// A non-blocking get found nothing to take.
    Empty {
        /// The object taken from.
        name: ObjectName,
    },
    /// The object was closed (queue closed, pipe end closed or its holder died).
    Closed {
        /// The object closed.
        name: ObjectName,
    },
    /// A lock was acquired after its previous owner died holding it, and the
    /// caller let the error take the guard (`lock()?`): the lock is released
    /// again, and the next locker is told the owner died in turn.
    OwnerDied {
        /// Segment name.
        name: String,
    },
    /// The lock's pthread state says unrecoverable (only bytes written into
    /// the segment from outside shmprim can leave it so): the lock can no
    /// longer be used.
    Unrecoverable {
        /// Segment name.
        name: String,
    },
    /// A barrier was aborted, reset or timed out while this party waited.
    BrokenBarrier {
        /// The barrier's segment.
        name: ObjectName,
    },
    /// A signal handler ran while an [`interruptible`](crate::wait::interruptible)
    /// call waited (as `sem_wait` returns `EINTR`).
    Interrupted {
        /// The object waited on.
        name: ObjectName,
    },
    /// The caller released a lock it does not hold.
    NotOwner {
        /// The lock's segment.
        name: ObjectName,
    },
    /// Releasing would raise a bounded semaphore above its bound.
    Overflow {
        /// The semaphore's segment.
        name: ObjectName,
        /// The semaphore's bound.
        bound: u32,
    },
    /// An index was outside `0..len`.
    IndexOutOfRange {
        /// The array's segment.
        name: ObjectName,
        /// The index asked for.
        index: usize,
        /// The length of the array.
        len: usize,
    },
    /// A receive buffer is smaller than the next message, which stays where it
    /// was (queued, or in the ring) for a retry with a big enough buffer.
    BufferTooSmall {
        /// The object received from.
        name: ObjectName,
        /// Size of the next message, in bytes.
        needed: usize,
        /// Size of the buffer given, in bytes.
        available: usize,
    },
    /// An argument is out of its allowed range (a zero capacity, a size too big).
    InvalidArgument {
        /// What is wrong with it.
        detail: String,
    },
    /// A child was to be spawned before [`process::init`](crate::process::init)
    /// ran in this program.
    NotInitialised,
    /// `fork` was refused: the process has more than one thread, and a forked
    /// copy could inherit a lock held by a thread that does not exist in it.
    ForkWithThreads {
        /// How many threads the process has.
        threads: usize,
    },
    /// The function run in a child process or pool worker panicked.
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// A child's or a pool task's function could not run or could not return
    /// its result: its argument did not decode (another build, or another
    /// type), or its result did not fit the pool's `max_message`.
    TaskFailed {
        /// What went wrong.
        detail: String,
    },
    /// A child process ended without returning its function's result.
    ProcessDied {
        /// Its process id.
        pid: u32,
        /// Python's `exitcode`: its exit status, or minus the signal number.
        exitcode: i32,
    },
    /// The pool worker running this task died (a signal, `exit`, `abort`)
    /// before it returned.
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// Python's `exitcode`: its exit status, or minus the signal number.
        exitcode: i32,
    },
    /// A system call failed for a reason not listed above.
    Io {
        /// Segment name, or `<anonymous>`.
        name: String,
        /// The operation that failed (`shm_open`, `ftruncate`, `mmap`, ...).
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// The [`ObjectName`] field of the variants that carry one, borrowed as
/// `$e` is (`&Error` or `&mut Error`), or `None`.
macro_rules! carried {
    ($e:expr) => {
        match $e {
            Error::Timeout { name }
            | Error::Full { name }
            | Error::Empty { name }
            | Error::Closed { name }
            | Error::BrokenBarrier { name }
            | Error::Interrupted { name }
            | Error::NotOwner { name }
            | Error::Overflow { name, .. }
            | Error::IndexOutOfRange { name, .. }
            | Error::BufferTooSmall { name, .. } => Some(name),
            _ => None,
        }
    };
}

impl Error {
    /// Maps an OS error from operation `op` on segment `name` to the most specific
    /// variant.
    pub(crate) fn from_io(name: &str, op: &'static str, source: io::Error) -> Error {
        let name = name.to_owned();
        match source.raw_os_error() {
            Some(libc::EEXIST) => Error::AlreadyExists { name },
            Some(libc::ENOENT) => Error::NotFound { name },
            Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied { name },
            _ => Error::Io { name, op, source },
        }
    }

    /// A [`Corrupted`](Error::Corrupted) error for segment `name`.
    pub fn corrupted(name: &str, detail: impl Into<String>) -> Error {
        Error::Corrupted {
            name: name.to_owned(),
            detail: detail.into(),
        }
    }

    /// A [`Timeout`](Error::Timeout) of the object `name`.
    pub fn timeout(name: &ObjectName) -> Error {
        Error::Timeout { name: name.clone() }
    }

    /// A [`Full`](Error::Full) of the object `name`.
    pub fn full(name: &ObjectName) -> Error {
        Error::Full { name: name.clone() }
    }

    /// An [`Empty`](Error::Empty) of the object `name`.
    pub fn empty(name: &ObjectName) -> Error {
        Error::Empty { name: name.clone() }
    }

    /// A [`Closed`](Error::Closed) of the object `name`.
    pub fn closed(name: &ObjectName) -> Error {
        Error::Closed { name: name.clone() }
    }

    /// The name of the object the error is about, where it has one and it is
    /// known (`None` for an error of a lock in memory the program mapped
    /// itself, for instance).
    pub fn object_name(&self) -> Option<&str> {
        if let Some(name) = carried!(self) {
            return name.0.as_deref();
        }
        match self {
            Error::InvalidName { name, .. }
            | Error::AlreadyExists { name }
            | Error::NotFound { name }
            | Error::PermissionDenied { name }
            | Error::NotShmprim { name }
            | Error::TooSmall { name, .. }
            | Error::Truncated { name, .. }
            | Error::Incompatible { name, .. }
            | Error::Corrupted { name, .. }
            | Error::CreatorDied { name }
            | Error::NotReady { name }
            | Error::TooManyParticipants { name, .. }
            | Error::OwnerDied { name }
            | Error::Unrecoverable { name }
            | Error::Io { name, .. } => (!name.is_empty()).then_some(name.as_str()),
            _ => None,
        }
    }

    /// The error with `name` given to it where its object name is unknown (or
    /// empty): how a handle names what a layer below it, which knows no name,
    /// returned.
    pub(crate) fn named(mut self, name: &ObjectName) -> Error {
        if let Some(n) = carried!(&mut self) {
            *n = std::mem::take(n).or(name);
            return self;
        }
        match &mut self {
            Error::Corrupted { name: n, .. }
            | Error::OwnerDied { name: n }
            | Error::Unrecoverable { name: n }
            | Error::Io { name: n, .. }
                if n.is_empty() =>
            {
                name.as_str().clone_into(n);
            }
            _ => {}
        }
        self
    }

    /// The [`ObjectName`] carried by the variants that carry one (unknown for
    /// the others).
    pub(crate) fn object(&self) -> ObjectName {
        carried!(self).cloned().unwrap_or_default()
    }

    /// An [`InvalidArgument`](Error::InvalidArgument) error.
    pub fn invalid_argument(detail: impl Into<String>) -> Error {
        Error::InvalidArgument {
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName { name, reason } => {
                write!(f, "invalid segment name {name:?}: {reason}")
            }
            Error::AlreadyExists { name } => write!(f, "segment {name:?} already exists"),
            Error::NotFound { name } => write!(f, "segment {name:?} does not exist"),
            Error::PermissionDenied { name } => {
                write!(f, "permission denied on segment {name:?}")
            }
            Error::NotShmprim { name } => {
                write!(f, "segment {name:?} is not a shmprim segment (bad magic)")
            }
            Error::TooSmall { name, size, min } => write!(
                f,
                "segment {name:?} is {size} bytes, smaller than a segment header ({min} bytes)"
            ),
            Error::Truncated {
                name,
                size,
                claimed,
            } => write!(
                f,
                "segment {name:?} is {size} bytes but its header claims {claimed} bytes"
            ),
            Error::Incompatible {
                name,
                what,
                expected,
                found,
            } => write!(
                f,
                "segment {name:?} has an incompatible {what}: expected {expected}, found {found}"
            ),
            Error::Corrupted { name, detail } => {
                write!(f, "segment {name:?} is corrupted: {detail}")
            }
            Error::CreatorDied { name } => write!(
                f,
                "the creator of segment {name:?} died before the segment was ready; unlink it and create it again"
            ),
            Error::NotReady { name } => write!(
                f,
                "segment {name:?} is still being initialised by a live process (open timed out)"
            ),
            Error::TooManyParticipants { name, slots } => write!(
                f,
                "segment {name:?} has all {slots} participant slots held by live processes"
            ),
            Error::Timeout { name } => write!(f, "{}operation timed out", Prefix(name)),
            Error::Full { name } => write!(f, "{}full", Prefix(name)),
            Error::Empty { name } => write!(f, "{}empty", Prefix(name)),
            Error::Closed { name } => write!(f, "{}closed", Prefix(name)),
            Error::OwnerDied { name } => write!(
                f,
                "lock in segment {name:?}: its previous owner died holding it, and the data was not marked consistent"
            ),
            Error::Unrecoverable { name } => write!(
                f,
                "lock in segment {name:?} is unrecoverable: its owner died and the data was never marked consistent"
            ),
            Error::BrokenBarrier { name } => write!(f, "{}barrier is broken", Prefix(name)),
            Error::Interrupted { name } => {
                write!(f, "{}a signal handler interrupted the wait", Prefix(name))
            }
            Error::NotOwner { name } => write!(
                f,
                "{}lock released by a thread that does not own it",
                Prefix(name)
            ),
            Error::Overflow { name, bound } => write!(
                f,
                "{}release would raise the bounded semaphore above {bound}",
                Prefix(name)
            ),
            Error::IndexOutOfRange { name, index, len } => write!(
                f,
                "{}index {index} out of range for length {len}",
                Prefix(name)
            ),
            Error::BufferTooSmall {
                name,
                needed,
                available,
            } => write!(
                f,
                "{}receive buffer of {available} bytes is too small for the next message of \
                 {needed} bytes (the message stays queued)",
                Prefix(name)
            ),
            Error::InvalidArgument { detail } => write!(f, "invalid argument: {detail}"),
            Error::NotInitialised => f.write_str(
                "cannot spawn a child: call shmprim::process::init() first thing in main \
                 (or put shmprim::test_harness!() at the top of a test file)",
            ),
            Error::ForkWithThreads { threads } => write!(
                f,
                "fork refused: this process has {threads} threads, and a forked copy could \
                 inherit a lock held by one of them; use the spawn start method"
            ),
            Error::Panicked { message } => write!(f, "the child panicked: {message}"),
            Error::TaskFailed { detail } => write!(f, "the task could not run: {detail}"),
            Error::ProcessDied { pid, exitcode } => {
                write!(f, "child process {pid} died ({})", describe_exit(*exitcode))
            }
            Error::WorkerDied { pid, exitcode } => {
                write!(f, "pool worker {pid} died ({})", describe_exit(*exitcode))
            }
            Error::Io { name, op, source } => {
                write!(f, "{op} failed on segment {name:?}: {source}")
            }
        }
    }
}

/// Naming the errors of a layer that knows no name (an in-place lock, a
/// ring's bare state) by the handle that called it.
pub(crate) trait Of<T> {
    /// `self` with the unknown object names of its error set to `name`.
    fn of(self, name: &ObjectName) -> Result<T>;
}

impl<T> Of<T> for Result<T> {
    #[inline]
    fn of(self, name: &ObjectName) -> Result<T> {
        match self {
            Ok(v) => Ok(v),
            Err(e) => Err(e.named(name)),
        }
    }
}

/// "killed by signal 9" or "exit code 3", from Python's `exitcode`.
fn describe_exit(exitcode: i32) -> String {
    if exitcode < 0 {
        format!("killed by signal {}", -exitcode)
    } else {
        format!("exit code {exitcode}")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
