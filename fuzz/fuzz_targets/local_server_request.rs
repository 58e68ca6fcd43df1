#![no_main]

use std::sync::OnceLock;

// Each target uses one of the shared checks.
#[allow(dead_code)]
#[path = "../checks/mod.rs"]
mod checks;

use checks::local_server_request::Server;

/// One server for the whole run. Its data directory is left behind when the fuzzer exits
/// (statics are not dropped): `$TMPDIR/siem-forwarder-fuzz-*`.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let data_dir = tempfile::Builder::new()
            .prefix("siem-forwarder-fuzz-")
            .tempdir()
            .expect("temporary directory")
            .keep();
        Server::start(&data_dir)
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| server().check(data));
