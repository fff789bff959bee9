//! Named and anonymous shared-memory segments: the header, the creation protocol,
//! validation on open, and the liveness table. Python counterpart:
//! `multiprocessing.shared_memory.SharedMemory`.
//!
//! # Layout
//!
//! ```text
//! offset 0      HeaderInfo   magic, version, kind, sizes, params, payload type,
//!                            creator pid and time (written once, before `ready`)
//! offset 192    state        INITIALISING (0) -> READY, published with Release
//! offset 256    slots[128]   participant table: pid, generation, status, since
//! offset 4096   data         the primitive's state, `data_size` bytes
//! ```
//!
//! # Creation protocol
//!
//! | creator                                   | opener                                        |
//! |-------------------------------------------|-----------------------------------------------|
//! | `shm_open(O_CREAT\|O_EXCL)`: exactly one  | `shm_open(O_RDWR)`                            |
//! | lock the *creator byte* (OFD lock)        | size 0: wait (bounded); at the bound, creator |
//! | `ftruncate`, map, write `HeaderInfo`      | byte locked → `NotReady`, else `CreatorDied`  |
//! | initialise the primitive's state          | size < header → `TooSmall`                    |
//! | `state = READY` (Release)                 | `state == READY` (Acquire) → validate a copy  |
//! | take a participant slot, unlock creator   | initialising and creator byte unlocked →      |
//! |                                           | `CreatorDied`, never a hang                   |
//!
//! The creator locks its byte before the file has a size, so a file with a size,
//! not ready, and no creator lock belongs to a creator that died.
//!
//! # Liveness
//!
//! Each process takes one participant slot per segment, however many handles
//! it opens, by locking that slot's byte of the file with an
//! open-file-description lock (see `tenure.rs`, which also gives a forked
//! child a slot of its own). The kernel drops the lock when the process dies,
//! so a slot whose status says *active* and whose byte is unlocked belongs to
//! a dead participant, whatever its pid has become since. Slots of dead
//! participants are taken again by later openers. A process whose last
//! handle is closed normally marks its slot *left*.
//!
//! # Untrusted contents
//!
//! The header is copied out of the segment and validated once; the handle then
//! uses only its own copy. A segment can still be truncated behind our back by a
//! hostile process holding write access, which makes later accesses fault
//! (`SIGBUS`): use file permissions (the default mode is `0600`) to keep such
//! processes out. Anonymous segments are immune: their size is sealed
//! (`F_SEAL_SHRINK | F_SEAL_GROW`) as soon as it is set.

use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::time::{Duration, SystemTime};

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Mismatch, Result};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sys;
use crate::sys::shm::{Mapping, OpenMode};

mod builder;
mod stream;
mod tenure;
#[doc(hidden)]
pub use tenure::hold_registry_for;
pub(crate) use tenure::participants_of;

pub use stream::Role;

/// [`HeaderInfo::flags`] bit of a queue created joinable (Python's
/// `JoinableQueue`): puts count unfinished tasks, `task_done` and `join` work.
pub const FLAG_JOINABLE: u32 = 1;
/// [`HeaderInfo::flags`] bit of a message an object queue stored out of line
/// (named `QUEUE.mPID.N` after its queue): it belongs to whoever gets its
/// reference from the queue, so `gc` leaves it while its queue exists.
pub const FLAG_QUEUED_MESSAGE: u32 = 2;

/// The first eight bytes of every shmprim segment.
pub const MAGIC: [u8; 8] = *b"SHMPRIM\0";
/// Version of the header and state layouts this build reads and writes.
/// 2: the slots of a `Queue`'s ring (fixed-size elements) have no length word.
/// 3: locks (mutexes, and those of Values, Arrays and Condvars) are shmprim's
/// own lock word, not a glibc robust mutex.
pub const LAYOUT_VERSION: u32 = 3;
/// Bytes reserved for the header; the primitive's data starts here.
pub const HEADER_SIZE: usize = 4096;
/// Number of participant slots in every segment.
pub const MAX_PARTICIPANTS: usize = 128;
/// Longest accepted segment name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Number of `u64` creation parameters a header carries.
pub const PARAM_COUNT: usize = 8;
/// Default permission bits of a new segment.
pub const DEFAULT_MODE: u32 = 0o600;
/// Default bound on how long `open` waits for a segment being initialised.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) const STATE_INITIALISING: u32 = 0;
pub(crate) const STATE_READY: u32 = 0x5245_4459; // "REDY"

