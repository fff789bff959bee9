//! Seeing inside segments without touching them: what `shmprim ls`, `stat`, `rm`,
//! `gc` and `watch` show, available to programs that monitor themselves.
//!
//! Inspection maps a segment **read-only**, takes no participant slot and no
//! lock, and never writes: it only loads. A segment being initialised, truncated,
//! foreign or corrupted is reported as such ([`Health`]), never a crash.
//!
//! ```
//! use shmprim::{Segment, inspect};
//! # let name = format!("doc-inspect-{}", std::process::id());
//! let seg = Segment::create(&name, 64)?;
//! let report = inspect::inspect(&name)?;
//! assert_eq!(report.health, inspect::Health::Ready);
//! assert_eq!(report.live_participants(), 1); // `seg` itself
//! # drop(seg);
//! # Segment::unlink(&name)?;
//! # Ok::<(), shmprim::Error>(())
//! ```

use std::os::fd::AsFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::segment::{
    CREATOR_LOCK_BYTE, HEADER_SIZE, HeaderInfo, Kind, MAGIC, Participant, STATE_INITIALISING,
    STATE_READY, header_of, header_snapshot, participants_of, validate_info, validate_name,
};
use crate::sys;
use crate::sys::shm::{Mapping, OpenMode};

pub mod view;
pub use view::{Field, StateSummary, StateView, format_value};

/// What shape a segment is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Valid header, state ready.
    Ready,
    /// Being initialised by a live creator.
    Initialising,
    /// Not ready and its creator is gone.
    CreatorDied,
    /// The file is smaller than a header (or empty).
    TooSmall,
    /// The file is smaller than its header claims.
    Truncated,
    /// Written by another layout version.
    OtherVersion(u32),
    /// A valid magic, but fields that break the header's invariants.
    Corrupted(String),
}

impl Health {
    /// A short word for tables and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Ready => "ready",
            Health::Initialising => "initialising",
            Health::CreatorDied => "creator-died",
            Health::TooSmall => "too-small",
            Health::Truncated => "truncated",
            Health::OtherVersion(_) => "other-version",
            Health::Corrupted(_) => "corrupted",
        }
    }
}

/// Everything inspection found about one segment.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The segment's name.
    pub name: String,
    /// Size of the file in bytes.
    pub file_size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner's uid.
    pub uid: u32,
    /// The segment's shape.
    pub health: Health,
    /// The header (when the magic was valid and the file held a header).
    pub info: Option<HeaderInfo>,
    /// The participant table (when the header was readable).
    pub participants: Vec<Participant>,
    /// The primitive's state (when ready and the kind has a summariser).
    pub state: Option<StateSummary>,
}

impl Inspection {
    /// The kind, when the header names a known one.
    pub fn kind(&self) -> Option<Kind> {
        self.info.and_then(|i| Kind::from_code(i.kind))
    }

    /// Number of participants that still hold the segment open.
    pub fn live_participants(&self) -> usize {
        self.participants.iter().filter(|p| p.alive).count()
    }

    /// Number of participants that died without closing their handle.
    pub fn dead_participants(&self) -> usize {
        self.participants
            .iter()
            .filter(|p| !p.alive && !p.left)
            .count()
    }

    /// The creator's pid, from the header.
    pub fn creator_pid(&self) -> Option<u32> {
        self.info.map(|i| i.creator_pid)
    }

    /// When the segment was created.
    pub fn created(&self) -> Option<SystemTime> {
        self.info
            .map(|i| UNIX_EPOCH + Duration::from_nanos(i.created_at_ns))
    }

    /// For a message an object queue stored out of line
    /// ([`FLAG_QUEUED_MESSAGE`](crate::segment::FLAG_QUEUED_MESSAGE)): whether
    /// a segment its queue's name starts with is among `names` (its
    /// reference may then still be queued).
    fn queue_still_holds_it(&self, names: &[&str]) -> bool {
        let queued = self
            .info
            .is_some_and(|i| i.flags & crate::segment::FLAG_QUEUED_MESSAGE != 0);
        let Some(base) = self.name.rfind(".m").map(|i| &self.name[..i]) else {
            return false;
        };
        queued
            && names.iter().any(|n| {
                *n != self.name && n.starts_with(base) && !n[base.len()..].starts_with(".m")
            })
    }

