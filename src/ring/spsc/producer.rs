//! The producer's fast path: claiming free slots, refreshing its cache of the
//! head, publishing, and noticing a dead consumer.

use super::*;

impl ProducerCore {
    /// The name errors about the ring carry.
    #[inline]
    pub(crate) fn name(&self) -> &crate::ObjectName {
        &self.ring.name
    }

    /// Takes over the producer side: reads and validates both indices and
    /// clears the closed flag a previous producer may have left.
    pub(crate) fn new(ring: RingRef) -> Result<ProducerCore> {
        let hdr = ring.hdr();
        // Acquire: pairs with the Release stores of a previous producer, whose
        // published slots we must not overwrite.
        let tail = hdr.tail.0.load(Ordering::Acquire) & IDX;
        let mut core = ProducerCore {
            tail,
            head_cache: tail,
            head_raw: tail,
            ring,
        };
        match core.refresh() {
            Ok(_) | Err(Error::Closed { .. }) => {}
            Err(e) => return Err(e),
        }
        // Release: publishes nothing new; clears the closed flag. Only the
        // producer writes `tail`, and we are now the producer.
        core.ring.hdr().tail.0.store(tail, Ordering::Release);
        Ok(core)
    }

    /// Free slots (bytes) according to the cache.
    #[inline]
    pub(super) fn free_cached(&self, tail: u32) -> u32 {
        self.ring.cap - (tail.wrapping_sub(self.head_cache) & IDX)
    }

    /// Re-reads the head; returns the free space after `tail`.
    #[cold]
    pub(super) fn refresh_from(&mut self, tail: u32) -> Result<u32> {
        // Acquire: pairs with the consumer's Release store of `head`, so that its
        // reads of the slots it freed happen before we overwrite them.
        let raw = self.ring.hdr().head.0.load(Ordering::Acquire);
        let head = raw & IDX;
        let used = tail.wrapping_sub(head) & IDX;
        if used > self.ring.cap {
            return Err(self.ring.corrupted(format!(
                "head {head} and tail {tail} are {used} apart, more than the capacity {}",
                self.ring.cap
            )));
        }
        self.head_cache = head;
        self.head_raw = raw;
        if raw & CLOSED != 0 {
            return Err(Error::closed(&self.ring.name));
        }
        Ok(self.ring.cap - used)
    }

    pub(crate) fn refresh(&mut self) -> Result<u32> {
        self.refresh_from(self.tail)
    }

    /// Free space after `tail`, refreshing the cache if it shows less than `need`.
    #[inline]
    pub(super) fn reserve(&mut self, tail: u32, need: u32) -> Result<u32> {
        let free = self.free_cached(tail);
        if free >= need {
            Ok(free)
        } else {
            self.refresh_from(tail)
        }
    }

    #[inline]
    pub(super) fn publish(&mut self, tail: u32) {
        self.tail = tail & IDX;
        // Release: pairs with the consumer's Acquire load of `tail`; the slots
        // written before this store are visible to it.
        self.ring.hdr().tail.0.store(self.tail, Ordering::Release);
    }

    /// Wakes a sleeping consumer if the waiter count (read without a fence) says
    /// there is one. See the module doc for why this may miss one.
    #[inline]
    pub(crate) fn wake_hint(&self) {
        let hdr = self.ring.hdr();
        if hdr.waiters.0.consumers.load(Ordering::Relaxed) != 0 {
            wait::wake(&hdr.tail.0, &hdr.waiters.0.consumers, u32::MAX);
        }
    }

    /// Wakes a sleeping consumer: never misses one (fence pair of `wait.rs`).
    #[inline]
    pub(crate) fn wake(&self) {
        let hdr = self.ring.hdr();
        wait::wake(&hdr.tail.0, &hdr.waiters.0.consumers, u32::MAX);
    }

    /// Sleeps until the head moves from the value last read (the ring was full).
    pub(crate) fn wait_for_space(
        &self,
        deadline: Deadline,
        peer_gone: &mut dyn FnMut() -> bool,
    ) -> Result<()> {
        let hdr = self.ring.hdr();
        block_on(
            &hdr.head.0,
            &hdr.waiters.0.producers,
            self.head_raw,
            deadline,
            peer_gone,
            &self.ring.name,
        )
    }

    /// Marks the producer end closed and wakes the consumer.
    pub(crate) fn close(&self) {
        // Release: the consumer that sees the flag (Acquire) has seen every
        // message published before it.
        self.ring.hdr().tail.0.fetch_or(CLOSED, Ordering::Release);
        self.wake();
    }

    /// Queued slots (bytes), after refreshing the head.
    pub(super) fn len(&mut self) -> Result<usize> {
        match self.refresh() {
            Ok(free) => Ok((self.ring.cap - free) as usize),
            Err(Error::Closed { .. }) => {
                Ok((self.tail.wrapping_sub(self.head_cache) & IDX) as usize)
            }
            Err(e) => Err(e),
        }
    }

    // ---- stamped elements

    /// Pushes `value` into a stamped ring: the value, the tail as for any ring
    /// (so that `len`, sleepers and batches see it move), then the slot's stamp.
    /// The stamp comes last, so a consumer that takes the value by its stamp
    /// never runs ahead of the published tail. `Full` or `Closed` as for
    /// [`Producer::try_push`].
    ///
    /// # Safety
    ///
    /// The ring was opened with [`RingRef::open_stamped`] for elements of `T`.
    #[inline]
    pub(crate) unsafe fn try_push_stamped<T: Pod>(&mut self, value: T) -> Result<()> {
        // SAFETY: a stamped ring of `T` (caller).
        unsafe {
            self.push_stamped_by(|ring, tail| {
                let slot = ring.stamped::<T>(tail);
                // SAFETY: the slot is ours until published (`push_stamped_by`).
                slot.value.with_mut(|p| p.write(value));
            })
        }
    }

