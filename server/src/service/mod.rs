//! The service layer: what the API does, without HTTP. Handlers extract, authorize, call one
//! function here and render its answer; services read through the store's traits and append
//! through the sequencer.

pub mod enforcement;
pub mod entries;
pub mod erasure;
mod ledger;
pub mod persons;
pub mod pseudonyms;
pub mod redacted_reports;
pub mod resolution;
pub mod retention;
pub mod sites;
pub mod suspension_requests;
pub mod suspensions;

pub use ledger::Ledger;

use crate::sequencer::AppendError;
use crate::store::StoreError;

/// Why a service did not do what it was asked, in words for the caller.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Logged once, but redacted after retention (or erased) since.
    #[error("{0}")]
    Redacted(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sequencer refused a state change, or did not write its batch.
    #[error(transparent)]
    Append(#[from] AppendError),
}
