//! Locust's CSV files, checked against the JSON summary and the target.

use std::collections::BTreeMap;
use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use super::*;
use crate::blast_cli::{Scratch, exclusive, start_target};

#[test]
fn csv_files_are_locusts_and_agree_with_the_json_and_the_target() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file("mixed.rhai", MIXED);
    let prefix = scratch.path("out/run");
    let json = scratch.path("summary.json");
    let stdout = File::create(scratch.path("stdout.txt")).unwrap();
    let stderr = File::create(scratch.path("stderr.txt")).unwrap();
    let url = format!("http://{}", target.addr());
    let mut child = blast_command(
        scratch.dir.path(),
        &[],
        &[
            "run",
            "-s",
            scenario.to_str().unwrap(),
            "-H",
            &url,
            "-u",
            "5",
            "-r",
            "5",
            "-t",
            "5s",
            "--cores",
            "1",
            "--csv",
            prefix.to_str().unwrap(),
            "--csv-full-history",
            "--json",
            json.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::from(stdout))
    .stderr(Stdio::from(stderr))
    .spawn()
    .expect("blast starts");

    // The stats file is rewritten while the run goes, not only at its end.
    let stats_path = with_suffix(&prefix, "_stats.csv");
    let mut rows_while_running = 0;
    while child.try_wait().unwrap().is_none() {
        let rows = std::fs::read_to_string(&stats_path)
            .map(|t| t.lines().filter(|l| l.contains("Aggregated")).count())
            .unwrap_or(0);
        if rows > 0 && child.try_wait().unwrap().is_none() {
            rows_while_running = rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(scratch.path("stderr.txt")).unwrap();
    // MIXED fails requests and raises script errors on purpose: exit 1.
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(rows_while_running, 1, "no stats row was written mid-run");
    // Not a terminal: the progress comes as plain lines.
    assert!(stderr.contains("\nprogress: "), "{stderr}");

    let summary = read_json(&json);
    let total = summary["total"]["requests"].as_u64().unwrap();
    assert_eq!(target.counts().total, total);
    assert!(
        summary["total"]["failures"].as_u64().unwrap() > 0,
        "{summary:#}"
    );

    // The headers, byte for byte, as the issue lists Locust's, with the
    // line ends Python's csv module writes.
    let expected_headers = [
        (
            "_stats.csv",
            "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%",
        ),
        (
            "_stats_history.csv",
            "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size",
        ),
        (
            "_failures.csv",
            "Method,Name,Error,Occurrences,First Seen,Last Seen",
        ),
        ("_exceptions.csv", "Count,Message,Traceback,Nodes"),
    ];
    for (suffix, header) in expected_headers {
        let bytes = std::fs::read(with_suffix(&prefix, suffix)).unwrap();
        let expected = format!("{header}\r\n");
        assert_eq!(
            &bytes[..expected.len().min(bytes.len())],
            expected.as_bytes(),
            "{suffix}"
        );
    }

    // Stats: one row per entry in Locust's order, then Aggregated; every
    // number as the JSON has it.
    let stats = records(&stats_path);
    let endpoints = summary["endpoints"].as_array().unwrap();
    assert_eq!(stats.len(), 1 + endpoints.len() + 1);
    let mut names: Vec<&str> = endpoints
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    names.sort();
    let row_names: Vec<&str> = stats[1..stats.len() - 1]
        .iter()
        .map(|r| r[1].as_str())
        .collect();
    assert_eq!(row_names, names);
    let percentile_labels = [
        "50", "66", "75", "80", "90", "95", "98", "99", "99.9", "99.99", "100",
    ];
    let by_name: BTreeMap<&str, &Vec<String>> =
        stats[1..].iter().map(|r| (r[1].as_str(), r)).collect();
    for e in endpoints.iter().chain(std::iter::once(&summary["total"])) {
        let name = e["name"].as_str().unwrap();
        let row = by_name[name];
        assert_eq!(row[0], e["method"].as_str().unwrap(), "{name}");
        assert_eq!(row[2], e["requests"].to_string(), "{name}");
        assert_eq!(row[3], e["failures"].to_string(), "{name}");
        assert_eq!(row[4], locust_median(e), "{name}");
        assert_eq!(
            row[5].parse::<f64>().unwrap(),
            e["avg_ms"].as_f64().unwrap()
        );
        assert_eq!(
            row[6].parse::<f64>().unwrap(),
            e["min_ms"].as_f64().unwrap()
        );
        assert_eq!(
            row[7].parse::<f64>().unwrap(),
            e["max_ms"].as_f64().unwrap()
        );
        assert_eq!(
            row[8].parse::<f64>().unwrap(),
            e["avg_content_size"].as_f64().unwrap()
        );
        assert_eq!(row[9].parse::<f64>().unwrap(), e["rps"].as_f64().unwrap());
        assert_eq!(
            row[10].parse::<f64>().unwrap(),
            e["failures_per_s"].as_f64().unwrap()
        );
        for (i, label) in percentile_labels.iter().enumerate() {
            assert_eq!(
                row[11 + i],
                locust_ms(&e["percentiles_ms"][label]),
                "{name} p{label}"
            );
        }
    }
    let aggregated = stats.last().unwrap();
    assert_eq!(&aggregated[..3], ["", "Aggregated", &total.to_string()]);

    // Failures: as the JSON groups them; the target's 500s.
    let failures = records(&with_suffix(&prefix, "_failures.csv"));
    let json_failures = summary["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1 + json_failures.len());
    assert_eq!(&failures[1][..3], ["GET", "/status/500", "HTTP 500"]);
    let occurrences: u64 = failures[1..]
        .iter()
        .map(|r| r[3].parse::<u64>().unwrap())
        .sum();
    assert_eq!(occurrences, summary["total"]["failures"].as_u64().unwrap());
    // ISO-8601 UTC, as Locust: the same width, so text order is time order.
    assert!(failures[1][4] <= failures[1][5], "{failures:?}");
    assert_eq!(
        failures[1][4],
        blast_control::csv::utc_timestamp(json_failures[0]["first_seen_ms"].as_u64().unwrap())
    );

    // Exceptions: the script error, its location as the traceback.
    let exceptions = records(&with_suffix(&prefix, "_exceptions.csv"));
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(exceptions.len(), 2, "{exceptions:?}");
    assert_eq!(exceptions[1][0], errors[0]["count"].to_string());
    assert_eq!(exceptions[1][1], "boom, on purpose");
    assert_eq!(exceptions[1][2], errors[0]["location"].as_str().unwrap());
    assert_eq!(exceptions[1][3], "local");

    // History: every entry's row, then the Aggregated row, once a report;
    // totals only grow and end at the run's total.
    let history = records(&with_suffix(&prefix, "_stats_history.csv"));
    let aggregated: Vec<&Vec<String>> = history[1..]
        .iter()
        .filter(|r| r[3] == "Aggregated")
        .collect();
    assert!(aggregated.len() >= 2, "{history:?}");
    let totals: Vec<u64> = aggregated.iter().map(|r| r[17].parse().unwrap()).collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{totals:?}");
    assert_eq!(*totals.last().unwrap(), total);
    let timestamps: Vec<u64> = history[1..].iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(
        timestamps.windows(2).all(|w| w[0] <= w[1]),
        "{timestamps:?}"
    );
    // One Aggregated row a second: the last report, within the second of
    // the one before, replaced its rows instead of adding a second set.
    let seconds: Vec<u64> = aggregated.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(seconds.windows(2).all(|w| w[0] < w[1]), "{seconds:?}");
    let entry_rows = history[1..].iter().filter(|r| !r[2].is_empty()).count();
    assert!(
        entry_rows >= 2,
        "--csv-full-history writes every entry: {history:?}"
    );
    for row in &history[1..] {
        assert_eq!(row.len(), 24);
        assert_eq!(row[2].is_empty(), row[3] == "Aggregated", "{row:?}");
    }

    // And as the files Locust itself wrote for a run like this one.
    super::locust_fixtures::assert_like_locusts(&prefix, "full");
}
