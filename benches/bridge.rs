//! What one task call costs in the script bridge: choosing the task,
//! starting a coroutine on a pooled stack, calling the Rhai function with
//! the user's `this`, and finishing. The tasks send no request, so this is
//! the bridge alone; each `http::` call in a task adds one suspend/resume
//! pair, measured by the `request_step` case.

use std::hint::black_box;
use std::time::Duration;

use blast_engine::http::{Origin, Origins, Response};
use blast_engine::{Resume, Step, Work};
use blast_script::Scenario;
use criterion::{Criterion, criterion_group, criterion_main};

const SOURCE: &str = r#"
user("Empty", #{ tasks: [Fn("empty")] });
user("State", #{ tasks: [Fn("state")] });
user("Request", #{ tasks: [Fn("request")] });
fn empty() { }
fn state() { this.n = if this.n == () { 1 } else { this.n + 1 }; }
fn request() { let r = http::get("/", #{ headers: #{ "X-A": "1" } }); this.status = r.status; }
"#;

fn bench(c: &mut Criterion) {
    let scenario =
        Scenario::from_source("bench.rhai", SOURCE).expect("the bench scenario compiles");
    let origin = Origin::resolve("http://127.0.0.1:9").expect("a literal origin");
    let origins = std::sync::Arc::new(Origins::new(vec![origin], false));
    let build = scenario.builder(&origins, Some(1), 1);
    let shard = build(0).expect("the scenario builds");
    let mut group = c.benchmark_group("bridge");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    // User indices 0, 1, 2 are the types in declaration order.
    for (index, name) in [(0u64, "empty_task"), (1, "task_with_this")] {
        let mut user = shard.new_user(index);
        group.bench_function(name, |b| {
            b.iter(|| {
                let step = user.start(Work::Task);
                assert!(matches!(step, Step::Done(_)));
                black_box(step);
            })
        });
    }
    let mut user = shard.new_user(2);
    group.bench_function("request_step", |b| {
        b.iter(|| {
            let step = user.start(Work::Task);
            assert!(matches!(step, Step::Request(_)));
            let response = Response {
                status: 200,
                ..Response::default()
            };
            let done = user.resume(Resume::Response(Box::new(response)));
            assert!(matches!(done, Step::Done(_)));
            black_box(done);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
