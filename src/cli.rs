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
    #[arg(
        short = 's',
        visible_short_alias = 'f',
        long = "scenario",
        value_name = "FILE"
    )]
    pub scenario: Option<PathBuf>,
    /// Host to load, e.g. http://127.0.0.1:8080 (a path prefix is
    /// allowed). Required unless every user type sets its `host`.
    #[arg(short = 'H', long = "host", value_name = "URL")]
    pub host: Option<String>,
    /// Number of users, at least 1 [default: 1, or what the scenario's
    /// shape() says].
    #[arg(
        short = 'u',
        long = "users",
        value_name = "N",
        value_parser = whole_number::<u64>("users", "≥ 1"),
        allow_negative_numbers = true,
    )]
    pub users: Option<u64>,
    /// Users started (or stopped) per second, across all cores, more than 0
    /// [default: 1].
    #[arg(
        short = 'r',
        long = "spawn-rate",
        value_name = "R",
        value_parser = positive_number("users per second", "10 or 0.5"),
        allow_negative_numbers = true,
    )]
    pub spawn_rate: Option<f64>,
    /// Ramp the users linearly to each stage's count over its duration:
    /// "30s:100,2m:100,30s:0". The run ends after the last stage.
    #[arg(
        long,
        value_name = "STAGES",
        conflicts_with_all = ["users", "spawn_rate", "rate", "rate_stages"],
    )]
    pub stages: Option<String>,
    /// Open model: start iterations (one task each, on a free user) at this
    /// rate however slowly the target answers: 500/s, 30/m. With
    /// --rate-stages, the rate to start from.
    #[arg(
        long,
        value_name = "RATE",
        value_parser = parse_rate,
        allow_hyphen_values = true,
        conflicts_with_all = ["users", "spawn_rate"],
    )]
    pub rate: Option<f64>,
    /// Open model: ramp the arrival rate linearly to each stage's rate over
    /// its duration: "1m:100/s,5m:1000/s" (from --rate, default 0). The run
    /// ends after the last stage.
    #[arg(long, value_name = "STAGES", conflicts_with_all = ["users", "spawn_rate"])]
    pub rate_stages: Option<String>,
    /// Open model: users the pool may grow to, across all cores [default:
    /// ten seconds' worth of arrivals at the highest rate, at least 100].
    #[arg(
        long,
        value_name = "N",
        value_parser = whole_number::<u64>("users", "≥ 1"),
        allow_negative_numbers = true,
    )]
    pub max_users: Option<u64>,
    /// Open model: how long an iteration may wait for a free user before it
    /// is dropped (and counted); 0 drops it at once.
    #[arg(
        long,
        default_value = "1s",
        value_parser = parse_duration,
        allow_hyphen_values = true,
        value_name = "T",
    )]
    pub max_wait: Duration,
    /// Open model: how arrivals are spaced.
    #[arg(long, value_enum, default_value_t = ArrivalsArg::Even)]
    pub arrivals: ArrivalsArg,
    /// Clear the statistics once the ramp first reaches its target.
    #[arg(long)]
    pub reset_stats: bool,
    /// End the run after this many task iterations in total.
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "iterations_per_user",
        value_parser = whole_number::<u64>("iterations", "≥ 1"),
        allow_negative_numbers = true,
    )]
    pub iterations: Option<u64>,
    /// End each user after this many task iterations; the run ends when
    /// every user has (closed model only).
    #[arg(
        long,
        value_name = "N",
        value_parser = whole_number::<u64>("iterations", "≥ 1"),
        allow_negative_numbers = true,
    )]
    pub iterations_per_user: Option<u64>,
    /// Stop the run early when this holds: "fail_ratio>0.05 for 10s",
    /// "p95>2s for 30s", "rps<10 for 5s", "dropped>0". Same metrics as
    /// --threshold; with "for T", measured over the last T. Repeatable (or
    /// several separated by ';'). Exits with 4.
    #[arg(long = "stop-on", value_name = "EXPR", value_delimiter = ';')]
    pub stop_on: Vec<String>,
    /// Run time, more than 0: 30s, 5m, 1h30m (a bare number is seconds);
    /// until Ctrl-C when not given.
    #[arg(
        short = 't',
        long = "run-time",
        value_name = "T",
        value_parser = parse_duration,
        allow_hyphen_values = true,
    )]
    pub run_time: Option<Duration>,
    /// Shards, one per core, at least 1; default: every core this process
    /// may use.
    #[arg(
        long,
        value_name = "N",
        value_parser = whole_number::<usize>("cores", "≥ 1"),
        allow_negative_numbers = true,
    )]
    pub cores: Option<usize>,
    /// Request timeout, connecting included; more than 0.
    #[arg(
        long,
        default_value = "60s",
        value_name = "T",
        value_parser = parse_duration,
        allow_hyphen_values = true,
    )]
    pub timeout: Duration,
    /// How long stopping waits for requests in flight before cutting them.
    #[arg(
        long,
        default_value = "10s",
        value_name = "T",
        value_parser = parse_duration,
        allow_hyphen_values = true,
    )]
    pub stop_timeout: Duration,
    /// Accept any TLS certificate.
    #[arg(long)]
    pub insecure: bool,
    /// Seed for users' random choices, to repeat a run's choices.
    #[arg(
        long,
        value_name = "N",
        value_parser = whole_number::<u64>("seed", "≥ 0"),
        allow_negative_numbers = true,
    )]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub tags: TagArgs,
    /// Write the summary as JSON to this file; `-` writes it to stdout
    /// (the tables then go to stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// How often the live table is printed.
    #[arg(
        long,
        default_value = "2s",
        value_name = "T",
        value_parser = parse_duration,
        allow_hyphen_values = true,
    )]
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
    #[arg(
        long,
        default_value = "0s",
        value_parser = parse_duration,
        allow_hyphen_values = true,
        value_name = "T",
    )]
    pub threshold_delay: Duration,
    /// Exit with this code when any request failed (and every threshold
    /// passed).
    #[arg(long, value_name = "N", value_parser = exit_code, allow_negative_numbers = true)]
    pub exit_code_on_error: Option<u8>,
    /// Read settings from this TOML file (default: blast.toml in the
    /// working directory, when there is one).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the merged settings (config file < BLAST_* environment <
    /// command line) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Accepted for Locust's sake and ignored: `blast run` is always
    /// headless.
    #[arg(long)]
    pub headless: bool,
    /// Log lines shown (and written to --logfile): DEBUG, INFO (the
    /// script's log() and print()), WARNING, ERROR or CRITICAL (none of
    /// them); any case.
    #[arg(
        long,
        short = 'L',
        value_enum,
        ignore_case = true,
        default_value_t = LogLevel::Info,
        value_name = "LEVEL",
    )]
    pub loglevel: LogLevel,
    /// Append the log lines (the script's log() and print(), warnings) to
    /// this file too, each with its time and level.
    #[arg(long, value_name = "FILE")]
    pub logfile: Option<PathBuf>,
    /// Run only these user types (all when none is named); put them before
    /// -T/-E or after `--`, which take every word up to the next flag.
    #[arg(value_name = "USER_TYPE")]
    pub user_types: Vec<String>,
}

