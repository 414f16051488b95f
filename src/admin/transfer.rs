//! The file of `authd sessions export` / `import`: live sessions as JSON lines, a header line
//! first and a line counting them last, so that a file cut short or of another kind is refused.
//! Plain Rust over readers and writers; reading is bounded in line length and in sessions.

use std::io::{BufRead, Read as _, Write};

use crate::sessions::SessionRecord;

/// The version of the file's shape this authd writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Longest line `import` reads: a session takes about 400 bytes, most of them its digests.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// Most sessions `import` reads from one file: a bound on one transaction, far above what a
/// deployment holds (users times `AUTHD_MAX_SESSIONS_PER_USER`, most of them unused).
pub const MAX_SESSIONS: u64 = 1_000_000;

/// One line of the file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum Line {
    /// The first line: what the file is.
    #[serde(rename = "authd-sessions")]
    Header {
        /// [`FORMAT_VERSION`] of the authd that wrote it.
        version: u32,
        /// When it was written (seconds since the Unix epoch).
        exported_at: i64,
    },
    /// One session.
    #[serde(rename = "session")]
    Session(SessionRecord),
    /// The last line: how many sessions came before it.
    #[serde(rename = "end")]
    End {
        /// Sessions in the file.
        sessions: u64,
    },
}

/// Why a file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Writing failed.
    #[error("cannot write the sessions: {0}")]
    Write(std::io::Error),
    /// Reading failed.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file, as named on the command line.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not what it must be. Its text is not repeated: it names a user.
    #[error("{file}, line {line}: {reason}")]
    Line {
        /// The file.
        file: String,
        /// Its number, from 1.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file is empty.
    #[error("{file} is empty, not a file that `authd sessions export` wrote")]
    Empty {
        /// The file.
        file: String,
    },
    /// The file ends before its last line.
    #[error("{file} ends before its `end` line (cut short?)")]
    Truncated {
        /// The file.
        file: String,
    },
}

/// Writes the file's sessions one at a time, between its header and its count.
#[derive(Debug)]
pub(crate) struct ExportWriter<W: Write> {
    out: W,
    sessions: u64,
}

impl<W: Write> ExportWriter<W> {
    /// Writes the header line, stamped `now`.
    pub(crate) fn new(mut out: W, now: i64) -> Result<Self, TransferError> {
        write_line(
            &mut out,
            &Line::Header {
                version: FORMAT_VERSION,
                exported_at: now,
            },
        )?;
        Ok(Self { out, sessions: 0 })
    }

    /// Writes one session.
    pub(crate) fn session(&mut self, record: SessionRecord) -> Result<(), TransferError> {
        write_line(&mut self.out, &Line::Session(record))?;
        self.sessions += 1;
        Ok(())
    }

    /// Writes the count line and flushes; how many sessions were written.
    pub(crate) fn finish(mut self) -> Result<u64, TransferError> {
        write_line(
            &mut self.out,
            &Line::End {
                sessions: self.sessions,
            },
        )?;
        self.out.flush().map_err(TransferError::Write)?;
        Ok(self.sessions)
    }
}

fn write_line(out: &mut impl Write, line: &Line) -> Result<(), TransferError> {
    serde_json::to_writer(&mut *out, line)
        .map_err(|e| TransferError::Write(std::io::Error::other(e)))?;
    out.write_all(b"\n").map_err(TransferError::Write)
}

/// Reads a file that `export` wrote: [`ImportReader::new`] checks its header, then
/// [`ImportReader::next_session`] gives its sessions one by one and checks its end.
#[derive(Debug)]
pub(crate) struct ImportReader<R: BufRead> {
    input: R,
    file: String,
    line: u64,
    sessions: u64,
    max_sessions: u64,
}

