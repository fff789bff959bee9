//! The loom shim: the only module that names `std` or `loom` atomics, `UnsafeCell`
//! and thread helpers. Everything else imports them from here, so that building
//! with `RUSTFLAGS="--cfg shmprim_loom"` swaps in loom's model-checked versions.
//!
//! Under loom the state structs are only ever placed on the heap (loom's atomics
//! are not plain memory and must never be mapped into a segment); the named
//! handles still compile but loom tests never run them.

#[cfg(not(shmprim_loom))]
pub(crate) mod atomic {
    #[allow(unused_imports)]
    pub use std::sync::atomic::{
        AtomicBool, AtomicI32, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        compiler_fence, fence,
    };
}

#[cfg(shmprim_loom)]
pub(crate) mod atomic {
    #[allow(unused_imports)]
    pub use loom::sync::atomic::{
        AtomicBool, AtomicI32, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        fence,
    };
    // A compiler fence has no effect at run time, so std's serves loom too
    // (loom's `Ordering` is std's).
    pub use std::sync::atomic::compiler_fence;
}

/// Gives the CPU to another thread or process (a scheduling point under loom).
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(shmprim_loom))]
    std::thread::yield_now();
    #[cfg(shmprim_loom)]
    loom::thread::yield_now();
}

/// Hint to the CPU that we are in a spin loop; under loom, a yield so the model
/// checker can schedule the thread we wait for.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(test)]
    SPIN_HINTS.with(|n| n.set(n.get() + 1));
    #[cfg(not(shmprim_loom))]
    std::hint::spin_loop();
    #[cfg(shmprim_loom)]
    loom::thread::yield_now();
}

#[cfg(test)]
thread_local! {
    /// Spin hints made by this thread (tests only: see [`spin_hints`]).
    static SPIN_HINTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many spin hints this thread has made (tests only).
#[cfg(all(test, not(shmprim_loom)))]
pub(crate) fn spin_hints() -> u64 {
    SPIN_HINTS.with(std::cell::Cell::get)
}

/// An `UnsafeCell` with loom's closure-based API, so the same code compiles
/// against both.
#[cfg(not(shmprim_loom))]
#[derive(Debug, Default)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(shmprim_loom))]
#[allow(dead_code)]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared raw pointer to the value.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a mutable raw pointer to the value.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(shmprim_loom)]
#[allow(unused_imports)]
pub(crate) use loom::cell::UnsafeCell;
