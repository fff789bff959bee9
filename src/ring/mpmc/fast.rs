//! One-element operations: the inlined attempt `Queue`'s `put` and `get` make
//! before the general path, with the answers it gives back in [`Fast`].

use super::*;

impl MpmcRing {
    // ------------------------------------------------------------ one element

    /// What a fast-path outcome other than [`Fast::Slow`] means for the caller.
    #[inline]
    pub(crate) fn fast_result<T>(&self, fast: Fast<T>) -> Result<T> {
        match fast {
            Fast::Done(v) => Ok(v),
            Fast::Full => Err(Error::full(&self.name)),
            Fast::Empty => Err(Error::empty(&self.name)),
            Fast::Closed => Err(Error::closed(&self.name)),
            Fast::WrongLength { pos, len } => Err(self.wrong_length(pos, len)),
            Fast::Slow | Fast::Lost => unreachable!("the caller takes the general path"),
        }
    }

    #[cold]
    pub(super) fn wrong_length(&self, pos: u64, len: usize) -> Error {
        self.corrupted(format!(
            "message length {len} in a ring of {}-byte values at position {pos}",
            self.slot_size
        ))
    }

    /// Pushes one `T` (the ring's slots must be `size_of::<T>()` bytes, as in
    /// [`Queue`](crate::Queue)), waiting until `deadline` for room unless
    /// `try_once` (`Full` at once). The same as [`push_with`](Self::push_with) of
    /// its bytes, with the common case (room at `tail`, no contention) done
    /// inline: one claim CAS, a typed store, the stamp.
    #[inline]
    pub fn push_value<T: Pod>(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        value: &T,
        deadline: Deadline,
        try_once: bool,
    ) -> Result<()> {
        match retrying_lost(|| self.push_value_fast(agent, value, try_once, false)) {
            Fast::Slow | Fast::Lost => {}
            fast => return self.fast_result(fast),
        }
        self.push_with(
            agent,
            live,
            1,
            |_| bytemuck::bytes_of(value),
            deadline,
            try_once,
        )
        .map(drop)
    }

    /// One uncontended attempt at [`push_value`](Self::push_value): `Done` when
    /// it pushed, `Full` when (with `try_once`) it found the ring full (by the
    /// slot's stamp alone with `by_stamp`: see [`Fast::Full`]); `Lost` when
    /// another producer took the slot first; `Slow` leaves everything else
    /// (busy, closed, corruption) to the general path. `Lost` and `Slow` have
    /// changed nothing but a cleared claim record.
    ///
    /// Only the taking of a free slot is inlined; a slot that is not free is
    /// classified out of line ([`push_miss`](Self::push_miss)), so that the
    /// code around a caller's put stays short.
    #[inline(always)]
    pub(crate) fn push_value_fast<T: Pod>(
        &self,
        agent: &Agent,
        value: &T,
        try_once: bool,
        by_stamp: bool,
    ) -> Fast<()> {
        let size = std::mem::size_of::<T>();
        self.push_fast_by(agent, size, try_once, by_stamp, |data| {
            // SAFETY: `data` is the claimed slot's `slot_size == size_of::<T>()`
            // bytes (`push_fast_by`); unaligned because slot data is only
            // 8-byte aligned.
            unsafe { std::ptr::write_unaligned(data.cast::<T>(), *value) }
        })
    }

    /// [`push_value_fast`](Self::push_value_fast) of an element given as its
    /// bytes (the C functions); `msg.len()` must be the slot size, else `Slow`.
    #[inline(always)]
    pub(crate) fn push_bytes_fast(
        &self,
        agent: &Agent,
        msg: &[u8],
        try_once: bool,
        by_stamp: bool,
    ) -> Fast<()> {
        self.push_fast_by(agent, msg.len(), try_once, by_stamp, |data| {
            // SAFETY: `data` is the claimed slot's `slot_size == msg.len()`
            // bytes (`push_fast_by`), which `msg` does not overlap.
            unsafe { crate::ring::copy_bytes(msg.as_ptr(), data, msg.len()) }
        })
    }

    /// The protocol of the one-element fast push: `write` fills the claimed
    /// slot's `size` bytes (`size` must be the slot size, else `Slow`).
    #[inline(always)]
    pub(super) fn push_fast_by(
        &self,
        agent: &Agent,
        size: usize,
        try_once: bool,
        by_stamp: bool,
        write: impl FnOnce(*mut u8),
    ) -> Fast<()> {
        if size != self.slot_size || self.is_closed() {
            return Fast::Slow;
        }
        let st = self.state();
        let t = st.tail.0.load(Ordering::Relaxed);
        if t >= POS_LIMIT {
            return Fast::Slow;
        }
        let (slot, data) = self.slot_at(t);
        // Acquire: pairs with the consumer's Release of the slot, as in `push_step`.
        let s = slot.load(Ordering::Acquire);
        if s != 2 * t {
            return self.push_miss(t, s, try_once, by_stamp).into();
        }
        let rec = self.record(agent);
        rec.claim
            .store(encode_claim(t, 1, OP_PUT), Ordering::Relaxed);
        // CLAIM: as in `push_step`.
        if st
            .tail
            .0
            .compare_exchange(t, t + 1, CLAIM, Ordering::Relaxed)
            .is_err()
        {
            // Not ours: the claim must not stay on record (see `push_step`).
            rec.claim.store(IDLE, Ordering::Relaxed);
            first_lost_claim_pause();
            return Fast::Lost;
        }
        let sleepers = self.sleepers_after_claim(&self.signals().not_empty_waiters);
        // We own slot `t` (won the CAS on its free stamp); its data area has
        // `slot_size == size` bytes.
        write(data);
        self.set_len(t, size);
        // Release: pairs with the consumer's Acquire load of the stamp.
        publish_stamp(slot, 2 * t + 1);
        // Release: a survivor that sees the record cleared sees the stamp.
        rec.claim.store(IDLE, Ordering::Release);
        if sleepers {
            wake_up(&self.signals().not_empty, 1);
        }
        Fast::Done(())
    }

