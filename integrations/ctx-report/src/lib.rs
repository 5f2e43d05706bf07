//! How the ctx integrations record a stop: one `tracing` event in the span of the call that
//! was stopped, and to the subscriber current at that call, even when the stop ends elsewhere
//! (a blocking thread, a spawned clean-up task), with the context's cause and where its end
//! came from.
//!
//! Take a [`Report`] when the work starts, if a subscriber may listen; [`emit`](Report::emit)
//! from wherever the stop ends. The event itself is written by the integration (its target,
//! message and fields are the integration's):
//!
//! ```
//! use ctx_core::Context;
//! use ctx_report::Report;
//!
//! let (events, _guard) = ctx_test_server::capture::capture();
//! let (ctx, cancel) = Context::background().with_cancel();
//! let report = tracing::info_span!("request").in_scope(|| {
//!     Report::new(&ctx, tracing::enabled!(tracing::Level::DEBUG))
//! });
//! cancel.cancel_with_cause("client disconnected");
//! // On another thread, outside the span: the event still goes to the call's span.
//! std::thread::spawn(move || {
//!     if let Some(report) = &report {
//!         report.emit("the work was dropped", |cause, origin| {
//!             tracing::debug!(cause, origin, stop_ms = 1.5, "work stopped")
//!         });
//!     }
//! })
//! .join()
//! .unwrap();
//! let event = events.one("work stopped");
//! assert_eq!(event.span.as_deref(), Some("request"));
//! assert_eq!(event.str("cause"), "client disconnected");
//! ```

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

use std::panic::Location;

use ctx_core::{Context, ContextError};
use tracing::field::DisplayValue;

/// The origin of a context's end as an event's field: recorded as `file:line:column`.
pub type Origin = DisplayValue<&'static Location<'static>>;

/// What an event about a stopped call needs: its context, and the span and subscriber current
/// at the call.
#[derive(Debug)]
pub struct Report {
    ctx: Context,
    span: tracing::Span,
    dispatch: tracing::Dispatch,
}

impl Report {
    /// A report of the call now running under `ctx`, or `None` if `enabled` is false.
    ///
    /// `enabled` is `tracing::enabled!(Level)` written at the caller, so that the caller's
    /// target decides (a filter such as `ctx_sqlx=debug` names the integration, not this
    /// crate). With no subscriber listening, a call costs that check and nothing else.
    pub fn new(ctx: &Context, enabled: bool) -> Option<Report> {
        enabled.then(|| Report {
            ctx: ctx.clone(),
            span: tracing::Span::current(),
            dispatch: tracing::dispatcher::get_default(tracing::Dispatch::clone),
        })
    }

    /// The call's context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Runs `event` in the call's span, with the call's subscriber as the default, given the
    /// cause's text (the context's cause if it has ended, else `dropped`: the call was dropped
    /// while its context was live) and the origin of the end (`file:line:column`), if known.
    pub fn emit(&self, dropped: &str, event: impl FnOnce(&str, Option<Origin>)) {
        let cause = match self.ctx.err() {
            Some(err) => ContextError::new(&self.ctx, err).cause().to_string(),
            None => dropped.to_string(),
        };
        let origin = self
            .ctx
            .origin()
            .map(|origin| tracing::field::display(origin.location()));
        tracing::dispatcher::with_default(&self.dispatch, || {
            self.span.in_scope(|| event(&cause, origin));
        });
    }
}