    /// Whether `gc` may remove it: no live participant, and its creator process
    /// is gone (or it never became ready and its creator died).
    pub fn is_garbage(&self) -> bool {
        if self.info.is_none() || self.live_participants() > 0 {
            return false;
        }
        match self.health {
            Health::Initialising => false,
            Health::CreatorDied => true,
            _ => self.creator_pid().is_none_or(|pid| !sys::pid_exists(pid)),
        }
    }
}

/// Summarises a ready segment's state by kind. Each primitive's layout knowledge
/// stays in its own module (`summarize` next to its state); this only dispatches.
fn summarize(kind: Kind, info: &HeaderInfo, view: &StateView<'_>) -> Option<StateSummary> {
    match kind {
        Kind::Raw => Some(StateSummary {
            line: format!("{} bytes", info.data_size),
            fields: vec![("bytes", Field::U64(info.data_size))],
        }),
        Kind::Mutex | Kind::ReentrantMutex => mutex_summary(kind, info, view),
        Kind::Semaphore => crate::semaphore::summarize(view),
        Kind::Event => crate::event::summarize(view),
        Kind::Condvar => crate::condvar::summarize(view),
        Kind::Barrier => crate::barrier::summarize(view),
        Kind::Value | Kind::Array => crate::cell::summarize(kind, info, view),
        Kind::Queue | Kind::ByteQueue => crate::queue::summarize(info, view),
        Kind::SpscRing | Kind::SpscByteRing => crate::ring::spsc::summarize(view),
        Kind::Pipe => crate::pipe::summarize(view),
        Kind::Duplex => crate::ring::duplex::summarize(view),
    }
}

/// The pid owning thread `tid`, from `/proc` (None if it is gone or not visible).
fn pid_of_tid(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Tgid:"))?;
    line[5..].trim().parse().ok()
}

/// A mutex at the start of the data area: free, held by which process, owner
/// dead (shmprim's flag, or glibc's word for a mutex with priority
/// inheritance), or unrecoverable; plus the guarded value.
fn mutex_summary(kind: Kind, info: &HeaderInfo, view: &StateView<'_>) -> Option<StateSummary> {
    let mut fields = Vec::new();
    let base = crate::mutex::FUTEX_OFFSET;
    let [word, depth, type_word] = crate::mutex::WORD_OFFSETS.map(|o| base + o);
    let suspect = view.u32(crate::mutex::SUSPECT_OFFSET)? != 0;
    let pi = view.u32(type_word)? & crate::mutex::PRIORITY_INHERITANCE_BIT != 0;
    // Parameter 0 tags the C library whose pthread_mutex_t layout was used;
    // glibc's words are read only when it is this build's.
    let pthread_words = crate::sys::pthread::INSPECTABLE_WORDS
        .filter(|_| info.params[0] == crate::sys::pthread::LIBC_TAG);
    let m = if !pi {
        let w = crate::mutex::decode_words(view.u32(word)?, view.u32(depth)?);
        // A holder whose thread is gone died holding it; the next locker
        // takes it over (as the kernel marks a glibc mutex's word).
        let dead = w.tid != 0 && !crate::mutex::thread_alive(w.tid);
        Some(crate::sys::pthread::MutexWords {
            tid: if dead { 0 } else { w.tid },
            owner_died: dead,
            inconsistent: false,
            unrecoverable: false,
            waiters: w.waiters,
            depth: w.depth,
        })
    } else if let Some([lock, count, owner]) = pthread_words {
        Some(crate::sys::pthread::decode_mutex_words(
            view.u32(lock)?,
            view.u32(count)?,
            view.u32(owner)?,
        ))
    } else {
        None
    };
    let line = if let Some(m) = m {
        let pid = (m.tid != 0).then(|| pid_of_tid(m.tid)).flatten();
        let state = if m.unrecoverable {
            "unrecoverable".to_owned()
        } else if m.tid == 0 && m.owner_died {
            "owner died (next locker must recover it)".to_owned()
        } else if m.tid == 0 && suspect {
            "owner died, data not yet marked consistent (next locker decides)".to_owned()
        } else if m.tid != 0 {
            let who = pid.map_or(format!("tid {} (gone)", m.tid), |p| format!("pid {p}"));
            if m.owner_died || m.inconsistent || suspect {
                format!("held by {who}, recovering from an owner's death")
            } else {
                format!("held by {who}")
            }
        } else {
            "free".to_owned()
        };
        fields.push(("state", Field::Str(state.clone())));
        fields.push(("owner_tid", Field::U64(m.tid as u64)));
        if let Some(p) = pid {
            fields.push(("owner_pid", Field::U64(p as u64)));
        }
        fields.push(("waiters", Field::Bool(m.waiters)));
        fields.push(("owner_died", Field::Bool(suspect || m.owner_died)));
        if kind == Kind::ReentrantMutex && m.tid != 0 {
            fields.push(("depth", Field::U64(m.depth as u64)));
        }
        state
    } else {
        "lock state not readable (another C library's layout)".to_owned()
    };
    let value_offset = usize::try_from(info.params[2]).ok()?;
    let size = usize::try_from(info.payload.size).ok()?;
    let value = view
        .bytes(value_offset, size)
        .map(|b| format_value(&info.payload, &b));
    if let Some(v) = &value {
        fields.push(("value", Field::Str(v.clone())));
    }
    Some(StateSummary {
        line: match value {
            Some(v) if size > 0 => format!("{line}, value {v}"),
            _ => line,
        },
        fields,
    })
}

