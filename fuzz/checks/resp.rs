//! Any bytes sent on a Redis-protocol connection get replies or a protocol error,
//! never a panic; the replies are well-formed RESP2, or RESP3 after `HELLO 3`.

use std::sync::OnceLock;

use state_server::fuzzing::Harness;
use state_service::StateService;

fn harness() -> &'static Harness {
    static H: OnceLock<(tempfile::TempDir, Harness)> = OnceLock::new();
    &H.get_or_init(|| {
        let (dir, store) = crate::support::memfile_store();
        (dir, Harness::new(StateService::new(store)))
    })
    .1
}

/// Skips one RESP2 or RESP3 reply at the start of `b`; returns its length.
fn reply_len(b: &[u8]) -> usize {
    let line_end = b
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("reply line ends in CRLF")
        + 2;
    let head = std::str::from_utf8(&b[1..line_end - 2]).expect("reply header is text");
    match b[0] {
        // Simple string, error, integer; RESP3 boolean, double, big number.
        b'+' | b'-' | b':' | b'#' | b',' | b'(' => line_end,
        // Bulk string; RESP3 blob error.
        b'$' | b'!' => {
            let n: i64 = head.parse().expect("bulk length");
            if n < 0 {
                line_end
            } else {
                line_end + n as usize + 2
            }
        }
        // Array, map; RESP3 set and push (subscription messages after HELLO 3).
        b'*' | b'%' | b'~' | b'>' => {
            let n: i64 = head.parse().expect("array length");
            let items = if b[0] == b'%' { 2 * n } else { n };
            let mut at = line_end;
            for _ in 0..items.max(0) {
                at += reply_len(&b[at..]);
            }
            at
        }
        b'=' => line_end + head.parse::<usize>().expect("verbatim length") + 2,
        b'_' => line_end,
        other => panic!("unknown reply type {other}"),
    }
}

pub fn check(data: &[u8]) {
    check_incremental(data);
    let out = harness().run("fuzz", data);
    let mut at = 0;
    while at < out.len() {
        at += reply_len(&out[at..]);
    }
    assert_eq!(at, out.len());
}

/// The incremental parser (`state_server::resp::Parser`), fed the same bytes in
/// pieces that end at every split point the input's first byte chooses, finds the
/// same requests as a one-shot parse of the whole input, and never examines more
/// than a bounded number of bytes per byte received.
pub fn check_incremental(data: &[u8]) {
    use state_server::resp::{parse, ParseLimits, Parsed, Parser};
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 16) + 1;
    let limits = ParseLimits {
        max_args: 64,
        max_bulk: 256,
        max_inline: 512,
        max_request: 2048,
    };
    // One shot: every request of the input, in order, as byte vectors.
    let whole = |buf: &[u8]| -> (Vec<Vec<Vec<u8>>>, bool) {
        let mut found = Vec::new();
        let mut at = 0;
        loop {
            match parse(&buf[at..], &limits) {
                Ok(Parsed::Request { args, len }) => {
                    found.push(
                        args.iter()
                            .map(|r| buf[at + r.start..at + r.end].to_vec())
                            .collect(),
                    );
                    at += len;
                }
                Ok(Parsed::Empty(n)) => at += n,
                Ok(Parsed::Incomplete) => return (found, false),
                Err(_) => return (found, true),
            }
        }
    };
    let (want, want_err) = whole(data);
    // Incremental: the bytes arrive `step` at a time into a buffer the way the
    // server keeps one (complete requests drained from its front).
    let mut parser = Parser::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut got: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut got_err = false;
    'feed: for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse(&buf, &limits) {
                Ok(Parsed::Request { args, len }) => {
                    got.push(args.iter().map(|r| buf[r.clone()].to_vec()).collect());
                    buf.drain(..len);
                }
                Ok(Parsed::Empty(n)) => {
                    buf.drain(..n);
                }
                Ok(Parsed::Incomplete) => break,
                Err(_) => {
                    got_err = true;
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(got, want[..got.len().min(want.len())].to_vec());
    if !got_err && !want_err {
        assert_eq!(got.len(), want.len());
    }
    if want_err && !got_err {
        // The one-shot parse saw an error the pieces never reached: impossible,
        // both saw the same bytes.
        panic!("the incremental parser missed a protocol error");
    }
    assert!(
        parser.scanned() <= (data.len() as u64 + 1) * 40,
        "scanned {} for {} bytes",
        parser.scanned(),
        data.len()
    );
}
