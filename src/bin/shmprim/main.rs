//! `shmprim`: the command-line tool. One file per subcommand in this folder;
//! add a variant to [`Command`] and a `run` function in its file.

use clap::{Parser, Subcommand};

mod bench;

/// Inter-process primitives in named shared memory: inspect, demonstrate and
/// benchmark them.
#[derive(Debug, Parser)]
#[command(name = "shmprim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the cross-process benchmark suite and print one table.
    ///
    /// For each figure: shmprim's value and each reference measured beside it in
    /// the same run (a C ring, rtrb, crossbeam, a raw atomic ping-pong, a bare
    /// futex, pipes, sockets, POSIX message queues, Python's
    /// multiprocessing.Queue, pthread mutexes, condvar queues, raw_sync), the
    /// ratio shmprim / reference, and whether the goal is met. Each value is the
    /// median of several interleaved rounds, shown with its min and max.
    /// Everything it creates in /dev/shm is removed, also on Ctrl-C.
    /// Needs the `bench` feature: `cargo run --release --features bench -- bench`.
    Bench(bench::Args),
}

fn main() {
    // Benchmark children re-execute this binary with a role: play it and exit.
    #[cfg(feature = "bench")]
    shmprim::bench::dispatch_role();

    let cli = Cli::parse();
    let code = match cli.command {
        Command::Bench(args) => bench::run(args),
    };
    std::process::exit(code);
}
