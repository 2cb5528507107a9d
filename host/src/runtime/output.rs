//! What a handler logged (through the `host` interface) and printed (to
//! WASI stdout and stderr), kept per invocation for the host to log under
//! the handler's name and the event's id.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Most bytes of stdout plus stderr kept per invocation; the rest is dropped.
const MAX_OUTPUT: usize = 16 * 1024;

/// How much a line matters: the same four levels in every contract version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// What a handler logged (through the `host` interface) and printed (to
/// WASI stdout and stderr), in order, kept in memory for the host to log
/// with the handler's name and the event's id. Printed text counts as
/// `info` (stdout) or `warn` (stderr), a line at a time. Past [`MAX_OUTPUT`]
/// bytes, writes still succeed but are dropped, so a chatty handler neither
/// fails nor floods.
#[derive(Clone)]
pub struct CapturedOutput {
    journal: Arc<Mutex<Journal>>,
    /// The stream written through this handle.
    stream: Stream,
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn level(self) -> Level {
        match self {
            Stream::Stdout => Level::Info,
            Stream::Stderr => Level::Warn,
        }
    }
}

#[derive(Default)]
struct Journal {
    lines: Vec<(Level, String)>,
    /// Printed text after the last newline, per stream.
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Bytes kept so far, lines and partial text together.
    kept: usize,
}

impl Default for CapturedOutput {
    fn default() -> Self {
        Self {
            journal: Arc::default(),
            stream: Stream::Stdout,
        }
    }
}

impl CapturedOutput {
    /// A handle on the same journal for the other stream: stderr is `warn`.
    pub fn stderr(&self) -> Self {
        Self {
            journal: self.journal.clone(),
            stream: Stream::Stderr,
        }
    }

    /// Keeps a logged message, one line per line of it.
    pub fn log(&self, level: Level, message: &str) {
        let mut journal = self.lock();
        let message = journal.take_room(message);
        for line in message.lines().filter(|l| !l.trim().is_empty()) {
            journal.lines.push((level, line.to_string()));
        }
    }

    /// Everything kept, in order; text printed without a final newline
    /// ends each stream's last line. The journal starts over, with room for
    /// [`MAX_OUTPUT`] bytes again (the next call on a reused instance).
    pub fn finish(&self) -> Vec<(Level, String)> {
        let mut journal = self.lock();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(journal.partial(stream));
            journal.push_printed(stream, &rest);
        }
        journal.kept = 0;
        std::mem::take(&mut journal.lines)
    }

    fn keep(&self, bytes: &[u8]) {
        let mut journal = self.lock();
        let room = MAX_OUTPUT.saturating_sub(journal.kept);
        let bytes = &bytes[..bytes.len().min(room)];
        journal.kept += bytes.len();
        let partial = journal.partial(self.stream);
        partial.extend_from_slice(bytes);
        if let Some(end) = partial.iter().rposition(|&b| b == b'\n') {
            let complete: Vec<u8> = partial.drain(..=end).collect();
            journal.push_printed(self.stream, &complete);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Journal {
    fn partial(&mut self, stream: Stream) -> &mut Vec<u8> {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    fn push_printed(&mut self, stream: Stream, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.lines.push((stream.level(), line.to_string()));
        }
    }

    /// The part of `message` that fits under [`MAX_OUTPUT`], counted as kept.
    fn take_room<'a>(&mut self, message: &'a str) -> &'a str {
        let room = MAX_OUTPUT.saturating_sub(self.kept);
        let mut end = message.len().min(room);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        // A message cut short fills the journal: nothing after it is kept.
        self.kept = if end < message.len() {
            MAX_OUTPUT
        } else {
            self.kept + end
        };
        &message[..end]
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// Written to directly: the default adapter from `AsyncWrite` starts a
    /// task per stream, which cost more than the handler call itself.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready; what does not fit is dropped.
        Ok(MAX_OUTPUT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_and_printed_text_keep_their_order_and_levels() {
        let out = CapturedOutput::default();
        let err = out.stderr();
        out.keep(b"half ");
        out.log(Level::Debug, "first\n\nsecond");
        err.keep(b"oops\nstill");
        out.keep(b"a line\nnext\n");
        out.log(Level::Error, "last");
        let lines = out.finish();
        let expected = [
            (Level::Debug, "first"),
            (Level::Debug, "second"),
            (Level::Warn, "oops"),
            (Level::Info, "half a line"),
            (Level::Info, "next"),
            (Level::Error, "last"),
            // Text without a final newline ends its stream's last line.
            (Level::Warn, "still"),
        ];
        let got: Vec<_> = lines.iter().map(|(l, s)| (*l, s.as_str())).collect();
        assert_eq!(got, expected);
        assert!(out.finish().is_empty(), "finish takes the lines");
    }

    #[test]
    fn output_is_capped_in_bytes_across_logs_and_printing() {
        let out = CapturedOutput::default();
        out.keep(&[b'x'; MAX_OUTPUT - 10]);
        out.keep(b"\n");
        // 9 bytes of room: the message is cut at a character boundary.
        out.log(Level::Info, "ééééé and more");
        out.log(Level::Info, "dropped");
        out.keep(b"dropped too\n");
        let lines = out.finish();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].1.len(), MAX_OUTPUT - 10);
        assert_eq!(lines[1], (Level::Info, "éééé".to_string()));
        // The next call on a reused instance has all the room again.
        out.log(Level::Info, "kept again");
        assert_eq!(out.finish(), [(Level::Info, "kept again".to_string())]);
    }
}
