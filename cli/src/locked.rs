//! Who holds a locked store: best effort, from Linux's `/proc/locks`.
//!
//! Both engines lock a file inside the store directory (`flock`), so a lock whose
//! inode is one of the directory's files names the process that owns the store.
//! Anywhere this does not work, the list is simply empty.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

/// Processes (pid, command line, or the command name if the command line cannot be
/// read) holding a lock on a file directly in `dir`.
pub fn holders(dir: &Path) -> Vec<(u32, String)> {
    let Ok(locks) = fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let inodes = file_inodes(dir);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in locks.lines() {
        let Some((pid, inode)) = parse_lock_line(line) else {
            continue;
        };
        if inodes.contains(&inode) && pid != std::process::id() && seen.insert(pid) {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .map(|b| {
                    b.split(|c| *c == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .filter(|c| !c.is_empty());
            let name = cmdline.unwrap_or_else(|| {
                fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "?".into())
            });
            out.push((pid, name));
        }
    }
    out
}

#[cfg(unix)]
fn file_inodes(dir: &Path) -> HashSet<u64> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return HashSet::new();
    };
    entries
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.ino())
        .collect()
}

#[cfg(not(unix))]
fn file_inodes(_dir: &Path) -> HashSet<u64> {
    HashSet::new()
}

/// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF` -> (1234, 5678). Lines of
/// waiting locks (`1: -> FLOCK ...`) are skipped.
fn parse_lock_line(line: &str) -> Option<(u32, u64)> {
    let mut fields = line.split_whitespace().skip(1);
    let kind = fields.next()?;
    if kind == "->" {
        return None;
    }
    let pid = fields.nth(2)?.parse().ok()?;
    let inode = fields.next()?.rsplit(':').next()?.parse().ok()?;
    Some((pid, inode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_lines_give_pid_and_inode_and_waiters_are_skipped() {
        assert_eq!(
            parse_lock_line("1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"),
            Some((1234, 5678))
        );
        assert_eq!(
            parse_lock_line("2: POSIX  ADVISORY  WRITE 99 00:2f:12 0 EOF"),
            Some((99, 12))
        );
        assert_eq!(
            parse_lock_line("1: -> FLOCK  ADVISORY  WRITE 77 08:01:5678 0 EOF"),
            None
        );
        assert_eq!(parse_lock_line("garbage"), None);
    }
}
