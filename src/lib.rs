//! # shmprim
//!
//! Python's `multiprocessing` done natively: [`Process`] and a [`Pool`] that
//! loses only the task of a worker that dies, and the primitives processes talk
//! through (Queue, Pipe, Lock, RLock, Semaphore, Event, Condition, Barrier,
//! Value, Array), living in named shared memory, with a C ABI so that C and C++
//! programs share the very same objects. Every operation is loads and stores on
//! mapped memory; the kernel is entered only to sleep or to wake a sleeper.
//!
//! Two processes talking through a queue (`main` calls
//! [`process::init`] first: a spawned child runs its function there):
//!
//! ```no_run
//! use shmprim::{Process, Queue};
//!
//! fn producer(name: String) {
//!     let q = Queue::<u64>::open(&name).unwrap();
//!     for i in 1..=3 {
//!         q.put(i * 10).unwrap();
//!     }
//! }
//!
//! fn main() -> shmprim::Result<()> {
//!     shmprim::process::init();
//!     let name = format!("jobs-{}", std::process::id());
//!     let q = Queue::<u64>::create(&name, 16)?;
//!     let child = Process::spawn(producer, name.clone())?;
//!     assert_eq!([q.get()?, q.get()?, q.get()?], [10, 20, 30]);
//!     child.join()?;
//!     Queue::<u64>::unlink(&name)
//! }
//! ```
//!
//! Python's `Pool(4).map(f, range(10))`:
//!
//! ```no_run
//! fn f(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> shmprim::Result<()> {
//!     shmprim::process::init();
//!     let p = shmprim::Pool::new(4)?;
//!     assert_eq!(p.map(f, 0..10)?, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
//!     Ok(())
//! }
//! ```
//!
//! | Python `multiprocessing`      | shmprim            |
//! |-------------------------------|--------------------|
//! | `shared_memory.SharedMemory`  | [`Segment`]        |
//! | `Lock`                        | [`Mutex<T>`] (robust), [`RawMutex`] |
//! | `RLock`                       | [`ReentrantMutex<T>`] (robust), [`RawReentrantMutex`] |
//! | `Condition`                   | [`Condvar`] (pairs with [`Mutex`]), [`RawCondvar`] |
//! | `Semaphore`, `BoundedSemaphore` | [`Semaphore`]    |
//! | `Event`                       | [`Event`]          |
//! | `Barrier(parties)`            | [`Barrier`]        |
//! | `Value(typecode, v, lock)`    | [`Value<T>`]       |
//! | `Array(typecode, n, lock)`    | [`Array<T>`]       |
//! | `Queue(maxsize)`              | [`Queue<T>`], [`ByteQueue`] |
//! | `JoinableQueue(maxsize)`      | [`Queue<T>`], [`ByteQueue`] created with [`Options::joinable`] |
//! | `Pipe(duplex)`                | [`Pipe`] ([`PipeEnd`] A and B, two SPSC byte rings) |
//! | (no counterpart: SPSC rings)  | [`SpscRing<T>`], [`SpscByteRing`] |
//! | `Pipe(duplex)` of small values | [`DuplexRing<T>`] ([`DuplexEnd`] A and B, two interleaved SPSC rings) |
//! | `Process(target, args)`       | [`Process`] (spawn or fork), [`process::Builder`] |
//! | `Pool`, `ProcessPoolExecutor` | [`Pool`], [`process::PoolBuilder`] |
//!
//! The foundation every primitive stands on:
//!
//! - [`Segment`]: a named (`shm_open`) or anonymous (`memfd_create`) mapping with a
//!   validated header, created by exactly one process under any race, and a
//!   participant table that tells live processes from dead ones
//!   ([`Segment::participants`]).
//! - [`wait`]: waiting on a 32-bit word in shared memory, spinning briefly and then
//!   sleeping on a shared futex, with [`Deadline`]s on `CLOCK_MONOTONIC`.
//! - [`Error`]: one error type naming the segment involved.
//!
//! Everything read from shared memory is treated as untrusted input: another
//! process, buggy or crashed half way, can write anything into a segment, and the
//! result is an [`Error::Corrupted`], never undefined behaviour.
//!
//! # Migration
//!
//! Changes a program written against an earlier shmprim must make:
//!
//! - **`Queue::close` (and `ByteQueue`'s, `RawQueue`'s) now means "this handle
//!   puts no more"**, as Python's `Queue.close` does; other producers keep
//!   putting. The old close for everyone is [`Queue::shutdown`]`(false)`;
//!   `is_closed` is now [`Queue::is_shutdown`]. Once every sending handle has
//!   closed or its process has died, receivers drain the queue and then get
//!   `Closed`: a consumer no longer needs a sentinel. Open consumers with
//!   [`Options::role`]`(`[`Role::Receive`]`)`, since a handle that may put
//!   holds the stream open. In C, `shmprim_queue_shutdown` and
//!   `shmprim_byte_queue_shutdown` take an `immediate` flag.
//! - [`Options`] has two more public fields, `role` and `joinable`: build it
//!   with `Options::default()` and its setters rather than a struct literal.
//! - A plain-data payload is now known by [`stable_type_name`] (its name
//!   without module paths), its size and its alignment: the same `#[repr(C)]`
//!   struct in two modules or binaries opens the same queue, value or array.
//!   Segments made by an earlier build record the full path and are refused
//!   by the new one: create them again.
//! - A lock released after `OwnerDied` without `mark_consistent` no longer
//!   becomes unrecoverable: the next locker is told `OwnerDied` in turn. A
//!   `LockError` converts into [`Error`] (owner-died: [`Error::OwnerDied`]),
//!   so `lock()?` works in functions returning `shmprim::Result` or
//!   `Box<dyn Error>`; `LockError` itself is no longer a `std::error::Error`.
//!   `RawMutex::SIZE` grew by the flag that keeps this state (8 bytes).
//! - **One shape for every object.** `open_or_create` returns the handle
//!   and a [`Disposition`] (created or opened) for every object, as it did for
//!   queues, values and arrays; in C, `_open_or_create` of semaphores,
//!   events, barriers, condvars and pipes takes a `created` pointer. Every
//!   timed wait answers `Ok` or `Err(Timeout)`: [`Event::wait_timeout`] and
//!   `wait_deadline` no longer return `bool`, [`Event::wait`] returns a
//!   `Result` (a signal handler can end it inside
//!   [`wait::interruptible`]), and so do the pool's
//!   `AsyncResult::wait_timeout` and `MapResult::wait_timeout`. Only
//!   [`Condvar::wait_timeout`] keeps std's shape, since the guard must come
//!   back either way.
//! - **One payload bound.** Every `Pod` type is a [`cell::ShmType`] with no
//!   code to write: remove `impl ShmType for T {}` lines. `bytemuck` is
//!   re-exported as [`bytemuck`].
//! - Values of any type and length go through [`ObjectQueue`] and
//!   [`PipeEnd::send_object`]; `Queue<T>` stays the queue of plain data.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod barrier;
pub mod cell;
pub mod condvar;
pub mod error;
pub mod event;
pub mod inspect;
pub mod mutex;
pub mod pipe;
// Processes and pools wait on real futexes and fork real processes: loom's
// models do not cover them.
#[cfg(not(shmprim_loom))]
pub mod process;
pub mod queue;
pub mod reentrant_mutex;
pub mod ring;
pub mod segment;
pub mod semaphore;
pub(crate) mod sync;
pub(crate) mod sys;
#[cfg(all(test, not(shmprim_loom)))]
mod test_support;
pub mod wait;

