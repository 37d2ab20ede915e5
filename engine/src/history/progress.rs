//! Where a source's backfill is, as `/api/sources`, the admin page and the backfill
//! command's bar show it.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::store::StoreSize;

/// Where a source's backfill is (`/api/sources`, the admin page, the command's bar).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Settled days the backfill keeps stored.
    pub target_days: u32,
    /// Of those, how many are stored.
    pub stored_days: u32,
    pub state: State,
    /// Days whose answers had warnings (e.g. a page limit hit): not stored, asked fresh.
    pub unstorable_days: u32,
    /// The last failure, as clients may see it.
    pub last_error: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    /// What the store holds for the source, as of the last pass.
    pub size: Option<StoreSize>,
    #[serde(skip)]
    pub(super) unstorable: BTreeSet<NaiveDate>,
}

/// What the backfill is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not started yet (the source has not been initialized).
    Waiting,
    /// Fetching missing days.
    Running,
    /// Every settled day of the target is stored (or could not be).
    Done,
    /// The last fetch failed; it tries again after a pause.
    Failing,
}

impl Progress {
    pub fn new(target_days: u32) -> Progress {
        Progress {
            target_days,
            stored_days: 0,
            state: State::Waiting,
            unstorable_days: 0,
            last_error: None,
            updated_at: None,
            size: None,
            unstorable: BTreeSet::new(),
        }
    }
}
