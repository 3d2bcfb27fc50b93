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
//! A flight counts its waiters. A token request never stops for want of
//! them, but a person's step does: when the last request waiting for an
//! authorization goes away (every caller cancelled), the wait for the person
//! ends ([`while_awaited`]), the host's handler is dropped (so a C host hears
//! `cancel`), and the next request starts a new flight.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// What a running flight shares with its waiters.
struct FlightState {
    /// Requests waiting for the outcome. Raised only under the table's lock.
    waiters: tokio::sync::watch::Sender<usize>,
    /// Set (under the table's lock, with no waiter) when the flight gave up
    /// a person's step for want of waiters: requests no longer join it.
    abandoned: AtomicBool,
}

struct Running {
    id: u64,
    joined: Joined,
    state: Arc<FlightState>,
}

#[derive(Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<FlightKey, Running>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// A request's wait for a flight's outcome; dropping it before the outcome
/// (the request was cancelled) leaves the flight with one waiter fewer.
pub(crate) struct Waiter {
    joined: Joined,
    state: Arc<FlightState>,
}

impl Future for Waiter {
    type Output = Outcome;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        Pin::new(&mut self.joined).poll(cx)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.state.waiters.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The flight the current task runs, for [`while_awaited`].
struct InFlight {
    flights: Arc<Flights>,
    key: FlightKey,
    id: u64,
    state: Arc<FlightState>,
}

tokio::task_local! {
    static IN_FLIGHT: InFlight;
}

/// Run `wait` (a person's step) while some request still waits for the
/// flight it belongs to. When the last one goes away, `wait` is dropped and
/// an error says the authorization was abandoned; the flight no longer takes
/// new waiters, so the next request starts afresh. Outside a flight, `wait`
/// simply runs.
pub(crate) async fn while_awaited<T>(wait: impl Future<Output = Result<T>>) -> Result<T> {
    let Ok((flights, key, id, state)) =
        IN_FLIGHT.try_with(|f| (f.flights.clone(), f.key.clone(), f.id, f.state.clone()))
    else {
        return wait.await;
    };
    let mut rx = state.waiters.subscribe();
    let mut wait = std::pin::pin!(wait);
    loop {
        tokio::select! {
            biased;
            r = &mut wait => return r,
            _ = rx.wait_for(|n| *n == 0) => {
                // Decide under the table's lock, where waiters join: one that
                // joined since keeps the person's step going.
                let running = flights.running.lock().unwrap_or_else(|p| p.into_inner());
                if *state.waiters.borrow() == 0 {
                    state.abandoned.store(true, Ordering::SeqCst);
                    if running.get(&key).is_some_and(|r| r.id == id) {
                        drop(running);
                        flights.forget(&key, id);
                    }
                    tracing::info!("no request waits for the authorization any more: abandoning the person's step");
                    return Err(Error::handler(
                        Step::Callback,
                        "the authorization was abandoned: every request waiting for it was cancelled",
                    ));
                }
                // A request joined since: wait for it to leave in turn.
            }
        }
    }
}

/// Removes a flight from the table when its task ends, however it ends.
struct Landing {
    flights: Arc<Flights>,
    key: FlightKey,
    id: u64,
}

impl Drop for Landing {
    fn drop(&mut self) {
        self.flights.forget(&self.key, self.id);
    }
}

impl Flights {
    /// Remove flight `id` from the table if it is still there.
    fn forget(&self, key: &FlightKey, id: u64) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(key).is_some_and(|r| r.id == id) {
            running.remove(key);
        }
    }

    /// Join the flight for `key`, starting it with `start` when none runs.
    /// Returns the wait for its outcome and whether this call started it.
    pub(crate) fn join(
        self: &Arc<Self>,
        key: FlightKey,
        wrapper: Option<&TaskWrapper>,
        start: impl FnOnce() -> BoxFuture<'static, Outcome>,
    ) -> Result<(Waiter, bool)> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = running.get(&key).filter(|r| !r.state.abandoned.load(Ordering::SeqCst)) {
            r.state.waiters.send_modify(|n| *n += 1);
            let waiter = Waiter {
                joined: r.joined.clone(),
                state: r.state.clone(),
            };
            return Ok((waiter, false));
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
        let (waiters, _) = tokio::sync::watch::channel(1usize);
        let state = Arc::new(FlightState {
            waiters,
            abandoned: AtomicBool::new(false),
        });
        running.insert(
            key.clone(),
            Running {
                id,
                joined: joined.clone(),
                state: state.clone(),
            },
        );
        drop(running);
        let in_flight = InFlight {
            flights: self.clone(),
            key: key.clone(),
            id,
            state: state.clone(),
        };
        let landing = Landing {
            flights: self.clone(),
            key,
            id,
        };
        let work = IN_FLIGHT.scope(in_flight, start());
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
        Ok((Waiter { joined, state }, true))
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
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

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

    /// A flight whose body waits for a person, reporting when that wait is
    /// dropped and how it ended.
    fn person_flight(
        flights: &Arc<Flights>,
        dropped: tokio::sync::oneshot::Sender<()>,
        ended: tokio::sync::oneshot::Sender<Result<()>>,
    ) -> (Waiter, bool) {
        struct Tell(Option<tokio::sync::oneshot::Sender<()>>);
        impl Drop for Tell {
            fn drop(&mut self) {
                if let Some(t) = self.0.take() {
                    let _ = t.send(());
                }
            }
        }
        flights
            .join(FlightKey::Authorize, None, move || {
                Box::pin(async move {
                    let tell = Tell(Some(dropped));
                    let r = while_awaited(async move {
                        let _tell = tell;
                        std::future::pending::<Result<()>>().await
                    })
                    .await;
                    let _ = ended.send(r.clone());
                    r
                })
            })
            .unwrap()
    }

    #[tokio::test]
    async fn a_persons_step_is_abandoned_when_its_last_waiter_goes() {
        let flights = Arc::new(Flights::default());
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel();
        let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
        let (first, started) = person_flight(&flights, dropped_tx, ended_tx);
        assert!(started);
        let (second, started) = flights
            .join(FlightKey::Authorize, None, || panic!("a second run must not start"))
            .unwrap();
        assert!(!started);
        drop(first);
        // One request still waits: the person's step goes on.
        tokio::task::yield_now().await;
        let mut dropped_rx = dropped_rx;
        assert!(dropped_rx.try_recv().is_err(), "abandoned while a request still waited");
        drop(second);
        tokio::time::timeout(Duration::from_secs(10), dropped_rx)
            .await
            .expect("the person's wait was not dropped")
            .unwrap();
        let ended = ended_rx.await.unwrap().unwrap_err();
        assert!(ended.message().contains("abandoned"), "{}", ended.message());
        // The next request starts a new flight.
        let (third, started) = flights
            .join(FlightKey::Authorize, None, || Box::pin(async { Ok(()) }))
            .unwrap();
        assert!(started);
        third.await.unwrap();
    }

    #[tokio::test]
    async fn a_token_request_is_not_abandoned() {
        // Work outside `while_awaited` (a refresh, an exchange) runs to its
        // end without waiters, as before.
        let flights = Arc::new(Flights::default());
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let (joined, _) = flights
            .join(FlightKey::Ensure, None, move || {
                Box::pin(async move {
                    let _ = go_rx.await;
                    let _ = done_tx.send(());
                    Ok(())
                })
            })
            .unwrap();
        drop(joined);
        tokio::task::yield_now().await;
        go_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), done_rx)
            .await
            .expect("the flight did not finish")
            .unwrap();
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
