//! A sender and a receiver at the two ends of a Pipe; the receiver sees the
//! end of the stream when the sender's end closes (Python's `EOFError`).
//!
//! ```python
//! def process_send(pipe, urls):
//!     for url in urls:
//!         print('Process (%s) send: %s' % (os.getpid(), url))
//!         pipe.send(url)
//!
//! def process_recv(pipe):
//!     while True:
//!         print('Process (%s) recv: %s' % (os.getpid(), pipe.recv()))
//!
//! pipe = multiprocessing.Pipe()
//! p1 = Process(target=process_send, args=(pipe[0], ['url' + str(i) for i in range(10)]))
//! p2 = Process(target=process_recv, args=(pipe[1],))
//! p1.start(); p2.start()
//! p1.join()
//! p2.terminate()
//! ```

use shmprim::process::Process;
use shmprim::{Error, Pipe};

fn process_send((pipe, urls): (String, Vec<String>)) {
    let mut end = Pipe::open(&pipe).unwrap().end_a().unwrap();
    for url in urls {
        println!("Process ({}) send: {url}", std::process::id());
        end.send(url.as_bytes()).unwrap();
    }
}

fn process_recv(pipe: String) -> u32 {
    let mut end = Pipe::open(&pipe).unwrap().end_b().unwrap();
    let mut n = 0;
    loop {
        match end.recv() {
            Ok(url) => {
                n += 1;
                println!(
                    "Process ({}) recv: {}",
                    std::process::id(),
                    String::from_utf8_lossy(&url)
                );
            }
            Err(Error::Closed { .. }) => return n,
            Err(e) => panic!("{e}"),
        }
    }
}

fn main() -> shmprim::Result<()> {
    shmprim::process::init();
    let name = format!("example-pipe-{}", std::process::id());
    let _pipe = Pipe::create(&name, 4096, 256)?;
    let urls = (0..10).map(|i| format!("url{i}")).collect();
    let p2 = Process::spawn(process_recv, name.clone())?;
    let p1 = Process::spawn(process_send, (name.clone(), urls))?;
    p1.join()?;
    let received = p2.join()?;
    println!("{received} messages received");
    Pipe::unlink(&name)
}
