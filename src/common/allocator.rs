//! glibc `malloc` settings for a process that moves batches of several MiB through many
//! threads.
//!
//! glibc's defaults suit the opposite: it serves an allocation of 128 KiB or more (a pulled
//! batch, its decompressed buffer, an HTTP body) with a fresh `mmap` and returns it with
//! `munmap` when freed, so every batch pays page faults and the kernel zeroing each page
//! again; and it gives every thread its own arena, which grows the resident set. Measured with
//! `scripts/bench.sh` (1 GiB, 16 shards): the null sink went from 2.1 to 1.3 CPU seconds per
//! GiB and RFC 5424 over TCP from 3.5 to 2.9, at the same peak RSS.
//!
//! One arena fragments when buffers of several MiB come and go among smaller allocations;
//! the largest, the decompressed bodies of backlog pulls, are therefore recycled
//! ([`crate::source::buffers`]) rather than returned to `malloc`.
//!
//! A setting the environment already gives (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_`, read by glibc itself) is left as the user chose it.

/// One arena shared by all threads: resident memory stays near the live data (Splunk HEC
/// with 16 shards peaked at 78 MiB with one, 104–117 MiB with two, at the same CPU).
const ARENA_MAX: i32 = 1;
/// Allocations below this come from the arenas and are reused (glibc's largest allowed value).
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory kept at the top of an arena before it is returned to the system.
const TRIM_THRESHOLD: i32 = 16 << 20;

/// Applies the settings. It does nothing where the C library is not glibc.
///
/// # Safety
///
/// Call it first thing in `main`, while the process has a single thread: glibc marks
/// `mallopt` MT-Unsafe, and nothing here can check that no other thread exists.
pub unsafe fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (variable, option, value) in [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, ARENA_MAX),
        (
            "MALLOC_MMAP_THRESHOLD_",
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
        ),
        (
            "MALLOC_TRIM_THRESHOLD_",
            libc::M_TRIM_THRESHOLD,
            TRIM_THRESHOLD,
        ),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: `mallopt` only changes allocator parameters; the caller guarantees no
            // other thread exists, and the options and values are ones glibc documents.
            let accepted = unsafe { libc::mallopt(option, value) };
            debug_assert_eq!(accepted, 1, "mallopt({variable}) refused");
        }
    }
}
