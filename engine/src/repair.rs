//! [`repair`]: brings back a store whose manifest is damaged or missing, from the
//! manifest's mirror.
//!
//! Every publish writes `MANIFEST`, then `MANIFEST-MIRROR` with the same bytes, and only
//! then removes the files the previous manifest named. So the mirror is either the
//! manifest itself or, after a crash between the two writes, the one before it, whose
//! files and log are all still there: restoring it loses nothing that was flushed (the
//! rows of a flush it does not name are in the log it does), and the next open removes
//! the newer files it does not name.

use std::path::Path;
use std::sync::Arc;

use strata_format::Manifest;
use strata_vfs::Vfs;

use crate::error::{CorruptionKind, Error, Result};
use crate::files;

/// What [`repair`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairAction {
    /// Both copies were sound and equal.
    Nothing,
    /// The manifest was sound; its mirror was missing, stale or damaged and was
    /// rewritten from it.
    MirrorRewritten,
    /// The manifest was missing or damaged and was restored from its mirror.
    ManifestRestored,
}

/// Repairs the closed store in `dir` (takes its lock): restores a damaged or missing
/// `MANIFEST` from `MANIFEST-MIRROR`, or the mirror from the manifest. When both are
/// damaged it fails with [`Error::Corruption`] naming the manifest and changes nothing.
pub fn repair(dir: &Path) -> Result<RepairAction> {
    repair_with(strata_vfs::os(), dir)
}

/// [`repair`] over the file system `fs`.
pub fn repair_with(fs: Arc<dyn Vfs>, dir: &Path) -> Result<RepairAction> {
    let fs = &*fs;
    let main = dir.join(files::MANIFEST);
    let mirror = dir.join(files::MANIFEST_MIRROR);
    let main_read = read_manifest(fs, &main)?;
    let mirror_read = read_manifest(fs, &mirror)?;
    if main_read.is_none() && mirror_read.is_none() {
        return Err(Error::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let _lock = files::lock(fs, dir)?;
    match (main_read, mirror_read) {
        (Some(Ok((m, bytes))), copy) => {
            if matches!(&copy, Some(Ok((_, b))) if *b == bytes) {
                return Ok(RepairAction::Nothing);
            }
            m.write(fs, &mirror)?;
            Ok(RepairAction::MirrorRewritten)
        }
        (_, Some(Ok((m, _)))) => {
            m.write(fs, &main)?;
            Ok(RepairAction::ManifestRestored)
        }
        (Some(Err(e)), _) => Err(e),
        (None, _) => Err(Error::Corruption {
            path: main,
            offset: 0,
            kind: CorruptionKind::Inconsistent("the manifest is missing and its mirror is damaged"),
        }),
    }
}

/// A manifest as read: decoded with its bytes, or why it does not decode.
type Read = Result<(Manifest, Vec<u8>)>;

/// The manifest at `path` and its bytes: `None` when absent, `Some(Err)` when damaged.
fn read_manifest(fs: &dyn Vfs, path: &Path) -> Result<Option<Read>> {
    let bytes = match fs.read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(Some(
        Manifest::decode(&bytes)
            .map(|m| (m, bytes))
            .map_err(|e| Error::from(e.at(path))),
    ))
}
