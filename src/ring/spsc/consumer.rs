//! The consumer's fast path: reading published slots, refreshing its cache of the
//! tail, releasing them to the producer, and noticing a dead producer.

use super::*;

impl ConsumerCore {
    /// The name errors about the ring carry.
    #[inline]
    pub(crate) fn name(&self) -> &crate::ObjectName {
        &self.ring.name
    }

    /// Takes over the consumer side: reads and validates both indices and
    /// clears the closed flag a previous consumer may have left.
    pub(crate) fn new(ring: RingRef) -> Result<ConsumerCore> {
        // Relaxed: only the consumer writes `head`, and we are now the consumer
        // (the claim's Acquire ordered us after the previous one).
        let head = ring.hdr().head.0.load(Ordering::Relaxed) & IDX;
        let mut core = ConsumerCore {
            head,
            tail_cache: head,
            tail_raw: head,
            prefetch: ring.prefetch,
            ring,
        };
        core.refresh()?;
        // Release: pairs with the producer's Acquire load of `head`.
        core.ring.hdr().head.0.store(head, Ordering::Release);
        Ok(core)
    }

    /// Re-reads the tail; returns the number of queued slots (bytes) after
    /// the head. The line of the head's slot is prefetched beside the tail
    /// where that pays (see [`prefetch`](Self::prefetch)).
    #[cold]
    pub(super) fn refresh(&mut self) -> Result<u32> {
        // Acquire: pairs with the producer's Release store of `tail`, so the
        // slots it published are visible before we read them.
        let raw = self.ring.hdr().tail.0.load(Ordering::Acquire);
        if self.prefetch {
            self.ring.prefetch_slot(self.head);
        }
        let tail = raw & IDX;
        let avail = tail.wrapping_sub(self.head) & IDX;
        if avail > self.ring.cap {
            return Err(self.tail_corruption());
        }
        self.tail_cache = tail;
        self.tail_raw = raw;
        Ok(avail)
    }

    /// [`refresh`](Self::refresh) building no [`Error`]: `Corrupted` when
    /// the tail is further from the head than the capacity. Only the C
    /// calls' polling path uses it: built on it, the Rust `try_pop` made a
    /// busy-polling ping-pong over two rings slower (about 120 ns against
    /// 93 per round trip, alternated builds), so that path keeps `refresh`.
    #[cold]
    pub(super) fn refresh_quiet(&mut self) -> Result<u32, TryError> {
        // Acquire: pairs with the producer's Release store of `tail`, so the
        // slots it published are visible before we read them.
        let raw = self.ring.hdr().tail.0.load(Ordering::Acquire);
        if self.prefetch {
            self.ring.prefetch_slot(self.head);
        }
        let tail = raw & IDX;
        let avail = tail.wrapping_sub(self.head) & IDX;
        if avail > self.ring.cap {
            return Err(TryError::Corrupted);
        }
        self.tail_cache = tail;
        self.tail_raw = raw;
        Ok(avail)
    }

    /// What a `Corrupted` answer of [`refresh_quiet`](Self::refresh_quiet)
    /// was about (re-reads the tail).
    #[cold]
    pub(super) fn tail_corruption(&self) -> Error {
        let tail = self.ring.hdr().tail.0.load(Ordering::Relaxed) & IDX;
        let avail = tail.wrapping_sub(self.head) & IDX;
        self.ring.corrupted(format!(
            "head {} and tail {tail} are {avail} apart, more than the capacity {}",
            self.head, self.ring.cap
        ))
    }

    #[inline]
    pub(super) fn avail_cached(&self, head: u32) -> u32 {
        self.tail_cache.wrapping_sub(head) & IDX
    }

    /// Queued slots (bytes) after `head`, refreshing if the cache shows fewer
    /// than `need`; `Empty` (or `Closed` once the producer closed) if none.
    #[inline]
    pub(super) fn available(&mut self, head: u32, need: u32) -> Result<u32> {
        let avail = self.avail_cached(head);
        if avail >= need {
            return Ok(avail);
        }
        self.refresh()?;
        let avail = self.avail_cached(head);
        if avail == 0 {
            return Err(if self.tail_raw & CLOSED != 0 {
                Error::closed(&self.ring.name)
            } else {
                EMPTY
            });
        }
        Ok(avail)
    }

