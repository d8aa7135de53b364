//! The dashboard on the admin address: what is failing, what changed, what is stuck, as pages
//! rendered on the server that need no script. A small script of our own filters the rows
//! shown as one types and copies commands; every asset is in the binary.
//!
//! Everything shown from a page, the config or the store is escaped ([`html::esc`]), and the
//! Content-Security-Policy lets no inline script or style run, so a watched page whose price
//! is `<script>` stays text.

mod chart;
mod deliveries;
mod html;
mod overview;
mod watcher;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};

pub use deliveries::Replay;

use super::AdminState;
use crate::ops::{DeliveriesPage, Statuses};
use crate::store::StoreError;

const CSS: &str = include_str!("dashboard.css");
const JS: &str = include_str!("dashboard.js");
const ICON: &str = include_str!("icon.svg");

/// Scripts and styles from this origin only, no inline ones; nothing from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(overview_page))
        .route("/watchers/{name}", get(watcher_page))
        .route("/deliveries", get(deliveries_page))
        .route("/assets/{file}", get(asset))
}

/// A page as HTML with the headers every page gets; it shows data of the moment, so no
/// cache keeps it.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure(headers);
    response
}

fn secure(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// What a page says when the store cannot be read: why, and that it is not the dashboard's
/// own failure.
fn unavailable(err: &StoreError, now: DateTime<Utc>) -> Response {
    let body = format!(
        r#"<h1>The store cannot be read</h1><p class="error">{}</p><p>/healthz says more; the page works again once the store does.</p>"#,
        html::esc(&err.to_string())
    );
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        html::page("Store unavailable", html::Section::Watchers, now, &body),
    )
}

/// Run `render` off the async threads: it reads the store, synchronously, for up to every
/// watcher.
async fn blocking(
    state: AdminState,
    render: impl FnOnce(&AdminState, DateTime<Utc>) -> Result<Response, StoreError> + Send + 'static,
) -> Response {
    let now = state.clock.now();
    let ran = tokio::task::spawn_blocking(move || {
        render(&state, now).unwrap_or_else(|err| unavailable(&err, now))
    })
    .await;
    ran.unwrap_or_else(|err| {
        tracing::error!(error = %err, "a dashboard page failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page failed; the log says why",
        )
            .into_response()
    })
}

fn statuses<'a>(
    state: &'a AdminState,
    watchers: &'a [std::sync::Arc<crate::config::Watcher>],
    now: DateTime<Utc>,
) -> Result<Statuses<'a>, StoreError> {
    Statuses::read(&state.store, watchers, now, Some(state.started))
}

async fn overview_page(State(state): State<AdminState>, RawQuery(query): RawQuery) -> Response {
    blocking(state, move |state, now| {
        let query = overview::Query::parse(query.as_deref());
        let watchers = state.watchers.read().expect("live watchers").clone();
        let overview = statuses(state, &watchers, now)?.overview(
            &query.filter,
            query.offset(),
            overview::PER_PAGE,
        )?;
        Ok(html(
            StatusCode::OK,
            overview::render(&overview, &query, now),
        ))
    })
    .await
}

async fn watcher_page(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    blocking(state, move |state, now| {
        let range = watcher::parse_range(query.as_deref());
        let watchers = state.watchers.read().expect("live watchers").clone();
        let view = statuses(state, &watchers, now)?.watcher(&name, watcher::HISTORY_READ)?;
        Ok(match view {
            Some(view) => html(
                StatusCode::OK,
                watcher::render(&view, range, &state.replay, now),
            ),
            None => {
                let body = format!(
                    r#"<h1>No such watcher</h1><p>Neither the config nor the store knows <b>{}</b>. <a href="/">All watchers</a></p>"#,
                    html::esc(&name)
                );
                html(
                    StatusCode::NOT_FOUND,
                    html::page("No such watcher", html::Section::Watchers, now, &body),
                )
            }
        })
    })
    .await
}

async fn deliveries_page(State(state): State<AdminState>) -> Response {
    blocking(state, move |state, now| {
        let report = DeliveriesPage::read(&state.store)?;
        Ok(html(
            StatusCode::OK,
            deliveries::render(&report, &state.replay, now),
        ))
    })
    .await
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "dashboard.css" => (CSS, "text/css; charset=utf-8"),
        "dashboard.js" => (JS, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON, "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    secure(headers);
    response
}
