//! Two writer processes and a reader talking through a Queue.
//!
//! ```python
//! def process_write(q, urls):
//!     for url in urls:
//!         q.put(url)
//!         print('Put %s to queue...' % url)
//!
//! def process_read(q):
//!     while True:
//!         print('Get %s from queue...' % q.get(True))
//!
//! q = Queue()
//! w1 = Process(target=process_write, args=(q, ['url1', 'url2', 'url3']))
//! w2 = Process(target=process_write, args=(q, ['url4', 'url5', 'url6']))
//! r = Process(target=process_read, args=(q,))
//! w1.start(); w2.start(); r.start()
//! w1.join(); w2.join()
//! r.terminate()
//! ```

use shmprim::ByteQueue;
use shmprim::process::{Builder, Process};

fn process_write((q, urls): (String, Vec<String>)) {
    let q = ByteQueue::open(&q).unwrap();
    for url in urls {
        q.put(url.as_bytes()).unwrap();
        println!("Put {url} to queue...");
    }
}

fn process_read(q: String) {
    let q = ByteQueue::open(&q).unwrap();
    loop {
        let url = q.get().unwrap();
        println!("Get {} from queue...", String::from_utf8_lossy(&url));
    }
}

fn main() -> shmprim::Result<()> {
    shmprim::process::init();
    let name = format!("example-queue-{}", std::process::id());
    let _q = ByteQueue::create(&name, 16, 64)?;
    let urls = |r: std::ops::RangeInclusive<u32>| r.map(|i| format!("url{i}")).collect();
    let w1 = Process::spawn(process_write, (name.clone(), urls(1..=3)))?;
    let w2 = Process::spawn(process_write, (name.clone(), urls(4..=6)))?;
    let mut r = Builder::new()
        .daemon(true)
        .spawn(process_read, name.clone())?;
    w1.join()?;
    w2.join()?;
    // Let the reader drain the queue, then stop it as Python's terminate().
    std::thread::sleep(std::time::Duration::from_millis(100));
    r.terminate()?;
    ByteQueue::unlink(&name)
}
