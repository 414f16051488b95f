//! Log setup: one line per event on standard output, filtered by `RUST_LOG` (default `info`), as
//! text or, with `AUTHD_LOG_FORMAT=json`, as one JSON object a line (tracing-subscriber's own JSON
//! format). Both formats write the same events with the same fields: what is kept out of the
//! logs (the query string, credentials, tokens) is kept out of the events themselves.
//!
//! Lines are written in batches by a writer thread: a request thread only appends its line to a
//! shared buffer, and wakes the writer when the buffer was empty. The writer gathers for a few
//! milliseconds, then writes the whole batch in one `write`. So under load there is one wake-up and
//! one system call per batch rather than per line (measured: per-line writes cost a sixth of
//! `/protected`'s throughput, and a per-line hand-over to a writer thread still a tenth), and when
//! the server is idle a line still goes out within [`GATHER`]. Should the writer fall behind (a
//! blocked standard output), request lines past [`MAX_PENDING`] bytes are dropped, and counted,
//! rather than requests slowed or memory grown; other lines (warnings, errors, start-up) have
//! [`RESERVE`] more bytes, so a flood of requests cannot push them out.
//!
//! What an outsider can put in the log is bounded before it gets here: request lines are cut
//! ([`Cut`]) and at most so many are written a second ([`AccessBudget`]); the rest are counted in
//! a summary line.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// How long the writer gathers lines after the first one of a batch.
pub const GATHER: Duration = Duration::from_millis(5);
/// Most bytes waiting to be written; request lines past it are dropped.
pub const MAX_PENDING: usize = 4 * 1024 * 1024;
/// Bytes past [`MAX_PENDING`] kept for every other line (warnings, errors): only an output
/// blocked for long, under a flood of warnings, drops those, and the drop is counted.
pub const RESERVE: usize = 4 * 1024 * 1024;

/// Installs the global subscriber, writing in `format`. Call once, from `main`, and keep the
/// guard until exit: dropping it writes out what is still pending.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = BatchWriter::spawn(std::io::stdout(), format);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .event_format(Lines::default())
            .init(),
        LogFormat::Json => {
            // The event's fields beside `message` at the top level, where Loki, Elasticsearch and
            // Vector look for them; the current span and its parents too (`span`, `spans`), as
            // the text format prints them.
            builder.json().flatten_event(true).init();
            // A panic (one in a handler is caught and answered 500) would otherwise print lines
            // of text on standard error.
            std::panic::set_hook(Box::new(|panic| {
                tracing::error!(target: "authd::panic", "{panic}");
            }));
        }
    }
    guard
}

/// The target of the per-request log line (`authd::http ... served ...`).
pub const ACCESS_TARGET: &str = "authd::http";

/// The event format: tracing-subscriber's default (`Full`) for every line, except that the
/// per-request line, when it is written without colours, is formatted here into the same text
/// with less work (the date and time formatted once a second, numbers without `fmt`): it is
/// written once per request, and the default formatting cost a twentieth of `/protected`'s
/// throughput.
#[derive(Default)]
pub struct Lines {
    standard: format::Format,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        if writer.has_ansi_escapes()
            || meta.target() != ACCESS_TARGET
            || ctx.lookup_current().is_some()
        {
            return self.standard.format_event(ctx, writer, event);
        }
        write_timestamp(&mut writer)?;
        writer.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let mut fields = Fields {
            out: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// `2026-11-29T12:40:53.629910Z` as the default format writes it (UTC, microseconds).
fn write_timestamp(out: &mut Writer<'_>) -> std::fmt::Result {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            *cached = secs;
            text.clear();
            let at = i64::try_from(secs)
                .ok()
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .unwrap_or_default();
            let _ = write!(text, "{}", at.format("%Y-%m-%dT%H:%M:%S"));
        }
        out.write_str(text)
    })?;
    let micros = now.subsec_micros();
    let mut digits = *b".000000Z";
    let mut n = micros;
    for d in digits[1..7].iter_mut().rev() {
        // `n % 10` is below 10.
        *d = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
    }
    out.write_str(std::str::from_utf8(&digits).unwrap_or(".000000Z"))
}

