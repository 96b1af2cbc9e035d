//! The tailer's reading, parsing and normalizing of container log lines
//! (CRI, with the kubelet's file name), without the store. Run with
//! `cargo bench --bench tail`.

use std::io::Write;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_ingest::tail::{TailOptions, TailStats, Tailer};

/// The allocator of the `vigil` binary, so per-event costs (allocation
/// heavy) are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LINES: usize = 50_000;

fn read_cri_lines(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let containers = dir.path().join("containers");
    std::fs::create_dir(&containers).unwrap();
    let path = containers.join(format!("api-0_shop_api-{}.log", "c".repeat(64)));
    let mut file = std::fs::File::create(&path).unwrap();
    for n in 0..LINES {
        let line = if n % 10 == 0 {
            format!(
                "2026-11-20T08:15:{:02}.123456789Z stdout F {{\"level\":\"info\",\"msg\":\"request served\",\"path\":\"/api/v1/orders/{n}\",\"ms\":{}}}\n",
                n % 60,
                n % 97
            )
        } else {
            format!(
                "2026-11-20T08:15:{:02}.123456789Z stdout F 10.0.{}.{} - - \"GET /api/v1/orders/{n} HTTP/1.1\" 200 512 \"-\" \"kube-probe/1.31\"\n",
                n % 60,
                n % 256,
                n % 200
            )
        };
        file.write_all(line.as_bytes()).unwrap();
    }
    drop(file);
    let glob = format!("{}/*.log", containers.display());
    let mut group = c.benchmark_group("tail");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("read_parse_normalize_50000_cri_lines", |b| {
        b.iter(|| {
            // A fresh tailer (no offsets saved) reads the whole file.
            let mut options = TailOptions::new(vec![glob.clone()], dir.path().join("offsets-unused.json"));
            options.read_chunk_bytes = usize::MAX;
            let mut tailer = Tailer::new(options, Arc::new(TailStats::default()));
            let events = tailer.poll();
            assert_eq!(events.len(), LINES);
            events
        })
    });
    group.finish();
}

criterion_group!(benches, read_cri_lines);
criterion_main!(benches);
