//! Option values shared by the command line, the environment and the config file.
//!
//! Each type parses the same text wherever it comes from (clap's `ValueEnum` / `FromStr` on the
//! command line and in `IOTMP_*` variables, serde in the TOML file), so that `--dialect 2026`,
//! `IOTMP_DIALECT=2026` and `dialect = "2026"` (or `dialect = 2026`) mean the same thing.

use std::str::FromStr;

use clap::ValueEnum;
use iotmp_proto::{Dialect, Flavour};
use serde::Deserialize;
use thiserror::Error;

/// What a TOML file may hold for a dialect or flavour: `"2026"`, `2026`, `"v2"`.
///
/// TOML users write years as integers, so both spellings are accepted.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Name {
    Text(String),
    Number(u64),
}

impl Name {
    fn into_text(self) -> String {
        match self {
            Name::Text(text) => text,
            Name::Number(n) => n.to_string(),
        }
    }
}

/// A word that is not one of the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid value {given:?}: expected one of {expected}")]
pub(crate) struct BadValue {
    given: String,
    expected: String,
}

/// Parses `text` as a `ValueEnum`, with an error that lists the accepted spellings.
fn parse_value_enum<T: ValueEnum>(text: &str) -> Result<T, BadValue> {
    T::from_str(text, false).map_err(|_| BadValue {
        given: text.to_owned(),
        expected: T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|v| v.get_name().to_owned())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// `--dialect` of `decode`: a wire generation, or `detect` (spec §6.1, from the first frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(try_from = "Name")]
pub(crate) enum DialectChoice {
    /// The 2020 draft (CONNECT is 0x08).
    #[value(name = "2020")]
    Draft2020,
    /// The 2026 generation (CONNECT is 0x03).
    #[value(name = "2026")]
    Draft2026,
    /// The first frame's type picks the dialect: 0x08 -> 2020, 0x03 -> 2026.
    Detect,
}

impl DialectChoice {
    /// The fixed dialect, or `None` for `detect`.
    pub(crate) const fn fixed(self) -> Option<Dialect> {
        match self {
            DialectChoice::Draft2020 => Some(Dialect::Draft2020),
            DialectChoice::Draft2026 => Some(Dialect::Draft2026),
            DialectChoice::Detect => None,
        }
    }
}

impl TryFrom<Name> for DialectChoice {
    type Error = BadValue;
    fn try_from(name: Name) -> Result<Self, BadValue> {
        parse_value_enum(&name.into_text())
    }
}

/// `--dialect` of commands that write frames: detection makes no sense there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(try_from = "Name")]
pub(crate) enum WireDialect {
    /// The 2020 draft.
    #[value(name = "2020")]
    Draft2020,
    /// The 2026 generation.
    #[value(name = "2026")]
    Draft2026,
}

impl WireDialect {
    /// The codec.
    pub(crate) const fn dialect(self) -> Dialect {
        match self {
            WireDialect::Draft2020 => Dialect::Draft2020,
            WireDialect::Draft2026 => Dialect::Draft2026,
        }
    }
}

impl TryFrom<Name> for WireDialect {
    type Error = BadValue;
    fn try_from(name: Name) -> Result<Self, BadValue> {
        parse_value_enum(&name.into_text())
    }
}

/// `--pson`: the value encoding of 2026 frames (2020 always uses Protoson).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(try_from = "Name")]
pub(crate) enum PsonChoice {
    /// Protoson ("PSON v1", wire type 1): the legacy 2026 flavour.
    V1,
    /// PSON v2 (wire type 2): what current devices send.
    V2,
}

impl PsonChoice {
    /// The codec flavour.
    pub(crate) const fn flavour(self) -> Flavour {
        match self {
            PsonChoice::V1 => Flavour::V1,
            PsonChoice::V2 => Flavour::V2,
        }
    }
}

impl TryFrom<Name> for PsonChoice {
    type Error = BadValue;
    fn try_from(name: Name) -> Result<Self, BadValue> {
        parse_value_enum(&name.into_text())
    }
}

/// A byte count such as `262144`, `256KiB`, `256k` or `1MiB` (binary units), at most 2^32-1:
/// frame sizes are u32 on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SizeInput")]
pub(crate) struct ByteSize(u32);

impl ByteSize {
    /// A size of `bytes` bytes.
    #[cfg(test)]
    pub(crate) const fn new(bytes: u32) -> Self {
        ByteSize(bytes)
    }

    /// The number of bytes.
    pub(crate) const fn get(self) -> u32 {
        self.0
    }
}

/// A size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "invalid size {0:?}: write a number of bytes, optionally with a unit: 262144, 256KiB, 1MiB (at most 4GiB - 1)"
)]
pub(crate) struct BadSize(String);