impl<R: BufRead> ImportReader<R> {
    /// Reads the header of `input` (named `file` in errors); at most `max_sessions` may follow.
    pub(crate) fn new(input: R, file: &str, max_sessions: u64) -> Result<Self, TransferError> {
        let mut reader = Self {
            input,
            file: file.to_owned(),
            line: 0,
            sessions: 0,
            max_sessions,
        };
        let not_export = "not the first line of a file that `authd sessions export` wrote";
        match reader.next_line()? {
            None => {
                return Err(TransferError::Empty {
                    file: file.to_owned(),
                });
            }
            Some(Ok(Line::Header { version, .. })) if version == FORMAT_VERSION => {}
            Some(Ok(Line::Header { version, .. })) => {
                return Err(reader.error(format!(
                    "written in format version {version}; this authd reads version {FORMAT_VERSION}"
                )));
            }
            Some(Ok(_)) => return Err(reader.error(not_export.to_owned())),
            Some(Err(reason)) => return Err(reader.error(format!("{not_export} ({reason})"))),
        }
        Ok(reader)
    }

    /// The next session, checked ([`SessionRecord::check`]); `None` once the end line has
    /// been read, its count matched and nothing follows it.
    pub(crate) fn next_session(&mut self) -> Result<Option<SessionRecord>, TransferError> {
        match self.next_line()? {
            None => Err(TransferError::Truncated {
                file: self.file.clone(),
            }),
            Some(Err(reason)) => Err(self.error(reason)),
            Some(Ok(Line::Header { .. })) => Err(self.error("a second header line".into())),
            Some(Ok(Line::Session(record))) => {
                self.sessions += 1;
                if self.sessions > self.max_sessions {
                    return Err(self.error(format!(
                        "more than {} sessions: more than one import takes",
                        self.max_sessions
                    )));
                }
                record.check().map_err(|reason| self.error(reason))?;
                Ok(Some(record))
            }
            Some(Ok(Line::End { sessions })) => {
                if sessions != self.sessions {
                    return Err(self.error(format!(
                        "the end line counts {sessions} sessions but {} came before it (is the \
                         file cut or edited?)",
                        self.sessions
                    )));
                }
                if self.next_line()?.is_some() {
                    return Err(self.error("text after the end line".into()));
                }
                Ok(None)
            }
        }
    }

    /// The next line, parsed (`Err` with why it is not a line of the file); `None` at the end.
    fn next_line(&mut self) -> Result<Option<Result<Line, String>>, TransferError> {
        let mut buf = Vec::new();
        // One byte more than a line may hold: a longer line is found without reading it all.
        let limit = u64::try_from(MAX_LINE_BYTES + 1).unwrap_or(u64::MAX);
        let n = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|source| TransferError::Read {
                file: self.file.clone(),
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if buf.len() > MAX_LINE_BYTES {
            return Ok(Some(Err(format!("longer than {MAX_LINE_BYTES} bytes"))));
        }
        Ok(Some(serde_json::from_slice(&buf).map_err(|e| {
            // serde's own position ("at line 1 column 5") would read as a line of the file.
            let text = e.to_string();
            let reason = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(r, _)| r);
            format!("not a line of `authd sessions export`: {reason}")
        })))
    }

    /// The number of the line read last.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    fn error(&self, reason: String) -> TransferError {
        TransferError::Line {
            file: self.file.clone(),
            line: self.line,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> SessionRecord {
        SessionRecord {
            id: format!("{n:032x}"),
            username: "alice".into(),
            created_at: 100,
            last_used_at: 150,
            expires_at: 1_000,
            token_expires_at: 500,
            token_digest: format!("{n:064x}"),
            lookup: Some(format!("{:064x}", u32::from(n) + 1000)),
            started_order: 7,
            sid: None,
        }
    }

    fn exported(records: &[SessionRecord]) -> String {
        let mut out = Vec::new();
        let mut writer = ExportWriter::new(&mut out, 42).unwrap();
        for r in records {
            writer.session(r.clone()).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), records.len() as u64);
        String::from_utf8(out).unwrap()
    }

