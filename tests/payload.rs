//! Payloads: the identity a plain-data type is known by in a segment header,
//! and messages of any type and length on queues and pipes.

mod common;

use common::ShmName;
use shmprim::{Error, Queue, stable_type_name};

shmprim::test_harness!();

mod first {
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Sample {
        pub id: u32,
        pub value: f32,
    }
}

mod second {
    /// The same definition as `first::Sample`, in another module.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Sample {
        pub id: u32,
        pub value: f32,
    }
}

mod third {
    /// A `Sample` of another size.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Sample {
        pub id: u64,
        pub value: f32,
        pub pad: u32,
    }
}

#[test]
fn a_type_name_leaves_out_every_module_path() {
    assert_eq!(stable_type_name::<first::Sample>(), "Sample");
    assert_eq!(stable_type_name::<u64>(), "u64");
    assert_eq!(
        stable_type_name::<Option<first::Sample>>(),
        "Option<Sample>"
    );
    assert_eq!(stable_type_name::<[second::Sample; 4]>(), "[Sample; 4]");
}

#[test]
fn the_same_struct_defined_in_two_modules_opens_and_another_size_is_refused() {
    let name = ShmName::new("identity");
    let q = Queue::<first::Sample>::create(&name, 4).unwrap();
    q.put(first::Sample { id: 7, value: 1.5 }).unwrap();
    let other = Queue::<second::Sample>::open(&name).unwrap();
    assert_eq!(other.get().unwrap(), second::Sample { id: 7, value: 1.5 });
    match Queue::<third::Sample>::open(&name) {
        Err(e @ Error::Incompatible { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("8 bytes") && text.contains("16 bytes"),
                "{text}"
            );
            assert!(text.matches("Sample").count() == 2, "{text}");
        }
        other => panic!("a 16-byte Sample opened an 8-byte queue: {other:?}"),
    }
    // A type of the same size but another name is another type.
    assert!(matches!(
        Queue::<u64>::open(&name),
        Err(Error::Incompatible { .. })
    ));
    drop((q, other));
    Queue::<first::Sample>::unlink(&name).unwrap();
}

// ------------------------------------------------- any type, any length

use shmprim::process::Builder;
use shmprim::{ObjectQueue, Options, Pipe, Role};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// Message lengths from one byte to 16 MiB, around the slot size (256) and
/// the pipe's largest message.
const SIZES: [usize; 8] = [1, 200, 246, 247, 300, 70_000, 1 << 20, 16 << 20];

fn text(len: usize, seed: usize) -> String {
    (0..len)
        .map(|i| char::from(b'a' + ((i * 7 + seed) % 26) as u8))
        .collect()
}

/// A child that echoes `(label, text)` tuples from one object queue to
/// another until the stream ends.
fn tuple_echo((requests, replies): (String, String)) {
    let rx = ObjectQueue::<(u32, String)>::open_with_options(
        &requests,
        &Options::default().role(Role::Receive),
    )
    .unwrap();
    let tx = ObjectQueue::<(u32, String)>::open_with_options(
        &replies,
        &Options::default().role(Role::Send),
    )
    .unwrap();
    while let Ok(v) = rx.get_timeout(LIMIT) {
        tx.put(&v).unwrap();
    }
}

#[test]
fn object_queue_messages_of_one_byte_to_16_mib_cross_processes_whole() {
    let (req, rep) = (ShmName::new("objq-req"), ShmName::new("objq-rep"));
    let requests = ObjectQueue::<(u32, String)>::create(&req, 4, 256).unwrap();
    let replies = ObjectQueue::<(u32, String)>::create_with_options(
        &rep,
        4,
        256,
        &Options::default().role(Role::Receive),
    )
    .unwrap();
    let mut child = Builder::new()
        .daemon(true)
        .spawn(tuple_echo, (req.to_string(), rep.to_string()))
        .unwrap();
    let sent: Vec<(u32, String)> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| (i as u32, text(n, i)))
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            for v in &sent {
                requests.put_timeout(v, LIMIT).unwrap();
            }
            requests.close();
        });
        for want in &sent {
            let got = replies.get_timeout(LIMIT).unwrap();
            assert!(got == *want, "message {} came back altered", want.0);
        }
    });
    assert!(matches!(
        replies.get_timeout(LIMIT),
        Err(shmprim::Error::Closed { .. })
    ));
    assert_eq!(child.join_timeout(LIMIT).unwrap(), Some(0));
    drop((requests, replies));
    ObjectQueue::<(u32, String)>::unlink(&req).unwrap();
    ObjectQueue::<(u32, String)>::unlink(&rep).unwrap();
    // Every message stored out of line was removed by its consumer.
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(req.as_str()) || n.starts_with(rep.as_str()))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn an_object_queue_refuses_slots_too_small_for_a_reference() {
    assert!(matches!(
        ObjectQueue::<String>::anonymous(4, 64),
        Err(shmprim::Error::InvalidArgument { .. })
    ));
}

