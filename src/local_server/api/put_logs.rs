//! PutLogs: `POST /logstores/{logstore}/shards/lb`, `.../shards/route?key=`,
//! `.../shards/{shard}` (and `POST /logstores/{logstore}`, load-balanced).

use super::{empty_reply, invalid, Call, HandlerResult};
use crate::local_server::state::{blocking, Failure};
use crate::local_server::LocalServer;
use crate::source::compression::Compression;
use crate::source::{protobuf, ApiErrorCode};

/// A compressed PutLogs body may declare an uncompressed size of up to this many times the
/// body limit.
const RAW_SIZE_LIMIT_FACTOR: usize = 4;

/// The shard a PutLogs writes to.
pub(crate) enum ShardChoice {
    /// The next writable shard, round robin.
    Balanced,
    /// The writable shard whose hash range holds the key.
    HashKey(String),
    /// This shard, when writable.
    Shard(u32),
}

impl LocalServer {
    /// PutLogs: stores the body's log group (decompressed, checked to hold a log) in the
    /// chosen shard, answering once it is on disk.
    pub(crate) async fn put_logs(
        &self,
        call: &Call,
        logstore: &str,
        choice: ShardChoice,
    ) -> HandlerResult {
        let logstore = self.logstore(call, logstore)?;
        let shard = match choice {
            ShardChoice::Balanced => logstore.shard_for_write(None)?,
            ShardChoice::HashKey(key) => logstore.shard_for_write(Some(&key))?,
            ShardChoice::Shard(id) => logstore.writable_shard(id)?,
        };
        let compression = Compression::from_header(call.header("x-log-compresstype"))
            .map_err(|error| Failure::new(ApiErrorCode::InvalidCompressType, error.to_string()))?;
        let raw_size = match compression {
            Compression::None => call.body.len(),
            _ => declared_raw_size(
                call.header("x-log-bodyrawsize"),
                compression,
                call.body.len(),
                self.config
                    .max_body_bytes
                    .saturating_mul(RAW_SIZE_LIMIT_FACTOR),
            )?,
        };
        let body = call.body.clone();
        blocking(move || {
            let raw = compression
                .decompress(&body, raw_size)
                .map_err(|error| Failure::new(ApiErrorCode::PostBodyInvalid, error.to_string()))?;
            let logs = protobuf::count_logs_in_group(&raw)
                .map_err(|error| Failure::new(ApiErrorCode::PostBodyInvalid, error.to_string()))?;
            if logs == 0 {
                return Err(Failure::new(
                    ApiErrorCode::PostBodyInvalid,
                    "log group holds no log",
                ));
            }
            shard.append(&raw)?;
            Ok(empty_reply())
        })
        .await
    }
}

/// The uncompressed size a compressed body declares in `x-log-bodyrawsize`, refused when
/// above `limit` or above what `body_len` bytes can expand to, because the decompressor
/// allocates the declared size up front.
fn declared_raw_size(
    header: &str,
    compression: Compression,
    body_len: usize,
    limit: usize,
) -> Result<usize, Failure> {
    let size: usize = header
        .trim()
        .parse()
        .map_err(|_| invalid("x-log-bodyrawsize is required with x-log-compresstype"))?;
    if size > limit {
        return Err(invalid(format!(
            "x-log-bodyrawsize {size} exceeds the limit of {limit} bytes"
        )));
    }
    compression
        .check_raw_size(size, body_len)
        .map_err(|error| invalid(format!("x-log-bodyrawsize: {error}")))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_raw_sizes_are_bounded_by_the_limit_and_the_body() {
        let limit = 1 << 20;
        assert_eq!(
            declared_raw_size("1000", Compression::Lz4, 100, limit),
            Ok(1000)
        );
        for (header, body_len) in [
            ("18446744073709551615", 100),
            ("1048577", 1 << 20),
            ("25501", 100),
            ("", 100),
            ("-1", 100),
        ] {
            let failure =
                declared_raw_size(header, Compression::Lz4, body_len, limit).expect_err(header);
            assert_eq!(failure.code, ApiErrorCode::ParameterInvalid, "{header}");
        }
        assert_eq!(
            declared_raw_size("3276800", Compression::Zstd, 100, 4 << 20),
            Ok(3_276_800)
        );
    }
}
