//! Retention: which snapshots `prune` keeps, and why.
//!
//! Owns the restic-style policy (`--keep-last`, `--keep-hourly` … `--keep-yearly`, `--keep-within`)
//! and its one decision function, [`apply`]. It is pure: no clock, environment, time zone database
//! or file system is read; the caller passes the snapshots, the policy, `now` and the local time zone.
//!
//! Invariants of [`apply`]: one decision per candidate, newest first; pinned snapshots, the newest
//! snapshot and the newest verified snapshot are always kept; an empty policy keeps everything; every
//! decision carries at least one reason (all keep reasons for a kept snapshot, all policy rules that
//! passed it over for a removed one).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Months, Offset, TimeDelta, TimeZone, Timelike, Utc};

/// A retention policy. Zero counts and `None` are rules that are off.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Policy {
    /// `--keep-last N`: the N newest snapshots.
    pub last: u32,
    /// `--keep-hourly N`: the newest snapshot of each of the N most recent local hours that have one.
    pub hourly: u32,
    /// `--keep-daily N`: the same for calendar days.
    pub daily: u32,
    /// `--keep-weekly N`: the same for ISO weeks.
    pub weekly: u32,
    /// `--keep-monthly N`: the same for calendar months.
    pub monthly: u32,
    /// `--keep-yearly N`: the same for calendar years.
    pub yearly: u32,
    /// `--keep-within D`: every snapshot no older than D before now.
    pub within: Option<Within>,
}

impl Policy {
    /// True when no rule is on (a zero `within` counts as off): such a policy removes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|&(_, n)| n == 0) && self.within.is_none_or(|w| w.is_zero())
    }

    /// The policy as command-line flags, e.g. `--keep-daily 7 --keep-weekly 4`; empty for an empty policy.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut flags: Vec<String> =
            self.counts().iter().filter(|(_, n)| *n > 0).map(|(f, n)| format!("--keep-{f} {n}")).collect();
        if let Some(w) = self.within.filter(|w| !w.is_zero()) {
            flags.push(format!("--keep-within {w}"));
        }
        flags.join(" ")
    }

    /// The policy as separate command-line words, for a job's command line.
    #[must_use]
    pub fn flags(&self) -> Vec<String> {
        self.describe().split(' ').filter(|w| !w.is_empty()).map(str::to_string).collect()
    }

    fn counts(&self) -> [(&'static str, u32); 6] {
        [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ]
    }
}

/// A `--keep-within` duration: calendar years and months, days and hours, subtracted from now in
/// that order (years, months and days on the local calendar, hours as elapsed time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Within {
    /// Calendar years.
    pub years: u32,
    /// Calendar months.
    pub months: u32,
    /// Days (`w` adds 7 each).
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl Within {
    fn is_zero(&self) -> bool {
        *self == Within { years: 0, months: 0, days: 0, hours: 0 }
    }

    /// The oldest instant still within the duration before `now`; `None` when that is before the
    /// calendar's start (everything is within). Local-calendar months clamp to the month's last day
    /// (Feb 29 minus 1y is Feb 28); a local time in a DST gap moves back to the first one that exists.
    fn cutoff<Tz: TimeZone>(&self, now: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
        let months = self.years.checked_mul(12)?.checked_add(self.months)?;
        let local = now
            .with_timezone(tz)
            .naive_local()
            .checked_sub_months(Months::new(months))?
            .checked_sub_days(Days::new(self.days.into()))?;
        let start = (0..=24).find_map(|h| {
            tz.from_local_datetime(&local.checked_sub_signed(TimeDelta::hours(h))?).earliest()
        })?;
        start.with_timezone(&Utc).checked_sub_signed(TimeDelta::hours(self.hours.into()))
    }
}

impl FromStr for Within {
    type Err = String;

