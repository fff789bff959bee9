//! `shmprim ls`, `stat`, `rm`, `gc` and `watch`: what is inside POSIX shared
//! memory, at a glance. All of it is read-only except `rm` and `gc`, and uses the
//! library's `shmprim::inspect` (the same view programs get).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use shmprim::inspect::{self, Field, Inspection};

/// `shmprim ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Only segments whose name starts with this.
    #[arg(long, default_value = "")]
    prefix: String,
}

/// `shmprim stat`.
#[derive(Debug, clap::Args)]
pub struct StatArgs {
    /// Segment name (as given to create, without a leading '/').
    name: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `shmprim rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Segment names to unlink; files that are not shmprim segments are refused.
    #[arg(required = true)]
    names: Vec<String>,
}

/// `shmprim gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// List what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print a JSON array of the segments (to be) removed.
    #[arg(long)]
    json: bool,
    /// Only segments whose name starts with this.
    #[arg(long, default_value = "")]
    prefix: String,
}

/// `shmprim watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Segment name.
    name: String,
    /// Refresh interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Stop after this many refreshes (default: until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
}

fn report(err: shmprim::Error) -> i32 {
    eprintln!("shmprim: {err}");
    1
}

pub fn ls(args: LsArgs) -> i32 {
    match inspect::list_prefixed(&args.prefix) {
        Ok(list) if args.json => {
            println!("{}", inspect::render_json(&list));
            0
        }
        Ok(list) => {
            print!("{}", inspect::render_table(&list));
            0
        }
        Err(e) => report(e),
    }
}

pub fn stat(args: StatArgs) -> i32 {
    match inspect::inspect(&args.name) {
        Ok(ins) if args.json => {
            println!("{}", ins.to_json());
            0
        }
        Ok(ins) => {
            print!("{}", ins.to_text());
            0
        }
        Err(e) => report(e),
    }
}

pub fn rm(args: RmArgs) -> i32 {
    let mut code = 0;
    for name in &args.names {
        match inspect::remove(name) {
            Ok(()) => println!("removed {name}"),
            Err(e) => code = report(e),
        }
    }
    code
}

pub fn gc(args: GcArgs) -> i32 {
    match inspect::gc_prefixed(args.dry_run, &args.prefix) {
        Ok(list) if args.json => {
            println!("{}", inspect::render_json(&list));
            0
        }
        Ok(list) => {
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            for ins in &list {
                println!(
                    "{verb} {} ({}, creator pid {} gone, {} dead participants)",
                    ins.name,
                    ins.kind().map_or("?", shmprim::Kind::name),
                    ins.creator_pid().unwrap_or(0),
                    ins.dead_participants()
                );
            }
            if list.is_empty() {
                println!("nothing to collect");
            }
            0
        }
        Err(e) => report(e),
    }
}

/// Numeric fields of a summary, for rates.
fn numbers(ins: &Inspection) -> HashMap<&'static str, f64> {
    ins.state
        .iter()
        .flat_map(|s| s.fields.iter())
        .filter_map(|(k, v)| match v {
            Field::U64(n) => Some((*k, *n as f64)),
            Field::I64(n) => Some((*k, *n as f64)),
            _ => None,
        })
        .collect()
}

pub fn watch(args: WatchArgs) -> i32 {
    let tty = std::io::stdout().is_terminal();
    let interval = Duration::from_millis(args.interval_ms.max(10));
    let mut previous: Option<(Instant, HashMap<&'static str, f64>)> = None;
    let mut n = 0u64;
    loop {
        let ins = match inspect::inspect(&args.name) {
            Ok(ins) => ins,
            Err(e) => return report(e),
        };
        let now = Instant::now();
        let current = numbers(&ins);
        let mut out = String::new();
        if tty {
            out.push_str("\x1b[2J\x1b[H");
        }
        out.push_str(&format!(
            "{}  [{}]  {} live / {} dead participants\n  {}\n",
            ins.name,
            ins.kind().map_or("?", shmprim::Kind::name),
            ins.live_participants(),
            ins.dead_participants(),
            ins.state_line()
        ));
        if let Some((then, before)) = &previous {
            let secs = now.duration_since(*then).as_secs_f64().max(1e-9);
            let mut rates: Vec<String> = current
                .iter()
                .filter_map(|(k, v)| before.get(k).map(|b| (k, (v - b) / secs)))
                .filter(|(_, r)| *r != 0.0)
                .map(|(k, r)| format!("{k} {r:+.1}/s"))
                .collect();
            rates.sort();
            if !rates.is_empty() {
                out.push_str(&format!("  rates: {}\n", rates.join(", ")));
            }
        }
        print!("{out}");
        let _ = std::io::stdout().flush();
        previous = Some((now, current));
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            return 0;
        }
        std::thread::sleep(interval);
    }
}
