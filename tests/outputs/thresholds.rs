//! Thresholds: verdicts, exit codes, and bad expressions.

use std::path::Path;

use super::*;
use crate::blast_cli::{Scratch, assert_matches_schema, exclusive, start_target};

#[test]
fn thresholds_pass_with_0_and_fail_with_3_naming_themselves() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let url = format!("http://{}", target.addr());
    let clean = scratch.file("clean.rhai", CLEAN);
    let run = |scenario: &Path, json: &str, time: &str, extra: &[&str]| {
        let json = scratch.path(json);
        let mut args = vec![
            "run",
            "-s",
            scenario.to_str().unwrap(),
            "-H",
            &url,
            "-u",
            "3",
            "-r",
            "10",
            "-t",
            time,
            "--cores",
            "1",
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let ran = blast_in(scratch.dir.path(), &[], &args);
        let summary = read_json(&json);
        (ran, summary)
    };

    // Passing thresholds: exit 0 (and no failed request, so no exit code
    // from --exit-code-on-error either).
    let (ran, summary) = run(
        &clean,
        "pass.json",
        "2s",
        &[
            "--threshold",
            "p95<10s",
            "--threshold",
            "fail_ratio<0.01;GET /: rps>0",
            "--threshold",
            "checks>0.99",
            "--exit-code-on-error",
            "7",
        ],
    );
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    for expr in ["p95<10s", "fail_ratio<0.01", "GET /: rps>0", "checks>0.99"] {
        assert!(
            ran.stdout.contains(&format!("PASS  {expr}  (")),
            "{expr}: {}",
            ran.stdout
        );
    }
    let verdicts = summary["thresholds"].as_array().unwrap();
    assert_eq!(verdicts.len(), 4);
    assert!(
        verdicts.iter().all(|t| t["passed"] == true),
        "{verdicts:#?}"
    );
    assert_matches_schema(&summary);

    // The scenario's thresholds, one replaced from the command line by one
    // that fails: exit 3, naming it with what was measured.
    let declared = scratch.file(
        "declared.rhai",
        &format!("thresholds([\"p95<10s\", \"fail_ratio<0.5\"]);\n{CLEAN}"),
    );
    let (ran, summary) = run(&declared, "fail.json", "2s", &["--threshold", "p95<1us"]);
    assert_eq!(ran.code, 3, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("FAIL  p95<1us  (p95 = "),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("PASS  fail_ratio<0.5  ("),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains("p95<10s"), "replaced: {}", ran.stdout);
    assert!(
        ran.stdout.contains("1 of 2 thresholds failed"),
        "{}",
        ran.stdout
    );
    assert!(ran.stderr.contains("exit code 3"), "{}", ran.stderr);
    let failed: Vec<&serde_json::Value> = summary["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["passed"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["threshold"], "p95<1us");
    assert!(failed[0]["measured"].as_f64().unwrap() >= 0.001);
    assert_matches_schema(&summary);

    // --abort-on-fail stops the run at the first print interval after the
    // delay at which a threshold fails.
    let (ran, summary) = run(
        &clean,
        "abort.json",
        "60s",
        &[
            "--print-interval",
            "1s",
            "--threshold",
            "max<1us",
            "--abort-on-fail",
            "--threshold-delay",
            "2s",
        ],
    );
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert_eq!(summary["stop_reason"], "threshold failed: max<1us");
    assert!(
        ran.stderr.contains("Threshold failed: FAIL  max<1us"),
        "{}",
        ran.stderr
    );
    assert!(
        summary["duration_s"].as_f64().unwrap() >= 2.0,
        "not before the delay"
    );

    // --exit-code-on-error: failed requests and passing thresholds give N;
    // --quiet leaves only the verdicts on stdout.
    let mixed = scratch.file("mixed.rhai", MIXED);
    let (ran, summary) = run(
        &mixed,
        "errors.json",
        "2s",
        &[
            "--exit-code-on-error",
            "7",
            "--threshold",
            "fail_ratio<0.9",
            "--quiet",
        ],
    );
    assert!(summary["total"]["failures"].as_u64().unwrap() > 0);
    assert_eq!(ran.code, 7, "{}", ran.stderr);
    assert!(ran.stderr.contains("exit code 7"), "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", ran.stdout);
    assert_eq!(lines[0], "Thresholds");
    assert!(
        lines[1].starts_with("  PASS  fail_ratio<0.9  (fail_ratio = "),
        "{}",
        lines[1]
    );
    for chatter in ["blast 0.", "All 3 users spawned", "Stopping", "progress:"] {
        assert!(
            !ran.stderr.contains(chatter),
            "--quiet printed {chatter:?}: {}",
            ran.stderr
        );
    }
}

#[test]
fn bad_thresholds_stop_the_run_before_it_starts_pointing_at_the_bad_part() {
    let scratch = Scratch::new();
    let ok = scratch.file("ok.rhai", CLEAN);
    let start = |scenario: &Path, extra: &[&str]| {
        let mut args = vec![
            "run",
            "-s",
            scenario.to_str().unwrap(),
            // Nothing listens there: an error must come before any load.
            "-H",
            "http://127.0.0.1:9",
        ];
        args.extend_from_slice(extra);
        blast_in(scratch.dir.path(), &[], &args)
    };
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--threshold", "p95<300xs"],
            "error: bad --threshold \"p95<300xs\": unknown unit \"xs\" for p95",
            "xs",
        ),
        (
            &["--threshold", "p95<1s", "--threshold", "lat<1s"],
            "error: bad --threshold \"lat<1s\": unknown metric \"lat\"",
            "lat",
        ),
        (
            &["--threshold", "GET /x:p95<1s"],
            "separate an endpoint from the metric with \": \"",
            "GET /x:p95",
        ),
        (
            &["--threshold", "FETCH /x: p95<1s"],
            "unknown method \"FETCH\"",
            "FETCH",
        ),
        (&["--threshold", "fail_ratio<5"], "ratio from 0 to 1", "5"),
    ];
    for &(extra, message, underlined) in cases {
        let ran = start(&ok, extra);
        assert_eq!(ran.code, 1, "{extra:?}: {}", ran.stderr);
        let lines: Vec<&str> = ran.stderr.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("error:"))
            .unwrap_or_else(|| panic!("{extra:?}: {}", ran.stderr));
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("error:")).count(),
            1,
            "{}",
            ran.stderr
        );
        assert!(lines[at].contains(message), "{extra:?}: {}", lines[at]);
        // The expression again, and carets under the bad part.
        let echo = lines[at + 1];
        let carets = lines[at + 2];
        let column = echo.find(underlined).unwrap();
        assert_eq!(carets.find('^'), Some(column), "{}", ran.stderr);
        assert_eq!(carets.trim().len(), underlined.len(), "{}", ran.stderr);
    }
    let declared = scratch.file(
        "declared.rhai",
        &format!("thresholds([\"p9x<1\"]);\n{CLEAN}"),
    );
    let ran = start(&declared, &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("error: bad scenario threshold \"p9x<1\": unknown metric \"p9x\""),
        "{}",
        ran.stderr
    );
    // `blast check` finds it too.
    let ran = blast_in(
        scratch.dir.path(),
        &[],
        &["check", "-s", declared.to_str().unwrap()],
    );
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("bad scenario threshold"),
        "{}",
        ran.stderr
    );
}

