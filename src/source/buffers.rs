//! Reused buffers for the decompressed bodies of large pulls.
//!
//! A pull of a backlog decompresses into one buffer of several MiB that lives until every
//! sink is done with the batch. Allocated and freed for every pull, these buffers fragmented
//! glibc's `malloc` arena (the hole a freed buffer left was partly taken by the smaller
//! allocations made meanwhile, the next buffer no longer fitted and extended the heap), and
//! with jemalloc (the binary's allocator, `src/main.rs`) each freed buffer's pages would be
//! returned and faulted in again. Measured with `scripts/bench.sh --scale` (a backlog read at
//! full speed after a stalled SIEM, glibc, one arena, live heap flat at about 70 MiB): peak RSS
//! 98 MiB after 0.1 GiB, 133 MiB after 1 GiB, 203 MiB after 4 GiB before this pool.
//!
//! Buffers of at least [`MIN_POOLED`] bytes therefore go back to a pool when the last holder
//! of the batch drops it, and the next large pull of about the same size decompresses into
//! one of them. The pool keeps few idle buffers ([`MAX_IDLE_BYTES`]): during a catch-up a
//! buffer is taken again right after it was given back. A pull that no idle buffer fits (the
//! smaller last pull of a shard, pulls growing) first frees the idle ones, so that the new
//! allocation can take their place instead of adding to the heap, and pulls below
//! [`MIN_POOLED`] leave the pool alone: memory kept idle never adds to what live batches hold.

use std::sync::Mutex;

use bytes::Bytes;

use super::compression::{Compression, CompressionError};

/// Bodies below this size are decompressed into a fresh allocation.
pub const MIN_POOLED: usize = 1 << 20;

/// Capacities are multiples of this, so that pulls of nearly the same size share buffers.
const GRANULE: usize = 256 << 10;

/// Idle buffers kept at most, in bytes of capacity: two pulls of a backlog (a pull of 1,000
/// log groups of typical audit logs decompresses to about 8 MiB).
pub const MAX_IDLE_BYTES: usize = 16 << 20;

/// A pool of large decompression buffers.
#[derive(Debug)]
pub struct PullBuffers {
    idle: Mutex<Vec<Vec<u8>>>,
}

/// The process's pool, used by [`crate::source::Client::pull_logs`].
pub static PULL_BUFFERS: PullBuffers = PullBuffers::new();

impl Default for PullBuffers {
    fn default() -> Self {
        Self::new()
    }
}

impl PullBuffers {
    /// An empty pool.
    pub const fn new() -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Decompresses `body` (of `raw_size` bytes uncompressed) into a buffer that returns to
    /// this pool once the last clone of the returned bytes is dropped.
    ///
    /// # Errors
    ///
    /// As [`Compression::decompress`].
    pub fn decompress(
        &'static self,
        compression: Compression,
        body: &[u8],
        raw_size: usize,
    ) -> Result<Bytes, CompressionError> {
        if raw_size < MIN_POOLED {
            return compression.decompress(body, raw_size).map(Bytes::from);
        }
        // The size is checked before a buffer of that size is taken.
        compression.check_raw_size(raw_size, body.len())?;
        let mut buffer = self.take(raw_size);
        match compression.decompress_into(body, raw_size, &mut buffer) {
            Ok(()) => Ok(Bytes::from_owner(Recycled { buffer, pool: self })),
            Err(error) => {
                self.give_back(buffer);
                Err(error)
            }
        }
    }

    /// Idle buffers and their capacity in bytes.
    pub fn idle(&self) -> (usize, usize) {
        let idle = self.lock();
        (idle.len(), idle.iter().map(Vec::capacity).sum())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A buffer list cannot be left inconsistent by a panic: keep using it.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The smallest idle buffer that holds `len` bytes without wasting more than a quarter;
    /// else a new one with an eighth to spare (so that slightly larger pulls fit it later),
    /// after freeing the idle buffers (their memory can then hold it).
    fn take(&self, len: usize) -> Vec<u8> {
        let most = rounded(len + len / 4);
        let mut idle = self.lock();
        let best = idle
            .iter()
            .enumerate()
            .filter(|(_, buffer)| (len..=most).contains(&buffer.capacity()))
            .min_by_key(|(_, buffer)| buffer.capacity())
            .map(|(index, _)| index);
        if let Some(index) = best {
            return idle.swap_remove(index);
        }
        let freed = std::mem::take(&mut *idle);
        drop(idle);
        drop(freed);
        Vec::with_capacity(rounded(len + len / 8))
    }

    /// Keeps `buffer` for a later pull, then frees the smallest idle buffers while the idle
    /// ones exceed [`MAX_IDLE_BYTES`].
    fn give_back(&self, buffer: Vec<u8>) {
        // The contents stay: the next pull overwrites them instead of zeroing the buffer.
        let mut idle = self.lock();
        idle.push(buffer);
        let mut total: usize = idle.iter().map(Vec::capacity).sum();
        while total > MAX_IDLE_BYTES {
            let (index, _) = idle
                .iter()
                .enumerate()
                .min_by_key(|(_, buffer)| buffer.capacity())
                .expect("over the limit means not empty");
            total -= idle.swap_remove(index).capacity();
        }
    }
}

/// `len` rounded up to a multiple of [`GRANULE`].
fn rounded(len: usize) -> usize {
    len.div_ceil(GRANULE).saturating_mul(GRANULE)
}

/// A pooled buffer lent to a batch's records; back to its pool when dropped.
struct Recycled {
    buffer: Vec<u8>,
    pool: &'static PullBuffers,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked_pool() -> &'static PullBuffers {
        Box::leak(Box::new(PullBuffers::new()))
    }

