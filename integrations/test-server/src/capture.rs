//! A capturing `tracing` subscriber for the tests of the integrations' events: every event,
//! with its level, target, message, typed fields and the span it was recorded in.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::subscriber::DefaultGuard;
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A field's value, with the type it was recorded with.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Recorded with `%` or `?`, or as a `&str`.
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// One event.
#[derive(Clone, Debug)]
pub struct Event {
    pub level: Level,
    pub target: String,
    pub message: String,
    pub fields: BTreeMap<String, Value>,
    /// The name of the span the event was recorded in, if any.
    pub span: Option<String>,
}

impl Event {
    /// The field `name`, recorded as text.
    pub fn str(&self, name: &str) -> &str {
        match self.fields.get(name) {
            Some(Value::Str(text)) => text,
            other => panic!("field {name} of {self:?} is not text: {other:?}"),
        }
    }

    /// The field `name`, recorded as a `u64`.
    pub fn u64(&self, name: &str) -> u64 {
        match self.fields.get(name) {
            Some(Value::U64(n)) => *n,
            other => panic!("field {name} of {self:?} is not a u64: {other:?}"),
        }
    }

    /// The field `name`, recorded as an `f64`.
    pub fn f64(&self, name: &str) -> f64 {
        match self.fields.get(name) {
            Some(Value::F64(n)) => *n,
            other => panic!("field {name} of {self:?} is not an f64: {other:?}"),
        }
    }

    /// The names of the fields, sorted (without `message`).
    pub fn names(&self) -> Vec<&str> {
        self.fields.keys().map(String::as_str).collect()
    }
}

/// The events seen so far.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    /// Every event seen so far whose message is `message`.
    pub fn named(&self, message: &str) -> Vec<Event> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event.message == message)
            .cloned()
            .collect()
    }

    /// Every event seen so far from `target` (a crate: `ctx_http`, ...).
    pub fn from(&self, target: &str) -> Vec<Event> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event.target == target)
            .cloned()
            .collect()
    }

    /// The one event whose message is `message` (panics if there are none or several).
    pub fn one(&self, message: &str) -> Event {
        let mut found = self.named(message);
        assert_eq!(found.len(), 1, "events {message:?}: {found:#?}");
        found.pop().unwrap()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.lock().unwrap().iter())
            .finish()
    }
}

struct Capture(Events);

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        self.fields.insert(field.name().to_string(), value);
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.put(field, Value::Str(format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::Str(value.to_string()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::U64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::I64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
}

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let span = ctx.event_span(event).map(|span| span.name().to_string());
        self.0.0.lock().unwrap().push(Event {
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            message: fields.message,
            fields: fields.fields,
            span,
        });
    }
}

/// Captures every event (all levels) of this thread, and of work that carries this thread's
/// subscriber along, until the guard is dropped.
pub fn capture() -> (Events, DefaultGuard) {
    let events = Events::default();
    // While only one dispatcher is registered, tracing-core decides a callsite's interest by
    // asking the default of whichever thread first reaches it: a test without a subscriber
    // that reaches an integration's callsite first, while one capturing test runs, makes it
    // "never" for every thread, and the capturing test misses its event (seen: ctx-sqlx's
    // `enabled!` at the start of a call, failing one run in two). A second dispatcher, silent
    // and kept for the whole process, makes tracing-core ask every registered dispatcher.
    static SILENT: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    SILENT.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    let subscriber = tracing_subscriber::registry().with(Capture(events.clone()));
    (events, tracing::subscriber::set_default(subscriber))
}
