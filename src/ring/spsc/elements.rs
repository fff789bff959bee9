//! The element ring's handles: [`SpscRing<T>`] and its two ends, which move
//! `T` values one at a time or in slices.

use super::*;

impl<T: Pod> std::fmt::Debug for SpscRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpscRing")
            .field("name", &self.shared.backing.display_name())
            .field("capacity", &self.shared.ring.cap)
            .finish()
    }
}
impl<T: Pod> SpscRing<T> {
    /// Creates a named ring of `capacity` elements (rounded up to a power of
    /// two, at most [`MAX_CAPACITY`]).
    pub fn create(name: &str, capacity: usize) -> Result<SpscRing<T>> {
        Self::create_with_options(name, capacity, &Options::default())
    }

    /// [`create`](Self::create) with handle options.
    pub fn create_with_options(name: &str, capacity: usize, opts: &Options) -> Result<SpscRing<T>> {
        let cap = element_capacity(capacity)?;
        let seg = element_builder::<T>(cap)?
            .options(opts)
            .create_with(name, |ptr, _| {
                // SAFETY: the data area is `memory_size_elements` bytes, page aligned, ours.
                unsafe { RingHeader::init_elements::<T>(ptr.as_ptr(), cap as usize) }
            })?;
        crate::segment::finish_create(seg, Self::from_segment)
    }

    /// Opens a named ring of `T`.
    pub fn open(name: &str) -> Result<SpscRing<T>> {
        check_element_type::<T>()?;
        Self::from_segment(element_builder::<T>(1)?.open(name)?)
    }

    /// Opens the named ring, or creates it with `capacity` elements.
    pub fn open_or_create(name: &str, capacity: usize) -> Result<(SpscRing<T>, Disposition)> {
        let cap = element_capacity(capacity)?;
        let (seg, how) = element_builder::<T>(cap)?.open_or_create_with(name, |ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { RingHeader::init_elements::<T>(ptr.as_ptr(), cap as usize) }
        })?;
        seg.expect_param(0, u64::from(cap), "capacity")?;
        Ok((Self::from_segment(seg)?, how))
    }

    /// An anonymous ring (`memfd`), shared with children forked afterwards.
    pub fn anonymous(capacity: usize) -> Result<SpscRing<T>> {
        let cap = element_capacity(capacity)?;
        let seg = element_builder::<T>(cap)?.anonymous_with(|ptr, _| {
            // SAFETY: as in `create_with_options`.
            unsafe { RingHeader::init_elements::<T>(ptr.as_ptr(), cap as usize) }
        })?;
        Self::from_segment(seg)
    }

    /// A ring on the heap of this process (threads only).
    pub fn new(capacity: usize) -> Result<SpscRing<T>> {
        let cap = element_capacity(capacity)?;
        let size = RingHeader::memory_size_elements::<T>(cap as usize)?;
        let shared = Shared::heap(
            size,
            // SAFETY: `mem` is `size` zeroed bytes aligned to 128, ours.
            |mem| unsafe { RingHeader::init_elements::<T>(mem, cap as usize) },
            FORMAT_ELEMENTS,
            cap,
            std::mem::size_of::<T>() as u32,
        )?;
        Ok(SpscRing {
            shared,
            _t: PhantomData,
        })
    }

    pub(super) fn from_segment(seg: Segment) -> Result<SpscRing<T>> {
        let (cap, unit) = stored_geometry(&seg, "ring")?;
        seg.expect_param(1, std::mem::size_of::<T>() as u64, "element size")?;
        Ok(SpscRing {
            shared: Shared::open_segment(seg, FORMAT_ELEMENTS, cap, unit)?,
            _t: PhantomData,
        })
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::SpscRing)
    }

    /// The segment (`None` for a heap ring).
    pub fn segment(&self) -> Option<&Segment> {
        self.shared.backing.segment()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.ring.cap as usize
    }

    /// Claims the producer end. Fails with `InvalidArgument` while a live
    /// participant holds it.
    pub fn producer(&self) -> Result<Producer<T>> {
        let (core, me) = self.shared.take_end(true, ProducerCore::new)?;
        Ok(Producer {
            shared: self.shared.clone(),
            core,
            me,
            _t: PhantomData,
            watch: PeerWatch::new(),
        })
    }

    /// Claims the consumer end. Fails with `InvalidArgument` while a live
    /// participant holds it.
    pub fn consumer(&self) -> Result<Consumer<T>> {
        let (core, me) = self.shared.take_end(false, ConsumerCore::new)?;
        Ok(Consumer {
            shared: self.shared.clone(),
            core,
            me,
            _t: PhantomData,
            watch: PeerWatch::new(),
        })
    }
}
impl<T: Pod> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("tail", &self.core.tail)
            .finish()
    }
}
impl<T: Pod> Producer<T> {
    /// The [`Error`] a [`TryError`] answer of this end stands for, naming the
    /// ring (with `?` a `TryError` becomes an `Error` that names nothing).
    #[cold]
    pub fn error(&self, e: TryError) -> Error {
        Error::from(e).named(self.core.name())
    }

