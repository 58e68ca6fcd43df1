//! The configuration loader: `${VAR}` expansion, TOML, the key-locating error messages and
//! every validation that needs no I/O.
//!
//! Input: the configuration text (invalid UTF-8 replaced). Variables come from a fixed table
//! instead of the process environment, including values with a newline and a quote.
//!
//! Properties: a configuration or a clean error, never a panic; an error has a message, and
//! its line, when it has one, lies in the text.

use siem_forwarder::config::ForwarderConfig;

/// The environment the text is expanded with.
fn lookup(name: &str) -> Option<String> {
    let value = match name {
        "SLS_AK_ID" => "LTAI5tExampleKeyId",
        "SLS_AK_KEY" => "example-secret",
        "SPLUNK_HEC_TOKEN" => "00000000-0000-0000-0000-000000000000",
        "EMPTY" => "",
        "NUMBER" => "42",
        "MULTILINE" => "first\nsecond",
        "QUOTE" => "say \"hi\"",
        _ => return None,
    };
    Some(value.to_owned())
}

/// Runs one input; panics when a property fails.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(problem) = ForwarderConfig::parse(&text, lookup) {
        assert!(!problem.message.is_empty(), "an error without a message");
        if let Some(line) = problem.line {
            // Text ending without a newline still has its last line; TOML may point just past
            // the end for unterminated constructs.
            let lines = text.split('\n').count();
            assert!(
                (1..=lines).contains(&line),
                "error line {line} outside a text of {lines} lines: {}",
                problem.message
            );
        }
        std::hint::black_box(problem.to_string());
    }
}
