//! Instruction-count probe of the hot paths for keys without a TTL: run under
//! `valgrind --tool=callgrind --toggle-collect='*hot_gets*' --toggle-collect='*hot_sets*'`
//! (and `--toggle-collect='*hot_scans*'` for 200 x seek + next_n(1000),
//! `--toggle-collect='*hot_lent_scans*'` for the same with next_n_with).
//! `HOTPATH_COUNTS=1` starts the store's record counts first (as `state serve`
//! does), so the sets show what keeping them costs.
use std::hint::black_box;

#[inline(never)]
fn hot_gets(b: &state_core::Bucket, keys: &[String]) -> usize {
    let mut n = 0;
    for k in keys {
        n += b.get(k).unwrap().map_or(0, |v| v.len());
    }
    n
}

#[inline(never)]
fn hot_sets(b: &state_core::Bucket, keys: &[String], v: &[u8]) {
    for k in keys {
        b.set(k, v).unwrap();
    }
}

#[inline(never)]
fn hot_scans(b: &state_core::Bucket, keys: &[String]) -> usize {
    let mut n = 0;
    for k in keys.iter().take(200) {
        let mut c = b.cursor().unwrap();
        c.seek(k).unwrap();
        n += c.next_n(1000).unwrap().len();
    }
    n
}

#[inline(never)]
fn hot_lent_scans(b: &state_core::Bucket, keys: &[String]) -> usize {
    let mut n = 0;
    for k in keys.iter().take(200) {
        let mut c = b.cursor().unwrap();
        c.seek(k).unwrap();
        c.next_n_with(1000, |_, v| n += v.len()).unwrap();
    }
    n
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    // `HOTPATH_ENGINE=memfile` probes the memfile engine (default: sled).
    let engine = match std::env::var("HOTPATH_ENGINE").as_deref() {
        Ok("memfile") => state_core::Engine::Memfile,
        _ => state_core::Engine::Sled,
    };
    let store = state_core::Store::builder()
        .engine(engine)
        .open(dir.path())
        .unwrap();
    let b = store.bucket("bench").unwrap();
    if std::env::var_os("HOTPATH_COUNTS").is_some() {
        store.counts().unwrap();
    }
    let keys: Vec<String> = (0..20_000u64)
        .map(|i| format!("{:010x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 24))
        .collect();
    let v = [7u8; 100];
    for c in keys.chunks(1000) {
        b.set_multiple(c.iter().map(|k| (k.as_str(), v))).unwrap();
    }
    black_box(hot_gets(&b, &keys));
    hot_sets(&b, &keys, &v);
    black_box(hot_scans(&b, &keys));
    black_box(hot_lent_scans(&b, &keys));
    store.close().unwrap();
}
