//! Who may open a connection: a cap on open connections, a connection rate per source address,
//! and a temporary ban for a source whose connections keep failing to authenticate.
//!
//! [`Admission`] is pure state on the caller's clock. A driver asks [`Admission::check`] (through
//! [`Broker::admit`](crate::broker::Broker::admit)) when it accepts a transport, before reading a
//! byte, and closes the transport at once when the answer is a [`Refusal`]; the broker reports
//! each failed CONNECT with [`Admission::record_failure`].
//!
//! Sources are grouped so that one attacker cannot dodge the limits with its neighbours'
//! addresses: an IPv4 address is its own group, an IPv6 address is grouped by its /64 (a host
//! usually owns a whole /64), and an IPv4-mapped IPv6 address counts as the IPv4 address.
//!
//! Memory follows activity, not the number of connected devices: a group is tracked only while
//! its state differs from a newcomer's (its bucket is not full again, it has failures within the
//! window, or it is banned), and is forgotten at the moment it settles ([`Admission::forget_settled`],
//! driven by the broker's timer, [`Admission::next_settled`]). Ten thousand idle devices on as
//! many addresses cost nothing here once their connect bursts are over.
//!
//! Memory is also bounded: at most [`AdmissionConfig::max_sources`] groups are tracked. A new
//! group beyond that evicts the group that would settle soonest, so a flood of distinct
//! addresses costs a fixed table, and a ban, which settles last, is the last thing such a flood
//! can make the table forget (the cap on connections still holds; see `SECURITY.md`).

use core::fmt;
use core::str::FromStr;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use thiserror::Error;

use crate::time::Instant;

/// One token of the connection bucket, in the bucket's fixed-point unit (µs × connections/s).
const TOKEN: u64 = 1_000_000;

/// The limits; [`AdmissionConfig::default`] holds the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Transport connections open at once (authenticated or not); 0 = no cap.
    pub max_connections: usize,
    /// Connections a source group may open per second, sustained; 0 = no rate limit.
    pub rate_per_sec: u32,
    /// Connections a source group may open in a burst (the bucket's size, at least 1).
    pub burst: u32,
    /// Failed authentications within [`AdmissionConfig::failure_window`] that ban a source
    /// group; 0 = never ban.
    pub max_failures: u32,
    /// How long failures are remembered: the count starts again after this much time without
    /// reaching the limit.
    pub failure_window: Duration,
    /// How long a ban lasts.
    pub ban: Duration,
    /// Source groups tracked at most (memory bound); the one that would settle soonest is
    /// forgotten first.
    pub max_sources: usize,
    /// Sources never rate-limited nor banned (the connection cap still applies to them).
    pub allow: Vec<IpPrefix>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_connections: 10_000,
            rate_per_sec: 20,
            burst: 50,
            max_failures: 10,
            failure_window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
            max_sources: 65_536,
            allow: Vec::new(),
        }
    }
}

impl AdmissionConfig {
    /// No limit at all: what [`Broker::new`](crate::broker::Broker::new) applies.
    pub fn unlimited() -> Self {
        AdmissionConfig {
            max_connections: 0,
            rate_per_sec: 0,
            max_failures: 0,
            ..AdmissionConfig::default()
        }
    }
}

/// Why a connection is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Refusal {
    /// [`AdmissionConfig::max_connections`] connections are already open.
    #[error("too many connections")]
    TooManyConnections,
    /// The source group used up its connection rate.
    #[error("connection rate exceeded")]
    RateLimited,
    /// The source group is banned after repeated authentication failures.
    #[error("banned after repeated authentication failures")]
    Banned,
}

/// A source group was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// The address whose failure started the ban (its group is banned).
    pub source: IpAddr,
    /// When the ban ends.
    pub until: Instant,
}

/// An address prefix such as `127.0.0.0/8`, `10.1.2.3` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