impl FromStr for ByteSize {
    type Err = BadSize;
    fn from_str(text: &str) -> Result<Self, BadSize> {
        let bad = || BadSize(text.to_owned());
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let number: u64 = digits.parse().map_err(|_| bad())?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            _ => return Err(bad()),
        };
        let bytes = number.checked_mul(multiplier).ok_or_else(bad)?;
        u32::try_from(bytes).map(ByteSize).map_err(|_| bad())
    }
}

/// `max-body = 262144` or `max-body = "256KiB"` in TOML.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeInput {
    Bytes(u64),
    Text(String),
}

impl TryFrom<SizeInput> for ByteSize {
    type Error = BadSize;
    fn try_from(input: SizeInput) -> Result<Self, BadSize> {
        match input {
            SizeInput::Bytes(n) => u32::try_from(n)
                .map(ByteSize)
                .map_err(|_| BadSize(n.to_string())),
            SizeInput::Text(text) => text.parse(),
        }
    }
}

/// `--runtime` of `device`: which driver runs the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(try_from = "Name")]
pub(crate) enum RuntimeChoice {
    /// iotmp-mio: one thread, a mio readiness loop.
    Mio,
    /// iotmp-smol on smol's global executor.
    #[default]
    Smol,
    /// iotmp-smol on async-std's global executor.
    AsyncStd,
}

impl TryFrom<Name> for RuntimeChoice {
    type Error = BadValue;
    fn try_from(name: Name) -> Result<Self, BadValue> {
        parse_value_enum(&name.into_text())
    }
}

/// A duration such as `5s`, `500ms`, `2m`, `1h` or a plain number of seconds (`0.5`, `30`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DurationInput")]
pub(crate) struct Span(std::time::Duration);

impl Span {
    /// The duration.
    pub(crate) const fn get(self) -> std::time::Duration {
        self.0
    }

    /// A span of `secs` seconds.
    #[cfg(test)]
    pub(crate) const fn from_secs(secs: u64) -> Self {
        Span(std::time::Duration::from_secs(secs))
    }
}

/// A duration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "invalid duration {0:?}: write a number with a unit (500ms, 5s, 2m, 1h) or a plain number of seconds"
)]
pub(crate) struct BadDuration(String);

impl FromStr for Span {
    type Err = BadDuration;
    fn from_str(text: &str) -> Result<Self, BadDuration> {
        let bad = || BadDuration(text.to_owned());
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: f64 = number.parse().map_err(|_| bad())?;
        let seconds_per_unit = match unit.trim().to_ascii_lowercase().as_str() {
            "ms" => 0.001,
            "" | "s" | "sec" | "secs" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        // `try_from_secs_f64` refuses negative, NaN and overflowing values instead of panicking.
        std::time::Duration::try_from_secs_f64(number * seconds_per_unit)
            .map(Span)
            .map_err(|_| bad())
    }
}

/// `timeout = 5`, `timeout = 0.5` or `timeout = "5s"` in TOML.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DurationInput {
    Seconds(f64),
    Text(String),
}

impl TryFrom<DurationInput> for Span {
    type Error = BadDuration;
    fn try_from(input: DurationInput) -> Result<Self, BadDuration> {
        match input {
            DurationInput::Seconds(secs) => std::time::Duration::try_from_secs_f64(secs)
                .map(Span)
                .map_err(|_| BadDuration(secs.to_string())),
            DurationInput::Text(text) => text.parse(),
        }
    }
}

