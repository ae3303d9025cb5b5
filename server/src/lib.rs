//! tokenledger-server: the ledger's HTTP API, storage and sequencer.
//! `main.rs` is a thin command line over [`app::Service`], [`credentials`] and the storage
//! engine's tools ([`store::sqlite`]); the bench reaches storage through [`store`], and runs
//! retention ([`service::retention`]) on a ledger it opens in process ([`writer_role`]).

mod api;
pub mod app;
mod blocklists;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod data_dir;
pub mod issuers;
mod keys;
pub mod logging;
pub mod metrics;
mod overtaken_reports;
mod preconditions;
pub mod sequencer;
pub mod service;
pub mod storage_errors;
pub mod store;
pub mod systemd;
pub mod tls;
pub mod writer_role;
