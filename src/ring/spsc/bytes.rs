//! The byte ring's handles: [`SpscByteRing`] and its two ends, which move
//! length-prefixed records of up to `max_message` bytes.

use super::*;

impl std::fmt::Debug for SpscByteRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpscByteRing")
            .field("name", &self.shared.backing.display_name())
            .field("capacity", &self.shared.ring.cap)
            .field("max_message", &self.shared.ring.unit)
            .finish()
    }
}
impl SpscByteRing {
    /// Creates a named byte ring of at least `capacity` bytes for messages of at
    /// most `max_message` bytes (see [`byte_capacity`] for the rounding).
    pub fn create(name: &str, capacity: usize, max_message: usize) -> Result<SpscByteRing> {
        Self::create_with_options(name, capacity, max_message, &Options::default())
    }

    /// [`create`](Self::create) with handle options.
    pub fn create_with_options(
        name: &str,
        capacity: usize,
        max_message: usize,
        opts: &Options,
    ) -> Result<SpscByteRing> {
        let cap = byte_capacity(capacity, max_message)?;
        let seg = byte_builder(cap, max_message)?
            .options(opts)
            .create_with(name, |ptr, _| {
                // SAFETY: the data area is `memory_size_bytes` bytes, page aligned, ours.
                unsafe { RingHeader::init_bytes(ptr.as_ptr(), cap, max_message) }
            })?;
        crate::segment::finish_create(seg, Self::from_segment)
    }

    /// Opens a named byte ring.
    pub fn open(name: &str) -> Result<SpscByteRing> {
        Self::from_segment(SegmentBuilder::new(Kind::SpscByteRing).open(name)?)
    }

