//! Two processes talking through one named segment: the parent creates it and
//! re-executes itself as the child; they pass a counter back and forth, each
//! waiting (spin, then futex sleep) for the other's turn.
//!
//! ```text
//! cargo run --release --example pingpong [ROUNDS]
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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
                    .map_err(|_| shmprim::Error::Timeout)?;
            }
        }
        ball.store(mine + 1, Ordering::Release);
        wake(ball, sleepers, 1);
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let Some(name) = std::env::var_os("PINGPONG_CHILD") {
        let seg = Segment::open(name.to_str().ok_or("bad name")?)?;
        let rounds: u32 = args.next().unwrap_or_default().parse()?;
        play(&seg, rounds, 1)?;
        return Ok(());
    }
    let rounds: u32 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let name = format!("shmprim-pingpong-{}", std::process::id());
    let seg = shmprim::SegmentBuilder::new(shmprim::Kind::Raw)
        .data_size(64)
        .unlink_on_drop(true)
        .create(&name)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg(rounds.to_string())
        .env("PINGPONG_CHILD", &name)
        .spawn()?;
    let start = Instant::now();
    let result = play(&seg, rounds, 0);
    let elapsed = start.elapsed();
    if result.is_err() {
        let _ = child.kill();
    }
    let status = child.wait()?;
    result?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }
    let live = seg.participants()?.iter().filter(|p| p.alive).count();
    println!(
        "{rounds} round trips between pid {} and pid {} in {:.3} s: {:.2} us per round trip ({} live participants at the end)",
        std::process::id(),
        child.id(),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / rounds as f64,
        live,
    );
    Ok(())
}
