//! How a spawned child finds the function it runs, and the records that carry
//! its argument in and its result out.
//!
//! A spawned child is the same executable started again (`/proc/self/exe`,
//! which names the very file the parent runs even if the path was replaced
//! since). Its functions sit at the same offsets from one another, only the
//! load address differs: the parent sends a function as its distance from
//! [`base`], the child adds its own `base` back. procspawn finds functions the
//! same way. A second distance, of [`check`], must come out equal in the
//! child, or the child refuses to run anything (another build answered).
//!
//! The argument and the result travel in one memfd the parent creates and the
//! child inherits: no name, nothing to clean up, no size limit, and the child
//! never blocks on a parent that is not reading.

use std::os::fd::{AsFd, BorrowedFd};

use super::payload::{Payload, from_bytes, malformed};
use crate::error::{Error, Result};
use crate::sys::process as sys;

/// What runs in the child: decodes the argument, calls the function whose
/// address it is given, appends the encoded result to the buffer.
pub(crate) type Trampoline = fn(usize, &[u8], &mut Vec<u8>) -> Result<()>;

/// The function every distance is measured from.
#[inline(never)]
fn base() -> u32 {
    0x5350_4231
}

/// A second function whose distance from [`base`] the child checks.
#[inline(never)]
fn check() -> u32 {
    0x5350_4232
}

fn base_addr() -> usize {
    let f: fn() -> u32 = base;
    f as usize
}

/// The distance of a function's address from [`base`].
pub(crate) fn offset_of(addr: usize) -> u64 {
    addr.wrapping_sub(base_addr()) as u64
}

/// The address of a function from its distance.
fn addr_of(offset: u64) -> usize {
    base_addr().wrapping_add(offset as usize)
}

fn check_offset() -> u64 {
    let f: fn() -> u32 = check;
    offset_of(f as usize)
}

/// The trampoline for functions `fn(A) -> R`.
pub(crate) fn trampoline<A: Payload, R: Payload>(
    f: usize,
    arg: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    // SAFETY: `f` is the address of an `fn(A) -> R`: the parent took it from
    // one (see `Entry::of`), and this build is the parent's (the check offset
    // matched before any entry is called).
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(f) };
    let arg = from_bytes::<A>(arg)?;
    f(arg).encode(out);
    Ok(())
}

/// The trampoline for functions `fn(A, B) -> R` on a pair.
pub(crate) fn trampoline2<A: Payload, B: Payload, R: Payload>(
    f: usize,
    arg: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    // SAFETY: as in `trampoline`, for an `fn(A, B) -> R` (see `Entry::of2`).
    let f: fn(A, B) -> R = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(f) };
    let (a, b) = from_bytes::<(A, B)>(arg)?;
    f(a, b).encode(out);
    Ok(())
}

/// A function to run in another process, as distances from [`base`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Entry {
    trampoline: u64,
    function: u64,
}

impl Entry {
    /// The entry for `f`. Refused when `f` lives in another loaded object
    /// than this crate (a shared library), where distances do not carry over.
    pub(crate) fn of<A: Payload, R: Payload>(f: fn(A) -> R) -> Result<Entry> {
        Self::checked(trampoline::<A, R>, f as usize)
    }

    /// The entry for a two-argument `f`, called on a pair.
    pub(crate) fn of2<A: Payload, B: Payload, R: Payload>(f: fn(A, B) -> R) -> Result<Entry> {
        Self::checked(trampoline2::<A, B, R>, f as usize)
    }

    /// The entry for a function `f` that `t` knows how to call, with no check
    /// of where it lives: for forked workers only, which share the parent's
    /// addresses.
    pub(crate) fn forked(t: Trampoline, f: usize) -> Entry {
        Entry {
            trampoline: offset_of(t as usize),
            function: offset_of(f),
        }
    }

    fn checked(t: Trampoline, f: usize) -> Result<Entry> {
        for addr in [t as usize, f] {
            if sys::same_object(addr, base_addr()) == Some(false) {
                return Err(Error::invalid_argument(
                    "the function lives in a shared library, not in the executable: \
                     a spawned child cannot find it",
                ));
            }
        }
        Ok(Entry {
            trampoline: offset_of(t as usize),
            function: offset_of(f),
        })
    }

    /// Runs the entry on an encoded argument.
    ///
    /// # Safety
    /// The entry must have been made by [`Entry::of`] in a process running this
    /// very build, and decoded only after [`Boot::decode`] checked that.
    pub(crate) unsafe fn call(self, arg: &[u8], out: &mut Vec<u8>) -> Result<()> {
        // SAFETY: per the contract, `trampoline` is the distance of a
        // `Trampoline` in this build.
        let t: Trampoline =
            unsafe { std::mem::transmute::<usize, Trampoline>(addr_of(self.trampoline)) };
        t(addr_of(self.function), arg, out)
    }
}

impl Payload for Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        self.trampoline.encode(out);
        self.function.encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(Entry {
            trampoline: u64::decode(input)?,
            function: u64::decode(input)?,
        })
    }
}

const BOOT_MAGIC: u32 = u32::from_le_bytes(*b"SPbt");
const RESULT_MAGIC: u32 = u32::from_le_bytes(*b"SPrs");

/// What a spawned child is told: who started it, what to run, on what.
pub(crate) struct Boot {
    pub(crate) parent: u32,
    pub(crate) daemon: bool,
    pub(crate) name: String,
    pub(crate) entry: Entry,
    pub(crate) arg: Vec<u8>,
}

impl Boot {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.arg.len());
        BOOT_MAGIC.encode(&mut out);
        check_offset().encode(&mut out);
        self.parent.encode(&mut out);
        self.daemon.encode(&mut out);
        self.name.encode(&mut out);
        self.entry.encode(&mut out);
        out.extend_from_slice(&self.arg);
        out
    }

    /// Decodes a boot record, refusing one written by another build.
    pub(crate) fn decode(mut input: &[u8]) -> Result<Boot> {
        let input = &mut input;
        if u32::decode(input)? != BOOT_MAGIC {
            return Err(malformed("not a boot record"));
        }
        if u64::decode(input)? != check_offset() {
            return Err(Error::invalid_argument(
                "the spawned child is another build than its parent (function offsets differ)",
            ));
        }
        Ok(Boot {
            parent: u32::decode(input)?,
            daemon: bool::decode(input)?,
            name: String::decode(input)?,
            entry: Entry::decode(input)?,
            arg: input.to_vec(),
        })
    }
}

/// Replaces the contents of the result memfd with a result record: its
/// magic, then the function's outcome (`process::outcome`).
pub(crate) fn write_result(fd: BorrowedFd<'_>, outcome: &[u8]) -> std::io::Result<()> {
    let mut record = Vec::with_capacity(4 + outcome.len());
    RESULT_MAGIC.encode(&mut record);
    record.extend_from_slice(outcome);
    sys::set_len(fd, 0)?;
    sys::write_all_at(fd, &record, 0)
}

/// Reads the result memfd: the outcome, `None` when it holds no result
/// record (the child died before writing one).
pub(crate) fn read_result(fd: impl AsFd) -> Option<Vec<u8>> {
    let bytes = sys::read_whole(fd.as_fd()).ok()?;
    let mut input = &bytes[..];
    (u32::decode(&mut input).ok()? == RESULT_MAGIC).then(|| input.to_vec())
}
