//! What a file-mode reload costs, phase by phase: time to parse, validate and build a
//! snapshot (reusing the previous one), and the heap each stage keeps alive; and the time of
//! the same load reusing the previous round's segments (`incremental::load_reusing`, what
//! `--autoreload` does), of which validation.
//!
//! `cargo run --release --example reload_cost -p louailink -- a.toml b.toml` alternates the
//! files for 4 rounds (generate big ones with `tests/bench/fleet_bench.py config 10000 ...`).

use louailink::request::access_log::Sink;
use louailink::runtime::snapshot::Snapshot;
use louailink_shared::incremental::{load_reusing, SegmentIndex};
use louailink_shared::Config;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let files: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        !files.is_empty(),
        "usage: reload_cost CONFIG.toml [CONFIG2.toml]"
    );
    let sink = Sink::new(None);
    let mut previous: Option<Snapshot> = None;
    let mut index = SegmentIndex::default();
    for round in 0..4 {
        let path = std::path::Path::new(&files[round % files.len()]);
        let text = std::fs::read_to_string(path)?;
        let base = LIVE.load(Ordering::Relaxed);
        let t = Instant::now();
        let loaded = louailink_shared::loader::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let t_load = t.elapsed();
        let after_load = LIVE.load(Ordering::Relaxed);
        let empty = Config::default();
        let running = previous.as_ref().map_or(&empty, |p| &p.config);
        let t = Instant::now();
        let reused = load_reusing(path, &index, running).map_err(|e| anyhow::anyhow!("{e}"))?;
        let t_reuse = t.elapsed();
        anyhow::ensure!(
            reused.config == loaded.config,
            "load_reusing differs from load"
        );
        let t = Instant::now();
        let _ =
            louailink_shared::validate_since(&reused.config, &Default::default(), Some(running));
        let t_validate = t.elapsed();
        let parsed = reused.parsed;
        index = reused.index;
        drop(reused.config);
        let config_only = {
            let before = LIVE.load(Ordering::Relaxed);
            let copy = loaded.config.clone();
            let size = LIVE.load(Ordering::Relaxed) - before;
            drop(copy);
            size
        };
        let t = Instant::now();
        let snapshot = Snapshot::build(loaded.config.into(), previous.as_ref(), &sink)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let t_build = t.elapsed();
        drop(loaded.sources);
        let t = Instant::now();
        previous = Some(snapshot);
        let t_drop = t.elapsed();
        println!(
            "round {round}: load (parse + validate) {t_load:.1?}, build {t_build:.1?}, drop old {t_drop:.1?}; \
             load reusing segments {t_reuse:.1?} ({parsed} parsed; its validation alone {t_validate:.1?}); \
             text {}, loaded {}, of which config {}; live after the swap {}",
            mib(text.len()),
            mib(after_load - base),
            mib(config_only),
            mib(LIVE.load(Ordering::Relaxed) - base + text.len()),
        );
    }
    Ok(())
}
