//! Any request to the state service's JSON API replies or fails with a client
//! error (invalid argument, too large, quota), never a panic or an internal error.

use std::sync::OnceLock;

use state_core::{Engine, ErrorKind, StateService, Store};

const METHODS: [&str; 18] = [
    "get",
    "set",
    "delete",
    "getMultiple",
    "setMultiple",
    "ttl",
    "expire",
    "persist",
    "getCursor",
    "cursorFirst",
    "cursorLast",
    "cursorNext",
    "cursorPrev",
    "cursorSeek",
    "cursorNextN",
    "cursorPrevN",
    "cursorRelease",
    "nope",
];

fn service() -> &'static StateService {
    static S: OnceLock<(tempfile::TempDir, StateService)> = OnceLock::new();
    &S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::builder()
            .engine(Engine::Memfile)
            .max_value_size(1 << 16)
            .open(dir.path().join("s"))
            .unwrap();
        (dir, StateService::new(store))
    })
    .1
}

pub fn check(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[usize::from(m) % METHODS.len()];
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