    /// Pushes `value` if there is room: `Full` if not, `Closed` if the
    /// consumer end was closed (seen when the ring looks full).
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), TryError> {
        match Self::push_quiet(&mut self.core, value) {
            Ok(()) => {
                self.core.wake_hint();
                Ok(())
            }
            Err(e) => Err(self.push_failed(e)),
        }
    }

    /// A failed push: `Full` becomes `Closed` once the consumer is gone
    /// (closed, or its process died; see [`PeerWatch`]). Out of line, and
    /// answering only the small [`TryError`], so that `try_push` stays the
    /// few instructions it was.
    #[cold]
    #[inline(never)]
    fn push_failed(&mut self, e: Error) -> TryError {
        match e {
            Error::Full { .. } if self.shared.consumer_gone(&mut self.watch) => TryError::Closed,
            e => TryError::from_error(e),
        }
    }

    #[inline]
    pub(super) fn push_quiet(c: &mut ProducerCore, value: T) -> Result<()> {
        let tail = c.tail;
        if c.free_cached(tail) == 0 && c.refresh_from(tail)? == 0 {
            return Err(FULL);
        }
        let i = (tail & c.ring.mask) as usize;
        // SAFETY: `i < cap` (masked); the slot is free (fewer than `cap` queued),
        // so the consumer does not read it until we publish.
        unsafe { write_slots(c.ring.slots::<T>(), i, std::slice::from_ref(&value)) };
        c.publish(tail.wrapping_add(1));
        Ok(())
    }

    /// Pushes as many of `values` as fit, in order, publishing once; returns how
    /// many (0 when full).
    #[inline]
    pub fn push_slice(&mut self, values: &[T]) -> Result<usize, TryError> {
        let c = &mut self.core;
        let tail = c.tail;
        let want = values.len().min(c.ring.cap as usize) as u32;
        let free = c.reserve(tail, want).map_err(TryError::from_error)?;
        let n = free.min(want) as usize;
        if n == 0 {
            return match self.push_failed(FULL) {
                TryError::Full => Ok(0),
                e => Err(e),
            };
        }
        let start = (tail & c.ring.mask) as usize;
        let first = n.min(c.ring.cap as usize - start);
        // SAFETY: `start + first <= cap` and `n - first <= start`: all in bounds;
        // the `n <= free` slots after the tail are free.
        unsafe {
            write_slots(c.ring.slots::<T>(), start, &values[..first]);
            write_slots(c.ring.slots::<T>(), 0, &values[first..n]);
        }
        c.publish(tail.wrapping_add(n as u32));
        c.wake_hint();
        Ok(n)
    }

    /// Pushes `value`, waiting for room as long as needed.
    pub fn push(&mut self, value: T) -> Result<()> {
        self.push_deadline(value, Deadline::never())
    }

    /// Pushes `value`, waiting at most `timeout` for room (`Timeout`).
    pub fn push_timeout(&mut self, value: T, timeout: Duration) -> Result<()> {
        push_blocking(
            &mut self.core,
            &self.shared,
            Patience::Within(timeout),
            |c| Self::push_quiet(c, value),
        )
    }

    /// Pushes `value`, waiting until `deadline` for room; wakes a sleeping
    /// consumer without fail. `Closed` if the consumer end is closed or its
    /// process died.
    pub fn push_deadline(&mut self, value: T, deadline: Deadline) -> Result<()> {
        push_blocking(&mut self.core, &self.shared, deadline, |c| {
            Self::push_quiet(c, value)
        })
    }

    /// Number of queued elements (reads the head).
    pub fn len(&mut self) -> Result<usize> {
        self.core.len()
    }

    /// Whether the ring is empty (reads the head).
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.core.ring.cap as usize
    }
}
impl<T: Pod> Drop for Producer<T> {
    fn drop(&mut self) {
        self.core.close();
        self.shared.release(true, self.me);
    }
}
impl<T: Pod> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("head", &self.core.head)
            .finish()
    }
}
impl<T: Pod> Consumer<T> {
    /// The [`Error`] a [`TryError`] answer of this end stands for, naming the
    /// ring (with `?` a `TryError` becomes an `Error` that names nothing).
    #[cold]
    pub fn error(&self, e: TryError) -> Error {
        Error::from(e).named(self.core.name())
    }