    /// [`push_value_fast`](Self::push_value_fast) found stamp `s`, not `2t`, at
    /// `tail == t`: `Full` when (with `try_once`) the previous lap's message is
    /// still there and (unless `by_stamp`) `head` confirms that no consumer has
    /// claimed it; else `Slow`.
    #[inline(never)]
    pub(super) fn push_miss(&self, t: u64, s: u64, try_once: bool, by_stamp: bool) -> Miss {
        let cap = self.cap;
        if try_once && t >= cap && s == 2 * (t - cap) + 1 {
            // The previous lap's message is still there: full, unless its
            // consumer has claimed it.
            if by_stamp {
                // Full as far as this slot can be taken now: see `Fast::Full`.
                return Miss::Full;
            }
            // SeqCst fence: as in `push_step`.
            fence(Ordering::SeqCst);
            // Acquire: as in `push_step`.
            if self
                .state()
                .head
                .0
                .load(Ordering::Acquire)
                .saturating_add(cap)
                <= t
            {
                return Miss::Full;
            }
        }
        Miss::Slow
    }

    /// Pops one `T` (the ring's slots must be `size_of::<T>()` bytes), waiting
    /// until `deadline` unless `try_once` (`Empty` at once); `Closed` once closed
    /// and drained. The common case (a message at `head`, no contention) is done
    /// inline, as in [`push_value`](Self::push_value).
    #[inline]
    pub fn pop_value<T: Pod>(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        deadline: Deadline,
        try_once: bool,
    ) -> Result<T> {
        match retrying_lost(|| self.pop_value_fast(agent, try_once, false)) {
            Fast::Slow | Fast::Lost => {}
            // The general path tells the end of the stream from an empty ring.
            Fast::Empty if live.stream_ended() => {}
            fast => return self.fast_result(fast),
        }
        let mut out = T::zeroed();
        let mut got = 0;
        self.pop_with(
            agent,
            live,
            1,
            None,
            |_, b| {
                got = b.len();
                b.copy_to(bytemuck::bytes_of_mut(&mut out));
            },
            deadline,
            try_once,
        )?;
        if got != std::mem::size_of::<T>() {
            return Err(self.corrupted(format!(
                "message of {got} bytes in a ring of {}-byte values",
                std::mem::size_of::<T>()
            )));
        }
        Ok(out)
    }

    /// One uncontended attempt at [`pop_value`](Self::pop_value): `Done` when it
    /// popped, `Empty` or `Closed` when (with `try_once`) it found the ring
    /// empty (`Empty` by the slot's stamp alone with `by_stamp`: see
    /// [`Fast::Empty`]); `Lost` when another consumer took the slot first;
    /// `Slow` leaves the rest to the general path. As in
    /// [`push_value_fast`](Self::push_value_fast), a slot with nothing to take
    /// is classified out of line ([`pop_miss`](Self::pop_miss)).
    #[inline(always)]
    pub(crate) fn pop_value_fast<T: Pod>(
        &self,
        agent: &Agent,
        try_once: bool,
        by_stamp: bool,
    ) -> Fast<T> {
        self.pop_fast_by(
            agent,
            std::mem::size_of::<T>(),
            try_once,
            by_stamp,
            |data| {
                // SAFETY: `data` is the claimed slot's `slot_size == size_of::<T>()`
                // bytes (`pop_fast_by`), and any bytes are a valid `T` (Pod).
                // Unaligned: slot data is only 8-byte aligned.
                unsafe { std::ptr::read_unaligned(data.cast::<T>()) }
            },
        )
    }

    /// [`pop_value_fast`](Self::pop_value_fast) into `buf` (the C functions),
    /// whose length must be the slot size, else `Slow`.
    #[inline(always)]
    pub(crate) fn pop_bytes_fast(
        &self,
        agent: &Agent,
        buf: &mut [u8],
        try_once: bool,
        by_stamp: bool,
    ) -> Fast<()> {
        let len = buf.len();
        self.pop_fast_by(agent, len, try_once, by_stamp, |data| {
            // SAFETY: `data` is the claimed slot's `slot_size == len` bytes
            // (`pop_fast_by`), which `buf` does not overlap.
            unsafe { crate::ring::copy_bytes(data, buf.as_mut_ptr(), len) }
        })
    }

