//! Redirects, followed here rather than inside reqwest, so that this module alone decides what
//! reaches another origin: reqwest carries a request's own headers across origins (it drops
//! only Authorization and Cookie), so an `X-Api-Key` would go to whatever host a page redirects
//! to. Here a redirect to another origin keeps only what identifies pagehook and what the
//! request needs to mean the same thing: the user agent, the conditional-request validators
//! and, while a body is still sent, its content type. No `Referer` is ever sent: the watched
//! URL may hold credentials in its query string.

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

/// Headers that survive a redirect to another origin.
const CROSS_ORIGIN: [header::HeaderName; 4] = [
    header::USER_AGENT,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::CONTENT_TYPE,
];

/// One request of a fetch: the first, or one a redirect asked for.
#[derive(Debug, Clone)]
pub(super) struct Hop {
    pub(crate) url: Url,
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<String>,
}

/// A redirect to a Location that is not an http:// or https:// URL.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Unusable;

impl Hop {
    /// The request an answer with `status` and `location` asks for next: None when it is not
    /// a redirect to follow (304, 300, or a 3xx without a Location).
    pub(super) fn redirected(
        &self,
        status: StatusCode,
        location: Option<&HeaderValue>,
    ) -> Option<Result<Hop, Unusable>> {
        // As browsers do (RFC 9110 15.4): 303 always, and 301/302 after a POST, become a GET
        // without a body; 307 and 308 repeat the request as it was.
        let to_get = match status {
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => self.method == Method::POST,
            StatusCode::SEE_OTHER => self.method != Method::HEAD,
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => false,
            _ => return None,
        };
        let location = location?;
        let target = location
            .to_str()
            .ok()
            .and_then(|l| self.url.join(l).ok())
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host());
        let Some(mut url) = target else {
            return Some(Err(Unusable));
        };
        let mut next = self.clone();
        if to_get {
            next.method = Method::GET;
            next.body = None;
            for name in [
                header::CONTENT_TYPE,
                header::CONTENT_LENGTH,
                header::CONTENT_ENCODING,
                header::TRANSFER_ENCODING,
            ] {
                next.headers.remove(name);
            }
        }
        if url.origin() == self.url.origin() {
            // The client turns a URL's user and password into Authorization; the same server
            // gets them again, as a browser would send them within one site.
            if url.username().is_empty() && url.password().is_none() {
                let _ = url.set_username(self.url.username());
                let _ = url.set_password(self.url.password());
            }
        } else {
            let kept: HeaderMap = CROSS_ORIGIN
                .iter()
                .filter_map(|name| Some((name.clone(), next.headers.get(name)?.clone())))
                .collect();
            next.headers = kept;
        }
        next.url = url;
        Some(Ok(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(url: &str, method: Method, body: Option<&str>) -> Hop {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("k3y"));
        headers.insert(header::COOKIE, HeaderValue::from_static("session=abc"));
        headers.insert(header::USER_AGENT, HeaderValue::from_static("agent/1"));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"v1\""));
        if body.is_some() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Hop {
            url: Url::parse(url).unwrap(),
            method,
            headers,
            body: body.map(str::to_owned),
        }
    }

    fn follow(from: &Hop, status: u16, location: &str) -> Hop {
        let location = HeaderValue::from_str(location).unwrap();
        from.redirected(StatusCode::from_u16(status).unwrap(), Some(&location))
            .expect("a redirect")
            .expect("a usable location")
    }

    #[test]
    fn another_origin_gets_no_configured_header_and_no_credentials() {
        let first = hop("https://u:p@shop.example/a?api_key=s", Method::GET, None);
        let next = follow(&first, 302, "https://cdn.example/b");
        assert_eq!(next.url.as_str(), "https://cdn.example/b");
        let mut names: Vec<&str> = next.headers.keys().map(|n| n.as_str()).collect();
        names.sort();
        assert_eq!(names, ["if-none-match", "user-agent"]);
        // Another scheme or port is another origin too.
        for other in ["http://shop.example/b", "https://shop.example:8443/b"] {
            let next = follow(&first, 301, other);
            assert!(!next.headers.contains_key("x-api-key"), "{other}");
            assert!(!next.headers.contains_key(header::COOKIE), "{other}");
            assert_eq!(next.url.username(), "", "{other}");
        }
    }

    #[test]
    fn the_same_origin_keeps_headers_and_credentials() {
        let first = hop("https://u:p@shop.example/a", Method::GET, None);
        let next = follow(&first, 307, "/b?x=1");
        assert_eq!(next.url.as_str(), "https://u:p@shop.example/b?x=1");
        assert_eq!(next.headers, first.headers);
    }

    #[test]
    fn methods_and_bodies_change_as_browsers_change_them() {
        let post = hop("https://shop.example/a", Method::POST, Some("{}"));
        for status in [301, 302, 303] {
            let next = follow(&post, status, "/b");
            assert_eq!((next.method, next.body), (Method::GET, None), "{status}");
            assert!(!next.headers.contains_key(header::CONTENT_TYPE));
        }
        for status in [307, 308] {
            let next = follow(&post, status, "https://api.example/b");
            assert_eq!(next.method, Method::POST, "{status}");
            assert_eq!(next.body.as_deref(), Some("{}"));
            assert_eq!(next.headers[header::CONTENT_TYPE], "application/json");
            assert!(!next.headers.contains_key("x-api-key"));
        }
        let put = hop("https://shop.example/a", Method::PUT, Some("{}"));
        assert_eq!(follow(&put, 302, "/b").method, Method::PUT);
    }

    #[test]
    fn only_redirects_with_a_usable_location_are_followed() {
        let first = hop("https://shop.example/a", Method::GET, None);
        for status in [200, 300, 304, 404] {
            let location = HeaderValue::from_static("/b");
            let status = StatusCode::from_u16(status).unwrap();
            assert!(first.redirected(status, Some(&location)).is_none());
        }
        assert!(first.redirected(StatusCode::FOUND, None).is_none());
        for location in ["ftp://files.example/b", "data:text/html,x", "http://"] {
            let location = HeaderValue::from_static(location);
            assert_eq!(
                first
                    .redirected(StatusCode::FOUND, Some(&location))
                    .unwrap()
                    .unwrap_err(),
                Unusable,
                "{location:?}"
            );
        }
    }
}
