//! The log pane's lines: a bounded buffer that `serve --tui` logs into (a
//! `tracing` writer, so no log line is ever written over the dashboard)
//! and that `faxbox tui` fills with the event stream.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// The last lines, oldest first; older ones are dropped.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    lines: Arc<Mutex<VecDeque<String>>>,
    capacity: usize,
}

impl LogBuffer {
    pub fn new(capacity: usize) -> LogBuffer {
        LogBuffer {
            lines: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&self, line: impl Into<String>) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line.into());
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect()
    }
}

/// One log record being written: its lines go to the buffer when the
/// formatter is done with it.
pub struct LogWriter {
    buffer: LogBuffer,
    pending: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.buffer.push(line.trim_end());
        }
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter {
            buffer: self.clone(),
            pending: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_keeps_the_last_lines_of_whole_records() {
        let log = LogBuffer::new(3);
        for n in 1..=4 {
            let mut w = tracing_subscriber::fmt::MakeWriter::make_writer(&log);
            write!(w, "record {n}").unwrap();
            w.write_all(b" ends\n").unwrap();
        }
        assert_eq!(
            log.lines(),
            ["record 2 ends", "record 3 ends", "record 4 ends"]
        );
    }

    #[test]
    fn tracing_writes_into_the_buffer_not_the_terminal() {
        let log = LogBuffer::new(10);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(log.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(line = "modem1", "modem line down");
        });
        let lines = log.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("WARN"), "{lines:?}");
        assert!(
            lines[0].contains("modem line down line=\"modem1\""),
            "{lines:?}"
        );
    }
}
