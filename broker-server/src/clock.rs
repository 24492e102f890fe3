//! The broker's clock. Reading tokio's clock (converted to the `Instant` the protocol
//! crate takes) lets tests pause and advance time with `tokio::time::pause()`.

use web_time::Instant;

/// Now, as tokio sees it.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// An instant on tokio's timer wheel.
pub(crate) fn to_tokio(at: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(at)
}
