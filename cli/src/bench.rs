//! `shmprim bench`: the command-line glue around the `shmprim-bench` package.

/// The suite's arguments.
pub type Args = shmprim_bench::Config;

/// Runs the suite; returns the exit code.
pub fn run(args: Args) -> i32 {
    shmprim_bench::main_with(&args)
}
