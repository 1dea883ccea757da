//! What one host has logged: its own error lines and the guest's stdout and
//! stderr, kept in memory for [`crate::RunningHost::logs`] (so a failing
//! test can show them) and echoed to this process's stdout/stderr.
//!
//! Echoing uses `print!`/`eprint!`, which the test harness captures per
//! test. Host lines never contain request headers: those carry tokens.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Bytes kept per host; beyond this the oldest half is dropped.
const CAPACITY: usize = 1 << 20;

/// One host's log buffer; clones share it.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn append(&self, bytes: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        buf.extend_from_slice(bytes);
        if buf.len() > CAPACITY {
            let excess = buf.len() - CAPACITY / 2;
            buf.drain(..excess);
        }
    }

    /// Logs one host line (to stderr and the buffer).
    pub(crate) fn host(&self, line: fmt::Arguments<'_>) {
        let line = format!("users-spin-host: {line}\n");
        eprint!("{line}");
        self.append(line.as_bytes());
    }

    /// Everything logged so far (invalid UTF-8 replaced).
    pub(crate) fn snapshot(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// A WASI stdout (`stderr == false`) or stderr for a guest instance.
    pub(crate) fn guest_output(&self, stderr: bool) -> GuestOutput {
        GuestOutput {
            logs: self.clone(),
            stderr,
        }
    }
}

/// A guest's stdout or stderr: into the host's buffer and echoed.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    logs: Logs,
    stderr: bool,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.logs.append(buf);
        let text = String::from_utf8_lossy(buf);
        if self.stderr {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
