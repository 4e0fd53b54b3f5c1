//! Tests of `csv`.

use super::*;
use crate::summary::{ErrorSummary, FailureSummary};
use blast_proto::{EntryKey, Method, StatsDelta};

#[test]
fn floats_read_as_python_writes_them() {
    let cases = [
        (0.0, "0.0"),
        (12.0, "12.0"),
        (0.25, "0.25"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.0 / 3.0, "0.3333333333333333"),
        (123456.5, "123456.5"),
        (3.3e-5, "3.3e-05"),
        (1e-4, "0.0001"),
        (1e16, "1e+16"),
        (2.5e20, "2.5e+20"),
        (-1.5, "-1.5"),
    ];
    for (x, python) in cases {
        assert_eq!(py_float(x), python, "{x}");
    }
}

#[test]
fn percentile_columns_follow_the_reported_percentiles() {
    let labels: Vec<String> = PERCENTILES
        .iter()
        .map(|&p| format!("{}%", percentile_label(p)))
        .collect();
    assert_eq!(&STATS_HEADER[11..], labels.as_slice());
    assert_eq!(&HISTORY_HEADER[6..17], labels.as_slice());
}

fn endpoint(method: &str, name: &str, latencies_us: &[u64]) -> EndpointSummary {
    let mut e = EntryDelta::new(EntryKey {
        method: Method::parse(method).unwrap_or(Method::Get),
        name: name.into(),
    });
    for &us in latencies_us {
        e.record(us, 100, us > 2000);
    }
    EndpointSummary::of(&e, method, 2.0)
}

fn summary() -> Summary {
    let mut s = crate::summary::tests::closed_summary();
    s.duration_s = 2.0;
    s.endpoints = vec![
        endpoint("POST", "/b", &[3000]),
        endpoint("GET", "/b, \"quoted\"", &[1000, 1500]),
        endpoint("GET", "/empty", &[]),
    ];
    s.total = endpoint("", "Aggregated", &[1000, 1500, 3000]);
    s.failures = vec![FailureSummary {
        method: "POST".into(),
        name: "/b".into(),
        error: "HTTP 500".into(),
        occurrences: 1,
        first_seen_ms: 1_700_000_000_123,
        last_seen_ms: 1_700_000_001_999,
    }];
    s.errors = vec![ErrorSummary {
        message: "boom, again".into(),
        location: "s.rhai:3:5".into(),
        count: 2,
        first_seen_ms: 0,
        last_seen_ms: 0,
    }];
    s
}

#[test]
fn stats_rows_are_written_as_locust_writes_them() {
    let text = String::from_utf8(stats_csv(&summary())).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], STATS_HEADER.join(","));
    // Locust's order: by name, then method; the aggregated row last.
    assert_eq!(
        lines[1],
        "POST,/b,1,1,3,3.0,3.0,3.001,100.0,0.5,0.5,3,3,3,3,3,3,3,3,3,3,3"
    );
    assert_eq!(
        lines[2],
        "GET,\"/b, \"\"quoted\"\"\",2,0,1,1.25,1.0,1.5,100.0,1.0,0.0,1,2,2,2,2,2,2,2,2,2,2"
    );
    assert_eq!(
        lines[3],
        "GET,/empty,0,0,0,0.0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A"
    );
    assert!(lines[4].starts_with(",Aggregated,3,1,2,1.8333333333333333,1.0,3.001,100.0,1.5,0.5,"));
    assert_eq!(lines[5], "");
    assert_eq!(lines.len(), 6);
}

#[test]
fn failures_and_exceptions_files() {
    let s = summary();
    let failures = String::from_utf8(failures_csv(&s)).unwrap();
    assert_eq!(
        failures,
        "Method,Name,Error,Occurrences,First Seen,Last Seen\r\nPOST,/b,HTTP 500,1,2023-11-14T22:13:20Z,2023-11-14T22:13:21Z\r\n"
    );
    let exceptions = String::from_utf8(exceptions_csv(&s)).unwrap();
    assert_eq!(
        exceptions,
        "Count,Message,Traceback,Nodes\r\n2,\"boom, again\",s.rhai:3:5,local\r\n"
    );
}

#[test]
fn dropped_iterations_are_a_failures_row_and_an_early_stop_an_exception() {
    let mut s = summary();
    s.iterations.dropped = 3;
    s.iterations.dropped_seen_ms = Some((1_700_000_005_500, 1_700_000_009_000));
    s.stopped_early = true;
    s.stop_reason = "stop condition: fail_ratio>0.5".into();
    let failures = String::from_utf8(failures_csv(&s)).unwrap();
    assert_eq!(
        failures,
        "Method,Name,Error,Occurrences,First Seen,Last Seen\r\n\
         ,dropped iterations,no user came free in time (open model),3,2023-11-14T22:13:25Z,2023-11-14T22:13:29Z\r\n\
         POST,/b,HTTP 500,1,2023-11-14T22:13:20Z,2023-11-14T22:13:21Z\r\n"
    );
    let exceptions = String::from_utf8(exceptions_csv(&s)).unwrap();
    assert_eq!(
        exceptions,
        "Count,Message,Traceback,Nodes\r\n\
         2,\"boom, again\",s.rhai:3:5,local\r\n\
         1,run stopped early: stop condition: fail_ratio>0.5,,local\r\n"
    );
    // Fewer drops than a failure's occurrences: after it.
    s.failures[0].occurrences = 10;
    let failures = String::from_utf8(failures_csv(&s)).unwrap();
    let names: Vec<&str> = failures
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(names, ["/b", "dropped iterations"]);
    // Planned stops and runs without drops add nothing (the fixture's
    // own files are checked above).
    s.iterations.dropped = 0;
    s.stopped_early = false;
    assert_eq!(failures_csv(&s).split(|&b| b == b'\n').count(), 3);
    assert_eq!(exceptions_csv(&s).split(|&b| b == b'\n').count(), 3);
}

