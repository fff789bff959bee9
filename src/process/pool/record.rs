//! What a pool's rings carry, and how results are kept until taken.
//!
//! A **task record** (parent to worker): tag, task id, the function, the
//! item count, then each item's encoded argument behind its `u32` length. A
//! **result record** (worker to parent): task id, index of its first item in
//! the task, item count, then each item's outcome: a tag, a `u32` length and
//! the body (the encoded value, or the error). A chunk whose results do not
//! fit one message comes back in several records.
//!
//! The parent keeps the outcomes as they came, one buffer per record, and
//! decodes an item only when it is taken: no allocation per item.

use crate::error::{Error, Result};
use crate::process::entry::Entry;
use crate::process::payload::{Payload, malformed, take};

pub(crate) const TASK_TAG: u8 = 1;
/// Bytes of a task record before its items: tag, id, function, count.
pub(crate) const TASK_HEADER: usize = 1 + 8 + 16 + 4;
/// Bytes of a result record before its outcomes: id, first item, count.
pub(crate) const RESULT_HEADER: usize = 16;

const RETURNED: u8 = 0;
const PANICKED: u8 = 1;
const FAILED: u8 = 2;
const DIED: u8 = 3;
const TIMED_OUT: u8 = 4;
const CLOSED: u8 = 5;

/// Starts an item (argument or outcome) with tag `tag`; `end_item` fills in
/// its length.
pub(crate) fn begin_item(out: &mut Vec<u8>, tag: Option<u8>) -> usize {
    if let Some(tag) = tag {
        out.push(tag);
    }
    let mark = out.len();
    out.extend_from_slice(&[0; 4]);
    mark
}

/// Ends the item begun at `mark`: its length is what follows the length word.
/// `None` if it is longer than a `u32` says.
pub(crate) fn end_item(out: &mut [u8], mark: usize) -> Option<()> {
    let len = u32::try_from(out.len() - mark - 4).ok()?;
    out[mark..mark + 4].copy_from_slice(&len.to_le_bytes());
    Some(())
}

/// Appends a returned value's outcome, the value encoded by `encode`.
pub(crate) fn returned(out: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) {
    let mark = begin_item(out, Some(RETURNED));
    encode(out);
    if end_item(out, mark).is_none() {
        out.truncate(mark - 1);
        message(out, FAILED, "the result is larger than 4 GiB");
    }
}

fn message(out: &mut Vec<u8>, tag: u8, text: &str) {
    let mark = begin_item(out, Some(tag));
    out.extend_from_slice(text.as_bytes());
    let _ = end_item(out, mark);
}

/// Appends the outcome of an item whose function panicked.
pub(crate) fn panicked(out: &mut Vec<u8>, text: &str) {
    message(out, PANICKED, text);
}

/// Appends the outcome of an item that could not run.
pub(crate) fn failed(out: &mut Vec<u8>, text: &str) {
    message(out, FAILED, text);
}

/// Appends the outcome of an item that did not complete: its worker died,
/// overran the task timeout, or the pool was terminated.
pub(crate) fn lost(out: &mut Vec<u8>, err: &Error) {
    match err {
        Error::WorkerDied { pid, exitcode } => {
            let mark = begin_item(out, Some(DIED));
            pid.encode(out);
            exitcode.encode(out);
            let _ = end_item(out, mark);
        }
        Error::Timeout => message(out, TIMED_OUT, ""),
        Error::Closed => message(out, CLOSED, ""),
        other => message(out, FAILED, &other.to_string()),
    }
}

/// Reads one item outcome from the front of `input`: the encoded value, or
/// the item's error.
pub(crate) fn read_item<'a>(input: &mut &'a [u8]) -> Result<std::result::Result<&'a [u8], Error>> {
    let tag = u8::decode(input)?;
    let len = u32::decode(input)? as usize;
    let mut body = take(input, len)?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(match tag {
        RETURNED => Ok(body),
        PANICKED => Err(Error::Panicked {
            message: text(body),
        }),
        FAILED => Err(Error::TaskFailed { detail: text(body) }),
        DIED => Err(Error::WorkerDied {
            pid: u32::decode(&mut body)?,
            exitcode: i32::decode(&mut body)?,
        }),
        TIMED_OUT => Err(Error::Timeout),
        CLOSED => Err(Error::Closed),
        t => return Err(malformed(format!("item outcome tag {t}"))),
    })
}

/// Skips one item (argument or outcome, `tagged` says which) at the front of
/// `input`.
pub(crate) fn skip_item(input: &mut &[u8], tagged: bool) -> Result<()> {
    if tagged {
        u8::decode(input)?;
    }
    let len = u32::decode(input)? as usize;
    take(input, len)?;
    Ok(())
}

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
    fn outcomes_round_trip_and_truncations_are_refused() {
        let mut out = Vec::new();
        returned(&mut out, |o| 7u64.encode(o));
        panicked(&mut out, "boom");
        failed(&mut out, "bad");
        lost(
            &mut out,
            &Error::WorkerDied {
                pid: 12,
                exitcode: -9,
            },
        );
        lost(&mut out, &Error::Timeout);
        lost(&mut out, &Error::Closed);
        let mut input = &out[..];
        assert_eq!(read_item(&mut input).unwrap().unwrap(), 7u64.to_le_bytes());
        assert!(
            matches!(read_item(&mut input).unwrap(), Err(Error::Panicked { message }) if message == "boom")
        );
        assert!(matches!(
            read_item(&mut input).unwrap(),
            Err(Error::TaskFailed { detail }) if detail == "bad"
        ));
        assert!(matches!(
            read_item(&mut input).unwrap(),
            Err(Error::WorkerDied {
                pid: 12,
                exitcode: -9
            })
        ));
        assert!(matches!(
            read_item(&mut input).unwrap(),
            Err(Error::Timeout)
        ));
        assert!(matches!(read_item(&mut input).unwrap(), Err(Error::Closed)));
        assert!(input.is_empty());
        for cut in 0..13 {
            let mut short = &out[..cut];
            assert!(read_item(&mut short).is_err() || cut >= 13);
        }
        assert!(read_item(&mut &[9u8, 0, 0, 0, 0][..]).is_err());
    }

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
