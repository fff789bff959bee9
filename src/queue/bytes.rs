//! [`ByteQueue`]: the queue of byte messages, on the same ring and [`Core`]
//! as [`Queue`](super::Queue).

use std::time::Duration;

use super::{Core, PARAM_CAPACITY, PARAM_SLOT_SIZE, capacity_u64, create_flags};
use crate::error::Result;
use crate::segment::{
    Disposition, Kind, Options, Role, Segment, SegmentBuilder, TypeCode, TypeDesc,
};
use crate::sync::atomic::Ordering;
use crate::wait::{Deadline, is_timeout, try_first};

/// A multi-producer multi-consumer queue of byte messages of up to
/// `max_message` bytes (Python's `multiprocessing.Queue` of `bytes`). See the
/// [module doc](crate::queue).
pub struct ByteQueue {
    pub(super) core: Core,
}

impl std::fmt::Debug for ByteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

impl ByteQueue {
    fn builder(capacity: usize, max_message: usize, opts: &Options) -> Result<SegmentBuilder> {
        Ok(Core::builder(
            Kind::ByteQueue,
            capacity_u64(capacity),
            max_message as u64,
            TypeDesc::new(TypeCode::U8, 1, 1, "u8"),
        )?
        .options(opts)
        .flags(create_flags(opts)))
    }

    fn wrap(seg: Segment, role: Role) -> Result<ByteQueue> {
        Ok(ByteQueue {
            core: Core::attach(seg, None, role)?,
        })
    }

    /// Creates a queue of `capacity` messages of up to `max_message` bytes each.
    pub fn create(name: &str, capacity: usize, max_message: usize) -> Result<ByteQueue> {
        Self::create_with_options(name, capacity, max_message, &Options::default())
    }

    /// [`create`](Self::create) with handle [`Options`].
    pub fn create_with_options(
        name: &str,
        capacity: usize,
        max_message: usize,
        opts: &Options,
    ) -> Result<ByteQueue> {
        let init = Core::init(Kind::ByteQueue, capacity_u64(capacity), max_message as u64);
        let seg = Self::builder(capacity, max_message, opts)?.create_with(name, init)?;
        crate::segment::finish_create(seg, |seg| Self::wrap(seg, opts.role))
    }

    /// Opens an existing byte queue.
    pub fn open(name: &str) -> Result<ByteQueue> {
        Self::open_with_options(name, &Options::default())
    }

    /// [`open`](Self::open) with handle [`Options`].
    pub fn open_with_options(name: &str, opts: &Options) -> Result<ByteQueue> {
        let seg = SegmentBuilder::new(Kind::ByteQueue)
            .payload(TypeDesc::new(TypeCode::U8, 1, 1, "u8"))
            .options(opts)
            .open(name)?;
        Self::wrap(seg, opts.role)
    }

    /// Opens the queue, or creates it if it does not exist.
    pub fn open_or_create(
        name: &str,
        capacity: usize,
        max_message: usize,
    ) -> Result<(ByteQueue, Disposition)> {
        Self::open_or_create_with_options(name, capacity, max_message, &Options::default())
    }

    /// [`open_or_create`](Self::open_or_create) with handle [`Options`].
    pub fn open_or_create_with_options(
        name: &str,
        capacity: usize,
        max_message: usize,
        opts: &Options,
    ) -> Result<(ByteQueue, Disposition)> {
        let init = Core::init(Kind::ByteQueue, capacity_u64(capacity), max_message as u64);
        let (seg, how) =
            Self::builder(capacity, max_message, opts)?.open_or_create_with(name, init)?;
        if how == Disposition::Opened {
            seg.expect_param(PARAM_CAPACITY, capacity_u64(capacity), "capacity")?;
            seg.expect_param(PARAM_SLOT_SIZE, max_message as u64, "max message")?;
        }
        Ok((Self::wrap(seg, opts.role)?, how))
    }

    /// An anonymous byte queue, shared with children forked after this call.
    pub fn anonymous(capacity: usize, max_message: usize) -> Result<ByteQueue> {
        Self::anonymous_with_options(capacity, max_message, &Options::default())
    }

    /// [`anonymous`](Self::anonymous) with handle [`Options`].
    pub fn anonymous_with_options(
        capacity: usize,
        max_message: usize,
        opts: &Options,
    ) -> Result<ByteQueue> {
        let init = Core::init(Kind::ByteQueue, capacity_u64(capacity), max_message as u64);
        let seg = Self::builder(capacity, max_message, opts)?.anonymous_with(init)?;
        Self::wrap(seg, opts.role)
    }

