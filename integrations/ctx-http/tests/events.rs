//! The `tracing` event of `ContextLayer`: one `request ended early` per request whose context
//! ended before its response was done, with its fields and level; nothing for a request that
//! completes. In process, on the paused clock, with a capturing subscriber (and, for the
//! documented JSON shape, tracing-subscriber's JSON formatter).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http;
use axum::routing::get;
use ctx_core::Context;
use ctx_http::{ContextLayer, RequestEnd};
use ctx_test_server::capture::{Event, capture};
use ctx_test_server::{FOREVER, FirstChunkOnly};
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};
use tracing::{Instrument, Level};

const ENDED: &str = "request ended early";

/// A router whose `/albums/slow` waits forever (without watching its context) and whose
/// `/albums` answers at once, behind `layer`.
fn app(layer: ContextLayer) -> Router {
    Router::new()
        .route(
            "/albums/slow",
            get(|| async {
                tokio::time::sleep(FOREVER).await;
                "finished"
            }),
        )
        .route("/albums", get(|| async { "every album" }))
        .route(
            "/albums/stream",
            get(|| async { Body::new(FirstChunkOnly(Some("first".into()))) }),
        )
        .layer(layer)
}

async fn call(app: Router, request: http::Request<Body>) -> (http::StatusCode, String) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn get_request(uri: &str) -> http::Request<Body> {
    http::Request::get(uri).body(Body::empty()).unwrap()
}

/// `file:line:col`: the file, and the line.
fn file_and_line(origin: &str) -> (&str, u32) {
    let mut parts = origin.rsplitn(3, ':');
    let col = parts.next().unwrap();
    let line = parts.next().unwrap();
    let file = parts.next().unwrap();
    assert!(col.parse::<u32>().is_ok(), "{origin}");
    (file, line.parse().unwrap())
}

/// The fields every event has, with their types (the typed accessors panic otherwise).
fn assert_shape(event: &Event, cause: &str, path: &str) {
    assert_eq!(event.target, "ctx_http");
    assert_eq!(
        event.names(),
        ["cause", "elapsed_ms", "method", "origin", "path"]
    );
    assert_eq!(event.str("cause"), cause);
    assert_eq!(event.str("method"), "GET");
    assert_eq!(event.str("path"), path);
    let _ = event.u64("elapsed_ms");
    let _ = file_and_line(event.str("origin"));
}

/// The layer's own origins are in its source: where it cancels for a disconnect, where it
/// sets the timeout.
fn assert_origin_in_the_layer(event: &Event) {
    let (file, _) = file_and_line(event.str("origin"));
    assert!(
        file.ends_with("ctx-http/src/lib.rs"),
        "origin {}",
        event.str("origin")
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_hang_up_is_info() {
    let (events, _guard) = capture();
    let mut service = app(ContextLayer::new(Context::background()));
    let mut pending = Box::pin(service.call(get_request("/albums/slow?seconds=30")));
    // The handler is waiting: the client goes away after a second (hyper drops the future).
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut pending)
            .await
            .is_err()
    );
    assert!(events.named(ENDED).is_empty());
    drop(pending);

    let event = events.one(ENDED);
    assert_eq!(event.level, Level::INFO);
    assert_eq!(event.span, None);
    // The path, without the query.
    assert_shape(&event, "client disconnected", "/albums/slow");
    assert_origin_in_the_layer(&event);
}

#[tokio::test(start_paused = true)]
async fn a_body_dropped_before_its_end_is_one_hang_up() {
    let (events, _guard) = capture();
    let response = app(ContextLayer::new(Context::background()))
        .oneshot(get_request("/albums/stream"))
        .await
        .unwrap();
    let mut body = response.into_body();
    let _first = body.frame().await.unwrap().unwrap();
    assert!(events.named(ENDED).is_empty());
    drop(body);
    let event = events.one(ENDED);
    assert_eq!(event.level, Level::INFO);
    assert_shape(&event, "client disconnected", "/albums/stream");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_a_warning() {
    let (events, _guard) = capture();
    let layer = ContextLayer::new(Context::background()).timeout(Duration::from_secs(2));
    let (status, _) = call(app(layer), get_request("/albums/slow")).await;
    assert_eq!(status, http::StatusCode::GATEWAY_TIMEOUT);

    let event = events.one(ENDED);
    assert_eq!(event.level, Level::WARN);
    assert_shape(&event, "request timed out", "/albums/slow");
    assert_origin_in_the_layer(&event);
}

#[tokio::test(start_paused = true)]
async fn the_callers_deadline_is_a_warning() {
    let (events, _guard) = capture();
    let layer = ContextLayer::new(Context::background()).timeout(Duration::from_secs(30));
    let request = http::Request::get("/albums/slow")
        .header("grpc-timeout", "300m")
        .body(Body::empty())
        .unwrap();
    let (status, _) = call(app(layer), request).await;
    assert_eq!(status, http::StatusCode::GATEWAY_TIMEOUT);

    let event = events.one(ENDED);
    assert_eq!(event.level, Level::WARN);
    assert_shape(&event, "caller's deadline exceeded", "/albums/slow");
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_is_info_and_says_where_it_was_cancelled() {
    let (events, _guard) = capture();
    let (root, shutdown) = Context::background().with_cancel();
    let mut service = app(ContextLayer::new(root));
    let mut pending = Box::pin(service.call(get_request("/albums/slow")));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut pending)
            .await
            .is_err()
    );
    let line = line!() + 1; // the next line
    shutdown.cancel_with_cause(RequestEnd::ShuttingDown);
    let response = pending.await.unwrap();
    assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);

    let event = events.one(ENDED);
    assert_eq!(event.level, Level::INFO);
    assert_shape(&event, "server shutting down", "/albums/slow");
    assert_eq!(file_and_line(event.str("origin")), (file!(), line));
}

