//! Panics inside a task end that task only (SPEC §1 outcome `internal`).
//!
//! [`catch_panic`] polls a future inside `catch_unwind` and turns a panic into its
//! message. While such a future is being polled, [`panic_is_contained`] is true on
//! that thread, so a process-wide panic hook can stay quiet about panics that are
//! caught and reported with their task (the default hook would print them again).

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    static CONTAINED: Cell<u32> = const { Cell::new(0) };
}

/// True while this thread polls a future wrapped by [`catch_panic`]: a panic now is
/// caught and reported by the caller.
pub fn panic_is_contained() -> bool {
    CONTAINED.with(Cell::get) > 0
}

/// Runs `future`; a panic while polling it becomes `Err(message)`.
pub fn catch_panic<F: Future>(future: F) -> CatchPanic<F> {
    CatchPanic {
        inner: Box::pin(future),
    }
}

/// The future of [`catch_panic`].
#[must_use = "futures do nothing unless polled"]
pub struct CatchPanic<F> {
    inner: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for CatchPanic<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatchPanic").finish_non_exhaustive()
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        struct Guard;
        impl Drop for Guard {
            fn drop(&mut self) {
                CONTAINED.with(|c| c.set(c.get().saturating_sub(1)));
            }
        }
        CONTAINED.with(|c| c.set(c.get().saturating_add(1)));
        let _guard = Guard;
        let inner = self.inner.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(message(payload.as_ref()))),
        }
    }
}

/// The text of a panic payload (`panic!` gives `&str` or `String`).
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message_and_the_flag_is_set_only_inside() {
        assert!(!panic_is_contained());
        let seen_inside = catch_panic(async { panic_is_contained() }).await;
        assert_eq!(seen_inside, Ok(true));
        assert!(!panic_is_contained());
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let caught = catch_panic(async {
            tokio::task::yield_now().await;
            panic!("boom {}", 7);
        })
        .await;
        std::panic::set_hook(hook);
        assert_eq!(caught, Err::<(), _>("boom 7".to_owned()));
        assert!(!panic_is_contained(), "the flag is reset after a panic");
    }
}