const SLOT_UNUSED: u32 = 0;
const SLOT_ACTIVE: u32 = 1;
const SLOT_LEFT: u32 = 2;

/// What a segment holds. Stored in the header as a `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum Kind {
    /// Plain bytes (Python's `SharedMemory`).
    Raw = 1,
    /// [`Mutex`](https://docs.python.org/3/library/multiprocessing.html) (`Lock`).
    Mutex = 2,
    /// Reentrant mutex (`RLock`).
    ReentrantMutex = 3,
    /// Counting semaphore (`Semaphore`, `BoundedSemaphore`).
    Semaphore = 4,
    /// Event (`Event`).
    Event = 5,
    /// Condition variable (`Condition`).
    Condvar = 6,
    /// Barrier (`Barrier`).
    Barrier = 7,
    /// MPMC queue of fixed-size elements (`Queue`).
    Queue = 8,
    /// MPMC queue of byte messages (`Queue` of bytes).
    ByteQueue = 9,
    /// Pipe: two SPSC byte rings (`Pipe`).
    Pipe = 10,
    /// Typed cell (`Value`).
    Value = 11,
    /// Typed array (`Array`).
    Array = 12,
    /// SPSC ring of fixed-size elements.
    SpscRing = 13,
    /// SPSC ring of byte messages.
    SpscByteRing = 14,
    /// Duplex channel of fixed-size values: two interleaved SPSC rings.
    Duplex = 15,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 15] = [
        Kind::Raw,
        Kind::Mutex,
        Kind::ReentrantMutex,
        Kind::Semaphore,
        Kind::Event,
        Kind::Condvar,
        Kind::Barrier,
        Kind::Queue,
        Kind::ByteQueue,
        Kind::Pipe,
        Kind::Value,
        Kind::Array,
        Kind::SpscRing,
        Kind::SpscByteRing,
        Kind::Duplex,
    ];

    /// The kind stored as `code`, if any.
    pub fn from_code(code: u32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u32 == code)
    }

    /// A short lowercase name (`"queue"`, `"mutex"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Mutex => "mutex",
            Kind::ReentrantMutex => "rmutex",
            Kind::Semaphore => "semaphore",
            Kind::Event => "event",
            Kind::Condvar => "condvar",
            Kind::Barrier => "barrier",
            Kind::Queue => "queue",
            Kind::ByteQueue => "byte-queue",
            Kind::Pipe => "pipe",
            Kind::Value => "value",
            Kind::Array => "array",
            Kind::SpscRing => "spsc-ring",
            Kind::SpscByteRing => "spsc-byte-ring",
            Kind::Duplex => "duplex",
        }
    }
}

fn kind_name(code: u32) -> String {
    Kind::from_code(code).map_or_else(|| format!("unknown kind {code}"), |k| k.name().into())
}

/// Codes for payload types, shared with C (`SHMPRIM_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum TypeCode {
    /// No payload.
    None = 0,
    /// Raw bytes of a given size: compatible with any type of that size and alignment.
    Bytes = 1,
    /// `bool` / C `bool` (one byte, 0 or 1).
    Bool = 2,
    /// `i8` / `int8_t`.
    I8 = 3,
    /// `u8` / `uint8_t`.
    U8 = 4,
    /// `i16` / `int16_t`.
    I16 = 5,
    /// `u16` / `uint16_t`.
    U16 = 6,
    /// `i32` / `int32_t`.
    I32 = 7,
    /// `u32` / `uint32_t`.
    U32 = 8,
    /// `i64` / `int64_t`.
    I64 = 9,
    /// `u64` / `uint64_t`.
    U64 = 10,
    /// `f32` / `float`.
    F32 = 11,
    /// `f64` / `double`.
    F64 = 12,
    /// A plain-data struct, identified by its name as well as size and alignment.
    Struct = 13,
}

impl TypeCode {
    /// The code stored as `code`, if any.
    pub fn from_code(code: u32) -> Option<TypeCode> {
        use TypeCode::*;
        [
            None, Bytes, Bool, I8, U8, I16, U16, I32, U32, I64, U64, F32, F64, Struct,
        ]
        .into_iter()
        .find(|t| *t as u32 == code)
    }
}

