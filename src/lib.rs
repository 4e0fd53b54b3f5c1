//! The `blast` command: parses the command line, builds a run plan and
//! hands it to the control crate. Tests call [`main_with_args`] in-process.
//!
//! Exit codes: 0 for a completed run (or a passing `check`), 1 for a setup
//! or runtime error (one line on stderr says why), 2 for a usage error, 3
//! when a threshold failed, 4 when the run stopped early; when a request
//! failed or the script raised an error, `--exit-code-on-error N` (default
//! 1, as in Locust).

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
mod logger;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use blast_control::stop_on::StopCondition;
use blast_control::threshold::{self, ThresholdError};
use blast_control::{
    Arrivals, Iterations, Load, OpenSettings, OutputOptions, RunOutcome, RunPlan, ThresholdOptions,
};
use blast_engine::http::Origin;
use blast_script::{Scenario, TagFilter, TaskDef, TaskKind, WaitTime};

use cli::{CheckArgs, Command, DemoArgs, RunArgs, TargetArgs};

/// Exit code of a completed run.
pub const EXIT_OK: i32 = 0;
/// Exit code of a setup error.
pub const EXIT_SETUP: i32 = 1;
/// Exit code of a usage error (the argument parser's, or a missing
/// `--scenario`/`--host`).
pub const EXIT_USAGE: i32 = 2;
/// Exit code of a run in which a threshold failed.
pub const EXIT_THRESHOLD: i32 = 3;
/// Exit code of a run stopped early by a stop condition (`--stop-on`) or a
/// script's `stop_test()`.
pub const EXIT_STOPPED_EARLY: i32 = 4;
/// Exit code of a run in which a request failed or the script raised an
/// error, unless `--exit-code-on-error` says otherwise (Locust's default).
pub const EXIT_ON_ERROR_DEFAULT: u8 = 1;

/// A usage error found after parsing (a required setting missing from the
/// command line, the environment and the config file).
#[derive(Debug)]
pub struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The bundled quick-start scenario, as `blast demo` runs it.
const QUICKSTART: &str = include_str!("../examples/quickstart.rhai");

/// Runs blast with `args` (the first is the program name); returns the exit
/// code.
pub fn main_with_args(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> i32 {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match config::parse(&args) {
        Ok(config::Invocation::Command(cli)) => cli,
        Ok(config::Invocation::PrintConfig(toml)) => {
            print!("{toml}");
            return EXIT_OK;
        }
        Err(config::ParseError::Clap(e)) => {
            let _ = e.print();
            return e.exit_code();
        }
        Err(config::ParseError::Config(message)) => {
            eprintln!("error: {message}");
            return EXIT_SETUP;
        }
    };
    let (level, logfile) = match &cli.command {
        Command::Run(args) => (args.loglevel, args.logfile.clone()),
        _ => (cli::LogLevel::Info, None),
    };
    let result = logger::configure(level, logfile.as_deref()).and_then(|()| match cli.command {
        Command::Run(args) => run(*args),
        Command::Demo(args) => demo(args),
        Command::Target(args) => target(args),
        Command::Check(args) => check(&args),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                EXIT_USAGE
            } else {
                EXIT_SETUP
            }
        }
    }
}

/// Set when the user presses Ctrl-C: the run stops gracefully. A second
/// Ctrl-C exits at once.
fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // Only the first caller installs the handler; tests that run blast
        // in-process share it.
        let _ = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
        flag
    })
    .clone()
}

fn default_cores() -> usize {
    blast_engine::allowed_cpus().len().max(1)
}

fn load_scenario(
    path: &Path,
    tags: &cli::TagArgs,
    user_types: &[String],
) -> anyhow::Result<Scenario> {
    Ok(Scenario::load_with_tags(
        path,
        TagFilter {
            include: tags.tags.clone(),
            exclude: tags.exclude_tags.clone(),
            user_types: user_types.to_vec(),
        },
    )?)
}