    fn body(len: usize) -> Vec<u8> {
        Compression::Lz4.compress(&vec![7u8; len])
    }

    #[test]
    fn a_dropped_batch_buffer_serves_the_next_large_pull() {
        let pool = leaked_pool();
        let len = 3 << 20;
        let first = pool.decompress(Compression::Lz4, &body(len), len).unwrap();
        assert_eq!(first.len(), len);
        let address = first.as_ptr();
        let copy = first.clone();
        drop(first);
        assert_eq!(pool.idle().0, 0, "a clone still holds the buffer");
        drop(copy);
        assert_eq!(pool.idle().0, 1);
        // A slightly different size still fits the same buffer.
        let second = pool
            .decompress(Compression::Lz4, &body(len - 1000), len - 1000)
            .unwrap();
        assert_eq!(second.as_ptr(), address, "the idle buffer was reused");
        assert!(second.iter().all(|&byte| byte == 7));
        assert_eq!(pool.idle().0, 0);
    }

    #[test]
    fn a_slightly_larger_pull_fits_the_buffer_of_a_smaller_one() {
        let pool = leaked_pool();
        let len = 4 << 20;
        let first = pool.decompress(Compression::Lz4, &body(len), len).unwrap();
        let address = first.as_ptr();
        drop(first);
        let larger = len + (300 << 10);
        let second = pool
            .decompress(Compression::Lz4, &body(larger), larger)
            .unwrap();
        assert_eq!(second.as_ptr(), address);
        assert_eq!(second.len(), larger);
    }

    #[test]
    fn a_pull_no_idle_buffer_fits_frees_them_and_small_pulls_leave_them() {
        let pool = leaked_pool();
        drop(
            pool.decompress(Compression::Lz4, &body(6 << 20), 6 << 20)
                .unwrap(),
        );
        assert_eq!(pool.idle().0, 1);
        let small = pool
            .decompress(Compression::Lz4, &body(1000), 1000)
            .unwrap();
        drop(small);
        assert_eq!(pool.idle().0, 1, "below MIN_POOLED the pool is not used");
        let half = pool
            .decompress(Compression::Lz4, &body(3 << 20), 3 << 20)
            .unwrap();
        assert_eq!(
            pool.idle(),
            (0, 0),
            "a buffer twice the size is freed, not lent"
        );
        assert_eq!(half.len(), 3 << 20);
    }

    #[test]
    fn idle_buffers_stay_under_the_limit() {
        let pool = leaked_pool();
        let len = 10 << 20;
        let batches: Vec<Bytes> = (0..10)
            .map(|_| pool.decompress(Compression::Lz4, &body(len), len).unwrap())
            .collect();
        drop(batches);
        let (count, bytes) = pool.idle();
        assert!(bytes <= MAX_IDLE_BYTES, "{bytes} idle bytes");
        assert!(count >= 1, "the limit keeps some");
    }

    #[test]
    fn a_corrupt_body_fails_and_its_buffer_stays_usable() {
        let pool = leaked_pool();
        let len = 2 << 20;
        // Varied bytes compress little, so a cut body still passes the size check.
        let raw: Vec<u8> = (0..len)
            .map(|i| ((i * 2_654_435_761) >> 13) as u8)
            .collect();
        let mut bad = Compression::Lz4.compress(&raw);
        bad.truncate(bad.len() * 3 / 4);
        assert!(pool.decompress(Compression::Lz4, &bad, len).is_err());
        assert_eq!(pool.idle().0, 1);
        let good = pool.decompress(Compression::Lz4, &body(len), len).unwrap();
        assert_eq!(good.len(), len);
    }
}