    /// [`available`](Self::available) building no [`Error`], for the C
    /// calls' polling path (an empty ring is its most frequent answer; see
    /// `refresh_quiet` for why the Rust `try_pop` does not use it).
    #[inline]
    pub(crate) fn available_quiet(&mut self, head: u32, need: u32) -> Result<u32, TryError> {
        let avail = self.avail_cached(head);
        if avail >= need {
            return Ok(avail);
        }
        self.refresh_quiet()?;
        let avail = self.avail_cached(head);
        if avail == 0 {
            return Err(if self.tail_raw & CLOSED != 0 {
                TryError::Closed
            } else {
                TryError::Empty
            });
        }
        Ok(avail)
    }

    #[inline]
    pub(super) fn publish(&mut self, head: u32) {
        self.head = head & IDX;
        // Release: pairs with the producer's Acquire load of `head`: our reads
        // of the freed slots happen before it overwrites them.
        self.ring.hdr().head.0.store(self.head, Ordering::Release);
    }

    #[inline]
    pub(crate) fn wake_hint(&self) {
        let hdr = self.ring.hdr();
        if hdr.waiters.0.producers.load(Ordering::Relaxed) != 0 {
            wait::wake(&hdr.head.0, &hdr.waiters.0.producers, u32::MAX);
        }
    }

    /// Wakes a sleeping producer: never misses one (fence pair of `wait.rs`).
    #[inline]
    pub(crate) fn wake(&self) {
        let hdr = self.ring.hdr();
        wait::wake(&hdr.head.0, &hdr.waiters.0.producers, u32::MAX);
    }

    /// Sleeps until the tail moves from the value last read (the ring was empty).
    pub(crate) fn wait_for_data(
        &self,
        deadline: Deadline,
        peer_gone: &mut dyn FnMut() -> bool,
    ) -> Result<()> {
        let hdr = self.ring.hdr();
        block_on(
            &hdr.tail.0,
            &hdr.waiters.0.consumers,
            self.tail_raw,
            deadline,
            peer_gone,
            &self.ring.name,
        )
    }

    /// Marks the consumer end closed and wakes the producer.
    pub(crate) fn close(&self) {
        // Release: orders our last reads of the slots before the flag.
        self.ring.hdr().head.0.fetch_or(CLOSED, Ordering::Release);
        self.wake();
    }

    pub(crate) fn len(&mut self) -> Result<usize> {
        Ok(self.refresh()? as usize)
    }

    // ---- stamped elements

    /// Pops the oldest element of a stamped ring. When the cached tail shows
    /// nothing, the slot's stamp says whether its value is published; if it is
    /// not, `by_stamp` answers `Empty` from the stamp alone (the slot's line is
    /// the one the producer writes next, so polling it costs no other line),
    /// and otherwise the tail is read as in [`Consumer::try_pop`], which also
    /// sees `Closed` and a corrupted tail.
    ///
    /// # Safety
    ///
    /// The ring was opened with [`RingRef::open_stamped`] for elements of `T`.
    #[inline]
    pub(crate) unsafe fn try_pop_stamped<T: Pod>(&mut self, by_stamp: bool) -> Result<T> {
        // SAFETY: a stamped ring of `T` (caller).
        unsafe {
            self.pop_stamped_by(by_stamp, |ring, head| {
                // SAFETY: the slot is published and stays ours until the head
                // moves (`pop_stamped_by`). `T: Pod`, so any bytes are a valid
                // `T`.
                ring.stamped::<T>(head).value.with(|p| p.read())
            })
        }
    }

