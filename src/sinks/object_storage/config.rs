//! Settings of the `object_storage` sink, their checks, and building the sink: the bucket's
//! client (endpoint, addressing style, credentials) and the runtime pieces.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::RetryConfig;
use reqwest::Url;
use serde::Deserialize;

use super::activity::SharedActivity;
#[cfg(feature = "parquet")]
use super::encode::parquet::{ColumnType, ParquetColumn, ParquetLayout};
use super::encode::{Compression, CsvLayout, Format};
use super::http::connector;
use super::key::{
    check_path_part, check_strftime, parse_timezone, KeyTemplate, PREFIX_PLACEHOLDERS,
};
use super::put::ObjectOptions;
use super::rollover::{Layout, Limits, PartitionTime};
use super::sink::ObjectStorageSink;
use super::spool::Spool;
use super::upload::Uploader;
use crate::common::host::is_loopback_host;
use crate::common::tls::TlsConfig;
use crate::common::units::{check_within, ByteSize, HumanDuration};
use crate::common::Secret;
use crate::encoding::field::InvalidSetting;
use crate::sinks::{SinkContext, SinkError};

/// Settings of the `object_storage` sink: archives logs as objects in an S3-compatible bucket
/// (AWS S3, Alibaba OSS, Tencent COS, JD Cloud OSS, MinIO), acknowledged once stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStorageSinkConfig {
    /// Sink name for logs and metrics, 1 to 64 characters without control characters, unique
    /// among the sinks. Default `object_storage-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// Who runs the bucket; only derives the default `endpoint` from `region`: `aws`, `oss`
    /// (Alibaba), `cos` (Tencent), `jdcloud` or `custom` (default; `endpoint` required).
    #[serde(default)]
    pub provider: Provider,
    /// S3 endpoint URL (`https://…` or `http://…`), without path or bucket. Default from
    /// `provider` and `region`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region the requests are signed for (moto and MinIO: `us-east-1`).
    pub region: String,
    /// Bucket name: 3 to 63 characters of `a-z`, `0-9`, `.` and `-`.
    pub bucket: String,
    /// `auto` (default: path style for IP addresses and `localhost`, virtual-hosted
    /// otherwise), `virtual_hosted` or `path`.
    #[serde(default)]
    pub addressing_style: AddressingStyle,
    /// Access key id. Default: the `AWS_ACCESS_KEY_ID` environment variable.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key (never logged). Default: `AWS_SECRET_ACCESS_KEY`.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Session token of temporary credentials (never logged). Default: `AWS_SESSION_TOKEN`
    /// when set.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Start of every object name; may hold `{logstore}`, `{shard}`, `{project}` and
    /// `{consumer_group}`; must not start with `/` nor contain `//`. Default `{logstore}/`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// strftime pattern of the partition after the prefix. Default `%Y/%m/%d/%H/%M`.
    #[serde(default = "default_partition")]
    pub partition: String,
    /// `receive` (default: the time the file was opened) or `log` (each log's `__time__`,
    /// one file per partition).
    #[serde(default)]
    pub partition_time: PartitionTimeSetting,
    /// `UTC` (default) or a fixed offset such as `+08:00`, applied before the partition is
    /// rendered.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// `auto` (default: the format's and the compression's, e.g. `.json.gz`, `.csv.snappy`) or
    /// a literal ending that starts with `.`, or `""`.
    #[serde(default = "default_extension")]
    pub extension: String,
    /// `json` (default): one flattened JSON object per line; `csv`: one row per log with the
    /// `columns`; `parquet`: a Parquet file with one typed, nullable column per entry of
    /// `columns` (builds with the `parquet` cargo feature, on by default).
    #[serde(default)]
    pub format: FormatSetting,
    /// JSON and CSV: `gzip` (default), `zstd`, `snappy` (the raw block format Alibaba ships;
    /// the whole object is held uncompressed until sealed), `snappy_framed`, `lz4` (frame) or
    /// `none`. Parquet: the file's internal codec, `snappy` (default), `zstd`, `gzip` or
    /// `none` (the object itself is never compressed again).
    #[serde(default)]
    pub compression: Option<CompressionSetting>,
    /// Compression level: gzip 0 to 9 (default 6), zstd 1 to 19 (default 3).
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// A file is sealed once its encoded logs (before compression) reach this, `5MiB` to
    /// `256MiB`. Default `64MiB`.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// A file is sealed this long after it was opened, `3s` to `15m`. Default `5m`.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
    /// A file is sealed once it holds this many logs, 1 to 10,000,000; 0 (default) for no
    /// limit.
    #[serde(default)]
    pub max_events: u64,
    /// CSV and Parquet columns (required with `format = "csv"` or `"parquet"`): flattened
    /// keys (`__time__`, `__time_ns_part__`, `__topic__`, `__source__`, `__tag__:NAME`,
    /// content keys) as `"key"` or `{ key = "...", name = "...", type = "..." }` (`name`: the
    /// header or Parquet column name, default the key; `type`: Parquet only, `string`
    /// (default), `boolean`, `int32`, `int64`, `float` or `double`).
    #[serde(default)]
    pub columns: Option<Vec<ColumnSetting>>,
    /// CSV punctuation.
    #[serde(default)]
    pub csv: CsvSettings,
    /// Parquet row groups.
    #[serde(default)]
    pub parquet: ParquetSettings,
    /// Memory for open files and objects waiting for upload.
    #[serde(default)]
    pub buffer: BufferSettings,
    /// Uploads.
    #[serde(default)]
    pub upload: UploadSettings,
    /// Waits between attempts at an object; an object is retried until stored.
    #[serde(default)]
    pub retry: RetrySettings,
    /// Never replace an object: PutObject carries `If-None-Match: *`, and a multipart upload
    /// first checks that the name is free. An object already under a cursor-range name holds
    /// the same logs, so the batch is acknowledged without writing (logged at info); under a
    /// random name it must have the same `content-sha256`. For buckets that honour
    /// `If-None-Match` (AWS S3, MinIO); one that ignores it overwrites, which is harmless
    /// with cursor-range names. Default false.
    #[serde(default)]
    pub create_only: bool,
    /// After each upload, HEAD the object and compare its size and its `content-sha256`
    /// metadata with what was sent before acknowledging; a difference is retried as a
    /// failed upload. Default false.
    #[serde(default)]
    pub verify_after_upload: bool,
    /// Storage class sent as `x-amz-storage-class` (e.g. `STANDARD_IA`, `GLACIER_IR`; OSS
    /// `IA`, COS `STANDARD_IA`): capital letters, digits and `_`. Default none (the bucket's).
    #[serde(default)]
    pub storage_class: Option<String>,
    /// Server-side encryption: `AES256` (keys managed by the service) or `aws:kms`. Default
    /// none (the bucket's default).
    #[serde(default)]
    pub server_side_encryption: Option<ServerSideEncryption>,
    /// KMS key id or ARN, only with `server_side_encryption = "aws:kms"`. Default: the
    /// service's default key.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// Send provenance as `x-amz-meta-*` metadata on every object: `sls-project`,
    /// `sls-logstore`, `sls-shard`, `sls-consumer-group`, `sls-begin-cursor`,
    /// `sls-end-cursor`, `sls-begin-position`, `sls-end-position`, `logs`,
    /// `uncompressed-bytes`, `format`, `compression`, `content-sha256` (hex of the body) and
    /// `writer`. Default true.
    #[serde(default = "default_true")]
    pub object_metadata: bool,
    /// TLS to the endpoint: `ca_file` (e.g. the private CA of an on-premises MinIO),
    /// `cert_file` and `key_file` (a client certificate), `verify` (default true; off is
    /// logged as a warning). Default: the system's trust store. `server_name` is not
    /// available here: set `endpoint` to the certificate's name and map it with `resolve`.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Host names answered with fixed IP addresses instead of DNS, like `curl --resolve`:
    /// `{ "archive.minio.internal" = "10.0.0.5" }`. With virtual-hosted addressing the
    /// requests go to `{bucket}.{endpoint host}`. Default none.
    #[serde(default)]
    pub resolve: BTreeMap<String, String>,
}