    /// Pops the oldest element: `Empty` if there is none, `Closed` if there is
    /// none and the producer end was closed.
    #[inline]
    pub fn try_pop(&mut self) -> Result<T, TryError> {
        match Self::pop_quiet(&mut self.core) {
            Ok(v) => {
                self.core.wake_hint();
                Ok(v)
            }
            Err(e) => Err(self.pop_failed(e)),
        }
    }

    /// A failed pop: `Empty` becomes `Closed` once the producer is gone
    /// (closed, or its process died; see [`PeerWatch`]) and nothing is left.
    /// If the producer published more just before it went, the answer stays
    /// `Empty` and the next `try_pop` takes it. Out of line, and answering
    /// only the small [`TryError`], so that `try_pop` stays the few
    /// instructions it was.
    #[cold]
    #[inline(never)]
    fn pop_failed(&mut self, e: Error) -> TryError {
        match e {
            Error::Empty { .. } if self.shared.producer_gone(&mut self.watch) => {
                match self.core.available(self.core.head, 1) {
                    Ok(_) => TryError::Empty,
                    Err(Error::Empty { .. } | Error::Closed { .. }) => TryError::Closed,
                    Err(e) => TryError::from_error(e),
                }
            }
            e => TryError::from_error(e),
        }
    }

    #[inline]
    pub(super) fn pop_quiet(c: &mut ConsumerCore) -> Result<T> {
        let head = c.head;
        c.available(head, 1)?;
        let mut v = T::zeroed();
        // SAFETY: `head & mask < cap`; at least one slot is published after head.
        unsafe {
            read_slots(
                c.ring.slots::<T>(),
                (head & c.ring.mask) as usize,
                std::slice::from_mut(&mut v),
            )
        };
        c.publish(head.wrapping_add(1));
        Ok(v)
    }

    /// Pops up to `out.len()` elements into `out`, publishing once; returns how
    /// many (0 when empty, `Closed` when empty and the producer closed).
    #[inline]
    pub fn pop_into(&mut self, out: &mut [T]) -> Result<usize, TryError> {
        if out.is_empty() {
            return Ok(0);
        }
        let head = self.core.head;
        let want = out.len().min(self.core.ring.cap as usize) as u32;
        let avail = match self.core.available(head, want) {
            Ok(n) => n,
            Err(Error::Empty { .. }) => {
                return match self.pop_failed(EMPTY) {
                    TryError::Empty => Ok(0),
                    e => Err(e),
                };
            }
            Err(e) => return Err(TryError::from_error(e)),
        };
        let c = &mut self.core;
        let n = avail.min(want) as usize;
        let start = (head & c.ring.mask) as usize;
        let first = n.min(c.ring.cap as usize - start);
        // SAFETY: in bounds as in `push_slice`; the `n <= avail` slots after the
        // head are published.
        unsafe {
            read_slots(c.ring.slots::<T>(), start, &mut out[..first]);
            read_slots(c.ring.slots::<T>(), 0, &mut out[first..n]);
        }
        c.publish(head.wrapping_add(n as u32));
        c.wake_hint();
        Ok(n)
    }

    /// Pops an element, waiting as long as needed.
    pub fn pop(&mut self) -> Result<T> {
        self.pop_deadline(Deadline::never())
    }

    /// Pops an element, waiting at most `timeout` (`Timeout`).
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<T> {
        pop_blocking(
            &mut self.core,
            &self.shared,
            Patience::Within(timeout),
            Self::pop_quiet,
        )
    }

    /// Pops an element, waiting until `deadline`; wakes a sleeping producer
    /// without fail. `Closed` once drained if the producer end is closed or its
    /// process died.
    pub fn pop_deadline(&mut self, deadline: Deadline) -> Result<T> {
        pop_blocking(&mut self.core, &self.shared, deadline, Self::pop_quiet)
    }

    /// Number of queued elements (reads the tail).
    pub fn len(&mut self) -> Result<usize> {
        self.core.len()
    }

    /// Whether the ring is empty (reads the tail).
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.core.ring.cap as usize
    }
}
impl<T: Pod> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.core.close();
        self.shared.release(false, self.me);
    }
}
