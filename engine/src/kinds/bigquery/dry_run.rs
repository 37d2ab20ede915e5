//! `metrics-hub query --dry-run` for bigquery sources: each dataset's query is sent as a
//! dry run, so BigQuery validates the SQL and reports the bytes it would scan (and bill)
//! without running anything, and the report flags queries over `maximum_bytes_billed`.

use futures::future::try_join_all;
use tokio::time::Instant;

use super::source::BigquerySource;
use crate::kinds::{KindSpec, SourceError, SourceSpec};
use crate::model::{Dataset, QueryParams};

/// What one dataset's query would scan, from a BigQuery dry run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScanEstimate {
    pub dataset: Dataset,
    /// `totalBytesProcessed` of the dry run: what the query would read, and be billed for.
    pub bytes: u64,
}

/// What `metrics-hub query --dry-run` prints: the bytes of each query, and the guard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DryRun {
    pub estimates: Vec<ScanEstimate>,
    pub maximum_bytes_billed: u64,
}

impl std::fmt::Display for DryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for estimate in &self.estimates {
            write!(
                f,
                "{:<9} {:>16} bytes  {:>10}",
                estimate.dataset.as_str(),
                estimate.bytes,
                human_bytes(estimate.bytes)
            )?;
            if estimate.bytes > self.maximum_bytes_billed {
                write!(f, "  over maximum_bytes_billed: BigQuery would refuse it")?;
            }
            writeln!(f)?;
        }
        let total: u64 = self.estimates.iter().map(|e| e.bytes).sum();
        writeln!(
            f,
            "{:<9} {:>16} bytes  {:>10}",
            "total",
            total,
            human_bytes(total)
        )?;
        writeln!(
            f,
            "maximum_bytes_billed: {} bytes ({}) per query",
            self.maximum_bytes_billed,
            human_bytes(self.maximum_bytes_billed)
        )
    }
}

/// Bytes in binary units with one decimal, e.g. `1.5 GiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Why `metrics-hub query --dry-run` could not estimate.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("--dry-run applies to bigquery sources only; `{id}` is a {kind} source")]
    NotBigquery { id: String, kind: &'static str },
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Dry-runs every dataset query of a `bigquery` source for `params`: BigQuery validates
/// the SQL and reports the bytes it would scan, without running or billing anything.
pub async fn dry_run(source: &SourceSpec, params: &QueryParams) -> Result<DryRun, DryRunError> {
    let KindSpec::Bigquery(spec) = &source.kind else {
        return Err(DryRunError::NotBigquery {
            id: source.id.clone(),
            kind: source.kind.name(),
        });
    };
    let bigquery = BigquerySource::new(source, spec.clone());
    Ok(DryRun {
        estimates: bigquery.estimate(params).await?,
        maximum_bytes_billed: spec.maximum_bytes_billed,
    })
}

impl BigquerySource {
    /// Dry-runs every dataset's query: the bytes each would scan.
    pub async fn estimate(&self, params: &QueryParams) -> Result<Vec<ScanEstimate>, SourceError> {
        let deadline = Instant::now() + self.timeout;
        let client = self.client().await?;
        try_join_all(self.spec.datasets.iter().map(|&dataset| {
            let client = &client;
            async move {
                let query = self.render(dataset, params)?;
                let request = self.request(Some(dataset), query, deadline, true);
                let bytes = self.dry_run_bytes(client, request, deadline).await?;
                Ok::<_, SourceError>(ScanEstimate { dataset, bytes })
            }
        }))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_runs_print_bytes_per_dataset_and_flag_those_over_the_guard() {
        let report = DryRun {
            estimates: vec![
                ScanEstimate {
                    dataset: Dataset::Summary,
                    bytes: 512,
                },
                ScanEstimate {
                    dataset: Dataset::Daily,
                    bytes: 3 * 1024 * 1024 * 1024 / 2,
                },
            ],
            maximum_bytes_billed: 1_000_000_000,
        };
        assert_eq!(
            report.to_string(),
            "summary                512 bytes       512 B\n\
             daily           1610612736 bytes     1.5 GiB  over maximum_bytes_billed: BigQuery would refuse it\n\
             total           1610613248 bytes     1.5 GiB\n\
             maximum_bytes_billed: 1000000000 bytes (953.7 MiB) per query\n"
        );
    }
}
