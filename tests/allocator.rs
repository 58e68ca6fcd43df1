//! The binary's memory allocator: jemalloc with the settings `src/main.rs` gives it, which
//! `_RJEM_MALLOC_CONF` in the environment can override. Read back from jemalloc's own
//! statistics, printed at exit when the environment asks for them.
#![cfg(target_os = "linux")]

use std::process::Command;

/// jemalloc's `opt.*` lines printed when `siem-forwarder --version` exits with `malloc_conf`
/// in the environment.
fn options_with(malloc_conf: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_siem-forwarder"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", malloc_conf)
        .output()
        .expect("the binary runs");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("opt."))
        .map(str::to_owned)
        .collect()
}

fn option<'a>(options: &'a [String], name: &str) -> &'a str {
    let prefix = format!("opt.{name}: ");
    options
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("jemalloc printed no {prefix:?} in {options:#?}"))
}

#[test]
fn jemalloc_serves_the_process_with_one_arena_and_a_short_decay() {
    let options = options_with("stats_print:true");
    assert_eq!(option(&options, "narenas"), "1");
    assert!(option(&options, "background_thread").starts_with("true"));
    assert!(option(&options, "dirty_decay_ms").starts_with("100 "));
    assert!(option(&options, "muzzy_decay_ms").starts_with("0 "));
}

#[test]
fn the_environment_overrides_a_setting() {
    let options = options_with("stats_print:true,dirty_decay_ms:1000");
    assert!(option(&options, "dirty_decay_ms").starts_with("1000 "));
    assert_eq!(option(&options, "narenas"), "1", "the others stay");
}
