//! Giving back the space of what redaction deleted: [`Reclaimer`], which both engines
//! implement outside the writer's path, step by bounded step.

use async_trait::async_trait;

use super::StoreError;

/// What is left after one step of [`Reclaimer::reclaim_step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reclaimed {
    /// More space can be given back: take another step.
    More,
    /// Nothing is left to give back (or the database cannot give space back: it is reused).
    Done,
}

/// Returns the space of rows a redaction deleted, so that the database's disk follows what it
/// keeps: on SQLite, free pages to the file system (a bounded number per step, each step a
/// short write transaction); on PostgreSQL, dead rows of the tables redaction deletes from to
/// their free space (one `VACUUM (ANALYZE)`, on a connection of its own).
#[async_trait]
pub trait Reclaimer: Send + Sync {
    /// One bounded step.
    async fn reclaim_step(&self) -> Result<Reclaimed, StoreError>;
}
