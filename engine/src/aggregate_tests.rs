use super::*;
use blast_proto::{EntryDelta, EntryKey, Method};

fn delta(shard: u32, seq: u64, requests: u64, last: bool) -> ShardReport {
    let mut entry = EntryDelta::new(EntryKey {
        method: Method::Get,
        name: "/".into(),
    });
    for _ in 0..requests {
        entry.record(100, 0, false);
    }
    ShardReport::Delta(Box::new(StatsDelta {
        source: shard,
        seq,
        at_ms: 1000 * (seq + 1),
        entries: vec![entry],
        users: 1,
        last,
        ..StatsDelta::default()
    }))
}

/// What an aggregator of `shards` shards sent when fed `reports`: its
/// events, and the commands each shard got.
fn feed(shards: usize, reports: Vec<ShardReport>) -> (Vec<NodeEvent>, Vec<Vec<ShardCommand>>) {
    let (report_tx, report_rx) = flume::unbounded();
    let (event_tx, event_rx) = flume::unbounded();
    let (hook_tx, _hook_rx) = flume::unbounded();
    let (commands, command_rxs): (Vec<_>, Vec<_>) = (0..shards).map(|_| flume::unbounded()).unzip();
    let aggregator = Aggregator {
        shards,
        interval: Duration::from_secs(3600),
        per_user: false,
        commands,
        events: event_tx,
        hook_results: hook_tx,
    };
    for report in reports {
        report_tx.send(report).unwrap();
    }
    drop(report_tx);
    aggregator.run(report_rx);
    let commands = command_rxs
        .iter()
        .map(|rx| rx.try_iter().collect())
        .collect();
    (event_rx.try_iter().collect(), commands)
}

/// The request counts of the merged deltas in `events`, in order.
fn counts(events: &[NodeEvent]) -> Vec<(u64, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::Delta(d) => {
                Some((d.entries.iter().map(|e| e.requests).sum::<u64>(), d.last))
            }
            _ => None,
        })
        .collect()
}

/// Feeds `reports` to an aggregator of `shards` shards and returns the
/// request counts of the merged deltas it sent, in order.
fn merged(shards: usize, reports: Vec<ShardReport>) -> Vec<(u64, bool)> {
    counts(&feed(shards, reports).0)
}

#[test]
fn deltas_with_one_number_go_out_together() {
    // Shard 1 runs a delta behind shard 0: each second still goes out
    // as one delta holding both shards' counts for it.
    let out = merged(
        2,
        vec![
            delta(0, 0, 10, false),
            delta(0, 1, 20, false),
            delta(1, 0, 1, false),
            delta(0, 2, 30, false),
            delta(1, 1, 2, false),
            delta(1, 2, 3, false),
            delta(0, 3, 0, true),
            delta(1, 3, 4, true),
        ],
    );
    assert_eq!(out, [(11, false), (22, false), (33, false), (4, true)]);
}

#[test]
fn a_finished_shard_holds_nothing_back() {
    let out = merged(
        2,
        vec![
            delta(1, 0, 5, true),
            delta(0, 0, 1, false),
            delta(0, 1, 2, false),
            delta(0, 2, 3, true),
        ],
    );
    // Shard 1's last delta joins second 0; shard 0 goes on alone.
    assert_eq!(out, [(6, false), (2, false), (3, true)]);
}

#[test]
fn a_lost_shard_still_ends_the_stream() {
    let out = merged(2, vec![delta(0, 0, 7, false)]);
    assert_eq!(out, [(7, true)]);
}

fn failed(shard: usize) -> ShardReport {
    ShardReport::Failed {
        shard,
        reason: "boom".into(),
    }
}

#[test]
fn a_failed_shard_is_said_and_holds_nothing_back() {
    let (events, _) = feed(
        2,
        vec![
            delta(0, 0, 1, false),
            delta(1, 0, 10, false),
            failed(1),
            delta(0, 1, 2, false),
            delta(0, 2, 3, true),
        ],
    );
    // Second 1 goes out as soon as shard 0's delta comes: shard 1 is no
    // longer waited for.
    assert_eq!(counts(&events), [(11, false), (2, false), (3, true)]);
    let failures: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::Failed(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 1, "{events:?}");
    assert!(
        failures[0].contains("shard 1 failed: boom"),
        "{}",
        failures[0]
    );
}

