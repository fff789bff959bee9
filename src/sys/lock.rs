//! Open-file-description locks (`F_OFD_SETLK` / `F_OFD_GETLK`) on single bytes of
//! a segment's file.
//!
//! An OFD lock belongs to the open file description, not to a pid: the kernel drops
//! it when the last descriptor referring to that description is closed, which
//! happens when the process dies however it dies. That makes a held lock a proof of
//! life immune to pid reuse and pid namespaces. `F_OFD_GETLK` reports only locks of
//! *other* open file descriptions, so a handle never sees its own lock.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

fn flock(kind: libc::c_short, byte: u64) -> libc::flock {
    // SAFETY: flock is a plain C struct for which all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl.l_pid = 0; // required to be 0 for OFD locks
    fl
}

/// Tries to take an exclusive lock on one byte without blocking. `Ok(false)` when
/// another open file description holds it.
pub(crate) fn try_lock_byte(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK as libc::c_short, byte);
    // SAFETY: `fd` is a valid descriptor for the borrow; `fl` is a valid flock.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    if rc == -1 {
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
            _ => Err(err),
        }
    } else {
        Ok(true)
    }
}

/// Releases a lock this open file description holds on one byte.
pub(crate) fn unlock_byte(fd: BorrowedFd<'_>, byte: u64) -> io::Result<()> {
    let mut fl = flock(libc::F_UNLCK as libc::c_short, byte);
    // SAFETY: `fd` is a valid descriptor for the borrow; `fl` is a valid flock.
    super::cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) })?;
    Ok(())
}

/// Whether another open file description holds a lock on this byte. Works on a
/// read-only descriptor and takes no lock itself.
pub(crate) fn is_byte_locked_by_other(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK as libc::c_short, byte);
    // SAFETY: `fd` is a valid descriptor for the borrow; `fl` is a valid flock the
    // kernel overwrites with the conflicting lock, if any.
    super::cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) })?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}
