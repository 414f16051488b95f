//! Log setup: one line per event on standard output, filtered by `RUST_LOG` (default `info`).
//!
//! Lines are handed to a writer thread and written in batches: under load many lines go out in
//! one `write`, instead of one system call per request on the thread serving it (measured: the
//! per-line writes cost a sixth of `/protected`'s throughput). When the server is idle each line
//! goes out at once. Should the writer fall 128k lines behind, lines are dropped rather than
//! requests slowed.

use std::io::{BufWriter, IsTerminal as _};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, from `main`, and keep the guard until exit: dropping
/// it writes out what is still queued.
pub fn init() -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stdout().is_terminal();
    // The writer thread flushes the buffer whenever its queue runs empty.
    let (writer, guard) = NonBlockingBuilder::default()
        .thread_name("authd-log")
        .finish(BufWriter::with_capacity(64 * 1024, std::io::stdout()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer)
        .init();
    guard
}
