//! Dead letters and endpoint failures: what will not be attempted again until replayed, and
//! endpoints that answered 410 Gone.

use super::{Database, Delivery, OutboxKey, Store, StoreError, outbox_event_id, unabort};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

/// An event that will not be attempted again until someone replays it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DeadLetter {
    #[serde(flatten)]
    pub(crate) delivery: Delivery,
    pub(crate) died_at: DateTime<Utc>,
    pub(crate) reason: String,
}

/// An endpoint that answered 410 Gone: it asked not to be sent this event again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EndpointFailure {
    pub(crate) since: DateTime<Utc>,
    pub(crate) reason: String,
}

/// Dead letters are keyed by event, then webhook, so replay by event id is a prefix scan.
pub(super) fn dead_key(d: &Delivery) -> Vec<u8> {
    let mut key = d.event_id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(d.webhook.as_bytes());
    key
}

pub(super) enum Found {
    Dead(Delivery),
    Queued(OutboxKey, Delivery),
}

impl Store {
    pub(crate) fn dead(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.with(Database::dead)
    }

    /// The dead letters `admit` takes, counted, and those `keep` takes (see `outbox::scan`).
    pub(crate) fn dead_where(
        &self,
        admit: impl Fn(&super::Queued) -> bool,
        keep: impl Fn(&super::Queued, usize) -> bool,
    ) -> Result<super::Listed<DeadLetter>, StoreError> {
        self.with(|d| super::outbox::scan(&d.dead, admit, keep))
    }

    pub(crate) fn dead_count(&self) -> usize {
        self.database().map_or(0, |d| d.dead.len())
    }

    /// Move an entry from the outbox to the dead letters in one step.
    pub(crate) fn bury(&self, key: &OutboxKey, letter: &DeadLetter) -> Result<(), StoreError> {
        self.with(|d| d.bury(key, letter))
    }

    /// Queue events again, due now, with their ids unchanged so receivers can deduplicate:
    /// dead letters go back to the outbox and queued entries are moved to the front. Returns
    /// the deliveries requeued; an id found nowhere is an error naming it.
    pub(crate) fn replay(
        &self,
        event_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.with(|d| d.replay(event_ids, now))
    }

    /// Queue every dead letter again.
    pub(crate) fn replay_dead(&self, now: DateTime<Utc>) -> Result<Vec<Delivery>, StoreError> {
        self.with(|d| d.replay_dead(now))
    }

    pub(crate) fn endpoint_failure(
        &self,
        webhook: &str,
    ) -> Result<Option<EndpointFailure>, StoreError> {
        self.with(|d| d.endpoint_failure(webhook))
    }

    pub(crate) fn endpoint_failures(&self) -> Result<Vec<(String, EndpointFailure)>, StoreError> {
        self.with(Database::endpoint_failures)
    }

    pub(crate) fn set_endpoint_failure(
        &self,
        webhook: &str,
        failure: Option<&EndpointFailure>,
    ) -> Result<(), StoreError> {
        self.with(|d| d.set_endpoint_failure(webhook, failure))
    }
}

