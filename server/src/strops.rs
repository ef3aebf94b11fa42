//! The byte-level work of Redis's string commands, as Redis 7.0 does it, apart
//! from any store: ranges (GETRANGE, SETRANGE), bits (GETBIT, SETBIT, BITCOUNT,
//! BITPOS, BITOP), the longest common subsequence (LCS) and INCRBYFLOAT's
//! arithmetic. The command handlers read the values, call these and write back.

use num_bigint::{BigInt, BigUint, Sign};

/// GETRANGE's slice of `v` for `start` and `end` (inclusive, negative counts from
/// the end), as Redis clamps them.
pub fn getrange(v: &[u8], start: i64, end: i64) -> &[u8] {
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return &[];
    }
    let mut start = if start < 0 {
        len.saturating_add(start)
    } else {
        start
    };
    let mut end = if end < 0 {
        len.saturating_add(end)
    } else {
        end
    };
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return &[];
    }
    // 0 <= start <= end < len here.
    &v[start as usize..=end as usize]
}

/// The length SETRANGE would make a value of `len` bytes by writing `add` bytes
/// at `offset`, or `None` past `max`.
pub fn setrange_len(len: usize, offset: u64, add: usize, max: u64) -> Option<usize> {
    let end = offset.checked_add(add as u64)?;
    if end > max {
        return None;
    }
    Some(len.max(usize::try_from(end).ok()?))
}

/// Writes `src` into `v` at `offset`, padding with zero bytes. The caller has
/// checked the size with [`setrange_len`].
pub fn setrange(v: &mut Vec<u8>, offset: usize, src: &[u8]) {
    let end = offset + src.len();
    if v.len() < end {
        v.resize(end, 0);
    }
    v[offset..end].copy_from_slice(src);
}

/// The bit at `offset` (bit 0 is the most significant bit of byte 0); 0 past the
/// end.
pub fn getbit(v: &[u8], offset: u64) -> u8 {
    let byte = offset >> 3;
    match usize::try_from(byte).ok().and_then(|b| v.get(b)) {
        Some(b) => (b >> (7 - (offset & 7) as u8)) & 1,
        None => 0,
    }
}

/// Sets the bit at `offset` to `on`, growing `v` with zero bytes, and returns
/// the bit it held. The caller has checked that `offset / 8 + 1` bytes fit.
pub fn setbit(v: &mut Vec<u8>, offset: u64, on: bool) -> u8 {
    let byte = (offset >> 3) as usize;
    if v.len() <= byte {
        v.resize(byte + 1, 0);
    }
    let shift = 7 - (offset & 7) as u8;
    let old = (v[byte] >> shift) & 1;
    if on {
        v[byte] |= 1 << shift;
    } else {
        v[byte] &= !(1 << shift);
    }
    old
}

/// A BITCOUNT/BITPOS range after Redis's index conversions, in bits: the first
/// and last bit (inclusive), or `None` for an empty range.
fn bit_range(len: usize, start: i64, end: i64, bits: bool) -> Option<(u64, u64)> {
    let mut total = len as i64;
    if bits {
        total = total.saturating_mul(8);
    }
    let mut start = if start < 0 {
        total.saturating_add(start)
    } else {
        start
    };
    let mut end = if end < 0 {
        total.saturating_add(end)
    } else {
        end
    };
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    if start > end {
        return None;
    }
    if bits {
        Some((start as u64, end as u64))
    } else {
        Some((start as u64 * 8, end as u64 * 8 + 7))
    }
}

