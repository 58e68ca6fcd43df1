//! Producers of log groups to write into a logstore: what `put` sends (generated audit logs
//! with `--generate`, JSON lines with `--file`), and the audit logs the quickstart, the
//! benchmark, the examples and the tests write.

pub mod generator;
pub mod json_lines;
