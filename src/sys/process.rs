//! Processes: fork, wait, signals, the parent-death signal, thread counts and
//! descriptors handed to a re-executed child.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// What `waitpid` reported for a child that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It called `exit(code)` or returned from `main`.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
}

impl Ended {
    /// Python's `exitcode`: the exit status, or minus the signal number.
    pub(crate) fn exitcode(self) -> i32 {
        match self {
            Ended::Exited(code) => code,
            Ended::Signaled(sig) => -sig,
        }
    }
}

/// `fork()`: `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
///
/// # Safety
/// In the child only async-signal-safe work is allowed if the parent had more
/// than one thread; the caller checks that it had one.
pub(crate) unsafe fn fork() -> io::Result<Option<u32>> {
    // SAFETY: the caller upholds the contract above.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 { None } else { Some(pid as u32) })
}

/// `waitpid(pid)`, blocking or not; `Ok(None)` when `block` is false and the
/// child is still running. Retries on `EINTR`.
pub(crate) fn waitpid(pid: u32, block: bool) -> io::Result<Option<Ended>> {
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid out pointer for the call.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, flags) };
        if rc == -1 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        if rc == 0 {
            return Ok(None);
        }
        return Ok(Some(if libc::WIFSIGNALED(status) {
            Ended::Signaled(libc::WTERMSIG(status))
        } else {
            Ended::Exited(libc::WEXITSTATUS(status))
        }));
    }
}

/// Whether a child of this process is still running, without reaping it
/// (`waitid` with `WNOWAIT`): its `waitpid` still reports the end later.
pub(crate) fn is_running(pid: u32) -> bool {
    // SAFETY: `info` is a valid out pointer, zeroed beforehand; WNOWAIT leaves
    // the child waitable.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        rc == 0 && info.si_pid() == 0
    }
}

/// `kill(pid, sig)`. A pid of 0 or one beyond `pid_t` is refused (0 would
/// signal the whole process group).
pub(crate) fn kill(pid: u32, sig: i32) -> io::Result<()> {
    if pid == 0 || pid > i32::MAX as u32 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: kill takes plain integers.
    cvt(unsafe { libc::kill(pid as libc::pid_t, sig) })?;
    Ok(())
}

/// Asks the kernel to SIGKILL this process when the thread that started it
/// ends, then reports whether the parent `parent` is already gone (it died
/// before the request took effect).
pub(crate) fn die_with_parent(parent: u32) -> bool {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and no pointers;
    // getppid has no preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        libc::getppid() as u32 != parent
    }
}

/// How many threads this process has (the entries of `/proc/self/task`).
pub(crate) fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Opens the file behind an inherited descriptor again, as a new open file
/// description (`/proc/self/fd/N`): record locks taken through it are this
/// process's own, not shared with the parent that handed the descriptor down.
/// The inherited descriptor itself is closed.
pub(crate) fn reopen_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; a bad one fails.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: the descriptor is open (checked) and was handed to this process
    // to own: nothing else in it refers to it.
    let inherited = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", inherited.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `path` is a valid NUL-terminated string alive for the call.
    let new = cvt(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: `new` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Takes ownership of an inherited descriptor after checking that it is open.
pub(crate) fn adopt_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_SETFD on an integer descriptor; a bad one fails with EBADF.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    // SAFETY: open (checked just above) and handed to this process to own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `_exit(code)`: ends the process at once, without running destructors or
/// `atexit` handlers (a forked child must not flush its parent's buffers).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and ends the process.
    unsafe { libc::_exit(code) }
}

/// Whether the two addresses lie in the same loaded object (the executable or
/// one shared library), by `dladdr`; `None` when `dladdr` cannot tell.
pub(crate) fn same_object(a: usize, b: usize) -> Option<bool> {
    let base = |addr: usize| {
        // SAFETY: dladdr only reads the loader's tables; `info` is a valid
        // out pointer, zeroed beforehand.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            if libc::dladdr(addr as *const libc::c_void, &mut info) == 0 {
                None
            } else {
                Some(info.dli_fbase as usize)
            }
        }
    };
    Some(base(a)? == base(b)?)
}

