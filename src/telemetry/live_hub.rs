//! The hub behind `GET /admin/live/logs`: completed-request summaries with
//! increasing event ids, a bounded replay ring for `Last-Event-ID` resume,
//! and a broadcast to connected listeners. Publishing is O(1) and allocates
//! nothing beyond the event itself, listeners or not, so the request path
//! does not pay for the feature when nobody watches.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast;

/// One event: its id and its JSON text.
pub type LiveEvent = (u64, Arc<str>);

/// Default replay ring size.
pub const DEFAULT_REPLAY: usize = 1024;

struct State {
    next_id: u64,
    ring: VecDeque<LiveEvent>,
}

/// Publish/subscribe hub for live request summaries.
pub struct LiveHub {
    state: Mutex<State>,
    capacity: usize,
    tx: broadcast::Sender<LiveEvent>,
}

impl LiveHub {
    /// A hub replaying at most `capacity` events (listeners that fall more
    /// than that behind see `RecvError::Lagged` and should resubscribe with
    /// their last id).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, _) = broadcast::channel(capacity);
        LiveHub {
            state: Mutex::new(State {
                next_id: 1,
                ring: VecDeque::with_capacity(capacity),
            }),
            capacity,
            tx,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes one summary; returns its event id (ids start at 1).
    ///
    /// Takes any `Serialize` so the request path serialises a borrowed
    /// struct directly instead of building a `serde_json::Value` map first.
    pub fn publish<T: serde::Serialize + ?Sized>(&self, summary: &T) -> u64 {
        let text: Arc<str> = Arc::from(serde_json::to_string(summary).unwrap_or_default());
        let mut st = self.state();
        let id = st.next_id;
        st.next_id += 1;
        if st.ring.len() == self.capacity {
            st.ring.pop_front();
        }
        st.ring.push_back((id, text.clone()));
        // Sent under the lock so a subscriber sees each event exactly once:
        // either in its replay or on its receiver. No receivers: a no-op.
        let _ = self.tx.send((id, text));
        id
    }

    /// Subscribes: the buffered events after `last_event_id` (none when it
    /// is `None`: a fresh client starts live), then everything published
    /// later on the receiver. When `last_event_id` is older than the ring,
    /// the replay starts at the oldest buffered event (the gap shows as a
    /// jump in ids).
    pub fn subscribe(&self, last_event_id: Option<u64>) -> (Vec<LiveEvent>, broadcast::Receiver<LiveEvent>) {
        let st = self.state();
        let rx = self.tx.subscribe();
        let replay = match last_event_id {
            None => Vec::new(),
            Some(last) => st.ring.iter().filter(|(id, _)| *id > last).cloned().collect(),
        };
        (replay, rx)
    }

    /// Connected listeners.
    #[allow(dead_code)] // used by tests; kept for the dashboard
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// The id the next event will get.
    #[allow(dead_code)] // used by tests; kept for the dashboard
    pub fn next_id(&self) -> u64 {
        self.state().next_id
    }
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub::new(DEFAULT_REPLAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replay_after_id_then_live() {
        let hub = LiveHub::new(8);
        for i in 0..5 {
            assert_eq!(hub.publish(&json!({ "n": i })), i + 1);
        }
        let (replay, mut rx) = hub.subscribe(Some(3));
        assert_eq!(replay.iter().map(|e| e.0).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(&*replay[0].1, r#"{"n":3}"#);
        hub.publish(&json!({ "n": 5 }));
        let (id, text) = rx.try_recv().expect("live event");
        assert_eq!((id, &*text), (6, r#"{"n":5}"#));
        assert!(rx.try_recv().is_err(), "no duplicates");
        let (fresh, _rx) = hub.subscribe(None);
        assert!(fresh.is_empty());
        assert_eq!(hub.listeners(), 2);
    }

    #[test]
    fn ring_overflow_keeps_the_newest() {
        let hub = LiveHub::new(4);
        for i in 0..10 {
            hub.publish(&json!(i));
        }
        let (replay, _rx) = hub.subscribe(Some(0));
        assert_eq!(replay.iter().map(|e| e.0).collect::<Vec<_>>(), vec![7, 8, 9, 10]);
        let (none, _rx) = hub.subscribe(Some(10));
        assert!(none.is_empty());
        assert_eq!(hub.next_id(), 11);
    }

    #[test]
    fn publishing_without_listeners_is_fine() {
        let hub = LiveHub::new(2);
        assert_eq!(hub.listeners(), 0);
        hub.publish(&json!(1));
        hub.publish(&json!(2));
        hub.publish(&json!(3));
        assert_eq!(hub.subscribe(Some(0)).0.len(), 2);
    }
}
