//! Running the real `blast` binary and reading what it leaves behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// Load-heavy tests take this lock, so at most one load test runs at a time
/// on a 2-core machine and none disturbs another's counts or timing.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a run of the binary did.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `blast` with `args`.
pub fn blast(args: &[&str]) -> Ran {
    blast_with_env(args, &[])
}

/// Runs `blast` with `args` and these environment variables.
pub fn blast_with_env(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_blast"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the blast binary runs");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The built-in target on a free loopback port, logging requests in order
/// (`METHOD PATH STATUS` lines) to `log` when given.
pub fn start_target(log: Option<std::path::PathBuf>) -> blast_target::Target {
    start_target_with(blast_target::TargetOptions {
        access_log: log,
        ..Default::default()
    })
}

/// The built-in target with `options`, on a free loopback port.
pub fn start_target_with(options: blast_target::TargetOptions) -> blast_target::Target {
    blast_target::Target::start(blast_target::TargetOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        ..options
    })
    .expect("the built-in target starts")
}

/// A scratch directory with a scenario in it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    /// Writes `source` as `name` and returns its path.
    pub fn file(&self, name: &str, source: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, source).expect("write scenario");
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Runs a headless load test and returns the JSON summary it wrote.
pub fn run_json(scenario: &Path, host: &str, extra: &[&str]) -> (Ran, serde_json::Value) {
    run_json_code(scenario, host, extra, 0)
}

/// [`run_json`] for a run that must exit with `code`.
pub fn run_json_code(
    scenario: &Path,
    host: &str,
    extra: &[&str],
    code: i32,
) -> (Ran, serde_json::Value) {
    let json = scenario.with_extension("summary.json");
    let mut args = vec![
        "run",
        "-s",
        scenario.to_str().unwrap(),
        "-H",
        host,
        "--json",
        json.to_str().unwrap(),
        "--print-interval",
        "1s",
    ];
    args.extend_from_slice(extra);
    let ran = blast(&args);
    assert_eq!(
        ran.code, code,
        "blast run exited with an unexpected code\nstdout:\n{}\nstderr:\n{}",
        ran.stdout, ran.stderr
    );
    let text = std::fs::read_to_string(&json).expect("the JSON summary was written");
    let value = serde_json::from_str(&text).expect("the summary is JSON");
    (ran, value)
}

/// Total requests in a summary.
pub fn total_requests(summary: &serde_json::Value) -> u64 {
    summary["total"]["requests"]
        .as_u64()
        .expect("total.requests")
}

/// The endpoint row of a summary with this method and name.
pub fn endpoint<'a>(
    summary: &'a serde_json::Value,
    method: &str,
    name: &str,
) -> &'a serde_json::Value {
    summary["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["method"] == method && e["name"] == name)
        .unwrap_or_else(|| panic!("no endpoint {method} {name} in {summary:#}"))
}

