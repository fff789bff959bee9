//! Participant slots: one per process and segment, however many handles the
//! process holds, and one of its own in a process forked after the handles
//! were opened.
//!
//! A slot is held through a byte lock (`F_OFD_SETLK`) on the segment's file,
//! which the kernel drops when the process dies. The lock belongs to an open
//! file description, so the slot's holder is the description: a process
//! keeps one, in its [`Tenure`], shared by its handles through a registry
//! keyed by the file and the fork generation; the slot is given back when
//! the last of them is dropped. A forked child inherits its parent's
//! descriptions, and with them the parent's locks: were it to use them, the
//! death of either would go unseen while the other lives. So the child's
//! first use of a handle that needs a slot opens a new description of the
//! file (through `/proc/self/fd`) and takes a slot of its own.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, UNIX_EPOCH};

use super::{
    Header, MAX_PARTICIPANTS, Participant, ParticipantId, SLOT_ACTIVE, SLOT_LEFT, SLOT_UNUSED,
    Segment, slot_lock_byte,
};
use crate::error::{Error, Result};
use crate::sync::atomic::Ordering;
use crate::sys;

/// One process's slot in one segment.
#[derive(Debug)]
pub(super) struct Tenure {
    /// The file (device and inode) and the fork generation it was taken in.
    key: (u64, u64, u32),
    /// The slot.
    pub(super) slot: u32,
    /// The description the slot's lock is held through.
    fd: OwnedFd,
    /// Handles of this process registered as senders (see `set_sending`),
    /// under a lock so that the count and the shared registration change
    /// together.
    pub(super) senders: Mutex<u32>,
}

impl Tenure {
    /// The fork generation this tenure belongs to.
    pub(super) fn fork_gen(&self) -> u32 {
        self.key.2
    }
}

/// Every tenure of this process that some handle holds. Weak, so that the
/// last handle's drop ends a tenure; entries are removed when it does.
///
/// Held across `fork` (see `hold_across_fork`): a child forked while another
/// thread held it would otherwise find it locked for ever, or the list half
/// changed, at its first open.
static REGISTRY: Mutex<Vec<Weak<Tenure>>> = Mutex::new(Vec::new());

/// The registry's guard taken by the fork handlers: set by `prepare`, taken
/// back by `parent` and `child`. Only the forking thread touches it between
/// the two.
struct HeldAcrossFork(
    std::cell::UnsafeCell<Option<std::sync::MutexGuard<'static, Vec<Weak<Tenure>>>>>,
);

// SAFETY: only the fork handlers use the cell, all on the forking thread: the
// prepare handler stores the guard, the parent or child handler (the same
// thread, after `fork` returned) drops it.
unsafe impl Sync for HeldAcrossFork {}

static HELD: HeldAcrossFork = HeldAcrossFork(std::cell::UnsafeCell::new(None));

extern "C" fn prepare() {
    let guard = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: see `HeldAcrossFork`.
    unsafe { *HELD.0.get() = Some(guard) };
}

extern "C" fn release() {
    // SAFETY: see `HeldAcrossFork`. In the child, the guard is dropped on
    // the thread that locked the mutex (the forking thread, its only one).
    drop(unsafe { (*HELD.0.get()).take() });
}

/// Registers the fork handlers that hold the registry across `fork`, once.
fn hold_across_fork() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers plain `extern "C"` functions that live for the
        // program; they only lock and unlock the registry.
        unsafe { libc::pthread_atfork(Some(prepare), Some(release), Some(release)) };
    });
}

/// Holds the registry for `d` (for tests of fork while another thread
/// holds it: `fork` must wait, and the child must find it free).
#[doc(hidden)]
pub fn hold_registry_for(d: Duration) {
    let _held = registry();
    std::thread::sleep(d);
}

fn registry() -> std::sync::MutexGuard<'static, Vec<Weak<Tenure>>> {
    hold_across_fork();
    // A panic while holding it leaves the list itself intact.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The file behind `fd`: its device and inode.
fn file_key(fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is open for the borrow; `st` is writable storage for a stat.
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: fstat succeeded and filled it.
    let st = unsafe { st.assume_init() };
    Some((st.st_dev, st.st_ino))
}

