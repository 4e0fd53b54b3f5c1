//! Reports of a run the engine's test helpers cannot produce yet: an open
//! model whose latencies were corrected for coordinated omission, with
//! dropped iterations and late starts, stopped early. Built from
//! synthetic deltas through the public API, then checked as a user sees
//! them: the JSON against its schema, the CSV files, the HTML in Chromium
//! (`html.rs`).

use std::time::Duration;

use blast_control::{
    Load, OpenSettings, OutputOptions, RunPlan, RunStats, Stage, Summary, ThresholdOptions,
};
use blast_engine::http::Origin;
use blast_proto::{EntryDelta, EntryKey, FailureDelta, FailureKind, Method, StatsDelta};
use blast_script::Scenario;

use crate::blast_cli::assert_matches_schema;

/// When the synthetic run started, ms since the Unix epoch.
const START_MS: u64 = 1_700_000_000_000;

/// The synthetic run's plan: an arrival rate ramping from 20/s to 60/s.
fn open_plan() -> RunPlan {
    RunPlan {
        scenario: Scenario::from_source(
            "open.rhai",
            "user(\"U\", #{ tasks: [Fn(\"t\")] });\nfn t() { http::get(\"/\"); }\n",
        )
        .expect("the scenario compiles"),
        host: Origin::resolve("http://127.0.0.1:9").expect("a literal address"),
        extra_hosts: Vec::new(),
        users: 1,
        spawn_rate: 1.0,
        load: Load::Rate {
            start: 20.0,
            stages: vec![Stage {
                duration: Duration::from_secs(8),
                target: 60.0,
            }],
        },
        open: OpenSettings {
            max_users: Some(40),
            ..OpenSettings::default()
        },
        reset_stats: false,
        iterations: None,
        stop_on: vec!["dropped>10".into()],
        duration: Some(Duration::from_secs(30)),
        cores: 1,
        timeout: Duration::from_secs(60),
        stop_timeout: Duration::from_secs(10),
        insecure: false,
        seed: Some(7),
        json: None,
        print_interval: Duration::from_secs(2),
        only_summary: false,
        outputs: OutputOptions::default(),
        thresholds: ThresholdOptions::default(),
    }
}

/// Ten reports of the synthetic run: from the fifth on, the target slows
/// down, requests are sent up to 200 ms after they were due, iterations
/// are dropped and the generator starts late.
pub(super) fn open_run() -> (Summary, RunStats) {
    let mut stats = RunStats::default();
    for seq in 0..10u64 {
        let slow = seq >= 4;
        let at_ms = START_MS + (seq + 1) * 1000;
        let mut entry = EntryDelta::new(EntryKey {
            method: Method::Get,
            name: "/".into(),
        });
        let requests = 20 + seq * 4;
        for i in 0..requests {
            let sent_us = 2_000 + i * 50;
            let due_us = if slow { sent_us + i * 5_000 } else { sent_us };
            entry.record_corrected(due_us, sent_us, 100, slow && i % 10 == 0);
        }
        let mut delta = StatsDelta {
            seq,
            at_ms,
            users: 10 + seq * 3,
            busy: 0.3,
            iterations: requests,
            dropped: if slow { 2 } else { 0 },
            ..Default::default()
        };
        if slow {
            delta.failures.push(FailureDelta {
                key: entry.key.clone(),
                kind: FailureKind::Status(503),
                message: String::new(),
                count: entry.failures,
                first_seen_ms: at_ms - 900,
                last_seen_ms: at_ms - 100,
            });
        }
        delta.entries.push(entry);
        for i in 0..requests {
            let late_us = if slow { 500 + i * 400 } else { 50 + i * 10 };
            delta.lateness.record(late_us).unwrap();
        }
        stats.merge(&delta);
    }
    let mut summary = Summary::build(
        &open_plan(),
        &stats,
        (START_MS, START_MS + 10_500, 10.5),
        false,
        "stop condition: dropped>10",
    );
    summary.stopped_early = true;
    (summary, stats)
}

