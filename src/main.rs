//! The `siem-forwarder` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    // SAFETY: nothing has started a thread yet; the runtime below starts the first ones.
    unsafe { siem_forwarder::common::allocator::tune() };
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(siem_forwarder::cli::main()),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
