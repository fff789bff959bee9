//! The table and the JSON of a [`Report`].

use std::fmt::Write as _;

use super::{Config, Outcome, Report, Stats, Unit};

/// `model name` from /proc/cpuinfo, core count, kernel release.
pub(crate) fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown kernel".into());
    format!("{cpu}, {} cores, Linux {kernel}", super::proc::cpu_count())
}

/// The `shmprim bench ...` line that reproduces a run of `config`.
pub(crate) fn command_line(config: &Config) -> String {
    let mut cmd = String::from("cargo run --release -- bench");
    if config.quick {
        cmd.push_str(" --quick");
    }
    if let Some(r) = config.runs {
        let _ = write!(cmd, " --runs {r}");
    }
    for f in &config.filter {
        let _ = write!(cmd, " --filter {f}");
    }
    cmd
}

fn fmt_value(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Two decimals, or three significant digits below 0.1 (so no ratio reads 0.00x).
fn fmt_ratio(r: f64) -> String {
    if r >= 0.1 {
        format!("{r:.2}x")
    } else {
        format!("{r:.2e}x")
    }
}

fn fmt_stats(s: &Stats) -> String {
    format!(
        "{} [{}-{}]",
        fmt_value(s.median),
        fmt_value(s.min),
        fmt_value(s.max)
    )
}

fn fmt_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Measured(s) => fmt_stats(s),
        Outcome::NotAvailable(_) => "n/a".into(),
        Outcome::Failed(_) => "FAILED".into(),
    }
}

/// The table: one block per figure, one line per reference.
pub(crate) fn table(report: &Report) -> String {
    let mut rows: Vec<[String; 9]> = vec![[
        "figure".into(),
        "unit".into(),
        "shmprim median [min-max]".into(),
        "reference".into(),
        "reference median [min-max]".into(),
        "ratio".into(),
        "paired [min-max]".into(),
        "goal".into(),
        "met".into(),
    ]];
    let mut notes = Vec::new();
    for f in &report.figures {
        let shm = fmt_outcome(&f.shmprim);
        match &f.shmprim {
            Outcome::NotAvailable(why) => notes.push(format!("{}: shmprim {why}", f.id)),
            Outcome::Failed(e) => notes.push(format!("{}: shmprim FAILED: {e}", f.id)),
            Outcome::Measured(_) => notes.push(format!("{}: shmprim = {}", f.id, f.shmprim_name)),
        }
        for (i, (name, goal, outcome)) in f.references.iter().enumerate() {
            let ratio = f.ratio(i);
            let met = match (ratio, goal) {
                (Some(r), Some(g)) => {
                    if g.is_met(r) {
                        "yes"
                    } else {
                        "NO"
                    }
                }
                (None, Some(_)) => "-",
                (_, None) => "",
            };
            if let Outcome::Failed(e) = outcome {
                notes.push(format!("{} vs {name}: FAILED: {e}", f.id));
            }
            rows.push([
                if i == 0 { f.id.into() } else { String::new() },
                if i == 0 {
                    f.unit.label().into()
                } else {
                    String::new()
                },
                if i == 0 { shm.clone() } else { String::new() },
                (*name).into(),
                fmt_outcome(outcome),
                ratio.map_or_else(|| "-".into(), fmt_ratio),
                f.paired(i).map_or_else(
                    || "-".into(),
                    |p| {
                        format!(
                            "{} [{}-{}]",
                            fmt_ratio(p.median),
                            fmt_ratio(p.min),
                            fmt_ratio(p.max)
                        )
                    },
                ),
                goal.map_or_else(|| "(info)".into(), |g| g.text()),
                met.into(),
            ]);
        }
    }
    let mut widths = [0usize; 9];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "shmprim bench: {} round(s){} on {}; {:.1} s",
        report.runs,
        if report.quick { ", --quick" } else { "" },
        report.machine,
        report.seconds
    );
    let _ = writeln!(
        out,
        "ratio = shmprim / reference, of the medians; paired = the ratios of each round's two \
         values; {} is lower-is-better, {} higher-is-better",
        Unit::Ns.label(),
        Unit::Mmsgs.label()
    );
    for (n, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if n == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * 7;
            let _ = writeln!(out, "{}", "-".repeat(total));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out);
        for n in notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    out
}

