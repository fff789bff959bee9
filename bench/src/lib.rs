//! The cross-process benchmark suite behind `shmprim bench` and
//! `cargo bench -p shmprim-bench --bench xproc`.
//!
//! Every figure is measured for shmprim *and* for one or more references in the
//! same run, on the same machine, interleaved (shmprim, then each reference, the
//! order reversed on every other round), so that the ratio between them means
//! something on a shared, drifting virtual machine. Each value is the median of
//! `--runs` rounds, reported with its min and max.
//!
//! - [`figures`]: the registry: id, group, title, unit, direction, the shmprim
//!   runner (or `None` with the primitive that will plug in), and the references
//!   each with its goal.
//! - `proc`: child processes (spawned through `shmprim::process`, each playing
//!   a role), the start barrier, CPU pinning, cleanup on Ctrl-C.
//! - `pool_side`: the shmprim runners of the process and pool figures.
//! - `refs`: the references, one file per family.
//! - `shmprim_side`: the shmprim runners.
//!
//! Adding a shmprim runner when a primitive lands: write a `fn(&Ctx) -> Res<f64>`
//! returning the figure's unit (see `shmprim_side.rs` for the pattern: parent
//! measures, child plays the other side through `proc::Session`), add
//! its child role to `ROLES`, and set `shmprim: Some(Impl { .. })` on the figure.

/// The C ABI, compiled into the harness so that its rows call the exported
/// functions as a C program linked with `libshmprim.a` does. (A dependency on
/// the `shmprim-capi` package cannot serve: its library is named `shmprim`,
/// like the Rust library, and builds no rlib.)
#[path = "../../capi/src/lib.rs"]
#[allow(dead_code, missing_docs, unused_imports)]
mod capi;
mod figures;
mod object_side;
mod pool_side;
mod proc;
mod refs;
mod report;
mod shmprim_side;

use std::path::PathBuf;
use std::time::Instant;

pub use figures::figures;
pub use proc::name_prefix;

/// Result of one measurement or setup step; the error is a message for the table.
pub(crate) type Res<T> = std::result::Result<T, String>;

/// Options of `shmprim bench` (also accepted by the `xproc` bench target).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Config {
    /// Short run (fewer iterations, 3 rounds): the whole suite in under a minute.
    #[arg(long)]
    pub quick: bool,
    /// Run only figures whose id, group or title contains SUBSTRING (repeatable).
    #[arg(long, value_name = "SUBSTRING")]
    pub filter: Vec<String>,
    /// Rounds per figure (default 3 with --quick, 7 otherwise); each value is the
    /// median of the rounds, shown with its min and max.
    #[arg(long, value_name = "N")]
    pub runs: Option<u32>,
    /// Also write the results as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// List the figures and their references, then exit.
    #[arg(long)]
    pub list: bool,
}

/// What a figure's unit measures, and which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds per operation or round trip: lower is better.
    Ns,
    /// Millions of messages per second: higher is better.
    Mmsgs,
}

impl Unit {
    /// Short label for the table.
    pub fn label(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Mmsgs => "Mmsg/s",
        }
    }

    /// Whether a higher value is better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Unit::Mmsgs)
    }
}

/// A goal on the ratio `shmprim / reference` (both in the figure's unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// The ratio must be at most this (times: lower is better).
    RatioAtMost(f64),
    /// The ratio must be at least this (throughputs: higher is better).
    RatioAtLeast(f64),
}

impl Goal {
    /// Whether `ratio` meets the goal.
    pub fn is_met(self, ratio: f64) -> bool {
        match self {
            Goal::RatioAtMost(g) => ratio <= g,
            Goal::RatioAtLeast(g) => ratio >= g,
        }
    }

    /// `≤ 1.10x` / `≥ 0.90x`.
    pub fn text(self) -> String {
        match self {
            Goal::RatioAtMost(g) => format!("<= {g:.2}x"),
            Goal::RatioAtLeast(g) => format!(">= {g:.2}x"),
        }
    }
}

/// Measures once and returns the value in the figure's unit.
pub type Runner = fn(&Ctx) -> Res<f64>;

/// One implementation measured for a figure.
#[derive(Clone)]
pub struct Impl {
    /// Short name for the table (`C ring (cached idx)`).
    pub name: &'static str,
    /// Measures it once.
    pub run: Runner,
    /// Goal on `shmprim / this` (references only).
    pub goal: Option<Goal>,
    /// Whether it can run here (e.g. `python3` on PATH).
    pub available: fn() -> bool,
}

