//! RESP2, the Redis wire protocol, pure: commands are encoded into a byte
//! buffer and replies parsed out of one, so the connection code is only
//! I/O. A reply split anywhere across reads parses the same (the parser
//! says "incomplete" and is called again with more bytes).

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR …`: the command failed (the connection is fine).
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$…`; `None` is the nil bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*…`; `None` is the nil array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as an integer (an integer, or a bulk string holding one).
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// The reply as text (simple or bulk); `None` for nil and the rest.
    pub fn text(&self) -> Option<&str> {
        match self {
            Reply::Simple(s) => Some(s),
            Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// Appends one command (an array of bulk strings) to `out`.
pub fn encode<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.push(b'*');
    push_int(out, args.len() as i64);
    for a in args {
        let a = a.as_ref();
        out.push(b'$');
        push_int(out, a.len() as i64);
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Deeper nesting than any script of ours returns is a broken peer.
const MAX_DEPTH: usize = 8;

/// Parses one reply from the start of `buf`: the reply and the bytes it
/// took, `Ok(None)` when `buf` holds only part of one, an error when the
/// bytes are not RESP (the connection must then be dropped).
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err("reply nested too deep".into());
    }
    let Some(line_end) = find_crlf(buf, at) else {
        return Ok(None);
    };
    let Some(&tag) = buf.get(at) else { return Ok(None) };
    let line = &buf[at + 1..line_end];
    let next = line_end + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    let int = || -> Result<i64, String> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad integer {:?}", String::from_utf8_lossy(line)))
    };
    match tag {
        b'+' => Ok(Some((Reply::Simple(text()), next))),
        b'-' => Ok(Some((Reply::Error(text()), next))),
        b':' => Ok(Some((Reply::Int(int()?), next))),
        b'$' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Bulk(None), next)));
            }
            let n = usize::try_from(n).map_err(|_| "bulk length".to_string())?;
            if buf.len() < next + n + 2 {
                return Ok(None);
            }
            if &buf[next + n..next + n + 2] != b"\r\n" {
                return Err("bulk string not terminated".into());
            }
            Ok(Some((Reply::Bulk(Some(buf[next..next + n].to_vec())), next + n + 2)))
        }
        b'*' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Array(None), next)));
            }
            let mut items = Vec::with_capacity(usize::try_from(n.min(1024)).unwrap_or(0));
            let mut pos = next;
            for _ in 0..n {
                match parse_at(buf, pos, depth + 1)? {
                    Some((r, end)) => {
                        items.push(r);
                        pos = end;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), pos)))
        }
        other => Err(format!("unexpected reply type byte {other:#04x}")),
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    memchr::memmem::find(rest, b"\r\n").map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&["SET", "k", ""], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn every_reply_type_parses_and_says_how_much_it_took() {
        let wire = b"+OK\r\n-ERR no\r\n:-7\r\n$3\r\na\r\n\r\n$-1\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n*-1\r\n";
        let mut at = 0;
        let mut got = Vec::new();
        while at < wire.len() {
            let (r, end) = parse(&wire[at..]).expect("valid").expect("complete");
            got.push(r);
            at += end;
        }
        assert_eq!(
            got,
            vec![
                Reply::Simple("OK".into()),
                Reply::Error("ERR no".into()),
                Reply::Int(-7),
                Reply::Bulk(Some(b"a\r\n".to_vec())),
                Reply::Bulk(None),
                Reply::Array(Some(vec![
                    Reply::Int(1),
                    Reply::Array(Some(vec![Reply::Bulk(Some(b"x".to_vec()))]))
                ])),
                Reply::Array(None),
            ]
        );
    }

    #[test]
    fn a_reply_cut_at_any_byte_is_incomplete_never_wrong() {
        let wire = b"*3\r\n:1\r\n$5\r\nhello\r\n*1\r\n+OK\r\n";
        let whole = parse(wire).expect("valid").expect("complete");
        assert_eq!(whole.1, wire.len());
        for cut in 0..wire.len() {
            assert_eq!(parse(&wire[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn bytes_that_are_not_resp_are_an_error() {
        assert!(parse(b"HTTP/1.1 400\r\n").is_err());
        assert!(parse(b":12x\r\n").is_err());
        assert!(parse(b"$2\r\nabcd\r\n").is_err());
    }

    #[test]
    fn integers_read_from_either_form() {
        assert_eq!(Reply::Int(5).int(), Some(5));
        assert_eq!(Reply::Bulk(Some(b"-3".to_vec())).int(), Some(-3));
        assert_eq!(Reply::Bulk(None).int(), None);
    }
}
