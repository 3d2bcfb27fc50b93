//! Keyed single flights, each run as a task of its own.
//!
//! A refresh or a flow is started by the first request that needs it and
//! joined by every request that needs the same thing while it runs. It runs
//! on the runtime, not inside that first request's future: when the request
//! is cancelled (a Python task cancelled, a C host giving up), the token
//! request still completes and its result is stored and shared. Every waiter
//! gets the flight's outcome, failure included, so N requests waiting on a
//! dead authorization server wait once, together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::error::{Error, Result, Step};

/// Wraps a flight's task in the context of the request that starts it.
pub type TaskWrapper = Arc<dyn Fn(BoxFuture<'static, ()>) -> BoxFuture<'static, ()> + Send + Sync>;

/// What a flight is for. Requests join a flight only with the same key: a
/// request waiting for a step-up to some scopes never joins a plain refresh.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum FlightKey {
    /// Load stored tokens; refresh an expiring one; obtain tokens from a
    /// source that needs no person.
    Ensure,
    /// The server refused the token with this fingerprint (a hash of the
    /// header that was sent; 0 when none was).
    Reauthorize(u64),
    /// Step up to these scopes (sorted, space-separated).
    StepUp(String),
    /// An explicit log-in.
    Authorize,
}

pub(crate) type Outcome = Result<()>;
type Joined = Shared<BoxFuture<'static, Outcome>>;

#[derive(Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<FlightKey, (u64, Joined)>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// Removes a flight from the table when its task ends, however it ends.
struct Landing {
    flights: Arc<Flights>,
    key: FlightKey,
    id: u64,
}

impl Drop for Landing {
    fn drop(&mut self) {
        let mut running = self.flights.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            running.remove(&self.key);
        }
    }
}

impl Flights {
    /// Join the flight for `key`, starting it with `start` when none runs.
    /// Returns the shared outcome and whether this call started it.
    pub(crate) fn join(
        self: &Arc<Self>,
        key: FlightKey,
        wrapper: Option<&TaskWrapper>,
        start: impl FnOnce() -> BoxFuture<'static, Outcome>,
    ) -> Result<(Joined, bool)> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, joined)) = running.get(&key) {
            return Ok((joined.clone(), false));
        }
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(h) => h,
            Err(_) => crate::runtime::shared()?.handle().clone(),
        };
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel::<Outcome>();
        let joined: Joined = rx
            .map(|r| {
                r.unwrap_or_else(|_| {
                    Err(Error::flow(
                        Step::Request,
                        "the operation ended without a result (its task panicked or the runtime shut down)",
                    ))
                })
            })
            .boxed()
            .shared();
        running.insert(key.clone(), (id, joined.clone()));
        drop(running);
        let landing = Landing {
            flights: self.clone(),
            key,
            id,
        };
        let work = start();
        let task: BoxFuture<'static, ()> = Box::pin(async move {
            let outcome = work.await;
            // Leave the table before answering: a request that comes after
            // the answer starts a new flight instead of reading this one.
            drop(landing);
            let _ = tx.send(outcome);
        });
        let task = match wrapper {
            Some(w) => w(task),
            None => task,
        };
        handle.spawn(task);
        Ok((joined, true))
    }
}

/// A stable fingerprint of a header value, for flight keys (never 0).
pub(crate) fn header_key(header: Option<&str>) -> u64 {
    use std::hash::{Hash, Hasher};
    match header {
        None => 0,
        Some(h) => {
            let mut s = std::collections::hash_map::DefaultHasher::new();
            h.hash(&mut s);
            s.finish().max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn waiters_share_one_run_and_its_failure() {
        let flights = Arc::new(Flights::default());
        let runs = Arc::new(AtomicU32::new(0));
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let r = runs.clone();
        let (first, started) = flights
            .join(FlightKey::Ensure, None, move || {
                Box::pin(async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = release_rx.await;
                    Err(Error::flow(Step::Refresh, "down"))
                })
            })
            .unwrap();
        assert!(started);
        let (second, started) = flights
            .join(FlightKey::Ensure, None, || panic!("a second run must not start"))
            .unwrap();
        assert!(!started);
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap_err().message(), "down");
        assert_eq!(second.await.unwrap_err().message(), "down");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Over: the next request starts a new flight.
        let (third, started) = flights
            .join(FlightKey::Ensure, None, || Box::pin(async { Ok(()) }))
            .unwrap();
        assert!(started);
        third.await.unwrap();
    }

    #[tokio::test]
    async fn a_cancelled_starter_does_not_cancel_the_flight() {
        let flights = Arc::new(Flights::default());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let (joined, _) = flights
            .join(FlightKey::Authorize, None, move || {
                Box::pin(async move {
                    tokio::task::yield_now().await;
                    let _ = done_tx.send(());
                    Ok(())
                })
            })
            .unwrap();
        drop(joined); // the only waiter goes away
        done_rx.await.expect("the flight ran to its end without waiters");
    }

    #[tokio::test]
    async fn different_keys_do_not_share() {
        let flights = Arc::new(Flights::default());
        let (a, _) = flights
            .join(FlightKey::StepUp("a".into()), None, || Box::pin(async { Ok(()) }))
            .unwrap();
        let (b, started) = flights
            .join(FlightKey::StepUp("a b".into()), None, || {
                Box::pin(async { Err(Error::flow(Step::StepUp, "b")) })
            })
            .unwrap();
        assert!(started);
        a.await.unwrap();
        assert!(b.await.is_err());
    }

    #[tokio::test]
    async fn a_panicking_flight_fails_its_waiters_and_frees_its_key() {
        let flights = Arc::new(Flights::default());
        let (joined, _) = flights
            .join(FlightKey::Ensure, None, || Box::pin(async { panic!("boom") }))
            .unwrap();
        assert!(joined.await.is_err());
        let (again, started) = flights
            .join(FlightKey::Ensure, None, || Box::pin(async { Ok(()) }))
            .unwrap();
        assert!(started);
        again.await.unwrap();
    }
}
