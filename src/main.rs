//! The `siem-forwarder` binary: parses the command line and hands over to the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    siem_forwarder::cli::main().await
}
