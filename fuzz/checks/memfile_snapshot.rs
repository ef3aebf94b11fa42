//! The memfile snapshot reader on hostile files: any bytes read as a consistent
//! snapshot or fail as *corrupt*, never a panic or an allocation larger than the
//! file; and what the writer writes reads back as what it was given.
//!
//! The first byte picks the mode (its value mod 3):
//! 0. the rest is the whole file;
//! 1. the rest is frame payloads behind a valid file header and valid checksums (a
//!    fuzzer cannot forge CRC-32s), each a length byte (255: all that remains) and
//!    that many bytes; the second byte's low bit makes the header's generation wrong;
//! 2. round trip: the rest describes buckets of entries (see [`model`]), written as
//!    compaction writes them and read back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use state_core::fuzzing::{read_snapshot, snapshot_file, write_snapshot, Snapshot};
use state_core::ErrorKind;

type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// The file each input is written to (one per process; inputs run one at a time).
fn path() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .join("snapshot-1")
}

/// What a read snapshot must be: keys strictly ascending in each bucket. Returns it
/// as a model (buckets without entries dropped: a store loads none).
fn consistent(s: &Snapshot) -> Model {
    let mut m = Model::new();
    for (name, entries) in &s.buckets {
        for w in entries.windows(2) {
            assert!(w[0].0 < w[1].0, "keys out of order in {name:?}");
        }
        if !entries.is_empty() {
            m.insert(name.clone(), entries.iter().cloned().collect());
        }
    }
    m
}

/// Reads `bytes` as snapshot generation 1: consistent or corrupt. What reads is
/// written again and must read back the same.
fn read_hostile(bytes: &[u8]) {
    let p = path();
    std::fs::write(&p, bytes).unwrap();
    match read_snapshot(&p, 1) {
        Ok(s) => {
            let m = consistent(&s);
            round_trip(&m, s.gen, s.next_seq);
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}"),
    }
}

fn round_trip(m: &Model, gen: u64, next_seq: u64) {
    let p = path();
    write_snapshot(&p, gen, next_seq, m).unwrap();
    let back = read_snapshot(&p, gen).unwrap_or_else(|e| panic!("a written snapshot: {e}"));
    assert_eq!((back.gen, back.next_seq), (gen, next_seq));
    assert_eq!(&consistent(&back), m);
    assert!(
        back.buckets.values().all(|e| !e.is_empty()),
        "the writer wrote an empty bucket"
    );
}

/// Buckets of entries from `data`, op by op: a tag byte, then
/// - tag % 4 == 0: put: bucket byte, key length byte, key, value length byte, value;
/// - 1: many: bucket byte, count byte: that many small entries (chunks end every 64);
/// - 2: big: bucket byte, size byte: one value of (size % 96) x 16 KiB (chunks end at
///   1 MiB), up to 1 MiB + 64 KiB in all;
/// - 3: name: length byte and that many bytes (lossy UTF-8) become bucket name 255.
///
/// A bucket byte names one of `a`, `b`, `c`, the empty name, or the last `name`.
fn model(mut data: &[u8]) -> Model {
    let mut take = |n: usize| -> Vec<u8> {
        let n = n.min(data.len());
        let (h, t) = data.split_at(n);
        data = t;
        h.to_vec()
    };
    let mut custom = String::from("custom");
    let mut m = Model::new();
    let mut big = 0;
    loop {
        let Some(&tag) = take(1).first() else {
            return m;
        };
        let b = take(1).first().copied().unwrap_or(0);
        let bucket = match b % 5 {
            0 => "a".to_string(),
            1 => "b".to_string(),
            2 => "c".to_string(),
            3 => String::new(),
            _ => custom.clone(),
        };
        match tag % 4 {
            0 => {
                let kl = take(1).first().copied().unwrap_or(0);
                let k = take(kl.into());
                let vl = take(1).first().copied().unwrap_or(0);
                let v = take(vl.into());
                m.entry(bucket).or_default().insert(k, v);
            }
            1 => {
                let n = take(1).first().copied().unwrap_or(0);
                let e = m.entry(bucket).or_default();
                for i in 0..u32::from(n) {
                    e.insert(i.to_be_bytes().to_vec(), vec![tag; (i % 7) as usize]);
                }
            }
            2 => {
                let n = take(1).first().copied().unwrap_or(0) % 96;
                let size = usize::from(n) << 14;
                // At most 1 MiB + 64 KiB of big values per input: enough to end a
                // chunk by size, little enough to keep executions fast.
                if big + size <= (1 << 20) + (64 << 10) {
                    big += size;
                    m.entry(bucket)
                        .or_default()
                        .insert(vec![b'B', n], vec![n; size]);
                }
            }
            _ => {
                let n = usize::from(b);
                custom = String::from_utf8_lossy(&take(n)).into_owned();
            }
        }
    }
}

pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    run(mode, rest);
    // The directory lives as long as the process (a static): leave it empty.
    let _ = std::fs::remove_file(path());
}

fn run(mode: u8, rest: &[u8]) {
    match mode % 3 {
        0 => read_hostile(rest),
        1 => {
            let gen = 1 + u64::from(rest.first().is_some_and(|b| b & 1 == 1));
            let mut payloads = Vec::new();
            let mut r = rest.get(1..).unwrap_or_default();
            while let Some((&n, t)) = r.split_first() {
                let n = if n == 255 {
                    t.len()
                } else {
                    usize::from(n).min(t.len())
                };
                payloads.push(&t[..n]);
                r = &t[n..];
            }
            read_hostile(&snapshot_file(gen, 7, &payloads).unwrap());
        }
        _ => {
            let m: Model = model(rest)
                .into_iter()
                .filter(|(_, e)| !e.is_empty())
                .collect();
            let gen = u64::from(rest.first().copied().unwrap_or(0)) + 1;
            round_trip(&m, gen, u64::from(rest.len() as u32) << 20);
        }
    }
}
