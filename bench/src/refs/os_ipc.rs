//! Kernel IPC round trips between two processes: a pair of Unix pipes, a Unix
//! stream socket pair, and a pair of POSIX message queues. Each round trip
//! sends an 8-byte message and waits for the 8-byte answer.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::super::Res;
use super::super::proc::{
    ChildCtx, CleanupKind, PEER_TIMEOUT, Session, Spawn, register_name, unique_name,
    unregister_name,
};
use super::{ns_per, os_err};
use crate::Ctx;
use crate::figures::QUEUE_ROUND_TRIPS;

fn write_all(fd: RawFd, v: u64) -> Res<()> {
    let b = v.to_ne_bytes();
    // SAFETY: `b` is 8 readable bytes; `fd` is an open descriptor.
    let n = unsafe { libc::write(fd, b.as_ptr().cast(), 8) };
    if n != 8 {
        return Err(os_err("write"));
    }
    Ok(())
}

fn read_exact(fd: RawFd) -> Res<u64> {
    let mut b = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        // SAFETY: the destination is within `b`; `fd` is an open descriptor.
        let n = unsafe { libc::read(fd, b[got..].as_mut_ptr().cast(), 8 - got) };
        if n <= 0 {
            return Err(if n == 0 {
                "peer closed".into()
            } else {
                os_err("read")
            });
        }
        got += n as usize;
    }
    Ok(u64::from_ne_bytes(b))
}

/// Descriptors inherited by the child: made without `CLOEXEC` on purpose, and
/// closed in the parent right after the child starts.
fn raw_pipe() -> Res<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(os_err("pipe"));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn raw_socketpair() -> Res<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) } != 0 {
        return Err(os_err("socketpair"));
    }
    // SAFETY: as in `raw_pipe`.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Ping-pong: the parent writes to `tx` and reads from `rx`; the child reads
/// from `child_rx` and writes to `child_tx`.
fn fd_pingpong(
    ctx: &Ctx,
    tx: OwnedFd,
    rx: OwnedFd,
    child_rx: OwnedFd,
    child_tx: OwnedFd,
) -> Res<f64> {
    use std::os::fd::AsRawFd;
    let n = ctx.n(QUEUE_ROUND_TRIPS);
    let s = Session::start(vec![Spawn::pinned(
        "pipe-pong",
        vec![
            child_rx.as_raw_fd().to_string(),
            child_tx.as_raw_fd().to_string(),
            n.to_string(),
        ],
    )])?;
    drop((child_rx, child_tx));
    let t0 = s.go();
    for i in 0..n {
        write_all(tx.as_raw_fd(), i)?;
        if read_exact(rx.as_raw_fd())? != i + 1 {
            return Err("wrong answer".into());
        }
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Two Unix pipes: ns per round trip.
pub(crate) fn pipe(ctx: &Ctx) -> Res<f64> {
    let (c_rx, p_tx) = raw_pipe()?;
    let (p_rx, c_tx) = raw_pipe()?;
    fd_pingpong(ctx, p_tx, p_rx, c_rx, c_tx)
}

/// A Unix stream socket pair: ns per round trip.
pub(crate) fn socket(ctx: &Ctx) -> Res<f64> {
    let (parent, child) = raw_socketpair()?;
    // SAFETY: dup of an open descriptor; the copy is owned by the OwnedFd.
    let parent2 = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&parent)) };
    // SAFETY: as above.
    let child2 = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&child)) };
    if parent2 < 0 || child2 < 0 {
        return Err(os_err("dup"));
    }
    // SAFETY: freshly duplicated descriptors, owned by nobody else.
    let (parent2, child2) =
        unsafe { (OwnedFd::from_raw_fd(parent2), OwnedFd::from_raw_fd(child2)) };
    fd_pingpong(ctx, parent, parent2, child, child2)
}

/// Child of [`pipe`] and [`socket`]: echoes `v + 1`.
pub(crate) fn pipe_pong_child(c: &ChildCtx) -> Res<()> {
    let rx: RawFd = c.arg(0)?;
    let tx: RawFd = c.arg(1)?;
    let n: u64 = c.arg(2)?;
    c.ready()?;
    for _ in 0..n {
        let v = read_exact(rx)?;
        write_all(tx, v + 1)?;
    }
    c.done();
    Ok(())
}

/// A POSIX message queue, unlinked on drop (and by the Ctrl-C handler).
struct Mq {
    fd: libc::mqd_t,
    name: CString,
    owner: bool,
    reg: Option<usize>,
}