    /// Parses `7d`, `2w`, `36h`, `1y6mo`: numbers each followed by a unit `y` (years), `mo`
    /// (months), `w` (weeks), `d` (days) or `h` (hours), in any order, adding up to more than
    /// zero. A bare `m` is refused: elsewhere (`--max-age 30m`) it means minutes.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "invalid --keep-within duration {s:?}: {why}; use numbers with the units y (years), \
                    mo (months), w (weeks), d (days), h (hours), e.g. 7d, 2w, 36h, 1y6mo"
            )
        };
        let mut w = Within { years: 0, months: 0, days: 0, hours: 0 };
        let mut digits = String::new();
        let mut chars = s.trim().chars().peekable();
        while let Some(ch) = chars.next() {
            if ch.is_ascii_digit() {
                digits.push(ch);
                continue;
            }
            if digits.is_empty() {
                return Err(bad(&format!("{ch:?} does not follow a number")));
            }
            let n: u32 = digits.parse().map_err(|_| bad(&format!("{digits} is too large")))?;
            let (field, n) = match ch {
                'y' => (&mut w.years, Some(n)),
                'm' if chars.next_if_eq(&'o').is_some() => (&mut w.months, Some(n)),
                'm' => return Err(bad("m is ambiguous (minutes in --max-age): write mo for months")),
                'w' => (&mut w.days, n.checked_mul(7)),
                'd' => (&mut w.days, Some(n)),
                'h' => (&mut w.hours, Some(n)),
                _ => return Err(bad(&format!("unknown unit {ch:?}"))),
            };
            *field = n.and_then(|n| field.checked_add(n)).ok_or_else(|| bad("too large"))?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(bad(&format!("{digits} has no unit")));
        }
        if w.is_zero() {
            return Err(bad("it must be longer than zero"));
        }
        Ok(w)
    }
}

impl fmt::Display for Within {
    /// Canonical form: units in the order y, mo, d, h, zero parts left out (`2w` shows as `14d`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [(self.years, "y"), (self.months, "mo"), (self.days, "d"), (self.hours, "h")] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// What retention sees of a snapshot.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The snapshot id.
    pub id: String,
    /// The store's sequence number of it (0 where unknown): the order of
    /// "newest" and `--keep-last`, ahead of the time, so a clock that
    /// stepped back never makes the snapshot just taken look old.
    pub sequence: u64,
    /// When the snapshot was taken.
    pub time: DateTime<Utc>,
    /// Pinned snapshots are never removed.
    pub pinned: bool,
    /// Whether the snapshot passes verification; the newest such one is never removed.
    pub verified: bool,
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The snapshot id.
    pub id: String,
    /// Keep (true) or remove (false).
    pub keep: bool,
    /// Why it is kept (every reason that applies) or why removed (every rule that passed it over).
    pub reasons: Vec<String>,
}

/// A calendar period that a `--keep-<period>` rule buckets by.
#[derive(Clone, Copy)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// The period's name and its rule's flag.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Period::Hour => ("hour", "--keep-hourly"),
            Period::Day => ("day", "--keep-daily"),
            Period::Week => ("week", "--keep-weekly"),
            Period::Month => ("month", "--keep-monthly"),
            Period::Year => ("year", "--keep-yearly"),
        }
    }

    /// The bucket's name. Hours include the UTC offset, so the two 02:00 hours of a DST fall-back
    /// are two buckets; the larger periods follow the local calendar only.
    fn label<Tz: TimeZone>(self, t: &DateTime<Tz>) -> String {
        match self {
            Period::Hour => format!("{} {:02}:00{}", t.date_naive(), t.hour(), t.offset().fix()),
            Period::Day => t.date_naive().to_string(),
            Period::Week => format!("{}-W{:02}", t.iso_week().year(), t.iso_week().week()),
            Period::Month => format!("{}-{:02}", t.year(), t.month()),
            Period::Year => t.year().to_string(),
        }
    }
}

struct Rule {
    period: Period,
    count: u32,
    left: u32,
    seen: BTreeSet<String>,
}

