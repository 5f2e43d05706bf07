//! Deadlines and cancellation across services: `ContextLayer` reading the caller's
//! `grpc-timeout` (the nearer deadline wins, hostile values are logged and ignored, a spent
//! budget is refused), its gRPC answers, `send_ctx` sending the header, and
//! `ctx_tonic`. The three-service chain over real sockets is in
//! `examples/tests/three_services.rs`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{self, HeaderValue, StatusCode};
use ctx_core::{Context, Error, cancellable};
use ctx_http::grpc_timeout::{encode_timeout, parse_timeout};
use ctx_http::{ContextLayer, RequestEnd};
use ctx_reqwest::RequestBuilderExt;
use ctx_test_server::{BOUND, FOREVER, Server};
use http_body_util::BodyExt;
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

// ---------------------------------------------------------------------------------------------
// A subscriber that keeps the warnings, to see what the layer logs.

#[derive(Default, Clone)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut text = Text(String::new());
            event.record(&mut text);
            self.0.lock().unwrap().push(text.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// ---------------------------------------------------------------------------------------------
// The layer, in process, on the paused clock.

/// What the service behind the layer saw.
#[derive(Default, Clone)]
struct Seen {
    contexts: Arc<Mutex<Vec<Context>>>,
    calls: Arc<AtomicUsize>,
}

impl Seen {
    fn last(&self) -> Context {
        self.contexts
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the service was not called")
    }
}

/// A service behind `layer` that records its context and then waits `work` before answering.
fn service(
    layer: ContextLayer,
    seen: &Seen,
    work: Duration,
) -> impl Service<
    http::Request<Body>,
    Response = http::Response<ctx_http::ResponseBody<Body>>,
    Error = Infallible,
> + Clone {
    let seen = seen.clone();
    layer.layer(tower::service_fn(move |req: http::Request<Body>| {
        let seen = seen.clone();
        async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            let ctx = req.extensions().get::<Context>().unwrap().clone();
            seen.contexts.lock().unwrap().push(ctx);
            tokio::time::sleep(work).await;
            Ok::<_, Infallible>(http::Response::new(Body::from("answered")))
        }
    }))
}

fn request(timeouts: &[&[u8]]) -> http::Request<Body> {
    let mut req = http::Request::new(Body::empty());
    for value in timeouts {
        req.headers_mut()
            .append("grpc-timeout", HeaderValue::from_bytes(value).unwrap());
    }
    req
}