/// BITCOUNT: set bits of `v`, in the whole value or in `range` (start, end, and
/// whether they count bits rather than bytes).
pub fn bitcount(v: &[u8], range: Option<(i64, i64, bool)>) -> u64 {
    let (first, last) = match range {
        None if v.is_empty() => return 0,
        None => (0, v.len() as u64 * 8 - 1),
        Some((s, e, bits)) => {
            if s < 0 && e < 0 && s > e {
                return 0;
            }
            match bit_range(v.len(), s, e, bits) {
                Some(r) => r,
                None => return 0,
            }
        }
    };
    let (fb, lb) = ((first / 8) as usize, (last / 8) as usize);
    let mut n: u64 = v[fb..=lb].iter().map(|b| u64::from(b.count_ones())).sum();
    // Bits of the edge bytes outside the range.
    let head = (first % 8) as u32;
    if head > 0 {
        n -= u64::from((v[fb] >> (8 - head)).count_ones());
    }
    let tail = 7 - (last % 8) as u32;
    if tail > 0 {
        n -= u64::from((v[lb] & ((1u8 << tail) - 1)).count_ones());
    }
    n
}

/// BITPOS: the first bit equal to `bit` in `v` within `range` (start, optional
/// end, whether they count bits), as Redis answers: -1 when there is none, except
/// that looking for a 0 with no end given finds the first bit past the value
/// (a missing key, or a value's right, is zeros without end).
pub fn bitpos(v: &[u8], bit: bool, range: Option<(i64, Option<i64>, bool)>) -> i64 {
    let (first, last, end_given) = match range {
        None if v.is_empty() => return -1,
        None => (0, v.len() as u64 * 8 - 1, false),
        Some((s, e, bits)) => {
            let end = e.unwrap_or(if bits {
                (v.len() as i64).saturating_mul(8).saturating_add(7)
            } else {
                v.len() as i64 - 1
            });
            match bit_range(v.len(), s, end, bits) {
                Some((f, l)) => (f, l, e.is_some()),
                None => return -1,
            }
        }
    };
    let want = u8::from(bit);
    let mut i = first;
    while i <= last {
        // Whole bytes that cannot hold the bit are skipped at once.
        if i % 8 == 0 && i + 7 <= last {
            let b = v[(i / 8) as usize];
            if (bit && b == 0) || (!bit && b == 0xff) {
                i += 8;
                continue;
            }
        }
        if getbit(v, i) == want {
            return i as i64;
        }
        i += 1;
    }
    if !bit && !end_given {
        return (last + 1) as i64;
    }
    -1
}

/// A BITOP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    /// AND
    And,
    /// OR
    Or,
    /// XOR
    Xor,
    /// NOT (one source)
    Not,
}

/// BITOP over `srcs` (a missing key is an empty value; shorter values are padded
/// with zero bytes to the longest).
pub fn bitop(op: BitOp, srcs: &[Option<&[u8]>]) -> Vec<u8> {
    let len = srcs
        .iter()
        .map(|s| s.map_or(0, <[u8]>::len))
        .max()
        .unwrap_or(0);
    let byte = |s: &Option<&[u8]>, i: usize| s.and_then(|v| v.get(i).copied()).unwrap_or(0);
    (0..len)
        .map(|i| match op {
            BitOp::Not => !byte(&srcs[0], i),
            BitOp::And => srcs.iter().fold(0xff, |acc, s| acc & byte(s, i)),
            BitOp::Or => srcs.iter().fold(0, |acc, s| acc | byte(s, i)),
            BitOp::Xor => srcs.iter().fold(0, |acc, s| acc ^ byte(s, i)),
        })
        .collect()
}

/// One LCS match: a range of `a`, the range of `b` it matches (inclusive), and
/// its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LcsMatch {
    /// First and last index in the first value.
    pub a: (u64, u64),
    /// First and last index in the second value.
    pub b: (u64, u64),
    /// Length of the match.
    pub len: u64,
}

/// The result of [`lcs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lcs {
    /// The longest common subsequence.
    pub text: Vec<u8>,
    /// The matching ranges, last first (as Redis lists them), those shorter than
    /// the minimum left out.
    pub matches: Vec<LcsMatch>,
}

/// Bytes of the table [`lcs`] needs for values of these lengths (4 bytes a cell).
pub fn lcs_table_bytes(a: usize, b: usize) -> u128 {
    (a as u128 + 1) * (b as u128 + 1) * 4
}

