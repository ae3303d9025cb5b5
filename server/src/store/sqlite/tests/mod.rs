//! Tests of the SQLite engine that reach into its tables: migrations of old layouts, the
//! writer's id cache and duplicate lookup, stored hashes, decisions, dictionaries.

mod blocklist_fetches;
mod compact_lookups;
mod credentials;
mod decisions;
mod dictionaries;
mod secrets;
mod upper_hashes;
