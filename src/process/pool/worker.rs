//! The worker side of a pool, and the records its rings carry.
//!
//! Each worker has a duplex pipe to the parent: tasks come in on one ring,
//! results go out on the other. Before it runs a task the worker writes the
//! task's id into its slot of the control segment, and clears it after the
//! result is sent: when a worker dies, the parent drains the results it sent,
//! and the slot then tells the one task that was running (it fails, or runs
//! again) from those still queued behind it (they go to other workers, never
//! having started).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::record::{RESULT_HEADER, TASK_TAG};
use crate::error::{Error, Result};
use crate::pipe::{Pipe, PipeEnd};
use crate::process::entry::Entry;
use crate::process::outcome;
use crate::process::payload::{Payload, malformed, take};
use crate::segment::{Kind, Segment, SegmentBuilder};

/// Bytes of the control segment before the first slot: the doorbell word
/// and its sleeper count.
pub(crate) const SLOTS_AT: usize = 64;
/// Bytes per worker slot (one cache line each).
pub(crate) const SLOT_SIZE: usize = 64;

/// The control segment's words.
pub(crate) struct Control {
    seg: Segment,
    slots: usize,
}

impl Control {
    pub(crate) fn create(slots: usize) -> Result<Control> {
        let seg = Segment::anonymous(SLOTS_AT + SLOT_SIZE * slots)?;
        Ok(Control { seg, slots })
    }

    fn open_inherited(fd: i32, slot: usize) -> Result<Control> {
        let seg = SegmentBuilder::new(Kind::Raw).open_inherited(fd)?;
        let slots = (seg.len().saturating_sub(SLOTS_AT)) / SLOT_SIZE;
        if slot >= slots {
            return Err(Error::corrupted(
                "<pool control>",
                format!("slot {slot} of a segment with {slots}"),
            ));
        }
        Ok(Control { seg, slots })
    }

    pub(crate) fn raw_fd(&self) -> i32 {
        self.seg.raw_fd()
    }

    fn word32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset + 4 <= self.seg.len() && offset % 4 == 0);
        // SAFETY: in bounds and aligned (checked; the data area is page
        // aligned), and only ever accessed atomically.
        unsafe { &*self.seg.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// The word workers bump after each result, and the manager sleeps on.
    pub(crate) fn doorbell(&self) -> (&AtomicU32, &AtomicU32) {
        (self.word32(0), self.word32(4))
    }

    /// Rings the doorbell: wakes the manager if it sleeps.
    pub(crate) fn ring(&self) {
        let (word, waiters) = self.doorbell();
        // Release: pairs with the manager's Acquire in `wait_while_eq`, so it
        // sees the result pushed before the bump (the ring's own ordering
        // covers the result itself).
        word.fetch_add(1, Ordering::Release);
        crate::wait::wake(word, waiters, u32::MAX);
    }

    /// The id of the task the worker in `slot` runs, 0 when none.
    pub(crate) fn started(&self, slot: usize) -> &AtomicU64 {
        assert!(slot < self.slots);
        let offset = SLOTS_AT + SLOT_SIZE * slot;
        assert!(offset + 8 <= self.seg.len());
        // SAFETY: in bounds (checked), 8-byte aligned (64-byte stride from a
        // page-aligned start), only ever accessed atomically.
        unsafe { &*self.seg.as_ptr().add(offset).cast::<AtomicU64>() }
    }
}

/// What a new worker is told.
pub(crate) struct WorkerBoot {
    pub(crate) pipe_fd: i32,
    pub(crate) control_fd: i32,
    pub(crate) slot: u32,
    pub(crate) initializer: Option<(Entry, Vec<u8>)>,
    /// Tasks after which the worker exits (0: never).
    pub(crate) max_tasks: u64,
}

impl Payload for WorkerBoot {
    fn encode(&self, out: &mut Vec<u8>) {
        self.pipe_fd.encode(out);
        self.control_fd.encode(out);
        self.slot.encode(out);
        self.initializer.encode(out);
        self.max_tasks.encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok(WorkerBoot {
            pipe_fd: i32::decode(input)?,
            control_fd: i32::decode(input)?,
            slot: u32::decode(input)?,
            initializer: Option::decode(input)?,
            max_tasks: u64::decode(input)?,
        })
    }
}

/// Builds result records no larger than the ring's largest message,
/// encoding each outcome in place.
struct ResultWriter {
    out: Vec<u8>,
    id: u64,
    first: u32,
    count: u32,
    max: usize,
}