/// Why a text is not an [`IpPrefix`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not an address or prefix (like 10.0.0.0/8 or 2001:db8::/32)")]
pub struct PrefixError(String);

impl IpPrefix {
    /// True when `ip` lies in the prefix (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                self.len,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), self.len, 128)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, len: u8, width: u32) -> bool {
    let shift = width.saturating_sub(u32::from(len));
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || PrefixError(s.to_owned());
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len.parse::<u8>().map_err(|_| error())?)),
            None => (s, None),
        };
        let addr = canonical(addr.trim().parse::<IpAddr>().map_err(|_| error())?);
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(width);
        if len > width {
            return Err(error());
        }
        Ok(IpPrefix { addr, len })
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// IPv4-mapped IPv6 addresses are the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The group an address is counted in: the IPv4 address, or the IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    V4(u32),
    V6(u64),
}

impl Group {
    fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => Group::V4(v4.to_bits()),
            IpAddr::V6(v6) => Group::V6(upper_64(v6)),
        }
    }
}

fn upper_64(v6: Ipv6Addr) -> u64 {
    let bits = v6.to_bits();
    u64::try_from(bits >> 64).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone)]
struct Source {
    /// Connection tokens, fixed point ([`TOKEN`] = one connection), as of `refilled`.
    tokens: u64,
    refilled: Instant,
    failures: u32,
    /// When the current failure count started.
    failures_since: Instant,
    banned_until: Option<Instant>,
    /// When this state becomes a newcomer's again (its key in [`Admission::by_settling`]).
    settles: Instant,
}

/// Admission state. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Admission {
    config: AdmissionConfig,
    sources: BTreeMap<Group, Source>,
    /// `(settles, group)` of every tracked group: the one that settles soonest comes first.
    by_settling: BTreeSet<(Instant, Group)>,
}