/// Inspects the named segment: read-only, no slot, no lock, no writes.
/// `NotFound` if there is no such name, `NotShmprim` if its magic is wrong; every
/// other problem is reported in [`Inspection::health`].
pub fn inspect(name: &str) -> Result<Inspection> {
    validate_name(name)?;
    let io = |op| move |e| Error::from_io(name, op, e);
    let fd = sys::shm::shm_open(name, OpenMode::ReadOnly, 0).map_err(io("shm_open"))?;
    let st = sys::shm::fstat(&fd).map_err(io("fstat"))?;
    let mut out = Inspection {
        name: name.to_owned(),
        file_size: st.size,
        mode: st.mode,
        uid: st.uid,
        health: Health::TooSmall,
        info: None,
        participants: Vec::new(),
        state: None,
    };
    if st.size < HEADER_SIZE as u64 {
        if st.size >= 8 {
            let mut magic = [0u8; 8];
            let file = std::fs::File::from(fd.try_clone().map_err(io("dup"))?);
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut magic, 0).map_err(io("pread"))?;
            if magic != MAGIC {
                return Err(Error::NotShmprim {
                    name: name.to_owned(),
                });
            }
        }
        return Ok(out);
    }
    let map = Mapping::map(&fd, st.size, false).map_err(io("mmap"))?;
    let (state, info) = header_snapshot(&map);
    if info.magic != MAGIC {
        if info.magic == [0; 8] && state == STATE_INITIALISING {
            let creator = sys::lock::is_byte_locked_by_other(fd.as_fd(), CREATOR_LOCK_BYTE)
                .map_err(io("fcntl"))?;
            out.health = if creator {
                Health::Initialising
            } else {
                Health::CreatorDied
            };
            return Ok(out);
        }
        return Err(Error::NotShmprim {
            name: name.to_owned(),
        });
    }
    out.info = Some(info);
    // SAFETY: the mapping covers at least HEADER_SIZE bytes (checked above).
    let header = unsafe { header_of(&map) };
    out.participants = participants_of(name, header, fd.as_fd(), info.slot_count, None)?;
    out.health = match state {
        STATE_READY => match validate_info(name, &info, st.size) {
            Ok(()) => Health::Ready,
            Err(Error::Incompatible { .. }) => Health::OtherVersion(info.version),
            Err(Error::Truncated { .. }) => Health::Truncated,
            Err(e) => Health::Corrupted(e.to_string()),
        },
        STATE_INITIALISING => {
            let creator = sys::lock::is_byte_locked_by_other(fd.as_fd(), CREATOR_LOCK_BYTE)
                .map_err(io("fcntl"))?;
            if creator {
                Health::Initialising
            } else {
                Health::CreatorDied
            }
        }
        other => Health::Corrupted(format!("unknown segment state {other:#x}")),
    };
    if out.health == Health::Ready {
        let kind = Kind::from_code(info.kind).expect("validated");
        // SAFETY: validate_info checked data_offset + data_size <= total_size <=
        // file size, the length of the mapping.
        let data = unsafe {
            std::slice::from_raw_parts(
                map.as_ptr().add(info.data_offset as usize).cast_const(),
                info.data_size as usize,
            )
        };
        out.state = summarize(kind, &info, &StateView::new(data));
    }
    Ok(out)
}

/// Every shmprim segment on the machine (files in `/dev/shm` whose header carries
/// the shmprim magic; a file still empty or without its magic cannot be told
/// from a foreign one and is skipped), sorted by name. Foreign files are skipped; a file that vanishes while listed is
/// skipped too.
pub fn list() -> Result<Vec<Inspection>> {
    list_prefixed("")
}

