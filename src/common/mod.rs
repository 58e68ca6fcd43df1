//! Building blocks every other module may use: shutdown signalling, retry backoff, loopback hosts, redacted secrets, the Unix clock and rustls client setup. This
//! module depends on nothing else in the crate.

pub mod backoff;
pub mod host;
pub mod secret;
pub mod shutdown;
pub mod time;
pub mod tls;
pub mod units;

pub use backoff::Backoff;
pub use secret::Secret;
