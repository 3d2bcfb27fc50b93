//! The host's log callbacks, fed by `tracing`: a subscriber layer that
//! forwards each event of this library (level, target, message with its
//! fields) to the process-wide callback and to the callback of the provider
//! it comes from. A provider's work runs in a span naming the provider, which
//! is how an event is routed. The core logs no secrets.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_char, c_uint, c_void};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::boundary::{self, to_cstring};
use crate::callbacks::Userdata;
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
/// library thread), possibly concurrently. It must return quickly; from it,
/// `mcp_oauth_set_log_callback`, `mcp_oauth_shutdown` and every blocking
/// function of this library return `MCP_OAUTH_RESULT_WOULD_DEADLOCK`, and
/// what the library logs during a call made from it is not sent back to it.
pub type mcp_oauth_log_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: mcp_oauth_log_level,
        target: *const c_char,
        message: *const c_char,
    ),
>;

type LogFn = unsafe extern "C" fn(*mut c_void, mcp_oauth_log_level, *const c_char, *const c_char);

struct Sink {
    callback: LogFn,
    userdata: *mut c_void,
}
// The host promises (in the header) that its callback may run on any thread.
unsafe impl Send for Sink {}
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static MAX_LEVEL: AtomicU32 = AtomicU32::new(0);
/// Whether the library's subscriber is the process's global one.
static INSTALLED: OnceLock<bool> = OnceLock::new();

thread_local! {
    /// Set while this thread runs a host's log callback.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is inside a host's log callback: there the
/// process-wide callback's lock is held, so replacing the callback (or
/// shutting down) would wait for itself, and a blocking call would hold
/// every other thread's log messages.
pub(crate) fn inside_log_callback() -> bool {
    IN_CALLBACK.with(Cell::get)
}

/// Marks this thread as inside a log callback until dropped.
struct InCallback;

impl InCallback {
    fn enter() -> Self {
        IN_CALLBACK.with(|c| c.set(true));
        InCallback
    }
}

impl Drop for InCallback {
    fn drop(&mut self) {
        IN_CALLBACK.with(|c| c.set(false));
    }
}

/// The name of the span a provider's work runs in.
pub(crate) const PROVIDER_SPAN: &str = "mcp_oauth_provider";

/// The callbacks of providers that have one, by provider id.
static PROVIDERS: RwLock<Option<HashMap<u64, Arc<ProviderSink>>>> = RwLock::new(None);
/// The most verbose level any provider's callback asks for.
static PROVIDERS_MAX_LEVEL: AtomicU32 = AtomicU32::new(0);
static NEXT_PROVIDER_ID: AtomicU64 = AtomicU64::new(1);

/// A new provider id (never 0).
pub(crate) fn next_provider_id() -> u64 {
    NEXT_PROVIDER_ID.fetch_add(1, Ordering::Relaxed)
}

/// The span a provider's work runs in, which routes its events.
pub(crate) fn provider_span(id: u64) -> tracing::Span {
    tracing::error_span!(target: "mcp_oauth::provider", PROVIDER_SPAN, provider = id)
}

/// Install the library's subscriber as the process's global one, once;
/// whether it is (false when a Rust component of the host installed its own
/// first).
fn install() -> bool {
    *INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(ForwardLayer);
        tracing::subscriber::set_global_default(subscriber).is_ok()
    })
}

fn not_installed() -> Failure {
    Failure::local(
        mcp_oauth_result::InvalidConfiguration,
        "the library cannot forward its log messages: another tracing subscriber is the process's global one \
         (installed by a Rust component of the host), and the messages go to it",
    )
}

/// A provider's own log callback.
pub(crate) struct ProviderSink {
    callback: LogFn,
    max_level: u32,
    userdata: Userdata,
}
// As for `Sink`.
unsafe impl Send for ProviderSink {}
unsafe impl Sync for ProviderSink {}

