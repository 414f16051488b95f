//! The `authd sessions` subcommands: list, revoke, export and import sessions straight in the
//! database, without a running server (and without its secret or users file); the `authd users` /
//! `authd groups` file edits are in [`users`], `authd keys generate` in [`keys`].

pub mod keys;
mod transfer;
pub mod users;

use std::io::{BufRead, Write};
use std::path::Path;

use transfer::{ExportWriter, ImportReader};
pub use transfer::{FORMAT_VERSION, MAX_LINE_BYTES, MAX_SESSIONS, TransferError};

use crate::config::SessionsCommand;
use crate::sessions::{SessionInfo, SessionSettings, Sessions};
use crate::store::{Store, StoreError, StoreOptions};
use crate::tokens;

/// Sessions read from the database a query at a time by `export`.
const EXPORT_PAGE: i64 = 1_000;

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The database could not be opened or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The export could not be written.
    #[error(transparent)]
    Export(TransferError),
    /// The output file could not be made.
    #[error("cannot create {path}: {source}")]
    Output {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The import was refused or failed; its transaction was rolled back.
    #[error("{0}; nothing imported")]
    Import(Box<dyn std::error::Error + Send + Sync>),
    /// A session of the file is in the database already (or earlier in the file).
    #[error(
        "{file}, line {line}: session {id} is already in the database (imported before?); \
         nothing imported"
    )]
    Duplicate {
        /// The file.
        file: String,
        /// The session's line.
        line: u64,
        /// The session's id.
        id: String,
    },
}

/// What a command has to say: its answer on standard output, a note on standard error.
#[derive(Debug, Default)]
pub struct Printed {
    /// For standard output.
    pub stdout: String,
    /// For standard error (`export` writes its sessions to standard output).
    pub stderr: String,
}

/// Runs `command` against the database at `database_url`. `export` without `--output` writes
/// its sessions to standard output as it reads them; the rest is returned to be printed.
pub async fn sessions_command(
    command: &SessionsCommand,
    database_url: &str,
) -> Result<Printed, AdminError> {
    match command {
        SessionsCommand::Export { output } => {
            let n = export(database_url, output.as_deref()).await?;
            let plural = if n == 1 { "" } else { "s" };
            let to = output
                .as_ref()
                .map_or_else(String::new, |p| format!(" to {}", p.display()));
            return Ok(Printed {
                stderr: format!(
                    "exported {n} live session{plural}{to}: the file names users, keep it \
                     private and delete it once imported\n"
                ),
                ..Printed::default()
            });
        }
        SessionsCommand::Import { file } => {
            let (imported, skipped) = import(database_url, file).await?;
            let mut out = format!(
                "imported {imported} session{}",
                if imported == 1 { "" } else { "s" }
            );
            if skipped > 0 {
                out.push_str(&format!(
                    "; {skipped} more had expired since the export and were left out"
                ));
            }
            out.push('\n');
            return Ok(Printed {
                stdout: out,
                ..Printed::default()
            });
        }
        SessionsCommand::List { .. } | SessionsCommand::Revoke { .. } => {}
    }
    let store = Store::open_existing(database_url, &StoreOptions::default()).await?;
    let sessions = Sessions::new(store.clone(), SessionSettings::default());
    let now = tokens::now();
    let out = match command {
        SessionsCommand::List { user } => {
            let list = sessions.list(user.as_deref(), now).await?;
            format_sessions(&list)
        }
        SessionsCommand::Revoke { user } => {
            let n = sessions.revoke_user(user, now).await?;
            format!(
                "revoked {n} session{} of {user} and the access tokens issued in them\n",
                if n == 1 { "" } else { "s" }
            )
        }
        SessionsCommand::Export { .. } | SessionsCommand::Import { .. } => String::new(),
    };
    store.close().await;
    Ok(Printed {
        stdout: out,
        ..Printed::default()
    })
}

