//! Settings from `blast.toml`, `BLAST_*` variables and the command line.

use super::*;
use crate::blast_cli::{Scratch, exclusive, start_target};

#[test]
fn settings_come_from_the_file_then_the_environment_then_the_command_line() {
    let scratch = Scratch::new();
    std::fs::write(
        scratch.path("blast.toml"),
        "# a comment\nusers = 100\nspawn-rate = 2.5\nrun_time = \"30s\"\nhost = \"http://127.0.0.1:9\"\nscenario = \"s.rhai\"\nthreshold = [\"p95<300ms\", \"GET /: rps>1\"]\ninsecure = true\n",
    )
    .unwrap();
    let ran = blast_in(
        scratch.dir.path(),
        &[
            ("BLAST_USERS", "7"),
            ("BLAST_RUN_TIME", "1m"),
            ("BLAST_CSV", "out/x"),
        ],
        &["run", "--print-config", "-t", "5s"],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let printed: toml::Table = toml::from_str(&ran.stdout).expect("--print-config prints TOML");
    assert_eq!(printed["users"].as_integer(), Some(7), "env over file");
    assert_eq!(
        printed["run-time"].as_str(),
        Some("5s"),
        "command line over env"
    );
    assert_eq!(
        printed["spawn-rate"].as_float(),
        Some(2.5),
        "file over default"
    );
    assert_eq!(printed["host"].as_str(), Some("http://127.0.0.1:9"));
    assert_eq!(printed["csv"].as_str(), Some("out/x"));
    assert_eq!(printed["insecure"].as_bool(), Some(true));
    assert_eq!(printed["timeout"].as_str(), Some("60s"), "defaults shown");
    let thresholds: Vec<&str> = printed["threshold"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(thresholds, ["p95<300ms", "GET /: rps>1"]);
    let origin = |key: &str| {
        ran.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .and_then(|l| l.split_once(" # "))
            .map(|(_, origin)| origin.to_string())
            .unwrap_or_else(|| panic!("no {key}: {}", ran.stdout))
    };
    assert_eq!(origin("users"), "BLAST_USERS");
    assert_eq!(origin("run-time"), "command line");
    assert_eq!(origin("spawn-rate"), "blast.toml");
    assert_eq!(origin("timeout"), "default");
    assert!(ran.stdout.contains("# seed is not set"), "{}", ran.stdout);

    // What --print-config prints is a config file that gives the same
    // settings.
    let elsewhere = Scratch::new();
    std::fs::write(elsewhere.path("printed.toml"), &ran.stdout).unwrap();
    let again = blast_in(
        elsewhere.dir.path(),
        &[],
        &["run", "--config", "printed.toml", "--print-config"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    let reprinted: toml::Table = toml::from_str(&again.stdout).unwrap();
    assert_eq!(reprinted, printed);

    // Mistakes in the file name the file, the line and the key.
    let cases = [
        (
            "users = 1\nuserz = 2\n",
            "bad.toml:2: unknown key \"userz\"",
        ),
        (
            "users = \"many\"\n",
            "bad.toml:1: users: invalid value 'many'",
        ),
        ("insecure = \"yes\"\n", "bad.toml:1: insecure is a switch"),
        (
            "tags = \"a\"\nusers = [1, 2]\n",
            "bad.toml:2: users takes one value, not a list",
        ),
        (
            "config = \"other.toml\"\n",
            "bad.toml:1: config cannot be set in a config file",
        ),
        ("users = \n", "bad.toml:1: not valid TOML"),
    ];
    for (text, message) in cases {
        std::fs::write(elsewhere.path("bad.toml"), text).unwrap();
        let ran = blast_in(
            elsewhere.dir.path(),
            &[],
            &["run", "--config", "bad.toml", "--print-config"],
        );
        assert_eq!(ran.code, 1, "{text}: {}", ran.stderr);
        assert!(
            ran.stderr.starts_with(&format!("error: {message}")),
            "{text}: {}",
            ran.stderr
        );
    }
    let ran = blast_in(
        elsewhere.dir.path(),
        &[],
        &["run", "--config", "missing.toml"],
    );
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("cannot read config file missing.toml"),
        "{}",
        ran.stderr
    );

    // Without a scenario anywhere: a usage error.
    let ran = blast_in(
        elsewhere.dir.path(),
        &[],
        &["run", "-H", "http://127.0.0.1:9"],
    );
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("no scenario: give -s/--scenario FILE, BLAST_SCENARIO"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_run_set_up_by_the_file_and_the_environment_alone() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    scratch.file("clean.rhai", CLEAN);
    std::fs::write(
        scratch.path("blast.toml"),
        format!(
            "scenario = \"clean.rhai\"\nhost = \"http://{}\"\nrun-time = 2\ncores = 1\njson = \"out/summary.json\"\nonly-summary = true\n",
            target.addr()
        ),
    )
    .unwrap();
    let ran = blast_in(
        scratch.dir.path(),
        &[("BLAST_USERS", "3"), ("BLAST_SPAWN_RATE", "10")],
        &["run"],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let summary = read_json(&scratch.path("out/summary.json"));
    assert_eq!(summary["parameters"]["users"], 3);
    assert_eq!(summary["parameters"]["spawn_rate"], 10.0);
    assert_eq!(summary["parameters"]["duration_s"], 2.0);
    assert_eq!(summary["parameters"]["cores"], 1);
    assert_eq!(
        target.counts().total,
        summary["total"]["requests"].as_u64().unwrap()
    );
}

#[test]
fn locust_habit_flags_come_from_the_file_and_the_environment_too() {
    let scratch = Scratch::new();
    std::fs::write(
        scratch.path("blast.toml"),
        "headless = true\nloglevel = \"warning\"\nlogfile = \"run.log\"\ntags = [\"a\", \"b\"]\n",
    )
    .unwrap();
    let ran = blast_in(
        scratch.dir.path(),
        &[("BLAST_LOGLEVEL", "debug"), ("BLAST_EXCLUDE_TAGS", "c,d")],
        &["run", "--print-config", "Shopper"],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let printed: toml::Table = toml::from_str(&ran.stdout).unwrap();
    assert_eq!(printed["headless"].as_bool(), Some(true));
    assert_eq!(printed["loglevel"].as_str(), Some("debug"), "env over file");
    assert_eq!(printed["logfile"].as_str(), Some("run.log"));
    assert_eq!(printed["tags"].as_array().unwrap().len(), 2);
    assert_eq!(printed["exclude-tags"].as_array().unwrap().len(), 2);
    // Positional user types are not settings.
    assert!(!ran.stdout.contains("Shopper"), "{}", ran.stdout);
    std::fs::write(scratch.path("blast.toml"), "loglevel = \"loud\"\n").unwrap();
    let ran = blast_in(scratch.dir.path(), &[], &["run", "--print-config"]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr
            .starts_with("error: blast.toml:1: loglevel: invalid value 'loud'"),
        "{}",
        ran.stderr
    );
}
