//! Signals and operations: sleeping and waking on the ring's futex words, and
//! the batched push and pop that wait, retry lost claims and recover slots of
//! dead claimers.

use super::*;

impl MpmcRing {
    // ------------------------------------------------------------ signals

    /// Called right after winning a claim of the index (`tail` for a push,
    /// `head` for a pop) with a [`CLAIM`] (SeqCst) CAS: whether a sleeper
    /// registered on `waiters` must be woken once the claimed slots are
    /// published or released. See the Blocking table: either the waiter's retry
    /// sees our claim (and then polls the slot rather than sleep), or we see its
    /// registration here.
    ///
    /// Why no fence is needed (C++20 [atomics.order] p4, which Rust follows):
    /// call the claim CAS `B`, this load `L` (both SeqCst, so `B` precedes `L` in
    /// the single order S), the waiter's registration `R`, its SeqCst fence `X`
    /// and its later load of the index `T`. If `L` missed `R`, `L` is
    /// coherence-ordered before `R`, which happens before `X`: `L` precedes `X`
    /// in S (rule 4.2). If `T` missed `B`, `X` happens before `T`, which is
    /// coherence-ordered before `B`: `X` precedes `B` (rule 4.3). Both at once
    /// would give `B < L < X < B` in S, a cycle. On x86-64 the CAS is a locked
    /// instruction and the load a plain one: the sleeper check costs nothing.
    ///
    /// Loom treats SeqCst accesses as AcqRel (it does model SeqCst fences), so
    /// under loom an explicit fence stands in here for that rule; the models
    /// then check the rest of the protocol (claim-time check, polling a claimed
    /// slot), and fail if this fence is removed.
    #[inline]
    pub(super) fn sleepers_after_claim(&self, waiters: &AtomicU32) -> bool {
        // SeqCst fence (loom only): pairs with the waiter's fence between its
        // registration and its retry, standing in for the rule above.
        #[cfg(shmprim_loom)]
        fence(Ordering::SeqCst);
        // SeqCst: with the SeqCst claim CAS, the waker's half of the Dekker pair
        // with the waiter's registration and fence (see above).
        waiters.load(Ordering::SeqCst) != 0
    }

    /// After a recovery changed a stamp: wake every sleeper on both words (the
    /// claim-time check above does not cover a stamp changed by a survivor).
    pub(super) fn notify_recovered(&self) {
        let sig = self.signals();
        // SeqCst fence: pairs with the waiter's fence between its registration
        // and its retry.
        fence(Ordering::SeqCst);
        for (word, waiters) in [
            (&sig.not_empty, &sig.not_empty_waiters),
            (&sig.not_full, &sig.not_full_waiters),
        ] {
            if waiters.load(Ordering::Relaxed) != 0 {
                wake_up(word, usize::MAX);
            }
        }
    }

    /// After the last sender left: wakes every consumer asleep on `not_empty`,
    /// so that it looks at [`Liveness::stream_ended`] again.
    pub fn wake_receivers(&self) {
        let sig = self.signals();
        // Release: a consumer woken by the bump sees what the sender did
        // before (its last messages and its leaving).
        sig.not_empty.fetch_add(1, Ordering::Release);
        // `wake`'s SeqCst fence pairs with the consumer's fence between its
        // registration as a sleeper and its look at the senders.
        crate::wait::wake(&sig.not_empty, &sig.not_empty_waiters, u32::MAX);
    }

