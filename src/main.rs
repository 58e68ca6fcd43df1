//! The `siem-forwarder` binary: parses the command line and hands over to the library.

/// The process's memory allocator: jemalloc, configured by [`MALLOC_CONF`].
///
/// glibc's `malloc` with one arena fragments when buffers of hundreds of KiB to several MiB
/// (pulled answers, span tables, request payloads) come and go for minutes: freed holes are
/// split by smaller requests, the next large buffer extends the heap, and memory in the middle
/// of the heap is never returned. After a one-minute SIEM stall the catch-up's peak resident
/// set grew with the backlog (16 shards, 0.1 / 1 / 4 GiB: 39 / 56 / 78 MiB) over a live heap
/// of 29–32 MiB. jemalloc keeps allocations of a size class together and returns unused pages
/// within [`MALLOC_CONF`]'s decay time, so the peak no longer follows the backlog's length
/// (32 / 50 / 53 MiB) at the same CPU per GiB within a few percent (`scripts/bench/RESULTS.md`,
/// "jemalloc").
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its first allocation; `_RJEM_MALLOC_CONF` in the environment
/// (jemalloc's `MALLOC_CONF` under this build's symbol prefix) overrides any of them, e.g.
/// `_RJEM_MALLOC_CONF=dirty_decay_ms:1000`.
///
/// - `narenas:1`: one arena for the few busy threads, as glibc was given before (jemalloc's
///   default of four per CPU, with its default 10 s decay: 45 / 59 MiB for the 0.1 / 1 GiB rows,
///   against 33 / 55–62 with one arena and a 1 s decay).
/// - `background_thread:true`: a jemalloc thread returns free pages, not the threads that move
///   logs.
/// - `dirty_decay_ms:100`, `muzzy_decay_ms:0`: free pages go back to the system within about
///   100 ms. At once (0) was flat but cost 14–34% more CPU in page faults; 1 s let the end of a
///   catch-up raise the peak by 10 MiB.
#[cfg(target_os = "linux")]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: &[u8; 69] =
    b"narenas:1,background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(siem_forwarder::cli::main()),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
