//! Router match time at 10 and 10,000 locations (mixed exact / wildcard hosts, prefixes,
//! exact paths and some regexes). Target: 10,000 ≤ 2 × 10, and p99 ≤ 2 µs per match.

// criterion_group! generates a public `benches` function without a doc comment.
#![allow(missing_docs)]
use criterion::{black_box, criterion_group, BenchmarkId, Criterion};
use louailink::runtime::location::Location;
use louailink::runtime::router::Router;
use louailink_shared::LocationConf;
use std::collections::HashMap;
use std::sync::Arc;

/// The i-th location of a synthetic config: a mix of every host and path kind.
fn location(i: usize) -> Location {
    let host = match i % 5 {
        0 => Some(format!("svc{i}.example.com")),
        1 => Some(format!("*.tenant{i}.example.com")),
        2 if i % 50 == 2 => Some(format!("~^api{i}-[a-z]+\\.example\\.org$")),
        _ => None,
    };
    let path = match i % 4 {
        0 => format!("/api/v1/service{i}/"),
        1 => format!("=/exact/{i}"),
        2 if i % 40 == 2 => format!("~^/items/{i}/[0-9]+$"),
        _ => format!("/static/{i}"),
    };
    let conf = LocationConf {
        host,
        path: Some(path),
        ..LocationConf::default()
    };
    Location::compile(&format!("loc{i}"), &conf, &HashMap::new(), &HashMap::new())
        .expect("valid synthetic location")
}

fn router(n: usize) -> Router {
    Router::new((0..n).map(|i| Arc::new(location(i))).collect()).expect("benchmark routes compile")
}

/// Requests that hit locations of each kind (and a miss), spread over the config.
fn requests(n: usize) -> Vec<(Option<String>, String)> {
    let pick = |k: usize| (k * 7919) % n;
    (0..64)
        .map(|k| {
            let i = pick(k);
            match k % 6 {
                0 => (
                    Some(format!("svc{}.example.com", i - i % 5)),
                    format!("/api/v1/service{}/x", i - i % 4),
                ),
                1 => (
                    Some(format!("a.tenant{}.example.com", (i - i % 5) + 1)),
                    format!("/static/{}/f.css", i - i % 4 + 3),
                ),
                2 => (None, format!("/exact/{}", i - i % 4 + 1)),
                3 => (
                    Some("unknown.host".into()),
                    format!("/static/{}/x", i - i % 4 + 3),
                ),
                4 => (Some("svc0.example.com".into()), "/nothing/here".into()),
                _ => (None, format!("/items/{}/42", i - i % 40 + 2)),
            }
        })
        .collect()
}

fn bench_router(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_match");
    for n in [10usize, 10_000] {
        let r = router(n);
        let reqs = requests(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            let mut k = 0usize;
            b.iter(|| {
                let (host, path) = &reqs[k % reqs.len()];
                k += 1;
                black_box(r.find(host.as_deref(), path))
            })
        });
    }
    group.finish();
}

/// Per-match latency percentiles (criterion reports means): times each of many matches.
fn percentiles() {
    for n in [10usize, 10_000] {
        let r = router(n);
        let reqs = requests(n);
        let mut samples: Vec<u64> = Vec::with_capacity(200_000);
        for k in 0..200_000 {
            let (host, path) = &reqs[k % reqs.len()];
            let t = std::time::Instant::now();
            black_box(r.find(host.as_deref(), path));
            samples.push(t.elapsed().as_nanos() as u64);
        }
        samples.sort_unstable();
        let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        println!(
            "router_match/{n}: p50 {} ns, p99 {} ns, p99.9 {} ns (200k single timed matches)",
            pct(0.50),
            pct(0.99),
            pct(0.999)
        );
    }
}

criterion_group!(benches, bench_router);

fn main() {
    percentiles();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