/// The version of `mcp_oauth_log_options` this header describes.
pub const MCP_OAUTH_LOG_OPTIONS_VERSION: c_uint = 1;

/// A provider's own log callback, set with
/// `mcp_oauth_config_builder_set_log_options`: it receives the messages of
/// that provider's work only (its refreshes, flows and requests), which the
/// process-wide callback also receives. Initialize it with
/// `MCP_OAUTH_LOG_OPTIONS_INIT` (a versioned struct: see "Versioned
/// structs").
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mcp_oauth_log_options {
    /// `MCP_OAUTH_LOG_OPTIONS_VERSION` (set by `MCP_OAUTH_LOG_OPTIONS_INIT`).
    pub version: c_uint,
    /// Passed to `callback` and `release` as is.
    pub userdata: *mut c_void,
    /// Receives the provider's messages, as `mcp_oauth_log_callback` does
    /// (the same threads and rules). Required.
    pub callback: mcp_oauth_log_callback,
    /// The most verbose level sent (a `mcp_oauth_log_level`); 0 sends
    /// nothing.
    pub max_level: u32,
    /// Called exactly once per `userdata` when the library will make no more
    /// calls with it, counted as for `mcp_oauth_storage_callbacks.release`.
    /// May run on any thread. Optional.
    pub release: Option<unsafe extern "C" fn(userdata: *mut c_void)>,
}

const MCP_OAUTH_LOG_OPTIONS_SIZES: &[usize] = &[size_of::<mcp_oauth_log_options>()];

impl ProviderSink {
    /// From the host's options (read according to their version).
    pub(crate) unsafe fn new(options: *const mcp_oauth_log_options) -> Result<Self, Failure> {
        // SAFETY: the caller passes a readable struct of the version it says.
        let o = unsafe { crate::versioned::read(options, "options", MCP_OAUTH_LOG_OPTIONS_SIZES) }?;
        let callback = o.callback.ok_or_else(|| Failure::null("options->callback"))?;
        if o.max_level > mcp_oauth_log_level::Trace as u32 {
            return Err(Failure::invalid_argument(format!("unknown log level {}", o.max_level)));
        }
        if !install() {
            return Err(not_installed());
        }
        Ok(ProviderSink {
            callback,
            max_level: o.max_level,
            userdata: Userdata::new(o.userdata, o.release),
        })
    }
}

/// Send provider `id`'s events to `sink` from now on.
pub(crate) fn register_provider(id: u64, sink: ProviderSink) {
    let mut providers = PROVIDERS.write().unwrap_or_else(|p| p.into_inner());
    providers.get_or_insert_with(HashMap::new).insert(id, Arc::new(sink));
    update_providers_max(providers.as_ref());
}

/// Stop sending provider `id`'s events (its sink is released once no event
/// is being delivered to it).
pub(crate) fn unregister_provider(id: u64) {
    let removed = {
        let mut providers = PROVIDERS.write().unwrap_or_else(|p| p.into_inner());
        let removed = providers.as_mut().and_then(|m| m.remove(&id));
        update_providers_max(providers.as_ref());
        removed
    };
    // Released here, outside the lock, unless an event holds it.
    drop(removed);
}

fn update_providers_max(providers: Option<&HashMap<u64, Arc<ProviderSink>>>) {
    let max = providers
        .into_iter()
        .flat_map(|m| m.values())
        .map(|s| s.max_level)
        .max()
        .unwrap_or(0);
    PROVIDERS_MAX_LEVEL.store(max, Ordering::Relaxed);
}

/// Which provider a span belongs to (an extension of the provider's span).
struct ProviderId(u64);

struct IdVisitor(Option<u64>);