    /// [`try_pop_stamped`](Self::try_pop_stamped) into `dst` (`dst.len()` is
    /// the ring's unit), from `offset` bytes after each slot's stamp.
    ///
    /// # Safety
    ///
    /// As for [`ProducerCore::try_push_stamped_bytes`].
    #[inline]
    pub(crate) unsafe fn try_pop_stamped_bytes(
        &mut self,
        dst: &mut [u8],
        offset: usize,
        by_stamp: bool,
    ) -> Result<()> {
        // A hard check: the copy relies on it.
        assert_eq!(dst.len(), self.ring.unit as usize, "buffer of another size");
        // SAFETY: as the caller guarantees; `dst` is `unit` bytes, which the
        // slot holds after `offset`.
        unsafe {
            self.pop_stamped_by(by_stamp, |ring, head| {
                std::ptr::copy_nonoverlapping(
                    ring.stamped_bytes(head, offset),
                    dst.as_mut_ptr(),
                    dst.len(),
                )
            })
        }
    }

    /// The protocol of a stamped pop (see [`try_pop_stamped`](Self::try_pop_stamped)):
    /// once the slot of `head` is known to be published, `read` copies its
    /// value out, then the head moves.
    ///
    /// # Safety
    ///
    /// The ring was opened with [`RingRef::open_stamped`]; `read` reads only
    /// the value of the slot of the position it is given.
    #[inline(always)]
    pub(super) unsafe fn pop_stamped_by<R>(
        &mut self,
        by_stamp: bool,
        read: impl FnOnce(&RingRef, u32) -> R,
    ) -> Result<R> {
        let head = self.head;
        if self.avail_cached(head) == 0 {
            // SAFETY: a stamped ring (caller).
            let stamp = unsafe { self.ring.stamp_at(head) }
                // Acquire: pairs with the producer's Release store of the stamp
                // in `push_stamped_by`, so its value is visible before we read it.
                .load(Ordering::Acquire);
            if stamp == head | STAMPED {
                // The tail was published before the stamp, so it is at least
                // one past `head`; keeps `avail_cached` from wrapping once
                // `head` moves.
                self.tail_cache = head.wrapping_add(1) & IDX;
            } else if by_stamp {
                return Err(EMPTY);
            } else {
                self.available(head, 1)?;
            }
        }
        // The slot is published (by its stamp or by the tail read with
        // Acquire), and the producer does not reuse it before we move the head.
        let value = read(&self.ring, head);
        self.publish(head.wrapping_add(1));
        Ok(value)
    }

    // ---- byte records

    /// Finds the next record after `*pending` (skipping a pad, which advances
    /// `*pending`): returns the payload's byte offset, its length and the
    /// record size. Validates every header against the capacity, the maximum
    /// message size and the published tail.
    ///
    /// The common case, a published message record at `*pending`, is decided
    /// inline; padding, and every answer that needs an error built, go to
    /// [`peek_record_slow`](Self::peek_record_slow), which reads the header
    /// again and checks it the same way. Out of line, the whole function
    /// returned its 40-byte `Result` through memory on every message: one
    /// thread's `try_send` + `try_recv_into` of 8 bytes took 18.1 ns with it
    /// so, against 16.9 ns inline.
    #[inline]
    pub(super) fn peek_record(&mut self, pending: &mut u32) -> Result<(usize, usize, u32)> {
        let avail = self.available(*pending, RECORD_HEADER as u32)?;
        if avail >= RECORD_HEADER as u32 {
            let pos = *pending & self.ring.mask;
            // SAFETY: `pos` is a multiple of 8 below the capacity, so in
            // bounds; `avail >= 8` says the producer published this header.
            let header = unsafe { read_word(self.ring.words(), pos as usize) };
            // A pad (`u64::MAX`) is larger than any maximum message.
            if header <= u64::from(self.ring.unit) {
                let len = header as usize;
                let rec = record_size(len) as u32;
                if rec <= self.ring.cap - pos && rec <= avail {
                    self.prefetch = rec <= PREFETCH_MAX_RECORD;
                    return Ok((pos as usize + RECORD_HEADER, len, rec));
                }
            }
        }
        self.peek_record_slow(pending)
    }

