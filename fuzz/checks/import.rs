//! Any JSON or JSON-lines import loads or fails as invalid input, never a panic
//! or an internal error.

use std::sync::OnceLock;

use state_core::{ErrorKind, Format, Store};

fn store() -> &'static Store {
    static S: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    &S.get_or_init(|| {
        let (dir, store) = crate::support::memfile_store();
        (dir, store)
    })
    .1
}

pub fn check(data: &[u8]) {
    let Some((&f, rest)) = data.split_first() else {
        return;
    };
    let format = if f % 2 == 0 {
        Format::Json
    } else {
        Format::JsonLines
    };
    if let Err(e) = store().import_from(rest, format, |_| {}) {
        assert!(
            matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::TooLarge),
            "{format:?}: {e}"
        );
    }
}
