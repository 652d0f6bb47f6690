//! Pure rules of file-transfer v1 data: offered names, zip entry names and modes, the transit ack.
//!
//! Nothing here touches the file system: the daemon asks these functions before it creates,
//! names or chmods anything. Mirrors the checks of `cli/cmd_receive.py` (`_decide_destname`,
//! `_extract_file`) and the zip layout of `cli/cmd_send.py` (zipstream-ng), made stricter where
//! the reference trusts the peer: we refuse rather than resolve.

use serde::{Deserialize, Serialize};

use super::{TransferError, ACK_OK};

/// `S_IFMT`: the file-type bits of a Unix mode.
const S_IFMT: u32 = 0o170_000;
/// `S_IFLNK`: a symbolic link.
const S_IFLNK: u32 = 0o120_000;
/// `S_IFDIR`: a directory.
const S_IFDIR: u32 = 0o040_000;
/// The MS-DOS directory attribute, set beside the Unix mode of a directory entry.
const MSDOS_DIRECTORY: u32 = 0x10;
/// The permission bits a received entry may keep: read, write and execute, never the setuid,
/// setgid or sticky bits.
const PERMISSION_BITS: u32 = 0o777;
/// The longest entry name we accept, in bytes.
const MAX_ENTRY_NAME: usize = 4096;

/// Why an offered name or a zip entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The offered name has no usable last component (empty, `.`, `..`, or a NUL byte).
    #[error("the offered name {0:?} is not a usable file name")]
    BadName(String),
    /// A zip entry's name is absolute.
    #[error("malicious zipfile: entry {0:?} is an absolute path")]
    Absolute(String),
    /// A zip entry's name climbs out of the target with `..`.
    #[error("malicious zipfile: entry {0:?} is outside of the target folder")]
    Escapes(String),
    /// A zip entry's name is empty, too long, or has a NUL byte or a backslash.
    #[error("malicious zipfile: entry {0:?} has an unusable name")]
    BadEntryName(String),
    /// A zip entry is a symbolic link.
    #[error("malicious zipfile: entry {0:?} is a symbolic link")]
    Symlink(String),
    /// Two entries name the same path, or a file and a folder collide.
    #[error("malicious zipfile: entry {0:?} appears twice")]
    Duplicate(String),
}

/// The last component of an offered name, as Python's `os.path.basename`, refusing names that
/// leave nothing usable. A hostile `../../.ssh/authorized_keys` becomes `authorized_keys`.
/// Control characters (C0, DEL, C1: an escape sequence, a newline) are rewritten to `_`
/// ([`printable_name`]), so that no received name can drive a terminal that lists it.
pub fn safe_basename(name: &str) -> Result<String, LayoutError> {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.is_empty() || base == "." || base == ".." || base.contains('\0') {
        return Err(LayoutError::BadName(name.to_owned()));
    }
    Ok(printable_name(base))
}

/// `name` with every control character (C0, DEL, C1) replaced by `_`: how a received name
/// with an escape sequence or a newline in it is written to disk.
pub fn printable_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect()
}

/// A checked zip entry: where it goes under the target folder, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPath {
    /// The path's components, each a plain name (no `.`, `..`, empty or separator). Empty for
    /// the target folder itself (an entry named `./`).
    pub components: Vec<String>,
    /// Whether the entry is a folder (its name ends in `/`, or its mode says so).
    pub is_dir: bool,
    /// Permission bits to apply (`0o777` at most: never setuid, setgid or sticky; the host
    /// also clears what its umask clears), when the entry carries Unix mode bits.
    pub mode: Option<u32>,
}

/// Checks one zip entry (`name` as stored, `external_attr` as stored): refuses absolute names,
/// `..` components, backslashes, NUL bytes and symbolic links. `.` and empty components (`a//b`)
/// are dropped; control characters in a component become `_` ([`printable_name`]), so two
/// entries can become one path: the host refuses the folder then ([`LayoutError::Duplicate`]).
pub fn check_entry(name: &str, external_attr: u32) -> Result<EntryPath, LayoutError> {
    if name.is_empty() || name.len() > MAX_ENTRY_NAME || name.contains(['\0', '\\']) {
        return Err(LayoutError::BadEntryName(name.to_owned()));
    }
    if name.starts_with('/') {
        return Err(LayoutError::Absolute(name.to_owned()));
    }
    // A Windows drive letter (`C:`) is absolute too on some readers.
    if name.as_bytes().get(1) == Some(&b':') {
        return Err(LayoutError::Absolute(name.to_owned()));
    }
    let unix = external_attr >> 16;
    if unix & S_IFMT == S_IFLNK {
        return Err(LayoutError::Symlink(name.to_owned()));
    }
    let mut components = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(LayoutError::Escapes(name.to_owned())),
            _ => components.push(printable_name(part)),
        }
    }
    let is_dir = name.ends_with('/')
        || unix & S_IFMT == S_IFDIR
        || (unix == 0 && external_attr & MSDOS_DIRECTORY != 0);
    let mode = (unix != 0).then_some(unix & PERMISSION_BITS);
    Ok(EntryPath {
        components,
        is_dir,
        mode,
    })
}