#[test]
fn a_run_with_a_failed_shard_still_stops_and_finishes() {
    // Shard 0 fails; once shard 1's users stopped, the stop hook runs on
    // shard 1 (the first one alive), then every shard is told to finish.
    let (events, commands) = feed(
        2,
        vec![
            failed(0),
            ShardReport::UsersStopped(1),
            ShardReport::HookDone(TestHook::Stop, Ok(None)),
            delta(1, 0, 4, true),
        ],
    );
    assert!(
        !commands[0]
            .iter()
            .any(|c| matches!(c, ShardCommand::RunHook(_))),
        "the stop hook went to the failed shard"
    );
    assert!(matches!(
        commands[1][..],
        [ShardCommand::RunHook(TestHook::Stop), ShardCommand::Finish]
    ));
    assert_eq!(counts(&events), [(4, true)]);
}

#[test]
fn a_shard_failing_in_the_stop_hook_still_lets_the_others_finish() {
    let (events, commands) = feed(
        2,
        vec![
            ShardReport::UsersStopped(0),
            ShardReport::UsersStopped(1),
            failed(0),
            delta(1, 0, 4, true),
        ],
    );
    assert!(matches!(
        commands[0][..],
        [ShardCommand::RunHook(TestHook::Stop), ..]
    ));
    assert!(
        commands[1]
            .iter()
            .any(|c| matches!(c, ShardCommand::Finish)),
        "shard 1 was never told to finish"
    );
    assert_eq!(counts(&events), [(4, true)]);
    assert!(
        events.iter().any(
            |e| matches!(e, NodeEvent::Warning(w) if w.contains("on_test_stop did not finish"))
        )
    );
}

#[test]
fn every_shard_failing_ends_the_stream() {
    let (events, _) = feed(2, vec![delta(0, 0, 3, false), failed(0), failed(1)]);
    assert_eq!(counts(&events), [(3, true)]);
}

/// The spawning-complete hooks a run of `shards` shards had run, and the
/// counts the node announced, when fed `reports`.
fn spawning(shards: usize, reports: Vec<ShardReport>) -> (Vec<u64>, Vec<(usize, u64)>) {
    let (events, commands) = feed(shards, reports);
    let announced = events
        .iter()
        .filter_map(|e| match e {
            NodeEvent::SpawningComplete(users) => Some(*users),
            _ => None,
        })
        .collect();
    let hooks = commands
        .iter()
        .enumerate()
        .flat_map(|(shard, cs)| {
            cs.iter().filter_map(move |c| match c {
                ShardCommand::RunHook(TestHook::SpawningComplete(users)) => Some((shard, *users)),
                _ => None,
            })
        })
        .collect();
    (announced, hooks)
}

#[test]
fn a_ramp_is_complete_once_every_shard_made_it() {
    let done = |shard, id, users| (shard, ShardReport::RampDone { id, users });
    let reports = |list: Vec<(usize, ShardReport)>| list.into_iter().map(|(_, r)| r).collect();
    // Both shards finished ramp 0: once, on shard 0.
    let (announced, hooks) = spawning(2, reports(vec![done(0, 0, 10), done(1, 0, 10)]));
    assert_eq!((announced, hooks), (vec![10], vec![(0, 10)]));
    // Ramp 0 was replaced on shard 1 before it got there: only ramp 1
    // completes; a late report of the old one changes nothing.
    let (announced, hooks) = spawning(
        2,
        reports(vec![
            done(0, 0, 10),
            done(0, 1, 4),
            done(1, 1, 4),
            done(1, 0, 10),
        ]),
    );
    assert_eq!((announced, hooks), (vec![4], vec![(0, 4)]));
    // One shard alone is not enough; and none once the run is stopping.
    let (announced, _) = spawning(2, reports(vec![done(0, 0, 10)]));
    assert!(announced.is_empty());
    let (announced, hooks) = spawning(
        2,
        vec![
            ShardReport::UsersStopped(0),
            ShardReport::RampDone { id: 0, users: 3 },
            ShardReport::RampDone { id: 0, users: 3 },
        ],
    );
    assert!(announced.is_empty() && hooks.is_empty());
    // A failed shard is counted out: the hook runs on the first live one.
    let (announced, hooks) = spawning(
        2,
        vec![
            ShardReport::Failed {
                shard: 0,
                reason: "bug".into(),
            },
            ShardReport::RampDone { id: 0, users: 5 },
        ],
    );
    assert_eq!((announced, hooks), (vec![5], vec![(1, 5)]));
}