/// Locust's log levels (`--loglevel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum LogLevel {
    /// Everything, Rhai's debug() included.
    Debug,
    /// The script's log() and print(), and what follows.
    Info,
    /// Warnings and errors.
    Warning,
    /// Errors only.
    Error,
    /// Nothing blast logs is critical: no log line at all.
    Critical,
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
    #[arg(
        short = 't',
        long = "run-time",
        default_value = "15s",
        value_name = "T",
        value_parser = parse_duration,
        allow_hyphen_values = true,
    )]
    pub run_time: Duration,
    /// Number of users.
    #[arg(
        short = 'u',
        long = "users",
        default_value_t = 50,
        value_name = "N",
        value_parser = whole_number::<u64>("users", "≥ 1"),
        allow_negative_numbers = true,
    )]
    pub users: u64,
    /// Users started per second.
    #[arg(
        short = 'r',
        long = "spawn-rate",
        default_value_t = 25.0,
        value_name = "R",
        value_parser = positive_number("users per second", "10 or 0.5"),
        allow_negative_numbers = true,
    )]
    pub spawn_rate: f64,
    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(
        long,
        default_value_t = 8080,
        value_parser = whole_number::<u16>("the port", "from 0 to 65535"),
        allow_negative_numbers = true,
    )]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Server threads.
    #[arg(
        long,
        default_value_t = 1,
        value_parser = whole_number::<usize>("threads", "≥ 1"),
        allow_negative_numbers = true,
    )]
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
    #[arg(
        short = 's',
        visible_short_alias = 'f',
        long = "scenario",
        value_name = "FILE"
    )]
    pub scenario: PathBuf,
    #[command(flatten)]
    pub tags: TagArgs,
    /// Check only these user types (all when none is named).
    #[arg(value_name = "USER_TYPE")]
    pub user_types: Vec<String>,
}

/// `--tags` / `--exclude-tags`, for `run` and `check`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// Only tasks with one of these tags (separated by spaces or commas, or
    /// repeated).
    #[arg(short = 'T', long = "tags", value_delimiter = ',', num_args = 1.., value_name = "TAG")]
    pub tags: Vec<String>,
    /// Leave out tasks with one of these tags (separated by spaces or
    /// commas, or repeated).
    #[arg(
        short = 'E',
        long = "exclude-tags",
        value_delimiter = ',',
        num_args = 1..,
        value_name = "TAG"
    )]
    pub exclude_tags: Vec<String>,
}