/// The longest common subsequence of `a` and `b` and its matching ranges, by
/// Redis's dynamic programme (the table is `(a+1)(b+1)` cells: check
/// [`lcs_table_bytes`] first).
pub fn lcs(a: &[u8], b: &[u8], min_match: u64) -> Lcs {
    let (alen, blen) = (a.len(), b.len());
    let w = blen + 1;
    let mut t = vec![0u32; (alen + 1) * w];
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let mut idx = t[alen * w + blen] as usize;
    let mut text = vec![0u8; idx];
    let mut matches = Vec::new();
    // Redis's walk back from the end: `arange_start == alen` means no range open.
    let (mut i, mut j) = (alen, blen);
    let (mut as_, mut ae, mut bs, mut be) = (alen, 0usize, 0usize, 0usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            text[idx - 1] = a[i - 1];
            if as_ == alen {
                as_ = i - 1;
                ae = i - 1;
                bs = j - 1;
                be = j - 1;
            } else if as_ == i && bs == j {
                as_ -= 1;
                bs -= 1;
            } else {
                emit = true;
            }
            if as_ == 0 || bs == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if as_ != alen {
                emit = true;
            }
        }
        if emit {
            let len = (ae - as_ + 1) as u64;
            if min_match == 0 || len >= min_match {
                matches.push(LcsMatch {
                    a: (as_ as u64, ae as u64),
                    b: (bs as u64, be as u64),
                    len,
                });
            }
            as_ = alen;
        }
    }
    Lcs { text, matches }
}

// INCRBYFLOAT: Redis computes in C's `long double` (the x87 80-bit format on
// x86-64: a 64-bit mantissa) and prints with "%.17Lf", trailing zeros removed.
// The same arithmetic is done here exactly, with big integers, so the replies are
// Redis's to the last digit.

/// A finite long double: `(-1)^neg * m * 2^e`, `m` below 2^64 (0 for zero).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LongDouble {
    neg: bool,
    m: u64,
    e: i64,
}

/// A parsed INCRBYFLOAT operand.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    Finite(LongDouble),
    Infinite,
}

/// Largest binary exponent of a finite long double (values below 2^16384).
const LD_MAX_EXP: i64 = 16384;
/// Smallest normal long double is 2^-16382; smaller results are refused.
const LD_MIN_EXP: i64 = -16382;
/// Redis refuses float strings this long or longer (its conversion buffer).
const MAX_FLOAT_CHARS: usize = 5 * 1024;

/// Rounds `num / den` (both positive) to a 64-bit mantissa, nearest-even.
fn round_ratio(num: &BigUint, den: &BigUint) -> (u64, i64) {
    let shift = 66 + den.bits() as i64 - num.bits() as i64;
    let (n, d) = if shift >= 0 {
        (num << shift as u64, den.clone())
    } else {
        (num.clone(), den << (-shift) as u64)
    };
    let q = &n / &d;
    let sticky = (&n % &d) != BigUint::ZERO;
    let mut e = -shift;
    let extra = q.bits().saturating_sub(64);
    let mut m = &q >> extra;
    e += extra as i64;
    if extra > 0 {
        let low = &q & ((BigUint::from(1u8) << extra) - 1u8);
        let half = BigUint::from(1u8) << (extra - 1);
        let odd = m.bit(0);
        if low > half || (low == half && (sticky || odd)) {
            m += 1u8;
        }
    }
    if m.bits() > 64 {
        m >>= 1u8;
        e += 1;
    }
    let digits = m.to_u64_digits();
    (digits.first().copied().unwrap_or(0), e)
}

fn finite(neg: bool, num: &BigUint, den: &BigUint) -> Option<Operand> {
    if *num == BigUint::ZERO {
        return Some(Operand::Finite(LongDouble { neg, m: 0, e: 0 }));
    }
    let (m, e) = round_ratio(num, den);
    if e + 64 > LD_MAX_EXP {
        return Some(Operand::Infinite);
    }
    if e + 63 < LD_MIN_EXP {
        return None;
    }
    Some(Operand::Finite(LongDouble { neg, m, e }))
}

