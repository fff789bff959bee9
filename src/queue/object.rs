//! [`ObjectQueue<T>`]: a queue of values of any [`Payload`] type and any
//! length (Python's `multiprocessing.Queue` of picklable objects), over a
//! [`ByteQueue`].
//!
//! The design is in [`ObjectQueue`]'s doc.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::time::Duration;

use super::ByteQueue;
use crate::error::{Error, Result};
use crate::process::{Payload, from_bytes};
use crate::segment::{Disposition, FLAG_QUEUED_MESSAGE, Kind, Options, Segment, SegmentBuilder};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::wait::{Deadline, is_timeout, try_first};

const INLINE: u8 = 0;
const SPILLED: u8 = 1;
/// The smallest `max_message` of an object queue: room for a reference to a
/// message stored out of line (tag, length, a name of up to 200 bytes).
pub const MIN_OBJECT_SLOT: usize = 1 + 8 + 200;

/// A multi-producer multi-consumer queue of `T: Payload` values of any length
/// in shared memory (Python's `multiprocessing.Queue` of picklable objects).
///
/// A message that fits a slot of the byte queue travels in it. A longer one is
/// **stored out of line**: the sender writes it into a segment of its own
/// (named after the queue, its pid and a counter), and puts only a reference
/// to it in the queue; the consumer that gets the reference reads the segment
/// and removes its name. A message of an MPMC queue cannot be split across
/// slots, since another consumer could take a piece of it; out of line, it is
/// one slot like any other.
///
/// Every message starts with a tag byte: `INLINE` (0) then the encoded value,
/// or `SPILLED` (1) then the length (`u64` LE) and the segment's name.
///
/// **A dead sender never leaves half a message visible**: the reference is
/// put only once the whole message is written. What a death can leave is the
/// out-of-line segment itself, when its sender dies between writing it and
/// putting the reference, or its consumer dies between getting the reference
/// and reading it. Such a segment is marked
/// ([`FLAG_QUEUED_MESSAGE`](crate::segment::FLAG_QUEUED_MESSAGE)): `shmprim gc`
/// removes it once its queue is gone, and leaves it while the queue exists
/// (its reference may still be queued, after its sender exited). An immediate [`shutdown`](ObjectQueue::shutdown)
/// through this type removes the segments of the messages it discards.
///
/// ```
/// use shmprim::queue::ObjectQueue;
/// let q = ObjectQueue::<(String, Vec<u32>)>::anonymous(8, 256)?;
/// q.put(&("hello".to_string(), vec![1, 2, 3]))?;
/// // Longer than a slot: stored out of line, received whole.
/// q.put(&("big".to_string(), vec![7; 100_000]))?;
/// assert_eq!(q.get()?.1, [1, 2, 3]);
/// assert_eq!(q.get()?.1.len(), 100_000);
/// # Ok::<(), shmprim::Error>(())
/// ```
pub struct ObjectQueue<T> {
    bytes: ByteQueue,
    /// What every out-of-line segment name of this queue starts with.
    spill_base: String,
    /// The start of this handle's out-of-line segment names.
    spill_prefix: String,
    spills: AtomicU64,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for ObjectQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.bytes.fmt(f)
    }
}

fn check_slot(max_message: usize) -> Result<()> {
    if max_message < MIN_OBJECT_SLOT {
        return Err(Error::invalid_argument(format!(
            "an object queue's max_message is at least {MIN_OBJECT_SLOT} bytes, not {max_message}"
        )));
    }
    Ok(())
}

impl<T: Payload> ObjectQueue<T> {
    fn wrap(bytes: ByteQueue) -> ObjectQueue<T> {
        let base = bytes.segment().name().unwrap_or("anonymous-queue");
        // Room for ".{pid}.{counter}" within the 200 bytes of a name.
        let base: String = base.chars().take(150).collect();
        ObjectQueue {
            bytes,
            spill_prefix: format!("{base}.m{}", std::process::id()),
            spill_base: format!("{base}.m"),
            spills: AtomicU64::new(0),
            _t: PhantomData,
        }
    }

