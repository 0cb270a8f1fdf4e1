//! File helpers shared by state and providers: atomic writes and secret files.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `data` to `path` atomically with the given mode: a temp file in the same
/// directory (created with `mode`, so a secret is never briefly world-readable), fsync,
/// rename over the target, fsync the directory.
///
/// The temp file has a random name and is created exclusively without following a link
/// (`O_CREAT | O_EXCL | O_NOFOLLOW`): where others can write to the directory (`-o /tmp/…`)
/// they can neither guess it nor have it point at a file of theirs or ours.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (tmp, mut f) = create_temp(dir, &name, mode)?;
    let result = (|| {
        // `mode` is filtered by the umask on create; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `<dir>/.<name>.tmp.<random>` exclusively (never an existing file, never through
/// a link), retrying on the unlikely name clash.
fn create_temp(dir: &Path, name: &str, mode: u32) -> std::io::Result<(PathBuf, File)> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut last = None;
    for _ in 0..16 {
        let suffix: u64 = rng.gen();
        let tmp = dir.join(format!(".{name}.tmp.{suffix:016x}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("the loop ran"))
}

/// Writes a secret (private key, password, keystore): mode 0600, atomically.
pub fn write_secret(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_atomic(path, data, 0o600)
}

pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a directory (and parents) and makes it ours alone (0700), never through a link:
/// the directory itself is created with mode 0700 (not a link: `mkdir` does not follow
/// one), opened with `O_NOFOLLOW | O_DIRECTORY` and checked and chmod-ed through that
/// handle, so a link or another user's directory planted at `dir` is refused and whatever
/// it points at is left alone. (Parents are ordinary directories, created as needed.)
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    use std::os::unix::io::AsRawFd;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let refuse = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is {what}, not a private directory of ours; consort never follows a link or takes over another user's directory there: remove it and rerun",
                dir.display()
            ),
        )
    };
    let meta = fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Err(refuse("a symbolic link"));
    }
    let handle = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
    {
        Ok(h) => h,
        // Swapped for a link (ELOOP) or a file (ENOTDIR) since the check above.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
            return Err(refuse("a link or not a directory"))
        }
        Err(e) => return Err(e),
    };
    let meta = handle.metadata()?;
    if !meta.is_dir() {
        return Err(refuse("not a directory"));
    }
    // SAFETY: geteuid has no preconditions.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err(refuse(&format!("owned by uid {}", meta.uid())));
    }
    if meta.mode() & 0o7777 != 0o700 {
        // SAFETY: fchmod on a descriptor we own.
        if unsafe { libc::fchmod(handle.as_raw_fd(), 0o700) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_file_name_writes_in_the_current_dir() {
        let dir = tempfile::tempdir().unwrap();
        let prev = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        let r = write_atomic(Path::new("plain.txt"), b"x", 0o644);
        std::env::set_current_dir(prev).unwrap();
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("plain.txt")).unwrap(), b"x");
    }

    #[test]
    fn secret_files_are_0600_and_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/secret");
        write_secret(&p, b"one").unwrap();
        write_secret(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    /// Issue 20 item 10: the temp name was `.<name>.tmp.<pid>`, opened with
    /// create+truncate, so a link planted under that name made write_atomic write through
    /// it. Now the name is random and created exclusively: the plant is left alone.
    #[test]
    fn a_planted_temp_name_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let target = dir.path().join("out.json");
        let planted = dir
            .path()
            .join(format!(".out.json.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_atomic(&target, b"secret", 0o600).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(&target).unwrap(), b"secret");
        assert!(!fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(fs::symlink_metadata(&planted)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn temp_files_are_created_exclusively_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, _f) = create_temp(dir.path(), "x", 0o600).unwrap();
        // Same name again: refused, not truncated.
        let again = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp);
        assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
        let (tmp2, _f2) = create_temp(dir.path(), "x", 0o600).unwrap();
        assert_ne!(tmp, tmp2, "names are random");
    }

    /// Issue 20 item 8: create_private_dir chmod-ed through a planted link (so another user
    /// could lock everyone out of e.g. /etc). Now the link is refused and its target keeps
    /// its mode.
    #[test]
    fn a_link_planted_at_a_private_dir_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        let planted = dir.path().join("consort-0");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let err = create_private_dir(&planted).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(
            err.to_string().contains(&planted.display().to_string()),
            "{err}"
        );
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o755
        );
        // A file there is refused too; a real directory is made 0700.
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(create_private_dir(&file).is_err());
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        create_private_dir(&open).unwrap();
        assert_eq!(
            fs::metadata(&open).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        let new = dir.path().join("a/b/new");
        create_private_dir(&new).unwrap();
        assert_eq!(
            fs::metadata(&new).unwrap().permissions().mode() & 0o7777,
            0o700
        );
    }
}