/// Parses a float as Redis's `string2ld` does (C's `strtold` over the whole
/// argument, nothing before or after it): an optional sign, decimal digits with an
/// optional point and exponent, or `inf`/`infinity`. NaN, blanks, a NUL, hex
/// floats and values that overflow or underflow are refused.
fn parse_ld(s: &[u8]) -> Option<Operand> {
    if s.is_empty() || s.len() >= MAX_FLOAT_CHARS {
        return None;
    }
    let (neg, rest) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = rest.to_ascii_lowercase();
    if lower == b"inf" || lower == b"infinity" {
        return Some(Operand::Infinite);
    }
    let (mant, exp) = match rest.iter().position(|&c| c == b'e' || c == b'E') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int_part, frac) = match mant.iter().position(|&c| c == b'.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, &[][..]),
    };
    if int_part.is_empty() && frac.is_empty() {
        return None;
    }
    if !int_part.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let mut e10: i64 = -(frac.len() as i64);
    if let Some(x) = exp {
        let (eneg, digits) = match x.first() {
            Some(b'-') => (true, &x[1..]),
            Some(b'+') => (false, &x[1..]),
            _ => (false, x),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // Past this any nonzero value overflows or underflows anyway.
        let n: i64 = std::str::from_utf8(digits)
            .ok()?
            .parse::<i64>()
            .unwrap_or(i64::MAX)
            .min(100_000);
        e10 += if eneg { -n } else { n };
    }
    let digits: Vec<u8> = int_part.iter().chain(frac).map(|c| c - b'0').collect();
    let d = BigUint::from_radix_be(&digits, 10)?;
    if d == BigUint::ZERO {
        return finite(neg, &d, &BigUint::from(1u8));
    }
    // A value certainly out of range, whatever its digits: refuse before computing
    // a power of ten that large.
    let magnitude = e10 + digits.len() as i64;
    if !(-5000..=5000).contains(&magnitude) {
        return None;
    }
    let ten = BigUint::from(10u8);
    let value = if e10 >= 0 {
        finite(neg, &(d * ten.pow(e10 as u32)), &BigUint::from(1u8))
    } else {
        finite(neg, &d, &ten.pow((-e10) as u32))
    };
    // strtold's ERANGE: an overflow is not a float to Redis (only "inf" is).
    match value {
        Some(Operand::Infinite) => None,
        v => v,
    }
}

fn signed(x: &LongDouble, shift: i64) -> BigInt {
    let mag = BigUint::from(x.m) << shift as u64;
    BigInt::from_biguint(if x.neg { Sign::Minus } else { Sign::Plus }, mag)
}

/// `a + b` rounded to a long double.
fn add_ld(a: &LongDouble, b: &LongDouble) -> Option<Operand> {
    let emin = a.e.min(b.e);
    let sum = signed(a, a.e - emin) + signed(b, b.e - emin);
    let (sign, mag) = sum.into_parts();
    if mag == BigUint::ZERO {
        // x + (-x) is +0 when rounding to nearest.
        return Some(Operand::Finite(LongDouble {
            neg: false,
            m: 0,
            e: 0,
        }));
    }
    let (num, den) = if emin >= 0 {
        (mag << emin as u64, BigUint::from(1u8))
    } else {
        (mag, BigUint::from(1u8) << (-emin) as u64)
    };
    finite(sign == Sign::Minus, &num, &den)
}

/// `x` as C's `printf("%.17Lf")` prints it, then with trailing zeros (and a
/// trailing point) removed, and `-0` as `0`: Redis's "human friendly" form.
fn format_ld(x: &LongDouble) -> String {
    const PLACES: u32 = 17;
    let scale = BigUint::from(10u8).pow(PLACES);
    let scaled = BigUint::from(x.m) * &scale;
    let q = if x.e >= 0 {
        scaled << x.e as u64
    } else {
        let k = (-x.e) as u64;
        let q = &scaled >> k;
        let rem = &scaled - (&q << k);
        let half = BigUint::from(1u8) << (k - 1);
        if rem > half || (rem == half && q.bit(0)) {
            q + 1u8
        } else {
            q
        }
    };
    let int = &q / &scale;
    let frac = (&q % &scale).to_string();
    let mut s = format!("{int}.{frac:0>17}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    if x.neg && s != "0" {
        s.insert(0, '-');
    }
    s
}

