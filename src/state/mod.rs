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
mod kind;

pub use kind::{Action, Kind};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Said once: the OS error is part of this message, not a `source` an error chain
    /// (`{:#}`) would print again.
    #[error("{path}: {error}{}", io_hint(.error))]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: state file is not valid ({reason}); it was left untouched. {}", restore_hint(.backup.as_deref(), path))]
    Corrupt {
        path: PathBuf,
        reason: String,
        /// The newest backup (`backups/state-<serial>.json`), if any.
        backup: Option<PathBuf>,
    },
    #[error("{path}: state schema version {found} is newer than this consort understands ({SCHEMA_VERSION}); upgrade consort")]
    TooNew { path: PathBuf, found: u32 },
    #[error("network {network:?} is locked by another consort command ({holder}); wait for it to finish (lock file: {path})")]
    Locked {
        network: String,
        holder: String,
        path: PathBuf,
    },
}

fn restore_hint(backup: Option<&Path>, path: &Path) -> String {
    match backup {
        Some(b) => format!(
            "The newest backup is {}: restore it with `cp {} {}`, or rebuild state from the \
             files on disk with `consort state recover`",
            b.display(),
            b.display(),
            path.display()
        ),
        None => "There is no backup; rebuild state from the files on disk with \
                 `consort state recover`"
            .to_string(),
    }
}

/// How many saved states `backups/` keeps.
pub const BACKUPS_KEPT: usize = 10;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |error| StateError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What to do about an I/O error writing state, where the OS message alone does not say.
fn io_hint(e: &std::io::Error) -> &'static str {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        " — the disk is full: free space on it and run the command again (what was done \
         and saved before is kept; key files this run wrote are picked up again)"
    } else {
        ""
    }
}

/// What consort knows about one resource it created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    pub kind: Kind,
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

