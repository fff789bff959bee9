//! `shmprim`: the command-line tool. One file per subcommand in this folder;
//! add a variant to [`Command`] and a `run` function in its file.

use clap::{Parser, Subcommand};

mod bench;
mod demo;
mod inspect;

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
    /// Watch processes cooperate through shmprim: the articles' programs in
    /// one run.
    ///
    /// A writer Process puts items into a Queue that a reader Process drains
    /// into a Value, both printing under a Lock; a Barrier separates set-up
    /// from work and an Event stops the reader. Then a Pool runs
    /// imap_unordered over the tasks with a progress bar; midway the worker
    /// running one task is SIGKILLed, and the pool carries on: that task comes
    /// back as WorkerDied, every other is done exactly once, a replacement
    /// starts. Checks all of it and exits non-zero if anything is off. Leaves
    /// nothing in /dev/shm, also on Ctrl-C.
    Demo(demo::Args),
    /// Run the cross-process benchmark suite and print one table.
    ///
    /// For each figure: shmprim's value and each reference measured beside it in
    /// the same run (a C ring, rtrb, crossbeam, a raw atomic ping-pong, a bare
    /// futex, pipes, sockets, POSIX message queues, Python's
    /// multiprocessing.Queue and Pool, pthread mutexes, condvar queues,
    /// raw_sync, Boost.Interprocess, procspawn, a thread pool), the
    /// ratio shmprim / reference, and whether the goal is met. Each value is the
    /// median of several interleaved rounds, shown with its min and max.
    /// Everything it creates in /dev/shm is removed, also on Ctrl-C.
    /// `cargo run --release -- bench`.
    Bench(bench::Args),
    /// List every shmprim segment on this machine, one line each.
    ///
    /// Segments are recognised by their header (other files in /dev/shm are
    /// ignored): name, kind, size, age, creator pid, live/dead participants, and
    /// the primitive's state (queue depth, mutex holder or dead owner, semaphore
    /// value, event flag, barrier waiting/parties/broken, value and type...).
    /// Read-only: takes no slot and no lock.
    Ls(inspect::LsArgs),
    /// Show everything about one segment: header, state and participant table.
    Stat(inspect::StatArgs),
    /// Unlink segments by name, refusing files that are not shmprim segments.
    Rm(inspect::RmArgs),
    /// Remove segments that no live process has open and whose creator is gone.
    Gc(inspect::GcArgs),
    /// Show one segment's state live, refreshed every second, with rates of its
    /// counters; ends with Ctrl-C (or after --count refreshes).
    Watch(inspect::WatchArgs),
}

fn main() {
    // A spawned child (a demo process, a pool worker, a benchmark role)
    // runs its function here and exits.
    shmprim::process::init();
    // And procspawn's children (a reference of the suite).
    shmprim_bench::init();

    let cli = Cli::parse();
    let code = match cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Ls(args) => inspect::ls(args),
        Command::Stat(args) => inspect::stat(args),
        Command::Rm(args) => inspect::rm(args),
        Command::Gc(args) => inspect::gc(args),
        Command::Watch(args) => inspect::watch(args),
    };
    std::process::exit(code);
}
