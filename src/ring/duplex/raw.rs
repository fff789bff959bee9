//! Duplex rings whose element size is known only at run time: what the C
//! ABI's `shmprim_duplex_*` functions hold.

use super::*;

/// A duplex ring of elements known only by their size and alignment: what
/// the C functions (`shmprim_duplex_*`) use. It is the same object as a
/// [`DuplexRing<T>`] whose `T` has that size and alignment: the same kind,
/// parameters and layout, with a payload of raw bytes that any such `T` may
/// open (and a raw open accepts any).
pub struct RawDuplexRing {
    shared: Arc<DuplexShared>,
    layout: SlotLayout,
}

impl RawDuplexRing {
    /// The layout and the segment of a new ring of `capacity` (rounded up)
    /// elements of `size` bytes aligned to `align`.
    pub(super) fn builder(
        capacity: usize,
        size: usize,
        align: usize,
    ) -> Result<(u32, SlotLayout, SegmentBuilder)> {
        let layout = SlotLayout::new(size, align)?;
        let cap = element_capacity(capacity)?;
        let payload = TypeDesc::new(TypeCode::Bytes, size as u64, align as u32, "");
        Ok((cap, layout, builder_for(cap, layout, payload)?))
    }

    /// Creates the named ring.
    pub fn create(
        name: &str,
        capacity: usize,
        size: usize,
        align: usize,
        opts: &Options,
    ) -> Result<RawDuplexRing> {
        let (cap, layout, b) = Self::builder(capacity, size, align)?;
        let seg = b.options(opts).create_with(name, |ptr, _| {
            // SAFETY: the data area is `memory_size_for` bytes, page aligned, ours.
            unsafe { init_for(ptr.as_ptr(), cap, layout) };
            Ok(())
        })?;
        crate::segment::finish_create(seg, Self::from_segment)
    }

    /// Opens the named duplex ring, whatever its element type.
    pub fn open(name: &str) -> Result<RawDuplexRing> {
        Self::from_segment(SegmentBuilder::new(Kind::Duplex).any_payload().open(name)?)
    }

    /// Opens the named ring (which must have this capacity, as rounded, and
    /// elements of this size and alignment), or creates it.
    pub fn open_or_create(
        name: &str,
        capacity: usize,
        size: usize,
        align: usize,
    ) -> Result<(RawDuplexRing, Disposition)> {
        let (cap, layout, b) = Self::builder(capacity, size, align)?;
        let (seg, how) = b.open_or_create_with(name, |ptr, _| {
            // SAFETY: as in `create`.
            unsafe { init_for(ptr.as_ptr(), cap, layout) };
            Ok(())
        })?;
        seg.expect_param(0, u64::from(cap), "capacity")?;
        Ok((Self::from_segment(seg)?, how))
    }

    /// An anonymous ring (`memfd`), shared with children forked afterwards.
    pub fn anonymous(capacity: usize, size: usize, align: usize) -> Result<RawDuplexRing> {
        let (cap, layout, b) = Self::builder(capacity, size, align)?;
        let seg = b.anonymous_with(|ptr, _| {
            // SAFETY: as in `create`.
            unsafe { init_for(ptr.as_ptr(), cap, layout) };
            Ok(())
        })?;
        Self::from_segment(seg)
    }

    /// Checks the segment's parameters and payload (untrusted: its element
    /// size and alignment decide where every slot lies) against its size.
    pub(super) fn from_segment(seg: Segment) -> Result<RawDuplexRing> {
        let cap = stored_capacity(&seg)?;
        let (unit, payload) = (seg.param(1), seg.info().payload);
        let layout = usize::try_from(unit)
            .ok()
            .filter(|&u| u as u64 == payload.size)
            .and_then(|u| SlotLayout::new(u, payload.align as usize).ok())
            .ok_or_else(|| {
                Error::corrupted(
                    seg.display_name(),
                    format!(
                        "duplex ring element of {unit} bytes, payload of {} bytes aligned to {}",
                        payload.size, payload.align
                    ),
                )
            })?;
        seg.expect_data_size(memory_size_for(cap as usize, layout)? as u64)?;
        // SAFETY: the data area holds the memory size of this layout (checked),
        // page aligned, owned by the backing.
        let shared = unsafe { DuplexShared::with_layout(Backing::Segment(seg), cap, layout)? };
        Ok(RawDuplexRing {
            shared: Arc::new(shared),
            layout,
        })
    }