impl Database {
    pub(crate) fn dead(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead
            .iter()
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    /// Move an entry from the outbox to the dead letters in one step.
    pub(crate) fn bury(&self, key: &OutboxKey, letter: &DeadLetter) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(letter)?;
        let dead_key = dead_key(&letter.delivery);
        (&self.outbox, &self.dead)
            .transaction(|(outbox, dead)| {
                outbox.remove(key.0.as_slice())?;
                dead.insert(dead_key.as_slice(), bytes.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(unabort)?;
        Ok(())
    }

    /// Queue events again, due now, with their ids unchanged so receivers can deduplicate:
    /// dead letters go back to the outbox and queued entries are moved to the front. Returns
    /// the deliveries requeued; an id found nowhere is an error naming it.
    pub(crate) fn replay(
        &self,
        event_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Whole ids only: a suffix would requeue whatever happens to end with it.
        for id in event_ids.iter().filter(|id| seen.insert(id.as_str())) {
            let before = found.len();
            for entry in self.dead.scan_prefix([id.as_bytes(), &[0]].concat()) {
                let (_, value) = entry?;
                found.push(Found::Dead(
                    serde_json::from_slice::<DeadLetter>(&value)?.delivery,
                ));
            }
            for entry in self.outbox.iter() {
                let (key, value) = entry?;
                // An entry not yet on disk is not queued yet: a replay must not send it early.
                if outbox_event_id(&key) == Some(id.as_bytes())
                    && !self.unflushed().hides(&OutboxKey(key.to_vec()))
                {
                    found.push(Found::Queued(
                        OutboxKey(key.to_vec()),
                        serde_json::from_slice(&value)?,
                    ));
                }
            }
            if found.len() == before {
                return Err(StoreError::NotFound(id.clone()));
            }
        }
        found.into_iter().map(|f| self.requeue(f, now)).collect()
    }

    /// Queue every dead letter again.
    pub(crate) fn replay_dead(&self, now: DateTime<Utc>) -> Result<Vec<Delivery>, StoreError> {
        self.dead()?
            .into_iter()
            .map(|letter| self.requeue(Found::Dead(letter.delivery), now))
            .collect()
    }

    pub(super) fn requeue(&self, found: Found, now: DateTime<Utc>) -> Result<Delivery, StoreError> {
        let (old_outbox, old_dead, mut delivery) = match found {
            Found::Dead(d) => (None, Some(dead_key(&d)), d),
            Found::Queued(key, d) => (Some(key), None, d),
        };
        // A replay starts the retry schedule afresh; the history of what went before stays.
        delivery.attempts = 0;
        delivery.next_attempt = now;
        let key = OutboxKey::new(&delivery);
        let bytes = serde_json::to_vec(&delivery)?;
        (&self.outbox, &self.dead)
            .transaction(|(outbox, dead)| {
                if let Some(old) = &old_outbox {
                    outbox.remove(old.0.as_slice())?;
                }
                if let Some(old) = &old_dead {
                    dead.remove(old.as_slice())?;
                }
                outbox.insert(key.0.as_slice(), bytes.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(unabort)?;
        Ok(delivery)
    }

    pub(crate) fn endpoint_failure(
        &self,
        webhook: &str,
    ) -> Result<Option<EndpointFailure>, StoreError> {
        match self.endpoints.get(webhook)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn endpoint_failures(&self) -> Result<Vec<(String, EndpointFailure)>, StoreError> {
        self.endpoints
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                Ok((
                    String::from_utf8_lossy(&key).into_owned(),
                    serde_json::from_slice(&value)?,
                ))
            })
            .collect()
    }

    pub(crate) fn set_endpoint_failure(
        &self,
        webhook: &str,
        failure: Option<&EndpointFailure>,
    ) -> Result<(), StoreError> {
        match failure {
            Some(failure) => self
                .endpoints
                .insert(webhook, serde_json::to_vec(failure)?)?,
            None => self.endpoints.remove(webhook)?,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::tests::delivery;
    use crate::store::*;

    #[tokio::test]
    async fn dead_letters_keep_their_history_and_replay_keeps_the_event_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let entries = [delivery("evt_a", now), delivery("evt_b", now)];
        store
            .commit("w", &WatcherState::default(), &entries)
            .await
            .unwrap();
        for (key, mut d) in store.due("hook", now).unwrap() {
            d.attempts = 3;
            d.history.push(AttemptRecord {
                at: now,
                duration_ms: 7,
                status: Some(500),
                error: Some("HTTP 500".into()),
                response: Some("boom".into()),
            });
            let reason = "gave up".to_string();
            store
                .bury(
                    &key,
                    &DeadLetter {
                        delivery: d,
                        died_at: now,
                        reason,
                    },
                )
                .unwrap();
        }
        assert_eq!(store.pending_count(), 0);
        let dead = store.dead().unwrap();
        assert_eq!(dead.len(), 2);
        assert_eq!(
            dead[0].delivery.history[0].response.as_deref(),
            Some("boom")
        );

        let err = store.replay(&["evt_nope".into()], now).unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
        let replayed = store.replay(&["evt_b".into()], now).unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].attempts, 0, "the retry schedule starts afresh");
        assert_eq!(replayed[0].history.len(), 1, "the history stays");
        assert_eq!(store.due("hook", now).unwrap()[0].1.event_id, "evt_b");
        assert_eq!(store.dead().unwrap().len(), 1);

        // Replaying a queued event moves it to the front without duplicating it.
        let later = now + chrono::Duration::seconds(600);
        let (key, mut d) = store.due("hook", now).unwrap().remove(0);
        d.next_attempt = later;
        store.reschedule(&key, &d).unwrap();
        store.replay(&["evt_b".into()], now).unwrap();
        assert_eq!(store.pending_count(), 1);
        assert_eq!(store.due("hook", now).unwrap().len(), 1);

        assert_eq!(store.replay_dead(now).unwrap().len(), 1);
        assert!(store.dead().unwrap().is_empty());
        assert_eq!(store.pending_count(), 2);
    }

    #[tokio::test]
    async fn replay_takes_whole_event_ids_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let later = now + chrono::Duration::seconds(600);
        let mut waiting = delivery("evt_0193a6f2c1d87e405b", later);
        waiting.attempts = 3;
        store
            .commit("w", &WatcherState::default(), &[waiting.clone()])
            .await
            .unwrap();
        for id in ["5b", "", "evt_0193a6f2c1d87e40", "0193a6f2c1d87e405b"] {
            let err = store.replay(&[id.to_owned()], now).unwrap_err();
            assert!(matches!(err, StoreError::NotFound(_)), "{id:?}: {err}");
        }
        assert_eq!(
            store.pending().unwrap(),
            [waiting.clone()],
            "nothing was requeued"
        );
        let whole = waiting.event_id.clone();
        let replayed = store.replay(&[whole.clone(), whole], now).unwrap();
        assert_eq!(replayed.len(), 1, "an id given twice is queued once");
        assert_eq!((replayed[0].attempts, replayed[0].next_attempt), (0, now));
    }

    #[tokio::test]
    async fn an_endpoint_failure_is_recorded_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let failure = EndpointFailure {
            since: Utc::now(),
            reason: "410".into(),
        };
        store.set_endpoint_failure("hook", Some(&failure)).unwrap();
        assert_eq!(
            store.endpoint_failure("hook").unwrap(),
            Some(failure.clone())
        );
        assert_eq!(
            store.endpoint_failures().unwrap(),
            [("hook".to_string(), failure)]
        );
        store.set_endpoint_failure("hook", None).unwrap();
        assert_eq!(store.endpoint_failure("hook").unwrap(), None);
    }
}
