//! File-system helpers shared by the store and the engines.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{Error, Result};

/// fsyncs a directory, so a rename, creation or removal of a file in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Open options that create files private to their owner (mode 0600 on Unix).
pub(crate) fn private_file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}
