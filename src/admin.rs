//! The `authd sessions` subcommands: list and revoke sessions straight in the database, without a
//! running server (and without its secret or users file); the `authd users` / `authd groups`
//! file edits are in [`users`].

pub mod users;

use crate::config::SessionsCommand;
use crate::sessions::{SessionInfo, SessionSettings, Sessions};
use crate::store::{Store, StoreError, StoreOptions};
use crate::tokens;

/// Runs `command` against the database at `database_url` and returns what to print.
pub async fn sessions_command(
    command: &SessionsCommand,
    database_url: &str,
) -> Result<String, StoreError> {
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
                "revoked {n} session{} of {user}; access tokens already issued stay valid until their exp\n",
                if n == 1 { "" } else { "s" }
            )
        }
    };
    store.close().await;
    Ok(out)
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
