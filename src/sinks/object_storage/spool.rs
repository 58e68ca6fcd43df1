//! The disk spool (`buffer.dir`): sealed objects waiting for upload are written to
//! `{dir}/{uuid}.part` instead of being held in memory, read back a part at a time while
//! uploading, and deleted once stored. The spool is never a durability mechanism: nothing in
//! it was acknowledged, so leftovers of an earlier run are deleted at start (their batches are
//! redelivered). An exclusive `flock` on `{dir}/.lock` keeps a second process out.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::ops::Range;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

/// Bytes read at a time while hashing a spooled file.
const READ_CHUNK: usize = 1 << 20;

/// Why the spool directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Another process holds the directory's lock.
    #[error("buffer.dir {dir}: {lock} is locked by another process (each forwarder needs its own spool directory)")]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// The directory cannot be created, locked or cleaned.
    #[error("buffer.dir {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// A locked spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Holds the exclusive lock for as long as the spool lives.
    _lock: File,
}

impl Spool {
    /// Creates `dir` if needed, locks it and deletes leftover `*.part` files; returns the
    /// spool and how many files were deleted.
    ///
    /// # Errors
    ///
    /// [`SpoolError::Locked`] when another process holds the lock, [`SpoolError::Io`] when the
    /// directory cannot be created, locked or cleaned.
    pub fn open(dir: &Path) -> Result<(Self, usize), SpoolError> {
        let failed = |source| SpoolError::Io {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(failed)?;
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(failed)?;
        // SAFETY: flock only reads the descriptor, which `lock` keeps open.
        let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let error = io::Error::last_os_error();
            return Err(if error.kind() == io::ErrorKind::WouldBlock {
                SpoolError::Locked {
                    dir: dir.to_owned(),
                    lock: lock_path,
                }
            } else {
                failed(error)
            });
        }
        let mut removed = 0;
        for entry in std::fs::read_dir(dir).map_err(failed)? {
            let path = entry.map_err(failed)?.path();
            if path.extension().is_some_and(|ext| ext == "part") {
                std::fs::remove_file(&path).map_err(failed)?;
                removed += 1;
            }
        }
        Ok((
            Self {
                dir: dir.to_owned(),
                _lock: lock,
            },
            removed,
        ))
    }

    /// Writes `body` to a new `{uuid}.part` file.
    ///
    /// # Errors
    ///
    /// The file cannot be written (it is removed again).
    pub fn write(&self, body: &[u8]) -> io::Result<SpooledFile> {
        let path = self.dir.join(format!("{}.part", uuid::Uuid::new_v4()));
        let written = File::create(&path).and_then(|mut file| file.write_all(body));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&path);
            return Err(error);
        }
        Ok(SpooledFile {
            path: Arc::new(path),
            len: body.len(),
        })
    }
}

/// An object's body in a spool file.
#[derive(Debug, Clone)]
pub struct SpooledFile {
    path: Arc<PathBuf>,
    len: usize,
}

impl SpooledFile {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `range` of the file.
    fn read(&self, range: Range<usize>) -> io::Result<Bytes> {
        let file = File::open(self.path.as_path())?;
        let mut bytes = vec![0; range.len()];
        file.read_exact_at(&mut bytes, range.start as u64)?;
        Ok(bytes.into())
    }

    /// Deletes the file.
    ///
    /// # Errors
    ///
    /// The file cannot be removed.
    pub fn delete(&self) -> io::Result<()> {
        std::fs::remove_file(self.path.as_path())
    }
}

/// An object's compressed body: in memory, or in the spool.
#[derive(Debug, Clone)]
pub enum Body {
    /// Held in memory.
    Memory(Bytes),
    /// Written to the spool.
    Spooled(SpooledFile),
}

impl Body {
    /// Its size.
    pub fn len(&self) -> usize {
        match self {
            Self::Memory(bytes) => bytes.len(),
            Self::Spooled(file) => file.len,
        }
    }

    /// Bytes `range` of the body (read from disk off the async threads when spooled).
    ///
    /// # Errors
    ///
    /// The spool file cannot be read.
    pub async fn read(&self, range: Range<usize>) -> io::Result<Bytes> {
        match self {
            Self::Memory(bytes) => Ok(bytes.slice(range)),
            Self::Spooled(file) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || file.read(range))
                    .await
                    .map_err(io::Error::other)?
            }
        }
    }

    /// Feeds the whole body to `consume`, at most 1 MiB at a time (blocking).
    ///
    /// # Errors
    ///
    /// The spool file cannot be read.
    pub fn for_each_chunk(&self, mut consume: impl FnMut(&[u8])) -> io::Result<()> {
        match self {
            Self::Memory(bytes) => {
                consume(bytes);
                Ok(())
            }
            Self::Spooled(file) => {
                let mut reader = File::open(file.path.as_path())?;
                let mut chunk = vec![0; READ_CHUNK];
                loop {
                    let read = reader.read(&mut chunk)?;
                    if read == 0 {
                        return Ok(());
                    }
                    consume(&chunk[..read]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_in(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|entry| {
                entry
                    .as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|ext| ext == "part")
            })
            .count()
    }

    #[tokio::test]
    async fn a_spooled_body_reads_back_in_parts_and_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, removed) = Spool::open(dir.path()).unwrap();
        assert_eq!(removed, 0);
        let data: Vec<u8> = (0..10_000u32).map(|n| (n % 251) as u8).collect();
        let file = spool.write(&data).unwrap();
        assert_eq!(parts_in(dir.path()), 1);
        let body = Body::Spooled(file.clone());
        assert_eq!(body.len(), data.len());
        let mut joined = Vec::new();
        for start in (0..data.len()).step_by(4096) {
            let end = (start + 4096).min(data.len());
            joined.extend_from_slice(&body.read(start..end).await.unwrap());
        }
        assert_eq!(joined, data);
        let mut streamed = Vec::new();
        body.for_each_chunk(|chunk| streamed.extend_from_slice(chunk))
            .unwrap();
        assert_eq!(streamed, data);
        file.delete().unwrap();
        assert_eq!(parts_in(dir.path()), 0);
    }

    #[test]
    fn leftover_parts_are_deleted_at_open_and_a_second_open_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stale.part"), b"never acknowledged").unwrap();
        std::fs::write(dir.path().join("other.txt"), b"kept").unwrap();
        let (_spool, removed) = Spool::open(dir.path()).unwrap();
        assert_eq!(removed, 1);
        assert_eq!(parts_in(dir.path()), 0);
        assert!(dir.path().join("other.txt").exists());
        let error = Spool::open(dir.path()).unwrap_err();
        assert!(matches!(error, SpoolError::Locked { .. }), "{error}");
        assert!(error.to_string().contains(".lock"), "{error}");
    }

    #[test]
    fn a_directory_that_cannot_be_created_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let error = Spool::open(&file.join("spool")).unwrap_err();
        assert!(matches!(error, SpoolError::Io { .. }), "{error}");
        assert!(error.to_string().contains("a-file/spool"), "{error}");
    }

    #[test]
    fn the_lock_is_released_with_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        drop(Spool::open(dir.path()).unwrap());
        assert!(Spool::open(dir.path()).is_ok());
    }
}
