//! A record that fails its checksum with data after it is damage, not a crash: the
//! open fails with *corrupt* naming the log file, and no file is changed. (These
//! stores write in periodic mode and sync once, at close, so no later record proves
//! the damaged one synced: the engine reads it as the start of an unsynced tail, and
//! the store refuses the open because that tail held its last checkpoint; the error
//! names the log and offset the engine would have cut at. Damage that a later record
//! proves synced is *corrupt* in the engine itself: `memfile_power_loss.rs`.)

use crate::support::memfile as support;

use self::support::{dir_contents, only_log, open};
use state_core::ErrorKind;

fn store_with_marked_middle_record(dir: &std::path::Path) -> std::path::PathBuf {
    let store = open(dir);
    let b = store.bucket("b").unwrap();
    b.set("first", b"first value").unwrap();
    b.set("middle", b"MIDDLE-MARKER").unwrap();
    b.set("last", b"last value").unwrap();
    store.close().unwrap();
    only_log(dir)
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

fn assert_corrupt_and_untouched(dir: &std::path::Path, log: &std::path::Path) {
    let before = dir_contents(dir);
    let err = state_core::Store::builder()
        .engine(state_core::Engine::Memfile)
        .open(dir)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let name = log.file_name().unwrap().to_str().unwrap();
    assert!(err.to_string().contains(name), "{err}");
    assert_eq!(dir_contents(dir), before, "a failed open changed the files");
    // Still refused the second time: nothing was "repaired" into an empty store.
    let again = state_core::Store::builder()
        .engine(state_core::Engine::Memfile)
        .open(dir)
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Corrupt);
}

#[test]
fn a_flipped_value_byte_in_a_middle_record_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let log = store_with_marked_middle_record(dir.path());
    let mut bytes = std::fs::read(&log).unwrap();
    let at = find(&bytes, b"MIDDLE-MARKER");
    bytes[at + 3] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    assert_corrupt_and_untouched(dir.path(), &log);
}

#[test]
fn a_damaged_length_in_a_middle_record_is_corrupt_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = store_with_marked_middle_record(dir.path());
    let mut bytes = std::fs::read(&log).unwrap();
    // Frame header: len u32, payload crc u32, header crc u32, then the payload:
    // seq u64, kind u8, count u32, op u8, bucket len u16 + "b", value len u32,
    // key len u16 + "middle". Walk back from the key to the frame's length field.
    let key_at = find(&bytes, b"middle");
    let frame_at = key_at - 2 - 4 - 3 - 1 - 4 - 1 - 8 - 12;
    bytes[frame_at + 1] ^= 0x40; // the length now runs past the end of the file
    std::fs::write(&log, &bytes).unwrap();
    assert_corrupt_and_untouched(dir.path(), &log);
}

/// A torn tail the engine would drop, but which holds the store's last checkpoint
/// (written at close): durable data is missing, so the store refuses to open — and
/// the engine must not have cut the tail off before the store looked (it used to).
#[test]
fn a_lost_checkpoint_is_corrupt_and_the_torn_tail_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = store_with_marked_middle_record(dir.path());
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&log, &bytes).unwrap();
    let before = dir_contents(dir.path());
    let err = state_core::Store::builder()
        .engine(state_core::Engine::Memfile)
        .open(dir.path())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("checkpoint"), "{err}");
    assert_eq!(
        dir_contents(dir.path()),
        before,
        "the open changed the files"
    );
}
