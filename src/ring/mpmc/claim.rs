//! Claim records and single attempts: each participant's in-flight record, how
//! one claim is tried, and how a slot claimed by a dead participant is found and
//! recovered.

use super::*;

impl MpmcRing {
    // ------------------------------------------------------------ records

    /// Claims an in-flight record for the participant `id` (non-zero): a free one,
    /// else one whose owner is dead. `TooManyParticipants` if all are held.
    pub fn register(&self, id: u64, live: &dyn Liveness) -> Result<Agent> {
        assert_ne!(id, 0, "participant ids are non-zero");
        let records = &self.state().records;
        for free_only in [true, false] {
            for (i, r) in records.iter().enumerate() {
                let owner = r.owner.load(Ordering::Relaxed);
                let takeable = if free_only {
                    owner == 0
                } else {
                    owner != 0 && !live.is_alive(owner)
                };
                // Acquire: pairs with the Release clear of the previous holder,
                // so its last claim is settled before we overwrite it.
                if takeable
                    && r.owner
                        .compare_exchange(owner, id, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    // Relaxed: ordered before our first claim by program order;
                    // a survivor that sees that claim's CAS (Acquire) sees it.
                    self.signals()
                        .records_used
                        .fetch_max(i as u32 + 1, Ordering::Relaxed);
                    r.claim.store(IDLE, Ordering::Release);
                    return Ok(Agent::from_parts(i, id));
                }
            }
        }
        Err(Error::TooManyParticipants {
            name: self.name.to_string(),
            slots: MAX_RECORDS as u32,
        })
    }

    /// Gives a record back (it must not be in the middle of an operation).
    pub fn unregister(&self, agent: Agent) {
        let r = self.record(&agent);
        r.claim.store(IDLE, Ordering::Relaxed);
        // Release: pairs with the Acquire CAS in `register` by the next holder.
        let _ = r
            .owner
            .compare_exchange(agent.id, 0, Ordering::Release, Ordering::Relaxed);
    }

    // ------------------------------------------------------------ one attempt

