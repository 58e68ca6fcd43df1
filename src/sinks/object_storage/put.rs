//! One attempt at writing a sealed object: a single PutObject up to `upload.part_size`, a
//! multipart upload of parts of exactly that size above it (`upload.part_concurrency` in
//! flight, each read from memory or the spool when its slot is free); the object's headers
//! (Content-Type, storage class, provenance metadata); `create_only`; and the check after the
//! upload (`verify_after_upload`).
//!
//! The multipart upload drives object_store's [`MultipartUpload`] directly rather than its
//! `WriteMultipart`: `WriteMultipart::finish` returns a failed part's error without aborting
//! the upload, and a failed attempt here always aborts (best effort) and starts again from
//! part 1 on the next attempt.

use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, PutMode, PutMultipartOptions, PutOptions,
    PutPayload,
};

use super::key::ObjectId;
use super::rollover::SealedObject;
use super::spool::Body;

/// The metadata name (after `x-amz-meta-`) of the hex SHA-256 of the object's body.
pub const SHA256_METADATA: &str = "content-sha256";

/// How objects are written, from the sink's settings.
#[derive(Debug, Clone)]
pub struct ObjectOptions {
    /// Objects larger than this go up in parts of exactly this size (the last one smaller).
    pub part_size: usize,
    /// Parts of one object uploaded at once.
    pub part_concurrency: usize,
    /// Never replace an object: `If-None-Match: *` on PutObject, a HEAD before a multipart
    /// upload.
    pub create_only: bool,
    /// After storing, HEAD the object and compare its size (and SHA-256 metadata).
    pub verify: bool,
    /// `x-amz-storage-class`, when set.
    pub storage_class: Option<String>,
    /// The provenance metadata shared by every object (project, consumer group, format,
    /// compression, writer); `None` when `object_metadata = false`.
    pub metadata: Option<Vec<(&'static str, String)>>,
}

/// How an attempt ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The object was written.
    Stored,
    /// With `create_only`: the name already held the same logs, nothing was written.
    AlreadyStored,
}

/// Why an object that was written is not what was sent.
#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    /// The stored size differs.
    #[error("stored object has {stored} bytes, {sent} were sent")]
    Size {
        /// Bytes the bucket reports.
        stored: u64,
        /// Bytes sent.
        sent: u64,
    },
    /// The stored SHA-256 metadata differs.
    #[error("stored object's content-sha256 is {stored}, the body sent has {sent}")]
    Sha256 {
        /// Metadata the bucket reports.
        stored: String,
        /// Digest of the body sent.
        sent: String,
    },
    /// With `create_only` and a random id: the name holds another object.
    #[error("with create_only, the name is taken by another object (content-sha256 {stored:?})")]
    Taken {
        /// Metadata the bucket reports, if any.
        stored: Option<String>,
    },
}

impl Mismatch {
    fn into_error(self) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(self),
        }
    }
}

/// The hex SHA-256 of `body`, read a chunk at a time when spooled (blocking).
///
/// # Errors
///
/// The spool file cannot be read.
pub fn sha256_of(body: &Body) -> std::io::Result<String> {
    use std::fmt::Write as _;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    body.for_each_chunk(|chunk| context.update(chunk))?;
    Ok(context
        .finish()
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        }))
}

impl ObjectOptions {
    /// Single PUTs up to 5 MiB, two parts at a time above, no checks, class or metadata: the
    /// unit tests' options.
    #[cfg(test)]
    pub(crate) fn plain() -> Self {
        Self {
            part_size: 5 << 20,
            part_concurrency: 2,
            create_only: false,
            verify: false,
            storage_class: None,
            metadata: None,
        }
    }

