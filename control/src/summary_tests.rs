//! Tests of `summary`.

use std::time::Duration;

use blast_engine::http::Origin;
use blast_proto::{EntryKey, FailureDelta, FailureKind, Method, StatsDelta};
use blast_script::Scenario;
use serde_json::json;

use super::*;
use crate::plan::{Iterations, OutputOptions, Stage, ThresholdOptions};

/// A plan with `load` and otherwise default settings.
pub(crate) fn plan(load: Load) -> RunPlan {
    RunPlan {
        scenario: Scenario::from_source(
            "s.rhai",
            "user(\"U\", #{ tasks: [Fn(\"t\")] });\nfn t() { http::get(\"/\"); }\n",
        )
        .expect("the test scenario compiles"),
        host: Origin::resolve("http://127.0.0.1:1").expect("a literal address"),
        extra_hosts: Vec::new(),
        users: 4,
        spawn_rate: 2.0,
        load,
        open: OpenSettings::default(),
        reset_stats: false,
        iterations: None,
        stop_on: Vec::new(),
        duration: Some(Duration::from_secs(10)),
        cores: 1,
        timeout: Duration::from_secs(60),
        stop_timeout: Duration::from_secs(10),
        insecure: false,
        seed: None,
        json: None,
        print_interval: Duration::from_secs(2),
        only_summary: false,
        outputs: OutputOptions::default(),
        thresholds: ThresholdOptions::default(),
    }
}

fn key(method: Method, name: &str) -> EntryKey {
    EntryKey {
        method,
        name: name.to_string(),
    }
}

/// An open-model run: `GET /slow` was corrected (its requests were due
/// up to 80 ms before they were sent), `POST /fast` was not; iterations
/// were dropped and starts were late.
pub(crate) fn open_run() -> RunStats {
    let mut stats = RunStats::default();
    for seq in 0..2u64 {
        let mut slow = EntryDelta::new(key(Method::Get, "/slow"));
        let mut fast = EntryDelta::new(key(Method::Post, "/fast"));
        for i in 0..50u64 {
            slow.record_corrected(10_000 + i * 1_600, 10_000 + i * 100, 20, i == 0);
            fast.record(2_000 + i * 10, 5, false);
        }
        let mut delta = StatsDelta {
            seq,
            at_ms: 1_700_000_001_000 + seq * 1000,
            entries: vec![slow, fast],
            users: 30,
            busy: 0.4,
            iterations: 50,
            dropped: 3 * seq,
            ..Default::default()
        };
        delta.failures.push(FailureDelta {
            key: key(Method::Get, "/slow"),
            kind: FailureKind::Status(503),
            message: String::new(),
            count: 1,
            first_seen_ms: delta.at_ms - 500,
            last_seen_ms: delta.at_ms - 500,
        });
        for us in [200, 400, 900, 1_500] {
            delta.lateness.record(us).unwrap();
        }
        stats.merge(&delta);
    }
    stats
}

/// The summary of [`open_run`], stopped early by a stop condition.
pub(crate) fn open_summary() -> Summary {
    let mut plan = plan(Load::Rate {
        start: 50.0,
        stages: vec![Stage {
            duration: Duration::from_secs(60),
            target: 200.0,
        }],
    });
    plan.open.max_wait = Duration::from_millis(500);
    plan.iterations = Some(Iterations {
        count: 1000,
        per_user: false,
    });
    plan.stop_on = vec!["fail_ratio>0.5".into()];
    let mut summary = Summary::build(
        &plan,
        &open_run(),
        (1_700_000_000_000, 1_700_000_002_000, 2.0),
        false,
        "stop condition: fail_ratio>0.5",
    );
    summary.stopped_early = true;
    summary
}

/// A closed-model run with nothing corrected, dropped or scheduled.
pub(crate) fn closed_summary() -> Summary {
    let mut stats = RunStats::default();
    let mut e = EntryDelta::new(key(Method::Get, "/"));
    for i in 1..=100 {
        e.record(i * 1000, 10, false);
    }
    stats.merge(&StatsDelta {
        entries: vec![e],
        users: 4,
        iterations: 100,
        ..Default::default()
    });
    Summary::build(
        &plan(Load::Users),
        &stats,
        (1_700_000_000_000, 1_700_000_001_000, 1.0),
        true,
        "duration",
    )
}