pub use barrier::Barrier;
/// The crate payload types derive `Pod` and `Zeroable` from (re-exported so a
/// program needs no dependency of its own on the same version).
pub use bytemuck;
pub use cell::{Array, Value};
pub use condvar::{Condvar, RawCondvar, WaitTimeoutResult};
pub use error::{Error, Mismatch, ObjectName, Result};
pub use event::Event;
pub use mutex::{
    LockError, LockGuard, LockResult, LockStatus, Mutex, MutexGuard, MutexOptions, RawMutex,
};
pub use pipe::{Pipe, PipeEnd};
#[cfg(not(shmprim_loom))]
pub use process::{Pool, Process};
#[cfg(not(shmprim_loom))]
pub use queue::ObjectQueue;
pub use queue::{ByteQueue, Queue};
pub use reentrant_mutex::{RawReentrantMutex, ReentrantMutex, ReentrantMutexGuard};
pub use ring::duplex::{DuplexEnd, DuplexRing};
pub use ring::spsc::{SpscByteRing, SpscRing};
pub use segment::{
    Disposition, HeaderInfo, Kind, Options, Participant, ParticipantId, Role, Segment,
    SegmentBuilder, TypeCode, TypeDesc, stable_type_name,
};
pub use semaphore::Semaphore;
pub use wait::Deadline;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Crate version, as `major.minor.patch`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