    /// [`peek_record`](Self::peek_record) for padding and for every answer
    /// that is an error.
    #[cold]
    #[inline(never)]
    pub(super) fn peek_record_slow(&mut self, pending: &mut u32) -> Result<(usize, usize, u32)> {
        let words = self.ring.words();
        for _ in 0..2 {
            let avail = self.available(*pending, RECORD_HEADER as u32)?;
            if avail < RECORD_HEADER as u32 {
                return Err(self
                    .ring
                    .corrupted(format!("{avail} bytes queued, less than a record header")));
            }
            let pos = *pending & self.ring.mask;
            let to_end = self.ring.cap - pos;
            // SAFETY: `pos` is a multiple of 8 below the capacity, so in bounds;
            // `avail >= 8` says the producer published this header.
            let header = unsafe { read_word(words, pos as usize) };
            if header == PAD {
                if pos == 0 || to_end > avail {
                    return Err(self.ring.corrupted(format!(
                        "padding at offset {pos} covers {to_end} bytes, {avail} queued"
                    )));
                }
                *pending = pending.wrapping_add(to_end) & IDX;
                continue;
            }
            if header > u64::from(self.ring.unit) {
                return Err(self.ring.corrupted(format!(
                    "record length {header} is larger than the maximum of {}",
                    self.ring.unit
                )));
            }
            let len = header as usize;
            let rec = record_size(len) as u32;
            if rec > to_end || rec > avail {
                return Err(self.ring.corrupted(format!(
                    "record of {rec} bytes at offset {pos} runs past the buffer end or the \
                     {avail} queued bytes"
                )));
            }
            self.prefetch = rec <= PREFETCH_MAX_RECORD;
            return Ok((pos as usize + RECORD_HEADER, len, rec));
        }
        Err(self
            .ring
            .corrupted("two consecutive padding records".to_owned()))
    }

    /// The length of the next message, without taking it.
    pub(crate) fn next_len(&mut self) -> Result<usize> {
        let mut pending = self.head;
        self.peek_record(&mut pending).map(|(_, len, _)| len)
    }

    /// Takes the next message into `buf`; leaves it queued if `buf` is too small.
    #[inline]
    pub(crate) fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut pending = self.head;
        let (off, len, rec) = self.peek_record(&mut pending)?;
        if len > buf.len() {
            return Err(Error::BufferTooSmall {
                name: self.ring.name.clone(),
                needed: len,
                available: buf.len(),
            });
        }
        // SAFETY: `peek_record` checked that the payload lies in bounds and in
        // the published part of the buffer.
        unsafe { read_bytes(self.ring.words(), off, &mut buf[..len]) };
        self.publish(pending.wrapping_add(rec));
        Ok(len)
    }

    /// Takes the next message into a new vector.
    pub(crate) fn try_recv(&mut self) -> Result<Vec<u8>> {
        let mut pending = self.head;
        let (off, len, rec) = self.peek_record(&mut pending)?;
        let mut out = vec![0u8; len];
        // SAFETY: as in `try_recv_into`.
        unsafe { read_bytes(self.ring.words(), off, &mut out) };
        self.publish(pending.wrapping_add(rec));
        Ok(out)
    }

    pub(super) fn try_recv_many(&mut self, out: &mut Vec<Vec<u8>>, max: usize) -> Result<usize> {
        let mut pending = self.head;
        let mut taken = 0;
        let mut result = Ok(());
        while taken < max {
            let mut next = pending;
            match self.peek_record(&mut next) {
                Ok((off, len, rec)) => {
                    let mut msg = vec![0u8; len];
                    // SAFETY: as in `try_recv_into`.
                    unsafe { read_bytes(self.ring.words(), off, &mut msg) };
                    out.push(msg);
                    pending = next.wrapping_add(rec) & IDX;
                    taken += 1;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if taken > 0 {
            self.publish(pending);
            return Ok(taken);
        }
        match result {
            Ok(()) => Ok(0),
            Err(e) => Err(e),
        }
    }
}
