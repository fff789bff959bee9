//! How a function run in another process ended, as one item: a tag, a `u32`
//! length and the body (the encoded value, or the error). A child process's
//! result record holds one; a pool's result records hold one per task item.

use crate::error::{Error, Result};
use crate::process::payload::{Payload, malformed, take};

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
        Error::Timeout { .. } => message(out, TIMED_OUT, ""),
        Error::Closed { .. } => message(out, CLOSED, ""),
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
        TIMED_OUT => Err(crate::process::pool::timed_out()),
        CLOSED => Err(crate::process::pool::closed()),
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

/// Runs `f`, catching a panic; the panic's message when it has one.
pub(crate) fn catch<T>(f: impl FnOnce() -> Result<T>) -> std::result::Result<Result<T>, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a payload that is not a string".to_owned()
        }
    })
}

/// Runs `f`, which encodes its value into the buffer it is given, and
/// appends its outcome to `out`: the value, or why it failed or panicked.
/// Whether it returned.
pub(crate) fn run(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> bool {
    let mark = out.len();
    let mut ran = Ok(());
    let caught = catch(|| {
        returned(out, |out| ran = f(out));
        Ok(())
    });
    match (caught, ran) {
        (Ok(_), Ok(())) => return true,
        (Ok(_), Err(e)) => {
            out.truncate(mark);
            failed(out, &e.to_string());
        }
        (Err(message), _) => {
            out.truncate(mark);
            panicked(out, &message);
        }
    }
    false
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
        lost(&mut out, &crate::process::pool::timed_out());
        lost(&mut out, &crate::process::pool::closed());
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
            Err(Error::Timeout { .. })
        ));
        assert!(matches!(
            read_item(&mut input).unwrap(),
            Err(Error::Closed { .. })
        ));
        assert!(input.is_empty());
        for cut in 0..13 {
            let mut short = &out[..cut];
            assert!(read_item(&mut short).is_err() || cut >= 13);
        }
        assert!(read_item(&mut &[9u8, 0, 0, 0, 0][..]).is_err());
    }

    #[test]
    fn run_records_a_value_a_failure_and_a_panic() {
        let mut out = Vec::new();
        assert!(run(&mut out, |o| {
            5u8.encode(o);
            Ok(())
        }));
        assert!(!run(&mut out, |o| {
            9u8.encode(o);
            Err(Error::invalid_argument("no"))
        }));
        assert!(!run(&mut out, |_| panic!("oops")));
        let mut input = &out[..];
        assert_eq!(read_item(&mut input).unwrap().unwrap(), [5]);
        assert!(
            matches!(read_item(&mut input).unwrap(), Err(Error::TaskFailed { detail }) if detail.contains("no"))
        );
        assert!(
            matches!(read_item(&mut input).unwrap(), Err(Error::Panicked { message }) if message == "oops")
        );
        assert!(input.is_empty());
    }
}
