//! A reload: a new load of the sources directory becomes the next [`Generation`], all
//! at once. Each source is compared with the running one by its fingerprint: unchanged
//! ones are kept as they are (caches, pools, plugin instances, connections), changed and
//! new ones are built and connected before the switch, removed ones stop taking requests
//! at the switch and are cleaned up when their last request has finished. A file that
//! became invalid keeps its last good version serving, with the rejection shown beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use serde::Serialize;
use utoipa::ToSchema;

use super::admin::GenerationInfo;
use super::{Generation, Hub, SourceEntry};
use crate::config::ConfigError;
use crate::load::{self, DirectoryError, EnvFileError, LoadedSources, Running};
use crate::telemetry::{self, ReloadLabels};

/// What a reload did, as `POST /api/admin/reload` answers and the log line says.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReloadReport {
    pub generation: GenerationInfo,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub kept: Vec<String>,
    /// Invalid files, each with all of its errors.
    pub rejected: Vec<Rejected>,
}

/// A file the reload could not take.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    #[schema(value_type = String)]
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
    /// The source whose last good version still serves from this file.
    pub kept_serving: Option<String>,
}

impl ReloadReport {
    /// One log line: counts and the ids behind them.
    pub fn summary(&self) -> String {
        let list = |ids: &[String]| {
            if ids.is_empty() {
                String::new()
            } else {
                format!(" ({})", ids.join(", "))
            }
        };
        format!(
            "generation {}: {} added{}, {} changed{}, {} removed{}, {} kept, {} rejected{}",
            self.generation.number,
            self.added.len(),
            list(&self.added),
            self.changed.len(),
            list(&self.changed),
            self.removed.len(),
            list(&self.removed),
            self.kept.len(),
            self.rejected.len(),
            list(
                &self
                    .rejected
                    .iter()
                    .map(|r| r.file.display().to_string())
                    .collect::<Vec<_>>()
            ),
        )
    }
}

/// The next generation worked out from the running one and a new load.
struct Plan {
    entries: Vec<Arc<SourceEntry>>,
    /// Entries built by this reload, to connect before the switch.
    fresh: Vec<Arc<SourceEntry>>,
    /// Entries of the running generation that the next one drops or replaces.
    retired: Vec<Arc<SourceEntry>>,
    last_good: BTreeMap<PathBuf, String>,
    report: ReloadReport,
}

/// Why a reload did not happen (invalid files do not fail it: they are in the report).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this hub was not started from a sources directory, so there is nothing to reload")]
    NoDirectory,
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    EnvFile(#[from] EnvFileError),
}

impl Hub {
    /// Loads the sources directory again (environment values are read anew) and applies
    /// it as the next generation; see the module documentation.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let dir = self
            .settings
            .sources_dir
            .clone()
            .ok_or(ReloadError::NoDirectory)?;
        let _one_at_a_time = self.reloading.lock().await;
        let result = self.reload_from(&dir).await;
        if let Some(t) = telemetry::get() {
            let outcome = if result.is_ok() { "ok" } else { "failed" };
            t.reloads.get_or_create(&ReloadLabels { outcome }).inc();
        }
        result
    }

    async fn reload_from(&self, dir: &Path) -> Result<ReloadReport, ReloadError> {
        let current = self.current();
        let running: Running = current
            .entries
            .iter()
            .map(|e| (e.spec.id.clone(), e.spec.file.clone()))
            .collect();
        let env = load::environment(self.settings.env_file.as_deref())?;
        let mut loaded = load::load_dir_keeping(dir, &env, &running)?;
        let derived = std::mem::take(&mut loaded.derived);
        let broken = loaded.broken.clone();
        let mut policies = loaded.policies.clone();
        let plan = self.plan(&current, loaded);
        join_all(
            plan.fresh
                .iter()
                .filter(|e| e.spec.enabled)
                .map(|e| e.initialize()),
        )
        .await;
        for entry in plan
            .entries
            .iter()
            .filter(|e| plan.last_good.values().any(|id| *id == e.spec.id))
        {
            for (dataset, field, policy) in entry.spec.merge_policies() {
                policies
                    .entry((dataset, field.to_owned()))
                    .or_insert(policy);
            }
        }
        let next = Generation {
            number: current.number + 1,
            loaded_at: Utc::now(),
            entries: plan.entries,
            broken,
            last_good: plan.last_good,
            policies,
            derived,
        };
        let mut report = plan.report;
        report.generation = GenerationInfo::of(&next);
        let changed = !(report.added.is_empty()
            && report.changed.is_empty()
            && report.removed.is_empty()
            && next.derived == current.derived);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        if changed {
            // Merged answers hold the old versions' data.
            self.answers.clear();
        }
        for entry in plan.retired {
            tokio::spawn(retire(entry, self.settings.request_deadline));
        }
        tracing::info!("reloaded sources: {}", report.summary());
        Ok(report)
    }

    /// Sorts every source of `loaded` against `current` into kept, changed and added, and
    /// keeps the last good version of each running source whose file is now broken.
    fn plan(&self, current: &Generation, loaded: LoadedSources) -> Plan {
        let mut report = empty_report(current);
        let mut entries = Vec::new();
        let mut fresh = Vec::new();
        let mut retained = BTreeSet::new();
        for spec in loaded.sources {
            match current.entry(&spec.id) {
                Some(old) if old.spec.fingerprint == spec.fingerprint => {
                    report.kept.push(spec.id.clone());
                    retained.insert(spec.id.clone());
                    entries.push(old.clone());
                    continue;
                }
                Some(_) => report.changed.push(spec.id.clone()),
                None => report.added.push(spec.id.clone()),
            }
            let entry = Arc::new(SourceEntry::new(spec, &self.settings));
            fresh.push(entry.clone());
            entries.push(entry);
        }
        let mut last_good = BTreeMap::new();
        for (file, errors) in &loaded.broken {
            let kept = current.entries.iter().find(|old| {
                old.spec.file == *file && !entries.iter().any(|e| e.spec.id == old.spec.id)
            });
            if let Some(old) = kept {
                retained.insert(old.spec.id.clone());
                last_good.insert(file.clone(), old.spec.id.clone());
                entries.push(old.clone());
            }
            report.rejected.push(Rejected {
                file: file.clone(),
                errors: errors.clone(),
                kept_serving: kept.map(|old| old.spec.id.clone()),
            });
        }
        entries.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
        let retired: Vec<Arc<SourceEntry>> = current
            .entries
            .iter()
            .filter(|old| !retained.contains(&old.spec.id))
            .cloned()
            .collect();
        report.removed = retired
            .iter()
            .map(|old| old.spec.id.clone())
            .filter(|id| !report.changed.contains(id))
            .collect();
        Plan {
            entries,
            fresh,
            retired,
            last_good,
            report,
        }
    }
}

fn empty_report(current: &Generation) -> ReloadReport {
    ReloadReport {
        generation: GenerationInfo::of(current),
        added: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
        kept: Vec::new(),
        rejected: Vec::new(),
    }
}

/// Releases a retired source once no request holds it any more (or after `patience`, in
/// case a stuck fetch never lets go).
async fn retire(entry: Arc<SourceEntry>, patience: Duration) {
    let started = tokio::time::Instant::now();
    while Arc::strong_count(&entry) > 1 && started.elapsed() < patience * 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    entry.source.cleanup().await;
    tracing::debug!(source = %entry.spec.id, "retired version cleaned up");
}
