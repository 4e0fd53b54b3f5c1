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
    /// Number of users.
    #[arg(short = 'u', long = "users", default_value_t = 1)]
    pub users: u64,
    /// Users started per second (across all cores).
    #[arg(short = 'r', long = "spawn-rate", default_value_t = 1.0)]
    pub spawn_rate: f64,
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
    /// Write the summary as JSON to this file.
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

#[cfg(test)]
mod tests {
    use super::*;

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
