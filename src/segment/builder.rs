//! Creating and opening segments: the [`SegmentBuilder`] and the protocol that
//! makes exactly one process the creator under any race, validates the header,
//! and waits (bounded) for a creator still initialising.

use super::*;

/// How long an empty file with its creator lock free must stay so before an
/// opener concludes its creator died (between `O_EXCL` and the lock a
/// creator runs a few instructions).
const EMPTY_FILE_GRACE: Duration = Duration::from_millis(200);

impl SegmentBuilder {
    /// A builder for a segment of `kind` with no data, no parameters, no payload
    /// type, mode `0600`, kept on drop, and a 5 s ready timeout.
    pub fn new(kind: Kind) -> SegmentBuilder {
        SegmentBuilder {
            kind,
            data_size: 0,
            params: [0; PARAM_COUNT],
            payload: TypeDesc::NONE,
            check_payload: true,
            mode: DEFAULT_MODE,
            unlink_on_drop: false,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            flags: 0,
        }
    }

    /// Creation flags written into the header ([`HeaderInfo::flags`]), such as
    /// [`FLAG_JOINABLE`].
    pub fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }

    /// Size of the primitive's data area (at creation).
    pub fn data_size(mut self, bytes: u64) -> Self {
        self.data_size = bytes;
        self
    }

    /// Creation parameter `i` (at creation; `i < 8`).
    pub fn param(mut self, i: usize, value: u64) -> Self {
        self.params[i] = value;
        self
    }

    /// The payload type written at creation and required on open.
    pub fn payload(mut self, desc: TypeDesc) -> Self {
        self.payload = desc;
        self
    }

    /// Applies handle [`Options`] (mode, unlink on drop, ready timeout).
    pub fn options(mut self, opts: &Options) -> Self {
        self.mode = opts.mode;
        self.unlink_on_drop = opts.unlink_on_drop;
        self.ready_timeout = opts.ready_timeout;
        self
    }

    /// Open without checking the payload type (for tools and raw access).
    pub fn any_payload(mut self) -> Self {
        self.check_payload = false;
        self
    }

    /// Permission bits of a new segment (default `0o600`), applied exactly (the
    /// umask is not applied).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Unlink the name when this handle is dropped (default: no).
    pub fn unlink_on_drop(mut self, yes: bool) -> Self {
        self.unlink_on_drop = yes;
        self
    }

    /// How long `open` waits for a segment still being initialised (default 5 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Creates the named segment with zeroed data; `AlreadyExists` if the name is
    /// taken.
    pub fn create(&self, name: &str) -> Result<Segment> {
        self.create_with(name, |_, _| Ok(()))
    }

    /// Creates the named segment and runs `init` on its (zeroed) data area before
    /// publishing it as ready. If `init` fails, the name is unlinked again.
    pub fn create_with(
        &self,
        name: &str,
        init: impl FnOnce(NonNull<u8>, usize) -> Result<()>,
    ) -> Result<Segment> {
        validate_name(name)?;
        let fd = sys::shm::shm_open(name, OpenMode::CreateExclusive, self.mode)
            .map_err(|e| Error::from_io(name, "shm_open", e))?;
        let seg = self.initialise(Some(name), fd, init);
        if let Err(e) = &seg {
            // `AlreadyExists` here: an `open_or_create` took the file over
            // between our O_EXCL and our creator lock; the file is its now.
            if !matches!(e, Error::AlreadyExists { .. }) {
                let _ = sys::shm::shm_unlink(name);
            }
        }
        seg
    }

    /// Opens the named segment and validates its header against this builder's
    /// kind and payload type.
    pub fn open(&self, name: &str) -> Result<Segment> {
        validate_name(name)?;
        let fd = sys::shm::shm_open(name, OpenMode::ReadWrite, 0)
            .map_err(|e| Error::from_io(name, "shm_open", e))?;
        self.attach(name, fd)
    }

    /// Opens the segment if it exists, else creates it (running `init`). Under any
    /// race exactly one caller creates; the others wait for it to be ready.
    pub fn open_or_create_with(
        &self,
        name: &str,
        init: impl FnOnce(NonNull<u8>, usize) -> Result<()>,
    ) -> Result<(Segment, Disposition)> {
        validate_name(name)?;
        let mut init = Some(init);
        // Each round either creates, opens, or sees the name vanish between the
        // two (someone unlinked it), which is rare; bound the retries anyway.
        for _ in 0..64 {
            match sys::shm::shm_open(name, OpenMode::CreateExclusive, self.mode) {
                Ok(fd) => {
                    let Some(init) = init.take() else {
                        // Our `init` went to a takeover that another process
                        // won, and the name has since been removed: give up
                        // rather than create without it.
                        let _ = sys::shm::shm_unlink(name);
                        return Err(Error::CreatorDied {
                            name: name.to_owned(),
                        });
                    };
                    match self.initialise(Some(name), fd, init) {
                        Ok(seg) => return Ok((seg, Disposition::Created)),
                        // Taken over by another `open_or_create` before we
                        // locked it (see `take_over`): open it like any other.
                        Err(Error::AlreadyExists { .. }) => {}
                        Err(e) => {
                            let _ = sys::shm::shm_unlink(name);
                            return Err(e);
                        }
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(Error::from_io(name, "shm_open", e)),
            }
            let fd = match sys::shm::shm_open(name, OpenMode::ReadWrite, 0) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(Error::from_io(name, "shm_open", e)),
            };
            let spare = fd.try_clone().map_err(|e| Error::from_io(name, "dup", e))?;
            match self.attach(name, fd) {
                Ok(seg) => return Ok((seg, Disposition::Opened)),
                Err(Error::CreatorDied { .. }) if init.is_some() => {
                    let init = init.take().expect("checked just above");
                    if let Some(seg) = self.take_over(name, spare, init)? {
                        return Ok((seg, Disposition::Created));
                    }
                    // Another process is taking it over: open it once ready.
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Io {
            name: name.to_owned(),
            op: "open_or_create",
            source: std::io::Error::other("the name kept appearing and vanishing"),
        })
    }

    /// [`open_or_create_with`](Self::open_or_create_with) with zeroed data.
    pub fn open_or_create(&self, name: &str) -> Result<(Segment, Disposition)> {
        self.open_or_create_with(name, |_, _| Ok(()))
    }

    /// Creates an anonymous segment (`memfd_create`): no name, shared with
    /// children forked after this call, freed when the last mapping goes. Its
    /// size is sealed: nobody can truncate it under the mappings.
    pub fn anonymous_with(
        &self,
        init: impl FnOnce(NonNull<u8>, usize) -> Result<()>,
    ) -> Result<Segment> {
        let fd = sys::shm::memfd_create("shmprim")
            .map_err(|e| Error::from_io(ANON, "memfd_create", e))?;
        self.initialise(None, fd, init)
    }

    /// Opens an anonymous segment whose descriptor a spawning parent handed
    /// down under the number `fd`, as a new open file description: this
    /// process gets a participant slot of its own, so its death is seen as
    /// its own and not as its parent's.
    #[cfg_attr(shmprim_loom, allow(dead_code))]
    pub(crate) fn open_inherited(&self, fd: std::os::fd::RawFd) -> Result<Segment> {
        let fd = sys::process::reopen_inherited(fd)
            .map_err(|e| Error::from_io(ANON, "open inherited", e))?;
        self.attach(ANON, fd)
    }

    /// [`anonymous_with`](Self::anonymous_with) with zeroed data.
    pub fn anonymous(&self) -> Result<Segment> {
        self.anonymous_with(|_, _| Ok(()))
    }

    /// `open_or_create` over a segment whose creator died while initialising
    /// it: this process initialises it instead, under the same rule that
    /// makes exactly one process the creator, the creator byte lock. `None`
    /// if another process holds that lock (it is taking over; open the
    /// segment once it is ready).
    ///
    /// The file is reused, never shrunk, since openers waiting for it may
    /// have it mapped: an empty file gets its size, a file of this
    /// builder's size is zeroed, and a file of any other size is left as it
    /// is (`CreatorDied`).
    fn take_over(
        &self,
        name: &str,
        fd: OwnedFd,
        init: impl FnOnce(NonNull<u8>, usize) -> Result<()>,
    ) -> Result<Option<Segment>> {
        let io = |op| move |e| Error::from_io(name, op, e);
        if !sys::lock::try_lock_byte(fd.as_fd(), CREATOR_LOCK_BYTE).map_err(io("fcntl"))? {
            return Ok(None);
        }
        let size = sys::shm::fstat(&fd).map_err(io("fstat"))?.size;
        let total = self.total_size()?;
        let died = || Error::CreatorDied {
            name: name.to_owned(),
        };
        if size != 0 && size != total {
            sys::lock::unlock_byte(fd.as_fd(), CREATOR_LOCK_BYTE).map_err(io("fcntl"))?;
            return Err(died());
        }
        if size == total {
            let map = Mapping::map(&fd, size, true).map_err(io("mmap"))?;
            let (state, _) = header_snapshot(&map);
            if state != STATE_INITIALISING {
                // Finished after all (or not ours to reuse): open it instead.
                sys::lock::unlock_byte(fd.as_fd(), CREATOR_LOCK_BYTE).map_err(io("fcntl"))?;
                return Ok(None);
            }
            // SAFETY: the mapping is `size` bytes and writable; nobody reads
            // anything but `state` (still INITIALISING) before READY, and we
            // hold the creator lock, so nobody else writes.
            unsafe { std::ptr::write_bytes(map.as_ptr(), 0, size as usize) };
        }
        self.initialise_locked(Some(name), fd, init).map(Some)
    }

    pub(super) fn total_size(&self) -> Result<u64> {
        let page = page_size();
        self.data_size
            .checked_add(page - 1)
            .map(|n| n / page * page)
            .and_then(|n| n.checked_add(HEADER_SIZE as u64))
            .filter(|&n| n <= isize::MAX as u64)
            .ok_or_else(|| {
                Error::invalid_argument(format!("data size {} is too large", self.data_size))
            })
    }

    /// The creator's side of the protocol, on a freshly created, empty file.
    pub(super) fn initialise(
        &self,
        name: Option<&str>,
        fd: OwnedFd,
        init: impl FnOnce(NonNull<u8>, usize) -> Result<()>,
    ) -> Result<Segment> {
        let label = name.unwrap_or(ANON);
        let io = |op| move |e| Error::from_io(label, op, e);
        // Lock the creator byte *before* the file gets a size: an opener that sees a
        // sized, unready file with this byte unlocked knows the creator died.
        if !sys::lock::try_lock_byte(fd.as_fd(), CREATOR_LOCK_BYTE).map_err(io("fcntl"))? {
            // Only a takeover locks a file it did not create: one happened
            // between our O_EXCL and this lock.
            return Err(Error::AlreadyExists {
                name: label.to_owned(),
            });
        }
        self.initialise_locked(name, fd, init)
    }

    /// The creator's side of the protocol once it holds the creator lock on
    /// an empty or zeroed file: size, header, `init`, then READY.
    fn initialise_locked(
        &self,
        name: Option<&str>,
        fd: OwnedFd,
        init: impl FnOnce(NonNull<u8>, usize) -> Result<()>,
    ) -> Result<Segment> {
        let label = name.unwrap_or(ANON);
        let io = |op| move |e| Error::from_io(label, op, e);
        let total = self.total_size()?;
        sys::shm::ftruncate(&fd, total).map_err(io("ftruncate"))?;
        if name.is_none() {
            // An anonymous segment's size can be sealed (a named one's cannot:
            // shm_open files refuse seals), so that no holder of its
            // descriptor can truncate it under the other processes' mappings.
            sys::shm::seal_size(&fd).map_err(io("fcntl(F_ADD_SEALS)"))?;
        }
        let map = Mapping::map(&fd, total, true).map_err(io("mmap"))?;
        let info = HeaderInfo {
            magic: MAGIC,
            version: LAYOUT_VERSION,
            kind: self.kind as u32,
            header_size: HEADER_SIZE as u32,
            slot_count: MAX_PARTICIPANTS as u32,
            total_size: total,
            data_offset: HEADER_SIZE as u64,
            data_size: self.data_size,
            params: self.params,
            payload: self.payload,
            creator_pid: sys::getpid(),
            flags: self.flags,
            created_at_ns: sys::time::realtime_ns(),
        };
        let header = map.as_ptr().cast::<Header>();
        // SAFETY: the mapping is `total >= HEADER_SIZE` bytes, page aligned, and no
        // opener reads `info` before `state` is READY (published below).
        unsafe { std::ptr::addr_of_mut!((*header).info).write(info) };
        let data =
            NonNull::new(map.as_ptr().wrapping_add(HEADER_SIZE)).expect("mapping is not null");
        init(data, self.data_size as usize)?;
        let mut seg = Segment {
            anonymous: name.is_none(),
            name: crate::ObjectName::new(name.unwrap_or(super::ANON)),
            fd,
            map,
            info,
            tenure: None,
            forked: Default::default(),
            sending: Default::default(),
            owner_pid: sys::getpid(),
            fork_gen: crate::sys::fork::fork_generation(),
            unlink_on_drop: self.unlink_on_drop,
        };
        // Release: pairs with the Acquire load of `state` in `attach`, publishing
        // `info` and everything `init` wrote.
        seg.header().state.store(STATE_READY, Ordering::Release);
        seg.tenure = Some(seg.join_tenure()?);
        sys::lock::unlock_byte(seg.fd.as_fd(), CREATOR_LOCK_BYTE).map_err(io("fcntl"))?;
        Ok(seg)
    }

    /// The opener's side of the protocol.
    pub(super) fn attach(&self, name: &str, fd: OwnedFd) -> Result<Segment> {
        let io = |op| move |e| Error::from_io(name, op, e);
        let deadline = crate::Deadline::after(self.ready_timeout);
        let creator_alive = |fd: &OwnedFd| -> Result<bool> {
            sys::lock::is_byte_locked_by_other(fd.as_fd(), CREATOR_LOCK_BYTE).map_err(io("fcntl"))
        };
        let mut grace_ends: Option<crate::Deadline> = None;
        let size = loop {
            let size = sys::shm::fstat(&fd).map_err(io("fstat"))?.size;
            if size >= HEADER_SIZE as u64 {
                break size;
            }
            if size != 0 {
                return Err(Error::TooSmall {
                    name: name.to_owned(),
                    size,
                    min: HEADER_SIZE as u64,
                });
            }
            // Size 0: the creator is between O_EXCL and ftruncate, holding
            // the creator lock, or between O_EXCL and the lock, a few
            // instructions, or dead. A lock seen free for a grace period
            // means dead; a held one is waited for until the deadline.
            if creator_alive(&fd)? {
                grace_ends = None;
                if deadline.has_passed() {
                    return Err(Error::NotReady {
                        name: name.to_owned(),
                    });
                }
            } else {
                let ends =
                    *grace_ends.get_or_insert_with(|| crate::Deadline::after(EMPTY_FILE_GRACE));
                if ends.has_passed() || deadline.has_passed() {
                    return Err(Error::CreatorDied {
                        name: name.to_owned(),
                    });
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let map = Mapping::map(&fd, size, true).map_err(io("mmap"))?;
        let info = wait_ready(name, &map, deadline, || creator_alive(&fd))?;
        validate_info(name, &info, size)?;
        if info.kind != self.kind as u32 {
            return Err(Error::Incompatible {
                name: name.to_owned(),
                what: Mismatch::Kind,
                expected: self.kind.name().into(),
                found: kind_name(info.kind),
            });
        }
        if self.check_payload && !info.payload.is_compatible_with(&self.payload) {
            return Err(Error::Incompatible {
                name: name.to_owned(),
                what: Mismatch::Payload,
                expected: self.payload.to_string(),
                found: info.payload.to_string(),
            });
        }
        let mut seg = Segment {
            anonymous: false,
            name: crate::ObjectName::new(name),
            fd,
            map,
            info,
            tenure: None,
            forked: Default::default(),
            sending: Default::default(),
            owner_pid: sys::getpid(),
            fork_gen: crate::sys::fork::fork_generation(),
            unlink_on_drop: self.unlink_on_drop,
        };
        seg.tenure = Some(seg.join_tenure()?);
        Ok(seg)
    }
}
