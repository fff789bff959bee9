//! A program that never called `process::init` cannot spawn, and is told
//! what to add to `main`.

use shmprim::{Error, Pool, Process};

fn double(x: u32) -> u32 {
    x * 2
}

#[test]
fn spawn_without_init_says_what_to_add() {
    match Process::spawn(double, 1) {
        Err(e @ Error::NotInitialised) => {
            let msg = e.to_string();
            assert!(msg.contains("shmprim::process::init()"), "{msg}");
            assert!(msg.contains("test_harness!"), "{msg}");
        }
        Err(e) => panic!("expected NotInitialised, got {e}"),
        Ok(_) => panic!("spawned without init"),
    }
    assert!(matches!(Pool::new(2), Err(Error::NotInitialised)));
}