    /// Creates a queue of `capacity` messages, each stored in a slot when its
    /// encoding is under `max_message` bytes (at least [`MIN_OBJECT_SLOT`])
    /// and out of line when longer.
    pub fn create(name: &str, capacity: usize, max_message: usize) -> Result<ObjectQueue<T>> {
        Self::create_with_options(name, capacity, max_message, &Options::default())
    }

    /// [`create`](Self::create) with handle [`Options`] (role, joinable).
    pub fn create_with_options(
        name: &str,
        capacity: usize,
        max_message: usize,
        opts: &Options,
    ) -> Result<ObjectQueue<T>> {
        check_slot(max_message)?;
        Ok(Self::wrap(ByteQueue::create_with_options(
            name,
            capacity,
            max_message,
            opts,
        )?))
    }

    /// Opens an existing object queue (a byte queue of at least
    /// [`MIN_OBJECT_SLOT`]-byte messages).
    pub fn open(name: &str) -> Result<ObjectQueue<T>> {
        Self::open_with_options(name, &Options::default())
    }

    /// [`open`](Self::open) with handle [`Options`].
    pub fn open_with_options(name: &str, opts: &Options) -> Result<ObjectQueue<T>> {
        let bytes = ByteQueue::open_with_options(name, opts)?;
        check_slot(bytes.max_message())?;
        Ok(Self::wrap(bytes))
    }

    /// Opens the queue, or creates it if it does not exist.
    pub fn open_or_create(
        name: &str,
        capacity: usize,
        max_message: usize,
    ) -> Result<(ObjectQueue<T>, Disposition)> {
        check_slot(max_message)?;
        let (bytes, how) = ByteQueue::open_or_create(name, capacity, max_message)?;
        Ok((Self::wrap(bytes), how))
    }

    /// An anonymous object queue, shared with children forked after this call.
    pub fn anonymous(capacity: usize, max_message: usize) -> Result<ObjectQueue<T>> {
        Self::anonymous_with_options(capacity, max_message, &Options::default())
    }

    /// [`anonymous`](Self::anonymous) with handle [`Options`].
    pub fn anonymous_with_options(
        capacity: usize,
        max_message: usize,
        opts: &Options,
    ) -> Result<ObjectQueue<T>> {
        check_slot(max_message)?;
        Ok(Self::wrap(ByteQueue::anonymous_with_options(
            capacity,
            max_message,
            opts,
        )?))
    }

    /// Removes the name (see [`ByteQueue::unlink`]).
    pub fn unlink(name: &str) -> Result<()> {
        ByteQueue::unlink(name)
    }

    /// The byte queue underneath, whose messages carry this type's tag byte.
    pub fn byte_queue(&self) -> &ByteQueue {
        &self.bytes
    }

    /// Puts `value`, waiting for room as `wait` says. The encoding goes
    /// through this thread's scratch buffer: no allocation per message.
    fn put_raw(&self, value: &T, wait: Wait) -> Result<()> {
        with_scratch(&PUT_SCRATCH, |msg| {
            msg.push(INLINE);
            value.encode(msg);
            self.put_encoded(msg, wait)
        })
    }

    /// Puts a tagged message: in a slot if it fits, else out of line.
    fn put_encoded(&self, msg: &[u8], wait: Wait) -> Result<()> {
        if msg.len() <= self.bytes.max_message() {
            return self.put_bytes(msg, wait);
        }
        // Checked before a segment is made: a closed handle makes no file.
        self.bytes.core.may_send()?;
        let seq = self.spills.fetch_add(1, Ordering::Relaxed);
        let data = &msg[1..];
        let (name, seg) = self.spill_segment(seq, data.len())?;
        let written = seg.write(0, data);
        drop(seg);
        let mut reference = Vec::with_capacity(9 + name.len());
        reference.push(SPILLED);
        reference.extend_from_slice(&(data.len() as u64).to_le_bytes());
        reference.extend_from_slice(name.as_bytes());
        let put = written.and_then(|()| self.put_bytes(&reference, wait));
        if put.is_err() {
            let _ = Segment::unlink_kind(&name, Kind::Raw);
        }
        put
    }