/// Sends `req` through `service` and collects the answer; warnings logged while the layer
/// handles the request go to `warnings`.
async fn send<S>(
    mut service: S,
    req: http::Request<Body>,
    warnings: &Warnings,
) -> (StatusCode, http::HeaderMap, String)
where
    S: Service<
            http::Request<Body>,
            Response = http::Response<ctx_http::ResponseBody<Body>>,
            Error = Infallible,
        >,
{
    service.ready().await.unwrap();
    // The layer reads the header in `call`, synchronously.
    let future = tracing::subscriber::with_default(warnings.clone(), || service.call(req));
    let response = future.await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// The time the request's context had left when the service got it.
fn left(ctx: &Context, since: Instant) -> Option<Duration> {
    ctx.deadline().map(|deadline| deadline - since)
}

/// The nearer of the layer's timeout and the caller's header ends the request, with the cause
/// that names it, and the client gets `504` with that cause.
#[tokio::test(start_paused = true)]
async fn the_nearer_of_the_callers_deadline_and_the_timeout_wins() {
    let cases: [(u64, &[u8], u64, RequestEnd); 3] = [
        (10_000, b"300m", 300, RequestEnd::CallerDeadlineExceeded),
        (1_000, b"5S", 1_000, RequestEnd::TimedOut),
        // Equal: the layer's own timeout is named.
        (2_000, b"2S", 2_000, RequestEnd::TimedOut),
    ];
    for (local_ms, header, ends_after_ms, end) in cases {
        let seen = Seen::default();
        let local = Duration::from_millis(local_ms);
        let layer = ContextLayer::new(Context::background()).timeout(local);
        let t0 = Instant::now();
        let (status, _, text) = send(
            service(layer, &seen, FOREVER),
            request(&[header]),
            &Warnings::default(),
        )
        .await;
        assert_eq!(
            (status, text),
            (StatusCode::GATEWAY_TIMEOUT, end.to_string())
        );
        let ends_after = Duration::from_millis(ends_after_ms);
        assert_eq!(t0.elapsed(), ends_after);
        let ctx = seen.last();
        assert_eq!(left(&ctx, t0), Some(ends_after));
        assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
        assert_eq!(RequestEnd::of(&ctx), Some(end));
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_local_timeout_the_callers_deadline_applies() {
    let seen = Seen::default();
    let t0 = Instant::now();
    send(
        service(
            ContextLayer::new(Context::background()),
            &seen,
            Duration::ZERO,
        ),
        request(&[b"2S"]),
        &Warnings::default(),
    )
    .await;
    assert_eq!(left(&seen.last(), t0), Some(Duration::from_secs(2)));

    // And without the header, no deadline at all.
    send(
        service(
            ContextLayer::new(Context::background()),
            &seen,
            Duration::ZERO,
        ),
        request(&[]),
        &Warnings::default(),
    )
    .await;
    assert_eq!(seen.last().deadline(), None);
}

/// Several `grpc-timeout` headers: the shortest well-formed one counts.
#[tokio::test(start_paused = true)]
async fn of_several_headers_the_shortest_counts() {
    let seen = Seen::default();
    let warnings = Warnings::default();
    let t0 = Instant::now();
    send(
        service(
            ContextLayer::new(Context::background()),
            &seen,
            Duration::ZERO,
        ),
        request(&[b"9S", b"1x", b"250m", b"3S"]),
        &warnings,
    )
    .await;
    assert_eq!(left(&seen.last(), t0), Some(Duration::from_millis(250)));
    assert_eq!(warnings.take().len(), 1, "the malformed value is logged");
}

/// Malformed and hostile values: ignored (the local timeout stands), one warning each, no
/// panic, and the service is called as usual.
#[tokio::test(start_paused = true)]
async fn malformed_values_are_logged_and_ignored() {
    let hostile: &[&[u8]] = &[
        b"",
        b"S",
        b"m",
        b"1",
        b"123456789S",
        b"-1S",
        b"+1S",
        b"1.5S",
        b" 1S",
        b"1 S",
        b"1s",
        b"1h",
        b"0x10S",
        b"1e9n",
        b"\xff\xfeS",
        b"18446744073709551616S",
        &[b'9'; 4000],
    ];
    for value in hostile {
        let seen = Seen::default();
        let warnings = Warnings::default();
        let layer = ContextLayer::new(Context::background()).timeout(Duration::from_secs(10));
        let t0 = Instant::now();
        let answer = send(
            service(layer, &seen, Duration::ZERO),
            request(&[value]),
            &warnings,
        )
        .await;
        assert_eq!(answer.0, StatusCode::OK, "{value:?}");
        assert_eq!(
            left(&seen.last(), t0),
            Some(Duration::from_secs(10)),
            "{value:?} changed the deadline"
        );
        let logged = warnings.take();
        assert_eq!(logged.len(), 1, "{value:?}: {logged:?}");
        assert!(logged[0].contains("grpc-timeout"), "{logged:?}");
        assert!(
            logged[0].len() < 300,
            "a hostile value is logged in full: {logged:?}"
        );
    }
}

/// A well-formed value can be huge (`99999999H`, about 11,000 years): it never lengthens the
/// local timeout, nor does it overflow anything.
#[tokio::test(start_paused = true)]
async fn a_huge_value_never_lengthens_the_deadline() {
    for (local, expected) in [
        (Some(Duration::from_secs(10)), Some(Duration::from_secs(10))),
        (None, None),
    ] {
        let seen = Seen::default();
        let mut layer = ContextLayer::new(Context::background());
        if let Some(local) = local {
            layer = layer.timeout(local);
        }
        let t0 = Instant::now();
        let warnings = Warnings::default();
        send(
            service(layer, &seen, Duration::ZERO),
            request(&[b"99999999H"]),
            &warnings,
        )
        .await;
        let left = left(&seen.last(), t0);
        match expected {
            Some(expected) => assert_eq!(left, Some(expected)),
            // 11,000 years may or may not fit tokio's `Instant`: either no deadline or one
            // that far away.
            None => assert!(left.is_none_or(|left| left > Duration::from_secs(1 << 30))),
        }
        assert!(warnings.take().is_empty());
    }
}

/// A caller whose time has run out: answered at once, the service is never called.
#[tokio::test(start_paused = true)]
async fn a_spent_budget_is_refused_before_any_work() {
    for spent in [&b"0n"[..], b"0m", b"00000000S"] {
        let seen = Seen::default();
        let layer = ContextLayer::new(Context::background()).timeout(Duration::from_secs(10));
        let t0 = Instant::now();
        let answer = send(
            service(layer, &seen, FOREVER),
            request(&[spent]),
            &Warnings::default(),
        )
        .await;
        assert_eq!(
            (answer.0, answer.2.as_str()),
            (StatusCode::GATEWAY_TIMEOUT, "caller's deadline exceeded")
        );
        assert_eq!(
            seen.calls.load(Ordering::SeqCst),
            0,
            "the service was called"
        );
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }
}

fn grpc_request(timeout: Option<&str>) -> http::Request<Body> {
    let mut req = http::Request::post("/ctx.demo.Catalog/SlowAlbums")
        .header("content-type", "application/grpc")
        .body(Body::empty())
        .unwrap();
    if let Some(timeout) = timeout {
        req.headers_mut()
            .insert("grpc-timeout", HeaderValue::from_str(timeout).unwrap());
    }
    req
}

fn grpc_status(headers: &http::HeaderMap) -> (&str, &str) {
    (
        headers["grpc-status"].to_str().unwrap(),
        headers
            .get("grpc-message")
            .map_or("", |m| m.to_str().unwrap()),
    )
}

/// A gRPC call whose context ends first gets a gRPC answer: HTTP 200, no body, the status in
/// `grpc-status`, the cause in `grpc-message`.
#[tokio::test(start_paused = true)]
async fn grpc_calls_are_answered_in_grpc_terms() {
    // The caller's deadline passes.
    let seen = Seen::default();
    let (status, headers, body) = send(
        service(ContextLayer::new(Context::background()), &seen, FOREVER),
        grpc_request(Some("100m")),
        &Warnings::default(),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(grpc_status(&headers), ("4", "caller's deadline exceeded"));

    // A budget already spent: the same, and the service is not called.
    let seen = Seen::default();
    let (_, headers, _) = send(
        service(ContextLayer::new(Context::background()), &seen, FOREVER),
        grpc_request(Some("0n")),
        &Warnings::default(),
    )
    .await;
    assert_eq!(grpc_status(&headers), ("4", "caller's deadline exceeded"));
    assert_eq!(seen.calls.load(Ordering::SeqCst), 0);

    // Shutting down: UNAVAILABLE, which a gRPC client may retry elsewhere.
    let (root, shutdown) = Context::background().with_cancel();
    shutdown.cancel_with_cause(RequestEnd::ShuttingDown);
    let (_, headers, _) = send(
        service(ContextLayer::new(root), &Seen::default(), FOREVER),
        grpc_request(None),
        &Warnings::default(),
    )
    .await;
    assert_eq!(grpc_status(&headers), ("14", "server shutting down"));

    // Any other cancel: CANCELLED, the cause percent-encoded as the spec asks.
    let (root, cancel) = Context::background().with_cancel();
    cancel.cancel_with_cause("100% done, déjà vu");
    let (_, headers, _) = send(
        service(ContextLayer::new(root), &Seen::default(), FOREVER),
        grpc_request(None),
        &Warnings::default(),
    )
    .await;
    assert_eq!(
        grpc_status(&headers),
        ("1", "100%25 done, d%C3%A9j%C3%A0 vu")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Whatever the header holds, the layer never panics and the request's deadline is the
    /// nearer of the local timeout and the value, if the value is well-formed.
    #[test]
    fn any_header_value_at_most_shortens_the_deadline(
        value in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..12),
            "[0-9]{1,9}[HMSmun]".prop_map(String::into_bytes),
        ],
        local_ms in 1u64..100_000,
    ) {
        let Ok(header) = HeaderValue::from_bytes(&value) else {
            return Ok(()); // not a header value at all: http refuses it before any layer
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let left = rt.block_on(async {
            let seen = Seen::default();
            let local = Duration::from_millis(local_ms);
            let layer = ContextLayer::new(Context::background()).timeout(local);
            let mut req = http::Request::new(Body::empty());
            req.headers_mut().insert("grpc-timeout", header);
            let t0 = Instant::now();
            send(service(layer, &seen, Duration::ZERO), req, &Warnings::default()).await;
            // A spent budget (`0S`) is refused without calling the service.
            let last = seen.contexts.lock().unwrap().last().cloned();
            last.map(|ctx| left(&ctx, t0).unwrap())
        });
        let local = Duration::from_millis(local_ms);
        let expected = match parse_timeout(&value) {
            Ok(caller) => caller.min(local),
            Err(_) => local,
        };
        prop_assert_eq!(left, Some(expected).filter(|left| !left.is_zero()));
    }
}

// ---------------------------------------------------------------------------------------------
// `send_ctx` sends the header, to a real server behind the layer.

#[tokio::test]
async fn send_ctx_sends_the_time_left_and_the_server_keeps_it() {
    let mut server = Server::start(Some(Duration::from_secs(60))).await;
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(10));
    let sent = Instant::now();
    let call = tokio::spawn(
        reqwest::Client::new()
            .get(server.url("/wait"))
            .send_ctx(&ctx),
    );
    let served = server.started().await;
    let transit = sent.elapsed();
    // Same process, same clock. The header carries the time left, not an instant (the two
    // machines' clocks need not agree), so the server counts it from when the request arrived:
    // its deadline is the client's, moved at most by the time the request took to get there.
    let (client, server_side) = (ctx.deadline().unwrap(), served.deadline().unwrap());
    assert!(
        server_side <= client + transit,
        "{server_side:?} is later than {client:?} + {transit:?}"
    );
    assert!(
        client - BOUND < server_side,
        "{server_side:?} vs {client:?}"
    );
    assert_eq!(RequestEnd::of(&served), None);
    call.abort();
}

#[tokio::test]
async fn send_ctx_without_a_deadline_sends_no_header() {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/",
        get(|headers: http::HeaderMap| async move { format!("{:?}", headers.get("grpc-timeout")) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();

    let response = client
        .get(&url)
        .send_ctx(&Context::background())
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "None");

    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(3600));
    let text = client
        .get(&url)
        .send_ctx(&ctx)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sent = text
        .strip_prefix("Some(\"")
        .and_then(|t| t.strip_suffix("\")"))
        .unwrap_or_else(|| panic!("no header: {text}"));
    let sent = parse_timeout(sent.as_bytes()).unwrap();
    assert!(sent <= Duration::from_secs(3600) && sent > Duration::from_secs(3600) - BOUND);
    assert_eq!(encode_timeout(Duration::from_secs(3600)), "3600000m");
    server.abort();
}

// ---------------------------------------------------------------------------------------------
// `ctx_tonic`, with a stand-in for a generated client's method.

#[tokio::test(start_paused = true)]
async fn tonic_call_sends_the_time_left_as_the_timeout() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(1500));
    tokio::time::advance(Duration::from_millis(500)).await;
    let response = ctx_tonic::call(&ctx, 7u32, |req: tonic::Request<u32>| async move {
        let timeout = req
            .metadata()
            .get("grpc-timeout")
            .unwrap()
            .to_str()
            .unwrap();
        Ok(tonic::Response::new(format!("{} {timeout}", req.get_ref())))
    })
    .await
    .unwrap();
    assert_eq!(response.into_inner(), "7 1000000u");

    // No deadline, no timeout.
    let response = ctx_tonic::call(&Context::background(), (), |req: tonic::Request<()>| {
        let sent = req.metadata().get("grpc-timeout").is_some();
        async move { Ok(tonic::Response::new(sent)) }
    })
    .await
    .unwrap();
    assert!(!response.into_inner());
}

#[tokio::test(start_paused = true)]
async fn tonic_call_under_an_ended_context_is_not_sent() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(10));
    tokio::time::advance(Duration::from_millis(10)).await;
    let sent = AtomicBool::new(false);
    let status = ctx_tonic::call(&ctx, (), |_: tonic::Request<()>| {
        sent.store(true, Ordering::SeqCst);
        async { Ok(tonic::Response::new(())) }
    })
    .await
    .unwrap_err();
    assert!(!sent.load(Ordering::SeqCst), "the call was made");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert_eq!(status.message(), "context deadline exceeded");
}

