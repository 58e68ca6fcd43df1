//! This process's consumer name in the group. Configured (`consumer.name`), or by default
//! `{group}-{hostname}-{slot}`: the slot is the lowest number whose lock file
//! (`siem-forwarder-{group}-{slot}.lock`) this process holds exclusively (`flock`) in the
//! host's lock directory, `/run/lock`, else in `$RUNTIME_DIRECTORY` (systemd's
//! `RuntimeDirectory=`). A restart on the same host finds its slot free again and gets the
//! same name, so the log service can hand its shards back at its first heartbeats instead of
//! after the group timeout; two processes sharing the lock directory never share a name. Without a usable
//! lock directory the name is `{group}-{hostname}-pid{pid}`, which changes at every restart,
//! and a warning says so.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::config::ConsumerConfig;

/// The host-wide lock directory (FHS).
const HOST_LOCK_DIR: &str = "/run/lock";

/// Slots tried before falling back to a PID-based name.
const MAX_SLOTS: u32 = 64;

/// A consumer name, and the lock that keeps a default name this process's own.
#[derive(Debug)]
pub struct ConsumerName {
    name: String,
    /// Held until the process ends (the kernel releases it with the process).
    _slot: Option<File>,
}

impl ConsumerName {
    /// The configured name, else the default (see the module documentation).
    pub fn resolve(config: &ConsumerConfig) -> Self {
        if let Some(name) = &config.name {
            return Self {
                name: name.clone(),
                _slot: None,
            };
        }
        let mut dirs = vec![PathBuf::from(HOST_LOCK_DIR)];
        if let Some(runtime) = std::env::var_os("RUNTIME_DIRECTORY") {
            // systemd lists several directories separated by `:`; the first is this unit's.
            let first = runtime
                .to_string_lossy()
                .split(':')
                .next()
                .map(PathBuf::from);
            dirs.extend(first.filter(|dir| dir.is_absolute()));
        }
        Self::default_in(&config.group, &hostname(), &dirs)
    }

    /// The default name: a slot in the first directory of `dirs` where lock files can be
    /// created, else the PID-based name.
    fn default_in(group: &str, host: &str, dirs: &[PathBuf]) -> Self {
        let mut reasons = Vec::new();
        for dir in dirs {
            match claim_slot(dir, group) {
                Ok(Some((slot, file))) => {
                    return Self {
                        name: format!("{group}-{host}-{slot}"),
                        _slot: Some(file),
                    }
                }
                Ok(None) => reasons.push(format!("{}: all {MAX_SLOTS} slots taken", dir.display())),
                Err(error) => reasons.push(format!("{}: {error}", dir.display())),
            }
        }
        let name = format!("{group}-{host}-pid{}", std::process::id());
        tracing::warn!(consumer = %name, reasons = ?reasons, "no lock directory for a stable consumer name; using a name with the process id, which changes at every restart (set consumer.name for a stable one)");
        Self { name, _slot: None }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

/// Locks the lowest free slot of `group` in `dir`: `None` when all are taken.
fn claim_slot(dir: &Path, group: &str) -> io::Result<Option<(u32, File)>> {
    let mut last_error = None;
    for slot in 0..MAX_SLOTS {
        let path = dir.join(format!("siem-forwarder-{group}-{slot}.lock"));
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
        {
            Ok(file) => file,
            // Another user's lock file (sticky /run/lock): that slot is not ours.
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied && path.exists() => {
                continue
            }
            Err(error) => {
                last_error = Some(error);
                break;
            }
        };
        // SAFETY: flock only reads the descriptor, which `file` keeps open.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked == 0 {
            return Ok(Some((slot, file)));
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::WouldBlock {
            return Err(error);
        }
    }
    last_error.map_or(Ok(None), Err)
}

/// This host's name (`localhost` when unknown).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_sharing_a_lock_directory_get_the_lowest_free_slot_and_keep_it_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_owned()];
        let first = ConsumerName::default_in("g", "host", &dirs);
        let second = ConsumerName::default_in("g", "host", &dirs);
        assert_eq!((first.as_str(), second.as_str()), ("g-host-0", "g-host-1"));
        let other_group = ConsumerName::default_in("h", "host", &dirs);
        assert_eq!(other_group.as_str(), "h-host-0");
        drop(first);
        let restarted = ConsumerName::default_in("g", "host", &dirs);
        assert_eq!(
            restarted.as_str(),
            "g-host-0",
            "the freed slot, the same name"
        );
    }

    #[test]
    fn without_a_usable_lock_directory_the_name_carries_the_process_id() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let usable = dir.path().to_owned();
        let fallback = ConsumerName::default_in("g", "host", std::slice::from_ref(&missing));
        assert_eq!(
            fallback.as_str(),
            format!("g-host-pid{}", std::process::id())
        );
        let second_choice = ConsumerName::default_in("g", "host", &[missing, usable]);
        assert_eq!(second_choice.as_str(), "g-host-0");
    }

    #[test]
    fn a_configured_name_wins() {
        let mut config = ConsumerConfig::new("g");
        config.name = Some("pod-7".into());
        assert_eq!(ConsumerName::resolve(&config).as_str(), "pod-7");
    }
}
