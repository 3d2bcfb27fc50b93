//! Core `tracing` events, handed to Python's `logging` (logger
//! `mcp_oauth_client`).
//!
//! Events happen on runtime threads that must not wait for the GIL, so a
//! layer queues them (bounded; the oldest are dropped) and whoever holds the
//! GIL anyway drains the queue: every native call on its way back to Python
//! and every call into a Python callback.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

const CAPACITY: usize = 1024;

static QUEUE: Mutex<VecDeque<(u8, String)>> = Mutex::new(VecDeque::new());
static PENDING: AtomicBool = AtomicBool::new(false);

struct Message {
    text: String,
    fields: String,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

struct QueueLayer;

impl<S: Subscriber> Layer<S> for QueueLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.target().starts_with("mcp_oauth_client") && *metadata.level() <= Level::DEBUG
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = match *event.metadata().level() {
            Level::ERROR => 40,
            Level::WARN => 30,
            Level::INFO => 20,
            Level::DEBUG => 10,
            Level::TRACE => 5,
        };
        let mut m = Message {
            text: String::new(),
            fields: String::new(),
        };
        event.record(&mut m);
        m.text.push_str(&m.fields);
        let mut q = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= CAPACITY {
            q.pop_front();
        }
        q.push_back((level, m.text));
        PENDING.store(true, Ordering::Release);
    }
}

/// Route the core's events to the queue (once per process; a host that set
/// its own global subscriber keeps it).
pub(crate) fn install() {
    let subscriber = tracing_subscriber::registry().with(QueueLayer);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Hand queued events to `logging`. Cheap when nothing is queued.
pub(crate) fn flush_logs_locked(py: Python<'_>) {
    if !PENDING.swap(false, Ordering::AcqRel) {
        return;
    }
    let drained: Vec<(u8, String)> = QUEUE.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
    let Ok(logging) = py.import("logging") else { return };
    let Ok(logger) = logging.call_method1("getLogger", ("mcp_oauth_client",)) else {
        return;
    };
    for (level, text) in drained {
        if logger
            .call_method1("isEnabledFor", (level,))
            .and_then(|b| b.is_truthy())
            .unwrap_or(false)
        {
            let _ = logger.call_method1("log", (level, "%s", text));
        }
    }
}

/// Hand the core's queued log events to the `mcp_oauth_client` logger.
#[pyfunction]
pub(crate) fn flush_logs(py: Python<'_>) {
    flush_logs_locked(py);
}
