//! Criterion benches: every compiled distance kernel at common dimensions, an exact
//! scan of 100k rows, and PQ asymmetric distances (the graph walk's inner loop).
//! `cargo bench -p strata-index`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use strata_index::distance::available;
use strata_index::pq::ProductQuantizer;
use strata_index::{exact::scan_block, Metric, TopK};

fn kernels(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut g = c.benchmark_group("l2");
    for dim in [50usize, 128, 768] {
        let a: Vec<f32> = (0..dim).map(|_| rng.random()).collect();
        let b: Vec<f32> = (0..dim).map(|_| rng.random()).collect();
        for k in available() {
            g.bench_with_input(BenchmarkId::new(k.name, dim), &dim, |bch, _| {
                bch.iter(|| (k.l2)(std::hint::black_box(&a), std::hint::black_box(&b)))
            });
        }
    }
    g.finish();
}

fn scan(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let (n, dim) = (100_000usize, 128usize);
    let block: Vec<f32> = (0..n * dim).map(|_| rng.random()).collect();
    let q: Vec<f32> = (0..dim).map(|_| rng.random()).collect();
    let mut g = c.benchmark_group("exact_scan");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    g.bench_function("100k x 128 top10", |b| {
        b.iter(|| {
            let mut top = TopK::new(10);
            scan_block(
                Metric::L2,
                &q,
                &block,
                dim,
                &mut top,
                |r| r as u64,
                |_| false,
            );
            top.into_sorted()
        })
    });
    g.finish();
}

fn adc(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let (n, dim) = (20_000usize, 128usize);
    let data: Vec<f32> = (0..n * dim).map(|_| rng.random()).collect();
    let q: Vec<f32> = (0..dim).map(|_| rng.random()).collect();
    let mut g = c.benchmark_group("adc");
    for m in [16usize, 30] {
        let pq = ProductQuantizer::train(&data, dim, m, 10_000, 1);
        let codes = pq.encode_all(&data);
        let table = pq.adc_table(&q, Metric::L2);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("20k codes", m), &m, |b, &m| {
            b.iter(|| {
                codes
                    .chunks_exact(m)
                    .map(|c| table.distance(std::hint::black_box(c)))
                    .sum::<f32>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, kernels, scan, adc);
criterion_main!(benches);
