//! After a compaction the store is the new snapshot plus the log after it: reopening
//! gives back exactly what was written, before and after the compaction, and the
//! files the snapshot covers are gone.

use crate::support::memfile as support;

use std::collections::BTreeMap;

use self::support::{churn, files, gen_of, open, snapshot_gen, wait_for_snapshot};

type Model = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

fn check(store: &state_core::Store, model: &Model) {
    let names: Vec<String> = model.keys().cloned().collect();
    assert_eq!(store.bucket_names().unwrap(), names);
    for (bucket, entries) in model {
        let b = store.bucket(bucket).unwrap();
        let got: Vec<(String, Vec<u8>)> = b.iter().map(|e| e.unwrap()).collect();
        let want: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(got, want, "bucket {bucket}");
        let back: Vec<String> = b.iter().rev().map(|e| e.unwrap().0).collect();
        let mut want_back: Vec<String> = entries.keys().cloned().collect();
        want_back.reverse();
        assert_eq!(back, want_back, "bucket {bucket}, reversed");
    }
}

/// Writes enough to a "churn" bucket (recorded in `model`) to make the store compact,
/// and waits for the snapshot.
fn compact_with_churn(store: &state_core::Store, dir: &std::path::Path, model: &mut Model) {
    churn(store, "churn");
    model
        .entry("churn".into())
        .or_default()
        .insert("churn".into(), vec![7u8; 64 << 10]);
    wait_for_snapshot(dir, 2);
}

#[test]
fn reopen_after_compaction_gives_back_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let store = open(dir.path());
    for bucket in ["alpha", "beta", "gone"] {
        let b = store.bucket(bucket).unwrap();
        let items: Vec<(String, Vec<u8>)> = (0..300)
            .map(|i| (format!("{bucket}-{i:03}"), format!("v{i}").into_bytes()))
            .collect();
        b.set_multiple(items.iter().map(|(k, v)| (k, v))).unwrap();
        model.entry(bucket.to_string()).or_default().extend(items);
    }
    let alpha = store.bucket("alpha").unwrap();
    for i in (0..300).step_by(3) {
        let k = format!("alpha-{i:03}");
        assert!(alpha.delete(&k).unwrap());
        model.get_mut("alpha").unwrap().remove(&k);
    }
    assert!(store.remove_bucket("gone").unwrap());
    model.remove("gone");
    compact_with_churn(&store, dir.path(), &mut model);

    // Writes after the compaction land in the new log.
    let beta = store.bucket("beta").unwrap();
    beta.set("beta-after", b"after").unwrap();
    beta.delete("beta-000").unwrap();
    let beta_model = model.get_mut("beta").unwrap();
    beta_model.insert("beta-after".into(), b"after".to_vec());
    beta_model.remove("beta-000");
    check(&store, &model);
    store.close().unwrap();

    // Only the newest snapshot and the logs from its generation on remain.
    let snap = snapshot_gen(dir.path()).unwrap();
    assert_eq!(files(dir.path(), "snapshot-").len(), 1);
    for log in files(dir.path(), "log-") {
        assert!(
            gen_of(&log) >= snap,
            "{log:?} is older than snapshot {snap}"
        );
    }

    let store = open(dir.path());
    check(&store, &model);
    assert_eq!(store.info().unwrap().records, 200 + 300 + 1);
    store.close().unwrap();

    // And once more, to prove the reopened store's own log and snapshot line up.
    let store = open(dir.path());
    check(&store, &model);
    store.close().unwrap();
}

#[test]
fn disk_use_after_compaction_is_close_to_the_live_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let b = store.bucket("b").unwrap();
    let value = vec![3u8; 1000];
    // Nine rounds overwrite the same 500 keys: ~0.5 MB live, ~4.6 MB logged. The
    // last round crosses the 4 MiB compaction threshold, and nothing is written after.
    for _ in 0..9 {
        let items: Vec<(String, &[u8])> = (0..500)
            .map(|i| (format!("key{i:04}"), &value[..]))
            .collect();
        b.set_multiple(items).unwrap();
    }
    wait_for_snapshot(dir.path(), 2);
    store.close().unwrap();
    let raw = 500 * (7 + 1000 + 1) as u64;
    let disk: u64 = files(dir.path(), "")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(disk < raw * 3 / 2 + 4096, "disk {disk} bytes for {raw} raw");
}

/// A store written without compacting (inserts only: the log never reaches twice the
/// live data) asks for a compaction when it is next opened. Closing right away waits
/// for that compaction, so the open after that loads a snapshot instead of replaying
/// the whole log again.
#[test]
fn close_finishes_the_compaction_an_open_started() {
    let dir = tempfile::tempdir().unwrap();
    let value = vec![0x5au8; 1000];
    let store = open(dir.path());
    let b = store.bucket("data").unwrap();
    for batch in 0..6 {
        let items: Vec<(String, &[u8])> = (0..1000)
            .map(|i| (format!("k{batch}-{i:04}"), value.as_slice()))
            .collect();
        b.set_multiple(items.iter().map(|(k, v)| (k, *v))).unwrap();
    }
    store.close().unwrap();
    assert!(
        files(dir.path(), "snapshot-").is_empty(),
        "compacted while writing"
    );
    assert_eq!(files(dir.path(), "log-").len(), 1);

    open(dir.path()).close().unwrap();
    let snap = snapshot_gen(dir.path()).expect("no snapshot after close");
    let logs = files(dir.path(), "log-");
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(gen_of(&logs[0]), snap);

    let store = open(dir.path());
    let b = store.bucket("data").unwrap();
    assert_eq!(b.len().unwrap(), 6000);
    assert_eq!(b.get("k5-0999").unwrap().as_deref(), Some(value.as_slice()));
    store.close().unwrap();
}

/// Overwrites of a snapshot's keys with values of the same length are replayed in
/// place at open (the snapshot's order stays valid); mixed with other writes in
/// another bucket, every value and the order come back exactly.
#[test]
fn same_length_overwrites_after_a_snapshot_replay_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut model = Model::new();
    for bucket in ["same", "mixed"] {
        let b = store.bucket(bucket).unwrap();
        let items: Vec<(String, Vec<u8>)> = (0..500)
            .map(|i| (format!("{bucket}-{i:03}"), vec![b'a'; 8]))
            .collect();
        b.set_multiple(items.iter().map(|(k, v)| (k, v))).unwrap();
        model.entry(bucket.to_string()).or_default().extend(items);
    }
    compact_with_churn(&store, dir.path(), &mut model);
    // After the snapshot: "same" only gets same-length overwrites (twice for some
    // keys); "mixed" gets them too, then a longer value, a delete and a new key.
    for round in [b'b', b'c'] {
        for bucket in ["same", "mixed"] {
            let b = store.bucket(bucket).unwrap();
            for i in (0..500).step_by(if round == b'b' { 3 } else { 7 }) {
                let k = format!("{bucket}-{i:03}");
                b.set(&k, vec![round; 8]).unwrap();
                model.get_mut(bucket).unwrap().insert(k, vec![round; 8]);
            }
        }
    }
    let mixed = store.bucket("mixed").unwrap();
    mixed.set("mixed-001", b"longer value").unwrap();
    mixed.delete("mixed-002").unwrap();
    mixed.set("mixed-new", b"12345678").unwrap();
    let m = model.get_mut("mixed").unwrap();
    m.insert("mixed-001".into(), b"longer value".to_vec());
    m.remove("mixed-002");
    m.insert("mixed-new".into(), b"12345678".to_vec());
    store.close().unwrap();

    let store = open(dir.path());
    check(&store, &model);
    store.close().unwrap();
}
