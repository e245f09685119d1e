//! The operator's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`.
//!
//! `/healthz` answers 200 while the operator makes progress, 503 naming what is stuck (a
//! reconcile far past its timeout, a member supervisor that stopped going round; see
//! [`super::liveness`]); `/readyz` answers 200 once the hub
//! watch of `CustomerStack`s has had its first full list (before that the operator would judge
//! stacks it has not seen yet), 503 before. Anything else is 404; only GET and HEAD are served.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// What the endpoints serve.
pub struct EndpointState {
    /// Renders the metrics when scraped.
    pub metrics: Box<dyn Fn() -> String + Send + Sync>,
    /// Set once the operator is ready.
    pub ready: Arc<AtomicBool>,
    /// Whether the controller and the member supervisors make progress.
    pub liveness: super::liveness::Liveness,
}

/// Serves the endpoints on `listener` until the task is dropped; one task per connection.
pub async fn serve(listener: TcpListener, state: Arc<EndpointState>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                tracing::warn!(%err, "accepting a metrics connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&request, &state);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                tracing::debug!(%err, "metrics connection");
            }
        });
    }
}

fn respond(request: &Request<Incoming>, state: &EndpointState) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match request.uri().path() {
        "/metrics" => {
            let body = (state.metrics)();
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" | "/livez" => match state.liveness.stalled(std::time::Instant::now()) {
            None => plain(StatusCode::OK, "ok\n"),
            Some(stuck) => {
                let mut response =
                    Response::new(Full::new(Bytes::from(format!("stalled: {stuck}\n"))));
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            }
        },
        "/readyz" if state.ready.load(Ordering::Relaxed) => plain(StatusCode::OK, "ok\n"),
        "/readyz" => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the CustomerStack watch has not synced yet\n",
        ),
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n",
        ),
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
