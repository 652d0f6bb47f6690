//! The daemon's clock: tokio's, so that tests on paused time control it.

use std::time::Instant;

/// Now, as the protocol machines want it.
pub(crate) fn now() -> Instant {
    actix::clock::Instant::now().into_std()
}