use shmprim::inspect::json_str;

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn json_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Measured(s) => format!(
            "{{\"status\":\"measured\",\"median\":{},\"min\":{},\"max\":{},\"samples\":[{}]}}",
            json_num(s.median),
            json_num(s.min),
            json_num(s.max),
            s.samples
                .iter()
                .map(|v| json_num(*v))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Outcome::NotAvailable(why) => {
            format!("{{\"status\":\"n/a\",\"reason\":{}}}", json_str(why))
        }
        Outcome::Failed(e) => format!("{{\"status\":\"failed\",\"error\":{}}}", json_str(e)),
    }
}

/// The report as one JSON object.
pub(crate) fn json(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"runs\":{},\"quick\":{},\"machine\":{},\"command\":{},\"seconds\":{},\"figures\":[",
        report.runs,
        report.quick,
        json_str(&report.machine),
        json_str(&report.command),
        json_num(report.seconds)
    );
    for (n, f) in report.figures.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "\n{{\"id\":{},\"group\":{},\"title\":{},\"unit\":{},\"higher_is_better\":{},\"shmprim\":{{\"impl\":{},\"result\":{}}},\"references\":[",
            json_str(f.id),
            json_str(f.group),
            json_str(f.title),
            json_str(f.unit.label()),
            f.unit.higher_is_better(),
            json_str(f.shmprim_name),
            json_outcome(&f.shmprim)
        );
        for (i, (name, goal, o)) in f.references.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let ratio = f.ratio(i);
            let _ = write!(
                out,
                "{{\"name\":{},\"result\":{},\"ratio\":{},\"paired\":{},\"goal\":{},\"goal_met\":{}}}",
                json_str(name),
                json_outcome(o),
                ratio.map_or_else(|| "null".into(), json_num),
                f.paired(i).map_or_else(
                    || "null".into(),
                    |p| format!(
                        "{{\"median\":{},\"min\":{},\"max\":{}}}",
                        json_num(p.median),
                        json_num(p.min),
                        json_num(p.max)
                    )
                ),
                goal.map_or_else(|| "null".into(), |g| json_str(&g.text())),
                match (ratio, goal) {
                    (Some(r), Some(g)) => g.is_met(r).to_string(),
                    _ => "null".into(),
                }
            );
        }
        out.push_str("]}");
    }
    out.push_str("\n]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FigureResult, Goal};

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn stats_take_the_median_of_odd_and_even_counts() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Stats::of(&[]).is_none());
    }

    /// The paired ratios divide each round's values, not the medians: a
    /// reference that was slow in the rounds where shmprim was slow too does
    /// not move them.
    #[test]
    fn paired_ratios_divide_round_by_round() {
        let f = FigureResult {
            id: "x",
            group: "g",
            title: "t",
            unit: Unit::Mmsgs,
            shmprim_name: "s",
            shmprim: Outcome::Measured(Stats::of(&[10.0, 40.0, 20.0]).unwrap()),
            references: vec![
                (
                    "r",
                    Some(Goal::RatioAtLeast(1.0)),
                    Outcome::Measured(Stats::of(&[20.0, 40.0, 10.0]).unwrap()),
                ),
                ("short", None, Outcome::Measured(Stats::of(&[1.0]).unwrap())),
            ],
        };
        let p = f.paired(0).unwrap();
        assert_eq!((p.median, p.min, p.max), (1.0, 0.5, 2.0));
        assert_eq!(f.ratio(0), Some(1.0));
        assert!(f.paired(1).is_none(), "rounds missing on one side");
        assert!(
            table(&Report {
                runs: 3,
                quick: false,
                machine: "m".into(),
                command: "c".into(),
                seconds: 1.0,
                figures: vec![f],
            })
            .contains("1.00x [0.50x-2.00x]")
        );
    }
}
