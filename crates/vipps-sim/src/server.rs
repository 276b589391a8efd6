//! The HTTP server: an accept loop over hyper so that an injected fault can drop a connection
//! without answering, plus the background tasks (clock ticker, webhook delivery).

use std::convert::Infallible;
use std::time::Duration;

use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::faults::{fault_reply, FaultKind};
use crate::state::SharedSim;

/// Error returned to hyper to make it close a connection without a response.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// Accepts connections until `shutdown` flips to true; then aborts open connections.
pub(crate) async fn serve(listener: TcpListener, router: Router, sim: SharedSim, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        // Reap finished connection tasks so the set stays small.
        while conns.try_join_next().is_some() {}
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let sim = sim.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let router = router.clone();
                let sim = sim.clone();
                async move {
                    let fault = sim.faults.take(req.uri().path());
                    match fault {
                        Some(FaultKind::Drop) => Err(DropConnection),
                        Some(FaultKind::Delay { delay_ms }) => {
                            let resp = router.oneshot(req.map(axum::body::Body::new)).await;
                            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                            Ok(unwrap_infallible(resp))
                        }
                        Some(kind) => match fault_reply(kind) {
                            Some(r) => Ok(r.into_response()),
                            None => Err(DropConnection),
                        },
                        None => Ok(unwrap_infallible(router.oneshot(req.map(axum::body::Body::new)).await)),
                    }
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
    conns.abort_all();
}

fn unwrap_infallible(r: Result<axum::response::Response, Infallible>) -> axum::response::Response {
    match r {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// Processes due timers every `tick_interval` of real time (the virtual clock keeps running).
pub(crate) async fn ticker(sim: SharedSim) {
    let mut interval = tokio::time::interval(sim.config.tick_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        sim.process_due();
    }
}
