//! Two processes talking through one named segment: the parent creates it and
//! spawns the child (`Process::spawn`); they pass a counter back and forth,
//! each waiting (spin, then futex sleep) for the other's turn.
//!
//! ```text
//! cargo run --release --example pingpong [ROUNDS]
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmprim::process::Process;
use shmprim::wait::{wait_while_eq, wake};
use shmprim::{Deadline, Segment};

/// Word 0: the ball (odd: child's turn, even: parent's turn). Word 1: sleepers.
fn words(seg: &Segment) -> (&AtomicU32, &AtomicU32) {
    assert!(seg.len() >= 8);
    // SAFETY: the data area is page aligned and at least 8 bytes, and both words
    // are only ever accessed atomically, by both processes.
    unsafe {
        let p = seg.as_ptr().cast::<AtomicU32>();
        (&*p, &*p.add(1))
    }
}

/// Waits for our turn (`ball == mine`) then hits the ball back (`mine + 1`).
fn play(seg: &Segment, rounds: u32, first: u32) -> shmprim::Result<()> {
    let (ball, sleepers) = words(seg);
    let deadline = || Deadline::after(Duration::from_secs(10));
    for i in 0..rounds {
        let mine = first + 2 * i;
        while ball.load(Ordering::Acquire) != mine {
            let seen = ball.load(Ordering::Acquire);
            if seen != mine {
                wait_while_eq(ball, sleepers, seen, deadline())
                    .map_err(|_| shmprim::Error::timeout(seg.object_name()))?;
            }
        }
        ball.store(mine + 1, Ordering::Release);
        wake(ball, sleepers, 1);
    }
    Ok(())
}

/// The child: opens the segment and plays the odd turns.
fn child((name, rounds): (String, u32)) {
    let seg = Segment::open(&name).expect("the parent's segment");
    play(&seg, rounds, 1).expect("the parent kept playing");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmprim::process::init();
    let rounds: u32 = std::env::args().nth(1).map_or(Ok(100_000), |a| a.parse())?;
    let name = format!("shmprim-pingpong-{}", std::process::id());
    let seg = shmprim::SegmentBuilder::new(shmprim::Kind::Raw)
        .data_size(64)
        .unlink_on_drop(true)
        .create(&name)?;
    let mut peer = Process::spawn(child, (name, rounds))?;
    let pid = peer.pid();
    let start = Instant::now();
    let result = play(&seg, rounds, 0);
    let elapsed = start.elapsed();
    if result.is_err() {
        peer.kill()?;
    }
    let joined = peer.join();
    result?;
    joined?;
    let live = seg.participants()?.iter().filter(|p| p.alive).count();
    println!(
        "{rounds} round trips between pid {} and pid {pid} in {:.3} s: {:.2} us per round trip ({} live participants at the end)",
        std::process::id(),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / rounds as f64,
        live,
    );
    Ok(())
}