impl Segment {
    /// Joins this process's tenure of the segment, taking a slot if no handle
    /// of this process (in this fork generation) holds one yet.
    pub(super) fn join_tenure(&self) -> Result<Arc<Tenure>> {
        let name = self.display_name();
        let (dev, ino) = file_key(self.fd.as_fd())
            .ok_or_else(|| Error::from_io(name, "fstat", std::io::Error::last_os_error()))?;
        let key = (dev, ino, crate::sys::fork::fork_generation());
        let mut reg = registry();
        reg.retain(|w| w.strong_count() > 0);
        if let Some(t) = reg.iter().filter_map(Weak::upgrade).find(|t| t.key == key) {
            return Ok(t);
        }
        let fd = self.new_description()?;
        let slot = self.claim_slot_through(fd.as_fd())?;
        let t = Arc::new(Tenure {
            key,
            slot,
            fd,
            senders: Mutex::new(0),
        });
        reg.push(Arc::downgrade(&t));
        Ok(t)
    }

    /// A descriptor of the segment's file whose description no other process
    /// shares: a duplicate of the handle's own in the process that opened it,
    /// a new description (opened through `/proc/self/fd`) in a forked child.
    fn new_description(&self) -> Result<OwnedFd> {
        let name = self.display_name();
        let io = |op| move |e| Error::from_io(name, op, e);
        if crate::sys::fork::fork_generation() == self.fork_gen {
            return self.fd.try_clone().map_err(io("dup"));
        }
        // SAFETY: F_GETFL on a descriptor this handle owns.
        let flags = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_GETFL) };
        if flags == -1 {
            return Err(io("fcntl")(std::io::Error::last_os_error()));
        }
        let path = std::ffi::CString::new(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
            .expect("no NUL in a formatted number");
        // SAFETY: `path` is a NUL-terminated string alive across the call.
        let raw = unsafe { libc::open(path.as_ptr(), (flags & libc::O_ACCMODE) | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(io("open(/proc/self/fd)")(std::io::Error::last_os_error()));
        }
        // SAFETY: `open` just returned this descriptor, owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    }

    /// Gives the slot back if `t` is this process's tenure and this is its
    /// last handle: marks it left and drops its lock, so that it reads as
    /// free at once (the lock would go with the description anyway).
    pub(super) fn leave_tenure(&self, t: &Arc<Tenure>) {
        if t.fork_gen() != crate::sys::fork::fork_generation() {
            return;
        }
        let mut reg = registry();
        // The registry's entries are weak and every clone is made under its
        // lock, so a count of 1 is this handle alone, and stays so.
        if Arc::strong_count(t) != 1 {
            return;
        }
        reg.retain(|w| !std::ptr::eq(w.as_ptr(), Arc::as_ptr(t)) && w.strong_count() > 0);
        // Release: pairs with the Acquire load in `participants_of`.
        self.slot(t.slot).status.store(SLOT_LEFT, Ordering::Release);
        let _ = sys::lock::unlock_byte(t.fd.as_fd(), slot_lock_byte(t.slot));
    }

    /// This process's tenure (joined first, in a process forked since the
    /// handle was opened); `None` if the child could not take a slot, in
    /// which case the opener's is used (see [`tenure`](Self::tenure)).
    pub(super) fn tenure_arc(&self, join: bool) -> Option<Arc<Tenure>> {
        let own = self.tenure.as_ref()?;
        let generation = crate::sys::fork::fork_generation();
        if own.fork_gen() == generation {
            return Some(own.clone());
        }
        let mut forked = self.forked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = forked.iter().find(|t| t.fork_gen() == generation) {
            return Some(t.clone());
        }
        if !join {
            return None;
        }
        let t = self.join_tenure().ok()?;
        forked.push(t.clone());
        Some(t)
    }

    /// The slot of this process's tenure, and the descriptor its lock is held
    /// through (see the module docs). In a forked child that cannot take a
    /// slot (none free, no `/proc`), the opener's, shared with it as before.
    pub(super) fn tenure(&self) -> Option<(u32, BorrowedFd<'_>)> {
        let own = self.tenure.as_ref()?;
        if own.fork_gen() == crate::sys::fork::fork_generation() {
            return Some((own.slot, own.fd.as_fd()));
        }
        let Some(t) = self.tenure_arc(true) else {
            return Some((own.slot, own.fd.as_fd()));
        };
        let raw = t.fd.as_raw_fd();
        // SAFETY: `t` stays in `self.forked` until `self` is dropped (entries
        // are never removed before), so its descriptor stays open as long as
        // `self` is borrowed.
        Some((t.slot, unsafe { BorrowedFd::borrow_raw(raw) }))
    }

    /// The slot of this process's tenure if it has one already (no claim).
    pub(super) fn claimed_tenure(&self) -> Option<u32> {
        self.tenure_arc(false).map(|t| t.slot)
    }

    /// Takes the first slot whose byte no live process has locked, locking
    /// it through `fd`.
    fn claim_slot_through(&self, fd: BorrowedFd<'_>) -> Result<u32> {
        let name = self.display_name();
        for i in 0..self.info.slot_count {
            let taken = sys::lock::try_lock_byte(fd, slot_lock_byte(i))
                .map_err(|e| Error::from_io(name, "fcntl", e))?;
            if taken {
                let slot = self.slot(i);
                slot.generation.fetch_add(1, Ordering::Relaxed);
                self.header().clear_stale_sender(i);
                slot.since_ns
                    .store(sys::time::realtime_ns(), Ordering::Relaxed);
                slot.pid.store(sys::getpid(), Ordering::Relaxed);
                // Release: pairs with the Acquire load in `participants`, so a
                // reader that sees ACTIVE sees this tenure's pid and time.
                slot.status.store(SLOT_ACTIVE, Ordering::Release);
                return Ok(i);
            }
        }
        Err(Error::TooManyParticipants {
            name: name.to_owned(),
            slots: self.info.slot_count,
        })
    }

    /// This handle's participant id: its process's slot (in a process forked
    /// since the handle was opened, the slot that process took; see
    /// `tenure`). Every handle of one process has the same.
    pub fn participant_id(&self) -> ParticipantId {
        let (slot, _) = self.tenure().expect("every handle holds a slot");
        ParticipantId {
            slot,
            generation: self.slot(slot).generation.load(Ordering::Relaxed),
        }
    }

    /// Whether the participant `id` still has the segment open. Never reports a
    /// live participant dead; may report a dead one alive for the instant in which
    /// a newcomer is re-taking its slot.
    pub fn is_alive(&self, id: ParticipantId) -> bool {
        if id.slot >= self.info.slot_count {
            return false;
        }
        let Some((own, fd)) = self.tenure() else {
            return false;
        };
        let slot = self.slot(id.slot);
        if slot.generation.load(Ordering::Relaxed) != id.generation {
            return false;
        }
        own == id.slot
            || sys::lock::is_byte_locked_by_other(fd, slot_lock_byte(id.slot)).unwrap_or(true)
    }

    /// The participant table: every slot that was ever taken, with whether its
    /// holder is alive. Makes one `fcntl` per used slot.
    pub fn participants(&self) -> Result<Vec<Participant>> {
        let (own, fd) = self.tenure().unzip();
        participants_of(
            self.display_name(),
            self.header(),
            fd.unwrap_or(self.fd.as_fd()),
            self.info.slot_count,
            own,
        )
    }
}

pub(crate) fn participants_of(
    name: &str,
    header: &Header,
    fd: BorrowedFd<'_>,
    slot_count: u32,
    own: Option<u32>,
) -> Result<Vec<Participant>> {
    let mut out = Vec::new();
    for i in 0..slot_count.min(MAX_PARTICIPANTS as u32) {
        let slot = &header.slots[i as usize];
        // Acquire: pairs with the Release store of ACTIVE in `claim_slot_through`.
        let status = slot.status.load(Ordering::Acquire);
        if status == SLOT_UNUSED {
            continue;
        }
        let is_self = own == Some(i);
        let alive = is_self
            || sys::lock::is_byte_locked_by_other(fd, slot_lock_byte(i))
                .map_err(|e| Error::from_io(name, "fcntl", e))?;
        let since_ns = slot.since_ns.load(Ordering::Relaxed);
        out.push(Participant {
            id: ParticipantId {
                slot: i,
                generation: slot.generation.load(Ordering::Relaxed),
            },
            pid: slot.pid.load(Ordering::Relaxed),
            alive,
            left: status == SLOT_LEFT && !alive,
            is_self,
            since: UNIX_EPOCH + Duration::from_nanos(since_ns),
        });
    }
    Ok(out)
}