    /// Removes the name; processes that have it open keep using it. A file
    /// that is not a shmprim segment of this kind is refused and left alone
    /// (see [`Segment::unlink_kind`]).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink_kind(name, Kind::ByteQueue)
    }

    /// The segment holding the queue.
    pub fn segment(&self) -> &Segment {
        &self.core.seg
    }

    /// Largest message, in bytes.
    pub fn max_message(&self) -> usize {
        self.core.ring.slot_size()
    }

    fn put_raw(&self, msg: &[u8], deadline: Deadline, try_once: bool) -> Result<()> {
        self.core
            .counted_put(1, || {
                self.core.with_agent(|ring, a, live| {
                    ring.push_with(a, live, 1, |_| msg, deadline, try_once)
                })
            })
            .map(drop)
    }

    /// Puts `msg` (at most `max_message` bytes, else `InvalidArgument`), waiting
    /// for room as long as it takes.
    pub fn put(&self, msg: &[u8]) -> Result<()> {
        self.put_raw(msg, Deadline::never(), false)
    }

    /// Puts `msg`, waiting at most `timeout` for room (`Timeout`).
    pub fn put_timeout(&self, msg: &[u8], timeout: Duration) -> Result<()> {
        try_first(timeout, |d| self.put_deadline(msg, d), is_timeout)
    }

    /// Puts `msg`, waiting until `deadline` for room (`Timeout`).
    pub fn put_deadline(&self, msg: &[u8], deadline: Deadline) -> Result<()> {
        self.put_raw(msg, deadline, false)
    }

    /// Puts `msg` if there is room now, else fails with `Full`.
    pub fn try_put(&self, msg: &[u8]) -> Result<()> {
        self.put_raw(msg, Deadline::never(), true)
    }

    /// Puts as many of `msgs` as there is room for now, in order; returns how
    /// many. `Full` if none fits.
    pub fn put_many(&self, msgs: &[&[u8]]) -> Result<usize> {
        self.core.counted_put(msgs.len(), || {
            self.core.with_agent(|ring, a, live| {
                ring.push_with(a, live, msgs.len(), |i| msgs[i], Deadline::never(), true)
            })
        })
    }

    fn get_vec(&self, deadline: Deadline, try_once: bool) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.get_reusing(&mut out, deadline, try_once)?;
        Ok(out)
    }

    /// Takes the oldest message into `out` (replacing what it held, keeping
    /// its allocation), waiting until `deadline` unless `try_once`.
    pub(crate) fn get_reusing(
        &self,
        out: &mut Vec<u8>,
        deadline: Deadline,
        try_once: bool,
    ) -> Result<()> {
        self.core.with_agent(|ring, a, live| {
            ring.pop_with(
                a,
                live,
                1,
                None,
                |_, b| {
                    out.clear();
                    b.append_to(out);
                },
                deadline,
                try_once,
            )
        })?;
        Ok(())
    }

    /// Takes the oldest message, waiting as long as it takes; `Closed` once the
    /// queue is shut down or its stream has ended (see the module doc), and drained.
    pub fn get(&self) -> Result<Vec<u8>> {
        self.get_vec(Deadline::never(), false)
    }

    /// Takes the oldest message, waiting at most `timeout` (`Timeout`).
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        try_first(timeout, |d| self.get_vec(d, false), is_timeout)
    }

    /// Takes the oldest message, waiting until `deadline` (`Timeout`).
    pub fn get_deadline(&self, deadline: Deadline) -> Result<Vec<u8>> {
        self.get_vec(deadline, false)
    }

    /// Takes the oldest message if there is one now, else fails with `Empty`.
    pub fn try_get(&self) -> Result<Vec<u8>> {
        self.get_vec(Deadline::never(), true)
    }

    /// Takes the oldest message into the start of `buf`, waiting until
    /// `deadline`; returns its length. A message longer than `buf` stays in the
    /// queue and the call fails with `BufferTooSmall` naming the size needed.
    pub fn get_into_deadline(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        self.core
            .with_agent(|ring, a, live| ring.pop_timeout(a, live, buf, deadline))
    }

    /// [`get_into_deadline`](Self::get_into_deadline) waiting as long as it takes.
    pub fn get_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.get_into_deadline(buf, Deadline::never())
    }

    /// [`get_into_deadline`](Self::get_into_deadline) that does not wait (`Empty`).
    pub fn try_get_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.core
            .with_agent(|ring, a, live| ring.try_pop(a, live, buf))
    }

    /// Takes up to `max` messages that are there now; `Empty` if there is none.
    pub fn get_many(&self, max: usize) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        self.core.with_agent(|ring, a, live| {
            ring.pop_with(
                a,
                live,
                max,
                None,
                |_, b| out.push(b.to_vec()),
                Deadline::never(),
                true,
            )
        })?;
        Ok(out)
    }

    stream_methods!();
}
