//! The HTTP client against a real server: nginx, started per test on a free
//! loopback port with its own config. nginx's access log is the truth.

use std::time::Duration;

use crate::blast_cli::{Scratch, endpoint, exclusive, failures, run_json, total_requests};
use crate::support::nginx::{CHUNKED_BODY, FILE_LEN, Nginx, NginxConfig};

/// With several shards and nginx closing every connection after 10 requests,
/// the total blast reports equals the requests nginx logged, with no
/// failure: reconnects after a server's close are not failures.
#[test]
fn totals_equal_nginx_access_log_with_frequent_keepalive_closes() {
    let _one = exclusive();
    let nginx = Nginx::start(NginxConfig {
        keepalive_requests: 10,
        ..NginxConfig::default()
    });
    let scratch = Scratch::new();
    let hello =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/scenarios/hello.rhai");
    let scenario = scratch.file("hello.rhai", &std::fs::read_to_string(hello).unwrap());
    let (_, summary) = run_json(
        &scenario,
        &nginx.url(),
        &[
            "-u",
            "16",
            "-r",
            "200",
            "-t",
            "3s",
            "--cores",
            "2",
            "--stop-timeout",
            "5s",
        ],
    );
    let total = total_requests(&summary);
    let logged = nginx.wait_for_access_log_lines(total as usize, Duration::from_secs(5));
    assert!(total > 100, "too few requests to mean anything: {total}");
    assert_eq!(
        total, logged as u64,
        "blast counted {total}, nginx logged {logged}"
    );
    assert_eq!(failures(&summary), vec![], "no request may fail");
    assert_eq!(summary["parameters"]["cores"], 2);
    crate::blast_cli::assert_matches_schema(&summary);
}

/// Content-length, chunked, HEAD, 204 and 304 responses are each read to
/// their exact end, and their body bytes counted.
#[test]
fn every_framing_is_read_exactly() {
    let _one = exclusive();
    let nginx = Nginx::start(NginxConfig::default());
    let scratch = Scratch::new();
    let scenario = scratch.file(
        "framing.rhai",
        r#"
user("Framing", #{ tasks: [Fn("all")] });

fn all() {
    let f = http::get("/file");
    if f.body_len != 10000 || f.body.len() != 10000 { throw `file body ${f.body_len}`; }
    let c = http::get("/chunked");
    if c.body != "first\nhello\nthird\n" { throw `chunked body ${c.body}`; }
    if c.header("transfer-encoding") != "chunked" { throw "not chunked"; }
    let h = http::head("/file");
    if h.body_len != 0 || h.header("content-length") != "10000" { throw "head"; }
    let e = http::get("/empty");
    if e.status != 204 { throw `empty ${e.status}`; }
    let n = http::get("/notmod");
    if n.status != 304 { throw `notmod ${n.status}`; }
}
"#,
    );
    let (_, summary) = run_json(
        &scenario,
        &nginx.url(),
        &["-u", "2", "-r", "10", "-t", "2s", "--cores", "1"],
    );
    assert_eq!(
        summary["errors"],
        serde_json::json!([]),
        "script checks failed: {summary:#}"
    );
    assert_eq!(failures(&summary), vec![]);
    let files = endpoint(&summary, "GET", "/file");
    let n = files["requests"].as_u64().unwrap();
    assert!(n > 0);
    assert_eq!(files["bytes"].as_u64().unwrap(), n * FILE_LEN as u64);
    let chunked = endpoint(&summary, "GET", "/chunked");
    assert_eq!(
        chunked["bytes"].as_u64().unwrap(),
        chunked["requests"].as_u64().unwrap() * CHUNKED_BODY.len() as u64
    );
    assert_eq!(endpoint(&summary, "HEAD", "/file")["bytes"], 0);
    assert_eq!(endpoint(&summary, "GET", "/empty")["bytes"], 0);
    assert_eq!(endpoint(&summary, "GET", "/notmod")["bytes"], 0);
    let total = total_requests(&summary);
    // Each iteration's subrequest for /chunked is logged by nginx too.
    let logged = nginx.wait_for_access_log_lines(total as usize, Duration::from_secs(5));
    let chunked_requests = chunked["requests"].as_u64().unwrap();
    assert_eq!(
        logged as u64,
        total + chunked_requests * subrequests_per_chunked(&nginx)
    );
}

/// How many extra access-log lines one `/chunked` request makes (its SSI
/// subrequest may or may not be logged, depending on nginx's settings).
fn subrequests_per_chunked(nginx: &Nginx) -> u64 {
    let log = nginx.access_log();
    let chunked = log.lines().filter(|l| l.contains(" /chunked ")).count() as u64;
    let root = log
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("/"))
        .count() as u64;
    root.checked_div(chunked).unwrap_or(0)
}
