//! The record of the temporary files a receiver leaves in target folders, so that a daemon that
//! was killed cleans them up at its next start.
//!
//! A receiver writes into `.wormhole-*.part` in the target folder (a file, or a folder while a
//! zip is unpacked) and renames it into place at the end; on failure it removes it. A daemon
//! that is killed (SIGKILL, power loss) can do neither, and nothing else would ever find the
//! file. So each temporary path is recorded in the journal folder (one small file per path, in
//! the daemon's state folder, 0700) as soon as it exists, and the record is removed once the
//! path is renamed or removed ([`PartRecord`] does it when dropped). [`PartJournal::sweep`], run
//! at start and after a clean stop, removes every recorded path and its record. It removes only
//! names of the receiver's own pattern, so a damaged record cannot make it delete anything else.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The prefix of a receiver's temporary names.
pub(crate) const PART_PREFIX: &str = ".wormhole-";
/// The suffix of a receiver's temporary names.
pub(crate) const PART_SUFFIX: &str = ".part";

/// The journal folder and what it does.
#[derive(Debug, Clone)]
pub(crate) struct PartJournal {
    folder: PathBuf,
}

/// One recorded temporary path; dropping it removes the record (not the path).
#[derive(Debug)]
pub(crate) struct PartRecord {
    record: Option<PathBuf>,
}

impl Drop for PartRecord {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            if let Err(e) = fs::remove_file(&record) {
                tracing::debug!("removing {}: {e}", record.display());
            }
        }
    }
}

/// Whether `path`'s last component has the receiver's temporary pattern.
fn is_part_name(path: &Path) -> bool {
    path.file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|name| {
            name.len() > PART_PREFIX.len() + PART_SUFFIX.len()
                && name.starts_with(PART_PREFIX)
                && name.ends_with(PART_SUFFIX)
        })
}

impl PartJournal {
    /// A journal kept in `folder` (created when the first path is recorded).
    pub(crate) fn new(folder: PathBuf) -> Self {
        Self { folder }
    }

    /// Records `part` (an absolute path of the receiver's pattern). A journal that cannot be
    /// written is logged and the transfer goes on: only the cleanup after a crash is lost.
    pub(crate) fn record(&self, part: &Path) -> PartRecord {
        match self.try_record(part) {
            Ok(record) => PartRecord {
                record: Some(record),
            },
            Err(e) => {
                tracing::warn!(
                    "cannot record {} in {}: {e}; it stays behind if the daemon is killed",
                    part.display(),
                    self.folder.display()
                );
                PartRecord { record: None }
            }
        }
    }

    fn try_record(&self, part: &Path) -> io::Result<PathBuf> {
        if !part.is_absolute() || !is_part_name(part) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a receiver's temporary path",
            ));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.folder)?;
        let mut record = tempfile::Builder::new()
            .prefix("part-")
            .tempfile_in(&self.folder)?;
        record.write_all(part.as_os_str().as_bytes())?;
        record.as_file().sync_all()?;
        let (_, path) = record.keep().map_err(|e| e.error)?;
        Ok(path)
    }

    /// Removes every recorded temporary path that is still there, and the records; returns how
    /// many paths were removed.
    pub(crate) fn sweep(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.folder) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let record = entry.path();
            if let Ok(bytes) = fs::read(&record) {
                let part = PathBuf::from(OsStr::from_bytes(&bytes));
                if part.is_absolute() && is_part_name(&part) && remove_part(&part) {
                    tracing::info!("removed {} left by an earlier wormholed", part.display());
                    removed += 1;
                }
            }
            if let Err(e) = fs::remove_file(&record) {
                tracing::debug!("removing {}: {e}", record.display());
            }
        }
        removed
    }
}

/// Removes a temporary file or folder; `false` when it was not there.
fn remove_part(part: &Path) -> bool {
    match fs::symlink_metadata(part) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(part).is_ok(),
        Ok(_) => fs::remove_file(part).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("part-files-test-")
            .tempdir()
            .expect("a temporary folder")
    }

    #[test]
    fn a_sweep_removes_recorded_parts_left_behind_and_nothing_else() {
        let dir = folder();
        let journal = PartJournal::new(dir.path().join("state/parts"));
        let target = dir.path().join("target");
        fs::create_dir(&target).expect("mkdir");
        let file = target.join(".wormhole-abc.part");
        let staging = target.join(".wormhole-def.part");
        fs::write(&file, b"half a file").expect("write");
        fs::create_dir_all(staging.join("sub")).expect("mkdir");
        fs::write(staging.join("sub/x"), b"x").expect("write");
        // As a killed daemon leaves them: recorded, never renamed or removed.
        std::mem::forget(journal.record(&file));
        std::mem::forget(journal.record(&staging));
        // A finished transfer's record is gone with it.
        let done = target.join(".wormhole-done.part");
        drop(journal.record(&done));
        // A damaged record naming something else is removed, the thing it names is not.
        let keep = target.join("keep.txt");
        fs::write(&keep, b"mine").expect("write");
        fs::write(
            dir.path().join("state/parts/part-bad"),
            keep.as_os_str().as_bytes(),
        )
        .expect("write");
        assert_eq!(journal.sweep(), 2);
        assert!(!file.exists() && !staging.exists());
        assert!(keep.exists());
        assert_eq!(
            fs::read_dir(dir.path().join("state/parts"))
                .expect("list")
                .count(),
            0,
            "every record is gone"
        );
        assert_eq!(journal.sweep(), 0);
    }

    #[test]
    fn only_the_receivers_names_are_recorded() {
        let dir = folder();
        let journal = PartJournal::new(dir.path().join("parts"));
        for path in [
            "/etc/passwd",
            "relative/.wormhole-x.part",
            "/tmp/.wormhole-.part",
        ] {
            let record = journal.record(Path::new(path));
            assert!(record.record.is_none(), "{path}");
        }
    }
}
