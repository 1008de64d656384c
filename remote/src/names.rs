//! Object names under a store's prefix.
//!
//! * `manifest/<seq>`: the commit with sequence number `seq` (20 decimal digits, so that
//!   names sort as numbers do).
//! * `wal/<no>`: log object `no` (1, 2, … without gaps; 20 digits).
//! * `data/<epoch>/<no>.seg` and `data/<epoch>/<no>.del`: segment `no` and deletion file
//!   `no` uploaded by the writing session `epoch` (20 digits; `no` at least 6, as in the
//!   local file names). Epochs are unique, so two writers never write the same name.

use object_store::path::Path;

/// The kind of a store file kept in the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// An immutable segment (`NNNNNN.seg`).
    Segment,
    /// A deletion bitmap (`NNNNNN.del`).
    Deletion,
}

impl FileKind {
    /// The code written in a remote manifest.
    pub fn code(self) -> u8 {
        match self {
            FileKind::Segment => 1,
            FileKind::Deletion => 2,
        }
    }

    /// The kind for a code, if valid.
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(FileKind::Segment),
            2 => Some(FileKind::Deletion),
            _ => None,
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            FileKind::Segment => "seg",
            FileKind::Deletion => "del",
        }
    }

    /// The local file name of file `no` of this kind (`000042.seg`).
    pub fn local_name(self, no: u64) -> String {
        format!("{no:06}.{}", self.extension())
    }
}

/// The folder of manifests.
pub const MANIFESTS: &str = "manifest";
/// The folder of segment and deletion files.
pub const DATA: &str = "data";

/// `prefix/manifest/<seq>`.
pub(crate) fn manifest(prefix: &Path, seq: u64) -> Path {
    prefix.clone().join(MANIFESTS).join(format!("{seq:020}"))
}

/// The sequence number of a manifest object's last name part.
pub(crate) fn parse_manifest(part: &str) -> Option<u64> {
    if part.len() == 20 && part.bytes().all(|b| b.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

/// The folder of log objects.
pub const LOGS: &str = "wal";

/// `prefix/wal/<no>`: log object `no`. The name holds nothing else, so that a fence
/// and an older session's next ship contend for the very same name.
pub(crate) fn log(prefix: &Path, no: u64) -> Path {
    prefix.clone().join(LOGS).join(format!("{no:020}"))
}

/// `prefix/data/<epoch>/<no>.<ext>`.
pub(crate) fn data(prefix: &Path, kind: FileKind, no: u64, epoch: u64) -> Path {
    prefix
        .clone()
        .join(DATA)
        .join(format!("{epoch:020}"))
        .join(kind.local_name(no))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_numbers() {
        let p = Path::from("bucket/store");
        assert_eq!(
            manifest(&p, 7).as_ref(),
            "bucket/store/manifest/00000000000000000007"
        );
        assert!(manifest(&p, 9).as_ref() < manifest(&p, 10).as_ref());
        assert_eq!(parse_manifest("00000000000000000010"), Some(10));
        assert_eq!(parse_manifest("10"), None);
        assert_eq!(parse_manifest("0000000000000000001x"), None);
        let l = log(&p, 3);
        assert_eq!(l.as_ref(), "bucket/store/wal/00000000000000000003");
        assert_eq!(
            data(&p, FileKind::Deletion, 42, 3).as_ref(),
            "bucket/store/data/00000000000000000003/000042.del"
        );
    }
}
