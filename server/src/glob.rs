//! Redis's glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE): `*`, `?`, `[abc]`, `[^a]`,
//! `[a-z]` and `\x`, matched byte-wise as Redis's `stringmatchlen` does.
//!
//! A pattern is compiled once ([`Pattern::new`]): each character class becomes a
//! 256-bit set, so matching never rescans a class, and costs at most
//! O(pattern elements x string length) (one backtracking point, the last `*`).
//! Patterns are limited to [`MAX_PATTERN_LEN`] bytes.

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 4096;

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// This byte.
    Byte(u8),
    /// `?`: any one byte.
    Any,
    /// `*` (a run of them): any bytes.
    Star,
    /// `[...]`: a byte in the set.
    Class(Box<[u64; 4]>),
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
}

/// A pattern over [`MAX_PATTERN_LEN`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong(pub usize);

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ERR pattern is {} bytes, over libstate's limit of {MAX_PATTERN_LEN}",
            self.0
        )
    }
}

impl Pattern {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// [`TooLong`] for a pattern over [`MAX_PATTERN_LEN`] bytes.
    pub fn new(pattern: &[u8]) -> Result<Pattern, TooLong> {
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(TooLong(pattern.len()));
        }
        let mut tokens = Vec::new();
        let mut p = 0;
        while p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    p += 1;
                }
                b'?' => {
                    tokens.push(Token::Any);
                    p += 1;
                }
                b'\\' if p + 1 < pattern.len() => {
                    tokens.push(Token::Byte(pattern[p + 1]));
                    p += 2;
                }
                b'[' => {
                    // The set is what Redis's reading of the class accepts, byte by
                    // byte: the same semantics, paid once per pattern.
                    let mut set = [0u64; 4];
                    for c in 0..=255u8 {
                        if match_one(pattern, p, c).is_some() {
                            set[usize::from(c >> 6)] |= 1 << (c & 63);
                        }
                    }
                    tokens.push(Token::Class(Box::new(set)));
                    p = class_end(pattern, p);
                }
                c => {
                    tokens.push(Token::Byte(c));
                    p += 1;
                }
            }
        }
        Ok(Pattern { tokens })
    }

    /// Whether `s` matches.
    pub fn matches(&self, s: &[u8]) -> bool {
        let t = &self.tokens;
        let (mut p, mut i) = (0usize, 0usize);
        // Backtracking point of the last `*`: (token index after it, string index).
        let mut star: Option<(usize, usize)> = None;
        loop {
            if p < t.len() {
                let hit = match &t[p] {
                    Token::Star => {
                        p += 1;
                        if p == t.len() {
                            return true;
                        }
                        star = Some((p, i));
                        continue;
                    }
                    _ if i >= s.len() => false,
                    Token::Any => true,
                    Token::Byte(b) => *b == s[i],
                    Token::Class(set) => set[usize::from(s[i] >> 6)] & (1 << (s[i] & 63)) != 0,
                };
                if hit {
                    p += 1;
                    i += 1;
                    continue;
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
}

/// Whether `s` matches `pattern` (compiled for this one call; a pattern over
/// [`MAX_PATTERN_LEN`] matches nothing).
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    Pattern::new(pattern).is_ok_and(|p| p.matches(s))
}

/// The index after the class that starts at `p` (`[`).
fn class_end(pattern: &[u8], p: usize) -> usize {
    let mut q = p + 1;
    if q < pattern.len() && pattern[q] == b'^' {
        q += 1;
    }
    while q < pattern.len() && pattern[q] != b']' {
        if pattern[q] == b'\\' && q + 1 < pattern.len() {
            q += 2;
        } else if q + 2 < pattern.len() && pattern[q + 1] == b'-' && pattern[q + 2] != b']' {
            q += 3;
        } else {
            q += 1;
        }
    }
    if q < pattern.len() {
        q + 1
    } else {
        q
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
        // Unclosed classes and escapes at the end, as Redis reads them.
        assert!(matches(b"a[bc", b"ab"));
        assert!(!matches(b"a[bc", b"ad"));
        assert!(matches(b"a[z-a]", b"ac"));
        assert!(matches(b"a[\\]]", b"a]"));
        assert!(matches(b"a\\", b"a\\"));
    }

    /// A huge character class is compiled once: matching a key costs the key's
    /// length, not the class's length per byte (the 12.6 s KEYS of issue 22).
    #[test]
    fn a_long_class_is_compiled_once_and_long_patterns_are_refused() {
        let mut p = b"*[".to_vec();
        p.extend(std::iter::repeat_n(b'b', super::MAX_PATTERN_LEN - 3));
        p.push(b']');
        let compiled = super::Pattern::new(&p).unwrap();
        assert_eq!(compiled.tokens.len(), 2);
        let key = vec![b'a'; 1024];
        assert!(!compiled.matches(&key));
        let mut hit = key.clone();
        hit.push(b'b');
        assert!(compiled.matches(&hit));
        let too_long = vec![b'a'; super::MAX_PATTERN_LEN + 1];
        assert!(super::Pattern::new(&too_long).is_err());
    }

    proptest::proptest! {
        /// The compiled matcher agrees with a direct reading of the pattern.
        #[test]
        fn compiled_agrees_with_the_reference(p in proptest::collection::vec(proptest::sample::select(b"ab*?[]^-\\".to_vec()), 0..12), s in proptest::collection::vec(proptest::sample::select(b"ab-]^".to_vec()), 0..10)) {
            proptest::prop_assert_eq!(super::matches(&p, &s), reference(&p, &s));
        }
    }

    /// Redis's stringmatchlen, recursively (exponential, for tests only).
    fn reference(p: &[u8], s: &[u8]) -> bool {
        if p.is_empty() {
            return s.is_empty();
        }
        match p[0] {
            b'*' => (0..=s.len()).any(|k| reference(&p[1..], &s[k..])),
            _ if s.is_empty() => false,
            _ => match super::match_one(p, 0, s[0]) {
                Some(next) => reference(&p[next..], &s[1..]),
                None => false,
            },
        }
    }
}
