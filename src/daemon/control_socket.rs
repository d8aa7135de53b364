//! The daemon's side of the control socket: each request answered by `ops` over the running
//! daemon (its store, watchers and deliverer). The protocol itself is `crate::control`.

use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Watcher;
use crate::control;
use crate::ops::Ops;

/// Answer requests on `bound` until `stop`. `ops` is the template for each answer; its watchers
/// are the ones in `live` when a request arrives, as reloads swap them.
pub(super) async fn serve(
    bound: control::Bound,
    ops: Ops,
    live: Arc<RwLock<Vec<Arc<Watcher>>>>,
    clock: Clock,
    stop: CancellationToken,
) {
    let handle = move |request| {
        let ops = Ops {
            watchers: live.read().expect("live watchers").clone(),
            ..ops.clone()
        };
        let now = clock.now();
        async move {
            ops.answer_json(request, now)
                .await
                .map_err(|err| err.to_string())
        }
    };
    control::serve(bound, handle, stop).await
}
