//! Why a check failed, as one word from a small fixed set: what `status`, logs, metrics,
//! `watch.failing` and `test --json` carry as `reason`, so that scripts and alerts can branch on
//! it without reading messages. A stage-level type: every stage's error maps onto it, and it
//! knows none of them.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No connection: DNS, TCP, TLS or the proxy failed.
    Connect,
    /// No complete answer within the watcher's `timeout`.
    Timeout,
    /// Politeness (`per_host_concurrency`, `per_host_delay`) or `daemon.max_concurrency` left
    /// no free slot for the request within the watcher's `timeout`.
    Busy,
    /// The server answered with a status other than 2xx (and not a bot wall).
    HttpStatus,
    /// Too many redirects, or a redirect pagehook would not follow.
    Redirect,
    /// The body or the rendered page is larger than `max_body_size`.
    TooLarge,
    /// A bot wall's challenge or block page: never read as the page.
    Blocked,
    /// A field's selector, JSON-LD path or JSON pointer found nothing.
    Selector,
    /// A field found text that is not the number, price or stock status its type asks for.
    Value,
    /// The browser loaded the page but it did not render: `wait_for` never matched, a script
    /// kept it busy, it crashed, or it was a download.
    Render,
    /// No browser: none found, it did not start, crashed, or stopped answering.
    Browser,
    /// The state store could not be written; the page itself may be fine.
    Store,
}

impl Reason {
    #[cfg(test)]
    pub(crate) const ALL: [Reason; 12] = [
        Reason::Connect,
        Reason::Timeout,
        Reason::Busy,
        Reason::HttpStatus,
        Reason::Redirect,
        Reason::TooLarge,
        Reason::Blocked,
        Reason::Selector,
        Reason::Value,
        Reason::Render,
        Reason::Browser,
        Reason::Store,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Timeout => "timeout",
            Reason::Busy => "busy",
            Reason::HttpStatus => "http_status",
            Reason::Redirect => "redirect",
            Reason::TooLarge => "too_large",
            Reason::Blocked => "blocked",
            Reason::Selector => "selector",
            Reason::Value => "value",
            Reason::Render => "render",
            Reason::Browser => "browser",
            Reason::Store => "store",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialized_form() {
        for reason in Reason::ALL {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, reason.as_str());
            assert_eq!(serde_json::from_value::<Reason>(json).unwrap(), reason);
        }
    }
}