    fn read_all(text: &str, max: u64) -> Result<Vec<SessionRecord>, TransferError> {
        let mut reader = ImportReader::new(text.as_bytes(), "f", max)?;
        let mut all = Vec::new();
        while let Some(r) = reader.next_session()? {
            all.push(r);
        }
        Ok(all)
    }

    fn refusal(text: &str) -> String {
        read_all(text, MAX_SESSIONS).unwrap_err().to_string()
    }

    #[test]
    fn what_export_writes_import_reads_back_whole() {
        let records = [record(1), record(2)];
        let text = exported(&records);
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.starts_with(r#"{"type":"authd-sessions","version":1,"#));
        assert!(text.ends_with("{\"type\":\"end\",\"sessions\":2}\n"));
        assert_eq!(read_all(&text, MAX_SESSIONS).unwrap(), records);
        assert_eq!(read_all(&exported(&[]), MAX_SESSIONS).unwrap(), []);
    }

    #[test]
    fn a_file_cut_short_or_with_a_wrong_count_is_refused() {
        let text = exported(&[record(1), record(2)]);
        let lines: Vec<&str> = text.lines().collect();
        let cut = format!("{}\n{}\n", lines[0], lines[1]);
        assert_eq!(refusal(&cut), "f ends before its `end` line (cut short?)");
        let dropped = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[3]);
        assert!(
            refusal(&dropped).starts_with("f, line 3: the end line counts 2 sessions but 1"),
            "{}",
            refusal(&dropped)
        );
        let extra = format!("{text}{}\n", lines[1]);
        assert_eq!(refusal(&extra), "f, line 5: text after the end line");
    }

    #[test]
    fn lines_that_are_not_the_files_are_refused_with_their_number_and_never_echoed() {
        let text = exported(&[record(1)]);
        let lines: Vec<&str> = text.lines().collect();
        let with = |second: &str| format!("{}\n{second}\n{}\n", lines[0], lines[2]);
        // Not JSON, an unknown field, a bad digest, a second header: each names line 2.
        let secret_ish = "alice-was-here";
        for bad in [
            format!("not json {secret_ish}"),
            lines[1].replace("\"started_order\"", "\"extra\":1,\"started_order\""),
            lines[1].replace(&format!("{:064x}", 1), &"Z".repeat(64)),
            lines[0].to_owned(),
            lines[1].replace("\"created_at\":100", "\"created_at\":2000"),
            String::new(),
        ] {
            let message = refusal(&with(&bad));
            assert!(message.starts_with("f, line 2: "), "{bad}: {message}");
            assert!(!message.contains(secret_ish), "{message}");
            assert!(!message.contains("column"), "{message}");
        }
        // A first line that is no header.
        assert!(refusal(lines[1]).starts_with("f, line 1: not the first line"));
        assert_eq!(
            refusal(""),
            "f is empty, not a file that `authd sessions export` wrote"
        );
        let v2 = text.replace("\"version\":1", "\"version\":2");
        assert!(
            refusal(&v2).contains("format version 2"),
            "{}",
            refusal(&v2)
        );
    }

    #[test]
    fn lines_and_session_counts_are_bounded() {
        let text = exported(&[record(1), record(2), record(3)]);
        assert!(
            read_all(&text, 2)
                .unwrap_err()
                .to_string()
                .contains("more than 2 sessions"),
        );
        let mut long = record(1);
        long.username = "a".repeat(MAX_LINE_BYTES);
        let text = exported(&[long]);
        // Endless input without a newline stops at the bound too.
        assert_eq!(
            refusal(&text),
            format!("f, line 2: longer than {MAX_LINE_BYTES} bytes")
        );
        let header = format!("{}\n", text.lines().next().unwrap());
        let endless = std::io::Read::chain(header.as_bytes(), std::io::repeat(b'x'));
        let mut reader =
            ImportReader::new(std::io::BufReader::new(endless), "f", MAX_SESSIONS).unwrap();
        let message = reader.next_session().unwrap_err().to_string();
        assert_eq!(
            message,
            format!("f, line 2: longer than {MAX_LINE_BYTES} bytes")
        );
    }
}
