//! Times `loader::parse_text` on config files, and the parts of it: `formats::parse_tree`
//! (text to generic tree with line index) and `toml_edit` alone.
//!
//! `cargo run --release --example parse_cost -p louailink-shared -- FILE... [--rounds N]
//! [--text-only]`; prints the median and the minimum of N rounds (default 9), in ms.
//! `--text-only` times only `parse_text`, for profiling it (`perf record`).

use louailink_shared::{formats::parse_tree, loader::parse_text, Format};
use std::path::Path;
use std::time::Instant;

/// Median and minimum of `rounds` timings of `f`, in milliseconds.
fn time_ms(rounds: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut times: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut rounds = 9;
    if let Some(i) = args.iter().position(|a| a == "--rounds") {
        rounds = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(rounds);
        args.drain(i..(i + 2).min(args.len()));
    }
    let text_only = args.iter().any(|a| a == "--text-only");
    args.retain(|a| a != "--text-only");
    for file in &args {
        let path = Path::new(file);
        let text = std::fs::read_to_string(path).expect("readable config file");
        let format = Format::from_path(path).expect("a .toml, .yaml, .yml or .json file");
        let (med, min) = time_ms(rounds, || drop(parse_text(&text, format, Some(path))));
        print!("{file}: parse_text {med:.1} ms (min {min:.1})");
        if !text_only {
            let (med, min) = time_ms(rounds, || drop(parse_tree(&text, format)));
            print!(", parse_tree {med:.1} ms (min {min:.1})");
            if format == Format::Toml {
                let (med, min) = time_ms(rounds, || {
                    let _ = toml_edit::ImDocument::parse(text.as_str());
                });
                print!(", toml_edit {med:.1} ms (min {min:.1})");
            }
        }
        println!(" [{rounds} rounds]");
    }
}