/// `T`'s name as a payload type is known by: `std::any::type_name` with
/// every module path taken out (`app::geom::Point<core::f64>` is
/// `Point<f64>`), so that it depends only on what the type's definition
/// names, not on where the definition lives. A payload's identity is this
/// name with its size and alignment.
pub fn stable_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            // Drop the path segment just written, and the separator.
            out.truncate(segment_start);
            continue;
        }
        out.push(c);
        if !(c.is_alphanumeric() || c == '_') {
            segment_start = out.len();
        }
    }
    out
}

/// Length of the type name stored in a [`TypeDesc`].
pub const TYPE_NAME_LEN: usize = 48;

/// Description of a payload type, stored in the header so that an opener with
/// another type is refused (`Incompatible`).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct TypeDesc {
    /// `size_of` the element, in bytes.
    pub size: u64,
    /// `align_of` the element.
    pub align: u32,
    /// A [`TypeCode`] as `u32`.
    pub code: u32,
    /// The type's name, NUL-padded (truncated to 48 bytes); empty matches any.
    pub name: [u8; TYPE_NAME_LEN],
}

impl TypeDesc {
    /// No payload.
    pub const NONE: TypeDesc = TypeDesc {
        size: 0,
        align: 0,
        code: TypeCode::None as u32,
        name: [0; TYPE_NAME_LEN],
    };

    /// A description from its parts; `name` is truncated to 48 bytes.
    pub fn new(code: TypeCode, size: u64, align: u32, name: &str) -> TypeDesc {
        let mut buf = [0u8; TYPE_NAME_LEN];
        let n = name.len().min(TYPE_NAME_LEN);
        buf[..n].copy_from_slice(&name.as_bytes()[..n]);
        TypeDesc {
            size,
            align,
            code: code as u32,
            name: buf,
        }
    }

    /// The description of `T` with the given code, named by
    /// [`stable_type_name`]: the type's own name without the module paths, so
    /// that the same definition in two modules or two binaries matches.
    pub fn of<T>(code: TypeCode) -> TypeDesc {
        TypeDesc::new(
            code,
            std::mem::size_of::<T>() as u64,
            std::mem::align_of::<T>() as u32,
            &stable_type_name::<T>(),
        )
    }

    /// The stored name, up to its first NUL (lossily decoded).
    pub fn name_str(&self) -> String {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(TYPE_NAME_LEN);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }

    /// Whether a segment holding `self` may be opened by someone expecting
    /// `wanted`: same size and alignment, and either side is raw bytes, or the
    /// codes match and the names match where both are given.
    pub fn is_compatible_with(&self, wanted: &TypeDesc) -> bool {
        if self.size != wanted.size || self.align != wanted.align {
            return false;
        }
        let bytes = TypeCode::Bytes as u32;
        if self.code == bytes || wanted.code == bytes {
            return true;
        }
        if self.code != wanted.code {
            return false;
        }
        self.name[0] == 0 || wanted.name[0] == 0 || self.name == wanted.name
    }
}

impl std::fmt::Debug for TypeDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeDesc")
            .field("size", &self.size)
            .field("align", &self.align)
            .field("code", &self.code)
            .field("name", &self.name_str())
            .finish()
    }
}

impl std::fmt::Display for TypeDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = TypeCode::from_code(self.code)
            .map_or_else(|| format!("code {}", self.code), |c| format!("{c:?}"));
        write!(
            f,
            "{} ({code}, {} bytes, align {})",
            self.name_str(),
            self.size,
            self.align
        )
    }
}

/// The immutable part of a segment header, written by the creator before it
/// publishes `ready` and copied out (then validated) by every opener.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct HeaderInfo {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`LAYOUT_VERSION`].
    pub version: u32,
    /// A [`Kind`] as `u32`.
    pub kind: u32,
    /// [`HEADER_SIZE`].
    pub header_size: u32,
    /// Number of participant slots ([`MAX_PARTICIPANTS`]).
    pub slot_count: u32,
    /// Size of the whole segment (header and data), in bytes.
    pub total_size: u64,
    /// Offset of the primitive's data from the start of the segment.
    pub data_offset: u64,
    /// Size of the primitive's data, in bytes.
    pub data_size: u64,
    /// Creation parameters; their meaning depends on the kind.
    pub params: [u64; PARAM_COUNT],
    /// The payload type.
    pub payload: TypeDesc,
    /// Pid of the creating process (for display: pids are reused).
    pub creator_pid: u32,
    /// Creation flags: [`FLAG_JOINABLE`] for a queue that counts unfinished
    /// tasks; the other bits are zero.
    pub flags: u32,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_at_ns: u64,
}

