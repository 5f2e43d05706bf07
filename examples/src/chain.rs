//! Three services, one deadline, one hang-up (`cargo run --example three_services`):
//!
//! ```text
//!  client ──HTTP──▶ A: edge ──gRPC──▶ B: catalog ──HTTP──▶ C: albums ──SQL──▶ SQLite
//!                   (axum)            (tonic)             (axum, the album server)
//! ```
//!
//! - **A** (axum) gives each request a context with a time budget ([`ContextLayer`]'s
//!   timeout), and calls B with [`ctx_tonic::call`], which sends the time left as the
//!   call's `grpc-timeout`.
//! - **B** (tonic) serves behind the same [`ContextLayer`], so its call's context ends at the
//!   caller's deadline or when A resets the call; it calls C with
//!   [`send_ctx`](ctx_reqwest::RequestBuilderExt::send_ctx), which sends the time left
//!   again.
//! - **C** is the album server of [`router`]: its query runs under a context
//!   whose deadline is the caller's, and is stopped inside the database when the context ends.
//!
//! So a budget set at A is the deadline of C's query (less the time spent on the way), and a
//! client that hangs up on A stops C's query: A's handler is dropped, which resets the gRPC
//! call, which ends B's context with `client disconnected`, which aborts B's HTTP call, which
//! ends C's context with `client disconnected`, which interrupts SQLite.
//!
//! [`Chain::start`] runs the three on 127.0.0.1 in one runtime. Each can also run on its own,
//! on a listener and toward an address of the caller's choosing: C is [`serve_http`] of
//! [`router`], B is [`serve_catalog`] of a [`Catalog`] that asks C, and A is [`serve_http`] of
//! an [`edge_router`] whose channel ([`catalog_channel`]) leads to B (the network fault tests
//! run each in a network namespace of its own).
//!
//! B's gRPC service is written by hand (what `tonic-build` would generate from the `.proto`
//! below, in a few lines), so the example needs no `protoc`:
//!
//! ```proto
//! syntax = "proto3";
//! package ctx.demo;
//! service Catalog { rpc SlowAlbums(SlowAlbumsRequest) returns (AlbumList); }
//! message SlowAlbumsRequest { double seconds = 1; }
//! message Album { int64 id = 1; string title = 2; string artist = 3; double price = 4; }
//! message AlbumList { repeated Album albums = 1; }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::uri::PathAndQuery;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ctx_core::{CancelHandle, Context, cancellable};
use ctx_http::{ContextLayer, RequestContext, RequestEnd};
use ctx_reqwest::RequestBuilderExt;
use serde::Deserialize;
use tokio::net::TcpListener;
use tonic::Status;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

use crate::{Album, App, ServiceSpan, router};

/// The messages of the `ctx.demo.Catalog` gRPC service.
pub mod proto {
    /// `SlowAlbums`' request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SlowAlbumsRequest {
        /// How long the query at the bottom of the chain takes.
        #[prost(double, tag = "1")]
        pub seconds: f64,
    }

    /// One album.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Album {
        /// The key.
        #[prost(int64, tag = "1")]
        pub id: i64,
        /// The title.
        #[prost(string, tag = "2")]
        pub title: String,
        /// Who made it.
        #[prost(string, tag = "3")]
        pub artist: String,
        /// Its price, in dollars.
        #[prost(double, tag = "4")]
        pub price: f64,
    }

    /// `SlowAlbums`' answer.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AlbumList {
        /// Every album.
        #[prost(message, repeated, tag = "1")]
        pub albums: Vec<Album>,
    }
}

impl From<Album> for proto::Album {
    fn from(album: Album) -> proto::Album {
        let Album {
            id,
            title,
            artist,
            price,
        } = album;
        proto::Album {
            id,
            title,
            artist,
            price,
        }
    }
}

impl From<proto::Album> for Album {
    fn from(album: proto::Album) -> Album {
        let proto::Album {
            id,
            title,
            artist,
            price,
        } = album;
        Album {
            id,
            title,
            artist,
            price,
        }
    }
}

const SLOW_ALBUMS: &str = "/ctx.demo.Catalog/SlowAlbums";

// ---------------------------------------------------------------------------------------------
// B: the gRPC catalog, which asks C.

/// B's state: where C is, and how many calls B has taken (tests read it).
#[derive(Debug)]
pub struct Catalog {
    albums_url: String,
    http: reqwest::Client,
    /// Calls whose handler started (what a metrics endpoint would count).
    pub calls: AtomicUsize,
}

