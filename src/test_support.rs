//! Helpers the crate's own unit tests share. Compiled only for tests: no
//! production module imports it.

use std::time::{Duration, Instant};

use crate::sync::atomic::{AtomicU32, Ordering};

/// Spins (bounded) until `waiters` says someone sleeps.
pub(crate) fn until_asleep(waiters: &AtomicU32) {
    let end = Instant::now() + Duration::from_secs(10);
    while waiters.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < end, "nobody fell asleep");
        std::thread::sleep(Duration::from_millis(1));
    }
}
