//! Tests of `threshold`.

use super::*;
use blast_proto::StatsDelta;

fn ok(expr: &str) -> Threshold {
    Threshold::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

#[test]
fn every_form_of_the_grammar_parses() {
    // (expression, endpoint, metric, operator, limit)
    type Case = (
        &'static str,
        Option<(&'static str, &'static str)>,
        Metric,
        Op,
        f64,
    );
    let cases: &[Case] = &[
        ("p95<300ms", None, Metric::Percentile(95.0), Op::Lt, 300.0),
        ("p99.9<1s", None, Metric::Percentile(99.9), Op::Lt, 1000.0),
        ("p50 <= 250us", None, Metric::Percentile(50.0), Op::Le, 0.25),
        ("avg<100", None, Metric::Avg, Op::Lt, 100.0),
        ("min>=1ms", None, Metric::Min, Op::Ge, 1.0),
        ("max < 2.5s", None, Metric::Max, Op::Lt, 2500.0),
        ("med<10", None, Metric::Med, Op::Lt, 10.0),
        ("fail_ratio<0.01", None, Metric::FailRatio, Op::Lt, 0.01),
        ("fail_ratio<=1%", None, Metric::FailRatio, Op::Le, 0.01),
        ("rps>500", None, Metric::Rps, Op::Gt, 500.0),
        ("fail_rps<1/s", None, Metric::FailRps, Op::Lt, 1.0),
        ("checks>0.99", None, Metric::Checks, Op::Gt, 0.99),
        ("P100<5s", None, Metric::Percentile(100.0), Op::Lt, 5000.0),
        (
            "GET /items/:id: p99<500ms",
            Some(("GET", "/items/:id")),
            Metric::Percentile(99.0),
            Op::Lt,
            500.0,
        ),
        (
            "post /a b: fail_ratio<0.5",
            Some(("POST", "/a b")),
            Metric::FailRatio,
            Op::Lt,
            0.5,
        ),
        (
            "METRIC checkout: p95<2s",
            Some(("METRIC", "checkout")),
            Metric::Percentile(95.0),
            Op::Lt,
            2000.0,
        ),
    ];
    for &(expr, endpoint, metric, op, limit) in cases {
        let t = ok(expr);
        assert_eq!(t.metric, metric, "{expr}");
        assert_eq!(t.op, op, "{expr}");
        assert!((t.limit - limit).abs() < 1e-9, "{expr}: {}", t.limit);
        assert_eq!(
            t.endpoint
                .as_ref()
                .map(|k| (k.method.as_str(), k.name.as_str())),
            endpoint,
            "{expr}"
        );
    }
}

/// Each bad expression, the part the error points at, and a word the
/// message must hold.
#[test]
fn bad_expressions_point_at_the_bad_part() {
    let cases: &[(&str, &str, &str)] = &[
        ("p95<300xs", "xs", "unknown unit"),
        ("p95 300ms", "p95 300ms", "no comparison"),
        ("p95==300ms", "==", "unknown operator"),
        ("p95=300ms", "=", "unknown operator"),
        ("p101<3s", "p101", "out of range"),
        ("p0<3s", "p0", "out of range"),
        ("latency<3s", "latency", "unknown metric"),
        ("<3s", "<", "no metric"),
        ("p95<", "<", "no value"),
        ("p95<fast", "fast", "not a number"),
        ("fail_ratio<2", "2", "ratio from 0 to 1"),
        ("fail_ratio<1ms", "ms", "is a ratio"),
        ("rps>5ms", "ms", "plain number"),
        ("FETCH /x: p95<3s", "FETCH", "unknown method"),
        ("/x: p95<3s", "/x", "no method"),
        ("GET /x: checks>0.9", "GET /x", "leave the endpoint out"),
        ("GET /x:p95<3s", "GET /x:p95", "separate an endpoint"),
        ("", "", "empty"),
    ];
    for &(expr, part, word) in cases {
        let e = Threshold::parse(expr).expect_err(expr);
        assert_eq!(&expr[e.at.clone()], part, "{expr}: {e}");
        assert!(e.message.contains(word), "{expr}: {e}");
    }
}

#[test]
fn the_error_underlines_the_bad_part() {
    let e = Threshold::parse("p95<300xs").unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad threshold \"p95<300xs\": unknown unit \"xs\" for p95: use ms, s or us (a bare number is ms)\n    p95<300xs\n           ^^"
    );
}