/// File name of [`StateDir::joined_file`].
pub const JOINED_FILE: &str = "joined";

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
    /// The invitation this operator joined the network with (`consort join`), kept beside
    /// genesis.json so that `state recover` knows the genesis is another operator's.
    pub fn joined_file(&self) -> PathBuf {
        self.root.join(JOINED_FILE)
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
    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }
    /// Where keys of removed members and accounts are moved (only `destroy` deletes keys).
    pub fn archive_dir(&self) -> PathBuf {
        self.root.join("archive")
    }

    /// The backups in `backups/`, oldest first (by modification time, then serial: a new
    /// network after a destroy starts again at serial 1).
    pub fn backups(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.backups_dir()) else {
            return vec![];
        };
        let mut found: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let serial = name
                    .strip_prefix("state-")?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                let mtime = e.metadata().and_then(|m| m.modified()).ok()?;
                Some((mtime, serial, e.path()))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, _, p)| p).collect()
    }

    /// The newest backup, if any.
    pub fn newest_backup(&self) -> Option<PathBuf> {
        self.backups().pop()
    }

    /// Loads state without the lock (read-only commands: plan, status, output).
    pub fn load(&self) -> Result<Option<State>, StateError> {
        let path = self.state_file();
        let bytes = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        // Not text at all (random bytes, a binary written over it): as unreadable as
        // broken JSON, and the same way back.
        let text = String::from_utf8(bytes).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: format!(
                "it is not text: byte {} is not UTF-8",
                e.utf8_error().valid_up_to()
            ),
            backup: self.newest_backup(),
        })?;
        #[derive(Deserialize)]
        struct Probe {
            version: u32,
        }
        let corrupt = |e: serde_json::Error| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
            backup: self.newest_backup(),
        };
        let probe: Probe = serde_json::from_str(&text).map_err(corrupt)?;
        if probe.version > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path,
                found: probe.version,
            });
        }
        let mut state: State = serde_json::from_str(&text).map_err(corrupt)?;
        self.rebase_relative_paths(&mut state);
        if state.network != self.network {
            return Err(StateError::Corrupt {
                reason: format!(
                    "it belongs to network {:?}, not {:?}",
                    state.network, self.network
                ),
                path,
                backup: self.newest_backup(),
            });
        }
        Ok(Some(state))
    }

    /// Older consorts recorded paths relative to the directory a command ran in
    /// (`./.consort/<net>/keys/…`), which break from any other directory. Each relative
    /// path in the outputs that names a file under this state directory is made absolute.
    fn rebase_relative_paths(&self, state: &mut State) {
        if !self.root.is_absolute() {
            return;
        }
        for r in state.resources.values_mut() {
            let Some(outputs) = r.outputs.as_object_mut() else {
                continue;
            };
            for v in outputs.values_mut() {
                let Some(p) = v.as_str() else { continue };
                if p.starts_with('/') || p.contains("://") || !p.contains('/') {
                    continue;
                }
                let comps: Vec<_> = Path::new(p).components().collect();
                let rebased = (0..comps.len())
                    .rev()
                    .filter(|&i| comps[i].as_os_str() == self.network.as_str())
                    .map(|i| self.root.join(comps[i + 1..].iter().collect::<PathBuf>()))
                    .find(|c| c.exists());
                if let Some(c) = rebased {
                    *v = serde_json::Value::String(c.to_string_lossy().into_owned());
                }
            }
        }
    }

    /// Saves atomically and bumps `serial`; keeps a copy as `backups/state-<serial>.json`
    /// (0600) and prunes backups beyond the newest [`BACKUPS_KEPT`]. The backup is written
    /// first: once state.json says serial N, its backup exists too.
    pub fn save(&self, state: &mut State) -> Result<(), StateError> {
        state.serial += 1;
        let mut text = serde_json::to_vec_pretty(state).expect("state serialises");
        text.push(b'\n');
        let backups = self.backups_dir();
        let backup = backups.join(format!("state-{}.json", state.serial));
        fsutil::create_private_dir(&backups).map_err(io_err(&backups))?;
        fsutil::write_atomic(&backup, &text, 0o600).map_err(io_err(&backup))?;
        fsutil::write_atomic(&self.state_file(), &text, 0o600)
            .map_err(io_err(&self.state_file()))?;
        let all = self.backups();
        if all.len() > BACKUPS_KEPT {
            for old in &all[..all.len() - BACKUPS_KEPT] {
                if *old != backup {
                    let _ = fs::remove_file(old);
                }
            }
        }
        Ok(())
    }

    /// Removes temp files of state writes that a killed consort left behind
    /// (`.state.json.tmp.<pid>`). Only call with the lock held: no one else is writing.
    pub fn clean_temp_files(&self) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for dir in [self.root.clone(), self.backups_dir()] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if (name.starts_with(".state.json.tmp.") || name.starts_with(".state-"))
                    && name.contains(".tmp.")
                    && fs::remove_file(e.path()).is_ok()
                {
                    removed.push(e.path());
                }
            }
        }
        removed
    }

    /// Removes the state file and its backups (after a destroy that left nothing behind).
    pub fn remove_state(&self) -> Result<(), StateError> {
        let path = self.state_file();
        let backups = self.backups_dir();
        match fs::remove_dir_all(&backups) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&backups)(e)),
        }
        match fs::remove_file(&path) {
            Ok(()) => fsutil::fsync_dir(&self.root).map_err(io_err(&self.root)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Creates the state directory, ours alone (0700, never through a link): it holds keys,
    /// passwords and the nodes' IPC sockets, and another local user must not list, read
    /// or plant anything in it. The base (`.consort`) is made private too when consort
    /// creates it.
    pub fn create_root(&self) -> Result<(), StateError> {
        if let Some(base) = self.root.parent().filter(|b| !b.as_os_str().is_empty()) {
            if fs::symlink_metadata(base).is_err() {
                fsutil::create_private_dir(base).map_err(io_err(base))?;
            }
        }
        fsutil::create_private_dir(&self.root).map_err(io_err(&self.root))
    }

    /// Takes the network's lock or fails fast naming the holder.
    /// Who holds the lock now, as it wrote itself in ("pid N running `consort apply`");
    /// None when nobody does.
    pub fn lock_holder(&self) -> Option<String> {
        let file = File::open(self.lock_file()).ok()?;
        // SAFETY: flock on a file descriptor we own; closing it releases a lock we got.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        if rc == 0 {
            return None;
        }
        let mut holder = String::new();
        let _ = (&file).read_to_string(&mut holder);
        let holder = holder.trim();
        Some(if holder.is_empty() {
            "another consort command".into()
        } else {
            holder.to_string()
        })
    }

    pub fn lock(&self, command: &str) -> Result<LockGuard, StateError> {
        self.create_root()?;
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
        self.clean_temp_files();
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
    fn saves_keep_the_last_ten_backups_0600_and_corrupt_state_names_the_newest() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path(), "net");
        let mut st = State::new("net", "local");
        for _ in 0..13 {
            sd.save(&mut st).unwrap();
        }
        let names: Vec<String> = sd
            .backups()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let want: Vec<String> = (4..=13).map(|i| format!("state-{i}.json")).collect();
        assert_eq!(names, want);
        for b in sd.backups() {
            let mode = fs::metadata(&b).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", b.display());
        }
        // The newest backup is the current state.
        let newest = sd.newest_backup().unwrap();
        assert_eq!(
            fs::read(&newest).unwrap(),
            fs::read(sd.state_file()).unwrap()
        );
        fs::write(sd.state_file(), b"{ torn").unwrap();
        let err = sd.load().unwrap_err().to_string();
        assert!(err.contains(&newest.display().to_string()), "{err}");
        assert!(err.contains("consort state recover"), "{err}");
        // Restoring it as the error says gives back the state.
        fs::copy(&newest, sd.state_file()).unwrap();
        assert_eq!(sd.load().unwrap().unwrap(), st);
        // A destroy that left nothing removes the backups with the state.
        sd.remove_state().unwrap();
        assert!(!sd.backups_dir().exists());
    }

    #[test]
    fn relative_paths_of_older_states_resolve_against_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path(), "net");
        let key = sd.root.join("keys/accounts/m/a/key");
        fs::create_dir_all(key.parent().unwrap()).unwrap();
        fs::write(&key, b"k").unwrap();
        let mut st = State::new("net", "local");
        st.resources.insert(
            "account.m.a".into(),
            ResourceState {
                kind: Kind::Account,
                attrs: serde_json::json!({}),
                outputs: serde_json::json!({
                    "key_file": "./.consort/net/keys/accounts/m/a/key",
                    "rpc_url": "http://127.0.0.1:1/x",
                    "address": "0xab",
                }),
                deps: vec![],
            },
        );
        sd.save(&mut st).unwrap();
        let back = sd.load().unwrap().unwrap();
        let o = &back.resources["account.m.a"].outputs;
        assert_eq!(o["key_file"], key.to_string_lossy().as_ref());
        assert_eq!(o["rpc_url"], "http://127.0.0.1:1/x");
        assert_eq!(o["address"], "0xab");
    }

    #[test]
    fn state_of_another_network_is_refused_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path(), "net");
        let mut other = State::new("other", "local");
        sd.save(&mut other).unwrap();
        let err = sd.load().unwrap_err().to_string();
        assert!(err.contains("belongs to network \"other\""), "{err}");
    }

    #[test]
    fn leftover_temp_files_of_a_killed_write_are_cleaned_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path(), "net");
        fs::create_dir_all(sd.backups_dir()).unwrap();
        let tmp = sd.root.join(".state.json.tmp.999999");
        let btmp = sd.backups_dir().join(".state-3.json.tmp.999999");
        fs::write(&tmp, b"{").unwrap();
        fs::write(&btmp, b"{").unwrap();
        let keep = sd.root.join("genesis.json");
        fs::write(&keep, b"{}").unwrap();
        let _g = sd.lock("apply").unwrap();
        assert!(!tmp.exists() && !btmp.exists());
        assert!(keep.exists());
    }

    #[test]
    fn the_lock_names_the_command_holding_it() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path(), "net");
        assert_eq!(sd.lock_holder(), None);
        let g = sd.lock("member add").unwrap();
        let holder = sd.lock_holder().unwrap();
        assert_eq!(
            holder,
            format!("pid {} running `consort member add`", std::process::id())
        );
        let refused = sd.lock("apply").unwrap_err().to_string();
        assert!(refused.contains("`consort member add`"), "{refused}");
        drop(g);
        assert_eq!(sd.lock_holder(), None);
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