/// Server-side encryption of the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ServerSideEncryption {
    /// Keys managed by the service (SSE-S3).
    #[serde(rename = "AES256")]
    Aes256,
    /// Keys in the service's KMS (SSE-KMS), `kms_key_id` or the default key.
    #[serde(rename = "aws:kms")]
    AwsKms,
}

impl ServerSideEncryption {
    /// The `x-amz-server-side-encryption` value.
    fn header_value(self) -> &'static str {
        match self {
            Self::Aes256 => "AES256",
            Self::AwsKms => "aws:kms",
        }
    }
}

/// Who runs the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Amazon S3: `https://s3.{region}.amazonaws.com`.
    Aws,
    /// Alibaba Cloud OSS: `https://s3.oss-{region}.aliyuncs.com`.
    Oss,
    /// Tencent Cloud COS: `https://cos.{region}.myqcloud.com`.
    Cos,
    /// JD Cloud OSS: `https://s3.{region}.jdcloud-oss.com`.
    Jdcloud,
    /// Any other S3-compatible service; `endpoint` is required.
    #[default]
    Custom,
}

/// How the bucket appears in request URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressingStyle {
    /// Path style for IP addresses and `localhost`, virtual-hosted otherwise.
    #[default]
    Auto,
    /// `https://{bucket}.{host}/{key}` (OSS and new COS buckets accept only this).
    VirtualHosted,
    /// `https://{host}/{bucket}/{key}`.
    Path,
}

/// Which time a log's partition is rendered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionTimeSetting {
    /// When its file was opened.
    #[default]
    Receive,
    /// The log's own `__time__`.
    Log,
}

/// Object format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatSetting {
    /// JSON lines in the project's flattened form.
    #[default]
    Json,
    /// CSV rows of `columns`.
    Csv,
    /// Parquet files with typed `columns`.
    Parquet,
}

/// Object compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompressionSetting {
    /// gzip.
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// Snappy raw block over the whole object.
    Snappy,
    /// Snappy framing format.
    SnappyFramed,
    /// LZ4 frame.
    Lz4,
    /// None.
    None,
}

/// One CSV or Parquet column: a key, or a key with a name and (Parquet) a type.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ColumnSetting {
    /// The key, also the name; Parquet type `string`.
    Key(String),
    /// A key with its name and type.
    Named(NamedColumn),
}

/// A column with a name and a type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedColumn {
    /// Flattened key.
    pub key: String,
    /// Header (CSV) or column (Parquet) name; default the key.
    #[serde(default)]
    pub name: Option<String>,
    /// Parquet type: `string` (default), `boolean`, `int32`, `int64`, `float` or `double`;
    /// CSV ignores it.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

impl ColumnSetting {
    /// The key and the name.
    fn key_and_name(&self) -> (&str, &str) {
        match self {
            Self::Key(key) => (key, key),
            Self::Named(column) => (&column.key, column.name.as_deref().unwrap_or(&column.key)),
        }
    }

    /// The configured type's name, if any.
    #[cfg(feature = "parquet")]
    fn kind(&self) -> Option<&str> {
        match self {
            Self::Key(_) => None,
            Self::Named(column) => column.kind.as_deref(),
        }
    }
}

/// `csv` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSettings {
    /// Field separator, one ASCII character, not a line break nor the quote. Default `,`.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Quote character, one ASCII character; inside values it is doubled. Default `"`.
    #[serde(default = "default_quote")]
    pub quote: String,
    /// Written when a log has no value for a column. Default empty.
    #[serde(default)]
    pub null_value: String,
    /// Start every object with a row of the column names. Default false.
    #[serde(default)]
    pub header: bool,
}

impl Default for CsvSettings {
    fn default() -> Self {
        Self {
            delimiter: default_delimiter(),
            quote: default_quote(),
            null_value: String::new(),
            header: false,
        }
    }
}

fn default_delimiter() -> String {
    ",".into()
}
fn default_quote() -> String {
    "\"".into()
}

/// `parquet` settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSettings {
    /// A row group is written (encoded and compressed into the file) once its values reach
    /// this, `1MiB` to `128MiB`; until then they are held in memory. Default `16MiB`.
    #[serde(default = "default_row_group_bytes")]
    pub row_group_bytes: ByteSize,
}

impl Default for ParquetSettings {
    fn default() -> Self {
        Self {
            row_group_bytes: default_row_group_bytes(),
        }
    }
}

fn default_row_group_bytes() -> ByteSize {
    ByteSize::mib(16)
}

/// `buffer` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSettings {
    /// Memory for open files and sealed objects not yet stored, `8MiB` to `4GiB`. Over it
    /// the largest open file is sealed; when nothing is left to seal the sink takes no more
    /// batches until uploads finish. Each batch is dropped once encoded, which gives its
    /// pulled size back to the consumer's in-flight budget (`consumer.max_inflight_bytes`), so
    /// files waiting for their age or size do not hold the pull. Default `64MiB`.
    #[serde(default = "default_max_memory")]
    pub max_memory: ByteSize,
    /// A spool directory: sealed objects wait for upload in `{dir}/{uuid}.part` files instead
    /// of memory, are read back a part at a time and deleted once stored. Open files stay in
    /// memory. Locked (`{dir}/.lock`) by one process; leftover `.part` files, which hold
    /// nothing acknowledged, are deleted at start. Default none (memory only).
    #[serde(default)]
    pub dir: Option<std::path::PathBuf>,
    /// Bytes the spool may hold, at least twice `max_bytes`; when full, the sink takes no
    /// more batches until uploads finish. Only with `dir`. Default `4GiB`.
    #[serde(default)]
    pub max_disk: Option<ByteSize>,
}

