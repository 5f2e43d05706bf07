//! Graceful shutdown on SIGINT and SIGTERM: stop accepting, give the requests in flight a drain
//! deadline, then end them with a cause that names the signal.

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;

use ctx_core::{CancelHandle, Context};

/// The signal that asked a server to stop: the cause its requests' contexts end with when the
/// drain deadline passes (or at once, on a second signal). [`RequestEnd::of`](crate::RequestEnd::of)
/// reads it as [`RequestEnd::ShuttingDown`](crate::RequestEnd::ShuttingDown), so the requests
/// are answered `503` (gRPC: `UNAVAILABLE`), which a client may retry elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShutdownSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (what `kill`, systemd and Kubernetes send).
    Terminate,
    /// [`Shutdown::trigger`]: the program itself.
    Requested,
}

impl fmt::Display for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShutdownSignal::Interrupt => "server shutting down (SIGINT)",
            ShutdownSignal::Terminate => "server shutting down (SIGTERM)",
            ShutdownSignal::Requested => "server shutting down",
        })
    }
}

impl std::error::Error for ShutdownSignal {}

/// A server's graceful shutdown: two contexts, ended by SIGINT or SIGTERM.
///
/// - [`signalled`](Shutdown::signalled) resolves at the first signal: give it to the server
///   to stop accepting connections (`axum::serve(..).with_graceful_shutdown(..)`).
/// - [`context`](Shutdown::context) is the root of the requests' contexts (give it to
///   [`ContextLayer::new`](crate::ContextLayer::new)): it ends `grace` after the first signal,
///   or at once on a second one, with the signal as its cause, so the requests still running
///   then stop, queries and calls included, and are answered `503`.
///
/// ```no_run
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use ctx_http::{ContextLayer, Shutdown};
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let shutdown = Shutdown::on_signals(Duration::from_secs(10))?;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(ContextLayer::new(shutdown.context().clone()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app)
///     .with_graceful_shutdown(shutdown.signalled())
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Shutdown {
    signalled: Context,
    root: Context,
    trigger: tokio::sync::mpsc::UnboundedSender<ShutdownSignal>,
}

impl Shutdown {
    /// Listens for SIGINT and SIGTERM (Ctrl-C only, off Unix) from now on, on the current
    /// tokio runtime. Requests get `grace` to finish after the first signal.
    ///
    /// # Errors
    ///
    /// If the signal handlers cannot be installed.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub fn on_signals(grace: Duration) -> io::Result<Shutdown> {
        let signals = Signals::install()?;
        Ok(Shutdown::start(grace, Some(signals)))
    }

    /// A shutdown that only [`trigger`](Shutdown::trigger) starts: for tests, and for programs
    /// that decide by themselves when to stop.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctx_http::{RequestEnd, Shutdown, ShutdownSignal};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let shutdown = Shutdown::manual(Duration::from_secs(5));
    /// let (request, _handle) = shutdown.context().with_cancel(); // the layer makes one per request
    /// shutdown.trigger();
    /// shutdown.signalled().await; // stop accepting now...
    /// assert!(!request.is_done()); // ...while the requests in flight drain
    /// request.done().await; // 5 s later
    /// assert_eq!(request.cause().unwrap().to_string(), "server shutting down");
    /// assert_eq!(RequestEnd::of(&request), Some(RequestEnd::ShuttingDown));
    /// # let _ = ShutdownSignal::Terminate;
    /// # }
    /// ```
    pub fn manual(grace: Duration) -> Shutdown {
        Shutdown::start(grace, None)
    }

    fn start(grace: Duration, signals: Option<Signals>) -> Shutdown {
        let (signalled, signal_handle) = Context::background().with_cancel();
        let (root, root_handle) = Context::background().with_cancel();
        let (trigger, triggered) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(drive(grace, signals, triggered, signal_handle, root_handle));
        Shutdown {
            signalled,
            root,
            trigger,
        }
    }

    /// The root context of the requests: ends `grace` after the first signal, at once on the
    /// second, with the [`ShutdownSignal`] as its cause.
    pub fn context(&self) -> &Context {
        &self.root
    }

    /// Resolves at the first signal (at once if it has come): when to stop accepting.
    pub fn signalled(&self) -> impl Future<Output = ()> + Send + 'static {
        let done = self.signalled.done();
        async move {
            done.await;
        }
    }

    /// Whether a signal (or [`trigger`](Shutdown::trigger)) has come.
    pub fn is_signalled(&self) -> bool {
        self.signalled.is_done()
    }

    /// Starts the shutdown as a signal would (cause [`ShutdownSignal::Requested`]); a second
    /// call ends the requests at once.
    pub fn trigger(&self) {
        let _ = self.trigger.send(ShutdownSignal::Requested);
    }
}

/// The shutdown's task: the first signal ends `signalled`, the end of `grace` or a second
/// signal ends the root. It holds both handles, so it is what keeps both contexts live.
async fn drive(
    grace: Duration,
    mut signals: Option<Signals>,
    mut triggered: tokio::sync::mpsc::UnboundedReceiver<ShutdownSignal>,
    signalled: CancelHandle,
    root: CancelHandle,
) {
    let mut next = async || -> ShutdownSignal {
        tokio::select! {
            Some(signal) = triggered.recv() => signal,
            signal = async {
                match signals.as_mut() {
                    Some(signals) => signals.next().await,
                    None => std::future::pending().await,
                }
            } => signal,
        }
    };
    let first = next().await;
    signalled.cancel_with_cause(first);
    let cause = tokio::select! {
        () = tokio::time::sleep(grace) => first,
        second = next() => second,
    };
    root.cancel_with_cause(cause);
}

/// The process's termination signals.
#[derive(Debug)]
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    async fn next(&mut self) -> ShutdownSignal {
        #[cfg(unix)]
        {
            tokio::select! {
                Some(()) = self.interrupt.recv() => ShutdownSignal::Interrupt,
                Some(()) = self.terminate.recv() => ShutdownSignal::Terminate,
                else => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => ShutdownSignal::Interrupt,
                Err(_) => std::future::pending().await,
            }
        }
    }
}
