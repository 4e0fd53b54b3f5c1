use std::sync::Arc;

use super::*;
use crate::http::Origin;
use crate::user::{Outcome, Resume, ShardScenario, Step, VirtualUser, Wait, Work};

/// A user whose task sleeps 10 ms.
struct Sleeper;

impl VirtualUser for Sleeper {
    fn start(&mut self, work: Work) -> Step {
        match work {
            Work::Task => Step::Sleep(Duration::from_millis(10)),
            Work::OnStart | Work::OnStop => Step::Done(Outcome::Completed),
        }
    }

    fn resume(&mut self, _: Resume) -> Step {
        Step::Done(Outcome::Completed)
    }

    fn wait(&mut self) -> Wait {
        Wait::For(Duration::from_millis(10))
    }
}

/// Makes sleepers, except on shard 1, where making a user is a bug in
/// blast's own code (outside any user's code, which is guarded).
struct Faulty {
    shard: usize,
}

impl ShardScenario for Faulty {
    fn new_user(&self, _: u64) -> Box<dyn VirtualUser> {
        assert!(self.shard != 1, "a bug while making a user");
        Box::new(Sleeper)
    }
}

fn config(shards: usize) -> NodeConfig {
    NodeConfig {
        shards,
        origins: Arc::new(Origins::new(
            vec![Origin::resolve("http://127.0.0.1:9").unwrap()],
            false,
        )),
        limits: Limits::default(),
        timeout: Duration::from_secs(5),
        stop_timeout: Duration::from_secs(5),
        report_interval: Duration::from_millis(200),
        scenario: Arc::new(|shard| Ok(Box::new(Faulty { shard }) as Box<dyn ShardScenario>)),
        open: None,
        iterations: None,
    }
}

#[test]
fn a_shard_that_panics_is_reported_and_the_node_still_stops() {
    let (mut node, events) = LocalNode::start(config(2)).unwrap();
    node.ramp_to(4, 1000.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let failure = loop {
        match events.recv_deadline(deadline) {
            Ok(NodeEvent::Failed(reason)) => break reason,
            Ok(_) => {}
            Err(e) => panic!("no failure reported: {e}"),
        }
    };
    assert!(
        failure.contains("shard 1 failed") && failure.contains("a bug while making a user"),
        "{failure}"
    );
    // Shard 0 goes on running its users.
    let mut iterations = 0;
    while iterations == 0 {
        match events.recv_deadline(deadline) {
            Ok(NodeEvent::Delta(delta)) => iterations += delta.iterations,
            Ok(_) => {}
            Err(e) => panic!("shard 0 ran no iteration: {e}"),
        }
    }
    node.stop();
    loop {
        match events.recv_deadline(deadline) {
            Ok(NodeEvent::Delta(delta)) if delta.last => break,
            Ok(_) => {}
            Err(e) => panic!("the node never sent its last delta: {e}"),
        }
    }
    let problems = node.join();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("shard 1"), "{problems:?}");
}