    /// Makes the out-of-line segment for message `seq`, taking the next free
    /// name if a dead process left one of the same name.
    fn spill_segment(&self, seq: u64, len: usize) -> Result<(String, Segment)> {
        let mut attempt = 0u32;
        loop {
            let name = if attempt == 0 {
                format!("{}.{seq}", self.spill_prefix)
            } else {
                format!("{}.{seq}-{attempt}", self.spill_prefix)
            };
            let made = SegmentBuilder::new(Kind::Raw)
                .data_size(len as u64)
                .flags(FLAG_QUEUED_MESSAGE)
                .create(&name);
            match made {
                Ok(seg) => return Ok((name, seg)),
                Err(Error::AlreadyExists { .. }) if attempt < 16 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    fn put_bytes(&self, msg: &[u8], wait: Wait) -> Result<()> {
        match wait {
            Wait::Try => self.bytes.try_put(msg),
            Wait::For(timeout) => self.bytes.put_timeout(msg, timeout),
            Wait::Until(deadline) => self.bytes.put_deadline(msg, deadline),
        }
    }

    /// Puts `value`, waiting for room as long as it takes.
    pub fn put(&self, value: &T) -> Result<()> {
        self.put_raw(value, Wait::Until(Deadline::never()))
    }

    /// Puts `value`, waiting at most `timeout` for room (`Timeout`).
    pub fn put_timeout(&self, value: &T, timeout: Duration) -> Result<()> {
        self.put_raw(value, Wait::For(timeout))
    }

    /// Puts `value` if there is room now, else fails with `Full`.
    pub fn try_put(&self, value: &T) -> Result<()> {
        self.put_raw(value, Wait::Try)
    }

    /// Puts raw bytes of any length as one message; a consumer takes them
    /// with [`get_message`](Self::get_message) (not as a `T`, unless they are
    /// `T`'s encoding).
    pub fn put_message(&self, bytes: &[u8], deadline: Deadline) -> Result<()> {
        with_scratch(&PUT_SCRATCH, |msg| {
            msg.push(INLINE);
            msg.extend_from_slice(bytes);
            self.put_encoded(msg, Wait::Until(deadline))
        })
    }

    /// [`put_message`](Self::put_message) if there is room now, else `Full`.
    pub fn try_put_message(&self, bytes: &[u8]) -> Result<()> {
        with_scratch(&PUT_SCRATCH, |msg| {
            msg.push(INLINE);
            msg.extend_from_slice(bytes);
            self.put_encoded(msg, Wait::Try)
        })
    }

    /// Hands the bytes of the oldest message (as
    /// [`get_message`](Self::get_message) would return them) to `f` if a
    /// message is there now, else `Empty`: a binding builds its own object
    /// from them with no vector in between.
    pub fn try_get_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.take(Wait::Try, |bytes| Ok(f(bytes)))
    }

    /// [`get_message`](Self::get_message) if a message is there now, else
    /// `Empty`.
    pub fn try_get_message(&self) -> Result<Vec<u8>> {
        self.take(Wait::Try, |bytes| Ok(bytes.to_vec()))
    }

    /// Takes the oldest value, waiting as long as it takes; `Closed` once the
    /// queue is shut down or its stream has ended, and drained.
    pub fn get(&self) -> Result<T> {
        self.take(Wait::Until(Deadline::never()), from_bytes)
    }

    /// Takes the oldest value, waiting at most `timeout` (`Timeout`).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.take(Wait::For(timeout), from_bytes)
    }

    /// Takes the oldest value if there is one now, else fails with `Empty`.
    pub fn try_get(&self) -> Result<T> {
        self.take(Wait::Try, from_bytes)
    }

    /// Takes the oldest message as bytes (a value's encoding, or what
    /// [`put_message`](Self::put_message) put), waiting until `deadline`.
    pub fn get_message(&self, deadline: Deadline) -> Result<Vec<u8>> {
        self.take(Wait::Until(deadline), |bytes| Ok(bytes.to_vec()))
    }

    /// Takes the oldest message, waiting as `wait` says, and hands its bytes
    /// to `f`: copied from the slot into this thread's scratch buffer, or
    /// read from its out-of-line segment.
    fn take<R>(&self, wait: Wait, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
        with_scratch(&GET_SCRATCH, |msg| {
            match wait {
                Wait::Try => self.bytes.get_reusing(msg, Deadline::never(), true)?,
                Wait::Until(d) => self.bytes.get_reusing(msg, d, false)?,
                Wait::For(timeout) => try_first(
                    timeout,
                    |d| self.bytes.get_reusing(msg, d, false),
                    is_timeout,
                )?,
            }
            match msg.first() {
                Some(&INLINE) => f(&msg[1..]),
                _ => f(&self.resolve(msg)?),
            }
        })
    }

    /// The message a tagged slot message stands for: its own bytes, or the
    /// out-of-line segment's, whose name is then removed.
    fn resolve(&self, msg: &[u8]) -> Result<Vec<u8>> {
        match msg.first() {
            Some(&INLINE) => Ok(msg[1..].to_vec()),
            Some(&SPILLED) => {
                let (len, name) = parse_reference(&msg[1..])
                    .filter(|(_, name)| name.starts_with(&self.spill_base))
                    .ok_or_else(|| {
                        Error::corrupted(
                            self.bytes.segment().display_name(),
                            "a malformed reference to a message stored out of line",
                        )
                    })?;
                let seg = Segment::open(name)?;
                if seg.len() < len {
                    return Err(Error::corrupted(
                        name,
                        format!("holds {} bytes of a {len}-byte message", seg.len()),
                    ));
                }
                let mut out = vec![0u8; len];
                seg.read(0, &mut out)?;
                drop(seg);
                Segment::unlink_kind(name, Kind::Raw)?;
                Ok(out)
            }
            _ => Err(Error::corrupted(
                self.bytes.segment().display_name(),
                "a message without an object queue's tag",
            )),
        }
    }

    /// Messages queued now (a snapshot).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no message is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// This handle puts no more (see [`ByteQueue::close`]).
    pub fn close(&self) {
        self.bytes.close();
    }

    /// Closes the queue for everyone (see [`ByteQueue::shutdown`]); with
    /// `immediate`, the messages discarded have their out-of-line segments
    /// removed.
    pub fn shutdown(&self, immediate: bool) {
        self.bytes.shutdown(false);
        if immediate {
            let mut discarded = 0usize;
            while let Ok(msg) = self.bytes.try_get() {
                if msg.first() == Some(&SPILLED) {
                    if let Some((_, name)) = parse_reference(&msg[1..]) {
                        let _ = Segment::unlink_kind(name, Kind::Raw);
                    }
                }
                discarded += 1;
            }
            if self.bytes.core.joinable {
                for _ in 0..discarded.min(self.bytes.unfinished_tasks()) {
                    let _ = self.bytes.task_done();
                }
            }
        }
    }

    /// Whether the queue was shut down.
    pub fn is_shutdown(&self) -> bool {
        self.bytes.is_shutdown()
    }

    /// Python's `JoinableQueue.task_done` (see [`ByteQueue::task_done`]).
    pub fn task_done(&self) -> Result<()> {
        self.bytes.task_done()
    }

    /// Python's `JoinableQueue.join` (see [`ByteQueue::join`]).
    pub fn join(&self) -> Result<()> {
        self.bytes.join()
    }

    /// [`join`](Self::join), waiting at most `timeout` (`Timeout`).
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.bytes.join_timeout(timeout)
    }
}

thread_local! {
    /// A put's encoding, kept between puts so that a put allocates nothing.
    static PUT_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A get's copy of its slot, kept between gets likewise.
    static GET_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Most bytes a scratch buffer keeps between calls (a message stored out of
/// line may have grown it to megabytes).
const SCRATCH_KEEP: usize = 64 * 1024;

/// Runs `f` with the thread's scratch buffer `key`, cleared; a nested call
/// (a `Payload` whose encoding puts on a queue, say) gets a fresh one.
fn with_scratch<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<u8>>>,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let r = f(&mut buf);
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// How long a call waits.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all (`Full` or `Empty`).
    Try,
    /// At most this long, counted from the first look (`Timeout`).
    For(Duration),
    /// Until this deadline (`Timeout`).
    Until(Deadline),
}

/// Splits a reference (after its tag) into the message length and the
/// out-of-line segment's name.
fn parse_reference(rest: &[u8]) -> Option<(usize, &str)> {
    let (len, name) = rest.split_first_chunk::<8>()?;
    let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
    let name = std::str::from_utf8(name).ok()?;
    crate::segment::validate_name(name).ok()?;
    Some((len, name))
}
