//! What [`Value`] and [`Array`] share: opening a cell segment, the seqlock's
//! reads and writes, and the lock over the whole cell.

use super::*;

impl RawCell {
    /// Creates a cell of `len` elements of `T`, writing `fill` into the payload
    /// before it is published.
    pub(crate) fn create<T: ShmType>(
        how: Create<'_>,
        kind: crate::Kind,
        len: usize,
        with_lock: bool,
        opts: &crate::Options,
        fill: impl FnOnce(&mut [T]),
    ) -> Result<(RawCell, crate::Disposition)> {
        use crate::Disposition;
        let layout = CellLayout::of::<T>(len, with_lock)?;
        let builder = crate::SegmentBuilder::new(kind)
            .data_size(layout.size as u64)
            .param(PARAM_LEN, len as u64)
            .param(PARAM_LOCK, with_lock as u64)
            .param(PARAM_PAYLOAD_OFFSET, layout.payload_offset as u64)
            .payload(T::type_desc())
            .options(opts);
        let init = |ptr: std::ptr::NonNull<u8>, size: usize| -> Result<()> {
            if size < layout.size {
                return Err(Error::invalid_argument("data area smaller than asked for"));
            }
            let base = ptr.as_ptr();
            // SAFETY: the data area is page aligned, `layout.size` bytes long, and
            // not yet visible to any other process.
            unsafe { layout.init_control(base, std::mem::size_of::<T>(), len, with_lock)? };
            // SAFETY: the payload lies within the data area (layout), is aligned
            // for `T`, and nobody else can see it before the segment is ready.
            let payload = unsafe {
                std::slice::from_raw_parts_mut(base.add(layout.payload_offset).cast::<T>(), len)
            };
            fill(payload);
            Ok(())
        };
        let validate = |seg| RawCell::validate::<T>(seg, None);
        match how {
            Create::Named(name) => {
                let seg = builder.create_with(name, init)?;
                Ok((
                    crate::segment::finish_create(seg, validate)?,
                    Disposition::Created,
                ))
            }
            Create::OpenOrCreateNamed(name) => {
                let (seg, how) = builder.open_or_create_with(name, init)?;
                Ok((validate(seg)?, how))
            }
            Create::Anonymous => Ok((
                validate(builder.anonymous_with(init)?)?,
                Disposition::Created,
            )),
        }
    }

    /// Opens a cell of `T`s; with `len`, also checks the length.
    pub(crate) fn open<T: ShmType>(
        name: &str,
        kind: crate::Kind,
        len: Option<usize>,
        opts: &crate::Options,
    ) -> Result<RawCell> {
        let seg = crate::SegmentBuilder::new(kind)
            .payload(T::type_desc())
            .options(opts)
            .open(name)?;
        RawCell::validate::<T>(seg, len)
    }

    /// Checks the header parameters and the state against each other.
    pub(super) fn validate<T: ShmType>(
        seg: crate::Segment,
        want_len: Option<usize>,
    ) -> Result<RawCell> {
        let name = seg.display_name().to_owned();
        if let Some(n) = want_len {
            seg.expect_param(PARAM_LEN, n as u64, "length")?;
        }
        let len = usize::try_from(seg.param(PARAM_LEN))
            .map_err(|_| Error::corrupted(&name, "length does not fit in usize"))?;
        let has_lock = match seg.param(PARAM_LOCK) {
            0 => false,
            1 => true,
            other => return Err(Error::corrupted(&name, format!("lock flag {other}"))),
        };
        let layout = CellLayout::of::<T>(len, has_lock)
            .map_err(|_| Error::corrupted(&name, format!("length {len} is impossible")))?;
        if seg.param(PARAM_PAYLOAD_OFFSET) != layout.payload_offset as u64 {
            return Err(Error::corrupted(
                &name,
                format!(
                    "payload offset {} (this build expects {})",
                    seg.param(PARAM_PAYLOAD_OFFSET),
                    layout.payload_offset
                ),
            ));
        }
        seg.expect_data_size(layout.size as u64)?;
        let flags = if has_lock { FLAG_LOCK } else { 0 };
        let me = seg.participant_id().to_u64();
        let payload = seg.as_ptr().wrapping_add(layout.payload_offset);
        let cell = RawCell {
            seg: std::mem::ManuallyDrop::new(seg),
            len,
            has_lock,
            payload,
            me,
            fork_gen: crate::sys::fork::fork_generation(),
        };
        cell.state()
            .validate(&name, std::mem::size_of::<T>() as u64, len as u64, flags)?;
        Ok(cell)
    }

    pub(crate) fn segment(&self) -> &crate::Segment {
        &self.seg
    }

