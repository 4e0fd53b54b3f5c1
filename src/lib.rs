//! The `blast` command: parses the command line, builds a run plan and
//! hands it to the control crate. Tests call [`main_with_args`] in-process.
//!
//! Exit codes: 0 for a completed run (or a passing `check`), 1 for a setup
//! error (one line on stderr says why), 2 for a usage error.

#![forbid(unsafe_code)]

pub mod cli;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use blast_control::RunPlan;
use blast_engine::http::Origin;
use blast_script::{Scenario, TagFilter, TaskDef, TaskKind, WaitTime};
use clap::Parser;

use cli::{CheckArgs, Cli, Command, DemoArgs, RunArgs, TargetArgs};

/// Exit code of a completed run.
pub const EXIT_OK: i32 = 0;
/// Exit code of a setup error.
pub const EXIT_SETUP: i32 = 1;

/// The bundled quick-start scenario, as `blast demo` runs it.
const QUICKSTART: &str = include_str!("../examples/quickstart.rhai");

/// Runs blast with `args` (the first is the program name); returns the exit
/// code.
pub fn main_with_args(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Demo(args) => demo(args),
        Command::Target(args) => target(args),
        Command::Check(args) => check(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_SETUP
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

fn load_scenario(path: &Path, tags: &[String], exclude: &[String]) -> anyhow::Result<Scenario> {
    Ok(Scenario::load_with_tags(
        path,
        TagFilter {
            include: tags.to_vec(),
            exclude: exclude.to_vec(),
        },
    )?)
}

/// Resolves the hosts user types name, in the scenario's order.
fn extra_hosts(scenario: &Scenario) -> anyhow::Result<Vec<Origin>> {
    scenario
        .extra_hosts()
        .iter()
        .map(|h| Origin::resolve(h).with_context(|| format!("bad user type host {h:?}")))
        .collect()
}

fn run(args: RunArgs) -> anyhow::Result<i32> {
    if args.users == 0 {
        bail!("--users must be at least 1");
    }
    if !(args.spawn_rate > 0.0 && args.spawn_rate.is_finite()) {
        bail!("--spawn-rate must be a positive number of users per second");
    }
    if args.cores == Some(0) {
        bail!("--cores must be at least 1");
    }
    if args.timeout.is_zero() {
        bail!("--timeout must be more than 0");
    }
    if args.print_interval < Duration::from_millis(100) {
        bail!("--print-interval must be at least 100ms");
    }
    let scenario = load_scenario(&args.scenario, &args.tags, &args.exclude_tags)?;
    let host =
        Origin::resolve(&args.host).with_context(|| format!("bad --host {:?}", args.host))?;
    let plan = RunPlan {
        extra_hosts: extra_hosts(&scenario)?,
        scenario,
        host,
        users: args.users,
        spawn_rate: args.spawn_rate,
        duration: args.run_time,
        cores: args.cores.unwrap_or_else(default_cores),
        timeout: args.timeout,
        stop_timeout: args.stop_timeout,
        insecure: args.insecure,
        seed: args.seed,
        json: args.json,
        print_interval: args.print_interval,
        only_summary: args.only_summary,
    };
    execute(&plan)
}

fn execute(plan: &RunPlan) -> anyhow::Result<i32> {
    eprintln!(
        "blast {}: {} users at {}/s on {} core(s) against {} for {}",
        env!("CARGO_PKG_VERSION"),
        plan.users,
        plan.spawn_rate,
        plan.cores,
        plan.host.url(),
        plan.duration
            .map_or("until Ctrl-C".to_string(), |d| format!(
                "{}",
                humantime::format_duration(d)
            ))
    );
    let outcome = blast_control::run_local(plan, interrupt_flag())?;
    println!("{}", blast_control::console::summary_text(&outcome.summary));
    Ok(EXIT_OK)
}

fn demo(args: DemoArgs) -> anyhow::Result<i32> {
    let target = blast_target::Target::start(blast_target::TargetOptions {
        addr: "127.0.0.1:0".parse().expect("a literal address"),
        threads: 1,
        access_log: None,
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
        duration: Some(args.run_time),
        cores,
        timeout: Duration::from_secs(60),
        stop_timeout: Duration::from_secs(10),
        insecure: false,
        seed: None,
        json: args.json,
        print_interval: Duration::from_secs(2),
        only_summary: false,
    };
    let code = execute(&plan)?;
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
    })?;
    Ok(EXIT_OK)
}

fn check(args: &CheckArgs) -> anyhow::Result<i32> {
    let scenario = load_scenario(&args.scenario, &args.tags, &args.exclude_tags)?;
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
