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