    /// Bytes of one element.
    pub fn elem_size(&self) -> usize {
        self.layout.unit as usize
    }

    /// Values each direction holds.
    pub fn capacity(&self) -> usize {
        self.shared.cap as usize
    }

    /// Claims `end` (`InvalidArgument` while a live participant holds it).
    pub fn end(&self, end: End) -> Result<RawDuplexEnd> {
        Ok(RawDuplexEnd {
            core: EndCore::claim(&self.shared, end)?,
            offset: self.layout.offset as usize,
            unit: self.layout.unit as usize,
        })
    }
}

/// One end of a [`RawDuplexRing`]: [`DuplexEnd`] with elements as bytes
/// (exactly the element size each; a shorter or longer slice panics).
pub struct RawDuplexEnd {
    core: EndCore,
    /// Where a slot holds its element.
    offset: usize,
    /// Bytes of one element.
    unit: usize,
}

impl RawDuplexEnd {
    /// The [`Error`] a [`TryError`] answer of this end stands for, naming the
    /// ring (with `?` a `TryError` becomes an `Error` that names nothing).
    #[cold]
    pub fn error(&mut self, e: TryError) -> Error {
        match e {
            TryError::Corrupted => self.corruption(),
            e => Error::from(e).named(self.core.tx.name()),
        }
    }

    /// Bytes of one element.
    pub fn elem_size(&self) -> usize {
        self.unit
    }

    /// [`DuplexEnd::try_send`].
    #[inline]
    pub fn try_send(&mut self, elem: &[u8]) -> Result<(), TryError> {
        let offset = self.offset;
        // SAFETY: both rings are stamped rings whose slots hold the element
        // `offset` bytes in (the layout they were opened with).
        self.core
            .try_send_by(|tx| unsafe { tx.try_push_stamped_bytes(elem, offset) })
    }

    /// [`DuplexEnd::send_deadline`].
    pub fn send(&mut self, elem: &[u8], deadline: Deadline) -> Result<()> {
        let offset = self.offset;
        // SAFETY: as in `try_send`.
        self.core.send_deadline_by(deadline, |tx| unsafe {
            tx.try_push_stamped_bytes(elem, offset)
        })
    }

    /// [`DuplexEnd::try_recv`], into `dst`.
    #[inline]
    pub fn try_recv(&mut self, dst: &mut [u8]) -> Result<(), TryError> {
        let offset = self.offset;
        // SAFETY: as in `try_send`.
        self.core
            .try_recv_by(|rx, by_stamp| unsafe { rx.try_pop_stamped_bytes(dst, offset, by_stamp) })
    }

    /// [`DuplexEnd::recv_deadline`], into `dst`.
    pub fn recv(&mut self, dst: &mut [u8], deadline: Deadline) -> Result<()> {
        let offset = self.offset;
        // SAFETY: as in `try_send`.
        self.core.recv_deadline_by(deadline, |rx, by_stamp| unsafe {
            rx.try_pop_stamped_bytes(dst, offset, by_stamp)
        })
    }

    /// What a `TryError::Corrupted` answer was about (re-reads both rings'
    /// indices).
    #[cold]
    pub fn corruption(&mut self) -> Error {
        match (self.core.rx.len(), self.core.tx.refresh()) {
            (Err(e @ Error::Corrupted { .. }), _) | (_, Err(e @ Error::Corrupted { .. })) => e,
            _ => Error::corrupted(
                self.core.shared.backing.display_name(),
                "duplex ring indices changed while in use",
            ),
        }
    }
}
