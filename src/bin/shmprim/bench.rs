//! `shmprim bench`: the command-line glue around `shmprim::bench` (feature
//! `bench`). Without the feature the subcommand exists but explains how to get it.

#[cfg(feature = "bench")]
pub type Args = shmprim::bench::Config;

/// Arguments accepted (and ignored) when the `bench` feature is off.
#[cfg(not(feature = "bench"))]
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _rest: Vec<String>,
}

/// Runs the suite; returns the exit code.
#[cfg(feature = "bench")]
pub fn run(args: Args) -> i32 {
    shmprim::bench::main_with(&args)
}

/// Explains how to get the suite; returns the exit code.
#[cfg(not(feature = "bench"))]
pub fn run(_args: Args) -> i32 {
    eprintln!(
        "shmprim bench: this binary was built without the `bench` feature.\n\
         Rebuild with it: cargo run --release --features bench -- bench [--quick]"
    );
    2
}
