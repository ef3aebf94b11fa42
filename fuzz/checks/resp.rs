//! Any bytes sent on a Redis-protocol connection get replies or a protocol error,
//! never a panic; the replies are well-formed RESP2, or RESP3 after `HELLO 3`.

use std::sync::OnceLock;

use state_core::StateService;
use state_server::fuzzing::Harness;

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
    let out = harness().run("fuzz", data);
    let mut at = 0;
    while at < out.len() {
        at += reply_len(&out[at..]);
    }
    assert_eq!(at, out.len());
}
