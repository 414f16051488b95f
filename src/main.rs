//! The `authd` binary: parse the command line, set up logs, run. Everything else is in the library.

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;

use authd::config::{Cli, Command};
use authd::{Application, Config};
use clap::Parser as _;
use secrecy::ExposeSecret as _;

fn main() -> ExitCode {
    // The command line is read twice: first for `--env-file` (a bad command line, `--help` or
    // `--version` ends here, before any file is read), then with the file's settings loaded.
    let env_file = match Cli::try_parse() {
        Ok(cli) => cli.env_file,
        Err(e) => e.exit(),
    };
    if let Err(e) = authd::config::load_env_file(env_file.as_deref()) {
        return fail(&e);
    }
    let cli = Cli::parse();
    match cli.command {
        Some(Command::HashPassword) => hash_password(),
        Some(Command::Sessions(command)) => {
            sessions(&command, cli.serve.database_url().expose_secret())
        }
        None => serve(cli),
    }
}

fn sessions(command: &authd::config::SessionsCommand, database_url: &str) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(authd::admin::sessions_command(command, database_url)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn serve(cli: Cli) -> ExitCode {
    // Logs first: reading the configuration may warn (a secret file others can read).
    let _logs = authd::telemetry::init();
    let config = match Config::from_args(cli.serve) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    runtime.block_on(async {
        let demo = config.demo;
        let app = match Application::build(config).await {
            Ok(app) => app,
            Err(e) => return fail(&e),
        };
        if demo {
            tracing::warn!(
                "DEMO MODE: user `user` with password `password` and a throwaway secret (unless \
                 AUTHD_SECRET_KEY is set). For trying authd out only; never in production."
            );
        }
        let (scheme, addr, metrics_addr) = (app.scheme(), app.local_addr(), app.metrics_addr());
        // Signals are watched for from here on: one sent as soon as the line below appears counts.
        let serving = app.run();
        tracing::info!("listening on {scheme}://{addr}");
        if let Some(addr) = metrics_addr {
            tracing::info!("metrics on http://{addr}/metrics");
        }
        serving.await;
        ExitCode::SUCCESS
    })
}

fn hash_password() -> ExitCode {
    let password = if std::io::stdin().is_terminal() {
        match rpassword::prompt_password("Password: ") {
            Ok(p) => p,
            Err(e) => return fail(&e),
        }
    } else {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            return fail(&e);
        }
        // One line: drop the newline that `echo` and files end with.
        s.lines().next().unwrap_or_default().to_owned()
    };
    if password.is_empty() {
        eprintln!("authd: error: empty password");
        return ExitCode::FAILURE;
    }
    match authd::users::hash_password(password.as_bytes()) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("authd: error: {e}");
    ExitCode::FAILURE
}
