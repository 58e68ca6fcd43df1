//! Wall-clock time as the log service stamps it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Current Unix time in seconds.
pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as u32)
        .unwrap_or(0)
}
