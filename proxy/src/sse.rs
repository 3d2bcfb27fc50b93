//! Server-sent events (the WHATWG `text/event-stream` format), read
//! incrementally from a response body with bounds: a server that never ends
//! a line or an event cannot make the bridge hold more than `max_event`
//! bytes.

use bytes::{Buf, BytesMut};

/// One event: its type (`message` when the server names none), its data
/// lines joined with `\n`, and its id, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
    pub retry_ms: Option<u64>,
}

/// The event stream's state between chunks.
pub struct Parser {
    buf: BytesMut,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry_ms: Option<u64>,
    max_event: usize,
    started: bool,
}

/// The stream broke a bound or its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    TooLarge(usize),
    NotUtf8,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::TooLarge(n) => write!(f, "a server-sent event is larger than {n} bytes"),
            SseError::NotUtf8 => f.write_str("a server-sent event is not UTF-8"),
        }
    }
}

impl Parser {
    pub fn new(max_event: usize) -> Parser {
        Parser {
            buf: BytesMut::new(),
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
            retry_ms: None,
            max_event,
            started: false,
        }
    }

    /// Feed a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        // A line ends with CRLF, LF or CR (a CR at the very end may be the
        // first half of a CRLF: wait for more).
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            let ending = if self.buf[pos] == b'\r' {
                if pos + 1 == self.buf.len() {
                    break;
                }
                if self.buf[pos + 1] == b'\n' { 2 } else { 1 }
            } else {
                1
            };
            let line = self.buf.split_to(pos);
            self.buf.advance(ending);
            let mut line = std::str::from_utf8(&line).map_err(|_| SseError::NotUtf8)?;
            if !self.started {
                self.started = true;
                line = line.strip_prefix('\u{feff}').unwrap_or(line);
            }
            if let Some(e) = self.line(line)? {
                out.push(e);
            }
        }
        if self.buf.len() + self.data.len() > self.max_event {
            return Err(SseError::TooLarge(self.max_event));
        }
        Ok(out)
    }

    fn line(&mut self, line: &str) -> Result<Option<Event>, SseError> {
        if line.is_empty() {
            // Dispatch. An event without data is dropped (the id still counts).
            let event = self.event.take();
            if !self.has_data {
                self.data.clear();
                return Ok(None);
            }
            self.has_data = false;
            let data = std::mem::take(&mut self.data);
            return Ok(Some(Event {
                event: event.filter(|e| !e.is_empty()).unwrap_or_else(|| "message".into()),
                data,
                id: self.id.clone(),
                retry_ms: self.retry_ms,
            }));
        }
        if line.starts_with(':') {
            return Ok(None); // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max_event {
                    return Err(SseError::TooLarge(self.max_event));
                }
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_string()).filter(|v| !v.is_empty()),
            "retry" => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut Parser, chunks: &[&str]) -> Vec<Event> {
        chunks.iter().flat_map(|c| p.feed(c.as_bytes()).unwrap()).collect()
    }

    #[test]
    fn events_across_chunks_with_every_line_ending() {
        let mut p = Parser::new(1 << 20);
        let ev = all(
            &mut p,
            &[
                "\u{feff}event: endpoint\r\ndata: /messages?s=1\r",
                "\n\r\n",
                ": ping\n\nid: 7\ndata: {\"a\"",
                ":1}\ndata: x\r\r\n",
            ],
        );
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].event, "endpoint");
        assert_eq!(ev[0].data, "/messages?s=1");
        assert_eq!(ev[1].event, "message");
        assert_eq!(ev[1].data, "{\"a\":1}\nx");
        assert_eq!(ev[1].id.as_deref(), Some("7"));
    }

    #[test]
    fn an_endless_line_or_event_is_refused() {
        let mut p = Parser::new(64);
        assert_eq!(p.feed(&[b'x'; 65]), Err(SseError::TooLarge(64)));
        let mut p = Parser::new(64);
        let mut r = Ok(vec![]);
        for _ in 0..10 {
            r = p.feed(b"data: 0123456789\n");
            if r.is_err() {
                break;
            }
        }
        assert_eq!(r, Err(SseError::TooLarge(64)));
    }

    #[test]
    fn bad_utf8_is_an_error() {
        let mut p = Parser::new(64);
        assert_eq!(p.feed(b"data: \xff\n\n"), Err(SseError::NotUtf8));
    }
}