/// One row of the participant table.
#[repr(C)]
struct Slot {
    /// Pid of the process that took the slot last.
    pid: AtomicU32,
    /// Bumped each time the slot is taken, so a participant id names one tenure.
    generation: AtomicU32,
    /// `SLOT_UNUSED`, `SLOT_ACTIVE` or `SLOT_LEFT`.
    status: AtomicU32,
    /// The generation of the tenure whose handle sends on the segment's stream
    /// (a queue's producers), or 0: see `stream`.
    sending: AtomicU32,
    /// When the slot was taken, nanoseconds since the Unix epoch.
    since_ns: AtomicU64,
}

#[repr(C)]
pub(crate) struct Header {
    info: HeaderInfo,
    /// `STATE_INITIALISING`, then `STATE_READY` (Release store by the creator,
    /// Acquire load by openers: publishes `info` and the primitive's state).
    state: AtomicU32,
    /// Who still sends, and the tasks not yet done, for queues: see `stream`.
    stream: stream::StreamWords,
    _reserved: [u32; 10],
    slots: [Slot; MAX_PARTICIPANTS],
}

#[cfg(not(shmprim_loom))]
const _: () = {
    assert!(std::mem::size_of::<HeaderInfo>() == 192);
    assert!(std::mem::offset_of!(Header, state) == 192);
    assert!(std::mem::offset_of!(Header, slots) == 256);
    assert!(std::mem::size_of::<Header>() <= HEADER_SIZE);
};

/// Byte of the file locked by the creator while it initialises the segment.
pub(crate) const CREATOR_LOCK_BYTE: u64 = std::mem::offset_of!(Header, state) as u64;

/// Byte of the file locked by the holder of participant slot `i`.
fn slot_lock_byte(i: u32) -> u64 {
    (std::mem::offset_of!(Header, slots) + i as usize * std::mem::size_of::<Slot>()) as u64
}

fn page_size() -> u64 {
    4096
}

/// Checks `name` against the naming rule, before any system call: 1 to 200 bytes
/// from the POSIX portable filename set `[A-Za-z0-9._-]`, not starting with `.`
/// or `-`. (`/`, NUL, spaces and other characters are refused.)
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &'static str| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("is longer than 200 bytes");
    }
    if name.contains('\0') {
        return bad("contains a NUL byte");
    }
    if name.contains('/') {
        return bad("contains '/'");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("starts with '.' or '-'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("contains a character outside [A-Za-z0-9._-]");
    }
    Ok(())
}

/// Identifies one participant's tenure of a slot: the slot index and the
/// generation it was taken at. A later process in the same slot has another id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParticipantId {
    /// Slot index.
    pub slot: u32,
    /// Generation of the slot when it was taken.
    pub generation: u32,
}

impl ParticipantId {
    /// Packs the id into one `u64` (for storing in shared memory). Never zero.
    pub fn to_u64(self) -> u64 {
        ((self.generation as u64) << 32) | (self.slot as u64 + 1)
    }

    /// Unpacks an id packed by [`ParticipantId::to_u64`]; `None` for zero.
    pub fn from_u64(v: u64) -> Option<ParticipantId> {
        let low = v as u32;
        (low != 0).then(|| ParticipantId {
            slot: low - 1,
            generation: (v >> 32) as u32,
        })
    }
}

/// One row of the liveness table, as seen by [`Segment::participants`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Slot index and generation.
    pub id: ParticipantId,
    /// Pid the participant had (it may have been reused since, if dead).
    pub pid: u32,
    /// Whether the process still holds the segment open.
    pub alive: bool,
    /// Whether the participant closed its handle normally.
    pub left: bool,
    /// Whether this is the querying handle itself.
    pub is_self: bool,
    /// When the participant joined.
    pub since: SystemTime,
}

