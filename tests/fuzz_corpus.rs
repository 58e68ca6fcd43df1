//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same checks the
//! fuzz targets run, so stable `cargo test` catches a regression on any input the fuzzer
//! kept, including the ones that once crashed. Run the fuzzer itself with `cargo +nightly
//! fuzz run <target>` (see `fuzz/README.md`).

#[path = "../fuzz/checks/mod.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The corpus files of `target`, sorted; fails when there are none.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no input", dir.display());
    files
}

/// Runs every corpus file of `target` through `check`, then fails naming each file whose
/// check panicked.
fn replay(target: &str, check: impl Fn(&[u8])) {
    let failed: Vec<String> = corpus(target)
        .into_iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("read a corpus file");
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} input(s) failed (see the panics above): {failed:?}",
        failed.len()
    );
}

#[test]
fn pull_logs_body_corpus_passes() {
    replay("pull_logs_body", checks::pull_logs_body::check);
}

#[test]
fn local_server_request_corpus_passes() {
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let server = checks::local_server_request::Server::start(data_dir.path());
    replay("local_server_request", |data| server.check(data));
}

#[test]
fn config_load_corpus_passes() {
    replay("config_load", checks::config_load::check);
}

#[test]
fn hec_response_corpus_passes() {
    replay("hec_response", checks::hec_response::check);
}

#[test]
fn encoders_corpus_passes() {
    replay("encoders", checks::encoders::check);
}