    /// [`try_push_stamped`](Self::try_push_stamped) of an element given as
    /// its bytes (`elem.len()` is the ring's unit), which a slot holds
    /// `offset` bytes after its stamp.
    ///
    /// # Safety
    ///
    /// The ring was opened with [`RingRef::open_stamped`] with a stride of at
    /// least `offset + unit`.
    #[inline]
    pub(crate) unsafe fn try_push_stamped_bytes(
        &mut self,
        elem: &[u8],
        offset: usize,
    ) -> Result<()> {
        // A hard check: the copy relies on it.
        assert_eq!(
            elem.len(),
            self.ring.unit as usize,
            "element of another size"
        );
        // SAFETY: as the caller guarantees; `elem` is `unit` bytes, which fit
        // in the slot after `offset`.
        unsafe {
            self.push_stamped_by(|ring, tail| {
                std::ptr::copy_nonoverlapping(
                    elem.as_ptr(),
                    ring.stamped_bytes(tail, offset),
                    elem.len(),
                )
            })
        }
    }

    /// The protocol of a stamped push: `write` fills the slot of `tail` (the
    /// consumer does not read it until the tail or the stamp publishes it),
    /// then the tail is published, then the stamp.
    ///
    /// # Safety
    ///
    /// The ring was opened with [`RingRef::open_stamped`]; `write` writes
    /// only the value of the slot of the position it is given.
    #[inline(always)]
    pub(super) unsafe fn push_stamped_by(
        &mut self,
        write: impl FnOnce(&RingRef, u32),
    ) -> Result<()> {
        let tail = self.tail;
        if self.free_cached(tail) == 0 && self.refresh_from(tail)? == 0 {
            return Err(FULL);
        }
        // Fewer than `cap` slots are queued, so the consumer does not read
        // this one until the tail or the stamp below publishes it.
        write(&self.ring, tail);
        self.publish(tail.wrapping_add(1));
        // Release: pairs with the consumer's Acquire load of the stamp in
        // `pop_stamped_by`: the value and the tail stored above are visible
        // to it.
        // SAFETY: a stamped ring (caller).
        unsafe { self.ring.stamp_at(tail) }.store(tail | STAMPED, Ordering::Release);
        Ok(())
    }

    // ---- byte records

    /// Writes one record of `len` bytes after `*pending` (not yet published),
    /// filling the payload with `fill(words, byte_offset)`.
    #[inline]
    pub(super) fn stage_record(
        &mut self,
        pending: &mut u32,
        len: usize,
        fill: impl FnOnce(*const Word, usize),
    ) -> Result<()> {
        if len > self.ring.unit as usize {
            return Err(Error::invalid_argument(format!(
                "message of {len} bytes is longer than the ring's maximum of {}",
                self.ring.unit
            )));
        }
        let rec = record_size(len) as u32;
        let pos = *pending & self.ring.mask;
        let to_end = self.ring.cap - pos;
        let need = if rec <= to_end { rec } else { to_end + rec };
        if self.reserve(*pending, need)? < need {
            return Err(FULL);
        }
        let words = self.ring.words();
        let mut t = *pending;
        let mut pos = pos as usize;
        if rec > to_end {
            // SAFETY: `pos < cap`, and the `need` bytes from `pos` (wrapping) are
            // free: the consumer does not read them until we publish.
            unsafe { write_word(words, pos, PAD) };
            t = t.wrapping_add(to_end);
            pos = 0;
        }
        // SAFETY: the record (`rec <= cap - pos` bytes from `pos`) is free, as above.
        unsafe { write_word(words, pos, len as u64) };
        fill(words, pos + RECORD_HEADER);
        *pending = t.wrapping_add(rec) & IDX;
        Ok(())
    }

    #[inline]
    pub(crate) fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        let mut pending = self.tail;
        self.stage_record(&mut pending, msg.len(), |words, off| {
            // SAFETY: `stage_record` hands us the free payload area of `msg.len()` bytes.
            unsafe { write_bytes(words, off, msg) }
        })?;
        self.publish(pending);
        Ok(())
    }

    pub(super) fn try_send_many(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        let mut pending = self.tail;
        let mut sent = 0;
        let mut result = Ok(());
        for msg in msgs {
            match self.stage_record(&mut pending, msg.len(), |words, off| {
                // SAFETY: as in `try_send`.
                unsafe { write_bytes(words, off, msg) }
            }) {
                Ok(()) => sent += 1,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if sent > 0 {
            self.publish(pending);
            return Ok(sent);
        }
        match result {
            Err(Error::Full { .. }) | Ok(()) => Ok(0),
            Err(e) => Err(e),
        }
    }

    pub(super) fn try_send_with(&mut self, len: usize, f: impl FnOnce(&mut [u8])) -> Result<()> {
        let mut pending = self.tail;
        self.stage_record(&mut pending, len, |words, off| {
            #[cfg(not(shmprim_loom))]
            {
                // SAFETY: `stage_record` hands us `len` free, in-bounds bytes at
                // `off`; the consumer does not read them before we publish.
                let area =
                    unsafe { std::slice::from_raw_parts_mut((words as *mut u8).add(off), len) };
                f(area);
            }
            #[cfg(shmprim_loom)]
            {
                let mut tmp = vec![0u8; len];
                f(&mut tmp);
                // SAFETY: as above.
                unsafe { write_bytes(words, off, &tmp) };
            }
        })?;
        self.publish(pending);
        Ok(())
    }
}