/// Writes the live sessions of the database at `database_url` to `output` (a new owner-only
/// file, removed again if the export fails) or to standard output; how many.
async fn export(database_url: &str, output: Option<&Path>) -> Result<u64, AdminError> {
    let store = Store::open_existing(database_url, &StoreOptions::default()).await?;
    let sessions = Sessions::new(store.clone(), SessionSettings::default());
    let result = match output {
        None => {
            // The command's runtime runs nothing else: plain blocking writes are fine here.
            let stdout = std::io::stdout().lock();
            export_to(&sessions, std::io::BufWriter::new(stdout)).await
        }
        Some(path) => {
            let file = create_private(path).map_err(|source| AdminError::Output {
                path: path.display().to_string(),
                source,
            })?;
            let result = export_to(&sessions, std::io::BufWriter::new(file)).await;
            if result.is_err() {
                // Half a file of sessions is still a file naming users.
                let _ = std::fs::remove_file(path);
            }
            result
        }
    };
    store.close().await;
    result
}

async fn export_to(sessions: &Sessions, out: impl Write) -> Result<u64, AdminError> {
    // One `now` for the whole export: a session is in it or not, whatever the paging.
    let now = tokens::now();
    let mut writer = ExportWriter::new(out, now).map_err(AdminError::Export)?;
    let mut after = String::new();
    loop {
        let page = sessions.export_page(now, &after, EXPORT_PAGE).await?;
        let Some(last) = page.last() else { break };
        after.clone_from(&last.id);
        for record in page {
            writer.session(record).map_err(AdminError::Export)?;
        }
    }
    writer.finish().map_err(AdminError::Export)
}

/// A new file at `path`, readable by its owner only; never an existing one.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Reads the file at `path` (`-`: standard input) into the database at `database_url`, in one
/// transaction; (sessions imported, sessions left out as expired since the export).
async fn import(database_url: &str, path: &Path) -> Result<(u64, u64), AdminError> {
    let stdin = path == Path::new("-");
    let name = if stdin {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    // The command's runtime runs nothing else: plain blocking reads are fine here.
    let input: Box<dyn BufRead> = if stdin {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).map_err(|source| {
            AdminError::Import(Box::new(TransferError::Read {
                file: name.clone(),
                source,
            }))
        })?;
        Box::new(std::io::BufReader::new(file))
    };
    // The header is checked before the database is touched: a file of another kind changes
    // nothing, not even an empty database's schema.
    let mut reader = ImportReader::new(input, &name, MAX_SESSIONS)
        .map_err(|e| AdminError::Import(Box::new(e)))?;
    let store = Store::open_for_import(database_url, &StoreOptions::default()).await?;
    let sessions = Sessions::new(store.clone(), SessionSettings::default());
    let result = import_from(&sessions, &mut reader, &name).await;
    store.close().await;
    result
}

async fn import_from(
    sessions: &Sessions,
    reader: &mut ImportReader<impl BufRead>,
    name: &str,
) -> Result<(u64, u64), AdminError> {
    let failed = |e: StoreError| AdminError::Import(Box::new(e));
    let now = tokens::now();
    let mut import = sessions.import().await.map_err(failed)?;
    let (mut imported, mut skipped) = (0, 0);
    while let Some(record) = reader
        .next_session()
        .map_err(|e| AdminError::Import(Box::new(e)))?
    {
        if !record.is_live(now) {
            skipped += 1;
            continue;
        }
        if !import.add(&record).await.map_err(failed)? {
            return Err(AdminError::Duplicate {
                file: name.to_owned(),
                line: reader.line(),
                id: record.id,
            });
        }
        imported += 1;
    }
    import.commit().await.map_err(failed)?;
    Ok((imported, skipped))
}

/// A tab-separated table of sessions, one a line, times in UTC, then a count.
pub fn format_sessions(list: &[SessionInfo]) -> String {
    let mut out = String::from("ID\tUSER\tSTARTED\tLAST_REFRESH\tIDLE_EXPIRES\tEXPIRES\n");
    for s in list {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            s.id,
            s.username,
            time(s.created_at),
            time(s.last_used_at),
            time(s.idle_expires_at),
            time(s.expires_at)
        ));
    }
    out.push_str(&format!(
        "{} live session{}\n",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    ));
    out
}

fn time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}
