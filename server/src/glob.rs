//! Redis's glob patterns (KEYS, SCAN MATCH): `*`, `?`, `[abc]`, `[^a]`, `[a-z]` and
//! `\x`, matched byte-wise as Redis's `stringmatchlen` does.

/// Whether `s` matches `pattern`.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    // Backtracking point of the last `*`: (pattern index after it, string index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, i));
                    continue;
                }
                _ if i < s.len() => {
                    if let Some(next) = match_one(pattern, p, s[i]) {
                        p = next;
                        i += 1;
                        continue;
                    }
                }
                _ => {}
            }
        } else if i == s.len() {
            return true;
        }
        // Mismatch: let the last star take one more byte.
        match star {
            Some((sp, si)) if si < s.len() => {
                star = Some((sp, si + 1));
                p = sp;
                i = si + 1;
            }
            _ => return false,
        }
    }
}

/// Matches one pattern element at `p` against byte `c`; the index after the element
/// if it matches.
fn match_one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        b'[' => {
            let mut q = p + 1;
            let negate = q < pattern.len() && pattern[q] == b'^';
            if negate {
                q += 1;
            }
            let mut hit = false;
            while q < pattern.len() && pattern[q] != b']' {
                if pattern[q] == b'\\' && q + 1 < pattern.len() {
                    hit |= pattern[q + 1] == c;
                    q += 2;
                } else if q + 2 < pattern.len() && pattern[q + 1] == b'-' && pattern[q + 2] != b']'
                {
                    let (a, b) = (
                        pattern[q].min(pattern[q + 2]),
                        pattern[q].max(pattern[q + 2]),
                    );
                    hit |= (a..=b).contains(&c);
                    q += 3;
                } else {
                    hit |= pattern[q] == c;
                    q += 1;
                }
            }
            // An unclosed class runs to the end of the pattern, as in Redis.
            let after = if q < pattern.len() { q + 1 } else { q };
            (hit != negate).then_some(after)
        }
        other => (other == c).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_cases() {
        let yes = [
            ("*", ""),
            ("*", "abc"),
            ("a*", "abc"),
            ("*c", "abc"),
            ("a?c", "abc"),
            ("h[ae]llo", "hello"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("user:*:name", "user:42:name"),
            ("a\\*", "a*"),
            ("*a*b*", "xxaxxbxx"),
        ];
        let no = [
            ("a*", "bac"),
            ("a?c", "ac"),
            ("h[ae]llo", "hillo"),
            ("h[^e]llo", "hello"),
            ("a\\*", "ab"),
            ("abc", "abcd"),
            ("*a*b", "xxaxxbxx_"),
        ];
        for (p, s) in yes {
            assert!(matches(p.as_bytes(), s.as_bytes()), "{p} {s}");
        }
        for (p, s) in no {
            assert!(!matches(p.as_bytes(), s.as_bytes()), "{p} {s}");
        }
    }
}