/// A listening address of `iotmp server`: `IP:PORT` (`127.0.0.1:25204`, `[::1]:25204`,
/// `0.0.0.0:25204` for every interface; port 0 lets the OS pick one), or `off` for none.
/// Names are not resolved: a listener is bound once, to exactly one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Listen(Option<std::net::SocketAddr>);

impl Listen {
    /// The address, `None` for `off`.
    pub(crate) const fn addr(self) -> Option<std::net::SocketAddr> {
        self.0
    }
}

/// A listening address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "invalid listening address {0:?}: write IP:PORT (127.0.0.1:25204, [::1]:8080, 0.0.0.0:25204 \
     for every interface) or off"
)]
pub(crate) struct BadListen(String);

impl FromStr for Listen {
    type Err = BadListen;
    fn from_str(text: &str) -> Result<Self, BadListen> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("off") {
            return Ok(Listen(None));
        }
        trimmed
            .parse()
            .map(|addr| Listen(Some(addr)))
            .map_err(|_| BadListen(text.to_owned()))
    }
}

impl TryFrom<String> for Listen {
    type Error = BadListen;
    fn try_from(text: String) -> Result<Self, BadListen> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_units() {
        for (text, bytes) in [
            ("262144", 262_144),
            ("256KiB", 262_144),
            ("256k", 262_144),
            ("1 MiB", 1 << 20),
            ("0", 0),
            ("4294967295", u32::MAX),
        ] {
            assert_eq!(
                text.parse::<ByteSize>().map(ByteSize::get),
                Ok(bytes),
                "{text}"
            );
        }
        for text in ["", "KiB", "-1", "1.5MiB", "4GiB", "12 parsecs"] {
            assert!(text.parse::<ByteSize>().is_err(), "{text}");
        }
    }

    #[test]
    fn value_enums_list_their_spellings() {
        let err = parse_value_enum::<WireDialect>("detect").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"detect\": expected one of 2020, 2026"
        );
        assert_eq!(
            parse_value_enum::<DialectChoice>("2026"),
            Ok(DialectChoice::Draft2026)
        );
    }

    #[test]
    fn spans_with_units() {
        use std::time::Duration;
        for (text, expected) in [
            ("5", Duration::from_secs(5)),
            ("5s", Duration::from_secs(5)),
            ("500ms", Duration::from_millis(500)),
            ("0.5", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            (" 1 s ", Duration::from_secs(1)),
        ] {
            assert_eq!(text.parse::<Span>().map(Span::get), Ok(expected), "{text}");
        }
        for text in [
            "",
            "s",
            "-1s",
            "5 parsecs",
            "1e3",
            "1..2s",
            "99999999999999999999999h",
        ] {
            assert!(text.parse::<Span>().is_err(), "{text}");
        }
    }

    #[test]
    fn listening_addresses() {
        let listen = |text: &str| text.parse::<Listen>().map(Listen::addr);
        assert_eq!(
            listen("127.0.0.1:25204"),
            Ok(Some(std::net::SocketAddr::from(([127, 0, 0, 1], 25204))))
        );
        assert!(listen("[::1]:0").unwrap().is_some());
        assert_eq!(listen("off"), Ok(None));
        assert_eq!(listen(" OFF "), Ok(None));
        for bad in ["", "localhost:80", "127.0.0.1", "1.2.3.4:99999", "on"] {
            let err = listen(bad).unwrap_err().to_string();
            assert!(err.contains("IP:PORT"), "{bad}: {err}");
        }
    }

    #[test]
    fn runtimes_by_name() {
        assert_eq!(
            parse_value_enum::<RuntimeChoice>("async-std"),
            Ok(RuntimeChoice::AsyncStd)
        );
        let err = parse_value_enum::<RuntimeChoice>("tokio").unwrap_err();
        assert!(err.to_string().contains("mio, smol, async-std"), "{err}");
    }
}
