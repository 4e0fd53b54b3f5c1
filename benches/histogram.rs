//! Merging latency histograms, as the aggregator and controller do every
//! second for every entry of every shard.

use std::hint::black_box;
use std::time::Duration;

use blast_proto::{EntryDelta, EntryKey, Method};
use criterion::{Criterion, criterion_group, criterion_main};

/// An entry with 10,000 latencies from 50 µs to 2 s, most near 1 ms.
fn filled(seed: u64) -> EntryDelta {
    let mut entry = EntryDelta::new(EntryKey {
        method: Method::Get,
        name: "/items/:id".into(),
    });
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..10_000 {
        // Log-uniform between 50 µs and 2 s.
        let us = (50f64 * (40_000f64).powf(rng.f64())) as u64;
        entry.record(us, 512, rng.u8(..) == 0);
    }
    entry
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("histogram");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    let (a, b) = (filled(1), filled(2));
    group.bench_function("merge_entry_deltas", |bench| {
        bench.iter(|| {
            let mut into = a.clone();
            into.merge(black_box(&b));
            black_box(into.requests)
        })
    });
    group.bench_function("add_raw_histograms", |bench| {
        bench.iter(|| {
            let mut into = a.latency.clone();
            into.add(black_box(&b.latency)).expect("same bounds");
            black_box(into.len())
        })
    });
    group.bench_function("clone_only", |bench| {
        bench.iter(|| black_box(a.latency.clone()).len())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
