//! `Pool.apply_async` with a callback, then `close()` and `join()`.
//!
//! ```python
//! def run_task(name):
//!     print('Task %s (pid = %s) is running...' % (name, os.getpid()))
//!     time.sleep(random.random() * 3)
//!     return name
//!
//! if __name__ == '__main__':
//!     p = Pool(processes=3)
//!     for i in range(5):
//!         p.apply_async(run_task, args=(i,), callback=lambda n: print('Task %s end.' % n))
//!     p.close()
//!     p.join()
//! ```

use std::time::Duration;

use shmprim::Pool;

fn run_task(name: u32) -> u32 {
    println!("Task {name} (pid = {}) is running...", std::process::id());
    std::thread::sleep(Duration::from_millis(100 * (name as u64 % 3)));
    name
}

fn main() -> shmprim::Result<()> {
    shmprim::process::init();
    println!("current process {}.", std::process::id());
    let p = Pool::new(3)?;
    for i in 0..5 {
        p.apply_async_with(
            run_task,
            i,
            |n| println!("Task {n} end."),
            |e| eprintln!("task failed: {e}"),
        )?;
    }
    println!("Waiting for all subprocesses done...");
    p.close();
    p.join()?;
    println!("All subprocesses done.");
    Ok(())
}
