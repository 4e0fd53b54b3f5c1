//! Tests of `stop_on`.

use super::*;
use blast_proto::CheckDelta;

fn ok(expr: &str) -> StopCondition {
    StopCondition::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn watch(exprs: &[&str]) -> StopConditions {
    StopConditions::new(exprs.iter().map(|e| ok(e)).collect())
}

fn key(method: Method, name: &str) -> EntryKey {
    EntryKey {
        method,
        name: name.into(),
    }
}

/// `requests` to `GET name` taking `ms` each, the first `failures` of
/// them failed.
fn entry(name: &str, requests: u64, failures: u64, ms: u64) -> EntryDelta {
    let (method, name) = match name.strip_prefix("METRIC ") {
        Some(name) => (Method::Metric, name),
        None => (Method::Get, name),
    };
    let mut e = EntryDelta::new(key(method, name));
    for i in 0..requests {
        e.record(ms * 1000, 0, i < failures);
    }
    e
}

fn delta(entries: Vec<EntryDelta>) -> StatsDelta {
    StatsDelta {
        entries,
        ..Default::default()
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn a_window_judges_only_once_full_and_only_while_it_holds() {
    let mut stop = watch(&["fail_ratio>0.05 for 10s"]);
    // Seconds 1 to 3 fail 60%, then nothing fails.
    let mut reasons = Vec::new();
    for s in 1..=14u64 {
        let failures = if s <= 3 { 60 } else { 0 };
        let d = delta(vec![entry("/", 100, failures, 1)]);
        reasons.push(stop.observe(&d, secs(s as f64)));
    }
    assert!(reasons[..9].iter().all(Option::is_none), "{reasons:?}");
    assert_eq!(
        reasons[9].as_deref(),
        Some("fail_ratio>0.05 for 10s (fail_ratio = 0.1800 over the last 10s)")
    );
    // Windows 2..=11 and 3..=12 still hold, 4..=13 no longer does.
    assert!(reasons[10].as_ref().unwrap().contains("= 0.1200"));
    assert!(reasons[11].as_ref().unwrap().contains("= 0.0600"));
    assert_eq!(reasons[12..], [None, None]);
}

#[test]
fn reports_off_the_second_and_several_per_second_count_once() {
    // Reports at 0.6 s past each second, jittered, and two at a time
    // (two nodes): 10 requests each, 20 a second.
    let mut stop = watch(&["rps<19.9 for 5s", "rps>20.1 for 5s"]);
    for s in 0..30u64 {
        let at = s as f64 + 0.6 + if s % 2 == 0 { 0.03 } else { -0.04 };
        let d = delta(vec![entry("/", 10, 0, 1)]);
        // The first half of a report is judged too, as if whole.
        let _ = stop.observe(&d, secs(at));
        assert_eq!(stop.observe(&d, secs(at + 0.01)), None, "at {at}");
    }
    let Tally::Window(w) = &stop.watches[0].tally else {
        panic!("a window")
    };
    assert_eq!((w.buckets.len(), w.seconds()), (5, 5.0));
}

#[test]
fn rps_below_a_floor_over_a_window_counts_silent_seconds() {
    let mut stop = watch(&["rps<10 for 5s"]);
    for s in 1..=5 {
        let d = delta(vec![entry("/", 20, 0, 1)]);
        assert_eq!(stop.observe(&d, secs(s as f64)), None);
    }
    // 5 a second from now on: the window's mean falls below 10 at the
    // fourth slow second ((20 + 4 × 5) / 5 = 8).
    let mut first = None;
    for s in 6..=12 {
        let d = delta(vec![entry("/", 5, 0, 1)]);
        if let Some(reason) = stop.observe(&d, secs(s as f64)) {
            first.get_or_insert((s, reason));
        }
    }
    assert_eq!(
        first,
        Some((9, "rps<10 for 5s (rps = 8.00/s over the last 5s)".into()))
    );

    // No report for three seconds (a stalled node) still counts as time.
    let mut stop = watch(&["rps<10 for 5s"]);
    for s in 1..=5 {
        let d = delta(vec![entry("/", 20, 0, 1)]);
        assert_eq!(stop.observe(&d, secs(s as f64)), None);
    }
    let reason = stop.observe(&delta(vec![]), secs(9.0)).unwrap();
    assert!(
        reason.ends_with("(rps = 4.00/s over the last 5s)"),
        "{reason}"
    );
}

#[test]
fn endpoint_conditions_look_at_their_endpoint_only() {
    let mut stop = watch(&[
        "GET /items: fail_ratio>0.5",
        "p99>1s",
        "GET /login: fail_ratio>0.5",
    ]);
    // /login fails 60%, the total 6 in 110; a slow custom timing is no
    // request and stays out of the total's p99.
    let d = delta(vec![
        entry("/items", 100, 0, 5),
        entry("/login", 10, 6, 5),
        entry("METRIC checkout", 10, 0, 5000),
    ]);
    assert_eq!(
        stop.observe(&d, secs(1.0)).as_deref(),
        Some("GET /login: fail_ratio>0.5 (fail_ratio of GET /login = 0.6000 since the start)")
    );

    // Latencies of one endpoint over a window, where the aggregated
    // p95 stays at the fast endpoint's 1 ms; a custom timing by name.
    let mut slow = watch(&["GET /slow: p95>2s for 3s"]);
    let mut total = watch(&["p95>2s for 3s"]);
    let mut checkout = watch(&["METRIC checkout: max>=3s"]);
    let mut reasons = Vec::new();
    for s in 1..=3 {
        let d = delta(vec![
            entry("/fast", 1000, 0, 1),
            entry("/slow", 10, 0, 2500),
            entry("METRIC checkout", 1, 0, s * 1000),
        ]);
        let at = secs(s as f64);
        assert_eq!(total.observe(&d, at), None);
        reasons.push((slow.observe(&d, at), checkout.observe(&d, at)));
    }
    assert_eq!(reasons[..2], [(None, None), (None, None)]);
    let (slow, checkout) = &reasons[2];
    assert_eq!(
        slow.as_deref(),
        Some("GET /slow: p95>2s for 3s (p95 of GET /slow = 2501 ms over the last 3s)")
    );
    assert_eq!(
        checkout.as_deref(),
        Some("METRIC checkout: max>=3s (max of METRIC checkout = 3000 ms since the start)")
    );
}

#[test]
fn dropped_iterations_are_counted_over_the_window_or_the_run() {
    let mut stop = watch(&["dropped>100 for 5s"]);
    let dropped = |n| StatsDelta {
        dropped: n,
        ..Default::default()
    };
    for s in 1..=4 {
        assert_eq!(stop.observe(&dropped(30), secs(s as f64)), None);
    }
    assert_eq!(
        stop.observe(&dropped(30), secs(5.0)).as_deref(),
        Some("dropped>100 for 5s (dropped = 150 over the last 5s)")
    );
    let mut stop = watch(&["dropped>100"]);
    let reasons: Vec<_> = (1..=4)
        .map(|s| stop.observe(&dropped(30), secs(s as f64)))
        .collect();
    assert_eq!(reasons[..3], [None, None, None]);
    assert_eq!(
        reasons[3].as_deref(),
        Some("dropped>100 (dropped = 120 since the start)")
    );
}

#[test]
fn without_for_everything_since_the_start_counts() {
    // p95 since the start: 95 fast seconds hold it down until slow
    // ones pass 5% of all requests.
    let mut stop = watch(&["p95>500ms"]);
    for s in 1..=19 {
        let d = delta(vec![entry("/", 100, 0, 100)]);
        assert_eq!(stop.observe(&d, secs(s as f64)), None);
    }
    let slow = || delta(vec![entry("/", 100, 0, 1000)]);
    assert_eq!(stop.observe(&slow(), secs(20.0)), None, "5% slow");
    assert_eq!(
        stop.observe(&slow(), secs(21.0)).as_deref(),
        Some("p95>500ms (p95 = 1000 ms since the start)")
    );
    // Rates are over the time since the start.
    let mut stop = watch(&["rps<10"]);
    let d = delta(vec![entry("/", 50, 0, 1)]);
    assert_eq!(stop.observe(&d, secs(2.0)), None);
    assert_eq!(stop.observe(&delta(vec![]), secs(5.0)), None, "10/s");
    assert_eq!(
        stop.observe(&delta(vec![]), secs(6.0)).as_deref(),
        Some("rps<10 (rps = 8.33/s since the start)")
    );
    // Checks too: 8 of 10 passed.
    let mut stop = watch(&["checks<0.9"]);
    let d = StatsDelta {
        checks: vec![CheckDelta {
            name: "ok".into(),
            passed: 8,
            failed: 2,
        }],
        ..Default::default()
    };
    assert_eq!(
        stop.observe(&d, secs(1.0)).as_deref(),
        Some("checks<0.9 (checks = 0.8000 since the start)")
    );
}

#[test]
fn reset_forgets_and_windows_fill_again() {
    let mut stop = watch(&["fail_ratio>0.05 for 5s", "fail_rps>=50"]);
    let failing = || delta(vec![entry("/", 100, 10, 1)]);
    for s in 1..=4 {
        assert_eq!(stop.observe(&failing(), secs(s as f64)), None);
    }
    assert!(stop.observe(&failing(), secs(5.0)).is_some());
    stop.reset();
    // 5 s since the reset before the window judges again.
    for s in 6..=9 {
        assert_eq!(stop.observe(&failing(), secs(s as f64)), None);
    }
    assert!(stop.observe(&failing(), secs(10.0)).is_some());
    // Cumulative conditions count from the reset: 50 failures in 1 s.
    let mut stop = watch(&["fail_rps>=50"]);
    let d = delta(vec![entry("/", 100, 50, 1)]);
    assert_eq!(stop.observe(&d, secs(10.0)), None, "5/s since the start");
    stop.reset();
    assert_eq!(
        stop.observe(&d, secs(11.0)).as_deref(),
        Some("fail_rps>=50 (fail_rps = 50.00/s since the statistics were reset)")
    );
}

#[test]
fn a_long_window_keeps_a_bounded_number_of_buckets() {
    let mut stop = watch(&["p99>1s for 10m"]);
    for s in 1..=1200 {
        let d = delta(vec![entry("/", 1, 0, 1)]);
        assert_eq!(stop.observe(&d, secs(s as f64)), None);
    }
    let Tally::Window(w) = &stop.watches[0].tally else {
        panic!("a window")
    };
    assert!(
        w.buckets.len() as u64 <= MAX_BUCKETS + 1,
        "{}",
        w.buckets.len()
    );
    let seconds = w.seconds();
    assert!((591.0..=600.0).contains(&seconds), "{seconds}");
    let requests = w.sum(false).requests.requests;
    assert_eq!(requests as f64, seconds);
}

#[test]
fn the_grammar_adds_dropped_and_a_window_to_thresholds() {
    let c = ok("GET /items/:id: p99>1s for 30s");
    assert_eq!(c.endpoint, Some(key(Method::Get, "/items/:id")));
    assert_eq!(c.metric, StopMetric::Stat(Metric::Percentile(99.0)));
    assert_eq!((c.op, c.limit), (Op::Gt, 1000.0));
    assert_eq!(c.window, Some(Duration::from_secs(30)));
    let c = ok("dropped>=100");
    assert_eq!(
        (c.metric, c.op, c.limit),
        (StopMetric::Dropped, Op::Ge, 100.0)
    );
    assert_eq!(c.window, None);
}

#[test]
fn display_normalizes_and_parses_back() {
    let cases = [
        ("fail_ratio>0.05 for 10s", "fail_ratio>0.05 for 10s"),
        ("  p95 > 2000ms  for  30s ", "p95>2s for 30s"),
        ("rps<10 for 5", "rps<10 for 5s"),
        ("get /login: FAIL_RATIO>50%", "GET /login: fail_ratio>0.5"),
        ("dropped>=100 FOR 1m30s", "dropped>=100 for 1m30s"),
        ("p99.9>250us", "p99.9>0.25ms"),
        ("avg>1.5s for 2m", "avg>1500ms for 2m"),
        ("checks<99% for 3600", "checks<0.99 for 1h"),
        ("METRIC checkout: p95>2s", "METRIC checkout: p95>2s"),
        (
            "GET /search for x: rps<1 for 10s",
            "GET /search for x: rps<1 for 10s",
        ),
        ("GET /a: b: fail_rps>=3/s", "GET /a: b: fail_rps>=3"),
    ];
    for (expr, normalized) in cases {
        let c = ok(expr);
        assert_eq!(c.to_string(), normalized, "{expr}");
        assert_eq!(ok(normalized), c, "{expr}");
    }
}

/// Each bad expression, the part the error points at, and words the
/// message must hold.
#[test]
fn bad_expressions_point_at_the_bad_part() {
    let cases: &[(&str, &str, &str)] = &[
        ("fail_ratio>>1", ">>", "unknown operator"),
        (
            "fail_ratio 0.05 for 10s",
            "fail_ratio 0.05",
            "no comparison",
        ),
        ("fail_ratio>0.05 for 0s", "0s", "at least 1s"),
        ("fail_ratio>0.05 for 0", "0", "at least 1s"),
        ("fail_ratio>0.05 for 500ms", "500ms", "at least 1s"),
        ("fail_ratio>0.05 for 1500ms", "1500ms", "whole number"),
        ("fail_ratio>0.05 for 2.5", "2.5", "whole number"),
        ("fail_ratio>0.05 for soon", "soon", "not a duration"),
        ("fail_ratio>0.05 for -3", "-3", "not a duration"),
        ("fail_ratio>0.05 for", "for", "no duration"),
        ("for 10s", "for", "no condition"),
        ("GET /a: for 10s", "for", "no condition"),
        ("latency>1s for 10s", "latency", "unknown metric"),
        ("droped>1", "droped", "dropped"),
        ("<3 for 10s", "<", "no metric"),
        ("p95> for 10s", ">", "no value"),
        ("dropped>", ">", "no value"),
        ("p95>2xs for 10s", "xs", "unknown unit"),
        ("fail_ratio>2 for 10s", "2", "ratio from 0 to 1"),
        ("dropped>1.5", "1.5", "whole number"),
        ("dropped>10ms for 5s", "10ms", "whole number"),
        ("GET /x: dropped>10", "GET /x", "leave the endpoint out"),
        (
            "GET /x: checks<0.9 for 5s",
            "GET /x",
            "leave the endpoint out",
        ),
        ("GET /x:p95>1s for 5s", "GET /x:p95", "separate an endpoint"),
        ("FETCH /x: p95>1s", "FETCH", "unknown method"),
        ("p95>1sfor 10s", "sfor 10s", "unknown unit"),
        ("", "", "empty"),
    ];
    for &(expr, part, word) in cases {
        let e = StopCondition::parse(expr).expect_err(expr);
        assert_eq!(&expr[e.at.clone()], part, "{expr}: {e}");
        assert!(e.message.contains(word), "{expr}: {e}");
        assert_eq!(e.expr, expr);
    }
}

#[test]
fn errors_name_the_flag_and_the_expression() {
    let e = StopCondition::parse("fail_ratio>>1").unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad --stop-on \"fail_ratio>>1\": unknown operator \">>\": use <, <=, > or >=\n    fail_ratio>>1\n              ^^"
    );
    let e = StopConditions::parse_all(&["p95>1s".into(), "p95>1s for 0s".into()])
        .err()
        .unwrap();
    assert_eq!(e.expr, "p95>1s for 0s");
    assert!(
        e.to_string()
            .starts_with("bad --stop-on \"p95>1s for 0s\": the window must last at least 1s"),
        "{e}"
    );
    let e = StopCondition::parse("lat>1").unwrap_err();
    assert!(e.message.ends_with("fail_rps, checks or dropped"), "{e}");
}
