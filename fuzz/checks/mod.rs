//! The properties each fuzz target checks, shared by the targets in `fuzz/fuzz_targets/` and
//! by the corpus replay in `tests/fuzz_corpus.rs` (both include this directory with
//! `#[path]`). Each check takes one input and panics when a property fails.

pub mod config_load;
pub mod encoders;
pub mod hec_response;
pub mod input;
pub mod local_server_request;
pub mod pull_logs_body;