#[test]
fn a_corrected_open_run_that_stopped_early_matches_the_schema() {
    let (summary, _) = open_run();
    let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
    assert_matches_schema(&json);
    assert_eq!(json["corrected"], true);
    assert_eq!(json["stopped_early"], true);
    assert_eq!(json["iterations"]["dropped"], 12);
    assert_eq!(json["parameters"]["model"], "open");
    assert_eq!(json["parameters"]["max_users"], 40);
    assert_eq!(json["parameters"]["stop_on"][0], "dropped>10");
    let total = &json["total"];
    assert!(
        total["percentiles_ms"]["99"].as_f64()
            > total["uncorrected"]["percentiles_ms"]["99"].as_f64(),
        "{total:#}"
    );
    let late = &json["health"]["lateness_ms"];
    assert!(late["p99"].as_f64() <= late["max"].as_f64(), "{late}");

    // The schema is strict both ways: a missing field or an unknown one
    // fails it.
    let validator = |v: &serde_json::Value| {
        let schema: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/summary.schema.json"),
            )
            .unwrap(),
        )
        .unwrap();
        jsonschema::validator_for(&schema).unwrap().is_valid(v)
    };
    let mut broken = json.clone();
    broken["total"]["uncorrected"]
        .as_object_mut()
        .unwrap()
        .remove("max_ms");
    assert!(!validator(&broken), "uncorrected.max_ms is required");
    let mut broken = json.clone();
    broken["parameters"]["users"] = 3.into();
    assert!(!validator(&broken), "users belong to the users load only");
    let mut broken = json.clone();
    broken["parameters"]
        .as_object_mut()
        .unwrap()
        .remove("max_wait_s");
    assert!(!validator(&broken), "the open model has its settings");
}

#[test]
fn every_load_model_describes_itself_within_the_schema() {
    let (_, stats) = open_run();
    let stages = |targets: &[f64]| {
        targets
            .iter()
            .map(|&target| Stage {
                duration: Duration::from_secs(5),
                target,
            })
            .collect::<Vec<_>>()
    };
    let loads = [
        Load::Users,
        Load::Stages(stages(&[10.0, 0.0])),
        Load::Rate {
            start: 5.0,
            stages: Vec::new(),
        },
        Load::Shape,
    ];
    for load in loads {
        let mut plan = open_plan();
        plan.load = load.clone();
        plan.stop_on.clear();
        plan.reset_stats = true;
        plan.iterations = Some(blast_control::Iterations {
            count: 3,
            // Per user needs the closed model's long-lived users.
            per_user: !matches!(load, Load::Rate { .. }),
        });
        let summary = Summary::build(&plan, &stats, (START_MS, START_MS, 1.0), true, "duration");
        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        assert_matches_schema(&json);
        assert_eq!(json["stopped_early"], false, "{load:?}");
    }
    // Nothing corrected, dropped or scheduled: the plain closed run.
    let mut plan = open_plan();
    plan.load = Load::Users;
    let summary = Summary::build(
        &plan,
        &RunStats::default(),
        (START_MS, START_MS, 1.0),
        true,
        "duration",
    );
    let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
    assert_matches_schema(&json);
    assert_eq!(json["health"]["lateness_ms"], serde_json::Value::Null);
    assert_eq!(json["parameters"]["users"], 1);
}

#[test]
fn csv_files_of_a_run_with_drops_that_stopped_early() {
    let (summary, _) = open_run();
    let failures = String::from_utf8(blast_control::csv::failures_csv(&summary)).unwrap();
    let rows: Vec<Vec<String>> = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(failures.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "Method",
            "Name",
            "Error",
            "Occurrences",
            "First Seen",
            "Last Seen"
        ]
    );
    let dropped = rows.iter().find(|r| r[1] == "dropped iterations").unwrap();
    assert_eq!(
        dropped,
        &[
            "",
            "dropped iterations",
            "no user came free in time (open model)",
            "12",
            "2023-11-14T22:13:25Z",
            "2023-11-14T22:13:30Z"
        ]
    );
    let exceptions = String::from_utf8(blast_control::csv::exceptions_csv(&summary)).unwrap();
    assert_eq!(
        exceptions,
        "Count,Message,Traceback,Nodes\r\n1,run stopped early: stop condition: dropped>10,,local\r\n"
    );
}