impl Default for BufferSettings {
    fn default() -> Self {
        Self {
            max_memory: default_max_memory(),
            dir: None,
            max_disk: None,
        }
    }
}

impl BufferSettings {
    /// The spool's budget: `max_disk`, or 4 GiB.
    fn max_disk(&self) -> u64 {
        self.max_disk.map_or(4 << 30, |size| size.0)
    }
}

/// `upload` settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadSettings {
    /// Objects uploaded at once, 1 to 64. Default 2.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Time limit of one HTTP request, `1s` to `1h`. Default `120s`.
    #[serde(default = "default_upload_timeout")]
    pub timeout: HumanDuration,
    /// Quick retries of a transient failure inside one attempt, 0 to 10. Default 3.
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
    /// Objects up to this size are written with one PutObject; larger ones with a multipart
    /// upload of parts of exactly this size (the last one smaller), `5MiB` (the S3 minimum
    /// part) to `512MiB`. An object is acknowledged only once its upload completed; a failed
    /// attempt is aborted and the next one starts again from the first part. Default `16MiB`.
    #[serde(default = "default_part_size")]
    pub part_size: ByteSize,
    /// Parts of one object uploaded at once, 1 to 16. Default 2.
    #[serde(default = "default_part_concurrency")]
    pub part_concurrency: usize,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            timeout: default_upload_timeout(),
            max_retries: default_max_retries(),
            part_size: default_part_size(),
            part_concurrency: default_part_concurrency(),
        }
    }
}

/// `retry` settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// First wait after a failed attempt, `100ms` to `1m`. Default `1s`.
    #[serde(default = "default_retry_initial")]
    pub initial: HumanDuration,
    /// Longest wait, and the pace of retries after a permanent refusal, `100ms` to `10m`.
    /// Default `30s`.
    #[serde(default = "default_retry_max")]
    pub max: HumanDuration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            initial: default_retry_initial(),
            max: default_retry_max(),
        }
    }
}

