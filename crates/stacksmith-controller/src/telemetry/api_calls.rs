//! Counting every API request stacksmith makes, per cluster, verb and outcome.
//!
//! A tower layer on every client the operator builds (the hub's and each member's), so the
//! figures are counted, not estimated: the tests use them to prove that a reconcile reads from
//! the watch caches (no GET or LIST) and writes nothing when nothing changed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use tower::{Layer, Service};

/// The kind of an API request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// A watch.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH (server-side apply, merge, JSON patch).
    Patch,
    /// DELETE.
    Delete,
    /// Version and discovery requests.
    Discovery,
}

impl Verb {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::Discovery => "discovery",
        }
    }

    /// Whether the request changes state.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete
        )
    }

    /// Whether it reads objects outside a watch.
    pub fn is_read(self) -> bool {
        matches!(self, Verb::Get | Verb::List)
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallOutcome {
    /// 1xx–3xx.
    Success,
    /// 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// No response (connection, TLS, timeout).
    Failed,
}

impl CallOutcome {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::ClientError => "client_error",
            CallOutcome::ServerError => "server_error",
            CallOutcome::Failed => "failed",
        }
    }
}

/// One counted series.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    /// `hub` or the member cluster's name.
    pub cluster: String,
    /// The verb.
    pub verb: Verb,
    /// The outcome.
    pub outcome: CallOutcome,
}

/// Request counts, shared by every client of one operator.
#[derive(Clone, Debug, Default)]
pub struct ApiCallCounter {
    counts: Arc<Mutex<BTreeMap<CallKey, u64>>>,
}

impl ApiCallCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&self, key: CallKey) {
        let mut counts = crate::locks::lock(&self.counts);
        *counts.entry(key).or_insert(0) += 1;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<CallKey, u64> {
        crate::locks::lock(&self.counts).clone()
    }

    /// The layer that counts a client's requests as `cluster`.
    pub fn layer(&self, cluster: impl Into<String>) -> CountingLayer {
        CountingLayer {
            cluster: cluster.into(),
            counter: self.clone(),
        }
    }
}

/// Sums a snapshot over the series that `keep` selects.
pub fn total(counts: &BTreeMap<CallKey, u64>, keep: impl Fn(&CallKey) -> bool) -> u64 {
    counts.iter().filter(|(k, _)| keep(k)).map(|(_, n)| n).sum()
}

/// The difference `after - before` of two snapshots.
pub fn delta(
    before: &BTreeMap<CallKey, u64>,
    after: &BTreeMap<CallKey, u64>,
) -> BTreeMap<CallKey, u64> {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A tower layer counting requests (see [`ApiCallCounter::layer`]).
#[derive(Clone, Debug)]
pub struct CountingLayer {
    cluster: String,
    counter: ApiCallCounter,
}

impl<S> Layer<S> for CountingLayer {
    type Service = Counting<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Counting {
            inner,
            cluster: self.cluster.clone(),
            counter: self.counter.clone(),
        }
    }
}

/// The service [`CountingLayer`] wraps a client's stack in.
#[derive(Clone, Debug)]
pub struct Counting<S> {
    inner: S,
    cluster: String,
    counter: ApiCallCounter,
}

impl<S, B, R> Service<Request<B>> for Counting<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let verb = classify(
            request.method(),
            request.uri().path(),
            request.uri().query().unwrap_or_default(),
        );
        let cluster = self.cluster.clone();
        let counter = self.counter.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            let outcome = match &result {
                Ok(r) if r.status().is_server_error() => CallOutcome::ServerError,
                Ok(r) if r.status().is_client_error() => CallOutcome::ClientError,
                Ok(_) => CallOutcome::Success,
                Err(_) => CallOutcome::Failed,
            };
            counter.add(CallKey {
                cluster,
                verb,
                outcome,
            });
            result
        })
    }
}

/// The verb of a request from its method and path.
pub fn classify(method: &Method, path: &str, query: &str) -> Verb {
    match *method {
        Method::POST => return Verb::Create,
        Method::PUT => return Verb::Update,
        Method::PATCH => return Verb::Patch,
        Method::DELETE => return Verb::Delete,
        _ => {}
    }
    if query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1")
    {
        return Verb::Watch;
    }
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return Verb::Discovery,
    };
    let item = match rest {
        [] => return Verb::Discovery,
        ["namespaces"] => false,
        ["namespaces", _name] => true,
        ["namespaces", _name, "status" | "finalize"] => true,
        ["namespaces", _ns, _plural] => false,
        ["namespaces", _ns, _plural, ..] => true,
        [_plural] => false,
        [_plural, ..] => true,
    };
    if item { Verb::Get } else { Verb::List }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_from_paths() {
        let get = Method::GET;
        assert_eq!(classify(&get, "/api/v1/namespaces", ""), Verb::List);
        assert_eq!(classify(&get, "/api/v1/namespaces/a", ""), Verb::Get);
        assert_eq!(
            classify(&get, "/api/v1/namespaces/a/secrets", "limit=500"),
            Verb::List
        );
        assert_eq!(
            classify(&get, "/api/v1/namespaces/a/secrets/s", ""),
            Verb::Get
        );
        assert_eq!(
            classify(
                &get,
                "/apis/monitoring.coreos.com/v1/prometheuses",
                "watch=true&timeoutSeconds=290"
            ),
            Verb::Watch
        );
        assert_eq!(
            classify(
                &get,
                "/apis/monitoring.coreos.com/v1/namespaces/t/prometheuses/p/status",
                ""
            ),
            Verb::Get
        );
        assert_eq!(
            classify(&get, "/apis/stacksmith.io/v1alpha1/memberclusters/m", ""),
            Verb::Get
        );
        assert_eq!(classify(&get, "/version", ""), Verb::Discovery);
        assert_eq!(
            classify(&get, "/apis/monitoring.coreos.com/v1", ""),
            Verb::Discovery
        );
        assert_eq!(
            classify(&Method::PATCH, "/apis/x/v1/namespaces/a/y/z", ""),
            Verb::Patch
        );
        assert_eq!(
            classify(&Method::DELETE, "/api/v1/namespaces/a", ""),
            Verb::Delete
        );
    }
}
