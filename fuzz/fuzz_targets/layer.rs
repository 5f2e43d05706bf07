//! `ContextLayer` called in-process on arbitrary requests: any set of headers (`grpc-timeout`
//! values well-formed or not, repeated, in any case; `content-type` for gRPC; anything else),
//! with or without a timeout and a `min_remaining`, under a parent context that is absent, live,
//! cancelled or has a deadline, around a service that takes a while to answer. On a paused
//! clock it checks that the layer never panics; that the request's deadline is exactly the
//! nearest of the parent's, the layer's timeout and the shortest well-formed `grpc-timeout`
//! (malformed values neither lengthen nor shorten it); that the service is called exactly when
//! the context is live and has `min_remaining` left; that a layer's own answer comes only once
//! the context has ended (or is refused for too little time), with the status it says; and that
//! the request's context has ended once the response is dropped. Half the runs have a tracing
//! subscriber that formats every event, so the warning about a hostile value is formatted too.

#![no_main]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ctx_core::Context;
use ctx_http::ContextLayer;
use ctx_http::grpc_timeout::parse_timeout;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

/// A span of time, from the usual to the absurd (beyond what an `Instant` can add).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Span {
    Millis(u16),
    Nanos(u64),
    Secs(u64),
}

impl Span {
    fn duration(self) -> Duration {
        match self {
            Span::Millis(ms) => Duration::from_millis(ms.into()),
            Span::Nanos(ns) => Duration::from_nanos(ns),
            Span::Secs(s) => Duration::from_secs(s),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Parent {
    /// The layer's root (background).
    Root,
    /// A live context in the request's extensions, as an outer layer puts there.
    Live,
    Cancelled,
    Deadline(Span),
}

#[derive(Arbitrary, Debug)]
enum Name {
    GrpcTimeout,
    /// `Grpc-Timeout`: header names are case-insensitive.
    GrpcTimeoutMixedCase,
    ContentType,
    Other(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    timeout: Option<Span>,
    min_remaining: Option<Span>,
    parent: Parent,
    headers: Vec<(Name, Vec<u8>)>,
    /// How long the service takes to answer.
    work: Span,
    log: bool,
}

/// The service: records the context it was given, answers after `work` with a marker header.
struct Slow {
    seen: Arc<Mutex<Option<Context>>>,
    work: Duration,
}

impl Service<Request<String>> for Slow {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<String>) -> Self::Future {
        let ctx = req
            .extensions()
            .get::<Context>()
            .expect("the request's context")
            .clone();
        *self.seen.lock().unwrap() = Some(ctx);
        let work = self.work;
        Box::pin(async move {
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
            let mut response = Response::new(String::from("served"));
            response
                .headers_mut()
                .insert("x-served", HeaderValue::from_static("1"));
            Ok(response)
        })
    }
}

fn run(input: Input) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let now = Instant::now();
        let mut request = Request::new(String::new());
        for (name, value) in &input.headers {
            let name = match name {
                Name::GrpcTimeout => HeaderName::from_static("grpc-timeout"),
                Name::GrpcTimeoutMixedCase => HeaderName::from_bytes(b"Grpc-Timeout").unwrap(),
                Name::ContentType => http::header::CONTENT_TYPE,
                Name::Other(bytes) => match HeaderName::from_bytes(bytes) {
                    Ok(name) => name,
                    Err(_) => continue,
                },
            };
            if let Ok(value) = HeaderValue::from_bytes(value) {
                request.headers_mut().append(name, value);
            }
        }
        // Kept alive until the end: dropping a handle would cancel the parent.
        let mut _parent_handle = None;
        let parent = match input.parent {
            Parent::Root => None,
            Parent::Live => {
                let (ctx, handle) = Context::background().with_cancel();
                _parent_handle = Some(handle);
                Some(ctx)
            }
            Parent::Cancelled => {
                let (ctx, handle) = Context::background().with_cancel();
                handle.cancel();
                Some(ctx)
            }
            Parent::Deadline(span) => {
                let (ctx, handle) = Context::background().with_timeout(span.duration());
                _parent_handle = Some(handle);
                Some(ctx)
            }
        };
        if let Some(parent) = &parent {
            request.extensions_mut().insert(parent.clone());
        }

        // What the request's deadline must be: the nearest of every bound that exists.
        let caller = request
            .headers()
            .get_all("grpc-timeout")
            .iter()
            .filter_map(|value| parse_timeout(value.as_bytes()).ok())
            .min();
        let bounds = [
            parent.as_ref().and_then(Context::deadline),
            input.timeout.and_then(|t| now.checked_add(t.duration())),
            caller.and_then(|c| now.checked_add(c)),
        ];
        let expected = bounds.into_iter().flatten().min();
        let parent_ended = parent.as_ref().is_some_and(|p| p.is_done());
        let too_near = match (input.min_remaining, expected) {
            (Some(min), Some(at)) => at.saturating_duration_since(now) < min.duration(),
            _ => false,
        };
        let ended_at_once = parent_ended || expected.is_some_and(|at| at <= now);

        let mut layer = ContextLayer::new(Context::background());
        if let Some(timeout) = input.timeout {
            layer = layer.timeout(timeout.duration());
        }
        if let Some(min) = input.min_remaining {
            layer = layer.min_remaining(min.duration());
        }
        let seen = Arc::new(Mutex::new(None));
        let work = input.work.duration().min(Duration::from_secs(3600));
        let mut service = layer.layer(Slow {
            seen: seen.clone(),
            work,
        });
        let response = service.call(request).await.unwrap();
        let answered_at = Instant::now();

        let seen = seen.lock().unwrap().take();
        // Called exactly when the context was live with enough time left.
        assert_eq!(seen.is_some(), !ended_at_once && !too_near, "{input:?}");
        if let Some(ctx) = &seen {
            assert_eq!(
                ctx.deadline(),
                expected,
                "the request's deadline for {input:?}"
            );
        }
        let grpc = response.headers().contains_key("grpc-status");
        if response.headers().contains_key("x-served") {
            assert!(seen.is_some());
            assert_eq!(response.status(), StatusCode::OK);
        } else {
            // The layer's own answer: the context had ended, or too little time was left.
            let status = response.status();
            if grpc {
                assert_eq!(status, StatusCode::OK);
            } else if seen.is_some() || !parent_ended {
                assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{input:?}");
            } else {
                assert!(matches!(
                    status,
                    StatusCode::GATEWAY_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE
                ));
            }
            if seen.is_some() {
                // It answered before the service did, so the deadline had passed by then.
                let at = expected.expect("a deadline ended the request");
                assert!(at <= answered_at && answered_at < now + work, "{input:?}");
            }
        }
        drop(response);
        drop(service);
        if let Some(ctx) = seen {
            assert!(ctx.is_done(), "the request's context outlived its response");
        }
    });
}

/// A subscriber that takes every event and formats all its fields.
struct Formatting;

impl tracing::Subscriber for Formatting {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write;
                let _ = write!(self.0, "{}={:?} ", field.name(), value);
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        std::hint::black_box(text.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fuzz_target!(|input: Input| {
    if input.log {
        tracing::subscriber::with_default(Formatting, || run(input));
    } else {
        run(input);
    }
});