    /// Opens the named byte ring, or creates it; says which it did.
    pub fn open_or_create(
        name: &str,
        capacity: usize,
        max_message: usize,
    ) -> Result<(SpscByteRing, Disposition)> {
        let cap = byte_capacity(capacity, max_message)?;
        let (seg, how) = byte_builder(cap, max_message)?.open_or_create_with(name, |ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { RingHeader::init_bytes(ptr.as_ptr(), cap, max_message) }
        })?;
        seg.expect_param(0, cap as u64, "capacity")?;
        seg.expect_param(1, max_message as u64, "max_message")?;
        Ok((Self::from_segment(seg)?, how))
    }

    /// An anonymous byte ring (`memfd`), shared with children forked afterwards.
    pub fn anonymous(capacity: usize, max_message: usize) -> Result<SpscByteRing> {
        let cap = byte_capacity(capacity, max_message)?;
        let seg = byte_builder(cap, max_message)?.anonymous_with(|ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { RingHeader::init_bytes(ptr.as_ptr(), cap, max_message) }
        })?;
        Self::from_segment(seg)
    }

    /// A byte ring on the heap of this process (threads only).
    pub fn new(capacity: usize, max_message: usize) -> Result<SpscByteRing> {
        let cap = byte_capacity(capacity, max_message)?;
        let shared = Shared::heap(
            RingHeader::memory_size_bytes(cap, max_message)?,
            // SAFETY: the memory is zeroed, aligned to 128 and large enough.
            |mem| unsafe { RingHeader::init_bytes(mem, cap, max_message) },
            FORMAT_BYTES,
            cap as u32,
            max_message as u32,
        )?;
        Ok(SpscByteRing { shared })
    }

    pub(super) fn from_segment(seg: Segment) -> Result<SpscByteRing> {
        let (cap, unit) = stored_geometry(&seg, "byte ring")?;
        if byte_capacity(cap as usize, unit as usize).ok() != Some(cap as usize) {
            return Err(Error::corrupted(
                seg.display_name(),
                format!("byte ring capacity {cap} is too small for messages of {unit} bytes"),
            ));
        }
        Ok(SpscByteRing {
            shared: Shared::open_segment(seg, FORMAT_BYTES, cap, unit)?,
        })
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::SpscByteRing)
    }

    /// The segment (`None` for a heap ring).
    pub fn segment(&self) -> Option<&Segment> {
        self.shared.backing.segment()
    }

    /// Size of the buffer, in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.ring.cap as usize
    }

    /// Largest message, in bytes.
    pub fn max_message(&self) -> usize {
        self.shared.ring.unit as usize
    }

    /// Claims the producer end (`InvalidArgument` while a live participant holds it).
    pub fn producer(&self) -> Result<ByteProducer> {
        let (core, me) = self.shared.take_end(true, ProducerCore::new)?;
        Ok(ByteProducer {
            shared: self.shared.clone(),
            core,
            me,
            watch: PeerWatch::new(),
        })
    }

    /// Claims the consumer end (`InvalidArgument` while a live participant holds it).
    pub fn consumer(&self) -> Result<ByteConsumer> {
        let (core, me) = self.shared.take_end(false, ConsumerCore::new)?;
        Ok(ByteConsumer {
            shared: self.shared.clone(),
            core,
            me,
            watch: PeerWatch::new(),
        })
    }
}
impl std::fmt::Debug for ByteProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteProducer")
            .field("tail", &self.core.tail)
            .finish()
    }
}
impl ByteProducer {
    /// Sends `msg` if it fits now: `Full` if not, `InvalidArgument` if it is
    /// longer than the maximum, `Closed` if the consumer end is closed.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.core.try_send(msg).map_err(|e| self.failed(e))?;
        self.core.wake_hint();
        Ok(())
    }

    /// Sends as many of `msgs` as fit, in order, publishing once; returns how
    /// many (0 when the first does not fit).
    pub fn try_send_many(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        let n = self.core.try_send_many(msgs).map_err(|e| self.failed(e))?;
        if n == 0 && !msgs.is_empty() {
            if let e @ Error::Closed { .. } = self.failed(FULL) {
                return Err(e);
            }
        }
        self.core.wake_hint();
        Ok(n)
    }

    /// Sends a message of `len` bytes written in place by `fill` (which gets
    /// exactly `len` bytes of the ring's buffer, with unspecified contents).
    pub fn try_send_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<()> {
        self.core
            .try_send_with(len, fill)
            .map_err(|e| self.failed(e))?;
        self.core.wake_hint();
        Ok(())
    }

    /// A failed send: `Full` becomes `Closed` once the consumer is gone
    /// (closed, or its process died; see [`PeerWatch`]).
    #[cold]
    #[inline(never)]
    fn failed(&mut self, e: Error) -> Error {
        match e {
            Error::Full { .. } if self.shared.consumer_gone(&mut self.watch) => {
                Error::closed(self.core.name())
            }
            e => e.named(self.core.name()),
        }
    }

    /// Sends `msg`, waiting for room as long as needed.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_deadline(msg, Deadline::never())
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        push_blocking(
            &mut self.core,
            &self.shared,
            Patience::Within(timeout),
            |c| c.try_send(msg),
        )
    }

    /// Sends `msg`, waiting until `deadline` for room; wakes a sleeping consumer
    /// without fail.
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        push_blocking(&mut self.core, &self.shared, deadline, |c| c.try_send(msg))
    }

    /// Queued bytes, framing included (reads the head).
    pub fn len(&mut self) -> Result<usize> {
        self.core.len()
    }

    /// Whether nothing is queued (reads the head).
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}
impl Drop for ByteProducer {
    fn drop(&mut self) {
        self.core.close();
        self.shared.release(true, self.me);
    }
}
impl std::fmt::Debug for ByteConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteConsumer")
            .field("head", &self.core.head)
            .finish()
    }
}
impl ByteConsumer {
    /// Takes the next message: `Empty` if none, `Closed` if none and the
    /// producer end was closed.
    pub fn try_recv(&mut self) -> Result<Vec<u8>> {
        let msg = match self.core.try_recv() {
            Err(Error::Empty { .. }) => self.after_empty(|c| c.try_recv())?,
            r => r?,
        };
        self.core.wake_hint();
        Ok(msg)
    }