/// A request that arrives after the shutdown is answered at once, and reported too.
#[tokio::test(start_paused = true)]
async fn a_request_refused_after_shutdown_is_reported() {
    let (events, _guard) = capture();
    let (root, shutdown) = Context::background().with_cancel();
    shutdown.cancel_with_cause(RequestEnd::ShuttingDown);
    let (status, _) = call(app(ContextLayer::new(root)), get_request("/albums")).await;
    assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert_shape(&events.one(ENDED), "server shutting down", "/albums");
}

/// A handler that watches its context and answers after the timeout in its own words: its
/// request still ended early, and is reported once.
#[tokio::test(start_paused = true)]
async fn a_handler_answering_after_the_end_is_reported_once() {
    let (events, _guard) = capture();
    let app = Router::new()
        .route(
            "/",
            get(|ctx: ctx_http::RequestContext| async move {
                let _ = ctx.run(tokio::time::sleep(FOREVER)).await;
                "stopped"
            }),
        )
        .layer(ContextLayer::new(Context::background()).timeout(Duration::from_secs(1)));
    // The response future runs in a request span (as tower-http's `TraceLayer` does it), the
    // body is read outside it: the event, emitted as the body ends, is recorded in the span.
    let span = tracing::info_span!("request");
    let response = app
        .oneshot(get_request("/"))
        .instrument(span)
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert!(events.named(ENDED).is_empty());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"stopped");
    let event = events.one(ENDED);
    assert_eq!(event.level, Level::WARN);
    assert_shape(&event, "request timed out", "/");
    assert_eq!(event.span.as_deref(), Some("request"));
}

#[tokio::test(start_paused = true)]
async fn a_request_that_completes_emits_nothing() {
    let (events, _guard) = capture();
    let layer = ContextLayer::new(Context::background()).timeout(Duration::from_secs(2));
    let (status, body) = call(app(layer), get_request("/albums")).await;
    assert_eq!(
        (status, body.as_str()),
        (http::StatusCode::OK, "every album")
    );
    // Long after the timeout would have passed.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        events.from("ctx_http").is_empty(),
        "{:?}",
        events.from("ctx_http")
    );
}

// ---------------------------------------------------------------------------------------------
// The JSON shape (what an OpenTelemetry or log pipeline reads).

/// Lines written by tracing-subscriber's formatter.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

impl Lines {
    fn json(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn json_fields_are_typed_as_documented() {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("ctx_http=info"))
        .with_writer(lines.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A timeout, then a hang-up.
    let layer = ContextLayer::new(Context::background()).timeout(Duration::from_secs(2));
    let (status, _) = call(app(layer.clone()), get_request("/albums/slow")).await;
    assert_eq!(status, http::StatusCode::GATEWAY_TIMEOUT);
    let mut service = app(layer);
    let mut pending = Box::pin(service.call(get_request("/albums/slow?seconds=9")));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut pending)
            .await
            .is_err()
    );
    drop(pending);

    let events = lines.json();
    assert_eq!(events.len(), 2, "{events:#?}");
    for (event, level, cause) in [
        (&events[0], "WARN", "request timed out"),
        (&events[1], "INFO", "client disconnected"),
    ] {
        assert_eq!(event["level"], level);
        assert_eq!(event["target"], "ctx_http");
        let fields = &event["fields"];
        assert_eq!(fields["message"], ENDED);
        assert_eq!(fields["cause"], cause);
        assert_eq!(fields["method"], "GET");
        assert_eq!(fields["path"], "/albums/slow");
        assert!(fields["elapsed_ms"].is_u64(), "{fields}");
        let origin = fields["origin"].as_str().unwrap();
        let _ = file_and_line(origin);
    }
}