    /// One attempt to push up to `n` items (at most [`MAX_BATCH`]); `item(i)` gives
    /// the bytes of the `i`-th (at most `slot_size`).
    pub(super) fn push_step<'s>(
        &self,
        agent: &Agent,
        n: usize,
        item: &impl Fn(usize) -> &'s [u8],
    ) -> Result<Step> {
        let st = self.state();
        let cap = self.cap;
        let want = n.min(MAX_BATCH).min(self.cap as usize);
        let mut lost = 0u32;
        loop {
            let t = st.tail.0.load(Ordering::Relaxed);
            if t >= POS_LIMIT {
                return Err(self.corrupted(format!("tail position {t} out of range")));
            }
            // Acquire: pairs with the consumer's Release of the slot, so its copy
            // out of the previous lap happens before our copy in.
            let s = self.stamp(t).load(Ordering::Acquire);
            if s == 2 * t {
                let mut k = 1;
                while k < want
                    && self.stamp(t + k as u64).load(Ordering::Acquire) == 2 * (t + k as u64)
                {
                    k += 1;
                }
                let rec = self.record(agent);
                rec.claim
                    .store(encode_claim(t, k, OP_PUT), Ordering::Relaxed);
                // CLAIM (SeqCst, so Release): publishes the claim record above to
                // anyone who sees the new tail (survivors looking for the claimer
                // of `t`); SeqCst for the sleeper check, see `sleepers_after_claim`.
                if st
                    .tail
                    .0
                    .compare_exchange_weak(t, t + k as u64, CLAIM, Ordering::Relaxed)
                    .is_err()
                {
                    // The claim names a position we did not win: clear it, or a
                    // survivor could take it for the claim of the live winner's
                    // position and never recover that one if its winner dies.
                    rec.claim.store(IDLE, Ordering::Relaxed);
                    lost = lost.saturating_add(1);
                    lost_claim_pause(lost);
                    continue;
                }
                let sleepers = self.sleepers_after_claim(&self.signals().not_empty_waiters);
                for i in 0..k {
                    let pos = t + i as u64;
                    let bytes = item(i);
                    debug_assert!(bytes.len() <= self.slot_size);
                    // SAFETY: we own slot `pos` (won the CAS on a free stamp), the
                    // data area has `slot_size >= bytes.len()` bytes, and `bytes`
                    // is the caller's own memory.
                    unsafe {
                        std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data(pos), bytes.len())
                    };
                    self.set_len(pos, bytes.len());
                    // Release: pairs with the consumer's Acquire load of the stamp:
                    // the data and length are visible before the stamp says full.
                    publish_stamp(self.stamp(pos), 2 * pos + 1);
                }
                // Release: a survivor that sees the record cleared sees the stamps.
                rec.claim.store(IDLE, Ordering::Release);
                if sleepers {
                    let sig = self.signals();
                    wake_up(&sig.not_empty, k);
                }
                return Ok(Step::Done(k));
            }
            if t >= cap && (s & !SKIP == 2 * (t - cap) + 1 || s == 2 * (t - cap)) {
                // SeqCst fence: as crossbeam, so that `head` is not older than the
                // stamp we just read.
                fence(Ordering::SeqCst);
                // Acquire: pairs with the Release CAS of a consumer that claimed
                // `t - cap`, so its record is visible to `recover`.
                let h = st.head.0.load(Ordering::Acquire);
                if h.saturating_add(cap) <= t {
                    return Ok(Step::Full);
                }
                // The slot is still held by the previous lap: by its producer
                // (stamp `2(t - cap)`) or its consumer (full stamp, head past it).
                let op = if s == 2 * (t - cap) { OP_PUT } else { OP_GET };
                return Ok(Step::Busy {
                    op,
                    pos: t - cap,
                    stamp: s,
                });
            }
            let legit = |s: u64| {
                s == 2 * t || (t >= cap && (s & !SKIP == 2 * (t - cap) + 1 || s == 2 * (t - cap)))
            };
            self.confirm_impossible(&st.tail.0, t, s, legit, "tail")?;
        }
    }

    /// Called when stamp `s` of position `pos` looks impossible for the index
    /// (`head` or `tail`) at `pos`. Loads may return stale values, so this checks
    /// with read-modify-writes, which read the index's latest value: if the index
    /// is still `pos` before and after a fresh load of the stamp, and that stamp
    /// is not `legit`, the ring is corrupted. Returns `Ok` to retry.
    pub(super) fn confirm_impossible(
        &self,
        index: &AtomicU64,
        pos: u64,
        s: u64,
        legit: impl Fn(u64) -> bool,
        what: &str,
    ) -> Result<()> {
        // Acquire: synchronises with every claim CAS on the index so far (they
        // form one release sequence), so the stamp load below is not older than
        // the claims that led to `pos`.
        if index
            .compare_exchange(pos, pos, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Ok(());
        }
        // Acquire: as for every stamp load.
        let s2 = self.stamp(pos).load(Ordering::Acquire);
        if legit(s2) {
            return Ok(());
        }
        // A stamp moved past `pos` by a claim of `pos` would make this RMW see the
        // index past `pos` (the claim happens before the stamp we read).
        if index
            .compare_exchange(pos, pos, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Ok(());
        }
        Err(self.corrupted(format!(
            "slot stamp {s2:#x} (first seen {s:#x}) impossible at {what} position {pos}"
        )))
    }

    /// One attempt to pop up to `n` messages (at most [`MAX_BATCH`]), handing each
    /// to `sink(i, bytes)`. With `limit`, a first message longer than `limit` is
    /// left in place and reported as `TooBig`.
    pub(super) fn pop_step(
        &self,
        agent: &Agent,
        n: usize,
        limit: Option<usize>,
        sink: &mut impl FnMut(usize, SlotBytes<'_>),
    ) -> Result<Step> {
        let st = self.state();
        let cap = self.cap;
        let want = n.min(MAX_BATCH).min(self.cap as usize);
        let mut lost = 0u32;
        loop {
            let h = st.head.0.load(Ordering::Relaxed);
            if h >= POS_LIMIT {
                return Err(self.corrupted(format!("head position {h} out of range")));
            }
            // Acquire: pairs with the producer's Release publication of the slot.
            let s = self.stamp(h).load(Ordering::Acquire);
            if s & !SKIP == 2 * h + 1 {
                if let Some(limit) = limit {
                    let len = self.msg_len(h);
                    if s & SKIP == 0 && len > limit && len <= self.slot_size {
                        return Ok(Step::TooBig(len));
                    }
                }
                let mut k = 1;
                while k < want
                    && self.stamp(h + k as u64).load(Ordering::Acquire) & !SKIP
                        == 2 * (h + k as u64) + 1
                {
                    k += 1;
                }
                if limit.is_some() {
                    k = 1;
                }
                let rec = self.record(agent);
                rec.claim
                    .store(encode_claim(h, k, OP_GET), Ordering::Relaxed);
                // CLAIM (SeqCst, so Release): publishes the claim record to anyone
                // who sees the new head (producers of the next lap looking for our
                // record); SeqCst for the sleeper check, see `sleepers_after_claim`.
                if st
                    .head
                    .0
                    .compare_exchange_weak(h, h + k as u64, CLAIM, Ordering::Relaxed)
                    .is_err()
                {
                    // As in `push_step`: a lost claim must not stay on record.
                    rec.claim.store(IDLE, Ordering::Relaxed);
                    lost = lost.saturating_add(1);
                    lost_claim_pause(lost);
                    continue;
                }
                let sleepers = self.sleepers_after_claim(&self.signals().not_full_waiters);
                let mut delivered = 0;
                let mut bad = None;
                for i in 0..k {
                    let pos = h + i as u64;
                    let slot = self.stamp(pos);
                    // Acquire: as above, for the slots after the first.
                    let stamp = slot.load(Ordering::Acquire);
                    let len = self.msg_len(pos);
                    if stamp & SKIP == 0 {
                        if len > self.slot_size || limit.is_some_and(|l| len > l) {
                            bad = Some(format!(
                                "message length {len} exceeds slot size {} at position {pos}",
                                self.slot_size
                            ));
                        } else if bad.is_none() {
                            sink(
                                delivered,
                                SlotBytes {
                                    ptr: self.data(pos),
                                    len,
                                    _slot: PhantomData,
                                },
                            );
                            delivered += 1;
                        }
                    }
                    // Release: pairs with the next lap's producer's Acquire load:
                    // our copy out happens before its copy in.
                    publish_stamp(slot, 2 * (pos + cap));
                }
                // Release: a survivor that sees the record cleared sees the stamps.
                rec.claim.store(IDLE, Ordering::Release);
                if sleepers {
                    let sig = self.signals();
                    wake_up(&sig.not_full, k);
                }
                if let Some(detail) = bad {
                    return Err(self.corrupted(detail));
                }
                return Ok(Step::Done(delivered));
            }
            let prev_lap_full = h >= cap && s & !SKIP == 2 * (h - cap) + 1;
            if s == 2 * h || prev_lap_full {
                // SeqCst fence: as crossbeam, so `tail` is not older than the stamp.
                fence(Ordering::SeqCst);
                // Acquire: pairs with the Release CAS of the producer that claimed
                // `h`, so its record is visible to `recover`.
                let t = st.tail.0.load(Ordering::Acquire);
                if t <= h {
                    return Ok(Step::Empty);
                }
                // Claimed by the producer of `h`, which has not published yet; or
                // the slot is still held by the consumer of the previous lap.
                return Ok(if s == 2 * h {
                    Step::Busy {
                        op: OP_PUT,
                        pos: h,
                        stamp: s,
                    }
                } else {
                    Step::Busy {
                        op: OP_GET,
                        pos: h - cap,
                        stamp: s,
                    }
                });
            }
            let legit = |s: u64| {
                s & !SKIP == 2 * h + 1 || s == 2 * h || (h >= cap && s & !SKIP == 2 * (h - cap) + 1)
            };
            self.confirm_impossible(&st.head.0, h, s, legit, "head")?;
        }
    }

    /// Recovers position `pos` claimed for `op` if every claimer is dead: see the
    /// module doc. Returns whether this call changed the stamp.
    pub(super) fn recover(&self, live: &dyn Liveness, op: u64, pos: u64, stamp: u64) -> bool {
        // Relaxed: the claimer's `register` raised the count before its claim
        // CAS, and that CAS happens before this call (we acquired the index
        // value past it, by an Acquire load or a SeqCst fence, before we saw
        // the slot busy), so this load sees the raised count. Bounded, since
        // it is read from shared memory.
        let used = (self.signals().records_used.load(Ordering::Relaxed) as usize).min(MAX_RECORDS);
        for r in &self.state().records[..used] {
            // Acquire: pairs with the Release clear after publication: if the
            // claim is gone, the stamp CAS below sees the moved stamp and fails.
            let claim = r.claim.load(Ordering::Acquire);
            if claim_covers(claim, op, pos) {
                let owner = r.owner.load(Ordering::Acquire);
                if owner != 0 && live.is_alive(owner) {
                    return false;
                }
            }
        }
        let new = if op == OP_PUT {
            (2 * pos + 1) | SKIP
        } else {
            2 * (pos + self.cap)
        };
        // AcqRel: acquires the dead claimer's last writes (nothing we read), and
        // releases the new stamp to the next claimer, as a publication would.
        let changed = self
            .stamp(pos)
            .compare_exchange(stamp, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        #[cfg(shmprim_loom)]
        busy_model::stamp_changed();
        changed
    }
}
