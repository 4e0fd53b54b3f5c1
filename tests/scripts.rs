//! Scenarios that go wrong: a script error inside a task is counted with its
//! position and the run goes on; runaway recursion is stopped cleanly; a
//! scenario that cannot run stops `blast run` before any load.

use crate::blast_cli::{Scratch, blast, exclusive, run_json_code, start_target, total_requests};

#[test]
fn a_script_error_is_counted_with_its_position_and_the_run_goes_on() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "oops.rhai",
        "user(\"U\", #{ wait: constant(0.02), tasks: [Fn(\"t\")] });\n\nfn t() {\n    http::get(\"/\");\n    let x = undefined_variable + 1;\n}\n",
    );
    let url = format!("http://{}", target.addr());
    let (_, summary) = run_json_code(
        &scenario,
        &url,
        &["-u", "2", "-r", "10", "-t", "2s", "--cores", "1"],
        // Script errors: exit 1.
        1,
    );
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{summary:#}");
    let location = errors[0]["location"].as_str().unwrap();
    assert!(location.ends_with("oops.rhai:5:13"), "{location}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("undefined_variable")
    );
    let requests = total_requests(&summary);
    // Each task sent its request before failing, and users went on.
    assert_eq!(errors[0]["count"].as_u64().unwrap(), requests);
    assert!(requests > 10, "{requests}");
    assert_eq!(target.counts().total, requests);
}

#[test]
fn infinite_recursion_is_stopped_with_an_error_not_a_crash() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "deep.rhai",
        "user(\"U\", #{ wait: constant(0.05), tasks: [Fn(\"t\")] });\nfn down(n) { down(n + 1) }\nfn t() {\n    http::get(\"/\");\n    down(0);\n}\n",
    );
    let url = format!("http://{}", target.addr());
    let (_, summary) = run_json_code(
        &scenario,
        &url,
        &["-u", "2", "-r", "10", "-t", "2s", "--cores", "1"],
        // Script errors: exit 1.
        1,
    );
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{summary:#}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("call stack too deep"),
        "{summary:#}"
    );
    assert!(
        errors[0]["location"]
            .as_str()
            .unwrap()
            .contains("deep.rhai:3:")
    );
    assert!(errors[0]["count"].as_u64().unwrap() >= 2);
}

#[test]
fn a_runaway_loop_is_stopped_and_other_users_keep_going() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "spin.rhai",
        "user(\"Spin\", #{ tasks: [Fn(\"spin\")] });\nuser(\"Busy\", #{ wait: constant(0.05), tasks: [Fn(\"get\")] });\nfn spin() { loop { } }\nfn get() { http::get(\"/\"); }\n",
    );
    let url = format!("http://{}", target.addr());
    let (_, summary) = run_json_code(
        &scenario,
        &url,
        &[
            "-u",
            "2",
            "-r",
            "10",
            "-t",
            "3s",
            "--cores",
            "1",
            "--stop-timeout",
            "2s",
        ],
        // Script errors: exit 1.
        1,
    );
    // The spinning user yields while it runs, so the other user's requests
    // still go out on the same shard.
    assert!(total_requests(&summary) >= 10, "{summary:#}");
    assert_eq!(target.counts().total, total_requests(&summary));
}

#[test]
fn a_compile_error_stops_before_any_load_with_its_position() {
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "bad.rhai",
        "user(\"U\", #{ tasks: [Fn(\"t\")] });\nfn t() {\n    let = 3;\n}\n",
    );
    let ran = blast(&[
        "run",
        "-s",
        scenario.to_str().unwrap(),
        "-H",
        "http://127.0.0.1:9",
        "-t",
        "1s",
    ]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let line = ran
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("an error line");
    assert!(line.contains("bad.rhai:3:"), "{line}");
}

#[test]
fn setup_errors_are_one_line_with_exit_code_1() {
    let scratch = Scratch::new();
    let good = scratch.file(
        "ok.rhai",
        "user(\"U\", #{ tasks: [Fn(\"t\")] });\nfn t() { http::get(\"/\"); }\n",
    );
    let good = good.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "run",
                "-s",
                "/nonexistent/x.rhai",
                "-H",
                "http://127.0.0.1:9",
            ],
            "cannot read scenario",
        ),
        (vec!["run", "-s", good, "-H", "ftp://x"], "scheme"),
        (
            vec!["run", "-s", good, "-H", "http://127.0.0.1:9", "-u", "0"],
            "--users",
        ),
        (
            vec![
                "run",
                "-s",
                good,
                "-H",
                "http://127.0.0.1:9",
                "--cores",
                "0",
            ],
            "--cores",
        ),
        (
            vec!["run", "-s", good, "-H", "http://127.0.0.1:9", "-r", "0"],
            "--spawn-rate",
        ),
    ];
    for (args, needle) in cases {
        let ran = blast(&args);
        assert_eq!(ran.code, 1, "{args:?}: {}", ran.stderr);
        let errors: Vec<&str> = ran
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{args:?}: {}", ran.stderr);
        assert!(errors[0].contains(needle), "{args:?}: {}", errors[0]);
    }
    let missing = scratch.file("missing.rhai", "user(\"U\", #{ tasks: [Fn(\"nope\")] });\n");
    let ran = blast(&[
        "run",
        "-s",
        missing.to_str().unwrap(),
        "-H",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("missing.rhai:1:1") && ran.stderr.contains("\"nope\""),
        "{}",
        ran.stderr
    );
    let ran = blast(&["run", "-s", good, "-H", "http://127.0.0.1:9", "-t", "soon"]);
    assert_eq!(ran.code, 2, "a usage error: {}", ran.stderr);
}

#[test]
fn check_prints_user_types_and_task_ratios() {
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "mix.rhai",
        "user(\"A\", #{ weight: 3, wait: between(1, 2), tasks: [task(Fn(\"x\"), 3), Fn(\"y\")] });\nuser(\"B\", #{ tasks: [Fn(\"y\")] });\nfn x() {}\nfn y() {}\n",
    );
    let ran = blast(&["check", "-s", scenario.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout
            .contains("user A (weight 3, 75.0% of users, wait between(1, 2))"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("75.0%  x()"), "{}", ran.stdout);
    assert!(ran.stdout.contains("25.0%  y()"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("user B (weight 1, 25.0% of users"),
        "{}",
        ran.stdout
    );
}