/// A parser of whole numbers of `what` in `range` ("≥ 1": the caller checks
/// the bounds the type does not), whose error says what is wanted: clap's
/// own says only "invalid digit found in string".
pub fn whole_number<T>(
    what: &'static str,
    range: &'static str,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
{
    move |text: &str| {
        let text = text.trim();
        text.parse::<T>().map_err(|_| {
            let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
            let why = if text.starts_with('-') {
                "is negative"
            } else if digits {
                "is too large"
            } else {
                "is not a whole number"
            };
            format!("{text:?} {why}: {what} must be a whole number {range}")
        })
    }
}

/// A parser of numbers of `what` that must be more than 0 (the caller
/// checks that), whose error says so, with an example.
pub fn positive_number(
    what: &'static str,
    example: &'static str,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let text = text.trim();
        text.parse::<f64>().map_err(|_| {
            format!("{text:?} is not a number: {what} must be a number more than 0, like {example}")
        })
    }
}

/// Parses an exit code, 0 to 255.
pub fn exit_code(text: &str) -> Result<u8, String> {
    let text = text.trim();
    text.parse()
        .map_err(|_| format!("{text:?} is not an exit code: give a whole number from 0 to 255"))
}

/// What to write instead of a host URL without a scheme (`127.0.0.1:8080`,
/// `localhost:8080`, `example.com`), which the URL parser reads as a
/// relative URL or a scheme `localhost`; `None` for one with a scheme.
pub fn host_without_scheme(url: &str) -> Option<String> {
    if url.contains("://") {
        return None;
    }
    let bare = url.trim_start_matches('/');
    let scheme = if bare
        .split(['/', '?'])
        .next()
        .is_some_and(|a| a.ends_with(":443"))
    {
        "https"
    } else {
        "http"
    };
    Some(format!(
        "a host URL starts with http:// or https://: write {scheme}://{bare}"
    ))
}

/// `--html`'s file name with Locust's `{u}`, `{r}` and `{t}` replaced by
/// the users, the spawn rate and the run time in seconds, each as a whole
/// number (Locust's `int()`); one that is not set is left as it is.
pub fn html_file_name(
    path: &std::path::Path,
    users: Option<u64>,
    spawn_rate: Option<f64>,
    run_time: Option<Duration>,
) -> PathBuf {
    let Some(text) = path.to_str() else {
        return path.to_path_buf();
    };
    let mut name = text.to_string();
    let values = [
        ("{u}", users),
        ("{r}", spawn_rate.map(|r| r.trunc() as u64)),
        ("{t}", run_time.map(|t| t.as_secs())),
    ];
    for (tag, value) in values {
        if let Some(value) = value {
            name = name.replace(tag, &value.to_string());
        }
    }
    PathBuf::from(name)
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
    fn hosts_without_a_scheme_get_one() {
        for (url, want) in [
            ("127.0.0.1:8080", Some("write http://127.0.0.1:8080")),
            (
                "localhost:8080/api",
                Some("write http://localhost:8080/api"),
            ),
            ("example.com", Some("write http://example.com")),
            ("example.com:443", Some("write https://example.com:443")),
            ("//example.com", Some("write http://example.com")),
            ("http://127.0.0.1:8080", None),
            ("https://example.com", None),
        ] {
            let hint = host_without_scheme(url);
            assert_eq!(hint.is_some(), want.is_some(), "{url}");
            if let (Some(hint), Some(want)) = (hint, want) {
                assert!(hint.ends_with(want), "{url}: {hint}");
            }
        }
    }

    #[test]
    fn html_file_names_take_locusts_tags() {
        let name = |template: &str, u, r, t: Option<u64>| {
            html_file_name(
                std::path::Path::new(template),
                u,
                r,
                t.map(Duration::from_secs),
            )
        };
        assert_eq!(
            name("out/r_{u}_{r}_{t}.html", Some(100), Some(10.0), Some(60)),
            PathBuf::from("out/r_100_10_60.html")
        );
        // Locust's int(): 2.5 users/s and 90.5 s are 2 and 90.
        assert_eq!(
            html_file_name(
                std::path::Path::new("{r}-{t}-{u}{u}"),
                Some(5),
                Some(2.5),
                Some(Duration::from_millis(90_500))
            ),
            PathBuf::from("2-90-55")
        );
        assert_eq!(
            name("r_{u}_{r}_{t}.html", None, None, None),
            PathBuf::from("r_{u}_{r}_{t}.html")
        );
        assert_eq!(
            name("static.html", Some(1), Some(1.0), Some(1)),
            PathBuf::from("static.html")
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
