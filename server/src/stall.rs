//! The write timeout for connections whose writes another library drives (HTTP:
//! hyper writes the responses and event streams). A write that makes no progress
//! for [`crate::Config::write_timeout`] fails with `TimedOut`, which closes the
//! connection, as a RESP peer that does not read its replies is closed
//! (`conn::write_out`). Once the server is shutting down, a stalled write gets at
//! most [`crate::conn::SHUTDOWN_WRITE_GRACE`] more: a peer that never reads (an
//! event stream nobody consumes) cannot hold up the exit.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// A stream whose writes time out when the peer stops reading.
pub(crate) struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    kill: CancellationToken,
    /// Armed while a write is pending: when it fires, the write fails.
    stalled: Option<Pin<Box<Sleep>>>,
    /// Whether the armed deadline has been cut to the shutdown grace.
    cut: bool,
}

impl<S> WriteDeadline<S> {
    /// `inner`, whose writes may stall at most `timeout` (the shutdown grace once
    /// `kill` is cancelled).
    pub(crate) fn new(inner: S, timeout: Duration, kill: CancellationToken) -> WriteDeadline<S> {
        WriteDeadline {
            inner,
            timeout,
            kill,
            stalled: None,
            cut: false,
        }
    }

    /// Called when a write returned `Pending`: arms (or checks) the deadline.
    /// `Ready(err)` once it has passed.
    fn stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let killed = self.kill.is_cancelled();
        let grace = Instant::now() + crate::conn::SHUTDOWN_WRITE_GRACE;
        let timeout = self.timeout;
        let sleep = self.stalled.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep(if killed {
                crate::conn::SHUTDOWN_WRITE_GRACE
            } else {
                timeout
            }))
        });
        if killed && !self.cut {
            self.cut = true;
            if grace < sleep.deadline() {
                sleep.as_mut().reset(grace);
            }
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer did not read within the write timeout",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Called when a write made progress: disarms the deadline.
    fn progressed(&mut self) {
        self.stalled = None;
        self.cut = false;
    }

    fn settle<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => self.stall(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.settle(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.settle(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.settle(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.settle(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Bounds each test: a write that should have timed out fails the test instead
    /// of hanging it.
    const LONGEST: Duration = Duration::from_secs(60);

    /// A peer that never reads: the write fails once the timeout passes.
    #[tokio::test]
    async fn a_write_the_peer_never_reads_times_out() {
        let (a, _b) = tokio::io::duplex(64);
        let mut w = WriteDeadline::new(a, Duration::from_millis(100), CancellationToken::new());
        let r = tokio::time::timeout(LONGEST, w.write_all(&[0u8; 4096])).await;
        let e = r.ok().and_then(Result::err).map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::TimedOut));
    }

    /// Once the server stops, a stalled write gets only the shutdown grace, however
    /// long its write timeout.
    #[tokio::test]
    async fn shutdown_cuts_a_stalled_write_to_the_grace() {
        let (a, _b) = tokio::io::duplex(64);
        let kill = CancellationToken::new();
        let mut w = WriteDeadline::new(a, Duration::from_secs(3600), kill.clone());
        let write = w.write_all(&[0u8; 4096]);
        tokio::pin!(write);
        // Until the write has stalled (the duplex holds 64 bytes), then stop.
        tokio::select! {
            _ = &mut write => panic!("a write nobody reads finished"),
            () = tokio::task::yield_now() => {}
        }
        kill.cancel();
        let r = tokio::time::timeout(LONGEST, write).await;
        let e = r.ok().and_then(Result::err).map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::TimedOut));
    }

    /// A peer that reads slowly but steadily is never cut off: each write that
    /// makes progress starts the clock again.
    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_served() {
        let (a, mut b) = tokio::io::duplex(64);
        // 16 reads 100 ms apart: 1.6 s in all, past the 1-s timeout, which only
        // progress resetting the clock survives (each gap is a tenth of it).
        let mut w = WriteDeadline::new(a, Duration::from_secs(1), CancellationToken::new());
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 64];
            while got < 1024 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                got += tokio::io::AsyncReadExt::read(&mut b, &mut buf)
                    .await
                    .unwrap_or(0);
            }
            got
        });
        assert!(w.write_all(&[0u8; 1024]).await.is_ok());
        assert_eq!(reader.await.ok(), Some(1024));
    }
}
