//! What a run leaves behind: Locust's CSV files, the JSON summary, the HTML
//! report (drawn by headless Chromium), thresholds and exit codes, and
//! settings from `blast.toml` and `BLAST_*` variables.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::blast_cli::Ran;

/// Requests that pass, requests that fail (HTTP 500) and a script error.
pub(super) const MIXED: &str = r#"user("U", #{ wait: constant(0.05), tasks: [task(Fn("home"), 4), task(Fn("broken"), 1), task(Fn("oops"), 1)] });
fn home() { http::get("/"); }
fn broken() { http::get("/status/500"); }
fn oops() { throw "boom, on purpose"; }
"#;

/// Only requests that pass.
pub(super) const CLEAN: &str = r#"user("U", #{ wait: constant(0.05), tasks: [Fn("home")] });
fn home() { http::get("/"); }
"#;

/// A `blast` command in `dir` with no `BLAST_*` variable but `env`.
pub(super) fn blast_command(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_blast"));
    cmd.current_dir(dir).args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BLAST_") {
            cmd.env_remove(name);
        }
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}

/// Runs `blast` in `dir` with only `env` for `BLAST_*` variables.
pub(super) fn blast_in(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Ran {
    let out = blast_command(dir, env, args)
        .output()
        .expect("the blast binary runs");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub(super) fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("the summary is JSON")
}

/// A CSV file's records, header included, read as a CSV reader would.
pub(super) fn records(path: &Path) -> Vec<Vec<String>> {
    ::csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

pub(super) fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A percentile as the CSV writes it: in Locust's buckets.
pub(super) fn locust_ms(v: &serde_json::Value) -> String {
    blast_control::csv::locust_bucket(v.as_f64().unwrap()).to_string()
}

/// The median as the CSV writes it: its bucket, clamped to the minimum and
/// the maximum of `e` (a JSON endpoint), as Locust does.
pub(super) fn locust_median(e: &serde_json::Value) -> String {
    let median = blast_control::csv::locust_bucket(e["percentiles_ms"]["50"].as_f64().unwrap());
    let (min, max) = (e["min_ms"].as_f64().unwrap(), e["max_ms"].as_f64().unwrap());
    if median as f64 > max {
        blast_control::csv::py_float(max)
    } else if (median as f64) < min {
        blast_control::csv::py_float(min)
    } else {
        median.to_string()
    }
}

mod config;
mod csv_files;
mod files;
mod html;
mod locust_fixtures;
mod synthetic;
mod thresholds;
