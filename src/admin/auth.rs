//! The admin token (`[daemon] admin_token`): with one set, every admin route but /healthz
//! answers only a request that shows it, as `Authorization: Bearer TOKEN` or as the password of
//! HTTP Basic auth under any user name. Basic is what a browser asks for when told
//! `WWW-Authenticate: Basic`, so the dashboard opens in one without a plugin.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::AdminToken;

const CHALLENGE: &str = r#"Basic realm="pagehook admin", charset="UTF-8""#;

/// The token `headers` show, as a bearer token or as a Basic password.
fn shown_token(headers: &HeaderMap) -> Option<Vec<u8>> {
    let (scheme, credentials) = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')?;
    let credentials = credentials.trim_start();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(credentials.as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        basic_password(&STANDARD.decode(credentials).ok()?)
    } else {
        None
    }
}

/// The password of a decoded `user:password` pair: everything after the first colon, since a
/// user name cannot hold one and a password may.
fn basic_password(pair: &[u8]) -> Option<Vec<u8>> {
    let colon = pair.iter().position(|b| *b == b':')?;
    Some(pair[colon + 1..].to_vec())
}

/// `guarded` behind `token` when there is one, merged with `open`, which never asks for it.
/// The layer wraps the whole of `guarded`, so a route added to it later is guarded without a
/// word more.
pub(super) fn guard<S>(guarded: Router<S>, open: Router<S>, token: Option<AdminToken>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let guarded = match token {
        Some(token) => guarded.layer(middleware::from_fn_with_state(token, require)),
        None => guarded,
    };
    open.merge(guarded)
}

async fn require(State(token): State<AdminToken>, request: Request, next: Next) -> Response {
    if shown_token(request.headers()).is_some_and(|shown| token.admits(&shown)) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, CHALLENGE)],
            "pagehook admin: send the admin token, as `Authorization: Bearer TOKEN` or as the Basic auth password\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::routing::get;

    use super::*;

    const TOKEN: &str = "0123456789abcdef-admin";

    /// `router` on a loopback port.
    async fn listen(router: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    /// The admin router on a loopback port, guarded by `token`.
    async fn serve(token: Option<&str>) -> (SocketAddr, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::admin::AdminState {
            store: crate::store::Store::open(dir.path()).unwrap(),
            health: Default::default(),
            watchers: Default::default(),
            started: chrono::Utc::now(),
            clock: Default::default(),
            replay: Default::default(),
            token: token.map(|t| t.parse().unwrap()),
        };
        (listen(crate::admin::router(state)).await, dir)
    }

    async fn get_metrics(addr: SocketAddr, auth: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new().get(format!("http://{addr}/metrics"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send().await.unwrap()
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    #[tokio::test]
    async fn the_token_opens_metrics_as_bearer_or_basic_password() {
        let (addr, _dir) = serve(Some(TOKEN)).await;
        for auth in [
            format!("Bearer {TOKEN}"),
            format!("bearer  {TOKEN}"),
            basic("prometheus", TOKEN),
            basic("", TOKEN),
        ] {
            let response = get_metrics(addr, Some(&auth)).await;
            assert_eq!(response.status(), 200, "{auth}");
        }
    }

    #[tokio::test]
    async fn anything_else_is_401_with_a_basic_challenge() {
        let (addr, _dir) = serve(Some(TOKEN)).await;
        let wrong = format!("{TOKEN}x");
        for auth in [
            None,
            Some(format!("Bearer {wrong}")),
            Some("Bearer".to_owned()),
            Some(basic(TOKEN, "")),
            Some(basic("admin", &wrong)),
            Some(format!("Basic {TOKEN}")),
            Some(format!("Token {TOKEN}")),
        ] {
            let response = get_metrics(addr, auth.as_deref()).await;
            assert_eq!(response.status(), 401, "{auth:?}");
            assert_eq!(
                response.headers()["www-authenticate"],
                r#"Basic realm="pagehook admin", charset="UTF-8""#
            );
            assert!(response.text().await.unwrap().contains("admin token"));
        }
    }

    #[tokio::test]
    async fn healthz_stays_open_and_no_token_leaves_everything_open() {
        let (guarded, _dir) = serve(Some(TOKEN)).await;
        let health = reqwest::get(format!("http://{guarded}/healthz"))
            .await
            .unwrap();
        // Unhealthy (no scheduler runs here), but answered: not 401.
        assert_eq!(health.status(), 503);

        let (open, _dir) = serve(None).await;
        assert_eq!(get_metrics(open, None).await.status(), 200);
    }

    #[tokio::test]
    async fn routes_added_to_the_guarded_router_later_need_the_token_too() {
        let guarded = Router::new()
            .route("/metrics", get(|| async { "m" }))
            .route("/later", get(|| async { "l" }));
        let open = Router::new().route("/healthz", get(|| async { "h" }));
        let addr = listen(guard(guarded, open, Some(TOKEN.parse().unwrap()))).await;
        let client = reqwest::Client::new();
        let status = |path: &'static str, auth: bool| {
            let mut request = client.get(format!("http://{addr}{path}"));
            if auth {
                request = request.bearer_auth(TOKEN);
            }
            async move { request.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(status("/later", false).await, 401);
        assert_eq!(status("/later", true).await, 200);
        assert_eq!(status("/healthz", false).await, 200);
    }
}