impl Admission {
    /// Admission with `config`.
    pub fn new(config: AdmissionConfig) -> Self {
        Admission {
            config,
            sources: BTreeMap::new(),
            by_settling: BTreeSet::new(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &AdmissionConfig {
        &self.config
    }

    /// Source groups currently tracked (at most [`AdmissionConfig::max_sources`]).
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// When `ip`'s group is banned until, if it is banned at `now`.
    pub fn banned_until(&self, now: Instant, ip: IpAddr) -> Option<Instant> {
        let source = self.sources.get(&Group::of(ip))?;
        source.banned_until.filter(|&until| now < until)
    }

    /// May a transport from `peer` be opened at `now`, with `open` connections already open?
    /// An admitted connection uses one token of its group's bucket. `None` (a transport without
    /// an IP address) is only subject to the connection cap.
    pub fn check(
        &mut self,
        now: Instant,
        peer: Option<IpAddr>,
        open: usize,
    ) -> Result<(), Refusal> {
        if self.config.max_connections > 0 && open >= self.config.max_connections {
            return Err(Refusal::TooManyConnections);
        }
        let Some(ip) = peer.filter(|&ip| !self.allowed(ip)) else {
            return Ok(());
        };
        if self.config.rate_per_sec == 0 && self.config.max_failures == 0 {
            return Ok(());
        }
        let (rate, capacity) = self.bucket();
        let group = Group::of(ip);
        let source = self.touch(now, group);
        let verdict = take_token(source, now, rate, capacity);
        self.settle(now, group);
        verdict
    }

    /// When the next tracked group settles (for the caller's timer), if any is tracked.
    pub fn next_settled(&self) -> Option<Instant> {
        self.by_settling.first().map(|&(at, _)| at)
    }

    /// Forgets every group whose state is a newcomer's again at `now`.
    pub fn forget_settled(&mut self, now: Instant) {
        while let Some(&(at, group)) = self.by_settling.first() {
            if at > now {
                break;
            }
            self.by_settling.pop_first();
            self.sources.remove(&group);
        }
    }

    /// A connection from `peer` failed to authenticate at `now` (rejected credentials,
    /// malformed or missing CONNECT). Returns the ban this failure started, if any.
    pub fn record_failure(&mut self, now: Instant, peer: IpAddr) -> Option<Ban> {
        let max = self.config.max_failures;
        if max == 0 || self.allowed(peer) {
            return None;
        }
        let (window, ban) = (self.config.failure_window, self.config.ban);
        let group = Group::of(peer);
        let source = self.touch(now, group);
        let started = count_failure(source, now, max, window, ban);
        self.settle(now, group);
        started.map(|until| Ban {
            source: peer,
            until,
        })
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.config.allow.iter().any(|p| p.contains(ip))
    }

    /// (refill per µs, bucket size) in fixed point.
    fn bucket(&self) -> (u64, u64) {
        let burst = u64::from(self.config.burst.max(1));
        (u64::from(self.config.rate_per_sec), burst * TOKEN)
    }

    /// The state of `group`, created as a newcomer's (evicting the group that settles soonest if
    /// the table is full) and taken out of the settling order until [`Admission::settle`].
    fn touch(&mut self, now: Instant, group: Group) -> &mut Source {
        let (_, capacity) = self.bucket();
        if let Some(source) = self.sources.get(&group) {
            self.by_settling.remove(&(source.settles, group));
        } else {
            while self.sources.len() >= self.config.max_sources.max(1) {
                let Some((_, first)) = self.by_settling.pop_first() else {
                    break;
                };
                self.sources.remove(&first);
            }
        }
        self.sources.entry(group).or_insert(Source {
            tokens: capacity,
            refilled: now,
            failures: 0,
            failures_since: now,
            banned_until: None,
            settles: now,
        })
    }

    /// Puts `group` (just touched) back in the settling order, or forgets it if its state is
    /// already a newcomer's.
    fn settle(&mut self, now: Instant, group: Group) {
        let (rate, capacity) = self.bucket();
        let window = self.config.failure_window;
        let Some(source) = self.sources.get_mut(&group) else {
            return;
        };
        let settles = settles_at(source, rate, capacity, window);
        if settles <= now {
            self.sources.remove(&group);
            return;
        }
        source.settles = settles;
        self.by_settling.insert((settles, group));
    }
}

/// Refills `source`'s bucket up to `now` and takes one connection's token from it.
fn take_token(source: &mut Source, now: Instant, rate: u64, capacity: u64) -> Result<(), Refusal> {
    if source.banned_until.is_some_and(|until| now < until) {
        return Err(Refusal::Banned);
    }
    if rate == 0 {
        return Ok(());
    }
    let elapsed = now.saturating_since(source.refilled).as_micros();
    let refill = u64::try_from(elapsed)
        .unwrap_or(u64::MAX)
        .saturating_mul(rate);
    source.tokens = source.tokens.saturating_add(refill).min(capacity);
    source.refilled = now;
    if source.tokens < TOKEN {
        return Err(Refusal::RateLimited);
    }
    source.tokens -= TOKEN;
    Ok(())
}

/// Counts a failed authentication of `source`; the end of the ban it started, if it did.
fn count_failure(
    source: &mut Source,
    now: Instant,
    max: u32,
    window: Duration,
    ban: Duration,
) -> Option<Instant> {
    if source.banned_until.is_some_and(|until| now < until) {
        return None;
    }
    if now.saturating_since(source.failures_since) >= window || source.failures == 0 {
        source.failures = 0;
        source.failures_since = now;
    }
    source.failures = source.failures.saturating_add(1);
    if source.failures < max {
        return None;
    }
    source.failures = 0;
    let until = now + ban;
    source.banned_until = Some(until);
    Some(until)
}

/// When `source` is a newcomer's state again: its bucket full, its failures out of the window,
/// its ban over.
fn settles_at(source: &Source, rate: u64, capacity: u64, window: Duration) -> Instant {
    let mut at = source.refilled;
    if rate > 0 {
        let missing = capacity.saturating_sub(source.tokens);
        at = source.refilled + Duration::from_micros(missing.div_ceil(rate));
    }
    if source.failures > 0 {
        at = at.max(source.failures_since + window);
    }
    if let Some(until) = source.banned_until {
        at = at.max(until);
    }
    at
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use quickcheck::quickcheck;

    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn config() -> AdmissionConfig {
        AdmissionConfig {
            max_connections: 0,
            rate_per_sec: 2,
            burst: 3,
            max_failures: 3,
            failure_window: Duration::from_secs(10),
            ban: Duration::from_secs(60),
            max_sources: 100,
            allow: Vec::new(),
        }
    }

    #[test]
    fn a_source_is_forgotten_once_it_settles() {
        let mut a = Admission::new(config());
        let t0 = Instant::ZERO;
        // One token of three used: full again after half a second at 2 per second.
        assert_eq!(a.check(t0, Some(v4(1)), 0), Ok(()));
        assert_eq!(a.tracked(), 1);
        let settled = t0 + Duration::from_millis(500);
        assert_eq!(a.next_settled(), Some(settled));
        a.forget_settled(settled.saturating_sub(Duration::from_micros(1)));
        assert_eq!(a.tracked(), 1);
        a.forget_settled(settled);
        assert_eq!((a.tracked(), a.next_settled()), (0, None));
        // A failure is remembered for the window, a ban for its length.
        assert_eq!(a.record_failure(t0, v4(2)), None);
        assert_eq!(a.next_settled(), Some(t0 + Duration::from_secs(10)));
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..2 {
            let _ = a.record_failure(t1, v4(2));
        }
        assert_eq!(
            a.banned_until(t1, v4(2)),
            Some(t1 + Duration::from_secs(60))
        );
        a.forget_settled(t1 + Duration::from_secs(59));
        assert_eq!(
            a.check(t1 + Duration::from_secs(59), Some(v4(2)), 0),
            Err(Refusal::Banned)
        );
        a.forget_settled(t1 + Duration::from_secs(61));
        assert_eq!(a.tracked(), 0);
    }

    #[test]
    fn a_flood_of_new_sources_evicts_them_before_a_ban() {
        let mut a = Admission::new(AdmissionConfig {
            max_sources: 4,
            ..config()
        });
        let t = Instant::ZERO;
        for _ in 0..3 {
            let _ = a.record_failure(t, v4(200));
        }
        assert!(a.banned_until(t, v4(200)).is_some());
        for last in 1..=50 {
            let _ = a.check(t, Some(v4(last)), 0);
        }
        assert!(a.tracked() <= 4);
        assert!(a.banned_until(t, v4(200)).is_some());
    }

    #[test]
    fn the_connection_cap_counts_open_connections() {
        let mut a = Admission::new(AdmissionConfig {
            max_connections: 2,
            ..config()
        });
        let t = Instant::ZERO;
        assert_eq!(a.check(t, None, 1), Ok(()));
        assert_eq!(a.check(t, None, 2), Err(Refusal::TooManyConnections));
        assert_eq!(a.check(t, Some(v4(1)), 2), Err(Refusal::TooManyConnections));
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let mut a = Admission::new(config());
        let t = Instant::from_secs(5);
        for _ in 0..3 {
            assert_eq!(a.check(t, Some(v4(1)), 0), Ok(()));
        }
        assert_eq!(a.check(t, Some(v4(1)), 0), Err(Refusal::RateLimited));
        assert_eq!(
            a.check(t, Some(v4(2)), 0),
            Ok(()),
            "other sources unaffected"
        );
        // 2 per second: half a second gives one token back.
        let t = t + Duration::from_millis(499);
        assert_eq!(a.check(t, Some(v4(1)), 0), Err(Refusal::RateLimited));
        let t = t + Duration::from_millis(1);
        assert_eq!(a.check(t, Some(v4(1)), 0), Ok(()));
        assert_eq!(a.check(t, Some(v4(1)), 0), Err(Refusal::RateLimited));
        // A long pause refills only up to the burst.
        let t = t + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(a.check(t, Some(v4(1)), 0), Ok(()));
        }
        assert_eq!(a.check(t, Some(v4(1)), 0), Err(Refusal::RateLimited));
    }

    #[test]
    fn repeated_failures_ban_for_the_window() {
        let mut a = Admission::new(config());
        let t = Instant::from_secs(1);
        assert_eq!(a.record_failure(t, v4(1)), None);
        assert_eq!(a.record_failure(t, v4(1)), None);
        let ban = a.record_failure(t + Duration::from_secs(1), v4(1));
        let until = Instant::from_secs(2) + Duration::from_secs(60);
        assert_eq!(
            ban,
            Some(Ban {
                source: v4(1),
                until
            })
        );
        let during = until.saturating_sub(Duration::from_micros(1));
        assert_eq!(a.check(during, Some(v4(1)), 0), Err(Refusal::Banned));
        assert_eq!(a.banned_until(during, v4(1)), Some(until));
        assert_eq!(a.check(during, Some(v4(2)), 0), Ok(()));
        assert_eq!(a.check(until, Some(v4(1)), 0), Ok(()), "the ban ends");
        assert_eq!(a.banned_until(until, v4(1)), None);
        // The count started again: two more failures do not ban.
        assert_eq!(a.record_failure(until, v4(1)), None);
        assert_eq!(a.record_failure(until, v4(1)), None);
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_ban() {
        let mut a = Admission::new(config());
        let mut t = Instant::ZERO;
        for _ in 0..20 {
            assert_eq!(a.record_failure(t, v4(1)), None);
            assert_eq!(a.record_failure(t, v4(1)), None);
            t += Duration::from_secs(10);
        }
        assert_eq!(a.check(t, Some(v4(1)), 0), Ok(()));
    }

    #[test]
    fn ipv6_groups_by_64_and_mapped_v4_is_v4() {
        let mut a = Admission::new(config());
        let t = Instant::ZERO;
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        for _ in 0..3 {
            a.record_failure(t, one);
        }
        assert_eq!(a.check(t, Some(same_64), 0), Err(Refusal::Banned));
        assert_eq!(a.check(t, Some(other_64), 0), Ok(()));
        for _ in 0..3 {
            a.record_failure(t, v4(7));
        }
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(a.check(t, Some(mapped), 0), Err(Refusal::Banned));
    }

    #[test]
    fn the_allow_list_is_exempt_from_rate_and_ban() {
        let mut a = Admission::new(AdmissionConfig {
            allow: vec!["192.0.2.0/28".parse().unwrap()],
            max_connections: 5,
            ..config()
        });
        let t = Instant::ZERO;
        for _ in 0..10 {
            assert_eq!(a.record_failure(t, v4(3)), None);
            assert_eq!(a.check(t, Some(v4(3)), 0), Ok(()));
        }
        assert_eq!(a.check(t, Some(v4(3)), 5), Err(Refusal::TooManyConnections));
        assert_eq!(a.tracked(), 0, "allowed sources take no table space");
        for _ in 0..3 {
            a.record_failure(t, v4(16));
        }
        assert_eq!(a.check(t, Some(v4(16)), 0), Err(Refusal::Banned));
    }

    #[test]
    fn zero_disables_each_limit() {
        let mut a = Admission::new(AdmissionConfig {
            rate_per_sec: 0,
            max_failures: 0,
            ..config()
        });
        let t = Instant::ZERO;
        for _ in 0..100 {
            assert_eq!(a.record_failure(t, v4(1)), None);
            assert_eq!(a.check(t, Some(v4(1)), 1_000_000), Ok(()));
        }
        assert_eq!(a.tracked(), 0);
    }

    #[test]
    fn prefixes_parse_and_match() {
        let p: IpPrefix = "10.0.0.0/8".parse().unwrap();
        assert!(p.contains("10.255.1.2".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        assert!(p.contains("::ffff:10.1.1.1".parse().unwrap()));
        let p: IpPrefix = "127.0.0.1".parse().unwrap();
        assert_eq!(p.to_string(), "127.0.0.1/32");
        assert!(!p.contains("127.0.0.2".parse().unwrap()));
        let p: IpPrefix = "::/0".parse().unwrap();
        assert!(p.contains("2001:db8::1".parse().unwrap()));
        assert!(!p.contains("1.2.3.4".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "x/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<IpPrefix>().is_err(), "{bad}");
        }
    }

    quickcheck! {
        /// However many distinct sources arrive, the table stays within its bound, both
        /// indexes agree, and a source that has not settled yet is tracked when it was the
        /// last one seen.
        fn the_table_is_bounded(sources: Vec<(u32, u8)>, max: u8) -> bool {
            let max_sources = usize::from(max % 16) + 1;
            let mut a = Admission::new(AdmissionConfig { max_sources, ..config() });
            let mut t = Instant::ZERO;
            for (addr, step) in sources {
                t += Duration::from_millis(u64::from(step));
                let ip = IpAddr::V4(Ipv4Addr::from_bits(addr));
                if step % 2 == 0 {
                    let _ = a.check(t, Some(ip), 0);
                } else {
                    let _ = a.record_failure(t, ip);
                }
                let tracked = a.sources.get(&Group::of(ip));
                if a.tracked() > max_sources || tracked.is_some_and(|s| s.settles <= t) {
                    return false;
                }
                // A failure (with bans on) leaves state to remember.
                if step % 2 == 1 && tracked.is_none() {
                    return false;
                }
                if a.by_settling.len() != a.sources.len() {
                    return false;
                }
            }
            true
        }

        /// Over any schedule, one source never gets more connections than the burst plus the
        /// rate times the elapsed time.
        fn the_rate_is_never_exceeded(steps: Vec<u16>) -> bool {
            let c = config();
            let mut a = Admission::new(c.clone());
            let mut t = Instant::ZERO;
            let mut admitted = 0u64;
            for step in steps {
                t += Duration::from_millis(u64::from(step % 2000));
                if a.check(t, Some(v4(9)), 0).is_ok() {
                    admitted += 1;
                }
                let bound = u64::from(c.burst)
                    + t.as_micros() * u64::from(c.rate_per_sec) / 1_000_000;
                if admitted > bound {
                    return false;
                }
            }
            true
        }

        /// A source is banned exactly when it failed `max_failures` times within the window,
        /// and it is admitted again (rate permitting) once the ban is over.
        fn bans_follow_a_reference_model(steps: Vec<(bool, u16)>) -> bool {
            let c = AdmissionConfig { rate_per_sec: 0, ..config() };
            let mut a = Admission::new(c.clone());
            let mut t = Instant::ZERO;
            let (mut count, mut since, mut until) = (0u32, Instant::ZERO, None::<Instant>);
            for (fail, step) in steps {
                t += Duration::from_millis(u64::from(step % 5000));
                let banned = until.is_some_and(|u| t < u);
                if fail {
                    let ban = a.record_failure(t, v4(5));
                    let mut expect = None;
                    if !banned {
                        if count == 0 || t.saturating_since(since) >= c.failure_window {
                            count = 0;
                            since = t;
                        }
                        count += 1;
                        if count >= c.max_failures {
                            count = 0;
                            until = Some(t + c.ban);
                            expect = until;
                        }
                    }
                    if ban.map(|b| b.until) != expect {
                        return false;
                    }
                } else if a.check(t, Some(v4(5)), 0).is_err() != banned {
                    return false;
                }
            }
            true
        }
    }
}
