//! The command line: subcommands and flags (Locust's names where the
//! meaning is the same).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// blast: a load tester with Locust's user model, wrk-class efficiency and
/// honest latency.
#[derive(Debug, Parser)]
#[command(name = "blast", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a load test headless and print a summary.
    Run(Box<RunArgs>),
    /// Start the built-in target server and run the bundled quick-start
    /// scenario against it.
    Demo(DemoArgs),
    /// Serve the built-in target server (for trying blast out and for tests).
    Target(TargetArgs),
    /// Compile and validate a scenario and show its user types and task
    /// ratios, without sending a request.
    Check(CheckArgs),
}

/// Every flag can also come from a `BLAST_*` environment variable
/// (`--spawn-rate` → `BLAST_SPAWN_RATE`, added by [`crate::config`]) or a
/// config file; `--scenario` and `--host` are required from one of them.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (Rhai). Required.
    #[arg(short = 's', long = "scenario", value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Host to load, e.g. http://127.0.0.1:8080 (a path prefix is
    /// allowed). Required.
    #[arg(short = 'H', long = "host", value_name = "URL")]
    pub host: Option<String>,
    /// Number of users [default: 1, or what the scenario's shape() says].
    #[arg(short = 'u', long = "users")]
    pub users: Option<u64>,
    /// Users started (or stopped) per second, across all cores [default: 1].
    #[arg(short = 'r', long = "spawn-rate")]
    pub spawn_rate: Option<f64>,
    /// Ramp the users linearly to each stage's count over its duration:
    /// "30s:100,2m:100,30s:0". The run ends after the last stage.
    #[arg(long, value_name = "STAGES", conflicts_with_all = ["users", "spawn_rate", "rate", "rate_stages"])]
    pub stages: Option<String>,
    /// Open model: start iterations (one task each, on a free user) at this
    /// rate however slowly the target answers: 500/s, 30/m. With
    /// --rate-stages, the rate to start from.
    #[arg(long, value_name = "RATE", value_parser = parse_rate, conflicts_with_all = ["users", "spawn_rate"])]
    pub rate: Option<f64>,
    /// Open model: ramp the arrival rate linearly to each stage's rate over
    /// its duration: "1m:100/s,5m:1000/s" (from --rate, default 0). The run
    /// ends after the last stage.
    #[arg(long, value_name = "STAGES", conflicts_with_all = ["users", "spawn_rate"])]
    pub rate_stages: Option<String>,
    /// Open model: users the pool may grow to, across all cores [default:
    /// ten seconds' worth of arrivals at the highest rate, at least 100].
    #[arg(long, value_name = "N")]
    pub max_users: Option<u64>,
    /// Open model: how long an iteration may wait for a free user before it
    /// is dropped (and counted); 0 drops it at once.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "T")]
    pub max_wait: Duration,
    /// Open model: how arrivals are spaced.
    #[arg(long, value_enum, default_value_t = ArrivalsArg::Even)]
    pub arrivals: ArrivalsArg,
    /// Clear the statistics once the ramp first reaches its target.
    #[arg(long)]
    pub reset_stats: bool,
    /// End the run after this many task iterations in total.
    #[arg(long, value_name = "N", conflicts_with = "iterations_per_user")]
    pub iterations: Option<u64>,
    /// End each user after this many task iterations; the run ends when
    /// every user has (closed model only).
    #[arg(long, value_name = "N")]
    pub iterations_per_user: Option<u64>,
    /// Stop the run early when this holds: "fail_ratio>0.05 for 10s",
    /// "p95>2s for 30s", "rps<10 for 5s", "dropped>0". Same metrics as
    /// --threshold; with "for T", measured over the last T. Repeatable (or
    /// several separated by ';'). Exits with 4.
    #[arg(long = "stop-on", value_name = "EXPR", value_delimiter = ';')]
    pub stop_on: Vec<String>,
    /// Run time, e.g. 30s, 5m, 1h30m (a bare number is seconds); until
    /// Ctrl-C when not given.
    #[arg(short = 't', long = "run-time", value_parser = parse_duration)]
    pub run_time: Option<Duration>,
    /// Shards, one per core; default: every core this process may use.
    #[arg(long)]
    pub cores: Option<usize>,
    /// Request timeout, connecting included.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long stopping waits for requests in flight before cutting them.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub stop_timeout: Duration,
    /// Accept any TLS certificate.
    #[arg(long)]
    pub insecure: bool,
    /// Seed for users' random choices, to repeat a run's choices.
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub tags: TagArgs,
    /// Write the summary as JSON to this file; `-` writes it to stdout
    /// (the tables then go to stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// How often the live table is printed.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub print_interval: Duration,
    /// Print only the final summary.
    #[arg(long)]
    pub only_summary: bool,
    /// Print no live table, progress or summary table: only warnings,
    /// errors and threshold verdicts.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write Locust's CSV files PREFIX_stats.csv, PREFIX_stats_history.csv,
    /// PREFIX_failures.csv and PREFIX_exceptions.csv.
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    /// Write every entry's rows to the history CSV, not only the aggregated
    /// row.
    #[arg(long)]
    pub csv_full_history: bool,
    /// Write a self-contained HTML report (tables and charts) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// A pass/fail threshold: p95<300ms, p99.9<1s, avg<100ms,
    /// fail_ratio<0.01, rps>500, checks>0.99, "GET /items/:id: p99<500ms".
    /// Repeatable (or several separated by ';'); replaces the scenario's
    /// threshold on the same endpoint and metric. A failed one exits with 3.
    #[arg(long = "threshold", value_name = "EXPR", value_delimiter = ';')]
    pub thresholds: Vec<String>,
    /// Stop the run as soon as a threshold fails on what was measured so
    /// far (checked every print interval).
    #[arg(long)]
    pub abort_on_fail: bool,
    /// How long after the start --abort-on-fail begins checking.
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "T")]
    pub threshold_delay: Duration,
    /// Exit with this code when any request failed (and every threshold
    /// passed).
    #[arg(long, value_name = "N")]
    pub exit_code_on_error: Option<u8>,
    /// Read settings from this TOML file (default: blast.toml in the
    /// working directory, when there is one).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the merged settings (config file < BLAST_* environment <
    /// command line) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// How open-model arrivals are spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ArrivalsArg {
    /// Evenly.
    Even,
    /// As a Poisson process (exponential gaps), with the same mean rate.
    Poisson,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run time.
    #[arg(short = 't', long = "run-time", default_value = "15s", value_parser = parse_duration)]
    pub run_time: Duration,
    /// Number of users.
    #[arg(short = 'u', long = "users", default_value_t = 50)]
    pub users: u64,
    /// Users started per second.
    #[arg(short = 'r', long = "spawn-rate", default_value_t = 25.0)]
    pub spawn_rate: f64,
    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Server threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Append `METHOD PATH STATUS` per request to this file.
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// Pause like a stop-the-world collector: hold every response for
    /// LENGTH once every EVERY, e.g. 1s/5s (for seeing coordinated-omission
    /// correction at work).
    #[arg(long, value_name = "LENGTH/EVERY")]
    pub stall: Option<blast_target::Stall>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The scenario file (Rhai).
    #[arg(short = 's', long = "scenario", value_name = "FILE")]
    pub scenario: PathBuf,
    #[command(flatten)]
    pub tags: TagArgs,
}

