//! Floor of the HTTP row: a bare axum hello-world, nothing of the suite, so the row says
//! what axum, hyper and tokio cost on this machine and what examples/http.rs adds to it
//! (the edge, the drain's middleware, the readiness state).
//!
//! Same runtime flavour as the example (the edge runs a current-thread runtime), the same
//! `GET /healthz`, the same `event=listening` line the tool reads; Ctrl+C ends it by
//! SIGINT's default action, which the tool reaps.

fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("floor-axum: cannot build the runtime: {error}");
            std::process::exit(1);
        }
    };
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        eprintln!(r#"{{"event":"listening","address":"{address}"}}"#);
        let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
        axum::serve(listener, app).await
    });
    if let Err(error) = served {
        eprintln!("floor-axum: {error}");
        std::process::exit(1);
    }
}
