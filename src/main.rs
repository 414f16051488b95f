//! The `authd` binary: parse the command line, set up logs, run. Everything else is in the library.

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;

use authd::admin::users as edit;
use authd::config::{
    Cli, Command, GroupsCommand, KeysCommand, LogFormat, ServeArgs, SessionsCommand, UsersCommand,
};
use authd::{Application, Config};
use clap::Parser as _;
use secrecy::ExposeSecret as _;

fn main() -> ExitCode {
    // The command line is read twice: first for `--env-file` (a bad command line, `--help` or
    // `--version` ends here, before any file is read), then with the file's settings loaded.
    // Until it has been read, the log format a refusal is written in is found without clap.
    let env_file = match parse_command_line() {
        Ok(cli) => cli.env_file,
        Err(message) => return refuse_early(requested_log_format(), &message),
    };
    if let Err(e) = authd::config::load_env_file(env_file.as_deref()) {
        return refuse_early(requested_log_format(), &e);
    }
    let cli = match parse_command_line() {
        Ok(cli) => cli,
        Err(message) => return refuse_early(requested_log_format(), &message),
    };
    match cli.command {
        Some(Command::HashPassword) => hash_password(),
        Some(Command::Sessions(command)) => match cli.serve.database_url() {
            Ok(url) => sessions(&command, url.expose_secret()),
            Err(e) => fail(LogFormat::Text, &e),
        },
        Some(Command::Users(command)) => users(&command, &cli.serve),
        Some(Command::Groups(command)) => groups(&command, &cli.serve),
        Some(Command::Keys(command)) => keys(&command),
        None => serve(cli),
    }
}

/// The command line and its variables; a bad one is the one-line message that refuses it, like
/// every other bad setting, with exit code 1 (clap's own answer is several lines and exit code
/// 2). `--help` and `--version` print as usual.
fn parse_command_line() -> Result<Cli, String> {
    use clap::error::ErrorKind;
    Cli::try_parse().map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            format!("{first}{}", variable_of(first))
        }
    })
}

/// The log format asked for, for a refusal that comes before the command line could be read
/// (clap gives no value at all when it refuses one): the last `--log-format` of the command
/// line, else `AUTHD_LOG_FORMAT`; text unless one of them says `json`.
fn requested_log_format() -> LogFormat {
    let mut args = std::env::args_os().skip(1);
    let mut asked = None;
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            break;
        } else if arg == "--log-format" {
            asked = args.next().map(|v| v.to_string_lossy().into_owned());
        } else if let Some(value) = arg.strip_prefix("--log-format=") {
            asked = Some(value.to_owned());
        }
    }
    asked
        .or_else(|| std::env::var("AUTHD_LOG_FORMAT").ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

/// Refuses to start before the logs are set up: in JSON, they are set up for this one line.
fn refuse_early(format: LogFormat, e: &dyn std::fmt::Display) -> ExitCode {
    let _logs = (format == LogFormat::Json).then(|| authd::telemetry::init(format));
    fail(format, e)
}

/// ` (AUTHD_X)` when `message` names a flag `--x` whose variable is `AUTHD_X`, so that a bad
/// value set in the environment or `.env` is found by the name it was set under. clap names a
/// flag `'--x'`, or `'--x <VALUE>'` when it takes a value.
fn variable_of(message: &str) -> String {
    use clap::CommandFactory as _;
    let command = Cli::command();
    command
        .get_arguments()
        .find_map(|arg| {
            let long = arg.get_long()?;
            let env = arg.get_env()?;
            let named = message.contains(&format!("'--{long}'"))
                || message.contains(&format!("'--{long} <"));
            named.then(|| format!(" ({})", env.to_string_lossy()))
        })
        .unwrap_or_default()
}

fn sessions(command: &SessionsCommand, database_url: &str) -> ExitCode {
    // Said on every run, so that nobody reads an answer about one database as one about another.
    eprintln!("authd: database {}", authd::store::describe(database_url));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(LogFormat::Text, &e),
    };
    match runtime.block_on(authd::admin::sessions_command(command, database_url)) {
        Ok(printed) => {
            print!("{}", printed.stdout);
            eprint!("{}", printed.stderr);
            ExitCode::SUCCESS
        }
        Err(e) => fail(LogFormat::Text, &e),
    }
}

