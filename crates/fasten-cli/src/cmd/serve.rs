//! `fasten serve`: the HTTP reader on its own, over the configured stores,
//! at `/api/v1/logs` — for operators, and for a central store that many
//! nodes write to.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use fasten::http_reader::{self, Auth, Options};

/// Arguments of `fasten serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on; port 0 picks a free one (printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Serve without any authentication. Without it, FASTEN_READER_TOKENS
    /// must hold at least one bearer token.
    #[arg(long)]
    allow_unauthenticated: bool,
    #[command(flatten)]
    store: super::source::StoreArgs,
}

/// Where the router is nested.
const PREFIX: &str = "/api/v1/logs";

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let auth = if args.allow_unauthenticated {
        eprintln!(
            "fasten: WARNING: serving WITHOUT authentication (--allow-unauthenticated): anyone who can reach {} can read every row",
            args.listen
        );
        Auth::allow_unauthenticated()
    } else {
        Auth::from_env().context(
            "fasten serve refuses to start without an auth decision (hint: set FASTEN_READER_TOKENS=<token>[,<token>…], or pass --allow-unauthenticated for a loopback-only tool)",
        )?
    };
    let reader = args.store.reader()?;
    // Fail now, not on the first request, when the store is not there.
    let health = reader.health();
    if !health.reachable {
        anyhow::bail!(
            "cannot read the audit store {}: {}",
            health.store,
            health.error.unwrap_or_default()
        );
    }
    let mut options = Options::new(auth);
    // Edges ship here when the central store has ingest tokens.
    if std::env::var(fasten::env::FASTEN_INGEST_TOKENS).is_ok_and(|v| !v.trim().is_empty()) {
        options = options.ingest(http_reader::Ingest::from_env()?);
    }
    let app: axum::Router = axum::Router::new().nest(PREFIX, http_reader::router(reader, options));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        // The first line on stdout, so scripts and tests can find the port.
        let mut out = std::io::stdout().lock();
        writeln!(out, "fasten: serving http://{addr}{PREFIX}")?;
        out.flush()?;
        drop(out);
        serve(listener, app).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// How long a client may take to send a request's head: a half-sent
/// request is dropped after this rather than held open for minutes.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long one connection may stay open at all, head, body, answer and
/// keep-alive together (the reader's own query timeouts are shorter).
const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;

/// `axum::serve`, with what it leaves out: a header read timeout, a
/// bound on a connection's life, and a bound on connections, until Ctrl-C.
async fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return Ok(()),
            permit = std::sync::Arc::clone(&slots).acquire_owned() => permit.context("the connection limit closed")?,
        };
        let (stream, _) = tokio::select! {
            _ = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A client that went away between connect and accept, or
                // too many open files: wait a moment and go on.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
            drop(permit);
        });
    }
}