#[test]
fn uncorrected_figures_equal_the_corrected_ones_when_nothing_was_corrected() {
    let s = closed_summary();
    assert!(!s.corrected);
    for e in s.endpoints.iter().chain([&s.total]) {
        assert_eq!(e.uncorrected.avg_ms, e.avg_ms);
        assert_eq!(e.uncorrected.max_ms, e.max_ms);
        assert_eq!(e.uncorrected.percentiles_ms, e.percentiles_ms);
    }
    assert!((s.total.percentiles_ms["99"] - 99.0).abs() < 0.1);
    // An entry without requests: zeros on both sides.
    let empty = EndpointSummary::of(&EntryDelta::new(key(Method::Get, "/x")), "GET", 1.0);
    assert_eq!(empty.uncorrected.avg_ms, 0.0);
    assert_eq!(empty.uncorrected.percentiles_ms["50"], 0.0);
}

#[test]
fn corrected_latencies_keep_their_uncorrected_figures_beside_them() {
    let s = open_summary();
    assert!(s.corrected);
    let slow = s.endpoints.iter().find(|e| e.name == "/slow").unwrap();
    let fast = s.endpoints.iter().find(|e| e.name == "/fast").unwrap();
    // Corrected: 10 ms + i * 1.6 ms; uncorrected: 10 ms + i * 0.1 ms.
    assert!((slow.max_ms - 88.4).abs() < 0.1, "{}", slow.max_ms);
    assert!((slow.uncorrected.max_ms - 14.9).abs() < 0.02);
    assert!((slow.avg_ms - 49.2).abs() < 1e-9, "{}", slow.avg_ms);
    assert!((slow.uncorrected.avg_ms - 12.45).abs() < 1e-9);
    assert!(slow.percentiles_ms["99"] > slow.uncorrected.percentiles_ms["99"]);
    // Not corrected: the same figures.
    assert_eq!(fast.uncorrected.percentiles_ms, fast.percentiles_ms);
    assert_eq!(fast.uncorrected.avg_ms, fast.avg_ms);
    // The total holds both.
    assert_eq!(s.total.max_ms, slow.max_ms);
    assert_eq!(s.total.uncorrected.max_ms, slow.uncorrected.max_ms);
    assert!(s.total.percentiles_ms["99"] > s.total.uncorrected.percentiles_ms["99"]);
}

#[test]
fn iterations_and_generator_lateness() {
    let s = open_summary();
    assert_eq!((s.iterations.completed, s.iterations.dropped), (100, 3));
    assert_eq!(
        s.iterations.dropped_seen_ms,
        Some((1_700_000_002_000, 1_700_000_002_000))
    );
    let late = s.health.lateness_ms.clone().unwrap();
    assert_eq!(s.health.scheduled, 8);
    assert_eq!((late.p50, late.p90, late.max), (0.4, 1.5, 1.5));
    assert!(late.p50 <= late.p90 && late.p90 <= late.p99 && late.p99 <= late.p99_9);

    let closed = closed_summary();
    assert_eq!(
        (closed.iterations.completed, closed.iterations.dropped),
        (100, 0)
    );
    assert!(closed.health.lateness_ms.is_none());
    assert_eq!(closed.health.scheduled, 0);
}

#[test]
fn json_has_the_new_fields_where_the_schema_says() {
    let v: serde_json::Value = serde_json::from_str(&open_summary().to_json()).unwrap();
    assert_eq!(v["stopped_early"], true);
    assert_eq!(v["stop_reason"], "stop condition: fail_ratio>0.5");
    assert_eq!(v["corrected"], true);
    assert_eq!(v["iterations"], json!({ "completed": 100, "dropped": 3 }));
    let late = &v["health"]["lateness_ms"];
    for k in ["p50", "p90", "p99", "p99.9", "max"] {
        assert!(late[k].is_number(), "{k}: {late}");
    }
    assert_eq!(v["health"]["scheduled"], 8);
    let uncorrected = &v["total"]["uncorrected"];
    assert!(uncorrected["avg_ms"].is_number() && uncorrected["max_ms"].is_number());
    assert_eq!(uncorrected["percentiles_ms"].as_object().unwrap().len(), 11);

    let v: serde_json::Value = serde_json::from_str(&closed_summary().to_json()).unwrap();
    assert_eq!(v["stopped_early"], false);
    assert_eq!(v["corrected"], false);
    assert_eq!(v["health"]["lateness_ms"], serde_json::Value::Null);
    assert_eq!(
        v["total"]["uncorrected"]["percentiles_ms"],
        v["total"]["percentiles_ms"]
    );
}