/// Options every named handle accepts: permission bits of a new segment, whether
/// the handle unlinks the name when dropped, and how long `open` waits for a
/// segment still being initialised.
///
/// ```
/// use std::time::Duration;
/// let opts = shmprim::Options::default().mode(0o640).unlink_on_drop(true);
/// assert_eq!(opts.mode, 0o640);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Permission bits of a new segment (default `0o600`).
    pub mode: u32,
    /// Unlink the name when the handle is dropped (default `false`).
    pub unlink_on_drop: bool,
    /// Bound on waiting for a segment being initialised (default 5 s).
    pub ready_timeout: Duration,
    /// Queues only: which way the handle carries messages (default
    /// [`Role::Both`]); see the [`queue`](crate::queue) module's end of stream.
    pub role: Role,
    /// Queues only, at creation: count unfinished tasks, as Python's
    /// `JoinableQueue` (default `false`).
    pub joinable: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            mode: DEFAULT_MODE,
            unlink_on_drop: false,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            role: Role::Both,
            joinable: false,
        }
    }
}

impl Options {
    /// Sets a queue handle's [`Role`].
    pub fn role(mut self, role: Role) -> Options {
        self.role = role;
        self
    }

    /// Sets whether a queue created with these options is joinable.
    pub fn joinable(mut self, yes: bool) -> Options {
        self.joinable = yes;
        self
    }

    /// Sets the permission bits of a new segment.
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = mode & 0o777;
        self
    }

    /// Sets whether the handle unlinks the name when dropped.
    pub fn unlink_on_drop(mut self, yes: bool) -> Options {
        self.unlink_on_drop = yes;
        self
    }

    /// Sets how long `open` waits for a segment still being initialised.
    pub fn ready_timeout(mut self, timeout: Duration) -> Options {
        self.ready_timeout = timeout;
        self
    }
}

/// How to create or open a segment: its kind, size, parameters and payload type,
/// and handle options. Primitives build one and call [`create_with`].
///
/// [`create_with`]: SegmentBuilder::create_with
#[derive(Debug, Clone)]
pub struct SegmentBuilder {
    kind: Kind,
    data_size: u64,
    params: [u64; PARAM_COUNT],
    payload: TypeDesc,
    check_payload: bool,
    mode: u32,
    unlink_on_drop: bool,
    ready_timeout: Duration,
    flags: u32,
}

/// Whether `open_or_create` created the segment or opened an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// This call created it.
    Created,
    /// It existed; this call opened it.
    Opened,
}

const ANON: &str = "<anonymous>";

/// Waits (bounded) for `state == READY`, then returns a copy of the header info.
/// Checks the magic first, so a foreign file is `NotShmprim` at once.
fn wait_ready(
    name: &str,
    map: &Mapping,
    deadline: crate::Deadline,
    creator_alive: impl Fn() -> Result<bool>,
) -> Result<HeaderInfo> {
    let header = map.as_ptr().cast::<Header>();
    loop {
        // SAFETY: the mapping covers at least HEADER_SIZE bytes, so `state` is in
        // bounds and 4-byte aligned; it is only accessed atomically.
        let state = unsafe { &(*header).state }.load(Ordering::Acquire);
        // Another process may write the header concurrently (untrusted memory): we
        // validate this private copy, never the shared original.
        let info: HeaderInfo =
            // SAFETY: in bounds as above; `HeaderInfo` is Pod, so any bytes are valid.
            unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*header).info)) };
        if info.magic != MAGIC && info.magic != [0; 8] {
            return Err(Error::NotShmprim {
                name: name.to_owned(),
            });
        }
        if state == STATE_READY {
            if info.magic != MAGIC {
                return Err(Error::NotShmprim {
                    name: name.to_owned(),
                });
            }
            return Ok(info);
        }
        if state != STATE_INITIALISING {
            return Err(if info.magic == MAGIC {
                Error::corrupted(name, format!("unknown segment state {state:#x}"))
            } else {
                Error::NotShmprim {
                    name: name.to_owned(),
                }
            });
        }
        if !creator_alive()? {
            // The creator sets READY before unlocking; look once more.
            // SAFETY: as above.
            if unsafe { &(*header).state }.load(Ordering::Acquire) == STATE_READY {
                continue;
            }
            return Err(Error::CreatorDied {
                name: name.to_owned(),
            });
        }
        if deadline.has_passed() {
            return Err(Error::NotReady {
                name: name.to_owned(),
            });
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Builds a handle on a segment this process has just created; if that
/// fails (a layout the handle refuses), the name is removed again, so that a
/// failed create leaves no file behind.
pub(crate) fn finish_create<T>(
    seg: Segment,
    build: impl FnOnce(Segment) -> Result<T>,
) -> Result<T> {
    let name = seg.name().map(str::to_owned);
    let handle = build(seg);
    if handle.is_err() {
        if let Some(name) = name {
            let _ = unlink_unchecked(&name);
        }
    }
    handle
}

/// Removes the name `name`, whatever file it is: for callers that checked
/// it themselves (`gc`, `shmprim rm`, the unlinks above).
pub(crate) fn unlink_unchecked(name: &str) -> Result<()> {
    validate_name(name)?;
    sys::shm::shm_unlink(name).map_err(|e| Error::from_io(name, "shm_unlink", e))
}

/// A copy of the header info of the file `name`, read without mapping it:
/// `NotShmprim` unless the file is at least a header long and carries the
/// magic.
fn peek_info(name: &str) -> Result<HeaderInfo> {
    validate_name(name)?;
    let io = |op| move |e| Error::from_io(name, op, e);
    let fd = sys::shm::shm_open(name, sys::shm::OpenMode::ReadOnly, 0).map_err(io("shm_open"))?;
    let not_ours = || Error::NotShmprim {
        name: name.to_owned(),
    };
    if sys::shm::fstat(&fd).map_err(io("fstat"))?.size < HEADER_SIZE as u64 {
        return Err(not_ours());
    }
    let mut bytes = [0u8; std::mem::size_of::<HeaderInfo>()];
    let file = std::fs::File::from(fd);
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, 0).map_err(io("pread"))?;
    let info: HeaderInfo = bytemuck::pod_read_unaligned(&bytes);
    if info.magic != MAGIC {
        return Err(not_ours());
    }
    Ok(info)
}