/// Writes all of `data` at `offset` of a file (a memfd), retrying short writes.
pub(crate) fn write_all_at(fd: BorrowedFd<'_>, data: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::mem::ManuallyDrop::new(
        // SAFETY: the File is never dropped (ManuallyDrop), so it never closes
        // the borrowed descriptor.
        unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) },
    );
    file.write_all_at(data, offset)
}

/// Reads the whole of a file (a memfd) from offset 0.
pub(crate) fn read_whole(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::mem::ManuallyDrop::new(
        // SAFETY: as in `write_all_at`.
        unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) },
    );
    let len = file.metadata()?.len();
    let len = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// Sets a file's length (truncating a memfd before a new record goes in).
pub(crate) fn set_len(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let file = std::mem::ManuallyDrop::new(
        // SAFETY: as in `write_all_at`.
        unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) },
    );
    file.set_len(len)
}

/// What [`spawn`] starts.
pub(crate) struct SpawnSpec<'a> {
    /// The file to execute.
    pub(crate) path: &'a std::ffi::CStr,
    /// Its arguments, `argv[0]` first.
    pub(crate) argv: &'a [std::ffi::CString],
    /// Its environment, `NAME=value` each.
    pub(crate) env: &'a [std::ffi::CString],
    /// Descriptors it inherits under the same numbers (the parent's stay
    /// close-on-exec).
    pub(crate) keep: &'a [RawFd],
    /// Standard input from `/dev/null`.
    pub(crate) null_stdin: bool,
    /// Standard output to `/dev/null`.
    pub(crate) null_stdout: bool,
}

/// `posix_spawn`: starts a program without copying this process's page
/// tables (glibc clones with `CLONE_VM | CLONE_VFORK`), which a `fork` from
/// a process with much memory mapped would. Each kept descriptor is
/// `dup2`ed onto itself, which clears its close-on-exec flag in the child
/// only. The child starts with no signal blocked.
pub(crate) fn spawn(spec: &SpawnSpec<'_>) -> io::Result<u32> {
    let mut argv: Vec<*mut libc::c_char> =
        spec.argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> = spec.env.iter().map(|e| e.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());
    let dev_null = c"/dev/null";
    // SAFETY: every structure is initialised by its init function before use
    // and destroyed once; the strings and pointer arrays outlive the call;
    // posix_spawn reads them and writes only `pid`.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let rc = libc::posix_spawn_file_actions_init(&mut actions);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let rc = libc::posix_spawnattr_init(&mut attr);
        if rc != 0 {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(io::Error::from_raw_os_error(rc));
        }
        let mut rc = 0;
        for &fd in spec.keep {
            if rc == 0 {
                rc = libc::posix_spawn_file_actions_adddup2(&mut actions, fd, fd);
            }
        }
        if rc == 0 && spec.null_stdin {
            rc = libc::posix_spawn_file_actions_addopen(
                &mut actions,
                0,
                dev_null.as_ptr(),
                libc::O_RDONLY,
                0,
            );
        }
        if rc == 0 && spec.null_stdout {
            rc = libc::posix_spawn_file_actions_addopen(
                &mut actions,
                1,
                dev_null.as_ptr(),
                libc::O_WRONLY,
                0,
            );
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if rc == 0 {
            rc = libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        }
        if rc == 0 {
            rc = libc::posix_spawnattr_setflags(&mut attr, libc::POSIX_SPAWN_SETSIGMASK as _);
        }
        let mut pid: libc::pid_t = 0;
        if rc == 0 {
            rc = libc::posix_spawn(
                &mut pid,
                spec.path.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                envp.as_ptr(),
            );
        }
        libc::posix_spawnattr_destroy(&mut attr);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(pid as u32)
    }
}