impl Visit for IdVisitor {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "provider" {
            self.0 = Some(value);
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

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

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ForwardLayer {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        // The levels can change at any time, so ask on every event.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        if !ours(meta) {
            return false;
        }
        if meta.is_span() {
            // Provider spans route events; they are not sent themselves.
            return meta.name() == PROVIDER_SPAN;
        }
        let max = MAX_LEVEL
            .load(Ordering::Relaxed)
            .max(PROVIDERS_MAX_LEVEL.load(Ordering::Relaxed));
        (level_of(meta.level()) as u32) <= max
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != PROVIDER_SPAN {
            return;
        }
        let mut visitor = IdVisitor(None);
        attrs.record(&mut visitor);
        if let (Some(provider), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().insert(ProviderId(provider));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // What the library logs while a host's log callback runs (a call
        // the callback made) is not sent to the host: that would re-enter
        // its callback and take the callback's lock again on this thread.
        if inside_log_callback() {
            return;
        }
        let level = level_of(event.metadata().level());
        let provider = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<ProviderId>().map(|p| p.0))
        });
        let provider_sink = provider.and_then(|id| {
            let providers = PROVIDERS.read().ok()?;
            providers
                .as_ref()?
                .get(&id)
                .filter(|s| level as u32 <= s.max_level)
                .cloned()
        });
        let global = (level as u32) <= MAX_LEVEL.load(Ordering::Relaxed);
        if provider_sink.is_none() && !global {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        let text = line.finish();
        let target = to_cstring(event.metadata().target());
        if let Some(sink) = provider_sink {
            let message = to_cstring(&text);
            let _inside = InCallback::enter();
            // SAFETY: the host's callback with strings alive until it
            // returns; the Arc keeps its userdata from being released.
            unsafe { (sink.callback)(sink.userdata.ptr(), level, target.as_ptr(), message.as_ptr()) };
        }
        if global {
            let Ok(sink) = SINK.read() else { return };
            let Some(sink) = sink.as_ref() else { return };
            let message = match provider {
                Some(id) => to_cstring(&format!("{text} provider={id}")),
                None => to_cstring(&text),
            };
            let _inside = InCallback::enter();
            // SAFETY: the host's callback with strings alive until it returns.
            unsafe { (sink.callback)(sink.userdata, level, target.as_ptr(), message.as_ptr()) };
        }
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
/// and will not be called again. A message from a provider's work ends with
/// ` provider=N`, N being its `mcp_oauth_provider_id` (a provider can also
/// have a callback of its own: `mcp_oauth_config_builder_set_log_options`).
///
/// The first call installs the library's `tracing` subscriber as the
/// process's global one. When a Rust component of the host installed one
/// first, the library's messages go to that one instead, and this returns
/// `MCP_OAUTH_RESULT_INVALID_CONFIGURATION` (the callback is set, but will
/// not be called).
///
/// Called from inside a log callback (the process-wide one or a
/// provider's), it changes nothing and returns
/// `MCP_OAUTH_RESULT_WOULD_DEADLOCK`: the callback's lock is held there.
/// What the library logs during a call made from inside a log callback is
/// not sent to the log callbacks.
///
/// Errors: `MCP_OAUTH_RESULT_INVALID_ARGUMENT` for an unknown level,
/// `MCP_OAUTH_RESULT_INVALID_CONFIGURATION` when the subscriber cannot be
/// installed, `MCP_OAUTH_RESULT_WOULD_DEADLOCK` from inside a log callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mcp_oauth_set_log_callback(
    callback: mcp_oauth_log_callback,
    userdata: *mut c_void,
    max_level: u32,
) -> mcp_oauth_result {
    boundary::guard_code(|| {
        if inside_log_callback() {
            return Err(Failure::would_deadlock());
        }
        if max_level > mcp_oauth_log_level::Trace as u32 {
            return Err(Failure::invalid_argument(format!("unknown log level {max_level}")));
        }
        let installed = install();
        let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
        *sink = callback.map(|callback| Sink { callback, userdata });
        let level = if sink.is_some() { max_level } else { 0 };
        MAX_LEVEL.store(level, Ordering::Relaxed);
        if !installed && level > 0 {
            return Err(not_installed());
        }
        Ok(())
    })
}