/// `--tags` / `--exclude-tags`, for `run` and `check`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// Only tasks with one of these tags (comma-separated or repeated).
    #[arg(short = 'T', long = "tags", value_delimiter = ',', value_name = "TAG")]
    pub tags: Vec<String>,
    /// Leave out tasks with one of these tags (comma-separated or repeated).
    #[arg(
        short = 'E',
        long = "exclude-tags",
        value_delimiter = ',',
        value_name = "TAG"
    )]
    pub exclude_tags: Vec<String>,
}

/// Parses `30s`, `5m`, `1h30m`, `250ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(seconds) = s.parse::<f64>() {
        if seconds >= 0.0 && seconds.is_finite() {
            return Ok(Duration::from_secs_f64(seconds));
        }
        return Err(format!("{s:?} is not a non-negative number of seconds"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 30s, 5m or 1h30m ({e})"))
}

/// Parses `--stages 30s:100,2m:100,30s:0` (users) or, with `rate`,
/// `--rate-stages 1m:100/s,5m:1000/s` (iterations per second; `/m` for
/// per minute).
pub fn parse_stages(text: &str, rate: bool) -> Result<Vec<blast_control::Stage>, String> {
    let flag = if rate { "--rate-stages" } else { "--stages" };
    let example = if rate {
        "1m:100/s,5m:1000/s"
    } else {
        "30s:100,2m:100,30s:0"
    };
    let mut stages = Vec::new();
    for (i, part) in text.split(',').enumerate() {
        let part = part.trim();
        let bad = |why: String| {
            format!(
                "{flag} {text:?}: stage {} ({part:?}) {why}; write DURATION:{} like {example}",
                i + 1,
                if rate { "RATE" } else { "USERS" }
            )
        };
        let (duration, target) = part
            .split_once(':')
            .ok_or_else(|| bad("has no ':'".into()))?;
        let duration = parse_duration(duration.trim()).map_err(bad)?;
        let target = if rate {
            parse_rate(target.trim()).map_err(bad)?
        } else {
            let users: u64 = target.trim().parse().map_err(|_| {
                bad(format!(
                    "{:?} is not a whole number of users",
                    target.trim()
                ))
            })?;
            users as f64
        };
        stages.push(blast_control::Stage { duration, target });
    }
    if stages.iter().all(|s| s.duration.is_zero()) {
        return Err(format!("{flag} {text:?}: the stages last no time at all"));
    }
    Ok(stages)
}

/// Parses an arrival rate: `500/s`, `30/m`, or a bare number per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let (number, per) = match text.split_once('/') {
        Some((n, "s" | "sec" | "second")) => (n, 1.0),
        Some((n, "m" | "min" | "minute")) => (n, 60.0),
        Some((_, unit)) => {
            return Err(format!(
                "rate {text:?}: unknown unit {unit:?} (use /s or /m)"
            ));
        }
        None => (text, 1.0),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("rate {text:?} is not a number of iterations like 500/s or 30/m"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("rate {text:?} must be a non-negative number"));
    }
    Ok(value / per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_rates_parse() {
        let s = parse_stages("30s:100, 2m:100,30s:0", false).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].duration, Duration::from_secs(120));
        assert_eq!(s[2].target, 0.0);
        let r = parse_stages("1m:100/s,5m:60/m", true).unwrap();
        assert_eq!(r[1].target, 1.0);
        assert_eq!(parse_rate("500/s").unwrap(), 500.0);
        assert_eq!(parse_rate("120/m").unwrap(), 2.0);
        assert_eq!(parse_rate("7.5").unwrap(), 7.5);
        for bad in ["fast", "-1/s", "5/h", "inf/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        for bad in ["30s", "x:10", "30s:ten", "30s:-1", "0s:10"] {
            let e = parse_stages(bad, false).unwrap_err();
            assert!(e.contains("--stages"), "{e}");
        }
        assert!(
            parse_stages("1m:fast", true)
                .unwrap_err()
                .contains("--rate-stages")
        );
    }

    #[test]
    fn durations_parse_like_locust() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