/// Reads the state word and a private copy of the header info from a mapping of
/// at least `HEADER_SIZE` bytes (read-only mappings included: loads only).
pub(crate) fn header_snapshot(map: &Mapping) -> (u32, HeaderInfo) {
    let header = map.as_ptr().cast::<Header>();
    // SAFETY: callers map at least HEADER_SIZE bytes, so `state` is in bounds and
    // aligned; an atomic load is allowed on read-only memory.
    let state = unsafe { &(*header).state }.load(Ordering::Acquire);
    // SAFETY: in bounds as above; HeaderInfo is Pod, so any bytes are valid, and we
    // only ever use this private copy.
    let info = unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*header).info)) };
    (state, info)
}

/// The header of a mapping of at least `HEADER_SIZE` bytes.
///
/// # Safety
/// `map` must cover at least `HEADER_SIZE` bytes.
pub(crate) unsafe fn header_of(map: &Mapping) -> &Header {
    // SAFETY: the caller guarantees the size; the mapping is page aligned; all
    // mutable fields are atomics, read with loads only by inspection.
    unsafe { &*map.as_ptr().cast::<Header>() }
}

/// Checks a copied header against this build and the file's real size.
pub(crate) fn validate_info(name: &str, info: &HeaderInfo, file_size: u64) -> Result<()> {
    if info.version != LAYOUT_VERSION {
        return Err(Error::Incompatible {
            name: name.to_owned(),
            what: Mismatch::Version,
            expected: LAYOUT_VERSION.to_string(),
            found: info.version.to_string(),
        });
    }
    let bad = |detail: String| Err(Error::corrupted(name, detail));
    if info.header_size != HEADER_SIZE as u32 {
        return bad(format!(
            "header size {} (expected {HEADER_SIZE})",
            info.header_size
        ));
    }
    if info.slot_count == 0 || info.slot_count as usize > MAX_PARTICIPANTS {
        return bad(format!("participant slot count {}", info.slot_count));
    }
    if info.total_size > file_size {
        return Err(Error::Truncated {
            name: name.to_owned(),
            size: file_size,
            claimed: info.total_size,
        });
    }
    let data_end = info.data_offset.checked_add(info.data_size);
    if info.data_offset < HEADER_SIZE as u64
        || info.data_offset % 64 != 0
        || data_end.is_none_or(|end| end > info.total_size)
    {
        return bad(format!(
            "data area {}+{} does not fit in {} bytes",
            info.data_offset, info.data_size, info.total_size
        ));
    }
    if Kind::from_code(info.kind).is_none() {
        return bad(format!("unknown kind {}", info.kind));
    }
    Ok(())
}

