//! A create with arguments out of range fails with `InvalidArgument` before
//! it makes a file: no half-made segment is left in `/dev/shm`, and the name
//! stays free for the next create.

mod common;

use std::path::Path;

use common::ShmName;
use shmprim::{ByteQueue, DuplexRing, Error, Pipe, Queue, SpscByteRing, SpscRing};

#[track_caller]
fn refused_without_a_file<T: std::fmt::Debug>(name: &ShmName, r: shmprim::Result<T>) {
    assert!(
        matches!(r, Err(Error::InvalidArgument { .. })),
        "expected InvalidArgument, got {r:?}"
    );
    assert!(
        !Path::new(&name.path()).exists(),
        "a failed create left {} behind",
        name.path()
    );
}

#[test]
fn huge_capacities_are_refused_and_leave_no_file() {
    let name = ShmName::new("create_huge");
    refused_without_a_file(&name, Pipe::create(&name, usize::MAX, 8));
    refused_without_a_file(&name, Pipe::create(&name, usize::MAX / 2 + 2, 8));
    refused_without_a_file(&name, SpscByteRing::create(&name, usize::MAX, 8));
    refused_without_a_file(&name, SpscByteRing::create(&name, 64, usize::MAX));
    refused_without_a_file(&name, SpscRing::<u64>::create(&name, usize::MAX));
    refused_without_a_file(&name, DuplexRing::<u64>::create(&name, usize::MAX));
    refused_without_a_file(&name, Queue::<u64>::create(&name, usize::MAX));
    refused_without_a_file(&name, ByteQueue::create(&name, 4, usize::MAX));
    // The name is free: a create with sane arguments takes it.
    let pipe = Pipe::create(&name, 4096, 8).unwrap();
    drop(pipe);
}
