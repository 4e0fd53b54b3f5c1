//! State users share (`store::`) and the per-request hook (`on_request`),
//! run against the built-in target, with its counts as the witness.

use std::path::Path;

use crate::blast_cli::{
    Scratch, endpoint, exclusive, run_json, run_json_code, start_target, total_requests,
};

/// A copy of example `name` in `scratch` (a run writes its summary beside
/// the scenario, which must not be in the repository).
fn example(scratch: &Scratch, name: &str) -> std::path::PathBuf {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name),
    )
    .unwrap();
    scratch.file(name, &source)
}

#[test]
fn each_credential_goes_to_one_user_across_cores_and_users_without_one_stop() {
    let _one = exclusive();
    let target = start_target(None);
    let url = format!("http://{}", target.addr());
    let scratch = Scratch::new();
    // Six users on two cores share four accounts.
    let (ran, summary) = run_json(
        &example(&scratch, "shared_credentials.rhai"),
        &url,
        &["-u", "6", "-r", "20", "-t", "3s", "--cores", "2"],
    );
    let counts = target.counts();
    assert_eq!(counts.path("/login"), 4, "{counts:?}");
    for id in 1..=4 {
        assert_eq!(counts.path(&format!("/items/{id}")), 1, "{counts:?}");
    }
    assert_eq!(counts.path("/items/5"), 0);
    assert_eq!(
        ran.stderr.matches("no account left").count(),
        2,
        "{}",
        ran.stderr
    );
    assert_eq!(
        summary["errors"].as_array().unwrap().len(),
        0,
        "{summary:#}"
    );
    assert_eq!(summary["total"]["failures"], 0);
    assert!(
        endpoint(&summary, "GET", "/me")["requests"]
            .as_u64()
            .unwrap()
            > 4
    );
    assert_eq!(total_requests(&summary), counts.total);
}

#[test]
fn a_data_file_loaded_into_the_store_gives_each_row_to_one_user() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let rows: String = (1..=5).map(|i| format!("{i},user{i}\n")).collect();
    scratch.file("accounts.csv", &format!("id,name\n{rows}"));
    let scenario = scratch.file(
        "load.rhai",
        "fn on_test_start() { log(`loaded ${store::load(\"rows\", \"accounts.csv\")}`); }\n\
         user(\"U\", #{ wait: constant(0.1), on_start: Fn(\"claim\"), tasks: [Fn(\"t\")] });\n\
         fn claim() {\n    let row = store::pop(\"rows\");\n    if row == () { stop_user(); }\n    http::get(`/items/${row.id}`, #{ name: \"claim\" });\n}\n\
         fn t() { http::get(\"/\"); }\n",
    );
    let url = format!("http://{}", target.addr());
    let (ran, summary) = run_json(
        &scenario,
        &url,
        &["-u", "7", "-r", "50", "-t", "2s", "--cores", "2"],
    );
    assert!(
        ran.stderr.contains("[on_test_start] loaded 5"),
        "{}",
        ran.stderr
    );
    let counts = target.counts();
    for id in 1..=5 {
        assert_eq!(counts.path(&format!("/items/{id}")), 1, "{counts:?}");
    }
    assert_eq!(endpoint(&summary, "GET", "claim")["requests"], 5);
    assert_eq!(
        summary["errors"].as_array().unwrap().len(),
        0,
        "{summary:#}"
    );
}

#[test]
fn a_user_that_finds_no_account_polls_until_one_is_given_back() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    // Two accounts, three users: each uses one for a task, then gives it
    // back and stops; the third waits for one (the documented idiom).
    let scenario = scratch.file(
        "poll.rhai",
        "fn on_test_start() { store::extend(\"accounts\", [1, 2]); }\n\
         user(\"U\", #{ on_start: Fn(\"take\"), on_stop: Fn(\"give_back\"), tasks: [Fn(\"t\")] });\n\
         fn take() {\n    let account = store::pop(\"accounts\");\n    while account == () { sleep(0.1); account = store::pop(\"accounts\"); }\n    this.account = account;\n}\n\
         fn t() { http::get(`/items/${this.account}`, #{ name: \"used\" }); sleep(0.3); stop_user(); }\n\
         fn give_back() { store::push(\"accounts\", this.account); }\n",
    );
    let url = format!("http://{}", target.addr());
    let (_, summary) = run_json(
        &scenario,
        &url,
        &["-u", "3", "-r", "100", "-t", "3s", "--cores", "2"],
    );
    assert_eq!(
        endpoint(&summary, "GET", "used")["requests"],
        3,
        "{summary:#}"
    );
    let counts = target.counts();
    assert_eq!(counts.path("/items/1") + counts.path("/items/2"), 3);
    assert_eq!(
        summary["errors"].as_array().unwrap().len(),
        0,
        "{summary:#}"
    );
}

