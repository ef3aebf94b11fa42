//! Opening a memfile directory: lock, load the newest snapshot, replay the logs after
//! it, then (only once everything checked out) repair a torn tail and remove files
//! that a finished compaction left behind.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::files::{self, FileName};
use super::log::{self, LogFile, LogOp};
use super::snapshot;
use super::state::{Hasher_, LoadingBucket, State, BUCKET_OVERHEAD};
use super::{Inner, MemfileConfig, Writer};
use crate::error::{Error, Result};
use crate::fileio::Io;

/// The state while loading. Log records update only the hash index; the ordered
/// sets are built once at the end, which is much faster than inserting one by one.
#[derive(Default)]
struct Loading {
    buckets: HashMap<Box<str>, LoadingBucket, Hasher_>,
}

impl Loading {
    fn apply(&mut self, op: LogOp<'_>) {
        match op {
            LogOp::Put { bucket, entry } => match self.buckets.get_mut(bucket) {
                Some(b) => b.put_encoded(entry),
                None => {
                    let mut b = LoadingBucket::default();
                    b.put_encoded(entry);
                    self.buckets.insert(bucket.into(), b);
                }
            },
            LogOp::Delete { bucket, key } => {
                if let Some(b) = self.buckets.get_mut(bucket) {
                    if b.delete(key) {
                        self.buckets.remove(bucket);
                    }
                }
            }
            LogOp::RemoveBucket { bucket } => {
                self.buckets.remove(bucket);
            }
        }
    }

    fn finish(self) -> State {
        let mut state = State::default();
        for (name, b) in self.buckets {
            let map = b.finish();
            state.live_bytes += map.weight() + name.len() as u64 + BUCKET_OVERHEAD;
            state.buckets.insert(name, map);
        }
        state
    }
}

/// A repair to make once the whole directory has been read without a *corrupt* error.
struct Truncation {
    gen: u64,
    len: u64,
}

/// What an open will change in the directory, made only once the store has accepted
/// what was loaded ([`Repairs::apply`]): a *corrupt* open, whether the engine or the
/// store finds the damage, changes no file.
pub(super) struct Repairs {
    /// Torn tails to cut off, and logs after a lost tail to cut back to their header.
    truncations: Vec<Truncation>,
    /// Temporary files of an interrupted compaction.
    tmp: Vec<FileName>,
    /// Snapshots and logs older than the newest snapshot.
    superseded: Vec<FileName>,
    /// The first log of a new store, created by the open: removed again if the open is
    /// abandoned ([`Repairs::abandon`]).
    created: Option<PathBuf>,
    /// What the truncations drop, in words (for the store's *corrupt* error if it
    /// refuses what was loaded).
    pub(super) dropped: Vec<String>,
}

impl Repairs {
    /// Cuts torn tails off and removes leftover files.
    pub(super) fn apply(self, io: &Io, dir: &Path) -> Result<()> {
        for t in &self.truncations {
            log::truncate(io, &dir.join(FileName::Log(t.gen).to_string()), t.len)?;
        }
        let removed = !self.tmp.is_empty() || !self.superseded.is_empty();
        for &f in self.tmp.iter().chain(&self.superseded) {
            files::remove(io, dir, f)?;
        }
        if removed {
            files::sync_dir(io, dir)?;
        }
        Ok(())
    }

