//! Cancellation: a run's Ctrl-C becomes a `watch` channel that every waiting operation
//! selects on. The one place that waits for it.

/// Resolves when `cancel` (a run's Ctrl-C signal) becomes true; never if its sender is gone.
pub async fn wait_cancel(cancel: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *cancel.borrow() {
            return;
        }
        if cancel.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