    pub(crate) fn name(&self) -> &crate::ObjectName {
        self.seg.object_name()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn has_lock(&self) -> bool {
        self.has_lock
    }

    pub(crate) fn state(&self) -> &CellState {
        // SAFETY: the data area is page aligned and at least 64 bytes (checked by
        // `validate`); CellState is all atomics.
        unsafe { &*self.seg.as_ptr().cast::<CellState>() }
    }

    /// Start of the payload: aligned to `max(64, align_of::<T>())`, followed by
    /// `len * size_of::<T>()` bytes of the mapping (checked by `validate`).
    #[inline]
    pub(crate) fn payload(&self) -> *mut u8 {
        self.payload
    }

    /// Address of element `i` of `T`s (`i <= len`).
    #[inline]
    pub(crate) fn elem<T>(&self, i: usize) -> *mut u8 {
        self.payload().wrapping_add(i * std::mem::size_of::<T>())
    }

    pub(crate) fn lock_word(&self) -> Option<lock::CellLock<'_>> {
        // SAFETY: a cell with a lock has one initialised at offset 64 (layout).
        self.has_lock
            .then(|| unsafe { lock::CellLock::at(self.seg.as_ptr().add(CellState::SIZE)) })
    }

    /// Takes the lock if the cell has one, for a plain operation: an owner that
    /// died is shrugged off (marked consistent): see the module doc.
    pub(crate) fn lock_for_op(&self) -> Result<Option<lock::Held<'_>>> {
        match self.lock_word() {
            None => Ok(None),
            Some(l) => {
                let held = l.lock(crate::Deadline::never(), self.name())?;
                if held.status() == crate::mutex::LockStatus::OwnerDied {
                    held.mark_consistent().map_err(|e| e.named(self.name()))?;
                }
                Ok(Some(held))
            }
        }
    }

    /// Takes the lock for a guard, keeping an owner-died status.
    pub(crate) fn lock_for_guard(&self, deadline: crate::Deadline) -> Result<lock::Held<'_>> {
        match self.lock_word() {
            None => Err(lock::no_lock(self.name())),
            Some(l) => l.lock(deadline, self.name()),
        }
    }

    /// This process's participant id, which a write records as the
    /// writer's. The one from the open, unless this process was forked since
    /// and so is a participant of its own (see `Segment::participant_id`):
    /// a child killed mid-write must be seen as dead while its parent lives.
    #[inline]
    pub(crate) fn me(&self) -> u64 {
        if crate::sys::fork::fork_generation() == self.fork_gen {
            self.me
        } else {
            self.seg.participant_id().to_u64()
        }
    }

    /// Whether the writer `id` (packed participant id) is alive.
    pub(crate) fn writer_alive(&self, id: u64) -> bool {
        crate::ParticipantId::from_u64(id).is_some_and(|p| self.seg.is_alive(p))
    }

    /// The error a reader returns when a writer died mid-write.
    pub(crate) fn torn_error(&self) -> Error {
        Error::corrupted(
            self.name(),
            "a writer died while writing; write the whole value (set, write_from) to repair it",
        )
    }

    /// Seqlock read of `dst.len()` elements at `src` (inside the payload).
    pub(crate) fn read_elems<T: bytemuck::Pod>(&self, src: *mut u8, dst: &mut [T]) -> Result<()> {
        self.state()
            .read(
                // SAFETY: callers pass a range inside the payload, only accessed
                // atomically outside the lock.
                || unsafe { copy_elems_out(src, dst) },
                |w| self.writer_alive(w),
            )
            .map_err(|e| self.read_error(e))
    }

    /// The error for a failed seqlock read or write claim.
    pub(crate) fn read_error(&self, e: ReadError) -> Error {
        match e {
            ReadError::WriterDied => self.torn_error(),
            ReadError::Stuck => Error::corrupted(
                self.name(),
                "a live writer has held the value for seconds: the sequence or writer word is corrupted, or the writer is stopped",
            ),
        }
    }

    /// Seqlock write of `src` to `dst` (inside the payload); repairs a torn
    /// payload only if `src` covers all of it (`whole`).
    pub(crate) fn write_elems<T: bytemuck::Pod>(
        &self,
        dst: *mut u8,
        src: &[T],
        whole: bool,
    ) -> Result<()> {
        let side = self
            .state()
            .claim(self.me(), |w| self.writer_alive(w))
            .map_err(|e| self.read_error(e))?;
        if side.torn() && !whole {
            side.abandon();
            return Err(self.torn_error());
        }
        // SAFETY: callers pass a range inside the payload; atomic stores only.
        side.publish(|| unsafe { copy_elems_in(dst, src) });
        Ok(())
    }
}