    /// Adds the storage class and the provenance metadata of `object` (whose body has the
    /// SHA-256 `sha256`) to `attributes`.
    pub fn describe(&self, attributes: &mut Attributes, object: &SealedObject, sha256: &str) {
        if let Some(class) = &self.storage_class {
            attributes.insert(Attribute::StorageClass, class.clone().into());
        }
        let Some(shared) = &self.metadata else {
            return;
        };
        let mut insert = |name: &'static str, value: String| {
            attributes.insert(Attribute::Metadata(name.into()), value.into());
        };
        for (name, value) in shared {
            insert(name, value.clone());
        }
        insert("sls-logstore", object.shard.logstore.to_string());
        insert("sls-shard", object.shard.shard.to_string());
        insert("sls-begin-cursor", object.begin_cursor.clone());
        insert("sls-end-cursor", object.end_cursor.clone());
        if let ObjectId::Cursors { begin, end } = object.id {
            insert("sls-begin-position", begin.to_string());
            insert("sls-end-position", end.to_string());
        }
        insert("logs", object.logs.to_string());
        insert("uncompressed-bytes", object.uncompressed.to_string());
        insert(SHA256_METADATA, sha256.to_owned());
    }

    /// Writes `object` at `path` once with `attributes`: a PutObject, or a multipart upload
    /// when it is larger than a part. With `create_only`, an existing object under a
    /// cursor-range name holds the same logs ([`Written::AlreadyStored`]); under a random
    /// name it must have the same SHA-256.
    ///
    /// # Errors
    ///
    /// The store's error; a failed multipart upload was aborted (best effort).
    pub async fn write(
        &self,
        store: &dyn ObjectStore,
        path: &Path,
        object: &SealedObject,
        attributes: &Attributes,
        sha256: &str,
    ) -> object_store::Result<Written> {
        let written = if object.body.len() <= self.part_size {
            let options = PutOptions {
                mode: if self.create_only {
                    PutMode::Create
                } else {
                    PutMode::Overwrite
                },
                attributes: attributes.clone(),
                ..PutOptions::default()
            };
            let body = object
                .body
                .read(0..object.body.len())
                .await
                .map_err(spool_error)?;
            let payload = PutPayload::from_bytes(body);
            match store.put_opts(path, payload, options).await {
                Ok(_) => Written::Stored,
                Err(object_store::Error::AlreadyExists { .. }) => Written::AlreadyStored,
                Err(error) => return Err(error),
            }
        } else if self.create_only && head(store, path).await?.is_some() {
            // object_store 0.13 cannot send `If-None-Match` with CompleteMultipartUpload:
            // the name is checked before the upload instead.
            Written::AlreadyStored
        } else {
            self.multipart(store, path, object, attributes).await?;
            Written::Stored
        };
        if written == Written::AlreadyStored && matches!(object.id, ObjectId::Random { .. }) {
            let stored = head(store, path)
                .await?
                .and_then(|attributes| metadata(&attributes, SHA256_METADATA));
            if stored.as_deref() != Some(sha256) {
                return Err(Mismatch::Taken { stored }.into_error());
            }
        }
        Ok(written)
    }

    /// Uploads `object` in parts of `part_size`, `part_concurrency` at a time, and completes
    /// the upload; aborts it (best effort) when any step fails.
    async fn multipart(
        &self,
        store: &dyn ObjectStore,
        path: &Path,
        object: &SealedObject,
        attributes: &Attributes,
    ) -> object_store::Result<()> {
        let options = PutMultipartOptions {
            attributes: attributes.clone(),
            ..PutMultipartOptions::default()
        };
        let mut upload = store.put_multipart_opts(path, options).await?;
        let body = &object.body;
        // Each part's number is fixed when its request is created, in order; a part is read
        // (from memory or the spool) only when one of the `part_concurrency` slots is free.
        let size = body.len();
        let parts = futures::stream::iter((0..size).step_by(self.part_size))
            .then(|start| {
                let (body, end) = (body.clone(), (start + self.part_size).min(size));
                async move { body.read(start..end).await }
            })
            .map(|read| match read {
                Ok(part) => Ok(upload.put_part(PutPayload::from_bytes(part))),
                Err(error) => Err(spool_error(error)),
            })
            .try_buffer_unordered(self.part_concurrency)
            .try_collect::<Vec<()>>()
            .await;
        let completed = match parts {
            Ok(_) => upload.complete().await.map(drop),
            Err(error) => Err(error),
        };
        if let Err(error) = completed {
            if let Err(abort) = upload.abort().await {
                tracing::debug!(key = %path, error = %abort, "aborting a failed multipart upload failed; a bucket lifecycle rule removes it");
            }
            return Err(error);
        }
        Ok(())
    }

    /// After a write: HEAD the object and compare its size and, when it has one, its
    /// SHA-256 metadata with what was sent.
    ///
    /// # Errors
    ///
    /// The store's error, or a [`Mismatch`] (as a generic store error: a retry rewrites the
    /// object).
    pub async fn verify(
        &self,
        store: &dyn ObjectStore,
        path: &Path,
        object: &SealedObject,
        sha256: &str,
    ) -> object_store::Result<()> {
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let stored = store.get_opts(path, options).await?;
        let sent = object.body.len() as u64;
        if stored.meta.size != sent {
            return Err(Mismatch::Size {
                stored: stored.meta.size,
                sent,
            }
            .into_error());
        }
        match metadata(&stored.attributes, SHA256_METADATA) {
            Some(digest) if digest != sha256 => Err(Mismatch::Sha256 {
                stored: digest,
                sent: sha256.to_owned(),
            }
            .into_error()),
            _ => Ok(()),
        }
    }
}

/// A spool file that cannot be read, as a store error (the attempt fails and is retried).
fn spool_error(error: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: Box::new(error),
    }
}

/// The attributes of the object at `path`, or `None` when there is none.
async fn head(store: &dyn ObjectStore, path: &Path) -> object_store::Result<Option<Attributes>> {
    let options = GetOptions {
        head: true,
        ..GetOptions::default()
    };
    match store.get_opts(path, options).await {
        Ok(found) => Ok(Some(found.attributes)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The user metadata `name` in `attributes`.
fn metadata(attributes: &Attributes, name: &'static str) -> Option<String> {
    attributes
        .get(&Attribute::Metadata(name.into()))
        .map(|value| value.as_ref().to_owned())
}
