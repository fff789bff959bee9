//! `Pool(4).map(f, range(10))`: Python's best-known multiprocessing program.
//!
//! ```python
//! from multiprocessing import Pool
//!
//! def f(x):
//!     return x * x
//!
//! if __name__ == '__main__':
//!     with Pool(4) as p:
//!         print(p.map(f, range(10)))
//! ```

use shmprim::Pool;

fn f(x: u64) -> u64 {
    x * x
}

fn main() -> shmprim::Result<()> {
    shmprim::process::init();
    let p = Pool::new(4)?;
    println!("{:?}", p.map(f, 0..10)?);
    Ok(())
}
