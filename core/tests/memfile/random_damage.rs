//! Random damage to a closed store's log or snapshot — bytes changed, the file cut
//! short — never yields a state that was never written: the open either fails with
//! *corrupt* and changes no file, or succeeds with the state after some prefix of
//! the write calls (a damaged or cut last record is a torn tail, dropped). Never a
//! panic, never garbage values.

use crate::support::memfile as support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use self::support::{churn, dir_contents, files, open, wait_for_snapshot};
use proptest::prelude::*;
use state_core::{Engine, ErrorKind, Store};

/// Bucket -> key -> value.
type Model = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// The whole content of an open store.
fn contents(store: &Store) -> Model {
    let mut out = Model::new();
    for name in store.bucket_names().unwrap() {
        let b = store.bucket(&name).unwrap();
        let entries = b.iter().map(|e| e.unwrap()).collect();
        out.insert(name, entries);
    }
    out
}

/// A closed store in a fresh directory and the store's content after each of its
/// write calls, oldest first (the empty store included).
struct Template {
    dir: tempfile::TempDir,
    states: Vec<Model>,
}

/// A few write calls of every kind; each one is recorded in `states`.
fn write_history(store: &Store, states: &mut Vec<Model>, round: u8) {
    let a = store.bucket("alpha").unwrap();
    let b = store.bucket("beta").unwrap();
    for i in 0..6u8 {
        a.set(&format!("k{i}"), vec![round ^ i; 1 + usize::from(i) * 7])
            .unwrap();
        states.push(contents(store));
    }
    b.set_multiple((0..5u8).map(|i| (format!("m{i}"), vec![round; 40])))
        .unwrap();
    states.push(contents(store));
    a.delete("k2").unwrap();
    states.push(contents(store));
    b.set_multiple([("m1", vec![round, 1]), ("m4", vec![round, 4])])
        .unwrap();
    states.push(contents(store));
}

/// A store that never compacted: one log.
fn log_only() -> Template {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut states = vec![contents(&store)];
    write_history(&store, &mut states, 1);
    store.remove_bucket("beta").unwrap();
    states.push(contents(&store));
    write_history(&store, &mut states, 2);
    store.close().unwrap();
    Template { dir, states }
}

/// A store that compacted: a snapshot plus a log after it. Only states from the
/// snapshot on are possible outcomes (the snapshot has no torn tail to drop).
fn with_snapshot() -> Template {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut states = Vec::new();
    write_history(&store, &mut states, 1);
    churn(&store, "churn");
    wait_for_snapshot(dir.path(), 2);
    // Writes after the compaction land in the new log.
    let mut states = vec![contents(&store)];
    write_history(&store, &mut states, 3);
    store.close().unwrap();
    assert_eq!(files(dir.path(), "snapshot-").len(), 1);
    Template { dir, states }
}

/// Copies the template's files into a new directory.
fn copy_of(t: &Template) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in dir_contents(t.dir.path()) {
        std::fs::write(dir.path().join(path.file_name().unwrap()), bytes).unwrap();
    }
    dir
}

/// The log and snapshot files of a store directory.
fn engine_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = files(dir, "log-");
    v.extend(files(dir, "snapshot-"));
    v
}

/// Damage to one engine file: which file, bytes to flip (offset, xor mask), where
/// to cut it, and whether to delete the checkpoint marker too.
type Damage = (usize, Vec<(usize, u8)>, Option<usize>, bool);

/// Applies the damage to one engine file of a copy of `t`, opens it and checks the
/// outcome.
///
/// The store's checkpoint marker records that the last checkpoint (written at close,
/// as the log's last record) is durable, so losing any record makes the open
/// *corrupt*; without the marker (deleted in half of the cases) a torn tail is simply
/// dropped, and the open must give back a state that was written.
fn check_damage(
    t: &Template,
    (which, flips, cut, drop_marker): Damage,
) -> Result<(), TestCaseError> {
    let dir = copy_of(t);
    if drop_marker {
        std::fs::remove_file(dir.path().join("libstate.meta")).unwrap();
    }
    let targets = engine_files(dir.path());
    let target = &targets[which % targets.len()];
    let mut bytes = std::fs::read(target).unwrap();
    for (at, x) in flips {
        let at = at % bytes.len();
        bytes[at] ^= x;
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    std::fs::write(target, &bytes).unwrap();

    let before = dir_contents(dir.path());
    match Store::builder().engine(Engine::Memfile).open(dir.path()) {
        Ok(store) => {
            let got = contents(&store);
            store.close().unwrap();
            prop_assert!(
                t.states.contains(&got),
                "opened a state that was never written: {got:?}"
            );
        }
        Err(e) => {
            prop_assert_eq!(e.kind(), ErrorKind::Corrupt, "{}", e);
            prop_assert!(
                dir_contents(dir.path()) == before,
                "a failed open changed files"
            );
        }
    }
    Ok(())
}

fn damage() -> impl Strategy<Value = Damage> {
    (
        any::<usize>(),
        proptest::collection::vec((any::<usize>(), 1u8..), 0..3),
        proptest::option::of(any::<usize>()),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn damaged_log_opens_to_a_written_state_or_is_corrupt(d in damage()) {
        thread_local!(static T: Template = log_only());
        T.with(|t| check_damage(t, d))?;
    }

    #[test]
    fn damaged_snapshot_or_log_opens_to_a_written_state_or_is_corrupt(d in damage()) {
        thread_local!(static T: Template = with_snapshot());
        T.with(|t| check_damage(t, d))?;
    }
}