#[test]
fn the_open_run_fixture_writes_its_drop_and_its_stop() {
    let s = crate::summary::tests::open_summary();
    let failures = records_of(&failures_csv(&s));
    let dropped: Vec<&Vec<String>> = failures.iter().filter(|r| r[1] == DROPPED_NAME).collect();
    assert_eq!(dropped.len(), 1, "{failures:?}");
    assert_eq!(dropped[0][..4], ["", DROPPED_NAME, DROPPED_ERROR, "3"]);
    assert_eq!(
        dropped[0][4..],
        ["2023-11-14T22:13:22Z", "2023-11-14T22:13:22Z"]
    );
    let exceptions = records_of(&exceptions_csv(&s));
    assert_eq!(
        exceptions.last().unwrap(),
        &[
            "1",
            "run stopped early: stop condition: fail_ratio>0.5",
            "",
            "local"
        ]
    );
    // The stats file keeps the corrected figures.
    let stats = records_of(&stats_csv(&s));
    let slow = stats.iter().find(|r| r[1] == "/slow").unwrap();
    let e = s.endpoints.iter().find(|e| e.name == "/slow").unwrap();
    assert_eq!(slow[7], py_float(e.max_ms));
    assert_ne!(slow[7], py_float(e.uncorrected.max_ms));
}