/// Writes fields as the default format does: the message bare, the others as `name=value`
/// (values by `Debug`), separated by spaces.
struct Fields<'a, 'w> {
    out: &'a mut Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl Fields<'_, '_> {
    fn name(&mut self, field: &Field) {
        if self.result.is_err() {
            return;
        }
        if !std::mem::take(&mut self.first) {
            self.result = self.out.write_char(' ');
        }
        if field.name() != "message" && self.result.is_ok() {
            let name = field.name();
            self.result = self
                .out
                .write_str(name.strip_prefix("r#").unwrap_or(name))
                .and_then(|()| self.out.write_char('='));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        if self.result.is_ok() {
            self.result = self.out.write_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        if self.result.is_ok() {
            self.result = self.out.write_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.name(field);
        if self.result.is_ok() {
            self.result = write!(self.out, "{value:?}");
        }
    }
}

/// At most `per_second` request lines a second, one atomic word for the whole process: the check
/// is on every request's path, so it takes no lock. A second's count starts with its first line.
#[derive(Debug)]
pub struct AccessBudget {
    per_second: u32,
    /// The current second (since `epoch`) in the high half, lines admitted in it in the low half.
    window: AtomicU64,
    suppressed: AtomicU64,
    epoch: Instant,
}

impl AccessBudget {
    /// A budget of `per_second` lines a second (0: none).
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Whether a request line at `now` may be written; if not, it is counted as suppressed.
    pub fn admit(&self, now: Instant) -> bool {
        // Seconds wrap after 136 years; a line stamped a little before the current second (its
        // request started earlier) counts in the current one.
        let second =
            u32::try_from(now.saturating_duration_since(self.epoch).as_secs() & 0xffff_ffff)
                .unwrap_or(0);
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (window, count) = ((current >> 32) as u32, current as u32);
            let next = if window >= second {
                if count >= self.per_second {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
                current + 1
            } else if self.per_second == 0 {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return false;
            } else {
                (u64::from(second) << 32) | 1
            };
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }

    /// Lines suppressed since the last call.
    pub fn take_suppressed(&self) -> u64 {
        self.suppressed.swap(0, Ordering::Relaxed)
    }

    /// Logs how many lines were suppressed since the last call, if any: called once a second.
    /// `what` names the lines (`access`, `failure`).
    pub fn report(&self, what: &str) {
        let n = self.take_suppressed();
        if n > 0 {
            tracing::info!(target: "authd::log", "{n} {what} lines suppressed in the last second");
        }
    }
}

/// A string for the log, cut after `max` bytes (at a character boundary) and marked
/// `…[+N bytes]` with the length left out, so that an outsider's path cannot make a long line.
#[derive(Debug, Clone, Copy)]
pub struct Cut<'a>(pub &'a str, pub usize);

impl std::fmt::Display for Cut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Cut(text, max) = *self;
        if text.len() <= max {
            return f.write_str(text);
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        f.write_str(&text[..end])?;
        f.write_str("…[+")?;
        f.write_str(itoa::Buffer::new().format(text.len() - end))?;
        f.write_str(" bytes]")
    }
}

struct Pending {
    lines: Mutex<Vec<u8>>,
    wake: Condvar,
    closing: AtomicBool,
    dropped: AtomicU64,
    /// The format of the line that says lines were dropped.
    format: LogFormat,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A thread that panicked while appending leaves at worst a partial line.
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`MakeWriter`] whose lines a writer thread writes out in batches (see the module's
/// documentation).
#[derive(Clone)]
pub struct BatchWriter {
    pending: Arc<Pending>,
    /// Bytes pending past which this writer's line is dropped: [`MAX_PENDING`] for request
    /// lines, more for the others.
    bound: usize,
}

impl BatchWriter {
    /// Starts the writer thread, writing to `out` lines in `format`.
    pub fn spawn<W: Write + Send + 'static>(out: W, format: LogFormat) -> (Self, LogGuard) {
        let pending = Arc::new(Pending {
            lines: Mutex::new(Vec::with_capacity(64 * 1024)),
            wake: Condvar::new(),
            closing: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            format,
        });
        let shared = Arc::clone(&pending);
        let thread = std::thread::Builder::new()
            .name("authd-log".to_owned())
            .spawn(move || write_batches(&shared, out))
            .ok();
        let guard = LogGuard {
            pending: Arc::clone(&pending),
            thread,
        };
        (
            Self {
                pending,
                bound: MAX_PENDING + RESERVE,
            },
            guard,
        )
    }

    /// Lines dropped so far because the writer was too far behind.
    pub fn dropped(&self) -> u64 {
        self.pending.dropped.load(Ordering::Relaxed)
    }

    /// The writer for one line: a request line (`droppable`) is dropped past [`MAX_PENDING`]
    /// pending bytes, any other past [`MAX_PENDING`] + [`RESERVE`].
    pub fn for_line(&self, droppable: bool) -> Self {
        Self {
            pending: Arc::clone(&self.pending),
            bound: if droppable {
                MAX_PENDING
            } else {
                MAX_PENDING + RESERVE
            },
        }
    }
}

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut lines = self.pending.lock();
        if lines.len() + line.len() > self.bound {
            drop(lines);
            self.pending.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        let was_empty = lines.is_empty();
        lines.extend_from_slice(line);
        drop(lines);
        if was_empty {
            self.pending.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self {
        self.for_line(droppable(meta.target(), *meta.level()))
    }
}

/// Whether a line may be dropped when the output falls behind: request lines, the ones a flood
/// multiplies; never a warning or an error.
fn droppable(target: &str, level: Level) -> bool {
    target == ACCESS_TARGET && level > Level::WARN
}

fn write_batches<W: Write>(pending: &Pending, mut out: W) {
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut reported = 0;
    loop {
        {
            let mut lines = pending.lock();
            while lines.is_empty() && !pending.closing.load(Ordering::Acquire) {
                lines = pending
                    .wake
                    .wait(lines)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if lines.is_empty() {
                return; // closing, and everything is out
            }
        }
        if !pending.closing.load(Ordering::Acquire) {
            std::thread::sleep(GATHER);
        }
        std::mem::swap(&mut *pending.lock(), &mut batch);
        let dropped = pending.dropped.load(Ordering::Relaxed);
        if dropped > reported {
            batch.extend_from_slice(dropped_notice(pending.format, dropped - reported).as_bytes());
            reported = dropped;
        }
        // Nowhere to report a failed write to but the log itself.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > MAX_PENDING {
            batch.shrink_to(64 * 1024);
        }
    }
}

/// The line saying that `n` lines were dropped. It is written by the writer thread itself (an
/// event could be dropped like the lines it reports), so in JSON it is made here, with the keys
/// of tracing-subscriber's JSON lines.
fn dropped_notice(format: LogFormat, n: u64) -> String {
    let message = format!("{n} log lines dropped: standard output is not keeping up");
    match format {
        LogFormat::Text => format!("authd: {message}\n"),
        LogFormat::Json => {
            let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let line = serde_json::json!({
                "timestamp": timestamp,
                "level": "WARN",
                "message": message,
                "target": "authd::log",
            });
            format!("{line}\n")
        }
    }
}

/// Keeps the writer thread; dropping it writes out what is pending and waits for the thread.
pub struct LogGuard {
    pending: Arc<Pending>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.pending.closing.store(true, Ordering::Release);
        // Taken and released so that the writer is either waiting (and gets the notification) or
        // has not yet looked at `closing`.
        drop(self.pending.lock());
        self.pending.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// One event through a subscriber with the default format or with [`Lines`], as written.
    fn render(lines: bool, emit: fn()) -> String {
        let sink = Sink::default();
        let out = sink.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || out.clone());
        if lines {
            tracing::subscriber::with_default(
                builder.event_format(Lines::default()).finish(),
                emit,
            );
        } else {
            tracing::subscriber::with_default(builder.finish(), emit);
        }
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_request_line_is_written_as_the_default_format_writes_it() {
        fn emit() {
            tracing::info!(
                target: "authd::http",
                method = %"POST",
                path = %"/a b\"c",
                status = 404_u64,
                delta = -3_i64,
                quoted = "x y",
                r#type = true,
                "served {}", "now"
            );
        }
        let (ours, standard) = (render(true, emit), render(false, emit));
        // Same text after the timestamp; both timestamps RFC 3339 with microseconds.
        let (ours_at, ours_rest) = ours.split_at(27);
        let (standard_at, standard_rest) = standard.split_at(27);
        assert_eq!(ours_rest, standard_rest);
        assert!(
            ours_rest.starts_with("  INFO authd::http: served now method=POST"),
            "{ours}"
        );
        for at in [ours_at, standard_at] {
            assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at:?}");
            assert_eq!(at.len(), 27);
        }
        let seconds = |at: &str| {
            chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .timestamp()
        };
        assert!((seconds(ours_at) - seconds(standard_at)).abs() <= 1);
    }

    #[test]
    fn other_lines_keep_the_default_format() {
        fn emit() {
            tracing::warn!(target: "authd", error = %"boom", "cannot do it");
        }
        assert_eq!(render(true, emit)[27..], render(false, emit)[27..]);
    }

    #[test]
    fn the_dropped_lines_notice_in_json_has_the_keys_of_a_json_event() {
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .json()
            .flatten_event(true)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "authd::log", "something to know");
        });
        let event: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&sink.0.lock().unwrap()).unwrap();
        let notice = dropped_notice(LogFormat::Json, 3);
        assert!(
            notice.ends_with('\n') && notice.lines().count() == 1,
            "{notice}"
        );
        let notice: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&notice).unwrap();
        let keys = |m: &serde_json::Map<String, serde_json::Value>| {
            let mut k: Vec<String> = m.keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&notice), keys(&event));
        for key in ["level", "target"] {
            assert_eq!(notice[key], event[key], "{key}");
        }
        assert_eq!(
            notice["message"],
            "3 log lines dropped: standard output is not keeping up"
        );
        for at in [&notice["timestamp"], &event["timestamp"]] {
            let at = at.as_str().unwrap();
            assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
        }
        assert_eq!(
            dropped_notice(LogFormat::Text, 3),
            "authd: 3 log lines dropped: standard output is not keeping up\n"
        );
    }

    #[test]
    fn lines_come_out_in_order_and_all_are_written_on_drop() {
        let sink = Sink::default();
        let (writer, guard) = BatchWriter::spawn(sink.clone(), LogFormat::Text);
        let mut expected = Vec::new();
        for i in 0..1000 {
            let line = format!("line {i}\n");
            writer.make_writer().write_all(line.as_bytes()).unwrap();
            expected.extend_from_slice(line.as_bytes());
        }
        drop(guard);
        assert_eq!(*sink.0.lock().unwrap(), expected);
    }

    #[test]
    fn a_lone_line_goes_out_without_waiting_for_more() {
        let sink = Sink::default();
        let (writer, _guard) = BatchWriter::spawn(sink.clone(), LogFormat::Text);
        writer.make_writer().write_all(b"hello\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.0.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line never came out"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"hello\n");
    }

    /// An output that blocks until the test lets it go.
    struct Blocked(Arc<(Mutex<bool>, Condvar)>, Sink);

    impl Write for Blocked {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (open, cv) = &*self.0;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            self.1.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_blocked_output_drops_request_lines_past_the_bound_keeps_warnings_and_says_so() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Sink::default();
        let (writer, guard) =
            BatchWriter::spawn(Blocked(Arc::clone(&gate), sink.clone()), LogFormat::Text);
        let line = [b'x'; 1023];
        let mut line = line.to_vec();
        line.push(b'\n');
        let request_line = || writer.for_line(true);
        // The first batch goes to the blocked output; then the buffer fills up to its bound.
        request_line().write_all(&line).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !writer.pending.lock().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never took the batch"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let fits = MAX_PENDING / line.len();
        for _ in 0..fits + 100 {
            request_line().write_all(&line).unwrap();
        }
        assert_eq!(writer.dropped(), 100);
        // A warning still gets in, however many request lines are waiting.
        writer
            .for_line(false)
            .write_all(b"WARN something to know\n")
            .unwrap();
        assert_eq!(writer.dropped(), 100);
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        drop(guard);
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.matches('x').count(), (fits + 1) * 1023);
        assert!(out.contains("WARN something to know\n"));
        assert!(out.ends_with("authd: 100 log lines dropped: standard output is not keeping up\n"));
    }

    #[test]
    fn warnings_and_errors_are_never_written_as_droppable_request_lines() {
        for (target, level, expected) in [
            (ACCESS_TARGET, Level::INFO, true),
            (ACCESS_TARGET, Level::DEBUG, true),
            (ACCESS_TARGET, Level::WARN, false),
            (ACCESS_TARGET, Level::ERROR, false),
            ("authd::sessions", Level::INFO, false),
            ("authd::log", Level::INFO, false),
        ] {
            assert_eq!(droppable(target, level), expected, "{target} {level}");
        }
    }

    #[test]
    fn the_access_budget_admits_its_rate_each_second_and_counts_the_rest() {
        let budget = AccessBudget::new(100);
        let start = budget.epoch;
        let admitted = (0..250).filter(|_| budget.admit(start)).count();
        assert_eq!(admitted, 100);
        assert_eq!(budget.take_suppressed(), 150);
        assert_eq!(budget.take_suppressed(), 0);
        // A line of a request that started in the previous second counts in the current one.
        let next = start + Duration::from_millis(1500);
        let admitted = (0..150).filter(|_| budget.admit(next)).count();
        assert_eq!(admitted, 100);
        assert!(!budget.admit(start));
        assert_eq!(budget.take_suppressed(), 51);
        let none = AccessBudget::new(0);
        assert!(!none.admit(none.epoch + Duration::from_secs(3)));
        assert!(!none.admit(none.epoch));
    }

    #[test]
    fn the_access_budget_holds_across_threads() {
        let budget = Arc::new(AccessBudget::new(1000));
        let start = budget.epoch;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = Arc::clone(&budget);
                std::thread::spawn(move || (0..1000).filter(|_| budget.admit(start)).count())
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 1000);
        assert_eq!(budget.take_suppressed(), 3000);
    }

    #[test]
    fn a_long_string_is_cut_with_a_marker_saying_how_much_is_left_out() {
        assert_eq!(Cut("/short", 256).to_string(), "/short");
        let long = format!("/{}", "a".repeat(1000));
        assert_eq!(
            Cut(&long, 256).to_string(),
            format!("{}…[+745 bytes]", &long[..256])
        );
        // Never in the middle of a character.
        assert_eq!(Cut("aé", 2).to_string(), "a…[+2 bytes]");
    }
}