/// [`list`], limited to the segments whose name starts with `prefix`.
pub fn list_prefixed(prefix: &str) -> Result<Vec<Inspection>> {
    let names = sys::shm::list_shm_names().map_err(|e| Error::from_io("/dev/shm", "readdir", e))?;
    let mut out = Vec::new();
    for name in names {
        if !name.starts_with(prefix) || validate_name(&name).is_err() {
            continue;
        }
        match inspect(&name) {
            Ok(ins) if ins.info.is_some() => out.push(ins),
            Ok(_) => {}
            Err(
                Error::NotShmprim { .. } | Error::NotFound { .. } | Error::PermissionDenied { .. },
            ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Unlinks the named segment after checking it is a shmprim segment
/// (`NotShmprim` for any other file, which is left alone).
pub fn remove(name: &str) -> Result<()> {
    crate::Segment::unlink(name)
}

/// Segments that [`Inspection::is_garbage`] says nobody uses; removes them unless
/// `dry_run`. Returns what was (or would be) removed.
pub fn gc(dry_run: bool) -> Result<Vec<Inspection>> {
    gc_prefixed(dry_run, "")
}

/// [`gc`], limited to the segments whose name starts with `prefix`.
pub fn gc_prefixed(dry_run: bool, prefix: &str) -> Result<Vec<Inspection>> {
    let mut removed = Vec::new();
    let all = list_prefixed(prefix)?;
    let names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
    for ins in &all {
        if ins.is_garbage() && !ins.queue_still_holds_it(&names) {
            if !dry_run {
                match crate::segment::unlink_unchecked(&ins.name) {
                    Ok(()) | Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            removed.push(ins.clone());
        }
    }
    Ok(removed)
}

/// Escapes `s` as a JSON string literal (shared with the benchmark report).
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_field(f: &Field) -> String {
    match f {
        Field::U64(v) => v.to_string(),
        Field::I64(v) => v.to_string(),
        Field::F64(v) if v.is_finite() => v.to_string(),
        Field::F64(_) => "null".into(),
        Field::Bool(v) => v.to_string(),
        Field::Str(s) => json_str(s),
    }
}

fn secs_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Inspection {
    /// Age of the segment (zero when unknown or in the future).
    pub fn age(&self) -> Duration {
        self.created()
            .and_then(|c| SystemTime::now().duration_since(c).ok())
            .unwrap_or_default()
    }

    /// The one-line state for `ls`: the primitive's summary, or the health.
    pub fn state_line(&self) -> String {
        match (&self.health, &self.state) {
            (Health::Ready, Some(s)) => s.line.clone(),
            (Health::Ready, None) => "ready".into(),
            (Health::Corrupted(why), _) => format!("corrupted: {why}"),
            (Health::OtherVersion(v), _) => format!(
                "layout version {v} (this build reads {})",
                crate::segment::LAYOUT_VERSION
            ),
            (h, _) => h.as_str().into(),
        }
    }

    /// Everything as one JSON object (`stat --json`; `ls --json` lists these).
    pub fn to_json(&self) -> String {
        let mut o = vec![
            format!("\"name\":{}", json_str(&self.name)),
            format!("\"health\":{}", json_str(self.health.as_str())),
            format!("\"file_size\":{}", self.file_size),
            format!("\"mode\":{}", json_str(&format!("{:o}", self.mode))),
            format!("\"uid\":{}", self.uid),
        ];
        if let Health::Corrupted(why) = &self.health {
            o.push(format!("\"problem\":{}", json_str(why)));
        }
        if let Some(info) = &self.info {
            let kind = Kind::from_code(info.kind).map_or("unknown", Kind::name);
            o.push(format!("\"kind\":{}", json_str(kind)));
            o.push(format!("\"version\":{}", info.version));
            o.push(format!("\"total_size\":{}", info.total_size));
            o.push(format!("\"data_size\":{}", info.data_size));
            o.push(format!(
                "\"params\":[{}]",
                info.params
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
            o.push(format!(
                "\"payload\":{{\"name\":{},\"code\":{},\"size\":{},\"align\":{}}}",
                json_str(&info.payload.name_str()),
                info.payload.code,
                info.payload.size,
                info.payload.align
            ));
            o.push(format!("\"creator_pid\":{}", info.creator_pid));
            o.push(format!(
                "\"created_at\":{:.3}",
                info.created_at_ns as f64 / 1e9
            ));
            o.push(format!("\"age_seconds\":{:.3}", self.age().as_secs_f64()));
        }
        o.push(format!(
            "\"live_participants\":{}",
            self.live_participants()
        ));
        o.push(format!(
            "\"dead_participants\":{}",
            self.dead_participants()
        ));
        let parts: Vec<String> = self
            .participants
            .iter()
            .map(|p| {
                let status = if p.alive { "alive" } else if p.left { "left" } else { "dead" };
                format!(
                    "{{\"slot\":{},\"generation\":{},\"pid\":{},\"status\":\"{status}\",\"since\":{:.3}}}",
                    p.id.slot,
                    p.id.generation,
                    p.pid,
                    secs_since_epoch(p.since)
                )
            })
            .collect();
        o.push(format!("\"participants\":[{}]", parts.join(",")));
        o.push(format!("\"state_line\":{}", json_str(&self.state_line())));
        if let Some(s) = &self.state {
            let fields: Vec<String> = s
                .fields
                .iter()
                .map(|(k, v)| format!("{}:{}", json_str(k), json_field(v)))
                .collect();
            o.push(format!("\"state\":{{{}}}", fields.join(",")));
        }
        format!("{{{}}}", o.join(","))
    }

    /// A human-readable report: header, state fields, participant table.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut t = String::new();
        let _ = writeln!(t, "name:          {}", self.name);
        let _ = writeln!(t, "health:        {}", self.state_line_or_health());
        let _ = writeln!(
            t,
            "file:          {} bytes, mode {:o}, uid {}",
            self.file_size, self.mode, self.uid
        );
        if let Some(info) = &self.info {
            let kind = Kind::from_code(info.kind).map_or("unknown", Kind::name);
            let _ = writeln!(t, "kind:          {kind} (layout version {})", info.version);
            let _ = writeln!(
                t,
                "data:          {} bytes at offset {}",
                info.data_size, info.data_offset
            );
            let _ = writeln!(t, "params:        {:?}", info.params);
            let _ = writeln!(t, "payload:       {}", info.payload);
            let _ = writeln!(
                t,
                "creator:       pid {}, {:.1} s ago",
                info.creator_pid,
                self.age().as_secs_f64()
            );
        }
        if let Some(s) = &self.state {
            let _ = writeln!(t, "state:         {}", s.line);
            for (k, v) in &s.fields {
                let _ = writeln!(t, "  {k:<18} {v}");
            }
        }
        let _ = writeln!(
            t,
            "participants:  {} live, {} dead",
            self.live_participants(),
            self.dead_participants()
        );
        for p in &self.participants {
            let status = if p.alive {
                "alive"
            } else if p.left {
                "left"
            } else {
                "DEAD"
            };
            let ago = SystemTime::now()
                .duration_since(p.since)
                .unwrap_or_default();
            let _ = writeln!(
                t,
                "  slot {:>3} gen {:>4}  pid {:>8}  {status:<5}  since {:.1} s ago",
                p.id.slot,
                p.id.generation,
                p.pid,
                ago.as_secs_f64()
            );
        }
        t
    }

    fn state_line_or_health(&self) -> String {
        match &self.health {
            Health::Ready => "ready".into(),
            _ => self.state_line(),
        }
    }
}

/// The `ls` table: one line per segment.
pub fn render_table(list: &[Inspection]) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<32} {:<14} {:>10} {:>8} {:>8} {:>10}  STATE",
        "NAME", "KIND", "SIZE", "AGE", "CREATOR", "LIVE/DEAD"
    );
    for i in list {
        let kind = i.kind().map_or("?", Kind::name);
        let age = i.age().as_secs();
        let age = if age < 120 {
            format!("{age}s")
        } else if age < 7200 {
            format!("{}m", age / 60)
        } else {
            format!("{}h", age / 3600)
        };
        let _ = writeln!(
            t,
            "{:<32} {:<14} {:>10} {:>8} {:>8} {:>10}  {}",
            i.name,
            kind,
            i.file_size,
            age,
            i.creator_pid().map_or("-".into(), |p| p.to_string()),
            format!("{}/{}", i.live_participants(), i.dead_participants()),
            i.state_line()
        );
    }
    t
}

/// `ls --json`: a JSON array of [`Inspection::to_json`] objects.
pub fn render_json(list: &[Inspection]) -> String {
    format!(
        "[{}]",
        list.iter()
            .map(Inspection::to_json)
            .collect::<Vec<_>>()
            .join(",")
    )
}