/// Resolves the hosts user types name, in the scenario's order, then the
/// hosts the script names in absolute URLs. One of the latter that does not
/// resolve is left to be looked up on first use (its requests then fail
/// as `cannot resolve host`), with a warning.
fn extra_hosts(scenario: &Scenario) -> anyhow::Result<Vec<Origin>> {
    let mut hosts = scenario
        .extra_hosts()
        .iter()
        .map(|h| Origin::resolve(h).with_context(|| format!("bad user type host {h:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for url in scenario.literal_hosts() {
        match Origin::resolve(url) {
            Ok(origin) => hosts.push(origin),
            Err(e) => log::warn!("{}: {e}", scenario.file()),
        }
    }
    Ok(hosts)
}

fn run(args: RunArgs) -> anyhow::Result<i32> {
    let missing = |what: &str, flag: &str, key: &str| {
        UsageError(format!(
            "no {what}: give {flag}, {} or `{key} = ...` in {}",
            config::env_name(key),
            config::DEFAULT_FILE
        ))
    };
    let Some(scenario_path) = args.scenario.clone() else {
        return Err(missing("scenario", "-s/--scenario FILE", "scenario").into());
    };
    // Bad thresholds stop the run before anything else is done.
    threshold::thresholds_from(&[], &args.thresholds).map_err(threshold_error)?;
    for expr in &args.stop_on {
        StopCondition::parse(expr).map_err(|e| UsageError(e.to_string()))?;
    }
    if args.users == Some(0) {
        bail!("--users must be at least 1");
    }
    if let Some(rate) = args.spawn_rate
        && !(rate > 0.0 && rate.is_finite())
    {
        bail!("--spawn-rate must be a positive number of users per second");
    }
    let stages = match &args.stages {
        Some(text) => Some(cli::parse_stages(text, false).map_err(UsageError)?),
        None => None,
    };
    let rate_stages = match &args.rate_stages {
        Some(text) => Some(cli::parse_stages(text, true).map_err(UsageError)?),
        None => None,
    };
    let open_model = args.rate.is_some() || rate_stages.is_some();
    if args.max_users == Some(0) {
        bail!("--max-users must be at least 1");
    }
    if !open_model && args.max_users.is_some() {
        log::warn!("--max-users applies to the open model (--rate, --rate-stages) only");
    }
    if open_model && args.iterations_per_user.is_some() {
        return Err(UsageError(
            "--iterations-per-user needs users that live through the run (the closed model); with --rate, use --iterations".into(),
        )
        .into());
    }
    if args.iterations == Some(0) || args.iterations_per_user == Some(0) {
        bail!("--iterations must be at least 1");
    }
    if args.cores == Some(0) {
        bail!("--cores must be at least 1");
    }
    if args.run_time.is_some_and(|t| t.is_zero()) {
        bail!("--run-time must be more than 0: leave it out to run until Ctrl-C");
    }
    if args.timeout.is_zero() {
        bail!("--timeout must be more than 0");
    }
    if args.print_interval < Duration::from_millis(100) {
        bail!("--print-interval must be at least 100ms");
    }
    let scenario = load_scenario(&scenario_path, &args.tags, &args.user_types)?;
    let host_url = match args.host.clone() {
        Some(url) => url,
        None => host_of_every_type(&scenario).map_err(|without| {
            UsageError(format!(
                "{}, or a `host` to user type(s) {without}",
                missing("host", "-H/--host URL", "host")
            ))
        })?,
    };
    let thresholds = threshold::thresholds_from(scenario.thresholds(), &args.thresholds)
        .map_err(threshold_error)?;
    if args.abort_on_fail && thresholds.is_empty() {
        log::warn!("--abort-on-fail without a threshold does nothing");
    }
    let host = resolve_host(&host_url)?;
    let explicit = args.users.is_some() || args.stages.is_some() || open_model;
    let load = if let Some(stages) = stages {
        Load::Stages(stages)
    } else if open_model {
        Load::Rate {
            start: args.rate.unwrap_or(0.0),
            stages: rate_stages.unwrap_or_default(),
        }
    } else if scenario.has_shape() && !explicit {
        Load::Shape
    } else {
        Load::Users
    };
    if scenario.has_shape() && explicit {
        log::warn!("the scenario's shape() is not used: the command line sets the load");
    }
    let cores = args.cores.unwrap_or_else(default_cores);
    if let Some(max) = args.max_users
        && open_model
        && (max as usize) < cores
    {
        bail!("--max-users {max} is less than --cores {cores}: every core needs a user");
    }
    let (users, spawn_rate) = (args.users.unwrap_or(1), args.spawn_rate.unwrap_or(1.0));
    // Locust's {u} and {r} in --html: the users and spawn rate of -u/-r.
    let users_load = matches!(load, Load::Users);
    let plan = RunPlan {
        extra_hosts: extra_hosts(&scenario)?,
        scenario,
        host,
        users,
        spawn_rate,
        load,
        open: OpenSettings {
            max_users: args.max_users,
            max_wait: args.max_wait,
            arrivals: match args.arrivals {
                cli::ArrivalsArg::Even => Arrivals::Even,
                cli::ArrivalsArg::Poisson => Arrivals::Poisson,
            },
        },
        reset_stats: args.reset_stats,
        iterations: args
            .iterations
            .map(|count| Iterations {
                count,
                per_user: false,
            })
            .or(args.iterations_per_user.map(|count| Iterations {
                count,
                per_user: true,
            })),
        stop_on: args.stop_on,
        duration: args.run_time,
        cores,
        timeout: args.timeout,
        stop_timeout: args.stop_timeout,
        insecure: args.insecure,
        seed: args.seed,
        json: args.json,
        print_interval: args.print_interval,
        only_summary: args.only_summary,
        outputs: OutputOptions {
            csv: args.csv,
            csv_full_history: args.csv_full_history,
            html: args.html.map(|path| {
                cli::html_file_name(
                    &path,
                    users_load.then_some(users),
                    users_load.then_some(spawn_rate),
                    args.run_time,
                )
            }),
            quiet: args.quiet,
        },
        thresholds: ThresholdOptions {
            list: thresholds,
            abort_on_fail: args.abort_on_fail,
            delay: args.threshold_delay,
        },
    };
    execute(&plan, args.exit_code_on_error)
}

/// Resolves a host URL; one without a scheme gets the URL to write instead
/// (`127.0.0.1:8080` parses as a relative URL or a scheme `localhost`).
fn resolve_host(url: &str) -> anyhow::Result<Origin> {
    if let Some(hint) = cli::host_without_scheme(url) {
        bail!("bad --host {url:?}: {hint}");
    }
    Origin::resolve(url).with_context(|| format!("bad --host {url:?}"))
}

/// The host of the first user type when every type names one (then `-H`
/// may be left out, and that host stands for the run's: in the summary and
/// for `on_test_start`'s relative URLs); else the types without one.
fn host_of_every_type(scenario: &Scenario) -> Result<String, String> {
    let without: Vec<&str> = scenario
        .users()
        .iter()
        .filter(|u| u.host.is_none())
        .map(|u| u.name.as_str())
        .collect();
    match scenario.users().first().and_then(|u| u.host.clone()) {
        Some(host) if without.is_empty() => Ok(host),
        _ => Err(without.join(", ")),
    }
}

/// A threshold's error as a setup error (its message underlines the bad
/// part on the lines after the first).
fn threshold_error(e: ThresholdError) -> anyhow::Error {
    anyhow::Error::msg(e.to_string())
}

/// The exit code of a finished run: 1 when it could not go on (`shape()`
/// or a shard failed, the node was lost), else 3 when a threshold failed (or stopped
/// the run), else 4 when a stop condition or `stop_test()` stopped it
/// early, else `exit_code_on_error` ([`EXIT_ON_ERROR_DEFAULT`] when not
/// given) when a request failed (other than cut by blast at the end:
/// `stopped`) or the script raised an error, else 0.
pub fn exit_code(outcome: &RunOutcome, exit_code_on_error: Option<u8>) -> i32 {
    let summary = &outcome.summary;
    if outcome.failed.is_some() {
        return EXIT_SETUP;
    }
    if outcome.threshold_abort.is_some() || summary.thresholds.iter().any(|t| !t.passed) {
        return EXIT_THRESHOLD;
    }
    if summary.stopped_early {
        return EXIT_STOPPED_EARLY;
    }
    // Requests blast cut itself at the end (`--stop-timeout`) are counted
    // as `stopped`, but neither the target nor the script failed them.
    let stopped = blast_proto::FailureKind::Stopped.to_string();
    let failed = summary
        .failures
        .iter()
        .any(|f| f.error != stopped && f.occurrences > 0);
    if failed || !summary.errors.is_empty() {
        i32::from(exit_code_on_error.unwrap_or(EXIT_ON_ERROR_DEFAULT))
    } else {
        EXIT_OK
    }
}

fn execute(plan: &RunPlan, exit_code_on_error: Option<u8>) -> anyhow::Result<i32> {
    let quiet = plan.outputs.quiet;
    if !quiet {
        eprintln!(
            "blast {}: {} on {} core(s) against {} {}",
            env!("CARGO_PKG_VERSION"),
            describe_load(plan),
            plan.cores,
            plan.host.url(),
            blast_control::planned_length(plan)
        );
    }
    let outcome = blast_control::run_local(plan, interrupt_flag())?;
    let summary = &outcome.summary;
    // `--json -`: the report alone on stdout, the rest on stderr.
    let to_stderr = blast_control::output::reports_on_stdout(plan);
    let print = |text: &str| blast_control::output::print_human(to_stderr, text);
    if !quiet {
        print(&format!(
            "{}\n",
            blast_control::console::summary_text(summary)
        ));
    }
    if !summary.thresholds.is_empty() {
        print(&threshold::report_text(&summary.thresholds));
    }
    let code = exit_code(&outcome, exit_code_on_error);
    if let Some(reason) = &outcome.failed {
        eprintln!("error: the run failed ({reason}): exit code {EXIT_SETUP}");
    } else if code == EXIT_THRESHOLD {
        eprintln!("blast: a threshold failed: exit code {EXIT_THRESHOLD}");
    } else if code == EXIT_STOPPED_EARLY {
        eprintln!(
            "blast: stopped early ({}): exit code {EXIT_STOPPED_EARLY}",
            summary.stop_reason
        );
    } else if code != EXIT_OK {
        let script_errors: u64 = summary.errors.iter().map(|e| e.count).sum();
        eprintln!(
            "blast: {} requests failed, {script_errors} script errors: exit code {code} \
             (--exit-code-on-error; 0 to ignore them)",
            summary.total.failures
        );
    }
    Ok(code)
}

/// The load in a few words, for the first line of a run.
fn describe_load(plan: &RunPlan) -> String {
    match &plan.load {
        Load::Users => format!("{} users at {}/s", plan.users, plan.spawn_rate),
        Load::Stages(stages) => format!("{} user stages", stages.len()),
        Load::Rate { start, stages } if stages.is_empty() => {
            format!("{start} iterations/s (open model)")
        }
        Load::Rate { stages, .. } => format!("{} rate stages (open model)", stages.len()),
        Load::Shape => "the scenario's shape()".to_string(),
    }
}

fn demo(args: DemoArgs) -> anyhow::Result<i32> {
    if args.run_time.is_zero()
        || args.users == 0
        || args.spawn_rate.is_nan()
        || args.spawn_rate <= 0.0
    {
        bail!("blast demo needs a --run-time, --users and --spawn-rate more than 0");
    }
    let target = blast_target::Target::start(blast_target::TargetOptions {
        addr: "127.0.0.1:0".parse().expect("a literal address"),
        threads: 1,
        access_log: None,
        stall: None,
    })
    .context("cannot start the built-in target")?;
    let url = format!("http://{}", target.addr());
    eprintln!("Built-in target listening on {url}");
    let scenario = Scenario::from_source("examples/quickstart.rhai", QUICKSTART)?;
    let extra_hosts = extra_hosts(&scenario)?;
    // One core for the load, the rest (at least the target's thread) left
    // to the target.
    let cores = (default_cores() / 2).max(1);
    let plan = RunPlan {
        scenario,
        extra_hosts,
        host: Origin::resolve(&url)?,
        users: args.users,
        spawn_rate: args.spawn_rate,
        load: Load::Users,
        open: OpenSettings::default(),
        reset_stats: false,
        iterations: None,
        stop_on: Vec::new(),
        duration: Some(args.run_time),
        cores,
        timeout: Duration::from_secs(60),
        stop_timeout: Duration::from_secs(10),
        insecure: false,
        seed: None,
        json: args.json,
        print_interval: Duration::from_secs(2),
        only_summary: false,
        outputs: OutputOptions::default(),
        thresholds: ThresholdOptions::default(),
    };
    let code = execute(&plan, None)?;
    let counts = target.counts();
    target.stop();
    eprintln!("The target counted {} requests.", counts.total);
    Ok(code)
}

fn target(args: TargetArgs) -> anyhow::Result<i32> {
    blast_target::serve_forever(blast_target::TargetOptions {
        addr: std::net::SocketAddr::new(args.bind, args.port),
        threads: args.threads.max(1),
        access_log: args.access_log,
        stall: args.stall,
    })?;
    Ok(EXIT_OK)
}

fn check(args: &CheckArgs) -> anyhow::Result<i32> {
    let scenario = load_scenario(&args.scenario, &args.tags, &args.user_types)?;
    threshold::thresholds_from(scenario.thresholds(), &[]).map_err(threshold_error)?;
    print!("{}", describe(&scenario));
    Ok(EXIT_OK)
}

/// What `blast check` prints: each user type with its settings, and each
/// task's share of the type's task runs (Locust's `--show-task-ratio`),
/// groups expanded.
pub fn describe(scenario: &Scenario) -> String {
    use std::fmt::Write;
    let mut out = format!("{}: OK\n", scenario.file());
    let weighted: u32 = scenario
        .users()
        .iter()
        .filter(|u| u.fixed_count.is_none())
        .map(|u| u.weight)
        .sum();
    for user in scenario.users() {
        let share = match user.fixed_count {
            Some(n) => format!("fixed_count {n}"),
            None => format!(
                "weight {}, {:.1}% of users",
                user.weight,
                f64::from(user.weight) * 100.0 / f64::from(weighted.max(1))
            ),
        };
        let wait = match user.wait {
            WaitTime::None => "no wait".to_string(),
            w => format!("wait {w}"),
        };
        let mut extras = Vec::new();
        if user.sequential {
            extras.push("sequential".to_string());
        }
        if let Some(f) = &user.on_start {
            extras.push(format!("on_start {f}()"));
        }
        if let Some(f) = &user.on_stop {
            extras.push(format!("on_stop {f}()"));
        }
        if let Some(h) = &user.host {
            extras.push(format!("host {h}"));
        }
        let extras = if extras.is_empty() {
            String::new()
        } else {
            format!(", {}", extras.join(", "))
        };
        let _ = writeln!(out, "\nuser {} ({share}, {wait}{extras})", user.name);
        describe_tasks(&mut out, &user.tasks, user.sequential, 1.0, 1);
    }
    let thresholds = scenario.thresholds();
    if !thresholds.is_empty() {
        let _ = writeln!(out, "\nthresholds: {}", thresholds.join(", "));
    }
    let mut hosts: Vec<String> = scenario.extra_hosts();
    for host in scenario.literal_hosts() {
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            hosts.push(host.clone());
        }
    }
    if !hosts.is_empty() {
        let _ = writeln!(out, "\nhosts besides -H: {}", hosts.join(", "));
    }
    if scenario.has_shape() {
        let _ = writeln!(
            out,
            "\nload: shape(elapsed) sets it every second (unless -u, --stages or --rate is given)"
        );
    }
    out
}

fn describe_tasks(out: &mut String, tasks: &[TaskDef], sequential: bool, of: f64, depth: usize) {
    use std::fmt::Write;
    let total: u32 = tasks.iter().map(|t| t.weight).sum();
    for task in tasks {
        let ratio = if sequential {
            of / tasks.len() as f64
        } else {
            of * f64::from(task.weight) / f64::from(total.max(1))
        };
        let tags = if task.tags.is_empty() {
            String::new()
        } else {
            format!("  [{}]", task.tags.join(", "))
        };
        let indent = "  ".repeat(depth);
        match &task.kind {
            TaskKind::Function(name) => {
                let _ = writeln!(
                    out,
                    "{indent}{:6.1}%  {name}()  (weight {}){tags}",
                    ratio * 100.0,
                    task.weight
                );
            }
            TaskKind::Group(group) => {
                let order = if group.sequential { ", sequential" } else { "" };
                let wait = group
                    .wait
                    .map(|w| format!(", wait {w}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{indent}{:6.1}%  group  (weight {}{order}{wait}){tags}",
                    ratio * 100.0,
                    task.weight
                );
                describe_tasks(out, &group.tasks, group.sequential, ratio, depth + 1);
            }
        }
    }
}

/// The path of the bundled examples, for tests.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}
