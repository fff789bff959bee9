//! `cargo bench -p shmprim-bench --bench xproc [-- --quick --filter ID ...]`:
//! the same cross-process suite as `shmprim bench`, with the same options.
//! Benchmark children re-execute this executable, so it dispatches roles first.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "xproc", about = "shmprim's cross-process benchmark suite")]
struct Cli {
    #[command(flatten)]
    config: shmprim_bench::Config,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    // Pool workers and processes the suite spawns run their function here.
    shmprim::process::init();
    shmprim_bench::dispatch_role();
    let cli = Cli::parse();
    std::process::exit(shmprim_bench::main_with(&cli.config));
}
