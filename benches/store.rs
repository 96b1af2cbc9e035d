//! The store's write path without HTTP or rules: events appended to the
//! write-ahead log (fsync per batch of 1,000), indexed into tantivy and
//! committed. Run with `cargo bench --bench store`.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_index::{Store, StoreOptions, WalPosition};
use vigil_ingest::k8s_audit::{self, Context};

mod common;
use common::audit_event;

/// The allocator of the `vigil` binary, so the store runs as it does in the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: usize = 20_000;
const BATCH: usize = 1_000;

fn append_index_and_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(EVENTS as u64));
    let originals: Vec<_> = (0..EVENTS).map(audit_event).collect();
    group.bench_function("append_index_commit_20000_audit_events", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let options = StoreOptions {
                    commit_interval: Duration::from_millis(500),
                    ..StoreOptions::new(dir.path())
                };
                let (store, durable) = Store::open(&options, WalPosition::default()).unwrap();
                // The rules consumer's place: drain the durable batches.
                let drain = std::thread::spawn(move || {
                    durable.into_iter().map(|batch| batch.events.len()).sum::<usize>()
                });
                for chunk in originals.chunks(BATCH) {
                    let events: Vec<_> = chunk
                        .iter()
                        .map(|original| {
                            k8s_audit::normalize(store.ids().next(), original.clone(), &Context::default())
                                .unwrap()
                        })
                        .collect();
                    store.append_blocking(events).unwrap();
                }
                store.shutdown();
                drop(store);
                assert_eq!(drain.join().unwrap(), EVENTS);
                dir
            },
        )
    });
    group.finish();
}

criterion_group!(benches, append_index_and_commit);
criterion_main!(benches);