fn default_prefix() -> String {
    "{logstore}/".into()
}
fn default_partition() -> String {
    "%Y/%m/%d/%H/%M".into()
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_extension() -> String {
    "auto".into()
}
fn default_max_bytes() -> ByteSize {
    ByteSize::mib(64)
}
fn default_max_age() -> HumanDuration {
    HumanDuration::secs(300)
}
fn default_max_memory() -> ByteSize {
    ByteSize::mib(64)
}
fn default_concurrency() -> usize {
    2
}
fn default_upload_timeout() -> HumanDuration {
    HumanDuration::secs(120)
}
fn default_max_retries() -> usize {
    3
}
fn default_true() -> bool {
    true
}
fn default_part_size() -> ByteSize {
    ByteSize::mib(16)
}
fn default_part_concurrency() -> usize {
    2
}
fn default_retry_initial() -> HumanDuration {
    HumanDuration::secs(1)
}
fn default_retry_max() -> HumanDuration {
    HumanDuration::secs(30)
}

const MAX_BYTES: (ByteSize, ByteSize) = (ByteSize::mib(5), ByteSize::mib(256));
const MAX_AGE: (HumanDuration, HumanDuration) = (HumanDuration::secs(3), HumanDuration::secs(900));
const MAX_EVENTS: u64 = 10_000_000;
#[cfg(feature = "parquet")]
const ROW_GROUP_BYTES: (ByteSize, ByteSize) = (ByteSize::mib(1), ByteSize::mib(128));
const MAX_MEMORY: (ByteSize, ByteSize) = (ByteSize::mib(8), ByteSize::mib(4096));
const UPLOAD_TIMEOUT: (HumanDuration, HumanDuration) =
    (HumanDuration::secs(1), HumanDuration::secs(3600));
const PART_SIZE: (ByteSize, ByteSize) = (ByteSize::mib(5), ByteSize::mib(512));
const RETRY_INITIAL: (HumanDuration, HumanDuration) =
    (HumanDuration::millis(100), HumanDuration::secs(60));
const RETRY_MAX: (HumanDuration, HumanDuration) =
    (HumanDuration::millis(100), HumanDuration::secs(600));

impl ObjectStorageSinkConfig {
    /// Checks the settings without I/O.
    ///
    /// # Errors
    ///
    /// The offending key and why.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.endpoint_url()?;
        if self.region.trim().is_empty() {
            return Err(InvalidSetting::new("region", "must not be empty"));
        }
        check_bucket(&self.bucket).map_err(|reason| InvalidSetting::new("bucket", reason))?;
        check_path_part(&self.prefix).map_err(|reason| InvalidSetting::new("prefix", reason))?;
        let mut rest = self.prefix.clone();
        for placeholder in PREFIX_PLACEHOLDERS {
            rest = rest.replace(placeholder, "");
        }
        if rest.contains(['{', '}']) {
            return Err(InvalidSetting::new(
                "prefix",
                "the only placeholders are {logstore}, {shard}, {project} and {consumer_group}",
            ));
        }
        check_path_part(&self.partition)
            .and_then(|()| check_strftime(&self.partition))
            .map_err(|reason| InvalidSetting::new("partition", reason))?;
        parse_timezone(&self.timezone).map_err(|reason| InvalidSetting::new("timezone", reason))?;
        if self.extension != "auto"
            && !self.extension.is_empty()
            && !self.extension.starts_with('.')
            || self.extension.contains('/')
        {
            return Err(InvalidSetting::new(
                "extension",
                "must be \"auto\", \"\" or start with '.' (and hold no '/')",
            ));
        }
        self.format(self.name.as_deref().unwrap_or_default())?;
        self.compression()?;
        let within = |key: &str, checked: Result<(), String>| {
            checked.map_err(|reason| InvalidSetting::new(key, reason))
        };
        within(
            "max_bytes",
            self.max_bytes.check_within(MAX_BYTES.0, MAX_BYTES.1),
        )?;
        within("max_age", self.max_age.check_within(MAX_AGE.0, MAX_AGE.1))?;
        if self.max_events != 0 {
            within("max_events", check_within(self.max_events, 1, MAX_EVENTS))?;
        }
        within(
            "buffer.max_memory",
            self.buffer
                .max_memory
                .check_within(MAX_MEMORY.0, MAX_MEMORY.1),
        )?;
        self.check_spool()?;
        within(
            "upload.concurrency",
            check_within(self.upload.concurrency, 1, 64),
        )?;
        within(
            "upload.timeout",
            self.upload
                .timeout
                .check_within(UPLOAD_TIMEOUT.0, UPLOAD_TIMEOUT.1),
        )?;
        within(
            "upload.max_retries",
            check_within(self.upload.max_retries, 0, 10),
        )?;
        within(
            "upload.part_size",
            self.upload.part_size.check_within(PART_SIZE.0, PART_SIZE.1),
        )?;
        within(
            "upload.part_concurrency",
            check_within(self.upload.part_concurrency, 1, 16),
        )?;
        within(
            "retry.initial",
            self.retry
                .initial
                .check_within(RETRY_INITIAL.0, RETRY_INITIAL.1),
        )?;
        within(
            "retry.max",
            self.retry.max.check_within(RETRY_MAX.0, RETRY_MAX.1),
        )?;
        if self.retry.max.0 < self.retry.initial.0 {
            return Err(InvalidSetting::new(
                "retry.max",
                "must not be shorter than retry.initial",
            ));
        }
        self.check_object_options()
    }

    /// Checks the spool settings: `max_disk` only with `dir`, and room for two largest
    /// objects.
    fn check_spool(&self) -> Result<(), InvalidSetting> {
        let Some(dir) = &self.buffer.dir else {
            if self.buffer.max_disk.is_some() {
                return Err(InvalidSetting::new(
                    "buffer.max_disk",
                    "needs buffer.dir (the spool directory it bounds)",
                ));
            }
            return Ok(());
        };
        if dir.as_os_str().is_empty() {
            return Err(InvalidSetting::new("buffer.dir", "must not be empty"));
        }
        // Uploads read their parts from the spool into memory.
        let reading = self.upload.concurrency as u64
            * self.upload.part_concurrency as u64
            * self.upload.part_size.0;
        if self.buffer.max_memory.0 < reading {
            return Err(InvalidSetting::new(
                "buffer.max_memory",
                format!(
                    "with buffer.dir, must hold the parts being uploaded: upload.concurrency × upload.part_concurrency × upload.part_size ({reading} bytes)"
                ),
            ));
        }
        if self.buffer.max_disk() < 2 * self.max_bytes.0 {
            return Err(InvalidSetting::new(
                "buffer.max_disk",
                format!(
                    "must be at least 2 × max_bytes ({} bytes)",
                    2 * self.max_bytes.0
                ),
            ));
        }
        Ok(())
    }

    /// Checks the storage class and the encryption settings.
    fn check_object_options(&self) -> Result<(), InvalidSetting> {
        if let Some(class) = &self.storage_class {
            if class.is_empty()
                || !class
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(InvalidSetting::new(
                    "storage_class",
                    format!("must be capital letters, digits and '_' such as STANDARD_IA (got {class:?})"),
                ));
            }
        }
        if let Some(key) = &self.kms_key_id {
            if self.server_side_encryption != Some(ServerSideEncryption::AwsKms) {
                return Err(InvalidSetting::new(
                    "kms_key_id",
                    "only with server_side_encryption = \"aws:kms\"",
                ));
            }
            if key.trim().is_empty() {
                return Err(InvalidSetting::new("kms_key_id", "must not be empty"));
            }
        }
        if self.tls.server_name.is_some() {
            return Err(InvalidSetting::new(
                "tls.server_name",
                "not available for object_storage: set endpoint to the certificate's name and map that name to the address with resolve",
            ));
        }
        self.resolved().map(drop)
    }

    /// The `resolve` entries as addresses.
    fn resolved(&self) -> Result<BTreeMap<String, IpAddr>, InvalidSetting> {
        self.resolve
            .iter()
            .map(|(host, address)| {
                let key = || format!("resolve.{host:?}");
                if host.is_empty() || host.contains(['/', ':', ' ']) {
                    return Err(InvalidSetting::new(key(), "must be a host name"));
                }
                let address = address.parse::<IpAddr>().map_err(|_| {
                    InvalidSetting::new(
                        key(),
                        format!("must be an IP address such as 10.0.0.5 (got {address:?})"),
                    )
                })?;
                Ok((host.to_ascii_lowercase(), address))
            })
            .collect()
    }

    /// How objects are written: parts, `create_only`, the check after the upload, the
    /// storage class and the provenance metadata shared by every object.
    fn object_options(&self, context: &SinkContext, format: &Format) -> ObjectOptions {
        let metadata = self.object_metadata.then(|| {
            vec![
                ("sls-project", context.project.clone()),
                ("sls-consumer-group", context.consumer_group.clone()),
                ("format", format.name().to_owned()),
                ("compression", self.compression_name().to_owned()),
                (
                    "writer",
                    format!("siem-forwarder/{}", env!("CARGO_PKG_VERSION")),
                ),
            ]
        });
        ObjectOptions {
            part_size: usize::try_from(self.upload.part_size.0).unwrap_or(usize::MAX),
            part_concurrency: self.upload.part_concurrency,
            create_only: self.create_only,
            verify: self.verify_after_upload,
            storage_class: self.storage_class.clone(),
            metadata,
        }
    }

    /// The `compression` setting's name, for the objects' metadata.
    fn compression_name(&self) -> &'static str {
        match self.compression_setting() {
            CompressionSetting::Gzip => "gzip",
            CompressionSetting::Zstd => "zstd",
            CompressionSetting::Snappy => "snappy",
            CompressionSetting::SnappyFramed => "snappy_framed",
            CompressionSetting::Lz4 => "lz4",
            CompressionSetting::None => "none",
        }
    }

    /// The endpoint: configured, or derived from `provider` and `region`.
    fn endpoint_url(&self) -> Result<Url, InvalidSetting> {
        let invalid = |reason: String| InvalidSetting::new("endpoint", reason);
        let text = match (&self.endpoint, self.provider) {
            (Some(endpoint), _) => endpoint.clone(),
            (None, Provider::Custom) => {
                return Err(invalid("required for provider = \"custom\"".into()))
            }
            (None, Provider::Aws) => format!("https://s3.{}.amazonaws.com", self.region),
            (None, Provider::Oss) => format!("https://s3.oss-{}.aliyuncs.com", self.region),
            (None, Provider::Cos) => format!("https://cos.{}.myqcloud.com", self.region),
            (None, Provider::Jdcloud) => format!("https://s3.{}.jdcloud-oss.com", self.region),
        };
        let url = Url::parse(&text)
            .map_err(|error| invalid(format!("{text:?} is not a URL: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must start with https:// or http://".into()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("must name a host".into()));
        }
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return Err(invalid(
                "must be scheme://host[:port] only: no path (the bucket goes in `bucket`), query or user".into(),
            ));
        }
        Ok(url)
    }

    /// The `compression` setting, or its default: snappy for Parquet, gzip otherwise.
    fn compression_setting(&self) -> CompressionSetting {
        self.compression
            .unwrap_or(if self.format == FormatSetting::Parquet {
                CompressionSetting::Snappy
            } else {
                CompressionSetting::Gzip
            })
    }

    /// The compression: for JSON and CSV of the object, for Parquet the file's internal codec.
    fn compression(&self) -> Result<Compression, InvalidSetting> {
        let parquet = self.format == FormatSetting::Parquet;
        let setting = self.compression_setting();
        let level = |default: i32, (min, max): (i32, i32)| {
            let level = self.compression_level.unwrap_or(default);
            check_within(level, min, max)
                .map(|()| level)
                .map_err(|reason| InvalidSetting::new("compression_level", reason))
        };
        Ok(match setting {
            CompressionSetting::None => {
                if self.compression_level.is_some() {
                    return Err(InvalidSetting::new(
                        "compression_level",
                        "has no effect with compression = \"none\"",
                    ));
                }
                Compression::None
            }
            CompressionSetting::Gzip => Compression::Gzip(level(6, (0, 9))?.unsigned_abs()),
            CompressionSetting::Zstd => Compression::Zstd(level(3, (1, 19))?),
            CompressionSetting::SnappyFramed | CompressionSetting::Lz4 if parquet => {
                let name = if setting == CompressionSetting::Lz4 {
                    "lz4"
                } else {
                    "snappy_framed"
                };
                return Err(InvalidSetting::new(
                    "compression",
                    format!(
                        "{name:?} is not available for format = \"parquet\"; use none, snappy, zstd or gzip (Parquet-internal codecs)"
                    ),
                ));
            }
            CompressionSetting::Snappy
            | CompressionSetting::SnappyFramed
            | CompressionSetting::Lz4 => {
                if self.compression_level.is_some() {
                    return Err(InvalidSetting::new(
                        "compression_level",
                        "only for gzip and zstd",
                    ));
                }
                match setting {
                    CompressionSetting::Snappy => Compression::Snappy,
                    CompressionSetting::SnappyFramed => Compression::SnappyFramed,
                    _ => Compression::Lz4,
                }
            }
        })
    }

    /// The format; `sink` names the sink in Parquet's conversion-null counters.
    fn format(
        &self,
        #[cfg_attr(not(feature = "parquet"), expect(unused_variables))] sink: &str,
    ) -> Result<Format, InvalidSetting> {
        let columns = match (self.format, &self.columns) {
            (FormatSetting::Json, None) => return Ok(Format::Json),
            (FormatSetting::Json, Some(_)) => {
                return Err(InvalidSetting::new(
                    "columns",
                    "only for format = \"csv\" or \"parquet\"",
                ))
            }
            (FormatSetting::Parquet, _) if cfg!(not(feature = "parquet")) => {
                return Err(InvalidSetting::new(
                    "format",
                    "this build has no Parquet support",
                ))
            }
            (format, None) => {
                let name = if format == FormatSetting::Csv {
                    "csv"
                } else {
                    "parquet"
                };
                return Err(InvalidSetting::new(
                    "columns",
                    format!("required for format = {name:?}"),
                ));
            }
            (_, Some(columns)) => columns,
        };
        if columns.is_empty() {
            return Err(InvalidSetting::new("columns", "must name at least one key"));
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, column) in columns.iter().enumerate() {
            let (key, name) = column.key_and_name();
            if key.is_empty() {
                return Err(InvalidSetting::new(
                    format!("columns[{index}].key"),
                    "must not be empty",
                ));
            }
            if !names.insert(name) {
                return Err(InvalidSetting::new(
                    format!("columns[{index}]"),
                    format!("the name {name:?} is used twice"),
                ));
            }
        }
        #[cfg(feature = "parquet")]
        if self.format == FormatSetting::Parquet {
            return self.parquet_layout(columns, sink).map(Format::Parquet);
        }
        let one_ascii = |key: &str, text: &str| match text.as_bytes() {
            [byte] if byte.is_ascii() && *byte != b'\n' && *byte != b'\r' => Ok(*byte),
            _ => Err(InvalidSetting::new(
                key,
                "must be one ASCII character other than a line break",
            )),
        };
        let delimiter = one_ascii("csv.delimiter", &self.csv.delimiter)?;
        let quote = one_ascii("csv.quote", &self.csv.quote)?;
        if delimiter == quote {
            return Err(InvalidSetting::new(
                "csv.delimiter",
                "must differ from csv.quote",
            ));
        }
        Ok(Format::Csv(CsvLayout {
            columns: columns
                .iter()
                .map(|column| {
                    let (key, name) = column.key_and_name();
                    (key.to_owned(), name.to_owned())
                })
                .collect(),
            delimiter,
            quote,
            null_value: self.csv.null_value.clone(),
            header: self.csv.header,
        }))
    }

    /// Parquet's typed columns and row-group size.
    #[cfg(feature = "parquet")]
    fn parquet_layout(
        &self,
        columns: &[ColumnSetting],
        sink: &str,
    ) -> Result<ParquetLayout, InvalidSetting> {
        self.parquet
            .row_group_bytes
            .check_within(ROW_GROUP_BYTES.0, ROW_GROUP_BYTES.1)
            .map_err(|reason| InvalidSetting::new("parquet.row_group_bytes", reason))?;
        let columns = columns
            .iter()
            .enumerate()
            .map(|(index, column)| {
                let (key, name) = column.key_and_name();
                let kind = match column.kind() {
                    None => ColumnType::String,
                    Some(kind) => ColumnType::from_name(kind).ok_or_else(|| {
                        InvalidSetting::new(
                            format!("columns[{index}].type"),
                            format!(
                                "unknown type {kind:?}; use string, boolean, int32, int64, float or double"
                            ),
                        )
                    })?,
                };
                Ok(ParquetColumn {
                    key: key.to_owned(),
                    name: name.to_owned(),
                    kind,
                })
            })
            .collect::<Result<_, InvalidSetting>>()?;
        Ok(ParquetLayout {
            columns,
            row_group_bytes: self.parquet.row_group_bytes.0,
            sink: sink.to_owned(),
        })
    }

    /// Builds the sink: the bucket's client and the runtime settings; `context` fills
    /// `{project}` and `{consumer_group}` and gives the consumer's per-shard limit, the drain
    /// token and the shard releases. Credentials missing
    /// from the settings are read from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN` through `env`. No request is made.
    ///
    /// # Errors
    ///
    /// [`SinkError::Config`] naming the setting when the settings cannot work.
    pub fn build(
        &self,
        name: &str,
        context: &SinkContext,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ObjectStorageSink, SinkError> {
        let config_error = |error: InvalidSetting| SinkError::Config(error.to_string());
        self.validate().map_err(config_error)?;
        let name = self.name.clone().unwrap_or_else(|| name.to_owned());
        let compression = self.compression().map_err(config_error)?;
        let format = self.format(&name).map_err(config_error)?;
        if compression == Compression::Snappy
            && format.compresses_outside()
            && self.max_bytes > ByteSize::mib(64)
        {
            tracing::warn!(sink = %name, max_bytes = %self.max_bytes, "raw snappy holds each object uncompressed until it is sealed: up to max_bytes per open file");
        }
        let endpoint = self.endpoint_url().map_err(config_error)?;
        let host = endpoint.host_str().unwrap_or_default().to_owned();
        if endpoint.scheme() == "http" && !is_loopback_host(&host) {
            tracing::warn!(sink = %name, endpoint = %endpoint, "the archive is sent over plain http; use https:// outside a trusted network");
        }
        let env_value = |key: &str| env(key).filter(|value| !value.is_empty());
        let access_key_id = self
            .access_key_id
            .clone()
            .filter(|id| !id.is_empty())
            .or_else(|| env_value("AWS_ACCESS_KEY_ID"))
            .ok_or_else(|| {
                SinkError::Config(
                    "access_key_id: not set, and AWS_ACCESS_KEY_ID is not in the environment"
                        .into(),
                )
            })?;
        let secret_access_key = self
            .secret_access_key
            .clone()
            .filter(|secret| !secret.is_empty())
            .or_else(|| env_value("AWS_SECRET_ACCESS_KEY").map(Secret::new))
            .ok_or_else(|| {
                SinkError::Config(
                    "secret_access_key: not set, and AWS_SECRET_ACCESS_KEY is not in the environment"
                        .into(),
                )
            })?;
        let session_token = self
            .session_token
            .clone()
            .filter(|token| !token.is_empty())
            .or_else(|| env_value("AWS_SESSION_TOKEN").map(Secret::new));

        let path_style = match self.addressing_style {
            AddressingStyle::Path => true,
            AddressingStyle::VirtualHosted => false,
            AddressingStyle::Auto => is_ip_or_localhost(&host),
        };
        let store_endpoint = if path_style {
            endpoint.as_str().trim_end_matches('/').to_owned()
        } else {
            let port = endpoint
                .port()
                .map(|port| format!(":{port}"))
                .unwrap_or_default();
            format!("{}://{}.{host}{port}", endpoint.scheme(), self.bucket)
        };
        let timeout = self.upload.timeout.0;
        if !self.tls.verify {
            tracing::warn!(sink = %name, "tls.verify = false: the bucket's certificate is not checked");
        }
        let connector = connector(
            &self.tls,
            &self.resolved().map_err(config_error)?,
            timeout,
            endpoint.scheme() == "https",
        )
        .map_err(|error| SinkError::Config(error.to_string()))?;
        let mut builder = AmazonS3Builder::new()
            .with_http_connector(connector)
            .with_region(&self.region)
            .with_bucket_name(&self.bucket)
            .with_endpoint(store_endpoint)
            .with_virtual_hosted_style_request(!path_style)
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key.expose())
            // The requests go through `connector`; object_store still checks the scheme.
            .with_allow_http(endpoint.scheme() == "http")
            .with_retry(RetryConfig {
                max_retries: self.upload.max_retries,
                retry_timeout: timeout * 3,
                ..RetryConfig::default()
            });
        if let Some(token) = session_token {
            builder = builder.with_token(token.expose());
        }
        builder = match (self.server_side_encryption, &self.kms_key_id) {
            (None, _) => builder,
            (Some(ServerSideEncryption::AwsKms), Some(key)) => builder.with_sse_kms_encryption(key),
            (Some(encryption), _) => {
                let key: AmazonS3ConfigKey = "aws_server_side_encryption"
                    .parse()
                    .expect("object_store knows aws_server_side_encryption");
                builder.with_config(key, encryption.header_value())
            }
        };
        let store = builder.build().map_err(|error| {
            SinkError::Config(format!("cannot set up the bucket's client: {error}"))
        })?;
        let extension = match self.extension.as_str() {
            "auto" => compression.extension(&format),
            literal => literal.to_owned(),
        };
        let layout = Layout {
            keys: KeyTemplate {
                prefix: self
                    .prefix
                    .replace("{project}", &context.project)
                    .replace("{consumer_group}", &context.consumer_group),
                partition: self.partition.clone(),
                timezone: parse_timezone(&self.timezone).map_err(SinkError::Config)?,
                extension,
            },
            partition_time: match self.partition_time {
                PartitionTimeSetting::Receive => PartitionTime::Receive,
                PartitionTimeSetting::Log => PartitionTime::Log,
            },
            format,
            compression,
            limits: Limits {
                max_bytes: self.max_bytes.0,
                max_age: self.max_age.0,
                max_events: self.max_events,
                max_batches: context.max_inflight_batches,
            },
        };
        let spool = self.open_spool(&name)?;
        Ok(ObjectStorageSink {
            uploader: Uploader {
                store: Arc::new(store),
                sink: name.as_str().into(),
                content_type: compression.content_type(&layout.format),
                format: layout.format.name(),
                activity: SharedActivity::default(),
                retry: (self.retry.initial.0, self.retry.max.0),
                options: Arc::new(self.object_options(context, &layout.format)),
            },
            name,
            layout: Arc::new(layout),
            max_memory: self.buffer.max_memory.0,
            concurrency: self.upload.concurrency,
            spool,
            drain: context.drain.clone(),
            releases: context.releases.subscribe(),
        })
    }
}

