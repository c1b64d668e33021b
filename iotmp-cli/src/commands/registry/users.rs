//! `iotmp user add|list|remove|token`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use serde_json::json;

use super::render::{table, utc};
use super::{RegistryCmdError, note, open, print, print_json};
use crate::cli::{RegistryArgs, UserArgs, UserCommand, UserNameArgs, UserRemoveArgs};
use crate::config::ServerConfig;
use crate::store::{OpenMode, StoreError};

/// Runs `iotmp user …`.
pub(crate) fn run(args: UserArgs, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    match args.command {
        UserCommand::Add(args) => add(args, config),
        UserCommand::List(args) => list(&args, config),
        UserCommand::Remove(args) => remove(args, config),
        UserCommand::Token(args) => token(args, config),
    }
}

/// `user add NAME`: the user and a first token, printed once.
fn add(args: UserNameArgs, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    let mut registry = open(&args.registry, config, OpenMode::Create)?;
    let (user, token) = registry.add_user(&args.name)?;
    if args.registry.json {
        return print_json(&json!({"user": &*user.name, "token": token.expose()}));
    }
    note(&format!(
        "Added user {name}. Below is their API token, shown only this once (the database keeps \
         a hash of it): store it now. `iotmp user token {name}` issues another.",
        name = user.name
    ));
    print(&format!("{}\n", token.expose()))
}

/// `user token NAME`: one more token, printed once.
fn token(args: UserNameArgs, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    let mut registry = open(&args.registry, config, OpenMode::Existing)?;
    let token = registry.issue_token(&args.name)?;
    if args.registry.json {
        return print_json(&json!({"user": args.name, "token": token.expose()}));
    }
    note(&format!(
        "New API token for {}, shown only this once: store it now. Their other tokens stay valid.",
        args.name
    ));
    print(&format!("{}\n", token.expose()))
}

/// `user list`.
fn list(args: &RegistryArgs, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    let registry = open(args, config, OpenMode::Existing)?;
    let users = registry.store().users()?;
    if args.json {
        let list: Vec<_> = users
            .iter()
            .map(|u| {
                json!({
                    "user": &*u.user.name,
                    "tokens": u.tokens,
                    "devices": u.devices,
                    "created_at": u.created_at,
                })
            })
            .collect();
        return print_json(&json!(list));
    }
    if users.is_empty() {
        note("No users yet: `iotmp user add NAME` adds one.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.user.name.to_string(),
                u.tokens.to_string(),
                u.devices.to_string(),
                utc(u.created_at),
            ]
        })
        .collect();
    print(&table(&["USER", "TOKENS", "DEVICES", "CREATED"], &rows))
}

/// `user remove NAME [--yes]`.
fn remove(args: UserRemoveArgs, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    let mut registry = open(&args.registry, config, OpenMode::Existing)?;
    let name = args.name;
    // Checked before the question: asking about a user that does not exist helps nobody.
    let Some(info) = registry
        .store()
        .users()?
        .into_iter()
        .find(|u| *u.user.name == *name)
    else {
        return Err(StoreError::UnknownUser(name).into());
    };
    if !args.yes {
        // A script must say what it wants (--yes) instead of having an answer guessed for it.
        if !std::io::stdin().is_terminal() {
            return Err(RegistryCmdError::NeedsYes(name));
        }
        let question = format!(
            "Remove user {name} with their {} API token(s), {} device(s) and all their recorded \
             data? This cannot be undone. [y/N] ",
            info.tokens, info.devices
        );
        if !confirm(&question)? {
            return Err(RegistryCmdError::Cancelled(name));
        }
    }
    let devices = registry.remove_user(&name)?;
    if args.registry.json {
        return print_json(&json!({"removed": {"user": name, "devices": devices}}));
    }
    print(&format!(
        "Removed user {name} and their {devices} device(s).\n"
    ))
}

/// Asks `question` on the terminal; true for "y" or "yes".
fn confirm(question: &str) -> Result<bool, RegistryCmdError> {
    let mut err = std::io::stderr().lock();
    err.write_all(question.as_bytes())
        .and_then(|()| err.flush())
        .map_err(RegistryCmdError::Prompt)?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(RegistryCmdError::Prompt)?;
    let answer = answer.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}
