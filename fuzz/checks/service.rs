//! Any request to the state service's JSON API replies or fails with a client
//! error (invalid argument, too large, quota), never a panic or an internal error.

use std::sync::OnceLock;

use state_core::ErrorKind;
use state_service::{ErrorKind as Kind, StateService, METHODS};

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
    let i = usize::from(m) % (METHODS.len() + 1);
    let method = METHODS.get(i).map_or("noSuchMethod", |m| m.name);
    let json = String::from_utf8_lossy(rest);
    if let Err(e) = service().handle("fuzz", method, &json) {
        assert!(
            matches!(
                e.kind(),
                Kind::Store(ErrorKind::InvalidArgument | ErrorKind::TooLarge) | Kind::QuotaExceeded
            ),
            "{method} {json:?}: {e}"
        );
    }
}