/// The fixed part of a zip central directory header, before its name, extra field and comment.
pub const CENTRAL_HEADER_LEN: usize = 46;
/// The signature a central directory header starts with.
const CENTRAL_HEADER_SIGNATURE: &[u8; 4] = b"PK\x01\x02";

/// The lengths of what follows the fixed part of a central directory header `fixed`: its name,
/// then its extra field and comment together. `None` when `fixed` is not a central directory
/// header (the end of the directory). A reader that keeps one entry per name (the `zip` crate)
/// hides a second entry of the same name; walking the headers with this finds it.
pub fn central_header_lengths(fixed: &[u8; CENTRAL_HEADER_LEN]) -> Option<(usize, usize)> {
    if &fixed[..4] != CENTRAL_HEADER_SIGNATURE {
        return None;
    }
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([fixed[at], fixed[at + 1]]));
    Some((u16_at(28), u16_at(30) + u16_at(32)))
}

/// The `external_attr` of an entry written from a file of Unix mode `st_mode`:
/// `(st_mode & 0xFFFF) << 16`, plus the MS-DOS directory bit for a folder (as zipstream-ng).
pub fn external_attr(st_mode: u32, is_dir: bool) -> u32 {
    ((st_mode & 0xFFFF) << 16) | if is_dir { MSDOS_DIRECTORY } else { 0 }
}

/// The name of a directory entry in the zip: relative components joined by `/`, with a trailing
/// `/` for folders. `None` for the top folder itself (it is never an entry).
pub fn entry_name(components: &[&str], is_dir: bool) -> Option<String> {
    if components.is_empty() {
        return None;
    }
    let mut name = components.join("/");
    if is_dir {
        name.push('/');
    }
    Some(name)
}

/// The counts of a directory offer, accumulated while walking the folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryCounts {
    /// Regular files only.
    pub numfiles: u64,
    /// Sum of the regular files' sizes.
    pub numbytes: u64,
}

impl DirectoryCounts {
    /// Counts one regular file of `size` bytes.
    pub fn add_file(&mut self, size: u64) {
        self.numfiles += 1;
        self.numbytes = self.numbytes.saturating_add(size);
    }
}

/// The record the receiver sends over Transit once it has every byte: `{"ack": "ok", "sha256"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitAck {
    /// [`ACK_OK`] when all went well.
    pub ack: String,
    /// Lower-case hex SHA-256 of the bytes received (optional for old receivers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The ack record for data whose SHA-256 is `sha256`.
pub fn ack_record(sha256: &[u8; 32]) -> Vec<u8> {
    let ack = TransitAck {
        ack: ACK_OK.to_owned(),
        sha256: Some(hex::encode(sha256)),
    };
    // Two strings: serialization cannot fail.
    serde_json::to_vec(&ack).unwrap_or_default()
}

