//! Incremental Server-Sent Events decoder and encoder.
//!
//! Upstream streams arrive in TCP-sized pieces that split lines, CRLF pairs and
//! multi-byte characters anywhere. The decoder buffers only the event it is
//! completing and hands out each event the moment its terminating blank line
//! arrives, so a translator never waits for more bytes than that event. Its
//! output depends only on the bytes, never on where they were split (tested).
//!
//! Follows the WHATWG `text/event-stream` parsing rules (LF, CRLF and CR line
//! ends, `:` comments, multi-line `data`, one optional space after the colon,
//! a leading BOM), with one leniency: at end of input a pending event with data
//! is dispatched even without its final blank line, because real servers end
//! streams that way.

use std::fmt;

/// Default cap on one event's buffered size; a stream that exceeds it is
/// broken or hostile and must not grow our memory without bound.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One dispatched event: the fields a consumer needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if the block had one.
    pub event: Option<String>,
    /// All `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if the block had one.
    pub id: Option<String>,
}

/// A blank-line-terminated block of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A block with at least one `data:` line.
    Event(SseEvent),
    /// A block without data (comments such as keep-alive pings, or a lone
    /// `event:` line). Passthrough forwards these so clients stay alive.
    Comment,
}

/// The stream broke a limit; the caller should end it with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// One event grew beyond the configured cap.
    EventTooLarge {
        /// The cap that was exceeded.
        limit: usize,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => {
                write!(f, "upstream SSE event larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

/// Incremental decoder: `push` bytes, then drain items with `next_item`.
#[derive(Debug)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Start of the not-yet-parsed part of `buf`.
    pos: usize,
    /// Start in `buf` of the block being assembled (for `last_raw`).
    block_start: usize,
    /// Raw byte range of the last item returned.
    last_raw: (usize, usize),
    bom_checked: bool,
    finished: bool,
    max_event: usize,
    event: Option<String>,
    data: Vec<u8>,
    has_data: bool,
    id: Option<String>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the default per-event cap.
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder with a custom per-event cap.
    pub fn with_max_event_bytes(max_event: usize) -> Self {
        SseDecoder {
            buf: Vec::new(),
            pos: 0,
            block_start: 0,
            last_raw: (0, 0),
            bom_checked: false,
            finished: false,
            max_event,
            event: None,
            data: Vec::new(),
            has_data: false,
            id: None,
        }
    }

    /// Appends bytes from the wire. Call `next_item` until it returns `None`
    /// before pushing again.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        // Drop what earlier items consumed so the buffer holds one event at most.
        if self.block_start > 0 {
            self.buf.drain(..self.block_start);
            self.pos -= self.block_start;
            self.block_start = 0;
            self.last_raw = (0, 0);
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.max_event {
            return Err(SseError::EventTooLarge { limit: self.max_event });
        }
        Ok(())
    }

    /// Marks end of input: a trailing line without terminator and a pending
    /// event with data are then dispatched by `next_item`.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The exact bytes of the item last returned by `next_item` (including its
    /// terminating blank line). Valid until the next `push`.
    pub fn last_raw(&self) -> &[u8] {
        &self.buf[self.last_raw.0..self.last_raw.1]
    }

    /// Returns the next complete item, or `None` when more bytes are needed.
    pub fn next_item(&mut self) -> Option<SseItem> {
        if !self.bom_checked {
            let bom = b"\xEF\xBB\xBF";
            let n = self.buf.len().min(3);
            if self.buf[..n] != bom[..n] {
                self.bom_checked = true;
            } else if n == 3 {
                self.pos = 3;
                self.block_start = 3;
                self.bom_checked = true;
            } else if !self.finished {
                return None;
            } else {
                self.bom_checked = true;
            }
        }
        loop {
            let Some((line_end, next)) = self.find_line_end() else {
                return self.dispatch_at_eof();
            };
            let start = self.pos;
            self.pos = next;
            if line_end == start {
                // Blank line: the block ends here.
                let raw = (self.block_start, next);
                self.block_start = next;
                self.last_raw = raw;
                return Some(self.take_item());
            }
            self.process_line(start, line_end);
        }
    }

    /// Finds the end of the line starting at `pos`: (end of content, start of
    /// next line). A CR at the very end waits for a possible LF unless finished.
    fn find_line_end(&self) -> Option<(usize, usize)> {
        let rest = &self.buf[self.pos..];
        let i = memchr::memchr2(b'\n', b'\r', rest)?;
        let at = self.pos + i;
        if rest[i] == b'\n' {
            return Some((at, at + 1));
        }
        match rest.get(i + 1) {
            Some(b'\n') => Some((at, at + 2)),
            Some(_) => Some((at, at + 1)),
            None if self.finished => Some((at, at + 1)),
            None => None,
        }
    }

    fn dispatch_at_eof(&mut self) -> Option<SseItem> {
        if !self.finished {
            return None;
        }
        if self.pos < self.buf.len() {
            // Unterminated last line.
            let (start, end) = (self.pos, self.buf.len());
            self.pos = end;
            self.process_line(start, end);
        }
        if self.has_data {
            let raw = (self.block_start, self.buf.len());
            self.block_start = self.buf.len();
            self.last_raw = raw;
            return Some(self.take_item());
        }
        None
    }

    fn process_line(&mut self, start: usize, end: usize) {
        let line = &self.buf[start..end];
        if line[0] == b':' {
            return; // comment
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            // Per spec an id containing NUL is ignored.
            b"id" if memchr::memchr(0, value).is_none() => {
                self.id = Some(String::from_utf8_lossy(value).into_owned());
            }
            _ => {} // `retry` and unknown fields carry nothing we use
        }
    }

    fn take_item(&mut self) -> SseItem {
        let event = self.event.take();
        let id = self.id.take();
        if !self.has_data {
            return SseItem::Comment;
        }
        self.has_data = false;
        let data = match String::from_utf8(std::mem::take(&mut self.data)) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        SseItem::Event(SseEvent { event, data, id })
    }
}

/// Appends one SSE frame (`event:` line if given, `data:` lines, blank line).
///
/// Newlines inside `data` become separate `data:` lines so the receiver
/// reassembles exactly `data`.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, data: &str) {
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    for line in data.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<(SseItem, Vec<u8>)> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c).expect("within limit");
            while let Some(item) = d.next_item() {
                out.push((item, d.last_raw().to_vec()));
            }
        }
        d.finish();
        while let Some(item) = d.next_item() {
            out.push((item, d.last_raw().to_vec()));
        }
        out
    }

    fn ev(event: Option<&str>, data: &str) -> SseItem {
        SseItem::Event(SseEvent {
            event: event.map(str::to_string),
            data: data.to_string(),
            id: None,
        })
    }

    const SAMPLE: &[u8] =
        "\u{FEFF}: ping\n\nevent: a\ndata: {\"x\":\"é😀\"}\r\n\r\ndata:no-space\rdata: two\r\rid: 7\ndata: [DONE]\n\n"
            .as_bytes();

    #[test]
    fn decodes_line_endings_comments_multiline() {
        let items = decode_all(&[SAMPLE]);
        let kinds: Vec<_> = items.iter().map(|(i, _)| i.clone()).collect();
        assert_eq!(kinds[0], SseItem::Comment);
        assert_eq!(kinds[1], ev(Some("a"), "{\"x\":\"é😀\"}"));
        assert_eq!(kinds[2], ev(None, "no-space\ntwo"));
        match &kinds[3] {
            SseItem::Event(e) => {
                assert_eq!(e.data, "[DONE]");
                assert_eq!(e.id.as_deref(), Some("7"));
            }
            other => panic!("expected event, got {other:?}"),
        }
        assert_eq!(items.len(), 4);
        assert_eq!(
            items[1].1,
            b"event: a\ndata: {\"x\":\"\xc3\xa9\xf0\x9f\x98\x80\"}\r\n\r\n"
        );
    }

    #[test]
    fn byte_split_invariance() {
        let whole = decode_all(&[SAMPLE]);
        for cut in 0..=SAMPLE.len() {
            let split = decode_all(&[&SAMPLE[..cut], &SAMPLE[cut..]]);
            assert_eq!(split, whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = SAMPLE.chunks(1).collect();
        assert_eq!(decode_all(&bytes), whole);
    }

    #[test]
    fn unterminated_final_event_is_dispatched() {
        let items = decode_all(&[b"data: a\n\ndata: [DONE]"]);
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].0, ev(None, "[DONE]"));
    }

    #[test]
    fn trailing_cr_waits_for_possible_lf() {
        let mut d = SseDecoder::new();
        d.push(b"data: a\r").expect("push");
        assert_eq!(d.next_item(), None);
        d.push(b"\n\r\n").expect("push");
        assert_eq!(d.next_item(), Some(ev(None, "a")));
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut d = SseDecoder::with_max_event_bytes(8);
        assert!(d.push(b"data: 1234").is_err());
    }

    #[test]
    fn encoder_round_trips() {
        let mut out = Vec::new();
        write_event(&mut out, Some("message_start"), "line1\nline2");
        assert_eq!(out, b"event: message_start\ndata: line1\ndata: line2\n\n");
        let items = decode_all(&[&out]);
        assert_eq!(items[0].0, ev(Some("message_start"), "line1\nline2"));
    }
}
