//! The Rust end of a queue a Python process feeds: takes `COUNT` messages of
//! raw bytes (each a little-endian `u64`, put by Python's
//! `shmprim.Queue.put_bytes`) from the queue named `NAME` and prints their
//! sum. `python/tests/test_interop.py` runs it.
//!
//! ```sh
//! cargo run --example queue_from_python -- NAME COUNT
//! ```

use std::time::Duration;

use shmprim::queue::ObjectQueue;
use shmprim::{Deadline, Error};

fn main() -> shmprim::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, name, count] = &args[..] else {
        eprintln!("usage: queue_from_python NAME COUNT");
        std::process::exit(2);
    };
    let count: u64 = count
        .parse()
        .map_err(|_| Error::invalid_argument("COUNT is not a number"))?;
    // The payload type is not used: the messages are read as raw bytes.
    let q = ObjectQueue::<Vec<u8>>::open(name)?;
    let mut sum = 0u64;
    for _ in 0..count {
        let msg = q.get_message(Deadline::after(Duration::from_secs(30)))?;
        let word: [u8; 8] = msg
            .as_slice()
            .try_into()
            .map_err(|_| Error::invalid_argument("a message is not 8 bytes"))?;
        sum += u64::from_le_bytes(word);
    }
    println!("{sum}");
    Ok(())
}