/// One line of the suite.
#[derive(Clone)]
pub struct Figure {
    /// Stable id (`spsc-u64`), matched by `--filter`.
    pub id: &'static str,
    /// Group (`spsc`, `latency`, `mpmc`, `queue`, `lock`, `value`).
    pub group: &'static str,
    /// What is measured.
    pub title: &'static str,
    /// Unit and direction.
    pub unit: Unit,
    /// shmprim's runner; `None` until the primitive named in `hook` is merged.
    pub shmprim: Option<Impl>,
    /// Which shmprim primitive this figure measures (shown when `shmprim` is `None`).
    pub hook: &'static str,
    /// The references measured beside it.
    pub references: Vec<Impl>,
}

/// What a runner knows about the run.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// `--quick`.
    pub quick: bool,
}

impl Ctx {
    /// An iteration count: `full` normally, an eighth of it (at least 1) with `--quick`.
    pub fn n(&self, full: u64) -> u64 {
        if self.quick { (full / 8).max(1) } else { full }
    }
}

/// Median, min, max and every sample of one implementation's rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Median of the samples.
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Every sample, in round order.
    pub samples: Vec<f64>,
}

impl Stats {
    /// Statistics of `samples` (`None` when empty).
    pub fn of(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Stats {
            median,
            min: s[0],
            max: s[n - 1],
            samples: samples.to_vec(),
        })
    }
}

/// The outcome for one implementation of one figure.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Measured every round.
    Measured(Stats),
    /// Not run here (shmprim side not merged yet, or a tool missing).
    NotAvailable(String),
    /// Failed (first error message).
    Failed(String),
}

impl Outcome {
    /// The statistics, when measured.
    pub fn stats(&self) -> Option<&Stats> {
        match self {
            Outcome::Measured(s) => Some(s),
            _ => None,
        }
    }
}

/// The results of one figure.
#[derive(Debug, Clone)]
pub struct FigureResult {
    /// The figure's id.
    pub id: &'static str,
    /// Its group.
    pub group: &'static str,
    /// Its title.
    pub title: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// What shmprim measures here (implementation name, or the hook).
    pub shmprim_name: &'static str,
    /// shmprim's outcome.
    pub shmprim: Outcome,
    /// Each reference: name, goal, outcome.
    pub references: Vec<(&'static str, Option<Goal>, Outcome)>,
}

impl FigureResult {
    /// `shmprim / reference` for reference `i`, when both were measured.
    pub fn ratio(&self, i: usize) -> Option<f64> {
        let s = self.shmprim.stats()?.median;
        let r = self.references.get(i)?.2.stats()?.median;
        (r > 0.0).then(|| s / r)
    }

