//! `broker-server passwd FILE add|change|delete USER`: edits the password file (see
//! `broker_server::security::passwd` for its format).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};
use broker_server::internals::security::passwd::PasswordFile;
use clap::{Args, Subcommand};

/// Manage the password file (`auth.password_file`).
#[derive(Debug, Args)]
pub(crate) struct PasswdArgs {
    /// The password file (created by `add` if missing).
    file: PathBuf,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Add a user (fails if the user exists).
    Add(SetArgs),
    /// Change a user's password (fails if the user does not exist).
    Change(SetArgs),
    /// Delete a user.
    Delete {
        /// The user name.
        user: String,
    },
}

#[derive(Debug, Args)]
struct SetArgs {
    /// The user name (no ':').
    user: String,
    /// Also store a SCRAM-SHA-256 credential, for MQTT 5 clients that log in with
    /// enhanced authentication (Authentication Method `SCRAM-SHA-256`). Without it,
    /// `change` removes the user's SCRAM credential (it would keep the old password).
    #[arg(long)]
    scram: bool,
    /// The password, instead of reading it from standard input (visible to other
    /// users in the process list: for scripts in a trusted place only).
    #[arg(long)]
    password: Option<String>,
}

/// Runs the subcommand.
pub(crate) fn run(args: PasswdArgs) -> anyhow::Result<()> {
    let exists = args.file.exists();
    let mut file = if exists {
        PasswordFile::load(&args.file)?
    } else {
        PasswordFile::default()
    };
    match args.action {
        Action::Add(set) => {
            if file.contains(&set.user) {
                bail!("user {:?} already exists (use `change`)", set.user);
            }
            let password = password(set.password)?;
            file.set_password(&set.user, password.as_bytes(), set.scram)?;
        }
        Action::Change(set) => {
            if !file.contains(&set.user) {
                bail!("no user {:?} in {}", set.user, args.file.display());
            }
            let password = password(set.password)?;
            file.set_password(&set.user, password.as_bytes(), set.scram)?;
        }
        Action::Delete { user } => {
            if !file.remove(&user) {
                bail!("no user {user:?} in {}", args.file.display());
            }
        }
    }
    file.save(&args.file)?;
    eprintln!(
        "{} updated; send the broker SIGHUP (systemctl reload) to apply",
        args.file.display()
    );
    Ok(())
}

/// The password from `--password`, else from standard input: prompted twice without
/// echo on a terminal, one line otherwise.
fn password(given: Option<String>) -> anyhow::Result<String> {
    let password = match given {
        Some(password) => password,
        None if std::io::stdin().is_terminal() => {
            let first = prompt("Password: ")?;
            let second = prompt("Password again: ")?;
            if first != second {
                bail!("the passwords differ");
            }
            first
        }
        None => read_line()?,
    };
    if password.is_empty() {
        bail!("empty password");
    }
    Ok(password)
}

fn prompt(text: &str) -> anyhow::Result<String> {
    eprint!("{text}");
    std::io::stderr().flush()?;
    let echo = |on: &str| Command::new("stty").arg(on).status();
    let hidden = echo("-echo").is_ok_and(|s| s.success());
    let line = read_line();
    if hidden {
        let _ = echo("echo");
        eprintln!();
    }
    line
}

fn read_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
