//! `--autoreload` / `-a` on files: watch the config file or directory (inotify through
//! `notify`), wait for a short quiet period so an editor's save is one change, reload (parsing
//! only the parts of the files that changed), apply.

use crate::lifecycle::config_runtime::run_when_idle;
use crate::lifecycle::reload::{Outcome, Reloader};
use crate::runtime::snapshot::Snapshot;
use louailink_shared::incremental::{load_reusing, Reloaded, SegmentIndex};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Quiet time after the last file event before the config is read.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// How long a file written in place may stay open for writing before it is read anyway.
const WRITE_CLOSE_WAIT: Duration = Duration::from_secs(5);

fn is_config_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("toml" | "yaml" | "yml" | "json")
    )
}

/// Watches `source` until the process ends, applying every valid change.
pub async fn watch_files(source: PathBuf, reloader: Arc<Reloader>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let recheck = tx.clone();
    let file = source.is_file().then(|| source.clone());
    // A file written in place (truncated, then written) is half-written until it is closed:
    // reading it in between would apply an empty or cut config, so a reload waits for the
    // close. A file replaced by a rename is whole when it appears.
    let writing = Arc::new(AtomicBool::new(false));
    let open_for_write = Arc::clone(&writing);
    let handler = move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        let relevant = event.paths.iter().any(|p| match &file {
            Some(f) => p.file_name() == f.file_name(),
            None => is_config_file(p),
        });
        if !relevant {
            return;
        }
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                open_for_write.store(false, Ordering::Release)
            }
            // Our own reads open and close the files too.
            EventKind::Access(_) => return,
            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                open_for_write.store(true, Ordering::Release)
            }
            EventKind::Modify(ModifyKind::Metadata(_)) => {}
            // Created, renamed into place or removed: whole, or gone.
            _ => open_for_write.store(false, Ordering::Release),
        }
        // A full channel already holds a pending change: nothing is lost.
        let _ = tx.try_send(());
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => return tracing::error!(error = %e, "cannot watch the config"),
    };
    // A single file is watched through its directory: editors replace files by renaming.
    let (target, mode) = if source.is_file() {
        let dir = source
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (dir.to_path_buf(), RecursiveMode::NonRecursive)
    } else {
        (source.clone(), RecursiveMode::Recursive)
    };
    if let Err(e) = watcher.watch(&target, mode) {
        return tracing::error!(path = %target.display(), error = %e, "cannot watch the config");
    }
    tracing::info!(path = %source.display(), "watching the config for changes");
    // An edit made between the start-up load and now raised no event: check once.
    let _ = recheck.try_send(());
    // What the last load made of each part of the files, for the snapshot it built.
    let mut index: Arc<SegmentIndex> = Arc::default();
    let mut indexed: Weak<Snapshot> = Weak::new();
    while rx.recv().await.is_some() {
        let since = Instant::now();
        loop {
            while tokio::time::timeout(DEBOUNCE, rx.recv())
                .await
                .is_ok_and(|r| r.is_some())
            {}
            if !writing.load(Ordering::Acquire) || since.elapsed() > WRITE_CLOSE_WAIT {
                break;
            }
        }
        let path = source.clone();
        // The index describes the serving config only if nothing replaced it since.
        let base = reloader.current();
        let known = match indexed.upgrade() {
            Some(s) if Arc::ptr_eq(&s, &base) => Arc::clone(&index),
            _ => Arc::default(),
        };
        let loaded = run_when_idle(move || load_reusing(&path, &known, &base.config));
        match loaded.await {
            Some(Ok(Reloaded {
                config,
                index: next,
                parsed,
            })) => {
                tracing::debug!(parsed, segments = next.len(), "config read");
                if let Outcome::Rejected(_) = reloader.apply(Arc::new(config)).await {
                    tracing::error!("the changed config was not applied");
                } else {
                    index = Arc::new(next);
                    indexed = Arc::downgrade(&reloader.current());
                }
            }
            Some(Err(errors)) => {
                for e in errors.iter() {
                    tracing::error!(error = %e, "invalid config; the running config keeps serving");
                }
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                reloader.notifier().config_rejected(&errors);
            }
            None => tracing::error!("config reload task failed"),
        }
    }
}
