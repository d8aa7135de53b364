//! The scheduler: each watcher's next check on a queue of due times, read against the
//! injected clock, and what a reload does to that queue.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::DRAIN;
use crate::check::check;
use crate::clock::Clock;
use crate::config::Watcher;
use crate::deliver::Deliverer;
use crate::fetch::Fetcher;
use crate::store::Store;

/// How a reload changes the running watchers.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    added: Vec<String>,
    removed: Vec<String>,
    /// Changed, and whether its next run must be computed again (schedule or jitter moved).
    changed: Vec<(String, bool)>,
    unchanged: Vec<String>,
}

fn plan(old: &BTreeMap<String, Arc<Watcher>>, new: &[Arc<Watcher>]) -> Plan {
    let mut plan = Plan::default();
    for watcher in new {
        match old.get(&watcher.name) {
            None => plan.added.push(watcher.name.clone()),
            Some(before) if before == watcher => plan.unchanged.push(watcher.name.clone()),
            Some(before) => {
                let reschedule =
                    before.schedule != watcher.schedule || before.offset != watcher.offset;
                plan.changed.push((watcher.name.clone(), reschedule));
            }
        }
    }
    let kept: HashSet<&str> = new.iter().map(|w| w.name.as_str()).collect();
    plan.removed = old
        .keys()
        .filter(|name| !kept.contains(name.as_str()))
        .cloned()
        .collect();
    plan
}

/// When overdue watchers catch up. All at once would be a spike of CPU and memory at every
/// start after downtime (or with every watcher new), so those of one "every" period are
/// spaced evenly over that period, in the order of a hash of their names: a restart lays
/// them out alike, and a lone one (a watcher added by a reload) runs at once. None runs later
/// than its regular slot. Cron watchers keep to their times: each catches up now.
fn catch_up(overdue: &[Arc<Watcher>], now: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
    let mut by_period: BTreeMap<std::time::Duration, Vec<(std::time::Duration, &Watcher)>> =
        BTreeMap::new();
    let mut runs = Vec::with_capacity(overdue.len());
    for watcher in overdue {
        let schedule = &watcher.schedule;
        if schedule.is_cron() {
            runs.push((watcher.name.clone(), now));
        } else {
            let place = schedule.offset_for(&watcher.name, schedule.period());
            let group = by_period.entry(schedule.period()).or_default();
            group.push((place, watcher));
        }
    }
    for (period, mut group) in by_period {
        group.sort_unstable_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
        let gap = period / u32::try_from(group.len()).unwrap_or(u32::MAX);
        let mut at = now;
        for (_, watcher) in group {
            let regular = watcher.schedule.next_after(now, watcher.offset);
            runs.push((watcher.name.clone(), at.min(regular)));
            at = TimeDelta::from_std(gap)
                .ok()
                .and_then(|gap| at.checked_add_signed(gap))
                .unwrap_or(at);
        }
    }
    runs
}

pub(super) struct Scheduler {
    watchers: BTreeMap<String, Arc<Watcher>>,
    /// Due times, earliest first; `next` says where each watcher sits in it.
    queue: BTreeSet<(DateTime<Utc>, String)>,
    next: HashMap<String, DateTime<Utc>>,
    /// Watchers whose last check got no slot to fetch in, by the slot they have been waiting
    /// since: their next check keeps that place in the host's line.
    waiting: HashMap<String, DateTime<Utc>>,
    fetcher: Fetcher,
    store: Store,
    deliverer: Deliverer,
    clock: Clock,
}

impl Scheduler {
    pub(super) fn new(fetcher: Fetcher, store: Store, deliverer: Deliverer, clock: Clock) -> Self {
        Scheduler {
            watchers: BTreeMap::new(),
            queue: BTreeSet::new(),
            next: HashMap::new(),
            waiting: HashMap::new(),
            fetcher,
            store,
            deliverer,
            clock,
        }
    }

    /// Whether a watcher new to this scheduler missed a slot (or never ran): after downtime it
    /// catches up once rather than once per slot it missed. With the store failing, yes: the
    /// check says why it cannot run.
    fn overdue(&self, watcher: &Watcher, now: DateTime<Utc>) -> bool {
        let last = self.store.last_check(&watcher.name).ok().flatten();
        watcher.schedule.is_overdue(last, now, watcher.offset)
    }

    fn enqueue(&mut self, name: &str, at: DateTime<Utc>) {
        if let Some(old) = self.next.insert(name.to_owned(), at) {
            self.queue.remove(&(old, name.to_owned()));
        }
        self.queue.insert((at, name.to_owned()));
    }

