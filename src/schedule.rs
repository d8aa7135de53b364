//! When watchers fire: `every <duration>`, crontab lines (5 fields, or 6 with seconds first) and
//! `@daily`-style macros. All times are UTC.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

pub const DEFAULT_MAX_JITTER: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    source: String,
    kind: Kind,
    period: Duration,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Every(Duration),
    // Two schedules when both day fields are restricted: cron ORs them, the crate ANDs them.
    Cron(Vec<cron::Schedule>),
}

const FIELDS: [(&str, u32, u32); 6] = [
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let (head, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let (kind, period) = if head.eq_ignore_ascii_case("every") {
            let every = parse_every(text, rest.trim())?;
            (Kind::Every(every), every)
        } else if head.starts_with('@') {
            let expanded = match text.to_ascii_lowercase().as_str() {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                _ => {
                    return Err(ScheduleError(format!(
                        "unknown schedule macro {text:?}: expected @yearly, @annually, \
                         @monthly, @weekly, @daily, @midnight or @hourly"
                    )));
                }
            };
            parse_cron(text, expanded)?
        } else {
            parse_cron(text, text)?
        };
        Ok(Schedule {
            source: text.to_owned(),
            kind,
            period,
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Schedule {
    /// The typical gap between two runs (used as the jitter window cap and for warnings).
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The first fire time strictly after `after`, with every fire time shifted later by `offset`.
    pub fn next_after(&self, after: DateTime<Utc>, offset: Duration) -> DateTime<Utc> {
        let offset = TimeDelta::from_std(offset).unwrap_or(TimeDelta::MAX);
        let shifted = after
            .checked_sub_signed(offset)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let fire = match &self.kind {
            Kind::Every(every) => next_multiple(shifted, *every),
            Kind::Cron(schedules) => next_cron(schedules, shifted),
        };
        // Only reachable past the crate's year range (2100) or for absurd offsets.
        fire.and_then(|t| t.checked_add_signed(offset))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// A stable hash of `name` mapped into [0, min(period, max_jitter)), so watchers sharing a
    /// schedule do not all fire in the same second, yet each keeps its slot across restarts.
    pub fn offset_for(&self, name: &str, max_jitter: Duration) -> Duration {
        let window = u64::try_from(self.period.min(max_jitter).as_millis()).unwrap_or(u64::MAX);
        if window == 0 {
            return Duration::ZERO;
        }
        let digest = Sha256::digest(name.as_bytes());
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        Duration::from_millis(u64::from_be_bytes(head) % window)
    }

    /// A cron schedule names its times; an "every" one only its period.
    pub fn is_cron(&self) -> bool {
        matches!(self.kind, Kind::Cron(_))
    }

    /// True when a run was missed since `last_run` (or it never ran). A single bool rather than a
    /// count, so an overdue watcher catches up once instead of once per missed slot.
    pub fn is_overdue(
        &self,
        last_run: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        offset: Duration,
    ) -> bool {
        last_run.is_none_or(|last| self.next_after(last, offset) <= now)
    }
}

fn parse_every(text: &str, spec: &str) -> Result<Duration, ScheduleError> {
    let every = humantime::parse_duration(spec).map_err(|e| {
        ScheduleError(format!(
            "invalid interval {text:?}: expected a duration such as 30s, 5m or 1h30m ({e})"
        ))
    })?;
    if every < Duration::from_secs(1) {
        return Err(ScheduleError(format!(
            "invalid interval {text:?}: must be at least 1s"
        )));
    }
    Ok(every)
}

fn parse_cron(text: &str, expr: &str) -> Result<(Kind, Duration), ScheduleError> {
    let bad = |msg: String| ScheduleError(format!("invalid cron expression {text:?}: {msg}"));
    let mut f: Vec<&str> = expr.split_whitespace().collect();
    match f.len() {
        5 => f.insert(0, "0"),
        6 => {}
        1 => {
            return Err(ScheduleError(format!(
                "invalid schedule {text:?}: expected \"every <duration>\", a cron expression \
                 like \"*/5 * * * *\" or a macro like @daily"
            )));
        }
        n => {
            return Err(bad(format!(
                "expected 5 fields (or 6 with seconds), found {n}"
            )));
        }
    }
    // The crate's own range messages are off by one ("less than 59"), so check ranges first.
    for (field, (name, lo, hi)) in f.iter().zip(FIELDS).take(5) {
        check_range(field, lo, hi).map_err(|e| bad(format!("{name} field {field:?}: {e}")))?;
    }
    let days = parse_dow(f[5]).map_err(|e| bad(format!("day-of-week field {:?}: {e}", f[5])))?;
    let dow = if days == 0x7f {
        "*".to_owned()
    } else {
        let names = WEEKDAYS
            .iter()
            .enumerate()
            .filter(|(i, _)| days & (1 << i) != 0);
        names.map(|(_, n)| *n).collect::<Vec<_>>().join(",")
    };
    let build = |dom: &str, dow: &str| {
        let expr = format!("{} {} {} {dom} {} {dow}", f[0], f[1], f[2], f[4]);
        cron::Schedule::from_str(&expr).map_err(|e| bad(crate_error(&f, &e)))
    };
    // Vixie cron treats a day field starting with `*` (even `*/2`) as unrestricted.
    let schedules = if !f[3].starts_with(['*', '?']) && !f[5].starts_with('*') {
        vec![build(f[3], "*")?, build("*", &dow)?]
    } else {
        vec![build(f[3], &dow)?]
    };
    let first = next_cron(&schedules, DateTime::UNIX_EPOCH);
    let Some((a, b)) = first.and_then(|a| Some((a, next_cron(&schedules, a)?))) else {
        return Err(bad("it never fires".to_owned()));
    };
    Ok((
        Kind::Cron(schedules),
        (b - a).to_std().unwrap_or(Duration::ZERO),
    ))
}

fn check_range(field: &str, lo: u32, hi: u32) -> Result<(), String> {
    for item in field.split(',') {
        let base = item.split_once('/').map_or(item, |(base, _)| base);
        for n in base.split('-').filter_map(|v| v.parse::<u32>().ok()) {
            if !(lo..=hi).contains(&n) {
                return Err(format!("{n} is out of range {lo}-{hi}"));
            }
        }
    }
    Ok(())
}

/// Crontab weekdays (0-7, 0 and 7 = Sunday, or names) as a bit set with bit 0 = Sunday; the
/// crate numbers them 1-7 from Sunday, so only names are ever handed to it.
fn parse_dow(field: &str) -> Result<u8, String> {
    let mut days = 0u8;
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => match step.parse::<usize>() {
                Ok(step) if step > 0 => (base, step),
                _ => return Err(format!("invalid step {step:?}")),
            },
            None => (item, 1),
        };
        let (lo, hi) = match base.split_once('-') {
            _ if base == "*" => (0, 6),
            Some((a, b)) => (weekday(a)?, weekday(b)?),
            None if step > 1 => (weekday(base)?, weekday(base)?.max(6)),
            None => (weekday(base)?, weekday(base)?),
        };
        if lo > hi {
            return Err(format!("range {base:?} runs backwards"));
        }
        for d in (lo..=hi).step_by(step) {
            days |= 1 << (d % 7);
        }
    }
    Ok(days)
}

fn weekday(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if n <= 7 => Ok(n),
        Ok(n) => Err(format!("{n} is out of range 0-7")),
        Err(_) => (0u32..)
            .zip(WEEKDAYS)
            .find(|(_, name)| name.eq_ignore_ascii_case(v))
            .map(|(i, _)| i)
            .ok_or_else(|| format!("{v:?} is not a weekday (use 0-7 or sun..sat)")),
    }
}

/// Names the offending field: the crate reports a multi-line caret diagram over its own
/// rewritten expression, which would confuse a user looking at their config line.
fn crate_error(f: &[&str], err: &cron::error::Error) -> String {
    let last_line = |e: &cron::error::Error| {
        let text = e.to_string();
        text.lines().last().unwrap_or_default().trim().to_owned()
    };
    for (i, (name, _, _)) in FIELDS.iter().enumerate().take(5) {
        let mut probe = ["0", "*", "*", "*", "*", "*"];
        probe[i] = f[i];
        if let Err(e) = cron::Schedule::from_str(&probe.join(" ")) {
            return format!("{name} field {:?}: {}", f[i], last_line(&e));
        }
    }
    last_line(err)
}

fn next_cron(schedules: &[cron::Schedule], after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedules
        .iter()
        .filter_map(|s| s.after(&after).next())
        .min()
}

/// Multiples of `every` since the unix epoch, so fire times do not depend on start-up time.
fn next_multiple(after: DateTime<Utc>, every: Duration) -> Option<DateTime<Utc>> {
    const NANOS: i128 = 1_000_000_000;
    let every = i128::try_from(every.as_nanos()).ok()?;
    let t = i128::from(after.timestamp()) * NANOS + i128::from(after.timestamp_subsec_nanos());
    let next = (t.div_euclid(every) + 1) * every;
    let secs = i64::try_from(next.div_euclid(NANOS)).ok()?;
    DateTime::from_timestamp(secs, u32::try_from(next.rem_euclid(NANOS)).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO: Duration = Duration::ZERO;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn sched(expr: &str) -> Schedule {
        expr.parse().unwrap()
    }

    fn fires(expr: &str, from: &str, n: usize) -> Vec<String> {
        let s = sched(expr);
        let first = s.next_after(at(from), NO);
        std::iter::successors(Some(first), |t| Some(s.next_after(*t, NO)))
            .take(n)
            .map(|t| t.format("%F %T").to_string())
            .collect()
    }

    fn err(expr: &str) -> String {
        expr.parse::<Schedule>().unwrap_err().to_string()
    }

    #[test]
    fn cron_fire_times() {
        let five = ["2026-11-27 10:05:00", "2026-11-27 10:10:00"];
        assert_eq!(fires("*/5 * * * *", "2026-11-27T10:02:30Z", 2), five);
        assert_eq!(fires("*/5 * * * *", "2026-11-27T10:05:00Z", 1), five[1..]);
        assert_eq!(sched("*/5 * * * *").period(), Duration::from_secs(300));
        let tens = ["2026-11-27 10:00:10", "2026-11-27 10:00:20"];
        assert_eq!(fires("*/10 * * * * *", "2026-11-27T10:00:05Z", 2), tens);
        let from = "2026-11-27T10:30:00Z";
        assert_eq!(fires("@hourly", from, 1), ["2026-11-27 11:00:00"]);
        assert_eq!(fires("@midnight", from, 1), ["2026-11-28 00:00:00"]);
        assert_eq!(fires("@monthly", from, 1), ["2026-12-01 00:00:00"]);
        assert_eq!(fires("@annually", from, 1), ["2027-01-01 00:00:00"]);
    }

    #[test]
    fn crontab_weekdays() {
        // 2026-11-22 is a Sunday, 2026-11-27 a Friday.
        let sun = "2026-11-22T00:00:00Z";
        let week = fires("0 9 * * 1-5", sun, 6);
        let days: Vec<_> = week.iter().map(|t| &t[8..13]).collect();
        assert_eq!(days, ["23 09", "24 09", "25 09", "26 09", "27 09", "30 09"]);
        assert_eq!(fires(" 0  9 *\t* MON-fri ", sun, 6), week);
        let odd = fires("0 0 * * 1-5/2", sun, 3);
        assert_eq!(
            odd.iter().map(|t| &t[8..10]).collect::<Vec<_>>(),
            ["23", "25", "27"]
        );
        for expr in [
            "0 0 * * 0",
            "0 0 * * 7",
            "0 0 * * sun",
            "0 0 * * SUN",
            "@weekly",
        ] {
            let got = fires(expr, "2026-11-27T12:00:00Z", 1);
            assert_eq!(got, ["2026-11-29 00:00:00"], "{expr}");
        }
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        let got = fires("0 12 1 * mon", "2026-11-27T00:00:00Z", 3);
        let want = [
            "2026-11-30 12:00:00",
            "2026-12-01 12:00:00",
            "2026-12-07 12:00:00",
        ];
        assert_eq!(got, want);
        // As in Vixie cron, a field starting with `*` counts as unrestricted, so these AND.
        let got = fires("0 0 1-7 * */2", "2026-11-27T00:00:00Z", 2);
        assert_eq!(got, ["2026-12-01 00:00:00", "2026-12-03 00:00:00"]);
    }

    #[test]
    fn every_is_epoch_aligned() {
        let got = fires("every 30s", "2026-11-27T10:00:07.250Z", 2);
        assert_eq!(got, ["2026-11-27 10:00:30", "2026-11-27 10:01:00"]);
        // 5400s divides a day, so midnight is a slot.
        assert_eq!(
            fires("every 1h30m", "2026-11-27T00:10:00Z", 1),
            ["2026-11-27 01:30:00"]
        );
        assert_eq!(sched("every 90s").period(), Duration::from_secs(90));
    }

    #[test]
    fn offsets_shift_fire_times() {
        let (s, off) = (sched("*/5 * * * *"), Duration::from_secs(42));
        let next = |from| s.next_after(at(from), off);
        assert_eq!(next("2026-11-27T10:02:00Z"), at("2026-11-27T10:05:42Z"));
        assert_eq!(next("2026-11-27T10:05:30Z"), at("2026-11-27T10:05:42Z"));
        assert_eq!(next("2026-11-27T10:05:42Z"), at("2026-11-27T10:10:42Z"));
        let got = sched("every 30s").next_after(at("2026-11-27T10:00:07Z"), Duration::from_secs(7));
        assert_eq!(got, at("2026-11-27T10:00:37Z"));
    }

    #[test]
    fn offset_for_is_stable_and_bounded() {
        let s = sched("*/5 * * * *");
        let pinned = s.offset_for("example.com/pricing", DEFAULT_MAX_JITTER);
        assert_eq!(pinned, Duration::from_millis(227_232));
        assert_eq!(s.offset_for("x", Duration::ZERO), Duration::ZERO);
        let (fast, daily) = (sched("every 30s"), sched("@daily"));
        let ten = Duration::from_secs(10);
        for name in (0..200).map(|i| format!("watcher-{i}")) {
            assert!(fast.offset_for(&name, DEFAULT_MAX_JITTER) < Duration::from_secs(30));
            assert!(daily.offset_for(&name, DEFAULT_MAX_JITTER) < DEFAULT_MAX_JITTER);
            assert!(daily.offset_for(&name, ten) < ten);
        }
        let secs: std::collections::HashSet<_> = (0..1000)
            .map(|i| s.offset_for(&format!("w{i}"), DEFAULT_MAX_JITTER).as_secs())
            .collect();
        assert!(secs.len() > 250, "only {} distinct offsets", secs.len());
    }

    #[test]
    fn overdue_runs_once() {
        let (s, now) = (sched("*/5 * * * *"), at("2026-11-27T10:17:00Z"));
        assert!(s.is_overdue(None, now, NO));
        // Slots at 10:05, 10:10 and 10:15 were missed; one catch-up run clears all of them.
        assert!(s.is_overdue(Some(at("2026-11-27T10:00:00Z")), now, NO));
        assert!(!s.is_overdue(Some(now), now, NO));
        let late = Some(at("2026-11-27T10:15:30Z"));
        assert!(!s.is_overdue(late, now, NO));
        let off = Duration::from_secs(30);
        assert!(!s.is_overdue(late, now, off));
        assert!(s.is_overdue(late, at("2026-11-27T10:20:30Z"), off));
    }

    #[test]
    fn error_messages() {
        let fields = r#"invalid cron expression "*/5 * * *": expected 5 fields (or 6 with seconds), found 4"#;
        assert_eq!(err("*/5 * * *"), fields);
        assert_eq!(
            err("every 0s"),
            r#"invalid interval "every 0s": must be at least 1s"#
        );
        assert_eq!(
            err("every 500ms"),
            r#"invalid interval "every 500ms": must be at least 1s"#
        );
        let fortnight = r#"invalid interval "every fortnight": expected a duration such as 30s, 5m or 1h30m (expected number at 0)"#;
        assert_eq!(err("every fortnight"), fortnight);
        let range =
            r#"invalid cron expression "61 * * * *": minute field "61": 61 is out of range 0-59"#;
        assert_eq!(err("61 * * * *"), range);
        assert!(err("0 0 * * 8").contains(r#"day-of-week field "8": 8 is out of range 0-7"#));
        assert!(err("0 0 * * funday").contains("not a weekday"));
        assert!(err("0 0 * foo *").contains(r#"month field "foo": 'foo' is not a valid month"#));
        assert!(err("0 0 30 2 *").ends_with("it never fires"));
        assert!(err("@fortnightly").starts_with("unknown schedule macro"));
        assert!(err("fortnight").starts_with(r#"invalid schedule "fortnight""#));
        for e in [err("*/0 * * * *"), err("0 0 * jan-foo *")] {
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
