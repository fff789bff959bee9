//! What a pool's rings carry, and how results are kept until taken.
//!
//! A **task record** (parent to worker): tag, task id, the function, the
//! item count, then each item's encoded argument behind its `u32` length. A
//! **result record** (worker to parent): task id, index of its first item in
//! the task, item count, then each item's outcome: a tag, a `u32` length and
//! the body (the encoded value, or the error). A chunk whose results do not
//! fit one message comes back in several records.
//!
//! The parent keeps the outcomes (`process::outcome`) as they came, one
//! buffer per record, and decodes an item only when it is taken: no
//! allocation per item.

use crate::error::{Error, Result};
use crate::process::entry::Entry;
use crate::process::outcome::{begin_item, end_item, skip_item};
use crate::process::payload::Payload;

pub(crate) const TASK_TAG: u8 = 1;
/// Bytes of a task record before its items: tag, id, function, count.
pub(crate) const TASK_HEADER: usize = 1 + 8 + 16 + 4;
/// Bytes of a result record before its outcomes: id, first item, count.
pub(crate) const RESULT_HEADER: usize = 16;

/// A task record in the making: room for the header, then the arguments
/// back to back. The manager fills the header in and sends the buffer as it
/// is, with no copy.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) bytes: Vec<u8>,
    pub(crate) count: u32,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            bytes: vec![0; TASK_HEADER],
            count: 0,
        }
    }
}

impl Args {
    /// Appends one argument.
    pub(crate) fn push<A: Payload>(&mut self, arg: &A) -> Result<()> {
        let mark = begin_item(&mut self.bytes, None);
        arg.encode(&mut self.bytes);
        if end_item(&mut self.bytes, mark).is_none() {
            self.bytes.truncate(mark);
            return Err(Error::invalid_argument("an argument is larger than 4 GiB"));
        }
        self.count += 1;
        Ok(())
    }

    /// Splits off the last argument, which starts at `last_at` (to start the
    /// next task with it).
    pub(crate) fn pop_last(&mut self, last_at: usize) -> Args {
        let mut next = Args::default();
        next.bytes.extend_from_slice(&self.bytes[last_at..]);
        next.count = 1;
        self.bytes.truncate(last_at);
        self.count -= 1;
        next
    }

    /// Drops the first `n` arguments.
    pub(crate) fn drop_front(&mut self, n: u32) -> Result<()> {
        let mut rest = &self.bytes[TASK_HEADER..];
        for _ in 0..n {
            skip_item(&mut rest, false)?;
        }
        let at = self.bytes.len() - rest.len();
        self.bytes.drain(TASK_HEADER..at);
        self.count -= n;
        Ok(())
    }

    /// The whole task record, its header filled in for task `id` of `entry`.
    pub(crate) fn record(&mut self, id: u64, entry: Entry) -> &[u8] {
        let mut header = Vec::with_capacity(TASK_HEADER);
        header.push(TASK_TAG);
        id.encode(&mut header);
        entry.encode(&mut header);
        self.count.encode(&mut header);
        self.bytes[..TASK_HEADER].copy_from_slice(&header);
        &self.bytes
    }
}

/// A result record's header.
pub(crate) struct ResultHeader {
    pub(crate) id: u64,
    pub(crate) first: u32,
    pub(crate) count: u32,
}

/// Reads a result record's header; the outcomes follow at [`RESULT_HEADER`].
pub(crate) fn result_header(record: &[u8]) -> Result<ResultHeader> {
    let mut input = record;
    let input = &mut input;
    Ok(ResultHeader {
        id: u64::decode(input)?,
        first: u32::decode(input)?,
        count: u32::decode(input)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_drop_their_front_and_become_records() {
        let mut args = Args::default();
        for i in 0..5u32 {
            args.push(&i).unwrap();
        }
        args.drop_front(2).unwrap();
        assert_eq!(args.count, 3);
        // Items are a 4-byte length and a 4-byte u32: the third starts 16
        // bytes after the header.
        let mut tail = args.pop_last(TASK_HEADER + 16);
        assert_eq!((args.count, tail.count), (2, 1));
        let record = tail.record(9, Entry::default()).to_vec();
        let mut input = &record[..];
        assert_eq!(u8::decode(&mut input).unwrap(), TASK_TAG);
        assert_eq!(u64::decode(&mut input).unwrap(), 9);
        assert_eq!(Entry::decode(&mut input).unwrap(), Entry::default());
        assert_eq!(u32::decode(&mut input).unwrap(), 1);
        assert_eq!(u32::decode(&mut input).unwrap(), 4);
        assert_eq!(u32::decode(&mut input).unwrap(), 4, "the fifth argument");
        tail.drop_front(1).unwrap();
        assert_eq!(tail.bytes.len(), TASK_HEADER);
    }
}