#[test]
fn an_immediate_shutdown_removes_the_discarded_out_of_line_messages() {
    let name = ShmName::new("objq-shut");
    let q = ObjectQueue::<String>::create(&name, 4, 256).unwrap();
    q.put(&text(10_000, 1)).unwrap();
    q.put(&text(20_000, 2)).unwrap();
    let spilled = || {
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(name.as_str()) && n != name.as_str()
            })
            .count()
    };
    assert_eq!(spilled(), 2);
    q.shutdown(true);
    assert_eq!(spilled(), 0);
    assert!(matches!(q.get(), Err(shmprim::Error::Closed { .. })));
    drop(q);
    ObjectQueue::<String>::unlink(&name).unwrap();
}

/// A child that sends `count` messages of `len` bytes on end B of a pipe.
fn pipe_sender((pipe, len, count): (String, u64, u64)) {
    let mut b = Pipe::open(&pipe).unwrap().end_b().unwrap();
    for i in 0..count {
        b.send_object(&text(len as usize, i as usize)).unwrap();
    }
}

#[test]
fn pipe_objects_of_one_byte_to_16_mib_arrive_whole() {
    let name = ShmName::new("pipe-msg");
    let pipe = Pipe::create(&name, 1 << 16, 4096).unwrap();
    let mut a = pipe.end_a().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut b = Pipe::open(&name).unwrap().end_b().unwrap();
            for (i, &n) in SIZES.iter().enumerate() {
                b.send_object(&(i as u8, text(n, i))).unwrap();
            }
        });
        for (i, &n) in SIZES.iter().enumerate() {
            let (k, s): (u8, String) = a.recv_object_timeout(LIMIT).unwrap();
            assert_eq!(k as usize, i);
            assert!(
                s == text(n, i),
                "message {i} of {n} bytes came back altered"
            );
        }
    });
    assert!(matches!(
        a.recv_object_timeout::<String>(LIMIT),
        Err(shmprim::Error::Closed { .. })
    ));
    drop((a, pipe));
    Pipe::unlink(&name).unwrap();
}

