//! tokenledger-server: the ledger's HTTP API, storage and sequencer.
//! `main.rs` is a thin command line over [`app::Service`] and [`credentials`].

pub mod api;
pub mod app;
pub mod backup;
pub mod blocklists;
pub mod config;
pub mod credentials;
pub mod data_dir;
pub mod db;
pub mod fsck;
pub mod identity_scan;
pub mod issuers;
pub mod keys;
pub mod leaf_codec;
pub mod log_store;
pub mod logging;
pub mod lookup;
pub mod lookup_ids;
pub mod metrics;
pub mod page_cache;
pub mod preconditions;
pub mod sequencer;
pub mod sites;
pub mod sql_script;
pub mod storage_errors;
pub mod suspensions;
pub mod systemd;
pub mod tls;