#[test]
fn the_request_hook_sees_every_request_once() {
    let _one = exclusive();
    let target = start_target(None);
    let url = format!("http://{}", target.addr());
    let scratch = Scratch::new();
    let (ran, summary) = run_json(
        &example(&scratch, "request_hook.rhai"),
        &url,
        &["-u", "4", "-r", "20", "-t", "2s", "--cores", "2"],
    );
    // on_test_stop logs what the hook counted, then makes one request.
    let line = ran
        .stderr
        .lines()
        .find(|l| l.starts_with("[on_test_stop] "))
        .unwrap_or_else(|| panic!("{}", ran.stderr));
    let ok: u64 = line["[on_test_stop] ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let total = total_requests(&summary);
    assert_eq!(ok + 1, total, "{line}");
    assert_eq!(target.counts().total, total);
    assert_eq!(target.counts().path("/echo"), 1);
    assert_eq!(
        summary["errors"].as_array().unwrap().len(),
        0,
        "{summary:#}"
    );
}

#[test]
fn an_error_in_the_request_hook_is_counted_and_changes_no_result() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "hook.rhai",
        "user(\"U\", #{ wait: constant(0.05), tasks: [Fn(\"t\")] });\n\
         fn t() { http::get(\"/status/503\", #{ expect: [503] }); http::get(\"/\"); }\n\
         fn on_request(req) {\n    if req.ok { throw `hook saw ${req.name}`; }\n}\n",
    );
    let url = format!("http://{}", target.addr());
    // The hook's errors are script errors: exit 1 (--exit-code-on-error).
    // Whole tasks only, since the counts of a task's two requests are
    // compared below.
    let (_, summary) = run_json_code(
        &scenario,
        &url,
        &["-u", "2", "-r", "10", "--iterations", "20", "--cores", "1"],
        1,
    );
    let total = total_requests(&summary);
    assert_eq!(total, 40, "{summary:#}");
    assert_eq!(summary["total"]["failures"], 0, "{summary:#}");
    let errors = summary["errors"].as_array().unwrap();
    let count = |name: &str| {
        errors
            .iter()
            .find(|e| e["message"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{summary:#}"))["count"]
            .as_u64()
            .unwrap()
    };
    assert!(
        errors
            .iter()
            .all(|e| e["location"].as_str().unwrap().ends_with("hook.rhai:4:17"))
    );
    assert_eq!(count("hook saw /status/503") + count("hook saw /"), total);
    // Every task ran to its end: both requests of each.
    assert_eq!(count("hook saw /status/503"), count("hook saw /"));
    assert_eq!(target.counts().total, total);
}

#[test]
fn users_wait_on_the_store_until_one_releases_them() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    // Locust's semaphore_wait: workers block in on_start until released.
    let scenario = scratch.file(
        "gate.rhai",
        "user(\"Worker\", #{ weight: 3, wait: constant(0.05), on_start: Fn(\"gate\"), tasks: [Fn(\"work\")] });\n\
         user(\"Opener\", #{ fixed_count: 1, wait: constant(10), tasks: [Fn(\"open\")] });\n\
         fn gate() { store::incr(\"waiting\"); store::wait(\"open\"); }\n\
         fn work() { check(store::get(\"open\") == true, \"released\"); http::get(\"/\"); }\n\
         fn open() {\n    check(store::wait(\"never\", 0.8) == false, \"wait timed out\");\n    check(store::get(\"waiting\") == 3, \"all waited\");\n    store::set(\"open\", true);\n    http::get(\"/items/1\", #{ name: \"open\" });\n}\n",
    );
    let url = format!("http://{}", target.addr());
    let (_, summary) = run_json(
        &scenario,
        &url,
        &["-u", "4", "-r", "50", "-t", "3s", "--cores", "2"],
    );
    let checks = summary["checks"].as_array().unwrap();
    for check in checks {
        assert_eq!(check["failed"], 0, "{summary:#}");
    }
    assert_eq!(checks.len(), 3, "{summary:#}");
    assert_eq!(endpoint(&summary, "GET", "open")["requests"], 1);
    assert!(endpoint(&summary, "GET", "/")["requests"].as_u64().unwrap() > 10);
    assert_eq!(
        summary["errors"].as_array().unwrap().len(),
        0,
        "{summary:#}"
    );
}
