//! What `shmprim ls` and `stat` show of an SPSC ring: its indices, closed
//! flags and sleepers, read with loads only.

use super::*;

/// What inspection reads of an SPSC ring whose header starts at `base` of the
/// data area (loads only; `None` if anything lies outside it).
pub(crate) struct RingView {
    /// Messages (element ring) or bytes including framing (byte ring) pending.
    pub pending: u64,
    /// Slots or bytes.
    pub capacity: u64,
    /// Whether it is a byte ring.
    pub bytes: bool,
    /// The producer end closed (or was found dead).
    pub producer_closed: bool,
    /// The consumer end closed.
    pub consumer_closed: bool,
    /// Sleepers on either side.
    pub waiters: u64,
}

pub(crate) fn view_ring(
    view: &crate::inspect::view::StateView<'_>,
    base: usize,
) -> Option<RingView> {
    use std::mem::offset_of;
    let format = view.u32(base + 4)?;
    let capacity = view.u32(base + 8)?;
    let tail = view.u32(base + offset_of!(RingHeader, tail))?;
    let head = view.u32(base + offset_of!(RingHeader, head))?;
    let w = base + offset_of!(RingHeader, waiters);
    let waiters = view.u32(w)? as u64 + view.u32(w + 4)? as u64;
    Some(RingView {
        pending: (tail.wrapping_sub(head) & IDX) as u64,
        capacity: capacity as u64,
        bytes: format == FORMAT_BYTES,
        producer_closed: tail & CLOSED != 0,
        consumer_closed: head & CLOSED != 0,
        waiters,
    })
}

/// The `ls`/`stat` view of an SPSC ring segment.
pub(crate) fn summarize(
    view: &crate::inspect::view::StateView<'_>,
) -> Option<crate::inspect::view::StateSummary> {
    use crate::inspect::view::{Field, StateSummary};
    let r = view_ring(view, 0)?;
    let unit = if r.bytes { "bytes" } else { "messages" };
    let mut line = format!("{}/{} {unit} pending", r.pending, r.capacity);
    if r.producer_closed {
        line.push_str(", producer closed");
    }
    if r.consumer_closed {
        line.push_str(", consumer closed");
    }
    Some(StateSummary {
        line,
        fields: vec![
            ("pending", Field::U64(r.pending)),
            ("capacity", Field::U64(r.capacity)),
            ("producer_closed", Field::Bool(r.producer_closed)),
            ("consumer_closed", Field::Bool(r.consumer_closed)),
            ("waiters", Field::U64(r.waiters)),
        ],
    })
}
