//! Any request to the state service's JSON API replies or fails with a client
//! error (invalid argument, too large, quota), never a panic or an internal error.

use std::sync::OnceLock;

use state_core::{ErrorKind, StateService, SERVICE_METHODS};

fn service() -> &'static StateService {
    static S: OnceLock<(tempfile::TempDir, StateService)> = OnceLock::new();
    &S.get_or_init(|| {
        let (dir, store) = crate::support::memfile_store();
        (dir, StateService::new(store))
    })
    .1
}

pub fn check(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    // Every method, and one that does not exist.
    let i = usize::from(m) % (SERVICE_METHODS.len() + 1);
    let method = SERVICE_METHODS.get(i).copied().unwrap_or("noSuchMethod");
    let json = String::from_utf8_lossy(rest);
    if let Err(e) = service().handle("fuzz", method, &json) {
        assert!(
            matches!(
                e.kind(),
                ErrorKind::InvalidArgument | ErrorKind::TooLarge | ErrorKind::QuotaExceeded
            ),
            "{method} {json:?}: {e}"
        );
    }
}
