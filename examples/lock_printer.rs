//! Processes that print one at a time under a shared Lock.
//!
//! ```python
//! def printer(item, lock):
//!     lock.acquire()
//!     try:
//!         print(item)
//!     finally:
//!         lock.release()
//!
//! lock = Lock()
//! for item in ['chinese', 'english', 'spanish', 'japanese']:
//!     Process(target=printer, args=(item, lock)).start()
//! ```

use shmprim::Mutex;
use shmprim::process::Process;

fn printer((item, lock): (String, String)) {
    let lock = Mutex::<()>::open(&lock).unwrap();
    let _held = lock.lock().unwrap_or_else(|e| panic!("{e:?}"));
    println!("{item}");
}

fn main() -> shmprim::Result<()> {
    shmprim::process::init();
    let name = format!("example-lock-{}", std::process::id());
    let _lock = Mutex::create(&name, ())?;
    let children: Vec<_> = ["chinese", "english", "spanish", "japanese"]
        .into_iter()
        .map(|item| Process::spawn(printer, (item.to_string(), name.clone())))
        .collect::<shmprim::Result<_>>()?;
    for child in children {
        child.join()?;
    }
    Mutex::<()>::unlink(&name)
}
