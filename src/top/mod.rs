//! `siem-forwarder top`: a live view over running forwarders (each `--url`'s `/status` and
//! `/metrics`) and the consumer group as the log service sees it (`--config`): per shard the
//! owner, lag and delivery rate with a short history; per sink the rate, errors, retries and
//! health, and each process's in-flight bytes.
//!
//! - [`sample`]: one round of reads.
//! - [`model`]: turns successive samples into rates, histories and sorted lines (pure).
//! - [`plain`]: text frames, for a stdout that is not a terminal.
//! - [`tui`]: the interactive terminal view (ratatui).

pub mod model;
pub mod plain;
pub mod sample;
pub mod tui;

pub use model::{SortKey, Top, View};
pub use sample::{Sample, Sources};
