//! `cargo bench -p shmprim-bench --bench xproc [-- --quick --filter ID ...]`:
//! the same cross-process suite as `shmprim bench`, with the same options.
//! Benchmark children are spawned from this executable, so `main` calls
//! `shmprim::process::init()` first.

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
    // Every child the suite spawns (role players, pool workers) runs here.
    shmprim::process::init();
    // And procspawn's children (a reference of the suite).
    shmprim_bench::init();
    let cli = Cli::parse();
    std::process::exit(shmprim_bench::main_with(&cli.config));
}
