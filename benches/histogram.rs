//! Merging latency histograms, as the aggregator and controller do every
//! second for every entry of every shard.
//!
//! The merged copy is made outside the timed part (`iter_batched`), so each
//! case times the merge alone.

use std::hint::black_box;
use std::time::Duration;

use blast_proto::{EntryDelta, EntryKey, Method};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// Latencies recorded per histogram.
const SAMPLES: usize = 10_000;
/// Bounds of a latency, in microseconds: 50 µs to 2 s.
const MIN_US: f64 = 50.0;
const MAX_US: f64 = 2_000_000.0;

/// An entry with [`SAMPLES`] latencies: log-normal around 1 ms (so most are
/// between 0.2 and 5 ms), plus 1% spread evenly on a log scale over the
/// whole range, for the tail.
fn filled(seed: u64) -> EntryDelta {
    let mut entry = EntryDelta::new(EntryKey {
        method: Method::Get,
        name: "/items/:id".into(),
    });
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..SAMPLES {
        let us = if rng.u8(..100) == 0 {
            MIN_US * (MAX_US / MIN_US).powf(rng.f64())
        } else {
            // Box-Muller: a standard normal from two uniforms.
            let normal =
                (-2.0 * (1.0 - rng.f64()).ln()).sqrt() * (std::f64::consts::TAU * rng.f64()).cos();
            (1_000f64.ln() + 0.8 * normal).exp()
        };
        entry.record(us.clamp(MIN_US, MAX_US) as u64, 512, rng.u8(..) == 0);
    }
    entry
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("histogram");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    let (a, b) = (filled(1), filled(2));
    group.bench_function("merge_entry_deltas", |bench| {
        bench.iter_batched(
            || a.clone(),
            |mut into| {
                into.merge(black_box(&b));
                into
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("add_raw_histograms", |bench| {
        bench.iter_batched(
            || a.latency.clone(),
            |mut into| {
                into.add(black_box(&b.latency)).expect("same bounds");
                into
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
