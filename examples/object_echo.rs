//! The peer of a program in another binary: it takes strings and serde
//! structs from two object queues and sends each back on a reply queue, until
//! the sender closes (the end of the stream). Built with `--features serde`;
//! `tests/payload.rs` runs it.
//!
//! ```sh
//! cargo run --features serde --example object_echo -- REQUESTS REPLIES
//! ```

use serde::{Deserialize, Serialize};
use shmprim::process::Serde;
use shmprim::{Error, ObjectQueue, Options, Role};

/// The struct both binaries define alike.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Reading {
    sensor: String,
    values: Vec<f64>,
    ok: bool,
}

fn main() -> shmprim::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, requests, replies] = &args[..] else {
        eprintln!("usage: object_echo REQUESTS REPLIES");
        std::process::exit(2);
    };
    let receive = Options::default().role(Role::Receive);
    let send = Options::default().role(Role::Send);
    let strings_in = ObjectQueue::<String>::open_with_options(requests, &receive)?;
    let strings_out = ObjectQueue::<String>::open_with_options(replies, &send)?;
    let readings_in =
        ObjectQueue::<Serde<Reading>>::open_with_options(&format!("{requests}-r"), &receive)?;
    let readings_out =
        ObjectQueue::<Serde<Reading>>::open_with_options(&format!("{replies}-r"), &send)?;
    loop {
        match strings_in.get() {
            Ok(s) => strings_out.put(&s)?,
            Err(Error::Closed { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    strings_out.close();
    loop {
        match readings_in.get() {
            Ok(Serde(mut r)) => {
                r.values.iter_mut().for_each(|v| *v *= 2.0);
                readings_out.put(&Serde(r))?;
            }
            Err(Error::Closed { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    // Dropping the sending handles ends the replies' stream.
    Ok(())
}