impl Catalog {
    /// A catalog that asks the album server at `albums_url` (`http://host:port`).
    pub fn new(albums_url: String) -> Catalog {
        Catalog {
            albums_url,
            http: reqwest::Client::new(),
            calls: AtomicUsize::new(0),
        }
    }

    /// `SlowAlbums`: C's `GET /albums/slow`, under the call's context.
    async fn slow_albums(
        &self,
        request: tonic::Request<proto::SlowAlbumsRequest>,
    ) -> Result<tonic::Response<proto::AlbumList>, Status> {
        let ctx = ctx_tonic::context(&request)?;
        self.calls.fetch_add(1, Ordering::SeqCst);
        let seconds = request.into_inner().seconds;
        let albums = self.ask_albums(&ctx, seconds).await?;
        Ok(tonic::Response::new(proto::AlbumList {
            albums: albums.into_iter().map(proto::Album::from).collect(),
        }))
    }

    /// C's answer, as a gRPC status if it is not the albums.
    #[cancellable(timeout = "5s")]
    async fn ask_albums(&self, seconds: f64) -> Result<Vec<Album>, Status> {
        let url = format!("{}/albums/slow?seconds={seconds}", self.albums_url);
        let stopped = |err: ctx_reqwest::Error| match err.context_err() {
            Some(end) => ctx_tonic::status(ctx, end),
            None => Status::unavailable(format!("the album server failed: {err}")),
        };
        let response = self.http.get(url).send_ctx(ctx).await.map_err(stopped)?;
        match response.status() {
            StatusCode::OK => ctx_reqwest::run(ctx, response.json())
                .await
                .map_err(stopped),
            status => {
                let text = ctx_reqwest::run(ctx, response.text())
                    .await
                    .unwrap_or_default();
                let message = format!("the album server answered {status}: {text}");
                Err(match status {
                    StatusCode::GATEWAY_TIMEOUT => Status::deadline_exceeded(message),
                    StatusCode::SERVICE_UNAVAILABLE => Status::unavailable(message),
                    _ => Status::internal(message),
                })
            }
        }
    }
}

/// B as a tonic service: what `tonic-build` generates, by hand.
#[derive(Clone, Debug)]
pub struct CatalogServer(pub Arc<Catalog>);

impl tonic::server::NamedService for CatalogServer {
    const NAME: &'static str = "ctx.demo.Catalog";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<B> tower_service::Service<axum::http::Request<B>> for CatalogServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        if req.uri().path() != SLOW_ALBUMS {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let method = SlowAlbumsMethod(self.0.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
            Ok(grpc.unary(method, req).await)
        })
    }
}

/// The `SlowAlbums` method of [`CatalogServer`].
struct SlowAlbumsMethod(Arc<Catalog>);

impl tonic::server::UnaryService<proto::SlowAlbumsRequest> for SlowAlbumsMethod {
    type Response = proto::AlbumList;
    type Future = BoxFuture<Result<tonic::Response<proto::AlbumList>, Status>>;

    fn call(&mut self, request: tonic::Request<proto::SlowAlbumsRequest>) -> Self::Future {
        let catalog = self.0.clone();
        Box::pin(async move { catalog.slow_albums(request).await })
    }
}

/// A client of B: `SlowAlbums` under `ctx`, which sends the time left and resets the call if
/// `ctx` ends first.
pub async fn slow_albums(
    ctx: &Context,
    channel: &Channel,
    seconds: f64,
) -> Result<Vec<proto::Album>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    let request = proto::SlowAlbumsRequest { seconds };
    let response = ctx_tonic::call(ctx, request, |request| async move {
        grpc.ready()
            .await
            .map_err(|err| Status::unavailable(format!("the catalog is unreachable: {err}")))?;
        let codec = ProstCodec::<proto::SlowAlbumsRequest, proto::AlbumList>::default();
        grpc.unary(request, PathAndQuery::from_static(SLOW_ALBUMS), codec)
            .await
    })
    .await?;
    Ok(response.into_inner().albums)
}

// ---------------------------------------------------------------------------------------------
// A: the HTTP edge, which asks B.

/// A's state: its channel to B.
#[derive(Clone, Debug)]
struct Edge {
    catalog: Channel,
}

/// A's routes: `GET /albums/slow?seconds=N`, each request with `budget` to live.
pub fn edge_router(catalog: Channel, root: Context, budget: Duration) -> Router {
    Router::new()
        .route("/albums/slow", get(edge_slow_albums))
        .with_state(Edge { catalog })
        .layer(ContextLayer::new(root).timeout(budget))
}

