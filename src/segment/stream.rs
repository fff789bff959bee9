//! Who still sends on a queue, and which of its tasks are not yet done: the
//! header words behind a queue's end of stream and `JoinableQueue`.
//!
//! # End of stream
//!
//! A handle that sends (a queue's producer, [`Role::Send`] or [`Role::Both`])
//! writes its tenure's generation into its participant slot's `sending` word
//! and counts itself in `senders`; closing or dropping the handle takes both
//! back. The stream has ended when some sender was ever registered
//! (`FLAG_SENDER_SEEN`) and no registered sender is alive:
//!
//! - `senders == 0`: every sender left cleanly; no system call needed.
//! - otherwise a scan of the slots whose `sending` word is set asks the
//!   liveness table (one `fcntl` each) until it finds a live one. A dead one is
//!   taken off the count (a CAS of its word, so by one scanner only), so that
//!   later checks are cheap again.
//!
//! A process that takes a slot clears the word a dead tenure left in it, and
//! takes that tenure off the count, before it marks the slot active.
//!
//! The words are untrusted like the rest of the segment: a scribbled count or
//! word can only make the answer wrong (an early or a late end of stream), never
//! reach outside the header.
//!
//! # Unfinished tasks
//!
//! A queue created with `FLAG_JOINABLE` counts every
//! put in `unfinished` before the item becomes visible; `task_done` takes one
//! off and, at zero, bumps `all_done` and wakes its sleepers (the `join`s).

use super::{Header, ParticipantId, Segment};
use crate::error::{Error, Result};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::wait::{Deadline, wait_while_eq, wake};

/// `StreamWords::flags`: a sending handle was registered at least once.
const FLAG_SENDER_SEEN: u32 = 1;

/// Which way a queue handle carries messages. Only senders count for the end
/// of stream: once every sending handle has closed or its process has died,
/// receivers drain what is queued and then get [`Error::Closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Puts and gets (Python's `Queue` handles). The default: while this
    /// handle is open, the stream has not ended.
    #[default]
    Both,
    /// Puts; gets work too, but the handle is opened to produce.
    Send,
    /// Gets only: puts fail with `Closed`, and the handle never holds the
    /// stream open.
    Receive,
}

impl Role {
    /// Whether a handle of this role counts as a sender.
    pub fn sends(self) -> bool {
        self != Role::Receive
    }
}

/// The header words of a segment's stream (zero in a fresh segment).
#[repr(C)]
pub(crate) struct StreamWords {
    /// `FLAG_SENDER_SEEN`.
    flags: AtomicU32,
    /// Slots whose `sending` word is set (dead ones until a scan repairs them).
    senders: AtomicU32,
    /// Puts of a joinable queue not yet matched by `task_done`.
    unfinished: AtomicU32,
    /// Bumped each time `unfinished` drops to zero: `join`'s futex word.
    all_done: AtomicU32,
    /// `join`s asleep on `all_done`.
    all_done_waiters: AtomicU32,
}

impl Header {
    /// On taking slot `i` (its lock held, before marking it active): a
    /// sending registration left by a dead tenure is taken off the count.
    pub(super) fn clear_stale_sender(&self, i: u32) {
        let old = self.slots[i as usize].sending.swap(0, Ordering::AcqRel);
        if old != 0 {
            decrement(&self.stream.senders);
        }
    }
}

/// Takes one off `word`, never below zero (a scribbled count must not wrap
/// to "four billion senders").
fn decrement(word: &AtomicU32) -> u32 {
    // SeqCst: the count is half of a Dekker pair with a receiver's
    // registration as a sleeper (see `Segment::set_sending`).
    match word.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
        Ok(n) => n - 1,
        Err(_) => 0,
    }
}

impl Segment {
    fn stream(&self) -> &StreamWords {
        &self.header().stream
    }