    fn apply(&mut self, watchers: Vec<Arc<Watcher>>, now: DateTime<Utc>) {
        let plan = plan(&self.watchers, &watchers);
        for name in &plan.removed {
            self.watchers.remove(name);
            self.waiting.remove(name);
            if let Some(at) = self.next.remove(name) {
                self.queue.remove(&(at, name.clone()));
            }
        }
        // A set, not the plan's lists: looking each of 100,000 names up in a list of 100,000
        // kept a start busy for minutes.
        let fresh: HashSet<&str> = plan
            .added
            .iter()
            .chain(
                plan.changed
                    .iter()
                    .filter(|(_, moved)| *moved)
                    .map(|(n, _)| n),
            )
            .map(String::as_str)
            .collect();
        let mut rescheduled = Vec::new();
        for watcher in watchers {
            let name = watcher.name.clone();
            if fresh.contains(name.as_str()) {
                rescheduled.push(name.clone());
            }
            self.watchers.insert(name, watcher);
        }
        let (overdue, current): (Vec<_>, Vec<_>) = rescheduled
            .into_iter()
            .map(|name| self.watchers[&name].clone())
            .partition(|w| self.overdue(w, now));
        for watcher in current {
            self.enqueue(
                &watcher.name,
                watcher.schedule.next_after(now, watcher.offset),
            );
        }
        for (name, at) in catch_up(&overdue, now) {
            self.enqueue(&name, at);
        }
        info!(
            added = plan.added.len(),
            removed = plan.removed.len(),
            changed = plan.changed.len(),
            unchanged = plan.unchanged.len(),
            "watchers loaded"
        );
    }

    /// The watchers due at `now`, each with the slot it was due at, every one queued again at
    /// its next slot after `now`: however many slots it missed, it runs once.
    fn take_due(&mut self, now: DateTime<Utc>) -> Vec<(Arc<Watcher>, DateTime<Utc>)> {
        let mut due = Vec::new();
        while let Some((at, name)) = self.queue.first().cloned() {
            if at > now {
                break;
            }
            let watcher = self.watchers[&name].clone();
            self.enqueue(&name, watcher.schedule.next_after(now, watcher.offset));
            due.push((watcher, at));
        }
        due
    }

    pub(super) async fn run(
        mut self,
        watchers: Vec<Arc<Watcher>>,
        mut reloads: mpsc::Receiver<Vec<Arc<Watcher>>>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        self.apply(watchers, self.clock.now());
        let mut checks = JoinSet::new();
        let mut running = HashSet::new();
        loop {
            let wake_at = self
                .queue
                .first()
                .map_or(self.clock.now() + TimeDelta::hours(1), |(at, _)| *at);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(watchers) = reloads.recv() => self.apply(watchers, self.clock.now()),
                Some(done) = checks.join_next(), if !checks.is_empty() => {
                    let (name, served) = done.context("a check panicked")?;
                    running.remove(&name);
                    if served {
                        self.waiting.remove(&name);
                    }
                }
                _ = self.clock.sleep_until(wake_at) => {
                    for (watcher, at) in self.take_due(self.clock.now()) {
                        let name = watcher.name.clone();
                        if !running.insert(name.clone()) {
                            debug!(watcher = name.as_str(), "previous check still running; slot skipped");
                            continue;
                        }
                        let due = *self.waiting.entry(name).or_insert(at);
                        checks.spawn(self.check_task(watcher, due));
                    }
                }
            }
        }

        if tokio::time::timeout(DRAIN, async { while checks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            warn!(
                left = checks.len(),
                "checks still running at the drain deadline were cut off; nothing of theirs was committed"
            );
        }
        Ok(())
    }