fn serve(cli: Cli) -> ExitCode {
    // Logs first: reading the configuration may warn (a secret file others can read), and a
    // refusal from here on is written in the format asked for.
    let format = cli.serve.log_format;
    let _logs = authd::telemetry::init(format);
    for (name, closest) in authd::config::unknown_variables() {
        match closest {
            Some(known) => {
                tracing::warn!("{name} is not a setting and is ignored; did you mean {known}?");
            }
            None => tracing::warn!("{name} is not a setting and is ignored"),
        }
    }
    let pid_file = cli.serve.pid_file.clone();
    let config = match Config::from_args(cli.serve) {
        Ok(c) => c,
        Err(e) => return fail(format, &e),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(format, &e),
    };
    runtime.block_on(async {
        let demo = config.demo;
        let app = match Application::build(config).await {
            Ok(app) => app,
            Err(e) => return fail(format, &e),
        };
        if demo {
            tracing::warn!(
                "DEMO MODE: user `user` with password `password` and a throwaway secret or key \
                 (unless AUTHD_SECRET_KEY or AUTHD_SIGNING_KEY_FILE is set). For trying authd \
                 out only; never in production."
            );
        }
        let (scheme, addr, metrics_addr) = (app.scheme(), app.local_addr(), app.metrics_addr());
        // Signals are watched for from here on: one sent as soon as the line below appears counts.
        let serving = app.run();
        if let Some(path) = &pid_file
            && let Err(e) = write_pid_file(path)
        {
            return fail(
                format,
                &format!("cannot write the pid file {}: {e}", path.display()),
            );
        }
        tracing::info!("listening on {scheme}://{addr}");
        if let Some(addr) = metrics_addr {
            tracing::info!("metrics on http://{addr}/metrics");
        }
        serving.await;
        if let Some(path) = &pid_file {
            remove_pid_file(path);
        }
        ExitCode::SUCCESS
    })
}

/// Writes this process's id to `path`, whole or not at all (a temp file beside it, renamed).
fn write_pid_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".authd-tmp");
    std::fs::write(&temp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&temp, path)
}

/// Removes the pid file on a clean exit, unless another process has written its own id there.
fn remove_pid_file(path: &std::path::Path) {
    let ours = std::fs::read_to_string(path)
        .is_ok_and(|text| text.trim() == std::process::id().to_string());
    if ours && let Err(e) = std::fs::remove_file(path) {
        tracing::warn!("cannot remove the pid file {}: {e}", path.display());
    }
}

/// A password from a terminal without echo (twice when `confirm`: a typo would lock the user
/// out), else the first line of standard input; never empty.
fn read_password(confirm: bool) -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        if confirm {
            let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
            if again != first {
                return Err("the passwords differ; nothing changed".to_owned());
            }
        }
        first
    } else {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| e.to_string())?;
        // One line: drop the newline that `echo` and files end with.
        s.lines().next().unwrap_or_default().to_owned()
    };
    if password.is_empty() {
        return Err("empty password".to_owned());
    }
    Ok(password)
}