/// Applies `policy` at `now`, bucketing calendar periods in time zone `tz`. Returns one decision per
/// candidate, newest first: by sequence, then time; equal times go by id, the longer or greater
/// first (`X-10`, `X-9`, `X`).
///
/// Every candidate counts toward the rules, pinned or not, as in restic: a pinned snapshot can be
/// the one kept for its day. A snapshot is kept if any rule or protection keeps it.
#[must_use]
pub fn apply<Tz: TimeZone>(
    candidates: &[Candidate],
    policy: &Policy,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Vec<Decision> {
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by(|a, b| {
        (b.sequence, b.time, b.id.len(), &b.id).cmp(&(a.sequence, a.time, a.id.len(), &a.id))
    });
    let newest_verified = order.iter().position(|c| c.verified);
    let empty = policy.is_empty();
    let within = policy
        .within
        .filter(|w| !w.is_zero())
        .map(|w| (w, w.cutoff(now, tz).unwrap_or(DateTime::<Utc>::MIN_UTC)));
    let mut rules: Vec<Rule> = [
        (Period::Hour, policy.hourly),
        (Period::Day, policy.daily),
        (Period::Week, policy.weekly),
        (Period::Month, policy.monthly),
        (Period::Year, policy.yearly),
    ]
    .into_iter()
    .filter(|&(_, n)| n > 0)
    .map(|(period, count)| Rule { period, count, left: count, seen: BTreeSet::new() })
    .collect();

    let mut out = Vec::with_capacity(order.len());
    for (i, c) in order.into_iter().enumerate() {
        let (mut keep, mut drop) = (Vec::new(), Vec::new());
        for (on, why) in
            [(c.pinned, "pinned"), (i == 0, "newest"), (Some(i) == newest_verified, "newest verified")]
        {
            if on {
                keep.push(why.to_string());
            }
        }
        if empty {
            keep.push("no policy".to_string());
        }
        if policy.last > 0 {
            let n = policy.last;
            if u64::try_from(i).is_ok_and(|i| i < u64::from(n)) {
                keep.push(format!("one of the last {n} (--keep-last {n})"));
            } else {
                drop.push(format!("beyond --keep-last {n}"));
            }
        }
        let local = c.time.with_timezone(tz);
        for rule in &mut rules {
            let ((name, flag), label, n) = (rule.period.names(), rule.period.label(&local), rule.count);
            if rule.seen.contains(&label) {
                drop.push(format!("not the newest of its {name} ({label})"));
            } else if rule.left == 0 {
                drop.push(format!("beyond {flag} {n}"));
            } else {
                rule.left -= 1;
                keep.push(format!("newest of {name} {label} ({flag} {n})"));
                rule.seen.insert(label);
            }
        }
        if let Some((w, cutoff)) = within {
            let at = cutoff.format("%Y-%m-%dT%H:%M:%SZ");
            if c.time >= cutoff {
                keep.push(format!("since {at} (--keep-within {w})"));
            } else {
                drop.push(format!("older than --keep-within {w} (before {at})"));
            }
        }
        let kept = !keep.is_empty();
        out.push(Decision { id: c.id.clone(), keep: kept, reasons: if kept { keep } else { drop } });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, LocalResult, NaiveDate, NaiveDateTime};

    /// Europe/Berlin's rule: CET, and CEST from 01:00 UTC on the last Sunday of March to 01:00 UTC
    /// on the last Sunday of October.
    #[derive(Clone, Copy, Debug)]
    struct Berlin;

    fn last_sunday_0100(year: i32, month: u32) -> NaiveDateTime {
        let last = NaiveDate::from_ymd_opt(year, month + 1, 1).unwrap().pred_opt().unwrap();
        let back = TimeDelta::days(last.weekday().num_days_from_sunday().into());
        (last - back).and_hms_opt(1, 0, 0).unwrap()
    }

    impl TimeZone for Berlin {
        type Offset = FixedOffset;
        fn from_offset(_: &FixedOffset) -> Self {
            Berlin
        }
        fn offset_from_local_date(&self, local: &NaiveDate) -> LocalResult<FixedOffset> {
            self.offset_from_local_datetime(&local.and_hms_opt(0, 0, 0).unwrap())
        }
        fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<FixedOffset> {
            let fits = |secs: i32| {
                let off = FixedOffset::east_opt(secs).unwrap();
                let utc = *local - TimeDelta::seconds(secs.into());
                (self.offset_from_utc_datetime(&utc) == off).then_some(off)
            };
            match (fits(7200), fits(3600)) {
                (Some(summer), Some(winter)) => LocalResult::Ambiguous(summer, winter),
                (Some(one), None) | (None, Some(one)) => LocalResult::Single(one),
                (None, None) => LocalResult::None,
            }
        }
        fn offset_from_utc_date(&self, utc: &NaiveDate) -> FixedOffset {
            self.offset_from_utc_datetime(&utc.and_hms_opt(0, 0, 0).unwrap())
        }
        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> FixedOffset {
            let y = utc.year();
            let summer = *utc >= last_sunday_0100(y, 3) && *utc < last_sunday_0100(y, 10);
            FixedOffset::east_opt(if summer { 7200 } else { 3600 }).unwrap()
        }
    }

    /// `2026-04-01T00:00Z` or `2027-03-01T00:30+01:00`.
    fn t(s: &str) -> DateTime<Utc> {
        let s = s.replace('Z', "+00:00");
        DateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M%:z").unwrap().with_timezone(&Utc)
    }

    /// Builds a policy from its flags, and checks that `describe` gives them back.
    fn policy(flags: &str) -> Policy {
        let mut p = Policy::default();
        let words: Vec<&str> = flags.split_whitespace().collect();
        for pair in words.chunks(2) {
            let n = || pair[1].parse().unwrap();
            match pair[0] {
                "--keep-last" => p.last = n(),
                "--keep-hourly" => p.hourly = n(),
                "--keep-daily" => p.daily = n(),
                "--keep-weekly" => p.weekly = n(),
                "--keep-monthly" => p.monthly = n(),
                "--keep-yearly" => p.yearly = n(),
                "--keep-within" => p.within = Some(pair[1].parse().unwrap()),
                other => panic!("unknown flag {other}"),
            }
        }
        assert_eq!(p.describe(), flags);
        assert_eq!(p.is_empty(), flags.is_empty());
        p
    }

    /// Runs one case: `NAME | ZONE NOW POLICY…` (ZONE: `UTC`, `+01:00` or `Berlin`), then one row
    /// per snapshot in any order: `+` kept or `-` removed, id, time, optional flags (`p` pinned,
    /// `v` verified), and optionally ` | ` and all its reasons joined by `; `.
    fn run(case: &&[&str]) {
        let (header, rows) = case.split_first().unwrap();
        let (name, spec) = header.split_once(" | ").unwrap();
        let mut words = spec.splitn(3, ' ');
        let (zone, now) = (words.next().unwrap(), t(words.next().unwrap()));
        let policy = policy(words.next().unwrap_or(""));
        let mut snaps = Vec::new();
        for row in rows {
            let (head, _) = row.split_once(" | ").unwrap_or((row, ""));
            let f: Vec<&str> = head[1..].split_whitespace().collect();
            let flags = f.get(2).copied().unwrap_or("");
            let (pinned, verified) = (flags.contains('p'), flags.contains('v'));
            snaps.push(Candidate { id: f[0].to_string(), sequence: 0, time: t(f[1]), pinned, verified });
        }
        let got = match zone {
            "UTC" => apply(&snaps, &policy, now, &Utc),
            "+01:00" => apply(&snaps, &policy, now, &FixedOffset::east_opt(3600).unwrap()),
            "Berlin" => apply(&snaps, &policy, now, &Berlin),
            other => panic!("unknown zone {other}"),
        };
        let mut want: Vec<&Candidate> = snaps.iter().collect();
        want.sort_by_key(|s| std::cmp::Reverse(s.time));
        let order: Vec<&str> = got.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(order, want.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), "{name}: order");
        for row in rows {
            let (head, reasons) = row.split_once(" | ").unwrap_or((row, ""));
            let id = head[1..].split_whitespace().next().unwrap();
            let d = got.iter().find(|d| d.id == id).unwrap();
            assert_eq!(d.keep, head.starts_with('+'), "{name}: {id}: {d:?}");
            assert!(!d.reasons.is_empty(), "{name}: {id} has no reason");
            if !reasons.is_empty() {
                assert_eq!(d.reasons.join("; "), reasons, "{name}: {id}");
            }
        }
    }

    const CASES: &[&[&str]] = &[
        &[
            "month ends, monthly | UTC 2026-04-01T00:00Z --keep-monthly 3",
            "- dec31 2025-12-31T12:00Z | beyond --keep-monthly 3",
            "- jan30 2026-01-30T12:00Z | not the newest of its month (2026-01)",
            "+ jan31 2026-01-31T23:00Z | newest of month 2026-01 (--keep-monthly 3)",
            "- feb01 2026-02-01T00:00Z",
            "+ feb28 2026-02-28T22:00Z | newest of month 2026-02 (--keep-monthly 3)",
            "- mar01 2026-03-01T00:30Z | not the newest of its month (2026-03)",
            "+ mar31 2026-03-31T23:59Z | newest; newest of month 2026-03 (--keep-monthly 3)",
        ],
        &[
            "month end, +01:00 | +01:00 2027-03-01T12:00Z --keep-daily 2 --keep-monthly 2",
            "+ a 2027-02-28T23:30+01:00 | newest of day 2027-02-28 (--keep-daily 2); \
                newest of month 2027-02 (--keep-monthly 2)",
            "+ b 2027-03-01T00:30+01:00 | newest; newest of day 2027-03-01 (--keep-daily 2); \
                newest of month 2027-03 (--keep-monthly 2)",
            "- c 2027-02-28T08:00+01:00 | not the newest of its day (2027-02-28); \
                not the newest of its month (2027-02)",
            "- d 2027-01-31T23:59+01:00 | beyond --keep-daily 2; beyond --keep-monthly 2",
        ],
        &[
            "leap day, daily | UTC 2028-03-01T12:00Z --keep-daily 3",
            "- feb29a 2028-02-29T08:00Z | not the newest of its day (2028-02-29)",
            "- feb27 2028-02-27T10:00Z | beyond --keep-daily 3",
            "+ mar01 2028-03-01T09:00Z",
            "+ feb28 2028-02-28T10:00Z",
            "+ feb29b 2028-02-29T20:00Z | newest of day 2028-02-29 (--keep-daily 3)",
        ],
        &[
            "within 1y from 2029-02-28 reaches 2028-02-28 | UTC 2029-02-28T12:00Z --keep-within 1y",
            "- old 2028-02-28T11:59Z | older than --keep-within 1y (before 2028-02-28T12:00:00Z)",
            "+ edge 2028-02-28T12:00Z | since 2028-02-28T12:00:00Z (--keep-within 1y)",
            "+ leap 2028-02-29T00:00Z",
            "+ new 2029-02-01T00:00Z | newest; since 2028-02-28T12:00:00Z (--keep-within 1y)",
        ],
        &[
            "within 1y from 2028-02-29 reaches 2027-02-28 | UTC 2028-02-29T12:00Z --keep-within 1y",
            "+ new 2028-02-29T11:00Z",
            "+ mar01 2027-03-01T00:00Z",
            "+ in 2027-02-28T13:00Z",
            "- out 2027-02-28T11:00Z | older than --keep-within 1y (before 2027-02-28T12:00:00Z)",
        ],
        &[
            "within 1mo from Mar 31 reaches Feb 28 | UTC 2026-03-31T12:00Z --keep-within 1mo",
            "+ new 2026-03-30T00:00Z",
            "+ in 2026-02-28T12:00Z | since 2026-02-28T12:00:00Z (--keep-within 1mo)",
            "- out 2026-02-28T11:00Z",
        ],
        &[
            "DST spring forward: 23:30 on either side | Berlin 2026-03-30T12:00Z --keep-daily 5",
            "+ a 2026-03-28T22:30Z | newest of day 2026-03-28 (--keep-daily 5)", // Sat 23:30 CET
            "- b 2026-03-28T23:30Z | not the newest of its day (2026-03-29)",    // Sun 00:30 CET
            "+ c 2026-03-29T21:30Z | newest of day 2026-03-29 (--keep-daily 5)", // Sun 23:30 CEST
            "+ d 2026-03-29T22:30Z | newest; newest of day 2026-03-30 (--keep-daily 5)", // Mon 00:30
        ],
        &[
            "DST spring forward, hourly | Berlin 2026-03-29T03:00Z --keep-hourly 3",
            "- x 2026-03-29T00:30Z | not the newest of its hour (2026-03-29 01:00+01:00)",
            "+ y 2026-03-29T00:59Z | newest of hour 2026-03-29 01:00+01:00 (--keep-hourly 3)",
            "+ z 2026-03-29T01:00Z | newest; newest of hour 2026-03-29 03:00+02:00 (--keep-hourly 3)",
        ],
        &[
            "DST fall back: two 02:00 hours | Berlin 2026-10-25T06:00Z --keep-hourly 5",
            "- p 2026-10-25T00:10Z | not the newest of its hour (2026-10-25 02:00+02:00)",
            "+ q 2026-10-25T00:50Z | newest of hour 2026-10-25 02:00+02:00 (--keep-hourly 5)",
            "+ r 2026-10-25T01:10Z | newest; newest of hour 2026-10-25 02:00+01:00 (--keep-hourly 5)",
        ],
        &[
            "within 1d over spring forward is 23 h | Berlin 2026-03-29T10:00Z --keep-within 1d",
            "+ n 2026-03-29T09:00Z",
            "+ in 2026-03-28T11:30Z",
            "- out 2026-03-28T10:30Z | older than --keep-within 1d (before 2026-03-28T11:00:00Z)",
        ],
        &[
            "within 1d into the DST gap | Berlin 2026-03-30T00:30Z --keep-within 1d",
            "+ n 2026-03-30T00:00Z",
            "+ in 2026-03-29T00:30Z",
            "- out 2026-03-29T00:29Z | older than --keep-within 1d (before 2026-03-29T00:30:00Z)",
        ],
        &[
            "within 1d into the DST fold | Berlin 2026-10-26T01:30Z --keep-within 1d",
            "+ n 2026-10-26T00:00Z",
            "+ in 2026-10-25T00:30Z | since 2026-10-25T00:30:00Z (--keep-within 1d)",
            "- out 2026-10-25T00:29Z",
        ],
        &[
            "year boundary in +01:00 | +01:00 2027-01-02T00:00Z --keep-daily 2 --keep-yearly 2",
            "- a 2026-12-31T10:00+01:00 | not the newest of its day (2026-12-31); \
                not the newest of its year (2026)",
            "+ b 2026-12-31T23:59+01:00 | newest of day 2026-12-31 (--keep-daily 2); \
                newest of year 2026 (--keep-yearly 2)",
            "+ c 2027-01-01T00:01+01:00 | newest; newest of day 2027-01-01 (--keep-daily 2); \
                newest of year 2027 (--keep-yearly 2)",
            "- d 2025-12-31T23:59+01:00 | beyond --keep-daily 2; beyond --keep-yearly 2",
        ],
        &[
            "ISO week 2026-W53 spans the new year | UTC 2027-01-05T00:00Z --keep-weekly 2",
            "- dec27 2026-12-27T09:00Z | beyond --keep-weekly 2",
            "- dec28 2026-12-28T09:00Z | not the newest of its week (2026-W53)",
            "- dec31 2026-12-31T09:00Z | not the newest of its week (2026-W53)",
            "+ jan01 2027-01-01T09:00Z | newest of week 2026-W53 (--keep-weekly 2)",
            "+ jan04 2027-01-04T09:00Z | newest; newest of week 2027-W01 (--keep-weekly 2)",
        ],
        &[
            "pinned is never removed | UTC 2026-06-01T00:00Z --keep-last 1",
            "+ a 2026-05-03T00:00Z | newest; one of the last 1 (--keep-last 1)",
            "+ b 2026-05-02T00:00Z p | pinned",
            "- c 2026-05-01T00:00Z | beyond --keep-last 1",
            "+ d 2026-04-01T00:00Z p | pinned",
        ],
        &[
            "newest verified is kept anyway | UTC 2026-06-01T00:00Z --keep-last 1 --keep-within 2d",
            "+ a 2026-05-04T00:00Z",
            "+ b 2026-05-03T00:00Z v | newest verified",
            "- c 2026-05-02T00:00Z v | beyond --keep-last 1; \
                older than --keep-within 2d (before 2026-05-30T00:00:00Z)",
            "- d 2026-05-01T00:00Z",
        ],
        &[
            "every reason at once | UTC 2026-06-01T00:00Z --keep-daily 1",
            "+ a 2026-05-04T00:00Z pv | pinned; newest; newest verified; \
                newest of day 2026-05-04 (--keep-daily 1)",
            "- b 2026-05-03T00:00Z v | beyond --keep-daily 1",
        ],
        &[
            "empty policy removes nothing | UTC 2026-06-01T00:00Z",
            "+ c 2020-01-01T00:00Z p | pinned; no policy",
            "+ a 2026-05-04T00:00Z | newest; no policy",
            "+ b 2026-05-03T00:00Z v | newest verified; no policy",
            "+ d 2019-01-01T00:00Z | no policy",
        ],
        &[
            "keep-last and daily, out of order | UTC 2026-05-03T12:00Z --keep-last 2 --keep-daily 3",
            "- d2a 2026-05-02T09:00Z | beyond --keep-last 2; not the newest of its day (2026-05-02)",
            "+ d3 2026-05-03T08:00Z | newest; one of the last 2 (--keep-last 2); \
                newest of day 2026-05-03 (--keep-daily 3)",
            "- d1a 2026-05-01T10:00Z | beyond --keep-last 2; not the newest of its day (2026-05-01)",
            "+ d2b 2026-05-02T18:00Z | one of the last 2 (--keep-last 2); \
                newest of day 2026-05-02 (--keep-daily 3)",
            "+ d1b 2026-05-01T12:00Z | newest of day 2026-05-01 (--keep-daily 3)",
            "- d0 2026-04-30T12:00Z | beyond --keep-last 2; beyond --keep-daily 3",
        ],
    ];

    #[test]
    fn table() {
        CASES.iter().for_each(run);
    }

    #[test]
    fn equal_times_are_ordered_by_id() {
        let at = t("2026-05-01T00:00Z");
        let snap =
            |id: &str| Candidate { id: id.into(), sequence: 0, time: at, pinned: false, verified: false };
        let got = apply(&[snap("x-9"), snap("x"), snap("x-10")], &policy("--keep-last 1"), at, &Utc);
        let ids: Vec<(&str, bool)> = got.iter().map(|d| (d.id.as_str(), d.keep)).collect();
        assert_eq!(ids, [("x-10", true), ("x-9", false), ("x", false)]);
        assert!(apply(&[], &policy("--keep-last 1"), at, &Utc).is_empty());
    }

    #[test]
    fn within_parses_and_displays() {
        for (text, shown) in [
            ("7d", "7d"),
            ("2w", "14d"),
            ("1y6mo", "1y6mo"),
            ("6mo1y", "1y6mo"),
            ("36h", "36h"),
            (" 1w2d ", "9d"),
        ] {
            let w: Within = text.parse().unwrap();
            assert_eq!(w.to_string(), shown, "{text}");
            assert_eq!(shown.parse::<Within>(), Ok(w));
        }
        assert_eq!("1y2mo3w4d5h".parse(), Ok(Within { years: 1, months: 2, days: 25, hours: 5 }));
        // A bare m would be minutes elsewhere: refused, saying what to write.
        assert!("30m".parse::<Within>().unwrap_err().contains("write mo for months"));
        for bad in
            ["", "7", "d", "7x", "30s", "1.5d", "-1d", "0d", "7D", "1d 2h", "4294967296d", "700000000w"]
        {
            let err = bad.parse::<Within>().unwrap_err();
            assert!(err.starts_with(&format!("invalid --keep-within duration {bad:?}: ")), "{err}");
            assert!(err.contains("e.g. 7d, 2w, 36h, 1y6mo"), "{err}");
        }
        assert!("30s".parse::<Within>().unwrap_err().contains("unknown unit 's'"));
        assert!("0d".parse::<Within>().unwrap_err().contains("longer than zero"));
    }

    #[test]
    fn policy_empty_describe_and_huge_within() {
        let zero = Within { years: 0, months: 0, days: 0, hours: 0 };
        let p = Policy { within: Some(zero), ..Policy::default() };
        assert!(Policy::default().is_empty() && p.is_empty());
        assert_eq!(p.describe(), "");
        let all = "--keep-last 1 --keep-hourly 2 --keep-daily 3 --keep-weekly 4 --keep-monthly 5 \
                   --keep-yearly 6 --keep-within 1y2mo3d4h";
        assert!(!policy(all).is_empty());
        // A duration that reaches before the calendar's start keeps everything.
        let huge = Policy { within: Some(Within { years: u32::MAX, ..zero }), ..Policy::default() };
        let at = t("2026-05-01T00:00Z");
        let old = Candidate {
            id: "old".into(),
            sequence: 0,
            time: t("1900-01-01T00:00Z"),
            pinned: false,
            verified: false,
        };
        let newer = Candidate { id: "new".into(), time: at, ..old.clone() };
        assert!(apply(&[old, newer], &huge, at, &Utc).iter().all(|d| d.keep));
    }
}
