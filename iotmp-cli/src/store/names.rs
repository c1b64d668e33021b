//! What a user name, a device id, a resource or a bucket name may be.
//!
//! User names and device ids travel in CONNECT payloads, in HTTP paths
//! (`/v3/users/{user}/devices/{device}`) and on the command line as `USER/DEVICE`, so they are
//! kept to characters that need no escaping anywhere: ASCII letters, digits, `_`, `-` and `.`,
//! 1 to [`MAX_NAME_LEN`] of them, not `.` or `..` (which a URL path would resolve away).

use std::fmt;

use thiserror::Error;

/// Longest user name, device id or bucket name, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// Longest resource name of a recorder, in bytes (resources may hold `/` and `$`: spec §8.1).
pub(crate) const MAX_RESOURCE_LEN: usize = 256;

/// Which kind of name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind {
    /// A user name.
    User,
    /// A device id.
    Device,
    /// A bucket name.
    Bucket,
    /// A resource name.
    Resource,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::User => "user name",
            NameKind::Device => "device id",
            NameKind::Bucket => "bucket name",
            NameKind::Resource => "resource name",
        })
    }
}

/// A name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{name:?} is not a valid {kind}: {why}")]
pub(crate) struct InvalidName {
    /// What it was meant to be.
    pub(crate) kind: NameKind,
    /// The name as given.
    pub(crate) name: String,
    /// What to change.
    pub(crate) why: &'static str,
}

/// Checks a user name, device id or bucket name.
pub(crate) fn check(kind: NameKind, name: &str) -> Result<(), InvalidName> {
    let refuse = |why| {
        Err(InvalidName {
            kind,
            name: name.to_owned(),
            why,
        })
    };
    if kind == NameKind::Resource {
        return if name.is_empty() || name.len() > MAX_RESOURCE_LEN {
            refuse("use 1 to 256 bytes")
        } else if name.chars().any(char::is_control) {
            refuse("control characters are not allowed")
        } else {
            Ok(())
        };
    }
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return refuse("use 1 to 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return refuse("use only ASCII letters, digits, '_', '-' and '.'");
    }
    if name == "." || name == ".." {
        return refuse("'.' and '..' are path components, not names");
    }
    Ok(())
}

/// A user name on the command line (clap's value parser): refused before anything is opened
/// or created.
pub(crate) fn parse_user(text: &str) -> Result<String, String> {
    check(NameKind::User, text).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

/// `USER/DEVICE` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DevicePath {
    /// The owner.
    pub(crate) user: String,
    /// The device id.
    pub(crate) device: String,
}

impl std::str::FromStr for DevicePath {
    type Err = String;

    /// The message is clap's, after "invalid value 'X' for '<USER/DEVICE>': ".
    fn from_str(text: &str) -> Result<DevicePath, String> {
        let Some((user, device)) = text.split_once('/') else {
            return Err("write the user and the device id with a slash: alice/dev01".to_owned());
        };
        check(NameKind::User, user).map_err(|e| e.to_string())?;
        check(NameKind::Device, device).map_err(|e| e.to_string())?;
        Ok(DevicePath {
            user: user.to_owned(),
            device: device.to_owned(),
        })
    }
}

impl fmt::Display for DevicePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.user, self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for name in ["alice", "dev01", "a", "A-b_c.d", &"x".repeat(64)] {
            check(NameKind::User, name).unwrap();
            check(NameKind::Device, name).unwrap();
        }
        check(NameKind::Resource, "$fs/get/a.txt").unwrap();
    }

    #[test]
    fn bad_names_say_what_to_change() {
        for (name, needle) in [
            ("", "1 to 64"),
            (&"x".repeat(65), "1 to 64"),
            ("alice/dev01", "only ASCII"),
            ("älice", "only ASCII"),
            ("a b", "only ASCII"),
            ("..", "path components"),
        ] {
            let err = check(NameKind::Device, name).unwrap_err().to_string();
            assert!(err.contains("device id") && err.contains(needle), "{err}");
        }
        assert!(check(NameKind::Resource, "").is_err());
        assert!(check(NameKind::Resource, "a\nb").is_err());
    }

    #[test]
    fn device_paths() {
        let path: DevicePath = "alice/dev01".parse().unwrap();
        assert_eq!(
            (path.user.as_str(), path.device.as_str()),
            ("alice", "dev01")
        );
        assert_eq!(path.to_string(), "alice/dev01");
        for (text, needle) in [
            ("alice", "with a slash"),
            ("alice/", "device id"),
            ("/dev01", "user name"),
            ("alice/dev/01", "device id"),
        ] {
            let err = text.parse::<DevicePath>().unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