#[derive(Deserialize)]
struct Slow {
    seconds: f64,
}

/// A gRPC status as A's answer.
struct EdgeError(Status);

impl IntoResponse for EdgeError {
    fn into_response(self) -> Response {
        let status = match self.0.code() {
            tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            tonic::Code::Cancelled | tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        (status, self.0.message().to_string()).into_response()
    }
}

async fn edge_slow_albums(
    ctx: RequestContext,
    State(edge): State<Edge>,
    Query(slow): Query<Slow>,
) -> Result<Json<Vec<Album>>, EdgeError> {
    let albums = slow_albums(&ctx, &edge.catalog, slow.seconds)
        .await
        .map_err(EdgeError)?;
    Ok(Json(albums.into_iter().map(Album::from).collect()))
}

// ---------------------------------------------------------------------------------------------
// The three together.

/// The three services, running on 127.0.0.1. Dropping it shuts them down.
#[derive(Debug)]
pub struct Chain {
    /// A, the edge: `http://{edge}/albums/slow?seconds=N`.
    pub edge: SocketAddr,
    /// B, the gRPC catalog.
    pub catalog: SocketAddr,
    /// C, the album server.
    pub albums: SocketAddr,
    /// B's state.
    pub catalog_state: Arc<Catalog>,
    /// C's state.
    pub albums_state: Arc<App>,
    shutdown: CancelHandle,
}

impl Chain {
    /// Starts C over `app`, then B, then A with `budget` per request, on `127.0.0.1:{port}`
    /// for the given ports (`0`: any free port).
    pub async fn start(app: App, budget: Duration, ports: [u16; 3]) -> std::io::Result<Chain> {
        let (root, shutdown) = Context::background().with_cancel();
        let bind = |port: u16| TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)));
        let [edge_port, catalog_port, albums_port] = ports;

        // C: the album server, no timeout of its own but its handlers' 5 s.
        let albums_listener = bind(albums_port).await?;
        let albums = albums_listener.local_addr()?;
        let albums_state = Arc::new(app);
        let routes = router(albums_state.clone(), root.clone(), None).layer(ServiceSpan("C"));
        tokio::spawn(serve_http(albums_listener, routes, root.clone()));

        // B: the catalog, behind ContextLayer like any HTTP service.
        let catalog_listener = bind(catalog_port).await?;
        let catalog = catalog_listener.local_addr()?;
        let catalog_state = Arc::new(Catalog::new(format!("http://{albums}")));
        tokio::spawn(serve_catalog(
            catalog_listener,
            catalog_state.clone(),
            root.clone(),
        ));

        // A: the edge, with the budget.
        let edge_listener = bind(edge_port).await?;
        let edge = edge_listener.local_addr()?;
        let channel = catalog_channel(catalog);
        tokio::spawn(serve_http(
            edge_listener,
            edge_router(channel, root.clone(), budget).layer(ServiceSpan("A")),
            root,
        ));

        Ok(Chain {
            edge,
            catalog,
            albums,
            catalog_state,
            albums_state,
            shutdown,
        })
    }

    /// Ends every request in flight with "server shutting down" and stops the servers.
    pub fn shut_down(self) {
        self.shutdown.cancel_with_cause(RequestEnd::ShuttingDown);
    }
}

/// Serves B on `listener` until `root` ends: the catalog behind [`ContextLayer`] (children of
/// `root`, no timeout of their own: the caller's `grpc-timeout` is the deadline).
pub async fn serve_catalog(listener: TcpListener, catalog: Arc<Catalog>, root: Context) {
    let server = tonic::transport::Server::builder()
        .layer(ServiceSpan("B"))
        .layer(ContextLayer::new(root.clone()))
        .add_service(CatalogServer(catalog));
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let stopped = async move {
        root.done().await;
    };
    if let Err(err) = server.serve_with_incoming_shutdown(incoming, stopped).await {
        tracing::error!("B stopped: {err}");
    }
}

/// A's channel to B at `catalog`, connected on first use (and again after a failure). Made
/// inside a tokio runtime, which runs its connection.
pub fn catalog_channel(catalog: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{catalog}"))
        .expect("a socket address makes a valid URI")
        .connect_lazy()
}

/// Serves `routes` (A's [`edge_router`], or C's [`router`]) on `listener` until `root` ends,
/// letting the requests in flight finish.
pub async fn serve_http(listener: TcpListener, routes: Router, root: Context) {
    let stopped = async move {
        root.done().await;
    };
    if let Err(err) = axum::serve(listener, routes)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!("HTTP server stopped: {err}");
    }
}