impl Mq {
    fn create(tag: &str) -> Res<Mq> {
        let name = unique_name(tag);
        let reg = register_name(CleanupKind::Mq, &name);
        let cname = CString::new(format!("/{name}")).map_err(|e| e.to_string())?;
        // SAFETY: a zeroed mq_attr with maxmsg/msgsize set is a valid argument.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = 8;
        attr.mq_msgsize = 8;
        // SAFETY: valid name and attr pointers; mode passed as the variadic arg.
        let fd = unsafe {
            libc::mq_open(
                cname.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::mode_t,
                &attr as *const libc::mq_attr,
            )
        };
        if fd < 0 {
            unregister_name(reg);
            return Err(os_err("mq_open"));
        }
        Ok(Mq {
            fd,
            name: cname,
            owner: true,
            reg,
        })
    }

    fn open(name: &str) -> Res<Mq> {
        let cname = CString::new(format!("/{name}")).map_err(|e| e.to_string())?;
        // SAFETY: valid name.
        let fd = unsafe { libc::mq_open(cname.as_ptr(), libc::O_RDWR) };
        if fd < 0 {
            return Err(os_err("mq_open"));
        }
        Ok(Mq {
            fd,
            name: cname,
            owner: false,
            reg: None,
        })
    }

    fn send(&self, v: u64, deadline: &libc::timespec) -> Res<()> {
        let b = v.to_ne_bytes();
        // SAFETY: `b` is 8 bytes; `fd` is an open queue; `deadline` is valid.
        if unsafe { libc::mq_timedsend(self.fd, b.as_ptr().cast(), 8, 0, deadline) } != 0 {
            return Err(os_err("mq_timedsend"));
        }
        Ok(())
    }

    fn recv(&self, deadline: &libc::timespec) -> Res<u64> {
        let mut b = [0u8; 8];
        let mut prio = 0;
        // SAFETY: `b` holds the queue's message size (8 bytes).
        let n = unsafe {
            libc::mq_timedreceive(self.fd, b.as_mut_ptr().cast(), 8, &mut prio, deadline)
        };
        if n != 8 {
            return Err(os_err("mq_timedreceive"));
        }
        Ok(u64::from_ne_bytes(b))
    }
}

impl Drop for Mq {
    fn drop(&mut self) {
        // SAFETY: `fd` is open and closed once; the name is valid.
        unsafe {
            libc::mq_close(self.fd);
            if self.owner {
                libc::mq_unlink(self.name.as_ptr());
            }
        }
        unregister_name(self.reg);
    }
}

/// A `CLOCK_REALTIME` deadline one peer timeout from now (for `mq_timed*`).
fn mq_deadline() -> libc::timespec {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        + PEER_TIMEOUT;
    libc::timespec {
        tv_sec: now.as_secs() as libc::time_t,
        tv_nsec: now.subsec_nanos() as libc::c_long,
    }
}

/// Whether POSIX message queues work here (`mq_open` may be missing in a
/// sandbox); probed once.
pub(crate) fn mq_available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| Mq::create("mq-probe").is_ok())
}

/// Two POSIX message queues: ns per round trip.
pub(crate) fn mq(ctx: &Ctx) -> Res<f64> {
    let n = ctx.n(QUEUE_ROUND_TRIPS);
    let ping = Mq::create("mq-ping")?;
    let pong = Mq::create("mq-pong")?;
    let name = |m: &Mq| m.name.to_string_lossy().trim_start_matches('/').to_owned();
    let s = Session::start(vec![Spawn::pinned(
        "mq-pong",
        vec![name(&ping), name(&pong), n.to_string()],
    )])?;
    let deadline = mq_deadline();
    let t0 = s.go();
    for i in 0..n {
        ping.send(i, &deadline)?;
        if pong.recv(&deadline)? != i + 1 {
            return Err("wrong answer".into());
        }
    }
    let dt = t0.elapsed();
    s.finish()?;
    Ok(ns_per(dt, n))
}

/// Child of [`mq`]: echoes `v + 1`.
pub(crate) fn mq_pong_child(c: &ChildCtx) -> Res<()> {
    let ping = Mq::open(c.str_arg(0)?)?;
    let pong = Mq::open(c.str_arg(1)?)?;
    let n: u64 = c.arg(2)?;
    let deadline = mq_deadline();
    c.ready()?;
    for _ in 0..n {
        let v = ping.recv(&deadline)?;
        pong.send(v + 1, &deadline)?;
    }
    c.done();
    Ok(())
}