#[test]
fn failed_requests_or_script_errors_exit_1_unless_told_otherwise() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let url = format!("http://{}", target.addr());
    let run = |source: &str, extra: &[&str]| {
        let scenario = scratch.file("s.rhai", source);
        let mut args = vec![
            "run",
            "-s",
            scenario.to_str().unwrap(),
            "-H",
            &url,
            "--iterations",
            "6",
            "--cores",
            "1",
        ];
        args.extend_from_slice(extra);
        blast_in(scratch.dir.path(), &[], &args)
    };
    // Every iteration: one request passes, one fails (HTTP 500).
    let failing = r#"user("U", #{ tasks: [Fn("t")] });
fn t() { http::get("/"); http::get("/status/500"); }
"#;
    // As Locust's --exit-code-on-error, which defaults to 1.
    let ran = run(failing, &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("exit code 1 (--exit-code-on-error"),
        "{}",
        ran.stderr
    );
    let ran = run(failing, &["--exit-code-on-error", "0"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // Some requests got through: no word of failing to connect.
    assert!(!ran.stderr.contains("failed to connect"), "{}", ran.stderr);
    // A script error alone, every request passing, is an error too.
    let only_script_errors = r#"user("U", #{ tasks: [Fn("t")] });
fn t() { http::get("/"); throw "boom"; }
"#;
    let ran = run(only_script_errors, &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("0 requests failed, 6 script errors"),
        "{}",
        ran.stderr
    );
    // Every request refused: 1, not 0.
    let scenario = scratch.file("clean.rhai", CLEAN);
    let refused = blast_in(
        scratch.dir.path(),
        &[],
        &[
            "run",
            "-s",
            scenario.to_str().unwrap(),
            "-H",
            "http://127.0.0.1:9",
            "--iterations",
            "3",
            "--cores",
            "1",
        ],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    // A clean run still exits 0.
    let ran = run(CLEAN, &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // Requests blast cuts itself at the end (--stop-timeout) are counted
    // as `stopped`, but failed nothing: 0.
    let slow = scratch.file(
        "slow.rhai",
        "user(\"U\", #{ tasks: [Fn(\"t\")] });\nfn t() { http::get(\"/delay/30000\"); }\n",
    );
    let json = scratch.path("slow.json");
    let cut = blast_in(
        scratch.dir.path(),
        &[],
        &[
            "run",
            "-s",
            slow.to_str().unwrap(),
            "-H",
            &url,
            "-u",
            "2",
            "-r",
            "100",
            "-t",
            "1s",
            "--stop-timeout",
            "0s",
            "--cores",
            "1",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(cut.code, 0, "{}", cut.stderr);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["total"]["failures"], 2, "{summary:#}");
    assert_eq!(
        summary["failures"][0]["error"], "stopped before the response arrived",
        "{summary:#}"
    );
}