/// A mapped shared-memory segment: a validated header, a participant slot held
/// for the handle's lifetime, and a data area for one primitive's state.
///
/// Used directly, a segment of [`Kind::Raw`] is a block of shared bytes, like
/// Python's `SharedMemory`:
///
/// ```
/// use shmprim::Segment;
/// # let name = format!("doc-segment-{}", std::process::id());
/// let seg = Segment::create(&name, 64)?;
/// seg.write(0, b"hello")?;
/// let other = Segment::open(&name)?; // another process would do this
/// let mut buf = [0u8; 5];
/// other.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// Segment::unlink(&name)?;
/// # Ok::<(), shmprim::Error>(())
/// ```
#[derive(Debug)]
pub struct Segment {
    /// The name, `<anonymous>` for an anonymous segment: errors carry it.
    name: crate::ObjectName,
    anonymous: bool,
    fd: OwnedFd,
    map: Mapping,
    info: HeaderInfo,
    /// This process's tenure of a participant slot (see `tenure.rs`), shared
    /// by its handles; `None` only while the handle is being built.
    tenure: Option<std::sync::Arc<tenure::Tenure>>,
    /// Tenures taken by processes forked since the handle was opened.
    forked: std::sync::Mutex<Vec<std::sync::Arc<tenure::Tenure>>>,
    /// 1 + the fork generation in which this handle registered as a sender
    /// (see `set_sending`); 0 when it is not registered.
    sending: std::sync::atomic::AtomicU32,
    /// Pid of the process that opened the handle: only it may remove the name
    /// on drop (a child forked with the handle must not).
    owner_pid: u32,
    unlink_on_drop: bool,
    /// `fork_generation()` when the handle was opened.
    fork_gen: u32,
}

impl Segment {
    /// Creates a raw segment with `size` bytes of zeroed data; `AlreadyExists` if
    /// the name is taken.
    pub fn create(name: &str, size: usize) -> Result<Segment> {
        SegmentBuilder::new(Kind::Raw)
            .data_size(size as u64)
            .create(name)
    }

    /// Opens an existing raw segment.
    pub fn open(name: &str) -> Result<Segment> {
        SegmentBuilder::new(Kind::Raw).open(name)
    }

    /// Opens a raw segment, or creates it with `size` bytes if it does not exist.
    pub fn open_or_create(name: &str, size: usize) -> Result<(Segment, Disposition)> {
        SegmentBuilder::new(Kind::Raw)
            .data_size(size as u64)
            .open_or_create(name)
    }

    /// An anonymous raw segment of `size` bytes, inherited by forked children.
    pub fn anonymous(size: usize) -> Result<Segment> {
        SegmentBuilder::new(Kind::Raw)
            .data_size(size as u64)
            .anonymous()
    }

    /// Removes the name of a shmprim segment of any kind. Processes that
    /// have it open keep their mapping. A file that is not a shmprim segment
    /// (`/dev/shm` holds other programs' objects too) is refused with
    /// `NotShmprim` and left alone.
    ///
    /// The check and the removal are two steps: another process can replace
    /// the file between them, and that file is then removed.
    pub fn unlink(name: &str) -> Result<()> {
        peek_info(name)?;
        unlink_unchecked(name)
    }

    /// Removes the name of a shmprim segment of `kind`, what every typed
    /// unlink (`Mutex::unlink`, `Queue::unlink`, ...) calls: another kind of
    /// segment is refused with `Incompatible`, a file that is not a shmprim
    /// segment with `NotShmprim`, and both are left alone. As for
    /// [`unlink`](Self::unlink), the check and the removal are two steps.
    pub fn unlink_kind(name: &str, kind: Kind) -> Result<()> {
        let info = peek_info(name)?;
        if info.kind != kind as u32 {
            return Err(Error::Incompatible {
                name: name.to_owned(),
                what: Mismatch::Kind,
                expected: kind.name().to_owned(),
                found: kind_name(info.kind),
            });
        }
        unlink_unchecked(name)
    }

    /// The descriptor behind the mapping, to hand down to a spawned child
    /// ([`SegmentBuilder::open_inherited`] opens it there).
    #[cfg_attr(shmprim_loom, allow(dead_code))]
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    /// The name, or `None` for an anonymous segment.
    pub fn name(&self) -> Option<&str> {
        (!self.anonymous).then(|| self.name.as_str())
    }