/// Failures of a summary as (name, error, occurrences).
pub fn failures(summary: &serde_json::Value) -> Vec<(String, String, u64)> {
    summary["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["error"].as_str().unwrap().to_string(),
                f["occurrences"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Checks `summary` against the checked-in schema.
pub fn assert_matches_schema(summary: &serde_json::Value) {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/summary.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is valid");
    let errors: Vec<String> = validator
        .iter_errors(summary)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "summary does not match docs/summary.schema.json:\n{}",
        errors.join("\n")
    );
}

/// A scenario with one user type of each kind, each on its own path.
const THREE_TYPES: &str = "user(\"Shopper\", #{ weight: 3, wait: constant(0.02), tasks: [task(Fn(\"shop\"), 1, [\"buy\"])] });\n\
user(\"Admin\", #{ fixed_count: 1, wait: constant(0.02), tasks: [task(Fn(\"admin\"), 1, [\"buy\"])] });\n\
user(\"Bot\", #{ wait: constant(0.02), tasks: [task(Fn(\"bot\"), 1, [\"crawl\"])] });\n\
fn shop() { http::get(\"/items\"); }\nfn admin() { http::get(\"/echo\"); }\nfn bot() { http::get(\"/status/200\"); }\n";

/// The first `error:` line of a run.
fn error_line(ran: &Ran) -> &str {
    ran.stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line:\n{}", ran.stderr))
}

#[test]
fn bad_numbers_and_durations_say_what_the_flag_takes() {
    let scratch = Scratch::new();
    let scenario = scratch.file("s.rhai", THREE_TYPES);
    let s = scenario.to_str().unwrap();
    // Negative numbers reach the parser in both spellings (clap took `-5`
    // for a flag) and every message says what is wanted.
    let cases: [(&[&str], &str); 12] = [
        (&["-u", "-5"], "users must be a whole number ≥ 1"),
        (&["--users=-5"], "users must be a whole number ≥ 1"),
        (&["-u", "ten"], "users must be a whole number ≥ 1"),
        (&["-r", "fast"], "must be a number more than 0"),
        (&["--cores", "-1"], "cores must be a whole number ≥ 1"),
        (
            &["--iterations", "1.5"],
            "iterations must be a whole number ≥ 1",
        ),
        (&["--max-users=-3"], "users must be a whole number ≥ 1"),
        (&["--seed", "-1"], "seed must be a whole number ≥ 0"),
        (&["--exit-code-on-error", "256"], "from 0 to 255"),
        (&["-t", "-5"], "non-negative number of seconds"),
        (&["-t", "-5s"], "not a duration like 30s"),
        (&["--rate", "-5/s"], "must be a non-negative number"),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["run", "-s", s, "-H", "http://127.0.0.1:9"];
        args.extend_from_slice(flags);
        let ran = blast(&args);
        assert_eq!(ran.code, 2, "{flags:?}: {}", ran.stderr);
        let line = error_line(&ran);
        assert!(line.contains(needle), "{flags:?}: {line}");
        assert!(!line.contains("unexpected argument"), "{flags:?}: {line}");
    }
    // Values that parse but are out of range: a setup error, as before.
    let cases: [(&[&str], &str); 4] = [
        (&["-t", "0"], "--run-time must be more than 0"),
        (&["--run-time=0s"], "--run-time must be more than 0"),
        (&["-r", "-5"], "--spawn-rate must be a positive number"),
        (&["-u", "0"], "--users must be at least 1"),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["run", "-s", s, "-H", "http://127.0.0.1:9"];
        args.extend_from_slice(flags);
        let ran = blast(&args);
        assert_eq!(ran.code, 1, "{flags:?}: {}", ran.stderr);
        assert!(
            error_line(&ran).contains(needle),
            "{flags:?}: {}",
            ran.stderr
        );
    }
    for flags in [["-t", "0"], ["-u", "0"], ["-r", "-1"]] {
        let ran = blast(&["demo", flags[0], flags[1]]);
        assert_eq!(ran.code, 1, "{flags:?}: {}", ran.stderr);
        assert!(error_line(&ran).contains("more than 0"), "{}", ran.stderr);
    }
    let ran = blast(&["target", "--port", "-1"]);
    assert_eq!(ran.code, 2);
    assert!(
        error_line(&ran).contains("from 0 to 65535"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_host_without_a_scheme_gets_the_url_to_write() {
    let scratch = Scratch::new();
    let scenario = scratch.file("s.rhai", THREE_TYPES);
    for (host, want) in [
        ("127.0.0.1:8080", "write http://127.0.0.1:8080"),
        ("localhost:8080", "write http://localhost:8080"),
        ("example.com", "write http://example.com"),
        ("example.com:443/api", "write https://example.com:443/api"),
    ] {
        let ran = blast(&["run", "-s", scenario.to_str().unwrap(), "-H", host]);
        assert_eq!(ran.code, 1, "{host}: {}", ran.stderr);
        let line = error_line(&ran);
        assert!(line.contains(want), "{host}: {line}");
        assert!(!line.contains("relative URL"), "{host}: {line}");
    }
}

#[test]
fn locust_spellings_are_accepted() {
    let scratch = Scratch::new();
    let scenario = scratch.file("s.rhai", THREE_TYPES);
    let s = scenario.to_str().unwrap();
    // -f for -s, --headless accepted, -T/-E with space-separated values.
    let ran = blast(&[
        "run",
        "-f",
        s,
        "--headless",
        "-T",
        "buy",
        "crawl",
        "-E",
        "x",
        "y",
        "--print-config",
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let printed: toml::Table = toml::from_str(&ran.stdout).unwrap();
    assert_eq!(printed["scenario"].as_str(), Some(s));
    assert_eq!(printed["headless"].as_bool(), Some(true));
    let list = |key: &str| -> Vec<String> {
        printed[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list("tags"), ["buy", "crawl"]);
    assert_eq!(list("exclude-tags"), ["x", "y"]);
    // Commas and spaces mix.
    let ran = blast(&["check", "-f", s, "-T", "buy,x", "crawl"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout.matches("\nuser ").count(), 3, "{}", ran.stdout);
}

#[test]
fn user_types_named_on_the_command_line_are_the_only_ones() {
    let scratch = Scratch::new();
    let scenario = scratch.file("s.rhai", THREE_TYPES);
    let s = scenario.to_str().unwrap();
    let ran = blast(&["check", "-s", s, "Bot", "Admin"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("user Bot (weight 1, 100.0% of users"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("user Admin (fixed_count 1"),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains("user Shopper"), "{}", ran.stdout);
    // After -T's words, `--` ends them.
    let ran = blast(&["check", "-s", s, "-T", "buy", "--", "Shopper"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout.matches("\nuser ").count(), 1, "{}", ran.stdout);
    assert!(ran.stdout.contains("user Shopper"), "{}", ran.stdout);
    // Before `--`, a user type lands among the tags: said, not run as a
    // tag no task has.
    let ran = blast(&["check", "-s", s, "-T", "buy", "Shopper"]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        error_line(&ran).contains("took \"Shopper\", a user type and no task's tag"),
        "{}",
        ran.stderr
    );
    let ran = blast(&["check", "-s", s, "Shopper", "Shoper"]);
    assert_eq!(ran.code, 1);
    assert!(
        error_line(&ran).contains("no user type \"Shoper\"")
            && error_line(&ran).contains("Shopper, Admin, Bot"),
        "{}",
        ran.stderr
    );

    // A run: only the chosen types send requests, with their fixed counts.
    let _one = exclusive();
    let target = start_target(None);
    let url = format!("http://{}", target.addr());
    let ran = blast(&[
        "run",
        "-s",
        s,
        "-H",
        &url,
        "-u",
        "3",
        "-r",
        "100",
        "--iterations",
        "60",
        "--cores",
        "1",
        "-q",
        "Shopper",
        "Admin",
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let counts = target.counts();
    assert_eq!(counts.path("/status/200"), 0);
    assert!(
        counts.path("/echo") > 0 && counts.path("/items") > 0,
        "{counts:?}"
    );
    assert_eq!(counts.total, 60);
    // 2 Shoppers and 1 Admin take turns on one core: the Shoppers' share
    // is about two thirds.
    let shop = counts.path("/items") as f64 / 60.0;
    assert!((0.4..0.9).contains(&shop), "{counts:?}");
}

#[test]
fn the_host_may_come_from_every_user_type() {
    let _one = exclusive();
    let target = start_target(None);
    let url = format!("http://{}", target.addr());
    let scratch = Scratch::new();
    let both = scratch.file(
        "both.rhai",
        &format!(
            "user(\"A\", #{{ host: \"{url}\", wait: constant(0.02), tasks: [Fn(\"a\")] }});\nuser(\"B\", #{{ host: \"{url}/api\", wait: constant(0.02), tasks: [Fn(\"b\")] }});\nfn a() {{ http::get(\"/items\"); }}\nfn b() {{ http::get(\"/echo\"); }}\nfn on_test_start() {{ http::get(\"/status/204\"); }}\n"
        ),
    );
    let json = scratch.path("both.json");
    let ran = blast(&[
        "run",
        "-s",
        both.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "-u",
        "2",
        "-r",
        "100",
        "--iterations",
        "20",
        "--cores",
        "1",
        "-q",
        // B's /api/echo is a 404 on the target: counted, not the point here.
        "--exit-code-on-error",
        "0",
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let counts = target.counts();
    assert_eq!(counts.total, 21, "{counts:?}");
    assert!(
        counts.path("/items") > 0 && counts.path("/api/echo") > 0,
        "{counts:?}"
    );
    // The first type's host stands for the run's: on_test_start's relative
    // URL went there, and the summary names it.
    assert_eq!(counts.path("/status/204"), 1, "{counts:?}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["parameters"]["host"].as_str(), Some(url.as_str()));

    let partial = scratch.file(
        "partial.rhai",
        &format!(
            "user(\"A\", #{{ host: \"{url}\", tasks: [Fn(\"a\")] }});\nuser(\"B\", #{{ tasks: [Fn(\"a\")] }});\nuser(\"C\", #{{ tasks: [Fn(\"a\")] }});\nfn a() {{ http::get(\"/items\"); }}\n"
        ),
    );
    let ran = blast(&["run", "-s", partial.to_str().unwrap()]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    let line = error_line(&ran);
    assert!(
        line.contains("no host") && line.contains("user type(s) B, C"),
        "{line}"
    );
    // Choosing only the type with a host is enough.
    let ran = blast(&[
        "run",
        "-s",
        partial.to_str().unwrap(),
        "--iterations",
        "3",
        "-q",
        "A",
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(target.counts().total, 21 + 3);
}

#[test]
fn html_file_names_get_users_spawn_rate_and_run_time() {
    let _one = exclusive();
    let target = start_target(None);
    let url = format!("http://{}", target.addr());
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "s.rhai",
        "user(\"U\", #{ wait: constant(0.2), tasks: [Fn(\"t\")] });\nfn t() { http::get(\"/\"); }\n",
    );
    let template = scratch.path("report_{u}_{r}_{t}.html");
    let ran = blast(&[
        "run",
        "-s",
        scenario.to_str().unwrap(),
        "-H",
        &url,
        "-u",
        "3",
        "-r",
        "2.5",
        "-t",
        "1s",
        "-q",
        "--html",
        template.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // Locust's whole numbers: 2.5 users/s is {r} = 2.
    assert!(
        scratch.path("report_3_2_1.html").is_file(),
        "{:?}",
        ls(&scratch)
    );
    // Only what is set is replaced: no -t, so {t} stays.
    let ran = blast(&[
        "run",
        "-s",
        scenario.to_str().unwrap(),
        "-H",
        &url,
        "--iterations",
        "2",
        "-q",
        "--html",
        template.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        scratch.path("report_1_1_{t}.html").is_file(),
        "{:?}",
        ls(&scratch)
    );
    // Stages set no -u or -r: {u} and {r} stay too.
    let ran = blast(&[
        "run",
        "-s",
        scenario.to_str().unwrap(),
        "-H",
        &url,
        "--stages",
        "1s:2",
        "-q",
        "--html",
        template.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(template.is_file(), "{:?}", ls(&scratch));
}

/// The names of the files in a scratch directory.
fn ls(scratch: &Scratch) -> Vec<String> {
    std::fs::read_dir(scratch.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn log_lines_follow_loglevel_to_stderr_and_the_logfile() {
    let _one = exclusive();
    let target = start_target(None);
    let url = format!("http://{}", target.addr());
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "s.rhai",
        "user(\"U\", #{ tasks: [Fn(\"t\")] });\nfn t() { http::get(\"/\"); log(\"logged line\"); print(\"printed line\"); debug(\"debug line\"); }\n",
    );
    let run = |level: &str, logfile: &Path| {
        let ran = blast(&[
            "run",
            "-s",
            scenario.to_str().unwrap(),
            "-H",
            &url,
            "--iterations",
            "2",
            "--cores",
            "1",
            "-q",
            // Not the open model: a warning.
            "--max-users",
            "5",
            "-L",
            level,
            "--logfile",
            logfile.to_str().unwrap(),
        ]);
        assert_eq!(ran.code, 0, "{level}: {}", ran.stderr);
        let file = std::fs::read_to_string(logfile).unwrap();
        (ran.stderr, file)
    };
    let (stderr, file) = run("info", &scratch.path("info.log"));
    assert_eq!(stderr.matches("logged line").count(), 2, "{stderr}");
    assert_eq!(stderr.matches("printed line").count(), 2, "{stderr}");
    assert!(!stderr.contains("debug line"), "{stderr}");
    assert!(stderr.contains("warning: --max-users applies"), "{stderr}");
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 5, "{file}");
    assert!(
        lines[0].starts_with('[')
            && lines[0].ends_with(
                "] WARNING: --max-users applies to the open model (--rate, --rate-stages) only"
            ),
        "{file}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with("] INFO: [U#0] logged line"))
            .count(),
        2,
        "{file}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with("] INFO: [U#0] printed line"))
            .count(),
        2,
        "{file}"
    );

    let (stderr, file) = run("DEBUG", &scratch.path("debug.log"));
    assert_eq!(stderr.matches("debug line").count(), 2, "{stderr}");
    assert_eq!(file.matches("] DEBUG: ").count(), 2, "{file}");

    let (stderr, file) = run("Warning", &scratch.path("warning.log"));
    assert!(!stderr.contains(" line"), "{stderr}");
    assert!(stderr.contains("warning: --max-users"), "{stderr}");
    assert_eq!(file.lines().count(), 1, "{file}");

    let (stderr, file) = run("CRITICAL", &scratch.path("critical.log"));
    assert!(
        !stderr.contains(" line") && !stderr.contains("warning"),
        "{stderr}"
    );
    assert!(file.is_empty(), "{file}");

    // The file is appended to, as Locust's.
    let (_, file) = run("warning", &scratch.path("info.log"));
    assert_eq!(file.lines().count(), 6, "{file}");

    // Other commands show log lines too (a top level that prints runs in
    // `check`), at INFO.
    let printing = scratch.file(
        "printing.rhai",
        "print(\"top level\");\nuser(\"U\", #{ tasks: [Fn(\"t\")] });\nfn t() {}\n",
    );
    let ran = blast(&["check", "-s", printing.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stderr.contains("top level"), "{}", ran.stderr);

    let ran = blast(&[
        "run",
        "-s",
        scenario.to_str().unwrap(),
        "-H",
        &url,
        "--loglevel",
        "loud",
    ]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        "{}",
        ran.stderr
    );
    let ran = blast(&[
        "run",
        "-s",
        scenario.to_str().unwrap(),
        "-H",
        &url,
        "--logfile",
        scratch.path("no/such/dir/x.log").to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 1);
    assert!(
        error_line(&ran).contains("cannot open --logfile"),
        "{}",
        ran.stderr
    );
}

#[test]
fn target_help_lists_the_endpoints() {
    let ran = blast(&["target", "--help"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    for endpoint in blast_target::ENDPOINTS {
        let line = ran
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", endpoint.path)))
            .unwrap_or_else(|| panic!("no {}: {}", endpoint.path, ran.stdout));
        assert!(line.contains(endpoint.answer), "{line}");
    }
    assert!(ran.stdout.contains("the request as JSON"), "{}", ran.stdout);
}