    /// Registers this handle as a sender (`on`) or takes the registration back;
    /// returns whether anything changed. The handles of one process share
    /// one slot, and the slot's registration stands while any of them is
    /// registered. Taking the last one back is followed by the caller's
    /// wake-up of the receivers: the SeqCst decrement before it pairs with a
    /// receiver's SeqCst fence between registering as a sleeper and looking
    /// at the count, so either the receiver sees the count or the waker sees
    /// the receiver.
    pub(crate) fn set_sending(&self, on: bool) -> bool {
        let mark = crate::sys::fork::fork_generation().wrapping_add(1);
        // Registering takes this process's own slot (in a forked child, a
        // new one); taking it back only looks at a slot already taken.
        let Some(tenure) = self.tenure_arc(on) else {
            return false;
        };
        // Relaxed: the handle's own mark; the tenure's lock orders the rest.
        let changed = if on {
            self.sending.swap(mark, Ordering::Relaxed) != mark
        } else {
            self.sending
                .compare_exchange(mark, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        };
        if !changed {
            return false;
        }
        let mut handles = tenure.senders.lock().unwrap_or_else(|e| e.into_inner());
        let i = tenure.slot;
        let g = self.slot(i).generation.load(Ordering::Relaxed);
        let word = &self.slot(i).sending;
        let stream = self.stream();
        if on {
            *handles += 1;
            // AcqRel on the word: pairs with the scanners' Acquire loads. A
            // scanner may see the word before the count is raised; it then
            // finds this slot alive and answers "not ended", which is right.
            if *handles == 1
                && word
                    .compare_exchange(0, g, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                stream.senders.fetch_add(1, Ordering::SeqCst);
                stream.flags.fetch_or(FLAG_SENDER_SEEN, Ordering::SeqCst);
            }
        } else {
            *handles = handles.saturating_sub(1);
            if *handles == 0
                && word
                    .compare_exchange(g, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                decrement(&stream.senders);
            }
        }
        true
    }

    /// Whether the stream has ended: a sender was registered once and none
    /// registered now is alive. `self_sends` short-cuts the answer for a
    /// handle that is itself a sender.
    pub(crate) fn senders_gone(&self) -> bool {
        let stream = self.stream();
        // Acquire (SeqCst): pairs with the SeqCst updates in `set_sending`, so
        // that a receiver that sees the last sender gone also sees every
        // message that sender published before closing.
        if stream.flags.load(Ordering::SeqCst) & FLAG_SENDER_SEEN == 0 {
            return false;
        }
        if stream.senders.load(Ordering::SeqCst) == 0 {
            return true;
        }
        let own = self
            .claimed_tenure()
            .map(|i| (i, self.slot(i).generation.load(Ordering::Relaxed)));
        for i in 0..self.info.slot_count.min(super::MAX_PARTICIPANTS as u32) {
            let word = &self.slot(i).sending;
            let g = word.load(Ordering::Acquire);
            if g == 0 {
                continue;
            }
            let alive = match own {
                Some((me, mine)) if me == i => g == mine,
                _ => self.is_alive(ParticipantId {
                    slot: i,
                    generation: g,
                }),
            };
            if alive {
                return false;
            }
            if word
                .compare_exchange(g, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                decrement(&stream.senders);
            }
        }
        true
    }

    /// Live senders right now (a snapshot: one `fcntl` per registered sender).
    pub(crate) fn live_senders(&self) -> usize {
        let own = self
            .claimed_tenure()
            .map(|i| (i, self.slot(i).generation.load(Ordering::Relaxed)));
        (0..self.info.slot_count.min(super::MAX_PARTICIPANTS as u32))
            .filter(|&i| {
                let g = self.slot(i).sending.load(Ordering::Acquire);
                g != 0
                    && match own {
                        Some((me, mine)) if me == i => g == mine,
                        _ => self.is_alive(ParticipantId {
                            slot: i,
                            generation: g,
                        }),
                    }
            })
            .count()
    }

    /// Whether the segment was created with `flags` set in its header.
    pub(crate) fn has_flag(&self, flag: u32) -> bool {
        self.info.flags & flag != 0
    }

    /// A joinable queue's put, before its item becomes visible: one more
    /// unfinished task.
    pub(crate) fn task_added(&self, n: u32) {
        // Relaxed suffices for the count itself: the item's publication (a
        // release) comes after, so whoever takes the item and calls
        // `task_done` finds the count already raised.
        self.stream().unfinished.fetch_add(n, Ordering::Relaxed);
    }

    /// A put that failed after `task_added`: takes its count back.
    pub(crate) fn task_withdrawn(&self, n: u32) {
        for _ in 0..n {
            let _ = self.task_done_inner();
        }
    }

    /// Python's `JoinableQueue.task_done`: one unfinished task fewer;
    /// `InvalidArgument` when there is none (called more often than items
    /// were put).
    pub(crate) fn task_done(&self) -> Result<()> {
        if self.task_done_inner() {
            Ok(())
        } else {
            Err(Error::invalid_argument(format!(
                "task_done() called more times than there were items put on {}",
                self.display_name()
            )))
        }
    }

    fn task_done_inner(&self) -> bool {
        let stream = self.stream();
        // Release: a `join` that sees the count at zero sees what the task's
        // consumer did before calling `task_done` (pairs with the Acquire loads
        // in `join`).
        match stream
            .unfinished
            .fetch_update(Ordering::Release, Ordering::Relaxed, |n| n.checked_sub(1))
        {
            Ok(1) => {
                // Release: a joiner woken by the bump sees the count at zero.
                stream.all_done.fetch_add(1, Ordering::Release);
                wake(&stream.all_done, &stream.all_done_waiters, u32::MAX);
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// Tasks put and not yet done.
    pub(crate) fn unfinished(&self) -> u32 {
        self.stream().unfinished.load(Ordering::Acquire)
    }

    /// Python's `JoinableQueue.join`: waits until every task put is done, or
    /// `Timeout` at `deadline`.
    pub(crate) fn join_tasks(&self, deadline: Deadline) -> Result<()> {
        let stream = self.stream();
        loop {
            // Acquire: pairs with the Release bump in `task_done_inner`.
            let w = stream.all_done.load(Ordering::Acquire);
            if stream.unfinished.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            if wait_while_eq(&stream.all_done, &stream.all_done_waiters, w, deadline).is_err() {
                return if stream.unfinished.load(Ordering::Acquire) == 0 {
                    Ok(())
                } else {
                    Err(Error::timeout(self.object_name()))
                };
            }
        }
    }
}
