//! `--metrics`: system figures read from Linux's /proc, one resource each.
//!
//! The parsers take the files' text and are tested on samples; only [`read`] touches /proc.

use std::path::Path;
use std::sync::Mutex;

use iotmp_proto::client::HandlerError;
use iotmp_proto::{Map, Value};

use super::spec::Metric;

/// Cumulative CPU time from the first line of /proc/stat, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    /// Time not idle and not waiting for I/O.
    busy: u64,
    /// All of it.
    total: u64,
}

/// The `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal (guest time is
/// already counted in user and nice, so it is left out).
pub(crate) fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// Usage in percent between two samples; since boot when there is no earlier one.
pub(crate) fn cpu_percent(earlier: Option<CpuTimes>, now: CpuTimes) -> f64 {
    let (busy, total) = match earlier {
        Some(e) => (
            now.busy.saturating_sub(e.busy),
            now.total.saturating_sub(e.total),
        ),
        None => (now.busy, now.total),
    };
    if total == 0 {
        0.0
    } else {
        busy as f64 * 100.0 / total as f64
    }
}

/// `MemTotal` and `MemAvailable` of /proc/meminfo, in bytes.
pub(crate) fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib.saturating_mul(1024))
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

/// The three load averages of /proc/loadavg.
pub(crate) fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    ])
}

/// Seconds since boot, the first figure of /proc/uptime.
pub(crate) fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `x` with at most `decimals` decimals, as a normalised number (spec §5.1).
pub(crate) fn rounded(x: f64, decimals: i32) -> Value {
    let scale = 10f64.powi(decimals);
    Value::from_number((x * scale).round() / scale)
}

/// Why `--metrics` cannot work here, if it cannot.
pub(crate) fn unavailable() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some(format!(
            "--metrics reads Linux's /proc, which this system ({}) does not have: leave --metrics out, \
             or declare the figures with --cmd",
            std::env::consts::OS
        ));
    }
    for file in [
        "/proc/stat",
        "/proc/meminfo",
        "/proc/loadavg",
        "/proc/uptime",
    ] {
        if let Err(e) = std::fs::read_to_string(file) {
            return Some(format!(
                "--metrics needs {file}, which cannot be read ({e}): mount /proc or leave --metrics out"
            ));
        }
    }
    None
}

/// The previous /proc/stat sample of the `cpu` resource.
#[derive(Debug, Default)]
pub(crate) struct CpuState(Mutex<Option<CpuTimes>>);

fn proc_file(name: &str) -> Result<String, HandlerError> {
    let path = Path::new("/proc").join(name);
    std::fs::read_to_string(&path)
        .map_err(|e| HandlerError::new(format!("cannot read {}: {e}", path.display())))
}

fn unparsable(name: &str) -> HandlerError {
    HandlerError::new(format!("/proc/{name} has an unexpected format"))
}

/// Reads one metric now.
pub(crate) fn read(metric: Metric, cpu: &CpuState) -> Result<Value, HandlerError> {
    match metric {
        Metric::Cpu => {
            let now = parse_stat(&proc_file("stat")?).ok_or_else(|| unparsable("stat"))?;
            let mut previous = cpu
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let percent = cpu_percent(*previous, now);
            *previous = Some(now);
            Ok(rounded(percent, 1))
        }
        Metric::Memory => {
            let (total, available) =
                parse_meminfo(&proc_file("meminfo")?).ok_or_else(|| unparsable("meminfo"))?;
            let used = total.saturating_sub(available) as f64;
            let percent = if total == 0 {
                0.0
            } else {
                used * 100.0 / total as f64
            };
            let mut map = Map::with_capacity(3);
            map.insert("total", total);
            map.insert("available", available);
            map.insert("used_percent", rounded(percent, 1));
            Ok(Value::Map(map))
        }
        Metric::Load => {
            let loads =
                parse_loadavg(&proc_file("loadavg")?).ok_or_else(|| unparsable("loadavg"))?;
            Ok(Value::Array(loads.iter().map(|l| rounded(*l, 2)).collect()))
        }
        Metric::Uptime => {
            let secs = parse_uptime(&proc_file("uptime")?).ok_or_else(|| unparsable("uptime"))?;
            Ok(rounded(secs, 2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\nintr 1\n";

    #[test]
    fn cpu_usage_between_samples() {
        let first = parse_stat(STAT).unwrap();
        assert_eq!(
            first,
            CpuTimes {
                busy: 150,
                total: 1000
            }
        );
        assert_eq!(cpu_percent(None, first), 15.0);
        let later = parse_stat("cpu  160 0 90 900 50 0 0 0 0 0\n").unwrap();
        // 100 busy ticks out of 200.
        assert_eq!(cpu_percent(Some(first), later), 50.0);
        assert_eq!(cpu_percent(Some(later), later), 0.0);
        assert_eq!(parse_stat("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_stat("cpu  a b c d\n"), None);
    }

    #[test]
    fn memory_load_uptime() {
        let meminfo = "MemTotal:        2048 kB\nMemFree:  100 kB\nMemAvailable:     512 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some((2048 * 1024, 512 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/467 12345\n"),
            Some([0.52, 0.58, 0.59])
        );
        assert_eq!(parse_loadavg("0.52\n"), None);
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350_735.47));
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn rounding_normalises() {
        assert_eq!(rounded(12.0, 1), Value::UInt(12));
        assert_eq!(rounded(12.25, 1), Value::F64(12.3));
        assert_eq!(rounded(0.5, 2), Value::F32(0.5));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_machine() {
        assert_eq!(unavailable(), None);
        let cpu = CpuState::default();
        for metric in Metric::ALL {
            let value = read(metric, &cpu).unwrap();
            assert!(!value.is_null(), "{metric:?}");
        }
        let memory = read(Metric::Memory, &cpu).unwrap();
        let map = memory.as_map().unwrap();
        assert!(map.get("total").and_then(Value::as_u64).unwrap() > 0);
    }
}
