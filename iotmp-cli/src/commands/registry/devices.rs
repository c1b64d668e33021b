//! `iotmp device add|list|remove`: the devices of the registry (not the device role).

use std::io::BufRead as _;
use std::path::Path;

use iotmp_proto::server::first_pem_certificate;
use serde_json::json;

use super::render::{table, utc};
use super::{RegistryCmdError, note, open, print, print_json};
use crate::cli::{DeviceAddArgs, DeviceListArgs, DeviceRegistryCommand, DeviceRemoveArgs};
use crate::config::ServerConfig;
use crate::store::{DeviceInfo, Fingerprint, OpenMode, Secret};

/// A chosen credential shorter than this gets a louder warning: 16 random base64 characters
/// are 96 bits, about the least that resists guessing over the network for long.
const SHORT_CREDENTIAL: usize = 16;

/// Runs `iotmp device add|list|remove`.
pub(crate) fn run(
    command: DeviceRegistryCommand,
    config: &ServerConfig,
) -> Result<(), RegistryCmdError> {
    match command {
        DeviceRegistryCommand::Add(args) => add(args, config),
        DeviceRegistryCommand::List(args) => list(&args, config),
        DeviceRegistryCommand::Remove(args) => remove(&args, config),
    }
}

/// `device add USER/DEVICE [--cert FILE] [--credential X]`.
fn add(args: DeviceAddArgs, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    let fingerprint = args.cert.as_deref().map(cert_fingerprint).transpose()?;
    let (credential, generated) = match args.credential {
        None => (
            Secret::generate().map_err(crate::store::StoreError::from)?,
            true,
        ),
        Some(given) => (chosen_credential(given)?, false),
    };
    // After reading the inputs: a bad --cert must not leave half a job behind.
    let mut registry = open(&args.registry, config, OpenMode::Existing)?;
    let target = &args.target;
    registry.add_device(&target.user, &target.device, &credential, fingerprint)?;

    if args.registry.json {
        return print_json(&json!({
            "user": target.user,
            "device": target.device,
            "credential": generated.then(|| credential.expose()),
            "fingerprint": fingerprint.map(|f| f.to_string()),
        }));
    }
    let mut text = format!("Added device {target}.");
    if let Some(fingerprint) = fingerprint {
        text.push_str(&format!(
            " It may authenticate with its certificate (SHA-256 {fingerprint}) over TLS, or \
             with its credential."
        ));
    }
    if generated {
        text.push_str(&format!(
            " Below is its credential, shown only this once (the database keeps a hash of it): \
             configure the device with user {}, device {} and this credential.",
            target.user, target.device
        ));
        note(&text);
        print(&format!("{}\n", credential.expose()))
    } else {
        text.push_str(" Its credential is the one you gave.");
        note(&text);
        Ok(())
    }
}

/// The credential of `--credential`: the text, or the first line of stdin for `-` (which keeps
/// it out of the shell history and the process list). Warns that it should be long and random.
fn chosen_credential(given: String) -> Result<Secret, RegistryCmdError> {
    let text = if given == "-" {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(RegistryCmdError::CredentialInput)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        given
    };
    let length = text.chars().count();
    if length > 0 {
        note(
            "warning: a chosen credential is only as strong as it is long and random; omit \
             --credential to get a generated one (256 random bits).",
        );
    }
    if length > 0 && length < SHORT_CREDENTIAL {
        note(&format!(
            "warning: this credential has only {length} characters: use at least 32 random ones."
        ));
    }
    Ok(Secret::from_user(text))
}

/// SHA-256 of the DER of the first certificate in a PEM file.
fn cert_fingerprint(path: &Path) -> Result<Fingerprint, RegistryCmdError> {
    let pem = std::fs::read(path).map_err(|source| RegistryCmdError::CertRead {
        path: path.to_owned(),
        source,
    })?;
    // PEM is ASCII; anything else in the file (a binary DER file, say) simply has no block.
    let der = first_pem_certificate(&String::from_utf8_lossy(&pem)).ok_or_else(|| {
        RegistryCmdError::NotPem {
            path: path.to_owned(),
        }
    })?;
    Ok(Fingerprint::of_der(&der))
}

/// `device list [USER]`.
fn list(args: &DeviceListArgs, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    let registry = open(&args.registry, config, OpenMode::Existing)?;
    let devices = registry.store().devices(args.user.as_deref())?;
    if args.registry.json {
        let list: Vec<_> = devices.iter().map(device_json).collect();
        return print_json(&json!(list));
    }
    if devices.is_empty() {
        note("No devices: `iotmp device add USER/DEVICE` adds one.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                format!("{}/{}", d.device.user.name, d.device.name),
                utc(d.created_at),
                d.fingerprint
                    .map_or_else(|| "-".to_owned(), |f| f.to_string()),
            ]
        })
        .collect();
    print(&table(&["DEVICE", "CREATED", "CERTIFICATE SHA-256"], &rows))
}

/// One device of `device list --json`.
fn device_json(d: &DeviceInfo) -> serde_json::Value {
    json!({
        "user": &*d.device.user.name,
        "device": &*d.device.name,
        "fingerprint": d.fingerprint.map(|f| f.to_string()),
        "created_at": d.created_at,
    })
}

/// `device remove USER/DEVICE`.
fn remove(args: &DeviceRemoveArgs, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    let mut registry = open(&args.registry, config, OpenMode::Existing)?;
    let target = &args.target;
    registry.remove_device(&target.user, &target.device)?;
    if args.registry.json {
        return print_json(&json!({"removed": {"user": target.user, "device": target.device}}));
    }
    print(&format!("Removed device {target}.\n"))
}
