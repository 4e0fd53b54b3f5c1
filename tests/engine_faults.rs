//! The HTTP client against servers that misbehave on purpose: each fault is
//! counted as the right kind of failure, and the run goes on.

use crate::blast_cli::{Scratch, exclusive, failures, run_json_code, total_requests};
use crate::support::faults::{Fault, FaultServer};

const ONE_GET: &str = r#"
user("One", #{ wait: constant(0.05), tasks: [Fn("one")] });
fn one() { http::get("/"); }
"#;

/// Runs one user against `fault` for 2 s; returns (summary, server). A
/// fault that fails requests exits 1 (as Locust's --exit-code-on-error).
fn against(fault: Fault, extra: &[&str]) -> (serde_json::Value, FaultServer) {
    let fails = !matches!(fault, Fault::CloseAfter { .. });
    let server = FaultServer::start(fault);
    let scratch = Scratch::new();
    let scenario = scratch.file("one.rhai", ONE_GET);
    let mut args = vec![
        "-u",
        "1",
        "-r",
        "10",
        "-t",
        "2s",
        "--cores",
        "1",
        "--stop-timeout",
        "3s",
    ];
    args.extend_from_slice(extra);
    let (_, summary) = run_json_code(&scenario, &server.url(), &args, i32::from(fails));
    (summary, server)
}

/// Every failure in `summary` is `error`, and there is at least one.
fn all_failed_with(summary: &serde_json::Value, error: &str) {
    let f = failures(summary);
    assert!(
        !f.is_empty(),
        "expected failures '{error}', got none: {summary:#}"
    );
    for (_, e, _) in &f {
        assert_eq!(e, error, "all failures: {f:?}");
    }
    let failed: u64 = f.iter().map(|(_, _, n)| n).sum();
    assert_eq!(failed, summary["total"]["failures"].as_u64().unwrap());
    assert_eq!(failed, total_requests(summary), "every request fails");
}

#[test]
fn reset_mid_response_is_a_reset() {
    let _one = exclusive();
    let (summary, _server) = against(Fault::ResetMidResponse, &[]);
    all_failed_with(&summary, "connection reset");
    assert!(
        total_requests(&summary) > 2,
        "the run goes on after a failure"
    );
}

#[test]
fn truncated_body_is_truncated() {
    let _one = exclusive();
    let (summary, _server) = against(Fault::TruncatedBody, &[]);
    all_failed_with(&summary, "response truncated");
    assert!(total_requests(&summary) > 2);
}

#[test]
fn no_response_times_out() {
    let _one = exclusive();
    let (summary, server) = against(Fault::NoResponse, &["--timeout", "500ms"]);
    all_failed_with(&summary, "request timed out");
    // 2 s of 0.5 s timeouts: a few, every one counted, every one sent.
    let total = total_requests(&summary);
    assert!((2..=5).contains(&total), "{total}");
    assert_eq!(server.requests_seen(), total);
}

#[test]
fn garbage_is_malformed() {
    let _one = exclusive();
    let (summary, _server) = against(Fault::Garbage, &[]);
    all_failed_with(&summary, "malformed response");
}

#[test]
fn slow_trickle_hits_the_timeout() {
    let _one = exclusive();
    let (summary, _server) = against(
        Fault::SlowTrickle { interval_ms: 100 },
        &["--timeout", "700ms"],
    );
    all_failed_with(&summary, "request timed out");
}

/// A server that silently closes kept-alive connections costs reconnects,
/// not failures, and every request it saw is counted exactly once.
#[test]
fn silent_keepalive_close_is_retried_not_failed() {
    let _one = exclusive();
    let (summary, server) = against(Fault::CloseAfter { requests: 3 }, &[]);
    assert_eq!(failures(&summary), vec![]);
    let total = total_requests(&summary);
    assert!(total >= 10, "{total}");
    // A retried request reached the server once on the closed connection
    // (unanswered) and once on the fresh one.
    assert!(server.requests_seen() >= total);
    assert!(server.connections() >= total / 3);
}

#[test]
fn refused_connection_is_a_connect_failure() {
    let _one = exclusive();
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scratch = Scratch::new();
    let scenario = scratch.file("one.rhai", ONE_GET);
    let (ran, summary) = run_json_code(
        &scenario,
        &format!("http://127.0.0.1:{port}"),
        &["-u", "1", "-r", "10", "-t", "3s", "--cores", "1"],
        1,
    );
    let refused = format!("connection refused (127.0.0.1:{port})");
    all_failed_with(&summary, &refused);
    // Said once, at the first report, not only in the summary at the end.
    let warning = format!("warning: every request so far failed to connect: {refused}\n");
    assert_eq!(ran.stderr.matches(&warning).count(), 1, "{}", ran.stderr);
    let stopping = ran.stderr.find("Stopping (").unwrap();
    assert!(
        ran.stderr.find(&warning).unwrap() < stopping,
        "{}",
        ran.stderr
    );
}

#[test]
fn https_to_a_plain_http_port_says_the_server_answered_in_plain_http() {
    let _one = exclusive();
    let target = crate::blast_cli::start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file("one.rhai", ONE_GET);
    let (ran, summary) = run_json_code(
        &scenario,
        &format!("https://{}", target.addr()),
        &["--iterations", "3", "--cores", "1"],
        1,
    );
    let error = format!(
        "TLS handshake failed: the server at {} answered in plain HTTP (use http://)",
        target.addr()
    );
    all_failed_with(&summary, &error);
    assert!(
        ran.stderr
            .contains(&format!("every request so far failed to connect: {error}")),
        "{}",
        ran.stderr
    );
}