    /// Whether [`close`](Self::close) was called.
    #[inline]
    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release store in `close`.
        self.signals().closed.load(Ordering::Acquire) != 0
    }

    /// Closes the ring: later pushes fail with `Closed`, pops drain what is left
    /// and then fail with `Closed`; every sleeper is woken.
    pub fn close(&self) {
        let sig = self.signals();
        // Release: pairs with the Acquire load in `is_closed`.
        sig.closed.store(1, Ordering::Release);
        for word in [&sig.not_empty, &sig.not_full] {
            // Release: a waiter woken by the bump sees `closed`.
            word.fetch_add(1, Ordering::Release);
            crate::wait::wake(word, &AtomicU32::new(1), u32::MAX);
        }
    }

    /// Number of messages in the ring (a snapshot; in-flight claims count as in).
    pub fn len(&self) -> usize {
        let st = self.state();
        loop {
            let t = st.tail.0.load(Ordering::SeqCst);
            let h = st.head.0.load(Ordering::SeqCst);
            if st.tail.0.load(Ordering::SeqCst) == t {
                return t.saturating_sub(h).min(self.cap) as usize;
            }
        }
    }

    /// Whether the ring holds no message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every slot is taken.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    // ------------------------------------------------------------ operations

    pub(super) fn check_message(&self, len: usize) -> Result<()> {
        if len > self.slot_size {
            return Err(Error::invalid_argument(format!(
                "message of {len} bytes exceeds the maximum of {}",
                self.slot_size
            )));
        }
        if !self.has_len && len != self.slot_size {
            return Err(Error::invalid_argument(format!(
                "message of {len} bytes in a ring of {}-byte elements",
                self.slot_size
            )));
        }
        Ok(())
    }

    /// Pushes up to `n` items, `item(i)` giving each one's bytes, waiting until
    /// `deadline` for room for the first (with `try_once`, not waiting at all:
    /// `Full`; the deadline is then ignored, so pass [`Deadline::never`] and
    /// save a clock read); returns how many were pushed (at least
    /// one, and all that fit). `Full` replaced by `Timeout` when the deadline is
    /// not now, `Closed` after [`close`](Self::close).
    pub fn push_with<'s>(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        n: usize,
        item: impl Fn(usize) -> &'s [u8],
        deadline: Deadline,
        try_once: bool,
    ) -> Result<usize> {
        for i in 0..n {
            self.check_message(item(i).len())?;
        }
        if n == 0 {
            return Ok(0);
        }
        let sig = self.signals();
        let mut done = 0;
        let mut tries = 0u32;
        let mut busy_tries = 0u32;
        let mut busy_rounds = 0u32;
        loop {
            if self.is_closed() {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Error::closed(&self.name))
                };
            }
            let step = self.push_step(agent, n - done, &|i| item(done + i))?;
            match step {
                Step::Done(k) => {
                    done += k;
                    if done == n {
                        return Ok(done);
                    }
                    tries = 0;
                    busy_tries = 0;
                    continue;
                }
                _ if done > 0 => return Ok(done),
                Step::Busy { op, pos, stamp } => {
                    if !busy_backoff(&mut busy_tries) {
                        continue;
                    }
                    busy_tries = 0;
                    if self.recover(live, op, pos, stamp) {
                        self.notify_recovered();
                        continue;
                    }
                    if try_once {
                        return Err(Error::full(&self.name));
                    }
                }
                Step::Full => {
                    if try_once {
                        return Err(Error::full(&self.name));
                    }
                    if tries < SPIN_TRIES {
                        tries += 1;
                        crate::sync::spin_hint();
                        continue;
                    }
                }
                Step::Empty | Step::TooBig(_) => unreachable!("push never sees these"),
            }
            tries = 0;
            // Sleep until a pop (or close) bumps `not_full`.
            sig.not_full_waiters.fetch_add(1, Ordering::Relaxed);
            // SeqCst fence: pairs with the fence in `notify` (Dekker pair).
            fence(Ordering::SeqCst);
            let w = sig.not_full.load(Ordering::Acquire);
            let retry = if self.is_closed() {
                Err(Error::closed(&self.name))
            } else {
                self.push_step(agent, n, &item)
            };
            let mut busy = None;
            let outcome = match retry {
                Ok(Step::Done(k)) => Some(Ok(k)),
                Ok(Step::Busy { pos, stamp, .. }) => {
                    busy = Some((pos, stamp));
                    None
                }
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            };
            if outcome.is_none() {
                if deadline.has_passed() {
                    sig.not_full_waiters.fetch_sub(1, Ordering::Relaxed);
                    return Err(Error::timeout(&self.name));
                }
                if let Some((pos, stamp)) = busy {
                    // A consumer has claimed the slot and not released it yet; it
                    // may have checked for sleepers before we registered, so no
                    // wake-up is owed: poll.
                    self.busy_pause(&sig.not_full, w, deadline, &mut busy_rounds, pos, stamp);
                } else {
                    busy_rounds = 0;
                    sleep_slice(&sig.not_full, w, deadline);
                }
            }
            sig.not_full_waiters.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Some(Ok(k)) => {
                    done = k;
                    if done == n {
                        return Ok(done);
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
    }

    /// Pops up to `n` messages, handing each to `sink(i, bytes)`, waiting until
    /// `deadline` for the first; returns how many were delivered (at least one).
    /// With `limit`, pops one message only if it fits in `limit` bytes, else fails
    /// with `BufferTooSmall` naming the size needed and leaves it in place.
    #[allow(clippy::too_many_arguments)]
    pub fn pop_with(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        n: usize,
        limit: Option<usize>,
        mut sink: impl FnMut(usize, SlotBytes<'_>),
        deadline: Deadline,
        try_once: bool,
    ) -> Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        let sig = self.signals();
        let mut done = 0;
        let mut tries = 0u32;
        let mut busy_tries = 0u32;
        let too_big = |len: usize| too_small_error(&self.name, limit.unwrap_or(0), len);
        let mut idle_rounds = 0u64;
        let mut busy_rounds = 0u32;
        // Set once a try found the ring empty and the senders gone: one more
        // look (a last message may have landed in between), then `Closed`.
        let mut ended = false;
        loop {
            // Skipping dead producers' slots delivers nothing; on a corrupted ring
            // that could go on for a very long time, so it is bounded by the
            // deadline (and a try gives up after a lap's worth).
            idle_rounds += 1;
            if idle_rounds > 2 * self.cap + 2 * MAX_RECORDS as u64
                && (try_once || deadline.has_passed())
            {
                return Err(if try_once {
                    Error::empty(&self.name)
                } else {
                    Error::timeout(&self.name)
                });
            }
            let step = self.pop_step(agent, n - done, limit, &mut |i, b| sink(done + i, b))?;
            match step {
                Step::Done(k) => {
                    if k > 0 {
                        idle_rounds = 0;
                    }
                    done += k;
                    if done == n || (done > 0 && limit.is_some()) {
                        return Ok(done);
                    }
                    tries = 0;
                    busy_tries = 0;
                    continue;
                }
                _ if done > 0 => return Ok(done),
                Step::TooBig(len) => return Err(too_big(len)),
                Step::Busy { op, pos, stamp } => {
                    if !busy_backoff(&mut busy_tries) {
                        continue;
                    }
                    busy_tries = 0;
                    if self.recover(live, op, pos, stamp) {
                        self.notify_recovered();
                        continue;
                    }
                    if try_once {
                        return Err(Error::empty(&self.name));
                    }
                }
                Step::Empty => {
                    if self.is_closed() || ended {
                        // Drained: `closed` was set (or the senders were seen
                        // gone) before we found it empty.
                        return Err(Error::closed(&self.name));
                    }
                    if try_once {
                        if live.stream_ended() {
                            ended = true;
                            continue;
                        }
                        return Err(Error::empty(&self.name));
                    }
                    if tries < SPIN_TRIES {
                        tries += 1;
                        crate::sync::spin_hint();
                        continue;
                    }
                }
                Step::Full => unreachable!("pop never sees Full"),
            }
            tries = 0;
            // Sleep until a push (or close) bumps `not_empty`.
            sig.not_empty_waiters.fetch_add(1, Ordering::Relaxed);
            // SeqCst fence: pairs with the fence in `notify` (Dekker pair).
            fence(Ordering::SeqCst);
            let w = sig.not_empty.load(Ordering::Acquire);
            // The senders' count is read after the fence: a sender leaving
            // after it wakes us (`wake_receivers`).
            let closed = self.is_closed() || live.stream_ended();
            let mut busy = None;
            let outcome = match self.pop_step(agent, n, limit, &mut sink) {
                Ok(Step::Done(k)) => Some(Ok(k)),
                Ok(Step::TooBig(len)) => Some(Err(too_big(len))),
                Ok(Step::Empty) if closed => Some(Err(Error::closed(&self.name))),
                Ok(Step::Busy { pos, stamp, .. }) => {
                    busy = Some((pos, stamp));
                    None
                }
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            };
            if outcome.is_none() {
                if deadline.has_passed() {
                    sig.not_empty_waiters.fetch_sub(1, Ordering::Relaxed);
                    return Err(Error::timeout(&self.name));
                }
                if let Some((pos, stamp)) = busy {
                    // A producer has claimed the slot and not published it yet;
                    // it may have checked for sleepers before we registered, so
                    // no wake-up is owed: poll.
                    self.busy_pause(&sig.not_empty, w, deadline, &mut busy_rounds, pos, stamp);
                } else {
                    busy_rounds = 0;
                    sleep_slice(&sig.not_empty, w, deadline);
                }
            }
            sig.not_empty_waiters.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Some(Ok(k)) => {
                    done = k;
                    if done == n || (done > 0 && limit.is_some()) {
                        return Ok(done);
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
    }
}