    /// A check due since `due`. It waits inside the fetcher for its host's and a global slot,
    /// so one slow host never holds up the others, and ends with the watcher's name and whether
    /// it was served (got a slot).
    fn check_task(
        &self,
        watcher: Arc<Watcher>,
        due: DateTime<Utc>,
    ) -> impl Future<Output = (String, bool)> + Send + 'static {
        let (fetcher, store, deliverer, clock) = (
            self.fetcher.clone(),
            self.store.clone(),
            self.deliverer.clone(),
            self.clock.clone(),
        );
        async move {
            // Any outcome may have queued an event: a change, `watch.failing` or
            // `watch.recovered`. A wake with nothing due costs one empty range scan.
            let outcome = check(&watcher, &fetcher, &store, due, &clock).await;
            deliverer.wake();
            (watcher.name.clone(), !outcome.got_no_slot())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::config;
    use crate::config::testing::NoEnv;

    fn watchers(tables: &str) -> Vec<Arc<Watcher>> {
        let text = format!(
            "[webhooks.a]\nurl = \"https://a.example\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n{tables}"
        );
        config::parse(&text, Path::new("w.toml"), &NoEnv)
            .unwrap()
            .config
            .watchers
    }

    fn watcher(name: &str, schedule: &str, css: &str) -> String {
        format!(
            "[[watchers]]\nname = \"{name}\"\nurl = \"https://s.example/{name}\"\nschedule = \"{schedule}\"\nfields.p = {{ css = \"{css}\" }}\n"
        )
    }

    #[tokio::test]
    async fn a_reload_keeps_unchanged_slots_reschedules_changed_ones_and_starts_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now: DateTime<Utc> = "2026-11-27T06:00:30Z".parse().unwrap();
        for name in ["same", "sched", "gone"] {
            let ran = crate::store::WatcherState {
                last_check: Some(now),
                ..Default::default()
            };
            store.commit(name, &ran, &[]).await.unwrap();
        }
        let deliverer = Deliverer::new(store.clone(), BTreeMap::new()).unwrap();
        let mut scheduler =
            Scheduler::new(Fetcher::new().unwrap(), store, deliverer, Clock::System);
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let tables = |list: &[(&str, &str)]| {
            let text: String = list
                .iter()
                .map(|(name, every)| watcher(name, every, ".p") + "jitter = \"0s\"\n")
                .collect();
            watchers(&text)
        };

        scheduler.apply(
            tables(&[
                ("same", "every 5m"),
                ("sched", "every 5m"),
                ("gone", "every 5m"),
            ]),
            now,
        );
        assert_eq!(scheduler.next["same"], at("2026-11-27T06:05:00Z"));

        let later = now + chrono::TimeDelta::minutes(1);
        scheduler.apply(
            tables(&[
                ("same", "every 5m"),
                ("sched", "every 1h"),
                ("new", "every 5m"),
            ]),
            later,
        );
        assert_eq!(
            scheduler.next["same"],
            at("2026-11-27T06:05:00Z"),
            "slot kept"
        );
        assert_eq!(
            scheduler.next["sched"],
            at("2026-11-27T07:00:00Z"),
            "new schedule"
        );
        assert_eq!(
            scheduler.next["new"], later,
            "never ran, so it runs at once"
        );
        assert!(!scheduler.next.contains_key("gone"));
        assert_eq!(scheduler.queue.len(), 3);
        assert_eq!(scheduler.watchers.len(), 3);
    }

    /// A scheduler on a clock the test moves by hand, starting at `now`.
    fn on_manual_clock(store: Store, now: DateTime<Utc>) -> (Scheduler, crate::clock::ManualClock) {
        let deliverer = Deliverer::new(store.clone(), BTreeMap::new()).unwrap();
        let clock = crate::clock::ManualClock::new(now);
        let scheduler = Scheduler::new(
            Fetcher::new().unwrap(),
            store,
            deliverer,
            clock.clone().into(),
        );
        (scheduler, clock)
    }

    #[tokio::test]
    async fn a_watcher_that_missed_three_slots_runs_once_and_one_not_overdue_waits_for_its_slot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now: DateTime<Utc> = "2026-11-27T06:20:00Z".parse().unwrap();
        for (name, last) in [("stale", now - TimeDelta::hours(3)), ("fresh", now)] {
            let ran = crate::store::WatcherState {
                last_check: Some(last),
                ..Default::default()
            };
            store.commit(name, &ran, &[]).await.unwrap();
        }
        let (mut scheduler, clock) = on_manual_clock(store, now);
        let every_hour = [
            watcher("stale", "every 1h", ".p"),
            watcher("fresh", "every 1h", ".p"),
        ]
        .map(|table| table + "jitter = \"0s\"\n")
        .concat();
        scheduler.apply(watchers(&every_hour), now);
        let names = |due: Vec<(Arc<Watcher>, DateTime<Utc>)>| -> Vec<(String, DateTime<Utc>)> {
            due.into_iter()
                .map(|(w, at)| (w.name.clone(), at))
                .collect()
        };

