//! The hub behind `GET /admin/live/logs`: completed-request summaries with
//! increasing event ids, a bounded replay ring for `Last-Event-ID` resume,
//! and a broadcast to connected listeners.
//!
//! A fresh listener starts live, so the ring only serves listeners that
//! reconnect. While nobody has watched for [`RETAIN_MS`], publishing just
//! advances the event id: the summary is not even serialised, and the
//! request path pays nothing for the feature.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast;

/// How long after the last listener was seen events are still kept for a
/// reconnect with `Last-Event-ID`.
pub const RETAIN_MS: u64 = 10 * 60 * 1000;

/// One event: its id and its JSON text.
pub type LiveEvent = (u64, Arc<str>);

/// Default replay ring size.
pub const DEFAULT_REPLAY: usize = 1024;

struct State {
    ring: VecDeque<LiveEvent>,
}

/// Publish/subscribe hub for live request summaries.
pub struct LiveHub {
    state: Mutex<State>,
    capacity: usize,
    tx: broadcast::Sender<LiveEvent>,
    /// The next event id (taken under the state lock when an event is kept,
    /// so kept events are in id order; skipped ones leave a gap).
    next_id: AtomicU64,
    /// Events are kept until this time (ms): the last time a listener was
    /// seen, plus [`RETAIN_MS`].
    watched_until_ms: AtomicU64,
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
                ring: VecDeque::with_capacity(capacity),
            }),
            capacity,
            tx,
            next_id: AtomicU64::new(1),
            watched_until_ms: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes one summary at `now_ms`; returns its event id (ids start
    /// at 1). Serialises it only when someone watches or watched within
    /// [`RETAIN_MS`].
    ///
    /// Takes any `Serialize` so the request path serialises a borrowed
    /// struct directly instead of building a `serde_json::Value` map first.
    pub fn publish<T: serde::Serialize + ?Sized>(&self, now_ms: u64, summary: &T) -> u64 {
        if self.tx.receiver_count() > 0 {
            self.watched_until_ms.store(now_ms + RETAIN_MS, Ordering::Relaxed);
        } else if now_ms > self.watched_until_ms.load(Ordering::Relaxed) {
            // Nobody to deliver to or to replay for: only the id advances.
            return self.next_id.fetch_add(1, Ordering::Relaxed);
        }
        let text: Arc<str> = Arc::from(serde_json::to_string(summary).unwrap_or_default());
        let mut st = self.state();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
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
        self.next_id.load(Ordering::Relaxed)
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

    const NOW: u64 = 1_000_000;

    #[test]
    fn replay_after_id_then_live() {
        let hub = LiveHub::new(8);
        let (_, watcher) = hub.subscribe(None);
        for i in 0..5 {
            assert_eq!(hub.publish(NOW, &json!({ "n": i })), i + 1);
        }
        let (replay, mut rx) = hub.subscribe(Some(3));
        assert_eq!(replay.iter().map(|e| e.0).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(&*replay[0].1, r#"{"n":3}"#);
        hub.publish(NOW, &json!({ "n": 5 }));
        let (id, text) = rx.try_recv().expect("live event");
        assert_eq!((id, &*text), (6, r#"{"n":5}"#));
        assert!(rx.try_recv().is_err(), "no duplicates");
        let (fresh, _rx) = hub.subscribe(None);
        assert!(fresh.is_empty());
        assert_eq!(hub.listeners(), 3);
        drop(watcher);
    }

    #[test]
    fn ring_overflow_keeps_the_newest() {
        let hub = LiveHub::new(4);
        let _watcher = hub.subscribe(None);
        for i in 0..10 {
            hub.publish(NOW, &json!(i));
        }
        let (replay, _rx) = hub.subscribe(Some(0));
        assert_eq!(replay.iter().map(|e| e.0).collect::<Vec<_>>(), vec![7, 8, 9, 10]);
        let (none, _rx) = hub.subscribe(Some(10));
        assert!(none.is_empty());
        assert_eq!(hub.next_id(), 11);
    }

    #[test]
    fn events_are_kept_for_a_reconnect_then_skipped_while_nobody_watches() {
        let hub = LiveHub::new(4);
        hub.publish(NOW, &json!("nobody ever watched"));
        assert!(hub.subscribe(Some(0)).0.is_empty(), "not kept: nobody watched");
        // subscribe() above made a listener that was dropped at once; one
        // that left recently still gets its replay.
        let (_, rx) = hub.subscribe(None);
        hub.publish(NOW, &json!(2));
        drop(rx);
        hub.publish(NOW + 1, &json!(3));
        let replay = hub.subscribe(Some(1)).0;
        assert_eq!(replay.iter().map(|e| e.0).collect::<Vec<_>>(), vec![2, 3]);
        // Long after the last listener left: ids advance, nothing is kept.
        let later = NOW + RETAIN_MS + 10;
        assert_eq!(hub.publish(later, &json!(4)), 4);
        assert_eq!(hub.publish(later, &json!(5)), 5);
        assert_eq!(hub.next_id(), 6);
        let (_, mut rx) = hub.subscribe(None);
        assert_eq!(hub.publish(later, &json!(6)), 6, "ids stay increasing across the gap");
        assert_eq!(rx.try_recv().expect("live").0, 6);
    }
}
