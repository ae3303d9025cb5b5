//! The PostgreSQL engine: every SQL statement of the server for a shared database, its
//! connections (several hosts, the one that accepts writes), migrations (`schema/postgres/`),
//! and the writer lease that lets any number of servers share one log with one writer.

mod connection;

pub use connection::{DatabaseUrl, MIGRATOR, accepts_writes, connect_writable};