    /// The round-by-round ratios `shmprim / reference` for reference `i` (each
    /// round ran the two seconds apart, so drift of the machine between rounds
    /// cancels), when both were measured in every round.
    pub fn paired(&self, i: usize) -> Option<Stats> {
        let s = &self.shmprim.stats()?.samples;
        let r = &self.references.get(i)?.2.stats()?.samples;
        if s.len() != r.len() || r.iter().any(|&v| v <= 0.0) {
            return None;
        }
        let ratios: Vec<f64> = s.iter().zip(r).map(|(a, b)| a / b).collect();
        Stats::of(&ratios)
    }
}

/// The whole run: configuration, machine, results.
#[derive(Debug, Clone)]
pub struct Report {
    /// Rounds per figure.
    pub runs: u32,
    /// `--quick`.
    pub quick: bool,
    /// A one-line description of the machine.
    pub machine: String,
    /// The command line that reproduces the run.
    pub command: String,
    /// Wall-clock seconds for the whole run.
    pub seconds: f64,
    /// One entry per figure run.
    pub figures: Vec<FigureResult>,
}

impl Report {
    /// Whether any implementation failed.
    pub fn any_failed(&self) -> bool {
        self.figures.iter().any(|f| {
            matches!(f.shmprim, Outcome::Failed(_))
                || f.references
                    .iter()
                    .any(|r| matches!(r.2, Outcome::Failed(_)))
        })
    }
}

/// The child roles: a name and the function that plays it.
pub(crate) type Role = fn(&proc::ChildCtx) -> Res<()>;

/// Every child role of the suite.
pub(crate) const ROLES: &[(&str, Role)] = &[
    ("spin-word-pong", refs::pingpong::spin_pong_child),
    (
        "spin-two-words-pong",
        refs::pingpong::spin_two_words_pong_child,
    ),
    ("futex-pong", refs::pingpong::futex_pong_child),
    ("c-ring-producer", refs::c_ring::producer_child),
    ("pipe-pong", refs::os_ipc::pipe_pong_child),
    ("mq-pong", refs::os_ipc::mq_pong_child),
    ("cvq-producer", refs::pthread::cvq_producer_child),
    ("cvq-consumer", refs::pthread::cvq_consumer_child),
    ("pmutex-contender", refs::pthread::mutex_contender_child),
    ("psem-pong", refs::pthread::sem_pong_child),
    ("pbarrier-peer", refs::pthread::barrier_peer_child),
    ("pmutex-copy-writer", refs::pthread::copy_writer_child),
    ("raw-sync-contender", refs::raw_sync_mutex::contender_child),
    ("shmprim-wait-pong", shmprim_side::wait_pong_child),
    ("shmprim-spin-pong", shmprim_side::spin_pong_child),
    (
        "shmprim-mutex-contender",
        shmprim_side::mutex_contender_child,
    ),
    ("shmprim-event-pong", shmprim_side::event_pong_child),
    ("shmprim-semaphore-pong", shmprim_side::semaphore_pong_child),
    ("shmprim-barrier-peer", shmprim_side::barrier_peer_child),
    ("shmprim-value-writer", shmprim_side::value_writer_child),
    ("shmprim-spsc-producer", shmprim_side::spsc_producer_child),
    (
        "shmprim-spsc-c-producer",
        shmprim_side::spsc_c_producer_child,
    ),
    (
        "shmprim-spsc-byte-producer",
        shmprim_side::spsc_byte_producer_child,
    ),
    ("shmprim-spsc-pong", shmprim_side::spsc_pong_child),
    ("shmprim-duplex-pong", shmprim_side::duplex_pong_child),
    ("shmprim-pipe-pong", shmprim_side::pipe_pong_child),
    ("shmprim-mpmc-producer", shmprim_side::mpmc_producer_child),
    ("shmprim-mpmc-consumer", shmprim_side::mpmc_consumer_child),
    ("shmprim-queue-pong", shmprim_side::queue_pong_child),
    ("shmprim-objq-producer", object_side::producer_child),
    ("iox2-publisher", refs::iceoryx::publisher_child),
    ("iox2-pong", refs::iceoryx::pong_child),
    ("iox2-server", refs::iceoryx::server_child),
    ("iox2-event-pong", refs::iceoryx::event_pong_child),
    ("bipc-mq-producer", refs::boost::mq_producer_child),
    ("bipc-mq-consumer", refs::boost::mq_consumer_child),
    ("bipc-mq-pong", refs::boost::mq_pong_child),
    ("bipc-mutex-contender", refs::boost::mutex_contender_child),
    ("bipc-sem-pong", refs::boost::sem_pong_child),
];

/// Call first thing in `main` of every executable that runs the suite, after
/// `shmprim::process::init()`: in a child of procspawn's pool (a reference)
/// it runs the child and exits; otherwise it returns at once.
pub fn init() {
    procspawn::init();
}

/// The figures `config.filter` selects (all when empty).
pub fn selected(config: &Config) -> Vec<Figure> {
    figures()
        .into_iter()
        .filter(|f| {
            config.filter.is_empty()
                || config.filter.iter().any(|s| {
                    f.id.contains(s.as_str())
                        || f.group.contains(s.as_str())
                        || f.title.contains(s.as_str())
                })
        })
        .collect()
}

/// Runs the selected figures, interleaving shmprim and its references round by
/// round, with a progress bar on stderr. Ctrl-C removes everything created and
/// exits with status 130.
pub fn run(config: &Config) -> Report {
    proc::install_signal_cleanup();
    let figs = selected(config);
    let runs = config
        .runs
        .unwrap_or(if config.quick { 3 } else { 7 })
        .max(1);
    let ctx = Ctx {
        quick: config.quick,
    };
    let started = Instant::now();

    // Every (figure, implementation) pair; index 0 of each figure is shmprim.
    let impls: Vec<Vec<Option<Impl>>> = figs
        .iter()
        .map(|f| {
            std::iter::once(f.shmprim.clone())
                .chain(f.references.iter().cloned().map(Some))
                .collect()
        })
        .collect();
    let steps: u64 = impls
        .iter()
        .flatten()
        .filter(|i| i.as_ref().is_some_and(|i| (i.available)()))
        .count() as u64
        * u64::from(runs);
    let bar = indicatif::ProgressBar::new(steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );

    let mut samples: Vec<Vec<Vec<f64>>> = impls.iter().map(|v| vec![Vec::new(); v.len()]).collect();
    let mut errors: Vec<Vec<Option<String>>> = impls.iter().map(|v| vec![None; v.len()]).collect();

    proc::pin_to_cpu(0);
    for round in 0..runs {
        for (fi, fig) in figs.iter().enumerate() {
            let mut order: Vec<usize> = (0..impls[fi].len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for k in order {
                let Some(imp) = &impls[fi][k] else { continue };
                if !(imp.available)() || errors[fi][k].is_some() {
                    if errors[fi][k].is_some() {
                        bar.inc(1);
                    }
                    continue;
                }
                bar.set_message(format!(
                    "round {}/{runs} {} / {}",
                    round + 1,
                    fig.id,
                    imp.name
                ));
                match (imp.run)(&ctx) {
                    Ok(v) if v.is_finite() && v > 0.0 => samples[fi][k].push(v),
                    Ok(v) => errors[fi][k] = Some(format!("bad measurement {v}")),
                    Err(e) => errors[fi][k] = Some(e),
                }
                bar.inc(1);
            }
        }
    }
    proc::unpin();
    bar.finish_and_clear();

    let outcome = |imp: &Option<Impl>, s: &[f64], err: &Option<String>, hook: &str| match (imp, err)
    {
        (None, _) => Outcome::NotAvailable(format!("n/a: {hook} not merged yet")),
        (Some(_), Some(e)) => Outcome::Failed(e.clone()),
        (Some(i), None) if !(i.available)() => Outcome::NotAvailable("n/a here".into()),
        (Some(_), None) => {
            Stats::of(s).map_or_else(|| Outcome::Failed("no sample".into()), Outcome::Measured)
        }
    };
    let figures = figs
        .iter()
        .enumerate()
        .map(|(fi, f)| FigureResult {
            id: f.id,
            group: f.group,
            title: f.title,
            unit: f.unit,
            shmprim_name: f.shmprim.as_ref().map_or(f.hook, |i| i.name),
            shmprim: outcome(&impls[fi][0], &samples[fi][0], &errors[fi][0], f.hook),
            references: f
                .references
                .iter()
                .enumerate()
                .map(|(ri, r)| {
                    let k = ri + 1;
                    (
                        r.name,
                        r.goal,
                        outcome(&impls[fi][k], &samples[fi][k], &errors[fi][k], ""),
                    )
                })
                .collect(),
        })
        .collect();
    Report {
        runs,
        quick: config.quick,
        machine: report::machine_description(),
        command: report::command_line(config),
        seconds: started.elapsed().as_secs_f64(),
        figures,
    }
}

/// The table of a report, as printed by `shmprim bench`.
pub fn table(report: &Report) -> String {
    report::table(report)
}

/// The report as JSON.
pub fn to_json(report: &Report) -> String {
    report::json(report)
}

/// Prints the figure list (`--list`).
pub fn list(config: &Config) -> String {
    let mut out = String::new();
    for f in selected(config) {
        let shm = f
            .shmprim
            .as_ref()
            .map_or_else(|| format!("(n/a: {})", f.hook), |i| i.name.to_owned());
        out.push_str(&format!(
            "{:<22} {:<8} {}\n    shmprim: {shm}\n",
            f.id, f.group, f.title
        ));
        for r in &f.references {
            let goal = r
                .goal
                .map_or_else(String::new, |g| format!(" (goal {})", g.text()));
            out.push_str(&format!("    vs {}{goal}\n", r.name));
        }
    }
    out
}

/// Runs the suite as the CLI does: prints the table to stdout, writes JSON if
/// asked; returns the process exit code (0, or 1 if any figure failed or the JSON
/// could not be written).
pub fn main_with(config: &Config) -> i32 {
    if config.list {
        print!("{}", list(config));
        return 0;
    }
    if selected(config).is_empty() {
        eprintln!("no figure matches {:?}; see --list", config.filter);
        return 2;
    }
    let report = run(config);
    print!("{}", table(&report));
    let mut code = i32::from(report.any_failed());
    if let Some(path) = &config.json {
        if let Err(e) = std::fs::write(path, to_json(&report)) {
            eprintln!("cannot write {}: {e}", path.display());
            code = 1;
        }
    }
    code
}
