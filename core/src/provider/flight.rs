//! Keyed single flights, each run as a task of its own.
//!
//! A refresh or a flow is started by the first request that needs it and
//! joined by every request that needs the same thing while it runs. It runs
//! on the runtime, not inside that first request's future: when the request
//! is cancelled (a Python task cancelled, a C host giving up), the token
//! request still completes and its result is stored and shared. Every waiter
//! gets the flight's outcome, failure included, so N requests waiting on a
//! dead authorization server wait once, together.
//!
//! A flight knows whether anyone still waits for it ([`abandoned`]): a flow
//! that would otherwise wait for minutes with nobody to hand its result to
//! (the device flow's polling) stops when its last waiter is dropped, and
//! the next request starts a new flight instead of joining the abandoned one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

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
    /// A log-out: revoke and forget.
    Logout,
}

pub(crate) type Outcome = Result<()>;
type Joined = Shared<BoxFuture<'static, Outcome>>;

/// How many wait for a flight; whether they all went away.
#[derive(Default)]
pub(crate) struct Interest {
    waiters: AtomicUsize,
    abandoned: AtomicBool,
    gone: tokio::sync::Notify,
}

impl Interest {
    /// Count one more waiter, unless every waiter already left.
    fn join(&self) -> bool {
        self.waiters
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n > 0).then_some(n + 1))
            .is_ok()
    }

    fn leave(&self) {
        if self.waiters.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.abandoned.store(true, Ordering::Release);
            self.gone.notify_waiters();
        }
    }

    async fn wait_abandoned(&self) {
        loop {
            let notified = self.gone.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.abandoned.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

tokio::task_local! {
    static INTEREST: Arc<Interest>;
}

/// Completes when nobody waits any more for the flight this runs in (every
/// request that started or joined it was dropped); never outside a flight.
/// A long wait inside a flight selects on it to stop early.
pub(crate) async fn abandoned() {
    match INTEREST.try_with(Arc::clone) {
        Ok(interest) => interest.wait_abandoned().await,
        Err(_) => std::future::pending().await,
    }
}

/// One request's wait for a flight's outcome. Dropping it tells the flight
/// one waiter fewer is left.
pub(crate) struct Waiter {
    joined: Joined,
    interest: Arc<Interest>,
}

impl Future for Waiter {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        Pin::new(&mut self.joined).poll(cx)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.interest.leave();
    }
}

/// A running flight: its id, its outcome, and who waits for it.
type Running = (u64, Joined, Arc<Interest>);

#[derive(Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<FlightKey, Running>>,
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
        if running.get(&self.key).is_some_and(|(id, _, _)| *id == self.id) {
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
    ) -> Result<(Waiter, bool)> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, joined, interest)) = running.get(&key) {
            // A flight every waiter left may be stopping: start a new one.
            if interest.join() {
                let waiter = Waiter {
                    joined: joined.clone(),
                    interest: interest.clone(),
                };
                return Ok((waiter, false));
            }
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
        let interest = Arc::new(Interest {
            waiters: AtomicUsize::new(1),
            ..Interest::default()
        });
        running.insert(key.clone(), (id, joined.clone(), interest.clone()));
        drop(running);
        let landing = Landing {
            flights: self.clone(),
            key,
            id,
        };
        let work = INTEREST.scope(interest.clone(), start());
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
        Ok((Waiter { joined, interest }, true))
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
    async fn a_flight_learns_when_its_last_waiter_leaves_and_is_not_joined_after() {
        let flights = Arc::new(Flights::default());
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let (first, _) = flights
            .join(FlightKey::Authorize, None, move || {
                Box::pin(async move {
                    abandoned().await;
                    let _ = stopped_tx.send(());
                    Err(Error::flow(Step::DeviceAuthorization, "stopped"))
                })
            })
            .unwrap();
        let (second, started) = flights
            .join(FlightKey::Authorize, None, || panic!("joined while someone waits"))
            .unwrap();
        assert!(!started);
        drop(first);
        tokio::task::yield_now().await;
        drop(second);
        stopped_rx.await.expect("the flight saw that nobody waits");
        // Whether or not the stopped flight has left the table yet, a new
        // request starts a flight of its own.
        let (third, started) = flights
            .join(FlightKey::Authorize, None, || Box::pin(async { Ok(()) }))
            .unwrap();
        assert!(started);
        third.await.unwrap();
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