fn keys(command: &KeysCommand) -> ExitCode {
    let KeysCommand::Generate { alg, output } = command;
    let alg = match alg.parse::<authd::signing::SigningAlg>() {
        Ok(a) if a.is_asymmetric() => a,
        _ => {
            return fail(
                LogFormat::Text,
                &format_args!(
                    "keys generate --alg: EdDSA or ES256 (HS256 takes a secret: `openssl rand -base64 48`)"
                ),
            );
        }
    };
    match authd::admin::keys::generate(alg, output.as_deref()) {
        Ok(kid) => {
            eprintln!("authd: made an {alg} key, kid {kid}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(LogFormat::Text, &e),
    }
}

fn hash_password() -> ExitCode {
    let password = match read_password(false) {
        Ok(p) => p,
        Err(e) => return fail(LogFormat::Text, &e),
    };
    match authd::users::hash_password(password.as_bytes()) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(LogFormat::Text, &e),
    }
}

/// `authd users ...`: the users file of AUTHD_USERS, read from the same flags, variables and
/// `.env` as the server's. `passwd` and `remove` then end the user's sessions in the database.
fn users(command: &UsersCommand, args: &ServeArgs) -> ExitCode {
    let Some(file) = args.users.as_deref() else {
        return fail(
            LogFormat::Text,
            &"no users file: set AUTHD_USERS (or --users) to the file the server reads",
        );
    };
    let changed = match command {
        UsersCommand::List => {
            return match edit::list_users(file) {
                Ok(names) => {
                    for n in names {
                        println!("{n}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(LogFormat::Text, &e),
            };
        }
        UsersCommand::Add { name } => {
            if let Err(e) = edit::check_name("user", name) {
                return fail(LogFormat::Text, &e);
            }
            read_password(true)
                .and_then(|p| edit::add_user(file, name, p.as_bytes()).map_err(|e| e.to_string()))
                .map(|()| {
                    (
                        name,
                        format!("added user {name} to {}", file.display()),
                        false,
                    )
                })
        }
        UsersCommand::Passwd { name } => {
            if let Err(e) = edit::check_name("user", name) {
                return fail(LogFormat::Text, &e);
            }
            read_password(true)
                .and_then(|p| {
                    edit::set_password(file, name, p.as_bytes()).map_err(|e| e.to_string())
                })
                .map(|()| {
                    let what = format!("changed the password of {name} in {}", file.display());
                    (name, what, true)
                })
        }
        UsersCommand::Remove { name } => edit::remove_user(file, args.groups.as_deref(), name)
            .map_err(|e| e.to_string())
            .map(|()| {
                (
                    name,
                    format!("removed user {name} from {}", file.display()),
                    true,
                )
            }),
    };
    let (name, what, end_sessions) = match changed {
        Ok(c) => c,
        Err(e) => return fail(LogFormat::Text, &e),
    };
    eprintln!("authd: {what}");
    if !end_sessions {
        return ExitCode::SUCCESS;
    }
    match args.database_url() {
        Ok(url) => end_sessions_of(name, url.expose_secret()),
        Err(e) => fail(LogFormat::Text, &e),
    }
}

/// Ends `user`'s sessions after a password change or removal; a database that does not exist
/// (the server never ran with it) holds none.
fn end_sessions_of(user: &str, database_url: &str) -> ExitCode {
    eprintln!("authd: database {}", authd::store::describe(database_url));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(LogFormat::Text, &e),
    };
    let command = SessionsCommand::Revoke {
        user: user.to_owned(),
    };
    match runtime.block_on(authd::admin::sessions_command(&command, database_url)) {
        Ok(printed) => {
            print!("{}", printed.stdout);
            eprint!("{}", printed.stderr);
            ExitCode::SUCCESS
        }
        Err(authd::admin::AdminError::Store(authd::store::StoreError::NoDatabase(why))) => {
            eprintln!("authd: {why}: no sessions to end");
            ExitCode::SUCCESS
        }
        Err(e) => fail(
            LogFormat::Text,
            &format!("the file was changed, but ending the sessions failed: {e}"),
        ),
    }
}

/// `authd groups ...`: the groups file of AUTHD_GROUPS.
fn groups(command: &GroupsCommand, args: &ServeArgs) -> ExitCode {
    let Some(file) = args.groups.as_deref() else {
        return fail(
            LogFormat::Text,
            &"no groups file: set AUTHD_GROUPS (or --groups) to the file the server reads",
        );
    };
    let done = match command {
        GroupsCommand::Add { group, user } => edit::add_to_group(file, group, user).map(|added| {
            if added {
                format!("added {user} to group {group} in {}", file.display())
            } else {
                format!("{user} is in group {group} already")
            }
        }),
        GroupsCommand::Remove { group, user } => edit::remove_from_group(file, group, user)
            .map(|()| format!("removed {user} from group {group} in {}", file.display())),
    };
    match done {
        Ok(what) => {
            eprintln!("authd: {what}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(LogFormat::Text, &e),
    }
}

/// Refuses to start (or ends an admin command) with exit code 1: one line on stderr, or in JSON
/// an error in the log (set up by then) like every other line.
fn fail(format: LogFormat, e: &dyn std::fmt::Display) -> ExitCode {
    match format {
        LogFormat::Text => eprintln!("authd: error: {e}"),
        LogFormat::Json => tracing::error!("{e}"),
    }
    ExitCode::FAILURE
}