#[test]
fn parameters_describe_the_load_model() {
    let params = |plan: &RunPlan| {
        let s = Summary::build(plan, &RunStats::default(), (0, 0, 1.0), false, "duration");
        let mut v = serde_json::to_value(&s.parameters).unwrap();
        for common in [
            "scenario",
            "host",
            "duration_s",
            // Its own test: the_planned_length_says_what_ends_the_run.
            "planned",
            "cores",
            "pinned",
            "timeout_s",
            "stop_timeout_s",
            "seed",
        ] {
            v.as_object_mut().unwrap().remove(common).unwrap();
        }
        v
    };
    let common_closed = json!({
        "model": "closed",
        "iterations": null,
        "iterations_per_user": null,
        "reset_stats": false,
        "stop_on": [],
    });
    let with = |extra: serde_json::Value| {
        let mut v = common_closed.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };

    let mut users = plan(Load::Users);
    users.reset_stats = true;
    users.iterations = Some(Iterations {
        count: 7,
        per_user: true,
    });
    assert_eq!(
        params(&users),
        with(json!({
            "load": "users", "users": 4, "spawn_rate": 2.0,
            "reset_stats": true, "iterations_per_user": 7,
        }))
    );

    let stages = plan(Load::Stages(vec![
        Stage {
            duration: Duration::from_secs(30),
            target: 100.0,
        },
        Stage {
            duration: Duration::from_millis(1500),
            target: 0.0,
        },
    ]));
    assert_eq!(
        params(&stages),
        with(json!({
            "load": "stages",
            "stages": [
                { "duration_s": 30.0, "users": 100 },
                { "duration_s": 1.5, "users": 0 },
            ],
        }))
    );

    let mut rate = plan(Load::Rate {
        start: 10.0,
        stages: vec![Stage {
            duration: Duration::from_secs(60),
            target: 100.0,
        }],
    });
    rate.open = OpenSettings {
        max_users: Some(50),
        max_wait: Duration::from_millis(250),
        arrivals: Arrivals::Poisson,
    };
    rate.iterations = Some(Iterations {
        count: 500,
        per_user: false,
    });
    rate.stop_on = vec!["fail_ratio>0.1".into()];
    assert_eq!(
        params(&rate),
        with(json!({
            "model": "open",
            "load": "rate", "rate": 10.0,
            "rate_stages": [{ "duration_s": 60.0, "rate": 100.0 }],
            "max_users": 50, "max_wait_s": 0.25, "arrivals": "poisson",
            "iterations": 500,
            "stop_on": ["fail_ratio>0.1"],
        }))
    );
    // The default pool size is null.
    rate.open = OpenSettings::default();
    assert_eq!(params(&rate)["max_users"], serde_json::Value::Null);
    assert_eq!(params(&rate)["arrivals"], "even");

    let shape = plan(Load::Shape);
    assert_eq!(params(&shape), with(json!({ "load": "shape" })));
    // A shape that returns rates is open: the run says so.
    let mut s = Summary::build(&shape, &RunStats::default(), (0, 0, 1.0), false, "x");
    s.parameters.set_open_model(&shape.open);
    let v = serde_json::to_value(&s.parameters).unwrap();
    assert_eq!((&v["model"], &v["load"]), (&json!("open"), &json!("shape")));
    assert_eq!(v["max_wait_s"], 1.0);
}

#[test]
fn the_planned_length_says_what_ends_the_run() {
    let stage = |secs| Stage {
        duration: Duration::from_secs(secs),
        target: 5.0,
    };
    let untimed = |load: Load| RunPlan {
        duration: None,
        ..plan(load)
    };
    assert_eq!(planned_length(&plan(Load::Users)), "for 10s");
    assert_eq!(
        planned_length(&untimed(Load::Users)),
        "until stopped (Ctrl-C)"
    );
    assert_eq!(
        planned_length(&untimed(Load::Stages(vec![stage(30), stage(60)]))),
        "for 1m 30s (the stages)"
    );
    assert_eq!(
        planned_length(&untimed(Load::Rate {
            start: 1.0,
            stages: vec![stage(5)]
        })),
        "for 5s (the rate stages)"
    );
    assert_eq!(planned_length(&untimed(Load::Shape)), "until shape() ends");
    let iterations = |per_user| RunPlan {
        iterations: Some(Iterations { count: 7, per_user }),
        ..untimed(Load::Users)
    };
    assert_eq!(planned_length(&iterations(false)), "for 7 iterations");
    assert_eq!(
        planned_length(&iterations(true)),
        "for 7 iterations per user"
    );
    let both = RunPlan {
        iterations: Some(Iterations {
            count: 7,
            per_user: false,
        }),
        ..plan(Load::Stages(vec![stage(2)]))
    };
    assert_eq!(
        planned_length(&both),
        "for 10s or for 2s (the stages) or for 7 iterations, whichever comes first"
    );
}