/// Checks the receiver's ack `record` against the SHA-256 of what we sent, as `cmd_send.py`.
pub fn check_ack(record: &[u8], sent_sha256: &[u8; 32]) -> Result<(), TransferError> {
    let ack: TransitAck = serde_json::from_slice(record)
        .map_err(|e| TransferError::Malformed(format!("transit ack: {e}")))?;
    if ack.ack != ACK_OK {
        return Err(TransferError::AckNotOk(ack.ack));
    }
    match ack.sha256 {
        Some(hash) if !hash.eq_ignore_ascii_case(&hex::encode(sent_sha256)) => {
            Err(TransferError::BadHash)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basenames() {
        let ok = |name: &str| safe_basename(name).expect("a usable name");
        assert_eq!(ok("report.pdf"), "report.pdf");
        assert_eq!(ok("../../.ssh/authorized_keys"), "authorized_keys");
        assert_eq!(ok("/etc/passwd"), "passwd");
        assert_eq!(ok("r\u{e9}sum\u{e9}"), "r\u{e9}sum\u{e9}");
        assert_eq!(
            ok("\x1b]0;PWNED\x07\x1b[2Jx\ny\u{9b}z\x7f"),
            "_]0;PWNED__[2Jx_y_z_"
        );
        for bad in ["", ".", "..", "a/", "a/..", "x\0y", "/"] {
            assert!(safe_basename(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn entries() {
        let file = check_entry("a/b/c.txt", external_attr(0o100_755, false)).expect("ok");
        assert_eq!(file.components, ["a", "b", "c.txt"]);
        assert!(!file.is_dir);
        assert_eq!(file.mode, Some(0o755));
        for (mode, kept) in [(0o104_755, 0o755), (0o102_777, 0o777), (0o041_777, 0o777)] {
            let entry = check_entry("x", external_attr(mode, false)).expect("ok");
            assert_eq!(
                entry.mode,
                Some(kept),
                "{mode:o}: no setuid, setgid or sticky bit"
            );
        }
        let renamed = check_entry("a\x1b[2J/b\nc", 0).expect("ok");
        assert_eq!(renamed.components, ["a_[2J", "b_c"]);
        let dir = check_entry("empty/", external_attr(0o040_700, true)).expect("ok");
        assert!(dir.is_dir);
        assert_eq!(dir.mode, Some(0o700));
        assert_eq!(check_entry("./x", 0).expect("ok").components, ["x"]);
        assert_eq!(check_entry("x", 0).expect("ok").mode, None);
        assert!(check_entry("d", MSDOS_DIRECTORY).expect("ok").is_dir);
        for (bad, what) in [
            ("/etc/passwd", "absolute"),
            ("../x", "escapes"),
            ("a/../../x", "escapes"),
            ("a/..", "escapes"),
            ("C:/x", "absolute"),
            ("a\\..\\x", "bad"),
            ("", "bad"),
            ("a\0b", "bad"),
        ] {
            let err = check_entry(bad, 0).expect_err(bad);
            let expected = match what {
                "absolute" => matches!(err, LayoutError::Absolute(_)),
                "escapes" => matches!(err, LayoutError::Escapes(_)),
                _ => matches!(err, LayoutError::BadEntryName(_)),
            };
            assert!(expected, "{bad:?}: {err:?}");
        }
        assert!(matches!(
            check_entry("link", 0o120_777 << 16),
            Err(LayoutError::Symlink(_))
        ));
        assert!(check_entry("../x", 0)
            .expect_err("escapes")
            .to_string()
            .contains("malicious zipfile"));
    }

    #[test]
    fn attrs_and_names() {
        assert_eq!(external_attr(0o100_644, false), 0o100_644 << 16);
        assert_eq!(external_attr(0o040_755, true), (0o040_755 << 16) | 0x10);
        assert_eq!(entry_name(&["a", "b"], false).as_deref(), Some("a/b"));
        assert_eq!(entry_name(&["e"], true).as_deref(), Some("e/"));
        assert_eq!(entry_name(&[], true), None);
        let mut counts = DirectoryCounts::default();
        counts.add_file(10);
        counts.add_file(0);
        assert_eq!(
            counts,
            DirectoryCounts {
                numfiles: 2,
                numbytes: 10
            }
        );
    }

    #[test]
    fn central_headers() {
        let mut fixed = [0u8; CENTRAL_HEADER_LEN];
        assert_eq!(central_header_lengths(&fixed), None);
        fixed[..4].copy_from_slice(b"PK\x01\x02");
        fixed[28..30].copy_from_slice(&7u16.to_le_bytes());
        fixed[30..32].copy_from_slice(&5u16.to_le_bytes());
        fixed[32..34].copy_from_slice(&0xffffu16.to_le_bytes());
        assert_eq!(central_header_lengths(&fixed), Some((7, 5 + 0xffff)));
        fixed[..4].copy_from_slice(b"PK\x05\x06");
        assert_eq!(
            central_header_lengths(&fixed),
            None,
            "the end of the directory"
        );
    }

    #[test]
    fn acks() {
        let hash = [7u8; 32];
        let record = ack_record(&hash);
        assert_eq!(check_ack(&record, &hash), Ok(()));
        assert_eq!(check_ack(&record, &[8; 32]), Err(TransferError::BadHash));
        // Python's spacing, and an ack without hash.
        assert_eq!(check_ack(br#"{"ack": "ok"}"#, &hash), Ok(()));
        assert_eq!(
            check_ack(br#"{"ack": "nope"}"#, &hash),
            Err(TransferError::AckNotOk("nope".into()))
        );
        assert!(matches!(
            check_ack(b"garbage", &hash),
            Err(TransferError::Malformed(_))
        ));
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let json = format!(r#"{{"ack": "ok", "sha256": "{empty}"}}"#);
        let mut digest = [0u8; 32];
        hex::decode_to_slice(empty, &mut digest).expect("hex");
        assert_eq!(check_ack(json.as_bytes(), &digest), Ok(()));
    }
}