/// A sender SIGKILLed in the middle of 4 MiB messages: the receiver gets the
/// messages it finished, whole, and then `Closed`, never a piece of one.
#[test]
fn a_pipe_sender_killed_mid_message_leaves_no_half_message() {
    const LEN: u64 = 4 << 20;
    let name = ShmName::new("pipe-kill");
    let pipe = Pipe::create(&name, 1 << 16, 4096).unwrap();
    let mut a = pipe.end_a().unwrap();
    let mut child = Builder::new()
        .daemon(true)
        .spawn(pipe_sender, (name.to_string(), LEN, 1000))
        .unwrap();
    let first: String = a.recv_object_timeout(LIMIT).unwrap();
    assert_eq!(first, text(LEN as usize, 0));
    // Let it get part way into the next message, then kill it.
    while a.next_len().is_err() {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    assert_eq!(child.join_timeout(LIMIT).unwrap(), Some(-9));
    let mut whole = 0;
    loop {
        match a.recv_object_timeout::<String>(LIMIT) {
            Ok(s) => {
                assert_eq!(s.len(), LEN as usize, "a partial message was delivered");
                whole += 1;
            }
            Err(shmprim::Error::Closed { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(whole < 1000);
    drop((a, pipe));
    Pipe::unlink(&name).unwrap();
}

/// The peer in another binary (`examples/object_echo.rs`, a second crate
/// target): a `String` queue and a serde struct queue, messages of one byte to
/// 16 MiB, each sent back whole.
#[cfg(feature = "serde")]
#[test]
fn strings_and_serde_structs_round_trip_through_a_peer_binary() {
    use serde::{Deserialize, Serialize};
    use shmprim::process::Serde;

    /// The same definition as the peer's.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Reading {
        sensor: String,
        values: Vec<f64>,
        ok: bool,
    }

    let exe = std::env::current_exe().unwrap();
    let peer = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/object_echo");
    assert!(peer.exists(), "{} was not built", peer.display());
    let (req, rep) = (ShmName::new("xbin-req"), ShmName::new("xbin-rep"));
    // The peer derives its second pair of names from the first.
    let (req_r, rep_r) = (ShmName::new("xbin-req-r"), ShmName::new("xbin-rep-r"));
    let receive = Options::default().role(Role::Receive);
    let strings_out = ObjectQueue::<String>::create(&req, 4, 256).unwrap();
    let readings_out = ObjectQueue::<Serde<Reading>>::create(&req_r, 4, 256).unwrap();
    let strings_in = ObjectQueue::<String>::create_with_options(&rep, 4, 256, &receive).unwrap();
    let readings_in =
        ObjectQueue::<Serde<Reading>>::create_with_options(&rep_r, 4, 256, &receive).unwrap();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reap(
        std::process::Command::new(&peer)
            .args([req.as_str(), rep.as_str()])
            .spawn()
            .unwrap(),
    );
    let readings: Vec<Reading> = SIZES
        .iter()
        .map(|&n| Reading {
            sensor: text(n.min(1 << 20), n),
            values: (0..n / 64).map(|i| i as f64).collect(),
            ok: n % 2 == 0,
        })
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            for (i, &n) in SIZES.iter().enumerate() {
                strings_out.put_timeout(&text(n, i), LIMIT).unwrap();
            }
            strings_out.close();
            for r in &readings {
                readings_out.put_timeout(&Serde(r.clone()), LIMIT).unwrap();
            }
            readings_out.close();
        });
        for (i, &n) in SIZES.iter().enumerate() {
            let got = strings_in.get_timeout(LIMIT).unwrap();
            assert!(
                got == text(n, i),
                "string {i} of {n} bytes came back altered"
            );
        }
        assert!(matches!(
            strings_in.get_timeout(LIMIT),
            Err(shmprim::Error::Closed { .. })
        ));
        for r in &readings {
            let Serde(got) = readings_in.get_timeout(LIMIT).unwrap();
            let doubled: Vec<f64> = r.values.iter().map(|v| v * 2.0).collect();
            assert_eq!(
                (&got.sensor, &got.values, got.ok),
                (&r.sensor, &doubled, r.ok)
            );
        }
        assert!(matches!(
            readings_in.get_timeout(LIMIT),
            Err(shmprim::Error::Closed { .. })
        ));
    });
    assert!(child.0.wait().unwrap().success());
    drop((strings_out, readings_out, strings_in, readings_in));
    for n in [
        req.to_string(),
        req_r.to_string(),
        rep.to_string(),
        rep_r.to_string(),
    ] {
        ObjectQueue::<String>::unlink(&n).unwrap();
    }
}

/// A child that puts one message too long for a slot, and exits.
fn put_one_long(queue: String) {
    let q = ObjectQueue::<String>::open(&queue).unwrap();
    q.put(&text(50_000, 3)).unwrap();
}

/// A message stored out of line outlives its sender while its queue exists
/// (`gc` leaves it), and is collected once the queue is gone.
#[test]
fn gc_keeps_a_queued_message_whose_sender_exited_until_its_queue_is_gone() {
    let name = ShmName::new("objq-gc");
    let q = ObjectQueue::<String>::create(&name, 4, 256).unwrap();
    let child = Builder::new()
        .spawn(put_one_long, name.to_string())
        .unwrap();
    child.join().unwrap();
    let removed = shmprim::inspect::gc_prefixed(false, &name).unwrap();
    assert!(
        removed.is_empty(),
        "gc removed {:?}",
        removed.iter().map(|i| &i.name).collect::<Vec<_>>()
    );
    assert_eq!(q.get().unwrap(), text(50_000, 3));
    // Now one left behind, as by a consumer that died before reading it.
    let child = Builder::new()
        .spawn(put_one_long, name.to_string())
        .unwrap();
    child.join().unwrap();
    drop(q);
    ObjectQueue::<String>::unlink(&name).unwrap();
    let removed = shmprim::inspect::gc_prefixed(false, &name).unwrap();
    assert_eq!(removed.len(), 1, "the orphaned message was not collected");
    assert!(removed[0].name.starts_with(&format!("{}.m", name.as_str())));
}