/// Why INCRBYFLOAT refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatError {
    /// The value or the increment is not a float (Redis: "value is not a valid
    /// float").
    NotFloat,
    /// The sum is not finite (Redis: "increment would produce NaN or Infinity").
    NotFinite,
}

/// INCRBYFLOAT: `value` (the stored text; `None` for a missing key, which is 0)
/// plus `incr`, as the text Redis stores and replies.
///
/// # Errors
/// [`FloatError`] as Redis refuses.
pub fn incrbyfloat(value: Option<&[u8]>, incr: &[u8]) -> Result<String, FloatError> {
    let v = match value {
        Some(v) => parse_ld(v).ok_or(FloatError::NotFloat)?,
        None => Operand::Finite(LongDouble {
            neg: false,
            m: 0,
            e: 0,
        }),
    };
    let i = parse_ld(incr).ok_or(FloatError::NotFloat)?;
    match (v, i) {
        (Operand::Finite(a), Operand::Finite(b)) => match add_ld(&a, &b) {
            Some(Operand::Finite(r)) => Ok(format_ld(&r)),
            _ => Err(FloatError::NotFinite),
        },
        _ => Err(FloatError::NotFinite),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getrange_clamps_as_redis() {
        let v = b"Hello World";
        assert_eq!(getrange(v, 0, 3), b"Hell");
        assert_eq!(getrange(v, 0, -1), v);
        assert_eq!(getrange(v, -4, -1), b"orld");
        assert_eq!(getrange(v, 5, 3), b"");
        assert_eq!(getrange(v, 5, 5000), b" World");
        assert_eq!(getrange(v, -5000, 10000), v);
        assert_eq!(getrange(v, -1, -5), b"");
        assert_eq!(getrange(b"", 0, -1), b"");
        assert_eq!(getrange(v, 0, i64::MAX), v);
        // Both clamp to 0: the first byte, as Redis answers.
        assert_eq!(getrange(v, i64::MIN, i64::MIN + 1), b"H");
    }

    #[test]
    fn setrange_pads_and_is_bounded() {
        let mut v = b"Hello World".to_vec();
        setrange(&mut v, 6, b"Redis");
        assert_eq!(v, b"Hello Redis");
        let mut v = Vec::new();
        setrange(&mut v, 3, b"ab");
        assert_eq!(v, b"\0\0\0ab");
        assert_eq!(setrange_len(11, 6, 5, 100), Some(11));
        assert_eq!(setrange_len(0, 95, 6, 100), None);
        assert_eq!(setrange_len(0, u64::MAX, 1, u64::MAX), None);
    }

    #[test]
    fn bits_msb_first() {
        let mut v = Vec::new();
        assert_eq!(setbit(&mut v, 7, true), 0);
        assert_eq!(v, [1]);
        assert_eq!(setbit(&mut v, 0, true), 0);
        assert_eq!(setbit(&mut v, 0, false), 1);
        assert_eq!(v, [1]);
        assert_eq!(getbit(b"`", 1), 1);
        assert_eq!(getbit(b"`", 3), 0);
        assert_eq!(getbit(b"`", 1000), 0);
        assert_eq!(getbit(b"`", u64::MAX), 0);
    }

    #[test]
    fn bitcount_bytes_and_bits() {
        assert_eq!(bitcount(b"foobar", None), 26);
        assert_eq!(bitcount(b"foobar", Some((0, 0, false))), 4);
        assert_eq!(bitcount(b"foobar", Some((1, 1, false))), 6);
        assert_eq!(bitcount(b"foobar", Some((5, 30, true))), 17);
        assert_eq!(bitcount(b"foobar", Some((-1, -2, false))), 0);
        assert_eq!(bitcount(b"", None), 0);
    }

    #[test]
    fn bitpos_as_redis() {
        assert_eq!(bitpos(b"\xff\xf0\x00", false, None), 12);
        assert_eq!(bitpos(b"\x00\xff\xf0", true, Some((0, None, false))), 8);
        assert_eq!(bitpos(b"\x00\xff\xf0", true, Some((2, None, false))), 16);
        assert_eq!(bitpos(b"\x00\x00\x00", true, None), -1);
        assert_eq!(bitpos(b"\xff\xff\xff", false, None), 24);
        assert_eq!(
            bitpos(b"\xff\xff\xff", false, Some((0, Some(-1), false))),
            -1
        );
        assert_eq!(bitpos(b"\x00\xff\xf0", true, Some((7, Some(15), true))), 8);
        assert_eq!(bitpos(b"", false, None), -1);
    }

    #[test]
    fn bitop_pads_with_zeros() {
        let a: &[u8] = b"\x0f\xf0";
        let b: &[u8] = b"\xff";
        assert_eq!(bitop(BitOp::And, &[Some(a), Some(b)]), [0x0f, 0]);
        assert_eq!(bitop(BitOp::Or, &[Some(a), None]), [0x0f, 0xf0]);
        assert_eq!(bitop(BitOp::Xor, &[Some(a), Some(b)]), [0xf0, 0xf0]);
        assert_eq!(bitop(BitOp::Not, &[Some(a)]), [0xf0, 0x0f]);
        assert_eq!(bitop(BitOp::And, &[None, None]), Vec::<u8>::new());
    }

    /// The examples of Redis's LCS documentation and test suite.
    #[test]
    fn lcs_matches_redis() {
        let r = lcs(b"ohmytext", b"mynewtext", 0);
        assert_eq!(r.text, b"mytext");
        let want = [((4, 7), (5, 8), 4), ((2, 3), (0, 1), 2)];
        let got: Vec<_> = r.matches.iter().map(|m| (m.a, m.b, m.len)).collect();
        assert_eq!(got, want);
        assert_eq!(lcs(b"ohmytext", b"mynewtext", 4).matches.len(), 1);
        assert_eq!(lcs(b"", b"abc", 0).text, b"");
    }

    #[test]
    fn incrbyfloat_as_redis_long_double() {
        let f = |v: Option<&str>, i: &str| incrbyfloat(v.map(str::as_bytes), i.as_bytes());
        assert_eq!(f(None, "1").unwrap(), "1");
        assert_eq!(f(Some("1"), "0.25").unwrap(), "1.25");
        assert_eq!(f(Some("1.5"), "3.0e3").unwrap(), "3001.5");
        assert_eq!(f(Some("1"), "-1.1").unwrap(), "-0.1");
        assert_eq!(f(Some("10.5"), "0.1").unwrap(), "10.6");
        assert_eq!(f(Some("17179869184"), "1.5").unwrap(), "17179869185.5");
        assert_eq!(
            f(Some("17179869184"), "17179869184").unwrap(),
            "34359738368"
        );
        assert_eq!(
            f(Some("0.024390243902439025"), "-0.024390243902439025").unwrap(),
            "0"
        );
        assert_eq!(f(Some("5.0e3"), "2.0e2").unwrap(), "5200");
        assert_eq!(f(Some("0"), "+inf"), Err(FloatError::NotFinite));
        assert_eq!(f(Some("1"), "nan"), Err(FloatError::NotFloat));
        for bad in [" 11", "11 ", "1\u{0}2", "", "1e", "e5", ".", "0x10", "1..2"] {
            assert_eq!(f(Some(bad), "1"), Err(FloatError::NotFloat), "{bad:?}");
        }
        assert_eq!(f(Some("1e5000"), "1"), Err(FloatError::NotFloat));
    }
}
