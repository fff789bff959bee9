//! Messages of any length, and of any [`Payload`] type, over a pipe end: split
//! into frames that fit the ring and reassembled by the receiver.
//!
//! Every ring message of this form starts with a frame byte:
//!
//! | frame       | rest                                   |
//! |-------------|----------------------------------------|
//! | `WHOLE` (0) | the whole message                      |
//! | `FIRST` (1) | the total length (`u64` LE), then data |
//! | `MORE` (2)  | the next data of the message           |
//!
//! A pipe has one sender per direction, so a message's frames arrive in order
//! with nothing in between. The receiver hands a message out only once it
//! has all of it: a sender that dies half way leaves no half message
//! visible, only `Closed` after the messages it finished. A receive that
//! times out half way keeps what it has in the end, and the next receive goes
//! on from there; a send waits for its first frame until its deadline, and
//! then for the rest as long as the peer lives (a message is never left half
//! sent by a timeout).
//!
//! Both ends must use this form (`send_message` / `recv_message`, or the
//! typed `send_object` / `recv_object`): a frame byte is not a plain
//! message's first byte.

use super::PipeEnd;
use crate::error::{Error, Result};
use crate::wait::{Deadline, is_timeout, try_first};
use std::time::Duration;

const WHOLE: u8 = 0;
const FIRST: u8 = 1;
const MORE: u8 = 2;
/// Bytes before the data of a `FIRST` frame.
const FIRST_HEADER: usize = 9;

/// A message being received: its announced length and what has arrived.
#[derive(Debug)]
pub(super) struct Partial {
    total: usize,
    data: Vec<u8>,
}

impl PipeEnd {
    fn check_framing(&self) -> Result<usize> {
        let max = self.shared_max_message();
        if max <= FIRST_HEADER {
            return Err(Error::invalid_argument(format!(
                "messages of any length need a pipe whose max_message is over \
                 {FIRST_HEADER} bytes, not {max}"
            )));
        }
        Ok(max)
    }

    /// Sends `msg`, of any length, waiting until `deadline` for room for its
    /// first frame (see the framing in this module's doc); the peer receives
    /// it whole with [`recv_message`](Self::recv_message).
    pub fn send_message_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        let max = self.check_framing()?;
        let mut frame = Vec::with_capacity(max.min(msg.len() + FIRST_HEADER));
        if msg.len() < max {
            frame.push(WHOLE);
            frame.extend_from_slice(msg);
            return self.send_deadline(&frame, deadline);
        }
        frame.push(FIRST);
        frame.extend_from_slice(&(msg.len() as u64).to_le_bytes());
        let first = max - FIRST_HEADER;
        frame.extend_from_slice(&msg[..first]);
        self.send_deadline(&frame, deadline)?;
        for chunk in msg[first..].chunks(max - 1) {
            frame.clear();
            frame.push(MORE);
            frame.extend_from_slice(chunk);
            // The message is under way: the rest goes whatever the deadline.
            self.send_deadline(&frame, Deadline::never())?;
        }
        Ok(())
    }

    /// [`send_message_deadline`](Self::send_message_deadline) waiting as long
    /// as it takes.
    pub fn send_message(&mut self, msg: &[u8]) -> Result<()> {
        self.send_message_deadline(msg, Deadline::never())
    }

    /// Receives one message sent by `send_message`, of any length, waiting
    /// until `deadline`. `Closed` once the peer is gone and every message it
    /// finished sending was received; `Corrupted` for frames out of order.
    pub fn recv_message_deadline(&mut self, deadline: Deadline) -> Result<Vec<u8>> {
        self.check_framing()?;
        loop {
            let frame = self.recv_deadline(deadline)?;
            let (&kind, rest) = frame
                .split_first()
                .ok_or_else(|| self.bad_frame("an empty frame"))?;
            match (kind, self.partial.as_mut()) {
                (WHOLE, None) => return Ok(rest.to_vec()),
                (FIRST, None) => {
                    let (len, data) = rest
                        .split_first_chunk::<8>()
                        .ok_or_else(|| self.bad_frame("a first frame without its length"))?;
                    let total = usize::try_from(u64::from_le_bytes(*len))
                        .map_err(|_| self.bad_frame("a length beyond usize"))?;
                    if data.len() > total {
                        return Err(self.bad_frame("a first frame longer than its message"));
                    }
                    // Grown as frames arrive: the announced length is not
                    // trusted with an allocation of its own.
                    let mut buf = Vec::with_capacity(data.len().max(1) * 2);
                    buf.extend_from_slice(data);
                    self.partial = Some(Partial { total, data: buf });
                }
                (MORE, Some(p)) => {
                    if p.data.len() + rest.len() > p.total {
                        self.partial = None;
                        return Err(self.bad_frame("more data than the message announced"));
                    }
                    p.data.extend_from_slice(rest);
                }
                (kind, _) => {
                    self.partial = None;
                    return Err(self.bad_frame(&format!("frame {kind} out of place")));
                }
            }
            if self
                .partial
                .as_ref()
                .is_some_and(|p| p.data.len() == p.total)
            {
                return Ok(self.partial.take().map(|p| p.data).unwrap_or_default());
            }
        }
    }

    /// [`recv_message_deadline`](Self::recv_message_deadline) waiting as long
    /// as it takes.
    pub fn recv_message(&mut self) -> Result<Vec<u8>> {
        self.recv_message_deadline(Deadline::never())
    }

    /// [`recv_message_deadline`](Self::recv_message_deadline) waiting at most
    /// `timeout` (`Timeout`).
    pub fn recv_message_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        try_first(timeout, |d| self.recv_message_deadline(d), is_timeout)
    }

    fn bad_frame(&self, what: &str) -> Error {
        Error::corrupted(
            self.shared.backing.display_name(),
            format!("message framing: {what}"),
        )
    }

    fn shared_max_message(&self) -> usize {
        super::byte_capacity_of(&self.shared.to_a).1
    }
}

#[cfg(not(shmprim_loom))]
use crate::process::{Payload, from_bytes};

#[cfg(not(shmprim_loom))]
impl PipeEnd {
    /// Sends one value of any [`Payload`] type (Python's `Connection.send`),
    /// of any encoded length; the peer takes it with
    /// [`recv_object`](Self::recv_object).
    pub fn send_object<T: Payload>(&mut self, value: &T) -> Result<()> {
        let mut bytes = Vec::new();
        value.encode(&mut bytes);
        self.send_message(&bytes)
    }

    /// Receives one value sent by [`send_object`](Self::send_object)
    /// (Python's `Connection.recv`); `Corrupted` if it does not decode as `T`.
    pub fn recv_object<T: Payload>(&mut self) -> Result<T> {
        from_bytes(&self.recv_message()?)
    }

    /// [`recv_object`](Self::recv_object) waiting at most `timeout`.
    pub fn recv_object_timeout<T: Payload>(&mut self, timeout: Duration) -> Result<T> {
        from_bytes(&self.recv_message_timeout(timeout)?)
    }
}
