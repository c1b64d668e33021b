//! A `futures-io` stream as hyper's I/O, reading without zero-filling hyper's buffer.
//!
//! hyper lends its read buffer as uninitialised memory (8 KiB or more), and a `futures-io`
//! reader wants initialised bytes. The generic adapter (`smol_hyper::rt::FuturesIo`) zero-fills
//! the whole spare buffer before every read: about 8,000 instructions of `memset` per HTTP
//! request or WebSocket read, for requests of a few hundred bytes. Here each read goes into a
//! per-thread scratch buffer that was initialised once, and only the bytes read are copied into
//! hyper's buffer (with hyper's safe `put_slice`; the crate forbids `unsafe`). The scratch is
//! per thread, not per connection, so idle connections hold nothing.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};
use hyper::rt::ReadBufCursor;

/// Largest read; hyper's buffer starts at 8 KiB and grows only for large bodies, and a short
/// read costs nothing but another wake-up.
const SCRATCH_BYTES: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_BYTES]);
}

/// `T` as hyper's [`Read`](hyper::rt::Read) and [`Write`](hyper::rt::Write).
#[derive(Debug)]
pub(crate) struct HttpIo<T>(pub(crate) T);

impl<T: AsyncRead + Unpin> hyper::rt::Read for HttpIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let want = buf.remaining().min(SCRATCH_BYTES);
        SCRATCH.with(|scratch| {
            // Only re-entered if a reader below read another `HttpIo` on this thread, which none
            // does; a fresh buffer keeps even that case correct.
            let mut fresh = Vec::new();
            let mut borrowed = scratch.try_borrow_mut();
            let space = match borrowed.as_deref_mut() {
                Ok(space) => space,
                Err(_) => {
                    fresh.resize(want, 0);
                    &mut fresh
                }
            };
            let Some(space) = space.get_mut(..want) else {
                return Poll::Ready(Err(io::ErrorKind::OutOfMemory.into()));
            };
            match Pin::new(&mut self.0).poll_read(cx, space) {
                Poll::Ready(Ok(n)) => {
                    // The reader's count is at most the slice it got.
                    buf.put_slice(space.get(..n).unwrap_or_default());
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HttpIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    /// Reads through the adapter the way hyper does: into uninitialised spare capacity.
    fn read_all(mut io: HttpIo<&[u8]>, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        block_on(futures_lite::future::poll_fn(|cx| {
            loop {
                let mut storage = vec![std::mem::MaybeUninit::<u8>::uninit(); chunk];
                let mut buf = hyper::rt::ReadBuf::uninit(&mut storage);
                match hyper::rt::Read::poll_read(Pin::new(&mut io), cx, buf.unfilled()) {
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
                    Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
                    Poll::Ready(Err(e)) => panic!("{e}"),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }));
        out
    }

    #[test]
    fn reads_arrive_whole_in_order_whatever_the_buffer_size() {
        let data: Vec<u8> = (0..50_000u32).map(|n| (n % 253) as u8).collect();
        // Smaller than, equal to and larger than the scratch buffer.
        for chunk in [1, 7, 8192, SCRATCH_BYTES, 3 * SCRATCH_BYTES] {
            assert_eq!(read_all(HttpIo(&data[..]), chunk), data, "chunk {chunk}");
        }
    }
}