    /// The name for messages (`<anonymous>` when there is none).
    pub fn display_name(&self) -> &str {
        self.name.as_str()
    }

    /// The name errors about the segment carry (`<anonymous>` when there is
    /// none).
    pub fn object_name(&self) -> &crate::ObjectName {
        &self.name
    }

    /// The kind of primitive it holds.
    pub fn kind(&self) -> Kind {
        Kind::from_code(self.info.kind).expect("validated on open")
    }

    /// The validated copy of the header taken when the segment was opened.
    pub fn info(&self) -> &HeaderInfo {
        &self.info
    }

    /// Creation parameter `i`.
    pub fn param(&self, i: usize) -> u64 {
        self.info.params[i]
    }

    /// Fails with `Incompatible { what: Parameter }` unless parameter `i` is
    /// `expected`; `what` names it in the message.
    pub fn expect_param(&self, i: usize, expected: u64, what: &str) -> Result<()> {
        let found = self.info.params[i];
        if found == expected {
            Ok(())
        } else {
            Err(Error::Incompatible {
                name: self.display_name().to_owned(),
                what: Mismatch::Parameter,
                expected: format!("{what} {expected}"),
                found: format!("{what} {found}"),
            })
        }
    }

    /// Fails with `Corrupted` unless the data area holds at least `needed` bytes.
    pub fn expect_data_size(&self, needed: u64) -> Result<()> {
        if self.info.data_size >= needed {
            Ok(())
        } else {
            Err(Error::corrupted(
                self.display_name(),
                format!(
                    "data area is {} bytes, {} needed",
                    self.info.data_size, needed
                ),
            ))
        }
    }

    /// Start of the data area (4096-byte aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map
            .as_ptr()
            .wrapping_add(self.info.data_offset as usize)
    }

    /// Size of the data area, in bytes.
    pub fn len(&self) -> usize {
        self.info.data_size as usize
    }

    /// Whether the data area is empty.
    pub fn is_empty(&self) -> bool {
        self.info.data_size == 0
    }

    /// Copies `buf.len()` bytes at `offset` of the data area into `buf`. Not
    /// synchronised with writers: pair it with a primitive for ordering.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len())?;
        // SAFETY: the range is within the mapped data area (checked above) and
        // `buf` is a distinct, writable local buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    /// Copies `data` to `offset` of the data area. Not synchronised with readers.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_range(offset, data.len())?;
        // SAFETY: the range is within the mapped, writable data area (checked
        // above) and `data` is a distinct local buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.as_ptr().add(offset), data.len())
        };
        Ok(())
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(Error::IndexOutOfRange {
                name: self.name.clone(),
                index: offset.saturating_add(len),
                len: self.len(),
            }),
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_SIZE bytes and page aligned; the
        // header's mutable fields are atomics, and `info` is only read through our
        // private copy.
        unsafe { &*self.map.as_ptr().cast::<Header>() }
    }

    fn slot(&self, i: u32) -> &Slot {
        &self.header().slots[i as usize]
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // A queue handle takes its registration back (and wakes its
        // receivers) itself; this covers any other sending handle.
        self.set_sending(false);
        let generation = crate::sys::fork::fork_generation();
        let forked = std::mem::take(self.forked.get_mut().unwrap_or_else(|e| e.into_inner()));
        for t in self.tenure.iter().chain(forked.iter()) {
            if t.fork_gen() == generation {
                self.leave_tenure(t);
            }
        }
        drop(forked);
        // Only in the process that opened this handle: a child that inherited
        // it through fork and drops it must not remove its parent's name.
        if self.unlink_on_drop && self.owner_pid == sys::getpid() {
            if let Some(name) = self.name() {
                let _ = sys::shm::shm_unlink(name);
            }
        }
    }
}

// SAFETY: a Segment owns its descriptor and mapping; everything it exposes from
// shared memory is atomics or raw pointers, so sharing it between threads adds no
// data race that sharing it between processes does not already have to handle.
unsafe impl Send for Segment {}
// SAFETY: as above; `&Segment` methods only perform atomic operations, system
// calls and bounds-checked copies.
unsafe impl Sync for Segment {}

#[cfg(all(test, not(shmprim_loom)))]
mod tests;
