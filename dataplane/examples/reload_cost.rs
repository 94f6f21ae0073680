//! Times the phases of a file-mode reload: load (parse + validate), snapshot build.
use louailink::access_log::Sink;
use louailink::snapshot::Snapshot;
use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sink = Sink::new(None);
    let mut previous: Option<Snapshot> = None;
    for round in 0..4 {
        let path = std::path::Path::new(&args[round % args.len()]);
        let t = Instant::now();
        let text = std::fs::read_to_string(path).unwrap();
        let parsed =
            louailink_shared::loader::parse_text(&text, louailink_shared::Format::Toml, Some(path))
                .unwrap();
        let t_parse = t.elapsed();
        let t = Instant::now();
        louailink_shared::validate::validate(&parsed.config, &parsed.sources).unwrap();
        let t_validate = t.elapsed();
        let t = Instant::now();
        let hash = louailink_shared::storage::config_hash(&parsed.config);
        let t_hash = t.elapsed();
        let t = Instant::now();
        let s = Snapshot::build(parsed.config.clone(), previous.as_ref(), &sink)
            .await
            .unwrap();
        let t_build = t.elapsed();
        let t = Instant::now();
        previous = Some(s);
        let t_drop = t.elapsed();
        let t = Instant::now();
        drop(parsed);
        let t_drop_parsed = t.elapsed();
        println!("round {round}: parse {t_parse:?} validate {t_validate:?} hash {t_hash:?} build {t_build:?} drop-old {t_drop:?} drop-parsed {t_drop_parsed:?} {}", &hash[..8]);
    }
}
