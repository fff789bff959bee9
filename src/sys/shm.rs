//! POSIX shared memory objects (`shm_open`), `memfd_create`, sizing and mapping.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use super::cvt;

/// How to open a named shared memory object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// `O_CREAT | O_EXCL | O_RDWR`: fails with `EEXIST` if the name exists.
    CreateExclusive,
    /// `O_RDWR`.
    ReadWrite,
    /// `O_RDONLY`, for inspection.
    ReadOnly,
}

fn object_path(name: &str) -> io::Result<CString> {
    CString::new(format!("/{name}")).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `shm_open("/" + name, ...)`, always with `O_CLOEXEC`. The name must already
/// have passed the crate's naming rule.
pub(crate) fn shm_open(name: &str, how: OpenMode, mode: u32) -> io::Result<OwnedFd> {
    let path = object_path(name)?;
    let flags = libc::O_CLOEXEC
        | match how {
            OpenMode::CreateExclusive => libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
            OpenMode::ReadWrite => libc::O_RDWR,
            OpenMode::ReadOnly => libc::O_RDONLY,
        };
    // SAFETY: `path` is a valid NUL-terminated string alive for the call.
    let fd = cvt(unsafe { libc::shm_open(path.as_ptr(), flags, mode as libc::mode_t) })?;
    if how == OpenMode::CreateExclusive {
        // shm_open applies the umask; the caller asked for exactly `mode`.
        // SAFETY: `fd` was just returned by shm_open and is open.
        let rc = unsafe { libc::fchmod(fd, mode as libc::mode_t) };
        if rc == -1 {
            let err = io::Error::last_os_error();
            // SAFETY: we own `fd` and close it once on this error path.
            unsafe { libc::close(fd) };
            return Err(err);
        }
    }
    // SAFETY: `fd` is a freshly opened descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `shm_unlink("/" + name)`.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    let path = object_path(name)?;
    // SAFETY: `path` is a valid NUL-terminated string alive for the call.
    cvt(unsafe { libc::shm_unlink(path.as_ptr()) })?;
    Ok(())
}

/// `memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING)`: an anonymous file
/// that lives while some descriptor or mapping refers to it. A forked child
/// inherits the mapping. Sealing is allowed so that [`seal_size`] can fix its
/// size once set.
pub(crate) fn memfd_create(label: &str) -> io::Result<OwnedFd> {
    let label = CString::new(label).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `label` is a valid NUL-terminated string alive for the call.
    let fd = cvt(unsafe {
        libc::memfd_create(label.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Seals a memfd's size (`F_SEAL_SHRINK | F_SEAL_GROW`, then `F_SEAL_SEAL`):
/// nobody holding a descriptor of it (a forked child, a process it was
/// passed to) can then truncate it under the mappings, which would make every
/// access past the new end fault with `SIGBUS`.
pub(crate) fn seal_size(fd: impl AsFd) -> io::Result<()> {
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: the descriptor is valid for the borrow; F_ADD_SEALS takes an int.
    cvt(unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(())
}

/// Sets the file's size.
pub(crate) fn ftruncate(fd: impl AsFd, size: u64) -> io::Result<()> {
    let size =
        libc::off_t::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: the descriptor is valid for the borrow.
    cvt(unsafe { libc::ftruncate(fd.as_fd().as_raw_fd(), size) })?;
    Ok(())
}

/// What `fstat` says about a segment's file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
}

/// `fstat` on a descriptor.
pub(crate) fn fstat(fd: impl AsFd) -> io::Result<FileStat> {
    // SAFETY: `stat` is a plain C struct for which all-zero is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is valid for the borrow and `st` is writable.
    cvt(unsafe { libc::fstat(fd.as_fd().as_raw_fd(), &mut st) })?;
    Ok(FileStat {
        size: st.st_size.max(0) as u64,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
    })
}

/// Names of the regular files in `/dev/shm`, where Linux keeps POSIX shared
/// memory objects.
pub(crate) fn list_shm_names() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/dev/shm")? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
    }
    names.sort();
    Ok(names)
}

/// A shared mapping of a whole file.
#[derive(Debug)]
pub(crate) struct Mapping {
    raw: memmap2::MmapRaw,
}

impl Mapping {
    /// Maps `len` bytes of the file `MAP_SHARED`, read-write or read-only.
    pub(crate) fn map(fd: &OwnedFd, len: u64, writable: bool) -> io::Result<Mapping> {
        let len = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        let mut opts = memmap2::MmapOptions::new();
        opts.len(len);
        let raw = if writable {
            opts.map_raw(fd)?
        } else {
            opts.map_raw_read_only(fd)?
        };
        Ok(Mapping { raw })
    }

    /// First byte of the mapping (page aligned).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.raw.as_mut_ptr()
    }
}
