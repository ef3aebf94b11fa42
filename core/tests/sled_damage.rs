//! A crash- or disk-damaged sled store must open as *corrupt*, never as a store
//! that silently lost data (sled 0.34 on its own opens most of these as an empty
//! or truncated store).

use std::os::unix::fs::FileExt;
use std::path::Path;

use state_core::{Engine, ErrorKind, Store};

const RECORDS: usize = 2000;

fn make_store(dir: &Path) {
    let store = Store::builder().engine(Engine::Sled).open(dir).unwrap();
    let b = store.bucket("b").unwrap();
    for i in 0..RECORDS {
        b.set(&format!("k{i:05}"), vec![1u8; 200]).unwrap();
    }
    store.close().unwrap();
}

fn damage_then_open(damage: impl FnOnce(&Path)) -> state_core::Error {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path());
    damage(dir.path());
    match Store::builder().engine(Engine::Sled).open(dir.path()) {
        Ok(store) => {
            let n = store.bucket("b").unwrap().len().unwrap();
            panic!("a damaged store opened, holding {n} of {RECORDS} records");
        }
        Err(e) => e,
    }
}

fn log(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("db"))
        .unwrap()
}

fn assert_corrupt(err: state_core::Error) {
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    // sled recovers in place while it opens, before libstate's checks: the message
    // must not claim the files were left as they were.
    let msg = err.to_string();
    assert!(msg.contains("sled may have rewritten"), "{msg}");
    assert!(!msg.contains("left untouched"), "{msg}");
}

#[test]
fn garbage_at_the_start_of_the_log_is_corrupt() {
    assert_corrupt(damage_then_open(|d| {
        log(d).write_at(&[0xAB; 64], 0).unwrap();
    }));
}

#[test]
fn an_emptied_log_is_corrupt_not_an_empty_store() {
    assert_corrupt(damage_then_open(|d| log(d).set_len(0).unwrap()));
}

#[test]
fn a_deleted_log_is_corrupt_not_an_empty_store() {
    assert_corrupt(damage_then_open(|d| {
        std::fs::remove_file(d.join("db")).unwrap()
    }));
}

#[test]
fn a_truncated_log_is_corrupt() {
    assert_corrupt(damage_then_open(|d| {
        let f = log(d);
        let len = f.metadata().unwrap().len();
        f.set_len(len / 2).unwrap();
    }));
}

#[test]
fn garbage_in_the_middle_of_the_log_is_corrupt() {
    assert_corrupt(damage_then_open(|d| {
        let f = log(d);
        let len = f.metadata().unwrap().len();
        f.write_at(&[0xAB; 4096], len / 3).unwrap();
    }));
}

#[test]
fn damaged_sled_config_is_corrupt() {
    assert_corrupt(damage_then_open(|d| {
        std::fs::write(d.join("conf"), b"garbage garbage garbage").unwrap();
    }));
}

#[test]
fn a_damaged_marker_is_corrupt_and_names_it() {
    let err = damage_then_open(|d| std::fs::write(d.join("libstate.meta"), b"{x").unwrap());
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    // Found before sled opened anything: nothing was changed.
    let msg = err.to_string();
    assert!(msg.contains("libstate.meta"), "{msg}");
    assert!(msg.contains("left untouched"), "{msg}");
}

#[test]
fn an_undamaged_store_reopens_with_everything() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path());
    let store = Store::builder()
        .engine(Engine::Sled)
        .open(dir.path())
        .unwrap();
    assert_eq!(store.bucket("b").unwrap().len().unwrap(), RECORDS as u64);
}
