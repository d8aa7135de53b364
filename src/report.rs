//! Reports read from the store. The daemon builds them when a command asks through the
//! control socket, the command itself when no daemon runs; either way the user sees the same.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{DeadLetter, Delivery, EndpointFailure, Store, StoreError};

/// The outbox and the dead letters: `pagehook deliveries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deliveries {
    pub pending: Vec<Delivery>,
    pub dead: Vec<DeadLetter>,
    /// Endpoints that answered 410 Gone, by webhook name.
    pub failing: Vec<(String, EndpointFailure)>,
    /// Outbox entries that could not be decoded and were set aside.
    pub quarantined: usize,
}

impl Deliveries {
    pub fn read(store: &Store) -> Result<Self, StoreError> {
        Ok(Deliveries {
            pending: store.pending()?,
            dead: store.dead()?,
            failing: store.endpoint_failures()?,
            quarantined: store.quarantined(),
        })
    }
}

/// What `pagehook replay` queued again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replayed {
    /// (event id, webhook) pairs, each due now.
    pub queued: Vec<(String, String)>,
}

impl Replayed {
    /// Queue `event_ids` again, or every dead letter when `dead` is set.
    pub fn run(
        store: &Store,
        event_ids: &[String],
        dead: bool,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let mut deliveries = if dead {
            store.replay_dead(now)?
        } else {
            Vec::new()
        };
        if !event_ids.is_empty() {
            deliveries.extend(store.replay(event_ids, now)?);
        }
        Ok(Replayed {
            queued: deliveries
                .into_iter()
                .map(|d| (d.event_id, d.webhook))
                .collect(),
        })
    }
}