impl ObjectStorageSinkConfig {
    /// Opens and locks the spool directory, deleting leftover `.part` files.
    fn open_spool(&self, name: &str) -> Result<Option<(Arc<Spool>, u64)>, SinkError> {
        let Some(dir) = &self.buffer.dir else {
            return Ok(None);
        };
        let (spool, removed) =
            Spool::open(dir).map_err(|error| SinkError::Config(error.to_string()))?;
        tracing::info!(sink = %name, dir = %dir.display(), removed, "spool directory locked; leftover .part files (never acknowledged, redelivered) deleted");
        Ok(Some((Arc::new(spool), self.buffer.max_disk())))
    }
}

/// True for IP literals and `localhost`, which cannot carry a bucket as a subdomain.
fn is_ip_or_localhost(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok()
}

/// Checks a bucket name as S3 and its compatibles name buckets.
fn check_bucket(bucket: &str) -> Result<(), String> {
    if bucket.starts_with("s3://") || bucket.contains('/') {
        return Err("must not contain '/' or start with s3://".into());
    }
    if !(3..=63).contains(&bucket.len())
        || !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(format!(
            "must be 3 to 63 characters of a-z, 0-9, '.' and '-' (got {bucket:?})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Settings for bucket `archive`, with region `us-east-1` and a loopback endpoint unless
    /// `extra` sets a region, an endpoint or a provider.
    fn parse(extra: &str) -> ObjectStorageSinkConfig {
        let mut text = String::from("bucket = \"archive\"\n");
        if !extra.contains("region =") {
            text.push_str("region = \"us-east-1\"\n");
        }
        if !extra.contains("endpoint =") && !extra.contains("provider =") {
            text.push_str("endpoint = \"http://127.0.0.1:9000\"\n");
        }
        toml::from_str(&format!("{text}{extra}")).unwrap()
    }

    fn refusal(extra: &str) -> (String, String) {
        let error = parse(extra).validate().unwrap_err();
        (error.key, error.reason)
    }

    #[test]
    fn a_spool_with_room_for_two_largest_objects_is_valid() {
        let config = parse(
            "max_bytes = \"64MiB\"\nbuffer = { dir = \"/tmp/spool\", max_disk = \"128MiB\" }",
        );
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            parse("buffer = { dir = \"/tmp/spool\" }").buffer.max_disk(),
            4 << 30
        );
    }

    #[test]
    fn defaults_are_valid() {
        let config = parse("");
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.max_bytes, ByteSize::mib(64));
        assert_eq!(config.max_age.0, Duration::from_secs(300));
        assert_eq!(config.compression().unwrap(), Compression::Gzip(6));
        assert_eq!(config.prefix, "{logstore}/");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (extra, key, reason) in [
            ("max_bytes = \"1GiB\"", "max_bytes", "must be between"),
            ("max_bytes = \"1MiB\"", "max_bytes", "must be between"),
            ("max_age = \"1s\"", "max_age", "must be between"),
            ("max_age = \"16m\"", "max_age", "must be between"),
            ("max_events = 10000001", "max_events", "must be between"),
            (
                "partition = \"%Y/%Q\"",
                "partition",
                "invalid strftime item at %Q",
            ),
            (
                "partition = \"/%Y\"",
                "partition",
                "must not start with '/'",
            ),
            ("prefix = \"a//b/\"", "prefix", "must not contain '//'"),
            ("prefix = \"{bucket}/\"", "prefix", "the only placeholders"),
            ("timezone = \"Asia/Shanghai\"", "timezone", "fixed offset"),
            ("extension = \"gz\"", "extension", "start with '.'"),
            (
                "compression = \"zstd\"\ncompression_level = 22",
                "compression_level",
                "must be between 1 and 19",
            ),
            (
                "compression = \"none\"\ncompression_level = 1",
                "compression_level",
                "no effect",
            ),
            (
                "buffer = { max_memory = \"1MiB\" }",
                "buffer.max_memory",
                "must be between",
            ),
            (
                "buffer = { max_disk = \"1GiB\" }",
                "buffer.max_disk",
                "needs buffer.dir",
            ),
            (
                "buffer = { dir = \"/tmp/spool\", max_disk = \"100MiB\" }",
                "buffer.max_disk",
                "at least 2 × max_bytes",
            ),
            ("buffer = { dir = \"\" }", "buffer.dir", "must not be empty"),
            (
                "buffer = { dir = \"/tmp/spool\", max_memory = \"32MiB\" }",
                "buffer.max_memory",
                "parts being uploaded",
            ),
            (
                "upload = { concurrency = 0 }",
                "upload.concurrency",
                "must be between",
            ),
            (
                "retry = { initial = \"10s\", max = \"1s\" }",
                "retry.max",
                "shorter",
            ),
            (
                "endpoint = \"http://127.0.0.1:9000/archive\"",
                "endpoint",
                "no path",
            ),
            ("endpoint = \"ftp://host\"", "endpoint", "https://"),
            (
                "format = \"csv\"",
                "columns",
                "required for format = \"csv\"",
            ),
            (
                "columns = [\"a\"]",
                "columns",
                "only for format = \"csv\" or \"parquet\"",
            ),
            (
                "format = \"csv\"\ncolumns = [\"a\", { key = \"b\", name = \"a\" }]",
                "columns[1]",
                "used twice",
            ),
            (
                "format = \"csv\"\ncolumns = [\"a\"]\ncsv = { delimiter = \";;\" }",
                "csv.delimiter",
                "one ASCII character",
            ),
            (
                "format = \"csv\"\ncolumns = [\"a\"]\ncsv = { delimiter = \"\\n\" }",
                "csv.delimiter",
                "one ASCII character",
            ),
            (
                "format = \"csv\"\ncolumns = [\"a\"]\ncsv = { quote = \",\" }",
                "csv.delimiter",
                "differ",
            ),
            (
                "compression = \"lz4\"\ncompression_level = 3",
                "compression_level",
                "only for gzip and zstd",
            ),
        ] {
            let (got_key, got_reason) = refusal(extra);
            assert_eq!(got_key, key, "{extra}");
            assert!(got_reason.contains(reason), "{extra}: {got_reason}");
        }
        let mut config = parse("");
        config.bucket = "s3://archive".into();
        assert_eq!(config.validate().unwrap_err().key, "bucket");
        config.bucket = "Archive".into();
        assert_eq!(config.validate().unwrap_err().key, "bucket");
        config.bucket = "siem-archive-1250000000".into();
        assert_eq!(config.validate(), Ok(()));
        config.endpoint = None;
        let error = config.validate().unwrap_err();
        assert_eq!(
            (error.key.as_str(), error.reason.as_str()),
            ("endpoint", "required for provider = \"custom\"")
        );
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn parquet_takes_typed_columns_and_its_own_codecs() {
        let config = parse(
            "format = \"parquet\"\n\
             columns = [\"__topic__\", { key = \"__time__\", type = \"int64\" }, \
                        { key = \"ms\", name = \"latency\", type = \"double\" }]",
        );
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.compression().unwrap(), Compression::Snappy);
        let Format::Parquet(layout) = config.format("archive").unwrap() else {
            panic!("not parquet");
        };
        let columns: Vec<_> = layout
            .columns
            .iter()
            .map(|column| (column.key.as_str(), column.name.as_str(), column.kind))
            .collect();
        assert_eq!(
            columns,
            [
                ("__topic__", "__topic__", ColumnType::String),
                ("__time__", "__time__", ColumnType::Int64),
                ("ms", "latency", ColumnType::Double),
            ]
        );
        assert_eq!(layout.row_group_bytes, 16 << 20);
        assert_eq!(
            Compression::Snappy.extension(&Format::Parquet(layout.clone())),
            ".parquet"
        );
        assert_eq!(
            Compression::Gzip(6).content_type(&Format::Parquet(layout)),
            "application/vnd.apache.parquet"
        );
        let columns = "format = \"parquet\"\ncolumns = [\"a\"]\n";
        for (extra, key, reason) in [
            ("format = \"parquet\"", "columns", "required for format = \"parquet\""),
            (
                "format = \"parquet\"\ncolumns = [\"a\", { key = \"b\", type = \"int\" }]",
                "columns[1].type",
                "unknown type \"int\"; use string, boolean, int32, int64, float or double",
            ),
            (
                &format!("{columns}compression = \"snappy_framed\""),
                "compression",
                "\"snappy_framed\" is not available for format = \"parquet\"; use none, snappy, zstd or gzip (Parquet-internal codecs)",
            ),
            (
                &format!("{columns}compression = \"lz4\""),
                "compression",
                "\"lz4\" is not available",
            ),
            (
                &format!("{columns}parquet = {{ row_group_bytes = \"512KiB\" }}"),
                "parquet.row_group_bytes",
                "must be between",
            ),
            (
                &format!("{columns}compression = \"zstd\"\ncompression_level = 20"),
                "compression_level",
                "must be between 1 and 19",
            ),
        ] {
            let (got_key, got_reason) = refusal(extra);
            assert_eq!(got_key, key, "{extra}");
            assert!(got_reason.contains(reason), "{extra}: {got_reason}");
        }
        for (codec, expected) in [
            ("none", Compression::None),
            ("gzip", Compression::Gzip(6)),
            ("zstd", Compression::Zstd(3)),
        ] {
            let config = parse(&format!("{columns}compression = \"{codec}\""));
            assert_eq!(config.validate(), Ok(()));
            assert_eq!(config.compression().unwrap(), expected);
        }
    }

    #[cfg(not(feature = "parquet"))]
    #[test]
    fn without_the_parquet_feature_parquet_is_refused() {
        assert_eq!(
            refusal("format = \"parquet\"\ncolumns = [\"a\"]"),
            (
                "format".to_owned(),
                "this build has no Parquet support".to_owned()
            )
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<ObjectStorageSinkConfig>(
            "region = \"r\"\nbucket = \"b\"\nbuckett = \"c\"",
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("unknown field `buckett`"),
            "{error}"
        );
    }

    #[test]
    fn providers_derive_the_endpoint_from_the_region() {
        for (provider, expected) in [
            ("aws", "https://s3.eu-west-1.amazonaws.com/"),
            ("oss", "https://s3.oss-eu-west-1.aliyuncs.com/"),
            ("cos", "https://cos.eu-west-1.myqcloud.com/"),
            ("jdcloud", "https://s3.eu-west-1.jdcloud-oss.com/"),
        ] {
            let config: ObjectStorageSinkConfig = toml::from_str(&format!(
                "provider = \"{provider}\"\nregion = \"eu-west-1\"\nbucket = \"archive\""
            ))
            .unwrap();
            assert_eq!(config.endpoint_url().unwrap().as_str(), expected);
        }
    }

    /// The URL every request of `config`'s bucket starts with.
    fn bucket_endpoint(extra: &str) -> String {
        let keys = "access_key_id = \"id\"\nsecret_access_key = \"secret\"\n";
        let sink = parse(&format!("{keys}{extra}"))
            .build("archive", &SinkContext::standalone(), |_| None)
            .unwrap();
        let debug = format!("{:?}", sink.uploader.store);
        let plain = extra.is_empty() || extra.contains("http://");
        assert!(
            debug.contains(&format!("allow_http: Parsed({plain})")),
            "{extra}: plain http only for http:// endpoints"
        );
        let start = debug.find("bucket_endpoint: \"").unwrap() + "bucket_endpoint: \"".len();
        debug[start..].split('"').next().unwrap().to_owned()
    }

    #[test]
    fn addressing_is_path_style_for_ip_and_localhost_and_virtual_hosted_otherwise() {
        for (extra, expected) in [
            ("", "http://127.0.0.1:9000/archive"),
            (
                "endpoint = \"http://localhost:9000\"",
                "http://localhost:9000/archive",
            ),
            (
                "endpoint = \"http://[::1]:9000\"",
                "http://[::1]:9000/archive",
            ),
            (
                "endpoint = \"https://oss.example.com\"",
                "https://archive.oss.example.com",
            ),
            (
                "provider = \"oss\"\nregion = \"cn-hangzhou\"",
                "https://archive.s3.oss-cn-hangzhou.aliyuncs.com",
            ),
            (
                "endpoint = \"http://localhost:9000\"\naddressing_style = \"virtual_hosted\"",
                "http://archive.localhost:9000",
            ),
            (
                "endpoint = \"https://minio.example.com\"\naddressing_style = \"path\"",
                "https://minio.example.com/archive",
            ),
        ] {
            assert_eq!(bucket_endpoint(extra), expected, "{extra}");
        }
    }

    #[test]
    fn credentials_come_from_the_settings_or_the_environment_and_never_show() {
        let missing = parse("")
            .build("archive", &SinkContext::standalone(), |_| None)
            .unwrap_err();
        assert!(missing.to_string().contains("access_key_id"), "{missing}");
        let env = |key: &str| match key {
            "AWS_ACCESS_KEY_ID" => Some("env-id".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("env-secret-value".to_owned()),
            _ => None,
        };
        let sink = parse("")
            .build("archive", &SinkContext::standalone(), env)
            .unwrap();
        let debug = format!("{sink:?}");
        assert!(!debug.contains("env-secret-value"), "{debug}");
        let config = parse("secret_access_key = \"config-secret-value\"");
        assert!(!format!("{config:?}").contains("config-secret-value"));
    }

    #[test]
    fn the_prefix_names_the_project_and_consumer_group_and_the_limit_is_the_consumers() {
        let mut context = SinkContext::standalone();
        context.project = "prod-logs".into();
        context.consumer_group = "archive".into();
        context.max_inflight_batches = 1024;
        let sink = parse(
            "access_key_id = \"id\"\nsecret_access_key = \"secret\"\n\
             prefix = \"{project}/{consumer_group}/{logstore}/\"",
        )
        .build("archive", &context, |_| None)
        .unwrap();
        assert_eq!(sink.layout.keys.prefix, "prod-logs/archive/{logstore}/");
        assert_eq!(sink.layout.limits.max_batches, 1024);
    }
}
