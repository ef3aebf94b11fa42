//! Checkpoints: detecting an engine that silently lost data.
//!
//! An engine may treat a damaged part of its files as the torn end of its log and
//! open with everything after it gone (with garbage at the start of its log, an
//! *empty* store). libstate must report that as *corrupt* instead. So the store
//! keeps a **generation** counter in two places:
//!
//! 1. inside the engine, in an internal bucket, written like any record;
//! 2. in the marker file `libstate.meta` next to the engine's files.
//!
//! A checkpoint (every flush interval while there are writes, and at close) bumps
//! the generation in the engine, makes it durable, and only then rewrites the
//! marker atomically. So the marker never runs ahead of what the engine has
//! durably stored; if on open the engine reports a lower generation than the
//! marker, the engine lost durable data, and the store is reported *corrupt*.
//! The marker also records the engine, so a store is never opened with the wrong one.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, StorageEngine, WriteOp};
use crate::error::{Error, Result};
use crate::fileio::Io;

impl Engine {
    /// The engine the store in `dir` was created with, as recorded in its marker
    /// file; `None` if `dir` does not exist or holds no libstate store. Lets a tool
    /// open an existing store without being told its engine.
    ///
    /// # Errors
    /// *corrupt* if the marker cannot be parsed or names an engine that is not built
    /// into `state-core`; *I/O* if it exists but cannot be read.
    pub fn detect(dir: impl AsRef<Path>) -> Result<Option<Engine>> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Ok(None);
        }
        let Some(marker) = read_marker(dir)? else {
            return Ok(None);
        };
        marker.engine.parse().map(Some).map_err(|_| {
            Error::corrupt(
                &dir.join(MARKER_FILE),
                format!("store marker names an unknown engine {:?}", marker.engine),
            )
        })
    }
}

/// The marker file's name inside the store directory.
pub(crate) const MARKER_FILE: &str = "libstate.meta";
/// The internal bucket for store metadata (starts with a control character, which
/// user bucket names cannot contain).
pub(crate) const META_BUCKET: &str = "\u{2}meta";
const GENERATION_KEY: &[u8] = b"generation";
const FORMAT: u32 = 1;

/// The marker file's contents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Marker {
    pub format: u32,
    pub engine: String,
    pub generation: u64,
}

/// Reads the marker, if the store has one. A marker that cannot be parsed is corrupt.
pub(crate) fn read_marker(dir: &Path) -> Result<Option<Marker>> {
    let path = dir.join(MARKER_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let marker: Marker = serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(&path, format!("unreadable store marker: {e}")))?;
    if marker.format != FORMAT {
        return Err(Error::corrupt(
            &path,
            format!("unknown store marker format {}", marker.format),
        ));
    }
    Ok(Some(marker))
}

/// Refuses to open a store with another engine than the one that made it.
pub(crate) fn check_engine(dir: &Path, marker: Option<&Marker>, engine: &str) -> Result<()> {
    match marker {
        Some(m) if m.engine != engine => Err(Error::invalid(format!(
            "store {} was created with engine {:?}; open it with that engine (or export and import it)",
            dir.display(),
            m.engine
        ))),
        _ => Ok(()),
    }
}

/// The generation stored in the engine (0 if none).
pub(crate) fn engine_generation(dir: &Path, engine: &dyn StorageEngine) -> Result<u64> {
    let mut found: Option<Vec<u8>> = None;
    engine.get(META_BUCKET, GENERATION_KEY, &mut |v| {
        found = Some(v.to_vec())
    })?;
    match found {
        None => Ok(0),
        Some(v) => {
            let bytes: [u8; 8] = v
                .as_slice()
                .try_into()
                .map_err(|_| Error::corrupt(dir, "malformed store generation record"))?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

/// Checks the engine against the marker; returns the engine's generation.
pub(crate) fn verify(
    dir: &Path,
    marker: Option<&Marker>,
    engine: &dyn StorageEngine,
) -> Result<u64> {
    let stored = engine_generation(dir, engine)?;
    if let Some(m) = marker {
        if stored < m.generation {
            let detail = format!(
                "the {} engine recovered an older state than its last checkpoint \
                 (generation {stored} < {}): its files are damaged and data after the \
                 damage is missing; restore a backup or export what is readable with a copy",
                m.engine, m.generation
            );
            return Err(engine.damaged(dir, detail));
        }
    }
    Ok(stored)
}

/// Writes the new generation into the engine (not yet durable).
pub(crate) fn write_generation(engine: &dyn StorageEngine, generation: u64) -> Result<()> {
    let bytes = generation.to_be_bytes();
    engine.write(&[WriteOp::Put {
        bucket: META_BUCKET,
        key: GENERATION_KEY,
        value: &bytes,
    }])
}

/// Replaces the marker atomically and durably: temp file, fsync, rename, fsync dir,
/// each through `io` (the engine's, so tests that fail or record its file calls see
/// these too).
pub(crate) fn write_marker(io: &Io, dir: &Path, engine: &str, generation: u64) -> Result<()> {
    let marker = Marker {
        format: FORMAT,
        engine: engine.to_string(),
        generation,
    };
    let path = dir.join(MARKER_FILE);
    let tmp = dir.join(format!("{MARKER_FILE}.tmp"));
    let json = serde_json::to_vec(&marker)
        .map_err(|e| Error::Internal(format!("cannot encode the store marker: {e}")))?;
    let f = io.create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    io.write_at(&f, &tmp, &json, 0)
        .map_err(|e| Error::io(&tmp, e))?;
    io.sync_data(&f, &tmp).map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    io.rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    io.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_marker(dir.path()).unwrap(), None);
        write_marker(&Io::real(), dir.path(), "one", 7).unwrap();
        let m = read_marker(dir.path()).unwrap().unwrap();
        assert_eq!((m.engine.as_str(), m.generation), ("one", 7));
        check_engine(dir.path(), Some(&m), "one").unwrap();
        fs::write(dir.path().join(MARKER_FILE), b"{oops").unwrap();
        let err = read_marker(dir.path()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
        assert!(err.to_string().contains(MARKER_FILE), "{err}");
    }

    #[test]
    fn wrong_engine_is_refused() {
        let m = Marker {
            format: FORMAT,
            engine: "one".into(),
            generation: 1,
        };
        let err = check_engine(Path::new("/s"), Some(&m), "other").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("one"), "{err}");
    }
}
