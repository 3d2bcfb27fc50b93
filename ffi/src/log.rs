//! The host's log callback, fed by `tracing`: a subscriber layer that
//! forwards each event of this library (level, target, message with its
//! fields) to one process-wide callback. The core logs no secrets.

use std::ffi::{c_char, c_void};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::boundary::{self, to_cstring};
use crate::error::{Failure, mcp_oauth_result};

/// Severity of a log message. Passed to `mcp_oauth_set_log_callback` as a
/// `uint32_t` maximum: messages less severe (larger numbers) are not sent.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum mcp_oauth_log_level {
    /// Logging off (only as a maximum).
    Off = 0,
    /// Something failed.
    Error = 1,
    /// Something looks wrong but the library goes on.
    Warn = 2,
    /// The steps of the flow (discovery, registration, tokens obtained).
    Info = 3,
    /// Detail for debugging.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

/// Receives the library's log messages.
///
/// - `userdata`: as given to `mcp_oauth_set_log_callback`.
/// - `level`: the message's severity.
/// - `target`: where it comes from (a Rust module path such as
///   `"mcp_oauth_client::provider"`).
/// - `message`: one line: the message, then `key=value` fields.
///
/// Both strings are borrowed for the duration of the call. It is called on
/// whatever thread logs (the caller's thread inside a blocking call, or a
/// library thread), possibly concurrently. It must return quickly, must not
/// call `mcp_oauth_set_log_callback`, and a blocking function of this library
/// returns `MCP_OAUTH_RESULT_WOULD_DEADLOCK` from it.
pub type mcp_oauth_log_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: mcp_oauth_log_level,
        target: *const c_char,
        message: *const c_char,
    ),
>;

struct Sink {
    callback: unsafe extern "C" fn(*mut c_void, mcp_oauth_log_level, *const c_char, *const c_char),
    userdata: *mut c_void,
}
// The host promises (in the header) that its callback may run on any thread.
unsafe impl Send for Sink {}
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static MAX_LEVEL: AtomicU32 = AtomicU32::new(0);
static INSTALL: Once = Once::new();

fn level_of(l: &Level) -> mcp_oauth_log_level {
    match *l {
        Level::ERROR => mcp_oauth_log_level::Error,
        Level::WARN => mcp_oauth_log_level::Warn,
        Level::INFO => mcp_oauth_log_level::Info,
        Level::DEBUG => mcp_oauth_log_level::Debug,
        _ => mcp_oauth_log_level::Trace,
    }
}

/// Only this library's events are forwarded: other crates' logs (HTTP
/// internals) are not reviewed for secrets.
fn ours(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("mcp_oauth")
}

struct ForwardLayer;

impl<S: Subscriber> Layer<S> for ForwardLayer {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        // The level can change at any time, so ask on every event.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        ours(meta) && (level_of(meta.level()) as u32) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let Ok(sink) = SINK.read() else { return };
        let Some(sink) = sink.as_ref() else { return };
        let mut line = Line::default();
        event.record(&mut line);
        let message = to_cstring(&line.finish());
        let target = to_cstring(event.metadata().target());
        let level = level_of(event.metadata().level());
        // SAFETY: the host's callback with strings alive until it returns.
        unsafe { (sink.callback)(sink.userdata, level, target.as_ptr(), message.as_ptr()) };
    }
}

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Line {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else {
            format!("{}{}", self.message, self.fields)
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// Stop calling the process-wide callback (for `mcp_oauth_shutdown`).
pub(crate) fn remove_sink() {
    let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
    *sink = None;
    MAX_LEVEL.store(0, Ordering::Relaxed);
}

/// Send the library's log messages up to `max_level` (a
/// `mcp_oauth_log_level`; `MCP_OAUTH_LOG_LEVEL_OFF` or a NULL `callback`
/// turns logging off) to `callback`. Process-wide: replaces any previous
/// callback; once this returns, the previous callback is no longer running
/// and will not be called again. The first call installs the library's
/// `tracing` subscriber as the process's global one (a no-op if a Rust
/// component of the host already installed one).
///
/// Errors: `MCP_OAUTH_RESULT_INVALID_ARGUMENT` for an unknown level.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_set_log_callback(
    callback: mcp_oauth_log_callback,
    userdata: *mut c_void,
    max_level: u32,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        if max_level > mcp_oauth_log_level::Trace as u32 {
            return Err(Failure::invalid_argument(format!("unknown log level {max_level}")));
        }
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(ForwardLayer);
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
        *sink = callback.map(|callback| Sink { callback, userdata });
        let level = if sink.is_some() { max_level } else { 0 };
        MAX_LEVEL.store(level, Ordering::Relaxed);
        Ok(())
    })
}