    /// An `Empty` answer: once the producer is gone (closed, or its process
    /// died; see [`PeerWatch`]), what it sent first comes out by `retake`,
    /// then `Closed`; else `Empty`.
    #[cold]
    #[inline(never)]
    fn after_empty<R>(&mut self, retake: impl FnOnce(&mut ConsumerCore) -> Result<R>) -> Result<R> {
        if !self.shared.producer_gone(&mut self.watch) {
            return Err(Error::empty(self.core.name()));
        }
        match retake(&mut self.core) {
            Err(Error::Empty { .. }) => Err(Error::closed(self.core.name())),
            r => r,
        }
    }

    /// Takes the next message into `buf` and returns its length. If `buf` is
    /// too small the message stays queued and the error is `BufferTooSmall` (with the size needed);
    /// [`next_len`](Self::next_len) tells the size needed.
    #[inline]
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = match self.core.try_recv_into(buf) {
            Err(Error::Empty { .. }) => self.after_empty(|c| c.try_recv_into(buf))?,
            r => r?,
        };
        self.core.wake_hint();
        Ok(n)
    }

    /// Length of the next message, without taking it: `Empty` if none yet,
    /// `Closed` if none will come.
    pub fn next_len(&mut self) -> Result<usize> {
        match self.core.next_len() {
            Err(Error::Empty { .. }) => self.after_empty(|c| c.next_len()),
            r => r,
        }
    }

    /// Takes up to `max` messages, appending them to `out`, publishing once;
    /// returns how many (0 when empty, `Closed` when empty and closed).
    pub fn try_recv_many(&mut self, out: &mut Vec<Vec<u8>>, max: usize) -> Result<usize> {
        let n = match self.core.try_recv_many(out, max) {
            Err(Error::Empty { .. }) => match self.after_empty(|c| c.try_recv_many(out, max)) {
                Err(Error::Empty { .. }) => return Ok(0),
                r => r?,
            },
            r => r?,
        };
        self.core.wake_hint();
        Ok(n)
    }

    /// Takes the next message, waiting as long as needed.
    pub fn recv(&mut self) -> Result<Vec<u8>> {
        self.recv_deadline(Deadline::never())
    }

    /// Takes the next message, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        pop_blocking(
            &mut self.core,
            &self.shared,
            Patience::Within(timeout),
            ConsumerCore::try_recv,
        )
    }

    /// Takes the next message, waiting until `deadline`; wakes a sleeping
    /// producer without fail. `Closed` once drained if the producer end is
    /// closed or its process died.
    pub fn recv_deadline(&mut self, deadline: Deadline) -> Result<Vec<u8>> {
        pop_blocking(
            &mut self.core,
            &self.shared,
            deadline,
            ConsumerCore::try_recv,
        )
    }

    /// Takes the next message into `buf`, waiting as long as needed; returns
    /// its length. `BufferTooSmall` as for
    /// [`try_recv_into`](Self::try_recv_into) (the message stays queued).
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into_deadline(buf, Deadline::never())
    }

    /// [`recv_into`](Self::recv_into), waiting at most `timeout`.
    pub fn recv_into_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        pop_blocking(
            &mut self.core,
            &self.shared,
            Patience::Within(timeout),
            |core| core.try_recv_into(buf),
        )
    }

    /// [`recv_into`](Self::recv_into), waiting until `deadline`; wakes a
    /// sleeping producer without fail. `Closed` once drained if the producer
    /// end is closed or its process died.
    pub fn recv_into_deadline(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        pop_blocking(&mut self.core, &self.shared, deadline, |core| {
            core.try_recv_into(buf)
        })
    }

    /// Queued bytes, framing included (reads the tail).
    pub fn len(&mut self) -> Result<usize> {
        self.core.len()
    }

    /// Whether nothing is queued (reads the tail).
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}
impl Drop for ByteConsumer {
    fn drop(&mut self) {
        self.core.close();
        self.shared.release(false, self.me);
    }
}
