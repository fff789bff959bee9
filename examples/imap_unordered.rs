//! `Pool.imap_unordered`: results as soon as each is ready.
//!
//! ```python
//! def slow_square(x):
//!     time.sleep(0.01 * (x % 4))
//!     return x, x * x
//!
//! with Pool(4) as p:
//!     for x, y in p.imap_unordered(slow_square, range(12)):
//!         print(x, y)
//! ```

use std::time::Duration;

use shmprim::Pool;

fn slow_square(x: u64) -> (u64, u64) {
    std::thread::sleep(Duration::from_millis(10 * (x % 4)));
    (x, x * x)
}

fn main() -> shmprim::Result<()> {
    shmprim::process::init();
    let p = Pool::new(4)?;
    for r in p.imap_unordered(slow_square, 0..12, 1)? {
        let (x, y) = r?;
        println!("{x} {y}");
    }
    Ok(())
}
