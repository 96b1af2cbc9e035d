//! Files and names that must outlive a crash: written, renamed into place,
//! and their directory synced before the caller goes on.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Makes the names in a directory durable (`""` is the current directory).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir)?.sync_all()
}

/// The directory a path's name is in.
fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Replaces a file with `bytes`, whole or not at all: written beside it,
/// synced, renamed over it, and the rename synced.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)?;
    sync_dir(parent(path))
}

/// Replaces a file with `bytes`, whole or not at all, but without syncing:
/// after a crash it may hold what it held before.
pub(crate) fn replace_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

/// Writes `bytes` beside `path` (synced if `sync`) and renames them over it.
fn replace(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let temporary = path.with_extension("new");
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    if sync {
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}

/// Removes a file, if it is there, and syncs its directory.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        removed => removed.and_then(|()| sync_dir(parent(path))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_removed_once_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!path.with_extension("new").exists(), "nothing left beside it");
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert!(!path.exists());
        sync_dir(Path::new("")).unwrap();
    }
}
