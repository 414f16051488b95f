//! Makes the HTTP parser's own error answers JSON like every other answer.
//!
//! When a request cannot even be parsed (a target over 64 KiB, a head over the hard cap, bytes
//! that are not HTTP), hyper answers by itself, before any of our code runs, with a bare head:
//! `HTTP/1.1 414 URI Too Long`, `connection: close`, `content-length: 0`, `date`. Our own error
//! answers carry a JSON body (see `http/edge/json_errors.rs`) or, when deliberately empty
//! (`/verify`'s 401), headers of their own such as `www-authenticate`; so a 4xx head with
//! `content-length: 0`, nothing after it and no header but those three can only be the parser's.
//! This writer swaps it for the same status with a `{"message": reason}` body.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose bare 4xx heads are rewritten to JSON answers.
#[derive(Debug)]
pub(crate) struct JsonErrorHeads<S> {
    inner: S,
    /// A rewritten answer still being written: the bytes and how many are out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonErrorHeads<S> {
    /// Wraps a connection.
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

impl<S: AsyncWrite + Unpin> JsonErrorHeads<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = &mut self.pending {
            if *done == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrorHeads<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrorHeads<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        if let Some(answer) = rewrite(buf) {
            self.pending = Some((answer, 0));
            // The caller's bytes are accounted for; ours go out now or on the next flush.
            let _ = self.poll_drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored, so that hyper hands over each answer as one buffer and a bare head is
    // recognisable as a whole.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// The JSON answer for a bare 4xx head, or `None` for anything else.
fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    if !(buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.0 4")) {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    if head_end + 4 != buf.len() {
        return None;
    }
    let head = std::str::from_utf8(&buf[..head_end + 2]).ok()?;
    let lower = head.to_ascii_lowercase();
    if !lower.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    // The parser's heads carry these headers and no other.
    let only_parser_headers = lower.split("\r\n").skip(1).all(|line| {
        line.is_empty()
            || ["connection:", "content-length:", "date:"]
                .iter()
                .any(|name| line.starts_with(name))
    });
    if !only_parser_headers {
        return None;
    }
    let status_line = head.split("\r\n").next()?;
    let mut words = status_line.splitn(3, ' ');
    let _version = words.next()?;
    let code = words.next()?;
    let reason = words.next().unwrap_or("Bad Request");
    let body = format!("{}\n", serde_json::json!({ "message": reason }));
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(date) = head
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("date:"))
    {
        out.push_str(date);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn bare_parser_error_heads_become_json() {
        let bare = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 09:29:28 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(bare).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{out}");
        assert!(out.contains("content-type: application/json\r\n"));
        assert!(out.contains("date: Sun, 29 Nov 2026 09:29:28 GMT\r\n"));
        assert!(
            out.ends_with("\r\n\r\n{\"message\":\"URI Too Long\"}\n"),
            "{out}"
        );
        assert!(out.contains("content-length: 27\r\n"), "{out}");
    }

    #[test]
    fn answers_with_bodies_and_successes_pass_unchanged() {
        assert!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\n{}").is_none());
        assert!(rewrite(b"HTTP/1.1 404 Not Found\r\ncontent-length: 24\r\n\r\n").is_none());
        assert!(rewrite(b"{\"message\":\"x\"}").is_none());
    }

    #[test]
    fn deliberately_empty_error_answers_pass_unchanged() {
        let verify_401 = b"HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"authd\"\r\ncache-control: no-store\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 09:29:28 GMT\r\n\r\n";
        assert!(rewrite(verify_401).is_none());
    }
}