    /// Undoes what the open itself created (best effort: an empty first log left
    /// behind is harmless, the next open uses it).
    pub(super) fn abandon(self) {
        if let Some(path) = self.created {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Loads the store in `dir` without changing any file but creating the first log of
/// a new store; the returned [`Repairs`] make the directory consistent.
pub(super) fn open(dir: &Path, config: MemfileConfig) -> Result<(Inner, Repairs)> {
    let lock = files::lock(dir)?;
    let listing = files::list(dir)?;
    let mut loading = Loading::default();

    // 1. The newest snapshot, if any.
    let (base_gen, mut expect_seq) = match listing.snapshots.last() {
        Some(&gen) => {
            let path = dir.join(FileName::Snapshot(gen).to_string());
            let loaded = snapshot::read(&path, gen)?;
            for (name, entries) in loaded.buckets {
                if entries.is_empty() {
                    continue;
                }
                let mut index =
                    HashSet::with_capacity_and_hasher(entries.len(), Hasher_::default());
                index.extend(entries.iter().cloned());
                loading
                    .buckets
                    .insert(name, LoadingBucket::from_snapshot(index, entries));
            }
            (gen, loaded.header.next_seq)
        }
        None => (1, 0),
    };

    // 2. The logs from the snapshot's generation on, which must be consecutive.
    let logs: Vec<u64> = listing
        .logs
        .iter()
        .copied()
        .filter(|&g| g >= base_gen)
        .collect();
    for (i, &g) in logs.iter().enumerate() {
        let want = base_gen + i as u64;
        if g != want {
            return Err(Error::corrupt(
                &dir.join(FileName::Log(want).to_string()),
                "this log file is missing (a later one exists)",
            ));
        }
    }
    if logs.is_empty() && !listing.snapshots.is_empty() {
        return Err(Error::corrupt(
            &dir.join(FileName::Log(base_gen).to_string()),
            "the log that follows the newest snapshot is missing",
        ));
    }
    let mut truncations = Vec::new();
    let mut dropped = Vec::new();
    // Records before the snapshot's first one are in the synced snapshot.
    let mut proven = expect_seq;
    let mut log_lens: Vec<u64> = Vec::new();
    let mut hole_from: Option<usize> = None;
    for (i, &g) in logs.iter().enumerate() {
        let path = dir.join(FileName::Log(g).to_string());
        if hole_from.is_some() {
            check_unproven(&path, g, expect_seq)?;
            truncations.push(Truncation {
                gen: g,
                len: super::format::FILE_HEADER_LEN as u64,
            });
            log_lens.push(super::format::FILE_HEADER_LEN as u64);
            continue;
        }
        let (r, gap) = log::replay(&path, g, Some(expect_seq), |op| loading.apply(op))?;
        if let Some(found) = gap {
            // The first record of this log does not continue the previous one.
            if i == 0 || found < expect_seq {
                return Err(Error::corrupt(
                    &path,
                    format!("its first record has sequence number {found}, expected {expect_seq}"),
                ));
            }
            // The previous log lost its tail (power loss before a sync); what came
            // after it cannot be applied without a hole in the history: drop it —
            // unless a record after the hole says the lost records had been synced.
            check_unproven(&path, g, expect_seq)?;
            hole_from = Some(i);
            dropped.push(format!(
                "{} and later logs (they start at sequence number {found}, after a lost tail)",
                path.display()
            ));
            truncations.push(Truncation {
                gen: g,
                len: super::format::FILE_HEADER_LEN as u64,
            });
            log_lens.push(super::format::FILE_HEADER_LEN as u64);
            continue;
        }
        expect_seq += r.records;
        proven = proven.max(r.proven);
        if let Some(why) = r.torn {
            dropped.push(format!(
                "{} from offset {} on ({why})",
                path.display(),
                r.good_len
            ));
            truncations.push(Truncation {
                gen: g,
                len: r.good_len,
            });
            // Later logs, if any, are checked for a gap (a torn tail drops its record).
        }
        log_lens.push(r.good_len);
    }

    // 3. Everything read cleanly: the repairs and tidying to make once the store
    // accepts this state.
    let superseded = listing
        .snapshots
        .iter()
        .filter(|&&g| g < base_gen)
        .map(|&g| FileName::Snapshot(g))
        .chain(
            listing
                .logs
                .iter()
                .filter(|&&g| g < base_gen)
                .map(|&g| FileName::Log(g)),
        )
        .collect();
    let mut repairs = Repairs {
        truncations,
        tmp: listing.tmp.clone(),
        superseded,
        created: None,
        dropped,
    };

    // 4. The log to append to: the newest, or a new first one.
    let (log, log_len, older) = match logs.last() {
        Some(&g) => {
            let path = dir.join(FileName::Log(g).to_string());
            let log = LogFile::open_for_append(&config.io, &path, g)?;
            let len = log_lens.last().copied().unwrap_or(0);
            let older: u64 = log_lens.iter().rev().skip(1).sum();
            (log, len, older)
        }
        None => {
            let log = LogFile::create(&config.io, dir, base_gen)?;
            repairs.created = Some(log.path.clone());
            (log, super::format::FILE_HEADER_LEN as u64, 0)
        }
    };
    let state = loading.finish();
    let inner = Inner {
        config,
        dir: dir.to_path_buf(),
        state: RwLock::new(state),
        writer: Mutex::new(Writer {
            log: Arc::new(log),
            retired: Vec::new(),
            log_len,
            appender: log::Appender::default(),
            older_logs_bytes: older,
            next_seq: expect_seq,
            synced_seq: proven.min(expect_seq),
            failed: None,
            compacting: false,
            retry_above: 0,
            buf: Vec::new(),
            entries: Vec::new(),
        }),
        _lock: lock,
    };
    Ok((inner, repairs))
}

/// A log after a hole in the history (the tail of an earlier log was lost) may be
/// dropped only if none of its records says a record from `hole` on had been synced:
/// otherwise the lost records were synced data, and their loss is damage (*corrupt*).
fn check_unproven(path: &Path, gen: u64, hole: u64) -> Result<()> {
    let (r, _) = log::replay(path, gen, None, |_| {})?;
    if r.proven > hole {
        return Err(Error::corrupt(
            path,
            format!(
                "record {hole} is missing from the logs before this one, but a record in \
                 this one was written after it had been synced"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The rules for several logs after the newest snapshot (docs/memfile-format.md,
    //! "Recovery"): logs must be consecutive; the first record of a later log must
    //! continue the sequence of the one before, except that a log whose tail was lost
    //! (power loss before a sync) makes every later log unusable: they are dropped.
    use std::io::Write;

    use super::*;
    use crate::engine::memfile::format::{self, FILE_HEADER_LEN, FRAME_HEADER_LEN};
    use crate::engine::WriteOp;
    use crate::error::ErrorKind;

    /// Writes log `gen` holding one put per sequence number in `seqs` (key `k<seq>`),
    /// claiming nothing about what was synced.
    fn write_log(dir: &Path, gen: u64, seqs: std::ops::Range<u64>) {
        write_log_claiming(dir, gen, seqs, 0);
    }

    /// Like [`write_log`], each record claiming records below `synced` were synced.
    fn write_log_claiming(dir: &Path, gen: u64, seqs: std::ops::Range<u64>, synced: u64) {
        let log = LogFile::create(&Io::real(), dir, gen).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log.path)
            .unwrap();
        for seq in seqs {
            let key = format!("k{seq}");
            let value = [0u8, b'v'];
            let ops = [WriteOp::Put {
                bucket: "b",
                key: key.as_bytes(),
                value: &value,
            }];
            let mut buf = vec![0u8; FRAME_HEADER_LEN];
            let head = log::Head { seq, synced };
            log::encode_batch(&mut buf, head, &ops, &mut Vec::new()).unwrap();
            format::seal_frame(&mut buf, 0).unwrap();
            file.write_all(&buf).unwrap();
        }
    }

    /// Opens and makes the open's repairs, as the engine does once the store agrees.
    fn open_repaired(dir: &Path) -> Inner {
        let (inner, repairs) = open(dir, MemfileConfig::default()).unwrap();
        repairs.apply(&Io::real(), dir).unwrap();
        inner
    }

    fn keys(inner: &Inner) -> Vec<String> {
        let st = inner.state.read();
        let mut keys: Vec<String> = st
            .buckets
            .get("b")
            .map(|m| {
                m.range(
                    std::ops::Bound::Unbounded,
                    std::ops::Bound::Unbounded,
                    false,
                )
                .map(|e| String::from_utf8(e.key().to_vec()).unwrap())
                .collect()
            })
            .unwrap_or_default();
        keys.sort_by_key(|k| k[1..].parse::<u64>().unwrap());
        keys
    }

    fn log_len(dir: &Path, gen: u64) -> u64 {
        std::fs::metadata(dir.join(FileName::Log(gen).to_string()))
            .unwrap()
            .len()
    }

    #[test]
    fn consecutive_logs_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 1, 0..3);
        write_log(dir.path(), 2, 3..5);
        let inner = open_repaired(dir.path());
        assert_eq!(keys(&inner), ["k0", "k1", "k2", "k3", "k4"]);
        let w = inner.writer.lock();
        assert_eq!((w.log.gen, w.next_seq), (2, 5), "appends continue log 2");
    }

    #[test]
    fn a_missing_log_between_two_others_is_corrupt_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 1, 0..3);
        write_log(dir.path(), 3, 3..5);
        let before = (log_len(dir.path(), 1), log_len(dir.path(), 3));
        let err = open(dir.path(), MemfileConfig::default()).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(
            err.to_string().contains("log-"),
            "names the missing log: {err}"
        );
        assert!(err.to_string().contains("missing"), "{err}");
        assert_eq!(before, (log_len(dir.path(), 1), log_len(dir.path(), 3)));
    }

    #[test]
    fn a_sequence_gap_after_a_lost_tail_drops_the_later_logs() {
        let dir = tempfile::tempdir().unwrap();
        // Record 3, the end of log 1, was lost; log 2 starts at 4, log 3 follows it.
        write_log(dir.path(), 1, 0..3);
        write_log(dir.path(), 2, 4..6);
        write_log(dir.path(), 3, 6..7);
        let inner = open_repaired(dir.path());
        assert_eq!(
            keys(&inner),
            ["k0", "k1", "k2"],
            "history stops at the hole"
        );
        for gen in [2, 3] {
            assert_eq!(
                log_len(dir.path(), gen),
                FILE_HEADER_LEN as u64,
                "log {gen}"
            );
        }
        let w = inner.writer.lock();
        assert_eq!(
            (w.log.gen, w.next_seq),
            (3, 3),
            "appends go on without a gap"
        );
        drop(w);
        drop(inner);
        // And the repaired directory opens the same way again.
        let again = open_repaired(dir.path());
        assert_eq!(keys(&again), ["k0", "k1", "k2"]);
    }

    #[test]
    fn a_lost_tail_that_a_later_log_says_was_synced_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        // Record 3 is missing, and log 3 was written after records up to 4 were synced.
        write_log(dir.path(), 1, 0..3);
        write_log(dir.path(), 2, 4..6);
        write_log_claiming(dir.path(), 3, 6..7, 5);
        let lens: Vec<u64> = (1..=3).map(|g| log_len(dir.path(), g)).collect();
        let err = open(dir.path(), MemfileConfig::default()).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("record 3 is missing"), "{err}");
        let after: Vec<u64> = (1..=3).map(|g| log_len(dir.path(), g)).collect();
        assert_eq!(lens, after, "left untouched");
    }

    #[test]
    fn a_later_log_that_goes_back_in_sequence_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 1, 0..3);
        write_log(dir.path(), 2, 2..4);
        let len2 = log_len(dir.path(), 2);
        let err = open(dir.path(), MemfileConfig::default()).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.to_string().contains("expected 3"), "{err}");
        assert_eq!(log_len(dir.path(), 2), len2, "left untouched");
    }

    #[test]
    fn a_first_log_that_does_not_start_the_history_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 1, 5..7);
        let err = open(dir.path(), MemfileConfig::default()).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.to_string().contains("expected 0"), "{err}");
    }
}
