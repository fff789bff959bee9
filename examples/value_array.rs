//! A shared counter (Value) and array (Array) updated by child processes.
//!
//! ```python
//! def f(n, a):
//!     with n.get_lock():
//!         n.value += 1
//!     for i in range(len(a)):
//!         a[i] = -a[i]
//!
//! num = Value('d', 0.0)
//! arr = Array('i', range(10))
//! p = Process(target=f, args=(num, arr))
//! p.start(); p.join()
//! print(num.value, arr[:])
//! ```

use shmprim::process::Process;
use shmprim::{Array, Value};

fn f((n, a): (String, String)) {
    let n = Value::<u64>::open(&n).unwrap();
    n.fetch_add(1);
    let a = Array::<i32>::open(&a).unwrap();
    for i in 0..a.len() {
        a.store(i, -a.load(i).unwrap()).unwrap();
    }
}

fn main() -> shmprim::Result<()> {
    shmprim::process::init();
    let (num, arr) = (
        format!("example-value-{}", std::process::id()),
        format!("example-array-{}", std::process::id()),
    );
    let n = Value::create(&num, 0u64)?;
    let a = Array::create_from(&arr, &(0..10).collect::<Vec<i32>>())?;
    Process::spawn(f, (num.clone(), arr.clone()))?.join()?;
    let values: Vec<i32> = (0..a.len())
        .map(|i| a.load(i))
        .collect::<shmprim::Result<_>>()?;
    println!("{} {values:?}", n.load());
    Value::<u64>::unlink(&num)?;
    Array::<i32>::unlink(&arr)
}
