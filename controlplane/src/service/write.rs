//! The write path: plan, validate and commit a change as guarded transactions, retried on a
//! fresh snapshot when another writer won; then the `diff_config` event.

use super::plan::{check_plan, plan, Plan, Spec};
use super::{off_thread, Service, WriteOutcome};
use crate::auth::Caller;
use crate::diff::{item_change, render, ItemChange};
use crate::error::{ApiError, Detail};
use crate::history::{Record, Recorded};
use crate::store::staging::{Staging, StoredMarker};
use crate::store::{Snapshot, Write};
use louailink_shared::storage::ItemKey;
use serde_json::json;

/// Fresh snapshots tried when concurrent writers keep winning.
const ATTEMPTS: usize = 5;

impl Service {
    /// Writes `spec` as one validated change (in steps when too large for one transaction).
    pub(super) async fn write(
        &self,
        caller: &Caller,
        spec: Spec,
    ) -> Result<WriteOutcome, ApiError> {
        let _one_at_a_time = self.write_lock.lock().await;
        for _ in 0..ATTEMPTS {
            let snap = self.store.snapshot().await?;
            if let Some(id) = &snap.staged {
                return Err(ApiError::Unavailable(format!(
                    "a change staged over several transactions ({id}) has not finished or is being rolled back; try again shortly"
                )));
            }
            for (key, want) in &spec.if_match {
                let current = snap.items.get(key).map_or(0, |s| s.revision);
                if current != *want {
                    return Err(ApiError::RevisionMismatch {
                        message: format!("{key} is at revision {current}, not {want}"),
                        details: vec![Detail::item(
                            key.label(),
                            format!("current revision {current}"),
                        )],
                    });
                }
            }
            let plan = plan(&snap, &spec)?;
            if plan.steps.is_empty() {
                // Nothing to change: the revision the written items stand at.
                let revision = spec
                    .puts
                    .iter()
                    .filter_map(|(k, _)| snap.items.get(k).map(|s| s.revision))
                    .max()
                    .unwrap_or(snap.revision);
                return Ok(WriteOutcome {
                    revision,
                    generation: snap.expected.generation,
                    ..WriteOutcome::default()
                });
            }
            let (snap, plan, after) = off_thread(move || {
                let after = check_plan(&snap, &plan);
                (snap, plan, after)
            })
            .await?;
            let after = after?;
            if let Some(outcome) = self.commit(caller, &spec, &snap, &plan).await? {
                self.events.set_webhook(after.basic.webhook.clone());
                return Ok(outcome);
            }
        }
        Err(ApiError::Conflict {
            message: "the config kept changing during this write; try again".into(),
            details: Vec::new(),
        })
    }

    /// Commits the steps; `None` when the first step's guard failed (nothing written). A
    /// change over several etcd transactions is staged (see [`crate::store::staging`]): if it
    /// fails midway, nodes have applied none of it and it is rolled back in the background.
    async fn commit(
        &self,
        caller: &Caller,
        spec: &Spec,
        snap: &Snapshot,
        plan: &Plan,
    ) -> Result<Option<WriteOutcome>, ApiError> {
        let (mut expected, mut since) = (snap.expected, snap.revision);
        let mut outcome = WriteOutcome {
            added: plan.added.clone(),
            modified: plan.modified.clone(),
            removed: plan.removed.clone(),
            ..WriteOutcome::default()
        };
        let total = plan.steps.len();
        let marker = (total > 1 && self.store.stages())
            .then(|| StoredMarker::new(snap.revision, snap.expected, &caller.actor));
        let mut applied: Vec<&Recorded> = Vec::new();
        let mut failure = None;
        for (i, (step, recorded)) in plan.steps.iter().zip(&plan.recorded).enumerate() {
            let record = Record::new(
                expected.generation + 1,
                &caller.actor,
                spec.action,
                recorded.clone(),
            );
            let undo: Vec<Recorded> = recorded
                .iter()
                .map(|r| Recorded {
                    item: r.item.clone(),
                    before: r.before.clone(),
                    after: None,
                })
                .collect();
            let staging = marker.as_ref().map(|marker| Staging {
                marker,
                begin: i == 0,
                end: i + 1 == total,
                undo: (i + 1 < total).then_some((i, undo.as_slice())),
            });
            let write = Write {
                changes: step,
                expected,
                since,
                if_match: if i == 0 { &spec.if_match } else { &[] },
                record: Some(&record),
                staging,
            };
            match self.store.commit(&write).await {
                Ok(Some(c)) => {
                    outcome.revision = c.revision;
                    outcome.generation = c.generation;
                    outcome.history_ids.push(record.id);
                    outcome.steps += 1;
                    applied.extend(recorded);
                    (expected, since) = self.store.after(&c);
                }
                Ok(None) if i == 0 => return Ok(None),
                Ok(None) => {
                    failure = Some(ApiError::Conflict {
                        message: format!(
                            "the change needed {total} transactions; {i} were applied, then the config changed meanwhile"
                        ),
                        details: vec![Detail::message(format!("applied: {:?}", outcome.history_ids))],
                    });
                    break;
                }
                Err(e) if i == 0 && marker.is_none() => return Err(e.into()),
                Err(e) => {
                    failure = Some(ApiError::Unavailable(format!(
                        "the change needed {total} transactions; {i} were applied, then: {e}"
                    )));
                    break;
                }
            }
        }
        match (failure, &marker) {
            (None, _) => {
                self.emit_diff(caller, spec.action, &outcome, &applied);
                Ok(Some(outcome))
            }
            (Some(e), Some(marker)) => {
                // Staged: no node applied any of it. Undone as soon as etcd answers.
                tracing::warn!(
                    id = marker.marker.id,
                    "a staged change failed after {} of {total} transactions: {e}; rolling it back",
                    outcome.steps
                );
                self.recovery.notify_one();
                Err(staged_failure(e, total))
            }
            (Some(e), None) => {
                self.emit_diff(caller, spec.action, &outcome, &applied);
                Err(e)
            }
        }
    }

    fn emit_diff(
        &self,
        caller: &Caller,
        action: &str,
        outcome: &WriteOutcome,
        applied: &[&Recorded],
    ) {
        let changes: Vec<ItemChange> = applied
            .iter()
            .filter_map(|c| {
                let kind = ItemKey::from_label(&c.item).map_or("", |k| k.kind.as_str());
                item_change(kind, &c.item, c.before.as_ref(), c.after.as_ref())
            })
            .collect();
        if changes.is_empty() {
            return;
        }
        let message = format!(
            "{action} by {} (generation {}, revision {}):\n{}",
            caller.actor,
            outcome.generation,
            outcome.revision,
            render(&changes)
        );
        let details = json!({
            "actor": caller.actor,
            "action": action,
            "revision": outcome.revision,
            "generation": outcome.generation,
            "history_ids": outcome.history_ids,
            "changes": changes,
        });
        self.events.emit("diff_config", message, "", details);
    }
}

/// The error of a staged change that failed: nothing of it applies, it is being undone.
fn staged_failure(e: ApiError, total: usize) -> ApiError {
    let message = format!(
        "{e}; the change was staged over {total} transactions, so no node applied any of it, and it is being rolled back (retried until etcd answers)"
    );
    match e {
        ApiError::Conflict { details, .. } => ApiError::Conflict { message, details },
        _ => ApiError::Unavailable(message),
    }
}