#[test]
fn the_command_line_overrides_the_scenario_per_endpoint_and_metric() {
    let scenario = vec![
        "p95<300ms".to_string(),
        "fail_ratio<0.01".to_string(),
        "GET /a: p95<100ms".to_string(),
    ];
    let cli = vec!["p95<500ms".to_string()];
    let all = thresholds_from(&scenario, &cli).unwrap();
    let exprs: Vec<&str> = all.iter().map(|t| t.expr.as_str()).collect();
    assert_eq!(exprs, ["fail_ratio<0.01", "GET /a: p95<100ms", "p95<500ms"]);
    let e = thresholds_from(&["p9x<1".to_string()], &[]).unwrap_err();
    assert!(e.to_string().starts_with("bad scenario threshold"), "{e}");
    let e = thresholds_from(&[], &["p9x<1".to_string()]).unwrap_err();
    assert!(e.to_string().starts_with("bad --threshold"), "{e}");
}

fn stats() -> RunStats {
    let mut e = EntryDelta::new(EntryKey {
        method: Method::Get,
        name: "/a".into(),
    });
    // 1..=100 ms, the last 5 failed.
    for i in 1..=100u64 {
        e.record(i * 1000, 10, i > 95);
    }
    let mut s = RunStats::default();
    s.merge(&StatsDelta {
        entries: vec![e],
        checks: vec![blast_proto::CheckDelta {
            name: "ok".into(),
            passed: 3,
            failed: 1,
        }],
        ..Default::default()
    });
    s
}

#[test]
fn evaluation_measures_each_metric() {
    let s = stats();
    let list: Vec<Threshold> = [
        "p95<96ms",
        "p99<50ms",
        "avg<51ms",
        "min>=1ms",
        "max<100ms",
        "med<51ms",
        "fail_ratio<0.05",
        "rps>=10",
        "fail_rps<1",
        "checks>0.7",
        "GET /a: p50<60ms",
        "GET /b: p50<60ms",
    ]
    .iter()
    .map(|e| ok(e))
    .collect();
    let results = evaluate(&list, &s, 10.0);
    let verdicts: Vec<(&str, bool)> = results
        .iter()
        .map(|r| (r.threshold.as_str(), r.passed))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("p95<96ms", true),
            ("p99<50ms", false),
            ("avg<51ms", true),
            ("min>=1ms", true),
            ("max<100ms", false),
            ("med<51ms", true),
            ("fail_ratio<0.05", false),
            ("rps>=10", true),
            ("fail_rps<1", true),
            ("checks>0.7", true),
            ("GET /a: p50<60ms", true),
            ("GET /b: p50<60ms", false),
        ]
    );
    assert_eq!(results[6].measured, Some(0.05));
    assert_eq!(results[9].measured, Some(0.75));
    assert_eq!(results[11].measured, None);
    assert!(
        results[11].describe().contains("no requests to GET /b"),
        "{}",
        results[11].describe()
    );
    assert_eq!(results[1].describe(), "FAIL  p99<50ms  (p99 = 99.0 ms)");
    // Live, an endpoint not seen yet is no violation; p99 is.
    let first = first_violation(&list, &s, 10.0).unwrap();
    assert_eq!(first.threshold, "p99<50ms");
    assert!(first_violation(&[ok("GET /b: p50<1ms")], &s, 10.0).is_none());
}

#[test]
fn no_checks_count_as_all_passed() {
    assert_eq!(checks_ratio(&RunStats::default()), 1.0);
}