        assert_eq!(names(scheduler.take_due(now)), [("stale".into(), now)]);
        assert_eq!(
            names(scheduler.take_due(now)),
            [],
            "one run for three missed slots"
        );
        clock.advance(TimeDelta::minutes(39));
        assert_eq!(
            names(scheduler.take_due(clock.now())),
            [],
            "not before the slot"
        );
        clock.advance(TimeDelta::minutes(1));
        let seven: DateTime<Utc> = "2026-11-27T07:00:00Z".parse().unwrap();
        assert_eq!(
            names(scheduler.take_due(clock.now())),
            [("fresh".into(), seven), ("stale".into(), seven)]
        );
    }

    #[tokio::test]
    async fn overdue_watchers_catch_up_spread_over_their_period_and_cron_ones_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now: DateTime<Utc> = "2026-11-27T06:00:30Z".parse().unwrap();
        let (mut scheduler, clock) = on_manual_clock(store, now);
        // All new, so all overdue: forty hourly ones, four every ten minutes, one cron.
        let mut tables: String = (0..40)
            .map(|i| watcher(&format!("h{i}"), "every 1h", ".p") + "jitter = \"0s\"\n")
            .collect();
        for i in 0..4 {
            tables += &watcher(&format!("t{i}"), "every 10m", ".p");
            tables += "jitter = \"0s\"\n";
        }
        tables += &watcher("cron", "0 7 * * *", ".p");
        scheduler.apply(watchers(&tables), now);

        let mut ran: Vec<(String, DateTime<Utc>)> = Vec::new();
        let mut first_minute = 0;
        while clock.now() < now + TimeDelta::hours(1) {
            let due = scheduler.take_due(clock.now());
            for (watcher, at) in due {
                if at < now + TimeDelta::minutes(1) {
                    first_minute += 1;
                }
                if !ran.iter().any(|(name, _)| *name == watcher.name) {
                    ran.push((watcher.name.clone(), at));
                }
            }
            clock.advance(TimeDelta::seconds(10));
        }
        let first = |prefix: &str| -> Vec<DateTime<Utc>> {
            ran.iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .map(|(_, at)| *at)
                .collect()
        };
        assert_eq!(first("cron"), [now], "a cron watcher catches up now");
        let hourly = first("h");
        assert_eq!(hourly.len(), 40, "every one ran in its first hour");
        // 90 s apart (an hour over forty), the first at once, the last by its 07:00 slot.
        for (k, at) in hourly.iter().enumerate() {
            assert_eq!(*at, now + TimeDelta::seconds(90 * k as i64), "{hourly:?}");
        }
        let tens = first("t");
        let spaced: Vec<_> = (0..4).map(|k| now + TimeDelta::seconds(150 * k)).collect();
        assert_eq!(
            tens, spaced,
            "ten minutes over four, all before the 06:10 slot"
        );
        assert_eq!(
            first_minute, 3,
            "one of each period, and the cron one, not all 45"
        );

        // The order comes from the names, so a restart lays them out alike.
        let overdue: Vec<Arc<Watcher>> = scheduler.watchers.values().cloned().collect();
        let hourly_at = |start: DateTime<Utc>| -> Vec<(String, TimeDelta)> {
            let mut runs: Vec<_> = catch_up(&overdue, start)
                .into_iter()
                .filter(|(name, _)| name.starts_with('h'))
                .map(|(name, at)| (name, at - start))
                .collect();
            runs.sort();
            runs
        };
        assert_eq!(hourly_at(now), hourly_at(now + TimeDelta::hours(5)));
    }

    #[test]
    fn a_reload_plan_sorts_watchers_by_what_happened_to_them() {
        let old: BTreeMap<String, Arc<Watcher>> = watchers(
            &[
                watcher("same", "every 5m", ".p"),
                watcher("selector", "every 5m", ".p"),
                watcher("schedule", "every 5m", ".p"),
                watcher("gone", "every 5m", ".p"),
                watcher("regex", "every 5m", ".p")
                    + "fields.q = { css = \".q\", regex = '(\\d+)' }\n",
                watcher("header", "every 5m", ".p") + "headers = { X-Token = \"a\" }\n",
            ]
            .concat(),
        )
        .into_iter()
        .map(|w| (w.name.clone(), w))
        .collect();
        let new = watchers(
            &[
                watcher("same", "every 5m", ".p"),
                watcher("selector", "every 5m", ".price"),
                watcher("schedule", "every 1h", ".p"),
                watcher("new", "every 5m", ".p"),
                watcher("regex", "every 5m", ".p")
                    + "fields.q = { css = \".q\", regex = '(\\d+) left' }\n",
                // Its Debug form shows header names only: a new token was once taken for no change.
                watcher("header", "every 5m", ".p") + "headers = { X-Token = \"b\" }\n",
            ]
            .concat(),
        );
        assert_eq!(
            plan(&old, &new),
            Plan {
                added: vec!["new".into()],
                removed: vec!["gone".into()],
                changed: vec![
                    ("selector".into(), false),
                    ("schedule".into(), true),
                    ("regex".into(), false),
                    ("header".into(), false),
                ],
                unchanged: vec!["same".into()],
            }
        );
    }
}