impl ResultWriter {
    fn start(&mut self, id: u64) {
        self.id = id;
        self.first = 0;
        self.count = 0;
        self.reset();
    }

    fn reset(&mut self) {
        self.out.clear();
        self.id.encode(&mut self.out);
        self.first.encode(&mut self.out);
        0u32.encode(&mut self.out);
    }

    /// Runs `entry` on `arg`, encoding its outcome in place; sends what is
    /// gathered first if the outcome does not fit beside it.
    fn run(&mut self, end: &mut PipeEnd, entry: Entry, arg: &[u8]) -> Result<()> {
        let mark = self.out.len();
        // SAFETY: the entry came from `Entry::of` in the parent, which
        // spawned this process from its own build (checked at boot).
        outcome::run(&mut self.out, |out| unsafe { entry.call(arg, out) });
        if self.out.len() > self.max {
            let item = self.out.split_off(mark);
            if self.count > 0 {
                self.flush(end)?;
            }
            if RESULT_HEADER + item.len() > self.max {
                outcome::failed(
                    &mut self.out,
                    &format!(
                        "the result takes {} bytes, more than the pool's max_message of {}",
                        item.len(),
                        self.max
                    ),
                );
            } else {
                self.out.extend_from_slice(&item);
            }
        }
        self.count += 1;
        Ok(())
    }

    /// Sends the gathered outcomes, if any.
    fn flush(&mut self, end: &mut PipeEnd) -> Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        self.out[12..16].copy_from_slice(&self.count.to_le_bytes());
        end.send(&self.out)?;
        self.first += self.count;
        self.count = 0;
        self.reset();
        Ok(())
    }
}

/// The worker process's function.
pub(crate) fn worker_main(boot: WorkerBoot) {
    if let Err(e) = serve(boot) {
        eprintln!("shmprim pool worker {}: {e}", std::process::id());
        std::process::exit(1);
    }
}

/// Results a worker sends before it rings the doorbell even though more
/// tasks wait in its ring (it always rings when its ring runs dry).
const RING_EVERY: u32 = 32;

fn serve(boot: WorkerBoot) -> Result<()> {
    let slot = boot.slot as usize;
    let control = Control::open_inherited(boot.control_fd, slot)?;
    let pipe = Pipe::open_inherited(boot.pipe_fd)?;
    let mut end = pipe.end_b()?;
    let max = pipe.max_message();
    if let Some((entry, arg)) = &boot.initializer {
        // SAFETY: the entry came from `Entry::of` in the parent, which spawned
        // this process from its own build (checked at boot).
        unsafe { entry.call(arg, &mut Vec::new()) }?;
    }
    let started = control.started(slot);
    let mut msg = vec![0u8; max];
    let mut results = ResultWriter {
        out: Vec::with_capacity(max),
        id: 0,
        first: 0,
        count: 0,
        max,
    };
    let mut served = 0u64;
    let mut unrung = 0u32;
    loop {
        let len = match end.try_recv_into(&mut msg) {
            Ok(len) => len,
            Err(Error::Empty { .. }) => {
                // About to sleep: let the manager know what is done, so that it
                // collects it and sends more.
                if unrung > 0 {
                    control.ring();
                    unrung = 0;
                }
                match end.recv_into(&mut msg) {
                    Ok(len) => len,
                    // The parent closed its end (the pool is closing) or died.
                    Err(Error::Closed { .. }) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            Err(Error::Closed { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut input = &msg[..len];
        let input = &mut input;
        if u8::decode(input)? != TASK_TAG {
            return Err(malformed("not a task record"));
        }
        let id = u64::decode(input)?;
        let entry = Entry::decode(input)?;
        let n = u32::decode(input)?;
        // Release: pairs with the manager's Acquire load after this worker
        // died; the manager then knows this task ran (or runs).
        started.store(id, Ordering::Release);
        results.start(id);
        for _ in 0..n {
            let len = u32::decode(input)? as usize;
            let arg = take(input, len)?;
            results.run(&mut end, entry, arg)?;
        }
        results.flush(&mut end)?;
        started.store(0, Ordering::Relaxed);
        unrung += 1;
        served += 1;
        if boot.max_tasks != 0 && served >= boot.max_tasks {
            control.ring();
            return Ok(());
        }
        if unrung >= RING_EVERY {
            control.ring();
            unrung = 0;
        }
    }
}
