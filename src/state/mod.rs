//! State: `.consort/<network>/state.json`, guarded by `.consort/<network>/lock`.
//!
//! - The lock is a separate file held with `flock(LOCK_EX | LOCK_NB)`; the kernel drops it
//!   when the holder dies (even by kill -9), so a stale lock never blocks anyone. The file
//!   holds the holder's pid and command for the error message.
//! - Writes are atomic: temp file in the same directory, fsync, rename, fsync the directory.
//!   A crash leaves either the old or the new state, never a torn one.
//! - `serial` increases on every save; `lineage` is fixed at creation. A saved plan records
//!   both and refuses to apply once they moved on.

pub mod fsutil;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: state file is not valid ({reason}); it was left untouched — restore it from {path}.backup if present")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: state schema version {found} is newer than this consort understands ({SCHEMA_VERSION}); upgrade consort")]
    TooNew { path: PathBuf, found: u32 },
    #[error("network {network:?} is locked by another consort command ({holder}); wait for it to finish (lock file: {path})")]
    Locked {
        network: String,
        holder: String,
        path: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What consort knows about one resource it created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    pub kind: crate::plan::Kind,
    /// The desired attributes this resource was last applied with.
    pub attrs: serde_json::Value,
    /// What applying produced (pids, ports, addresses, file paths). Never a secret.
    #[serde(default)]
    pub outputs: serde_json::Value,
    /// Addresses this resource depended on when created (drives destroy order).
    #[serde(default)]
    pub deps: Vec<String>,
}

/// Genesis is fixed at the first apply and kept, so later members join the same chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenesisRecord {
    pub json: serde_json::Value,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub lineage: String,
    pub serial: u64,
    pub network: String,
    pub provider: String,
    #[serde(default)]
    pub genesis: Option<GenesisRecord>,
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceState>,
}

impl State {
    pub fn new(network: &str, provider: &str) -> State {
        State {
            version: SCHEMA_VERSION,
            lineage: uuid::Uuid::new_v4().to_string(),
            serial: 0,
            network: network.to_string(),
            provider: provider.to_string(),
            genesis: None,
            resources: BTreeMap::new(),
        }
    }

    pub fn output_str(&self, addr: &str, key: &str) -> Option<&str> {
        self.resources.get(addr)?.outputs.get(key)?.as_str()
    }
}

/// The state directory of one network: `<topology dir>/.consort/<network>/`.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
    pub network: String,
}

impl StateDir {
    pub fn new(base: &Path, network: &str) -> StateDir {
        StateDir {
            root: base.join(network),
            network: network.to_string(),
        }
    }
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }
    pub fn nodes_dir(&self) -> PathBuf {
        self.root.join("nodes")
    }

    /// Loads state without the lock (read-only commands: plan, status, output).
    pub fn load(&self) -> Result<Option<State>, StateError> {
        let path = self.state_file();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        #[derive(Deserialize)]
        struct Probe {
            version: u32,
        }
        let probe: Probe = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if probe.version > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path,
                found: probe.version,
            });
        }
        let state = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Some(state))
    }

    /// Saves atomically and bumps `serial`.
    pub fn save(&self, state: &mut State) -> Result<(), StateError> {
        state.serial += 1;
        let mut text = serde_json::to_vec_pretty(state).expect("state serialises");
        text.push(b'\n');
        fsutil::write_atomic(&self.state_file(), &text, 0o600).map_err(io_err(&self.state_file()))
    }

    /// Removes the state file (after a destroy that left nothing behind).
    pub fn remove_state(&self) -> Result<(), StateError> {
        let path = self.state_file();
        match fs::remove_file(&path) {
            Ok(()) => fsutil::fsync_dir(&self.root).map_err(io_err(&self.root)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Takes the network's lock or fails fast naming the holder.
    pub fn lock(&self, command: &str) -> Result<LockGuard, StateError> {
        fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        let path = self.lock_file();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StateError::Locked {
                    network: self.network.clone(),
                    holder: if holder.is_empty() {
                        "unknown holder".into()
                    } else {
                        holder.to_string()
                    },
                    path,
                });
            }
            return Err(io_err(&path)(err));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(
            file,
            "pid {} running `consort {command}`",
            std::process::id()
        );
        let _ = file.flush();
        Ok(LockGuard { _file: file })
    }
}

/// Holds the flock; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_roundtrip_bumps_serial() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path(), "net");
        assert!(sd.load().unwrap().is_none());
        let mut st = State::new("net", "local");
        sd.save(&mut st).unwrap();
        sd.save(&mut st).unwrap();
        let back = sd.load().unwrap().unwrap();
        assert_eq!(back.serial, 2);
        assert_eq!(back, st);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(sd.state_file()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn second_lock_fails_naming_holder_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path(), "net");
        let g = sd.lock("apply").unwrap();
        let err = sd.lock("plan").unwrap_err().to_string();
        assert!(err.contains("locked by another consort command"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("consort apply"), "{err}");
        drop(g);
        sd.lock("plan").unwrap();
    }

    #[test]
    fn corrupt_state_is_reported_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path(), "net");
        fs::create_dir_all(&sd.root).unwrap();
        fs::write(sd.state_file(), b"{ not json").unwrap();
        let err = sd.load().unwrap_err().to_string();
        assert!(err.contains("state file is not valid"), "{err}");
        assert_eq!(fs::read(sd.state_file()).unwrap(), b"{ not json");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path(), "net");
        fs::create_dir_all(&sd.root).unwrap();
        fs::write(sd.state_file(), br#"{"version": 99}"#).unwrap();
        let err = sd.load().unwrap_err().to_string();
        assert!(err.contains("newer than this consort"), "{err}");
    }
}