/// Dropped when the call's future is: shows that a cancel stops the call.
struct Flag(Arc<AtomicBool>);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn tonic_call_is_dropped_when_the_context_ends_and_says_why() {
    let (root, shutdown) = Context::background().with_cancel();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Flag(dropped.clone());
    let call = tokio::spawn(async move {
        ctx_tonic::call(&root, (), move |_: tonic::Request<()>| async move {
            let _flag = flag;
            tokio::time::sleep(FOREVER).await;
            Ok(tonic::Response::new(()))
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(!dropped.load(Ordering::SeqCst));
    shutdown.cancel_with_cause(RequestEnd::ShuttingDown);
    let status = call.await.unwrap().unwrap_err();
    assert!(
        dropped.load(Ordering::SeqCst),
        "the call's future was not dropped"
    );
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "server shutting down");
}

#[test]
fn tonic_context_without_the_layer_is_an_internal_status() {
    let request = tonic::Request::new(());
    let status = ctx_tonic::context(&request).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert!(
        status.message().contains("ContextLayer"),
        "{}",
        status.message()
    );
}

/// A `#[cancellable]` helper of a gRPC handler returns `Result<T, Status>` as is.
#[cancellable(timeout = "1s")]
async fn lookup(id: u32) -> Result<u32, tonic::Status> {
    if id == 0 {
        return Err(tonic::Status::not_found("no album 0"));
    }
    tokio::time::sleep(Duration::from_secs(id.into())).await;
    Ok(id)
}

#[tokio::test(start_paused = true)]
async fn a_cancellable_fn_returns_a_status() {
    let ctx = Context::background();
    assert_eq!(
        lookup(&ctx, 0).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let status = lookup(&ctx, 5).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::DeadlineExceeded, "context deadline exceeded")
    );
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    assert_eq!(
        lookup(&ctx, 1).await.unwrap_err().code(),
        tonic::Code::Cancelled
    );
    assert_eq!(Error::Canceled.to_string(), "context canceled");
}

/// tonic's channel enforces the timeout it sends and fails with `CANCELLED` "Timeout
/// expired" when it passes: `call` says why the context ended instead.
#[tokio::test(start_paused = true)]
async fn tonic_call_failing_as_the_context_ends_reports_the_context() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(100));
    let status = ctx_tonic::call(&ctx, (), |req: tonic::Request<()>| async move {
        let timeout = req
            .metadata()
            .get("grpc-timeout")
            .unwrap()
            .to_str()
            .unwrap();
        tokio::time::sleep(parse_timeout(timeout.as_bytes()).unwrap()).await;
        Err::<tonic::Response<()>, _>(tonic::Status::cancelled("Timeout expired"))
    })
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");

    // A failure while the context lives is the call's own.
    let status = ctx_tonic::call(&ctx, (), |_: tonic::Request<()>| async {
        Err::<tonic::Response<()>, _>(tonic::Status::not_found("no album 9"))
    })
    .await
    .unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::DeadlineExceeded,
        "the context has ended by now"
    );
    let (live, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
    let status = ctx_tonic::call(&live, (), |_: tonic::Request<()>| async {
        Err::<tonic::Response<()>, _>(tonic::Status::not_found("no album 9"))
    })
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
}
