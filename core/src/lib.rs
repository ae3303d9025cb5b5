//! tokenledger-core: the domain of the ledger, shared by the server and the CLI.
//! Pure code: no network, no database, no clock (callers pass times in).

pub mod access;
pub mod blocklist;
pub mod canary;
pub mod chain;
pub mod checkpoint;
pub mod entry;
pub mod erasure;
pub mod export;
pub mod ids;
pub mod merkle;
pub mod note;
pub mod pseudonym;
pub mod receipt;
pub mod redaction;
pub mod retention;
pub mod strict_json;
pub mod suspension_request;
pub mod training_sample;
pub mod vo;
pub mod wire;
