//! Rolling back a change staged over several etcd transactions that failed midway, or that
//! a control plane which stopped left behind: the values stashed by the steps written are
//! put back (as guarded, recorded transactions, like any write), and the marker is deleted
//! last, so nodes — which apply nothing while it exists — go on with the config they had.

use super::plan::{plan, Spec};
use super::Service;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::history::Record;
use crate::store::staging::{Staged, Staging};
use crate::store::Write;
use louailink_shared::storage::ItemKey;
use std::sync::Arc;
use std::time::Duration;

/// Fresh snapshots tried when someone else writes during a rollback.
const ATTEMPTS: usize = 5;
/// Wait between attempts while etcd does not answer: doubling up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// Longest wait between attempts.
const MAX_DELAY: Duration = Duration::from_secs(5);

impl Service {
    /// Rolls back whatever staged change is found now, then each one a failed write reports;
    /// retries until etcd answers. Runs for the server's lifetime.
    pub async fn run_recovery(self: Arc<Self>) {
        loop {
            let mut delay = FIRST_DELAY;
            loop {
                match self.roll_back_staged().await {
                    Ok(Some(id)) => {
                        tracing::info!(id, "rolled back a staged change that did not finish");
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("cannot roll back a staged change yet: {e}");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_DELAY);
                    }
                }
            }
            self.recovery.notified().await;
        }
    }

    /// Rolls back the staged change whose marker exists, if any; returns its id.
    pub async fn roll_back_staged(&self) -> Result<Option<String>, ApiError> {
        let _one_at_a_time = self.write_lock.lock().await;
        for _ in 0..ATTEMPTS {
            let Some(staged) = self.store.staged().await? else {
                return Ok(None);
            };
            if self.restore(&staged).await? {
                return Ok(Some(staged.marker.marker.id));
            }
        }
        Err(ApiError::Conflict {
            message: "the config kept changing during the rollback of a staged change".into(),
            details: Vec::new(),
        })
    }

    /// One attempt: `false` when a guard failed (someone wrote meanwhile).
    async fn restore(&self, staged: &Staged) -> Result<bool, ApiError> {
        let snap = self.store.snapshot().await?;
        let mut spec = Spec {
            action: "rollback",
            restore: true,
            ..Spec::default()
        };
        for undo in &staged.undo {
            let key = ItemKey::from_label(&undo.item).ok_or_else(|| {
                ApiError::Internal(format!("the undo stash names {:?}", undo.item))
            })?;
            match &undo.before {
                Some(value) => spec.puts.push((key, value.clone())),
                None => spec.deletes.push(key),
            }
        }
        let mut plan = plan(&snap, &spec)?;
        if plan.steps.is_empty() {
            // Nothing was written (or it is all undone): only the marker goes.
            plan.steps.push(Vec::new());
            plan.recorded.push(Vec::new());
        }
        let actor = format!("rollback of {}", staged.marker.marker.actor);
        let caller = Caller {
            role: crate::auth::Role::Admin,
            actor,
        };
        let (mut expected, mut since) = (snap.expected, snap.revision);
        let total = plan.steps.len();
        for (i, (step, recorded)) in plan.steps.iter().zip(&plan.recorded).enumerate() {
            let record = Record::new(
                expected.generation + 1,
                &caller.actor,
                "rollback",
                recorded.clone(),
            );
            let write = Write {
                changes: step,
                expected,
                since,
                if_match: &[],
                record: Some(&record),
                staging: Some(Staging {
                    marker: &staged.marker,
                    begin: false,
                    end: i + 1 == total,
                    undo: None,
                }),
            };
            match self.store.commit(&write).await? {
                Some(c) => (expected, since) = self.store.after(&c),
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}