    /// The protocol of the one-element fast pop: `read` copies the claimed
    /// slot's `size` bytes out (`size` must be the slot size, else `Slow`).
    #[inline(always)]
    pub(super) fn pop_fast_by<R>(
        &self,
        agent: &Agent,
        size: usize,
        try_once: bool,
        by_stamp: bool,
        read: impl FnOnce(*const u8) -> R,
    ) -> Fast<R> {
        if size != self.slot_size {
            return Fast::Slow;
        }
        let st = self.state();
        let h = st.head.0.load(Ordering::Relaxed);
        if h >= POS_LIMIT {
            return Fast::Slow;
        }
        let (slot, data) = self.slot_at(h);
        // Acquire: pairs with the producer's Release publication, as in `pop_step`.
        let s = slot.load(Ordering::Acquire);
        if s != 2 * h + 1 {
            return self.pop_miss(h, s, try_once, by_stamp).into();
        }
        let rec = self.record(agent);
        rec.claim
            .store(encode_claim(h, 1, OP_GET), Ordering::Relaxed);
        // CLAIM: as in `pop_step`.
        if st
            .head
            .0
            .compare_exchange(h, h + 1, CLAIM, Ordering::Relaxed)
            .is_err()
        {
            // Not ours: the claim must not stay on record (see `push_step`).
            rec.claim.store(IDLE, Ordering::Relaxed);
            first_lost_claim_pause();
            return Fast::Lost;
        }
        let sleepers = self.sleepers_after_claim(&self.signals().not_full_waiters);
        let len = self.msg_len(h);
        // We own slot `h` (won the CAS on its full stamp); its data area has
        // `slot_size == size` bytes.
        let value = read(data);
        // Release: pairs with the next lap's producer's Acquire load of the stamp.
        publish_stamp(slot, 2 * (h + self.cap));
        // Release: a survivor that sees the record cleared sees the stamp.
        rec.claim.store(IDLE, Ordering::Release);
        if sleepers {
            wake_up(&self.signals().not_full, 1);
        }
        if len != size {
            return Fast::WrongLength { pos: h, len };
        }
        Fast::Done(value)
    }

    /// [`pop_value_fast`](Self::pop_value_fast) found stamp `s`, not `2h + 1`,
    /// at `head == h`: `Empty` (or `Closed` once closed) when (with
    /// `try_once`) nothing is published there and (unless `by_stamp`) `tail`
    /// confirms that no producer has claimed it; else `Slow`.
    #[inline(never)]
    pub(super) fn pop_miss(&self, h: u64, s: u64, try_once: bool, by_stamp: bool) -> Miss {
        if try_once && s == 2 * h {
            // Nothing published at `head`: empty, unless a producer has
            // claimed it.
            if by_stamp && !self.is_closed() {
                // Empty as far as this slot can be taken now: see
                // `Fast::Empty`. (Once closed, `Closed` needs the index.)
                return Miss::Empty;
            }
            // SeqCst fence: as in `pop_step`.
            fence(Ordering::SeqCst);
            // Acquire: as in `pop_step`.
            if self.state().tail.0.load(Ordering::Acquire) <= h {
                // As the general path: drained once closed.
                return if self.is_closed() {
                    Miss::Closed
                } else {
                    Miss::Empty
                };
            }
        }
        Miss::Slow
    }

    /// Pushes one message, failing with `Full` at once when there is no room.
    pub fn try_push(&self, agent: &Agent, live: &dyn Liveness, msg: &[u8]) -> Result<()> {
        self.push_with(agent, live, 1, |_| msg, Deadline::never(), true)
            .map(drop)
    }

    /// Pushes one message, waiting until `deadline` for room (`Timeout`).
    pub fn push(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        msg: &[u8],
        deadline: Deadline,
    ) -> Result<()> {
        self.push_with(agent, live, 1, |_| msg, deadline, false)
            .map(drop)
    }

    /// Pops one message into `buf`, failing with `Empty` at once when there is
    /// none; returns its length. A message longer than `buf` stays in the ring
    /// (`InvalidArgument` naming its size).
    pub fn try_pop(&self, agent: &Agent, live: &dyn Liveness, buf: &mut [u8]) -> Result<usize> {
        self.pop(agent, live, buf, Deadline::never(), true)
    }

    /// Pops one message into `buf`, waiting until `deadline` (`Timeout`).
    pub fn pop_timeout(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        buf: &mut [u8],
        deadline: Deadline,
    ) -> Result<usize> {
        self.pop(agent, live, buf, deadline, false)
    }

    pub(super) fn pop(
        &self,
        agent: &Agent,
        live: &dyn Liveness,
        buf: &mut [u8],
        deadline: Deadline,
        try_once: bool,
    ) -> Result<usize> {
        let mut got = 0;
        let limit = buf.len();
        self.pop_with(
            agent,
            live,
            1,
            Some(limit),
            |_, b| {
                b.copy_to(buf);
                got = b.len();
            },
            deadline,
            try_once,
        )?;
        Ok(got)
    }
}