fn records_of(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn history_appends_one_aggregated_row_per_report_or_every_entry() {
    let dir = tempfile_dir();
    for full in [false, true] {
        let prefix = dir.join(if full { "full" } else { "agg" });
        let mut report = CsvReport::create(&prefix, full).unwrap();
        let mut stats = RunStats::default();
        for seq in 0..3u64 {
            let mut a = EntryDelta::new(EntryKey {
                method: Method::Get,
                name: "/a".into(),
            });
            a.record(1000, 10, false);
            let mut b = EntryDelta::new(EntryKey {
                method: Method::Post,
                name: "/a".into(),
            });
            b.record(2000, 10, true);
            stats.merge(&StatsDelta {
                seq,
                at_ms: 1_700_000_000_000 + seq * 1000,
                entries: vec![a, b],
                users: 4,
                ..Default::default()
            });
            report
                .append_history(&stats, 1_700_000_000_000 + seq * 1000, false)
                .unwrap();
        }
        let text = std::fs::read_to_string(&CsvReport::paths(&prefix)[1]).unwrap();
        let rows: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(rows[0], HISTORY_HEADER.join(","));
        let per_report = if full { 3 } else { 1 };
        assert_eq!(rows.len(), 1 + 3 * per_report, "{text}");
        let last: Vec<&str> = rows.last().unwrap().split(',').collect();
        assert_eq!(&last[..4], ["1700000002", "4", "", "Aggregated"]);
        assert_eq!(last[17], "6", "total requests so far");
        assert_eq!(last[18], "3", "total failures so far");
        if full {
            let first_entry: Vec<&str> = rows[1].split(',').collect();
            assert_eq!(&first_entry[2..4], ["GET", "/a"]);
        }
        for stale in ["_stats.csv", "_failures.csv", "_exceptions.csv"] {
            let text = std::fs::read_to_string(with_suffix(&prefix, stale)).unwrap();
            assert_eq!(text.lines().count(), 1, "{stale}: only a header so far");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn history_rows_keep_the_corrected_figures() {
    let dir = tempfile_dir();
    let prefix = dir.join("corrected");
    let mut report = CsvReport::create(&prefix, true).unwrap();
    let stats = crate::summary::tests::open_run();
    report
        .append_history(&stats, 1_700_000_002_000, false)
        .unwrap();
    let text = std::fs::read_to_string(&CsvReport::paths(&prefix)[1]).unwrap();
    let rows = records_of(text.as_bytes());
    assert_eq!(rows[0], HISTORY_HEADER);
    let slow = rows.iter().find(|r| r[3] == "/slow").unwrap();
    let aggregated = rows.iter().find(|r| r[3] == "Aggregated").unwrap();
    let corrected = EndpointSummary::of(&stats.aggregated(), "", 1.0);
    // Total Max Response Time and the current p100: the corrected 88 ms,
    // not the uncorrected 15 ms.
    assert_eq!(aggregated[22], py_float(corrected.max_ms));
    assert_eq!(slow[16], "88");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "blast-csv-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The requests `tests/fixtures/locust/synthetic.py` fed Locust, fed to
/// blast: its files must come out byte for byte as Locust wrote them.
fn locust_synthetic_summary() -> Summary {
    let mut fast = EntryDelta::new(EntryKey {
        method: Method::Get,
        name: "/fast".into(),
    });
    for us in [250, 375] {
        for _ in 0..10_000 {
            fast.record(us, 100, false);
        }
    }
    let mut quoted = EntryDelta::new(EntryKey {
        method: Method::Post,
        name: "/b, \"quoted\"".into(),
    });
    quoted.record(1500, 0, true);
    let empty = EntryDelta::new(EntryKey {
        method: Method::Get,
        name: "/empty".into(),
    });
    let mut all = EntryDelta::new(EntryKey {
        method: Method::Get,
        name: "Aggregated".into(),
    });
    for e in [&fast, &quoted, &empty] {
        all.merge(e);
    }
    let mut s = crate::summary::tests::closed_summary();
    s.duration_s = 10.0;
    s.endpoints = vec![
        EndpointSummary::of(&fast, "GET", 10.0),
        EndpointSummary::of(&quoted, "POST", 10.0),
        EndpointSummary::of(&empty, "GET", 10.0),
    ];
    s.total = EndpointSummary::of(&all, "", 10.0);
    s.failures = vec![FailureSummary {
        method: "POST".into(),
        name: "/b, \"quoted\"".into(),
        error: "HTTP 500".into(),
        occurrences: 1,
        first_seen_ms: 1_700_000_001_500,
        last_seen_ms: 1_700_000_009_999,
    }];
    s.errors = vec![ErrorSummary {
        message: "boom, again".into(),
        location: "s.rhai:3:5".into(),
        count: 2,
        first_seen_ms: 0,
        last_seen_ms: 0,
    }];
    s
}

#[test]
fn the_same_requests_give_the_files_locust_wrote_byte_for_byte() {
    let s = locust_synthetic_summary();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "stats",
            stats_csv(&s),
            include_str!("../../tests/fixtures/locust/synthetic_stats.csv"),
        ),
        (
            "failures",
            failures_csv(&s),
            include_str!("../../tests/fixtures/locust/synthetic_failures.csv"),
        ),
        (
            "exceptions",
            exceptions_csv(&s),
            include_str!("../../tests/fixtures/locust/synthetic_exceptions.csv"),
        ),
    ];
    for (name, blast, locust) in cases {
        assert_eq!(String::from_utf8(blast).unwrap(), locust, "{name}");
    }
}

#[test]
fn locust_buckets_round_as_python_does() {
    let cases = [
        (0.0, 0),
        (0.49, 0),
        (0.5, 0),
        (1.5, 2),
        (2.5, 2),
        (99.4, 99),
        (99.6, 100),
        (147.3, 150),
        (145.0, 140),
        (999.0, 1000),
        (3432.0, 3400),
        (58760.0, 59000),
    ];
    for (ms, bucket) in cases {
        assert_eq!(locust_bucket(ms), bucket, "{ms}");
    }
    assert_eq!(utc_timestamp(1_700_000_001_999), "2023-11-14T22:13:21Z");
}

#[test]
fn only_the_last_report_replaces_the_history_rows_of_its_second() {
    let dir = tempfile_dir();
    for full in [false, true] {
        let prefix = dir.join(if full { "full" } else { "agg" });
        let mut report = CsvReport::create(&prefix, full).unwrap();
        let mut stats = RunStats::default();
        // Reports at 1.0 s, 2.0 s, 2.999 s (jitter: the same Unix second,
        // but a second of the run of its own), 3.0 s, and 3.9 s (the run's
        // last, within the second of the one before).
        let reports = [
            (1000u64, false),
            (2000, false),
            (2999, false),
            (3000, false),
            (3900, true),
        ];
        for (seq, (at_ms, last)) in reports.into_iter().enumerate() {
            let mut a = EntryDelta::new(EntryKey {
                method: Method::Get,
                name: "/a".into(),
            });
            a.record(1000, 10, false);
            stats.merge(&StatsDelta {
                seq: seq as u64,
                at_ms: 1_700_000_000_000 + at_ms,
                entries: vec![a],
                users: 1,
                last,
                ..Default::default()
            });
            report
                .append_history(&stats, 1_700_000_000_000 + at_ms, last)
                .unwrap();
        }
        let rows = records_of(&std::fs::read(&CsvReport::paths(&prefix)[1]).unwrap());
        let aggregated: Vec<(&str, &str)> = rows
            .iter()
            .filter(|r| r[3] == "Aggregated")
            .map(|r| (r[0].as_str(), r[17].as_str()))
            .collect();
        assert_eq!(
            aggregated,
            [
                ("1700000001", "1"),
                ("1700000002", "2"),
                ("1700000002", "3"),
                ("1700000003", "5")
            ],
            "full history: {full}"
        );
        assert_eq!(rows.len(), 1 + 4 * if full { 2 } else { 1 });
    }
    let _ = std::fs::remove_dir_all(dir);
}
