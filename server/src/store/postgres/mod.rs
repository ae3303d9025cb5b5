//! The PostgreSQL engine: every SQL statement of the server for a shared database, its
//! connections (several hosts, the one that accepts writes), migrations (`schema/postgres/`),
//! and the writer lease that lets any number of servers share one log with one writer.

mod connection;
mod decisions;
mod encoder;
mod ids;
mod lease;
mod log;
mod state_changes;
#[cfg(test)]
mod tests;
mod writer;

pub use connection::{DatabaseUrl, MIGRATOR, accepts_writes, connect_writable};
pub use lease::{LEASE_KEY, PostgresLease};
pub use writer::PostgresWriter;
