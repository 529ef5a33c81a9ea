// SPDX-License-Identifier: BSD-2-Clause
//! Waiting for the first of two futures, for session loops such as "socket readable, new request, or
//! the next deadline".

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

/// Which of the two futures of a [`select`] finished first, with its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first future.
    Left(A),
    /// The second future.
    Right(B),
}

pin_project! {
    /// Future returned by [`select`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Select<A, B> {
        #[pin]
        a: A,
        #[pin]
        b: B,
    }
}

/// Completes with the output of whichever of `a` and `b` completes first; the other is dropped with
/// the `Select`. Biased: `a` is polled first, so when both are ready `a` wins (put the future whose
/// readiness matters most, such as received data, first). Nest it for more than two.
pub fn select<A: Future, B: Future>(a: A, b: B) -> Select<A, B> {
    Select { a, b }
}

impl<A: Future, B: Future> Future for Select<A, B> {
    type Output = Either<A::Output, B::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.a.poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        this.b.poll(cx).map(Either::Right)
    }
}
