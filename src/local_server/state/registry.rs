//! The projects of the data directory (one subdirectory each) and their logstores (one
//! subdirectory of the project each), and the rule for their names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::logstore::Logstore;
use super::Failure;
use crate::local_server::store::{self, StoreError};
use crate::source::ApiErrorCode;

/// A project and its logstores.
#[derive(Debug)]
pub struct Project {
    dir: PathBuf,
    logstores: RwLock<BTreeMap<String, Arc<Logstore>>>,
}

impl Project {
    /// The logstore called `name`.
    ///
    /// # Errors
    ///
    /// `LogStoreNotExist`.
    pub fn logstore(&self, name: &str) -> Result<Arc<Logstore>, Failure> {
        self.logstores
            .read()
            .expect("logstores lock")
            .get(name)
            .cloned()
            .ok_or_else(|| {
                Failure::new(
                    ApiErrorCode::LogStoreNotExist,
                    format!("logstore {name} does not exist"),
                )
            })
    }

    /// Creates a logstore with `shards` shards; an existing one is kept as it is.
    ///
    /// # Errors
    ///
    /// A storage failure or an invalid name.
    /// Fails with [`StoreError::InvalidName`] unless [`valid_name`] accepts `name`, so a
    /// name never reaches the filesystem as a path.
    pub fn ensure_logstore(&self, name: &str, shards: u32) -> Result<Arc<Logstore>, StoreError> {
        check_name("logstore", name)?;
        let mut logstores = self.logstores.write().expect("logstores lock");
        if let Some(existing) = logstores.get(name) {
            return Ok(existing.clone());
        }
        let logstore = Arc::new(Logstore::open(self.dir.join(name), shards)?);
        logstores.insert(name.to_owned(), logstore.clone());
        Ok(logstore)
    }

    /// Logstore names.
    pub fn logstore_names(&self) -> Vec<String> {
        self.logstores
            .read()
            .expect("logstores lock")
            .keys()
            .cloned()
            .collect()
    }
}

/// Every project of the server, backed by the data directory.
#[derive(Debug)]
pub struct Projects {
    dir: PathBuf,
    projects: RwLock<BTreeMap<String, Arc<Project>>>,
}

impl Projects {
    /// Opens the data directory and every project and logstore in it.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(store::io_error(dir))?;
        let projects = Self {
            dir: dir.to_owned(),
            projects: RwLock::new(BTreeMap::new()),
        };
        for project_entry in list_dirs(dir)? {
            let project = projects.ensure_project(&project_entry)?;
            for logstore in list_dirs(&dir.join(&project_entry))? {
                project.ensure_logstore(&logstore, 1)?;
            }
        }
        Ok(projects)
    }

    /// The project called `name`.
    ///
    /// # Errors
    ///
    /// `ProjectNotExist`.
    pub fn project(&self, name: &str) -> Result<Arc<Project>, Failure> {
        self.projects
            .read()
            .expect("projects lock")
            .get(name)
            .cloned()
            .ok_or_else(|| {
                Failure::new(
                    ApiErrorCode::ProjectNotExist,
                    format!("project {name} does not exist"),
                )
            })
    }

    /// Creates a project; an existing one is kept.
    ///
    /// # Errors
    ///
    /// A storage failure, or [`StoreError::InvalidName`] unless [`valid_name`] accepts
    /// `name`, so a name never reaches the filesystem as a path.
    pub fn ensure_project(&self, name: &str) -> Result<Arc<Project>, StoreError> {
        check_name("project", name)?;
        let mut projects = self.projects.write().expect("projects lock");
        if let Some(existing) = projects.get(name) {
            return Ok(existing.clone());
        }
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).map_err(store::io_error(&dir))?;
        let project = Arc::new(Project {
            dir,
            logstores: RwLock::new(BTreeMap::new()),
        });
        projects.insert(name.to_owned(), project.clone());
        Ok(project)
    }
}

/// The subdirectories of `dir` with a valid name; others (`lost+found`, a stray directory)
/// are skipped with a warning.
fn list_dirs(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(store::io_error(dir))? {
        let entry = entry.map_err(store::io_error(dir))?;
        if entry.file_type().map_err(store::io_error(dir))?.is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if valid_name(&name) {
                names.push(name);
            } else {
                tracing::warn!(path = %entry.path().display(), "ignoring a directory that is not a valid project or logstore name");
            }
        }
    }
    names.sort();
    Ok(names)
}

fn check_name(kind: &'static str, name: &str) -> Result<(), StoreError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// Checks a project or logstore name: lowercase letters, digits, `-` and `_`, 2 to 63 chars.
/// The one rule for names from HTTP requests, the command line and configuration files;
/// such a name is a single, non-special path component.
pub fn valid_name(name: &str) -> bool {
    (2..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_plain_directory_names_never_reach_the_filesystem() {
        let root = tempfile::tempdir().unwrap();
        let projects = Projects::open(&root.path().join("data")).unwrap();
        for name in ["../x", "/abs", "a/b", "..", "x", "UPPER"] {
            assert!(
                matches!(
                    projects.ensure_project(name),
                    Err(StoreError::InvalidName {
                        kind: "project",
                        ..
                    })
                ),
                "{name}"
            );
        }
        let project = projects.ensure_project("demo").unwrap();
        for name in ["../x", "../../x", "/abs", "a/b"] {
            assert!(
                matches!(
                    project.ensure_logstore(name, 1),
                    Err(StoreError::InvalidName {
                        kind: "logstore",
                        ..
                    })
                ),
                "{name}"
            );
        }
        let mut created: Vec<_> = walk(root.path());
        created.sort();
        assert_eq!(created, ["data", "data/demo"]);
        let failure = Failure::from(project.ensure_logstore("../x", 1).unwrap_err());
        assert_eq!(failure.code, ApiErrorCode::ParameterInvalid);
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(next) = pending.pop() {
            for entry in std::fs::read_dir(&next).unwrap() {
                let path = entry.unwrap().path();
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
                if path.is_dir() {
                    pending.push(path);
                }
            }
        }
        found
    }

    #[test]
    fn stray_directories_with_invalid_names_are_skipped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lost+found")).unwrap();
        std::fs::create_dir_all(dir.path().join("demo/Not_Valid")).unwrap();
        std::fs::create_dir_all(dir.path().join("demo/audit")).unwrap();
        let projects = Projects::open(dir.path()).unwrap();
        assert!(projects.project("lost+found").is_err());
        let demo = projects.project("demo").unwrap();
        assert_eq!(demo.logstore_names(), ["audit"]);
    }
}
