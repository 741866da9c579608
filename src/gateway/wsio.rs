//! The byte stream under each WebSocket, built so that a connection can be handed to the next
//! process at a frame boundary ([`super::handover`]).
//!
//! tungstenite reads ahead: given a 4 KiB read it may hold the start of the next frame in its
//! private buffer, and that state cannot be taken out. [`BoundaryIo`] sits between tungstenite
//! and the socket and never hands tungstenite more than the rest of the current frame: it reads
//! into tungstenite's buffer, and bytes beyond the frame's end move to *our* buffer (allocated
//! only while it holds them). When tungstenite has returned a
//! message, its buffer is therefore empty, and everything not yet parsed is in
//! [`BoundaryIo::take_pending`], which the handover serializes and the next process feeds
//! first. [`FrameParser`] tracks frame boundaries (RFC 6455 §5.2 headers, ≤14 bytes) and
//! fragmented messages (a boundary inside a fragmented message is not a message boundary).
//!
//! Writes pass straight through; tungstenite's write buffer is emptied by a flush before a
//! handover.
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where frames and messages begin and end, fed with the bytes delivered to tungstenite.
#[derive(Debug, Default, Clone)]
pub(crate) struct FrameParser {
    hdr: [u8; 14],
    got: usize,
    remaining: u64,
    in_payload: bool,
    fin: bool,
    opcode: u8,
    fragmented: bool,
}

/// Header length from its first two bytes: 2, +2/+8 extended length, +4 mask key.
fn header_len(b0: u8, b1: u8) -> usize {
    let _ = b0;
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
}

/// Payload length from a complete header.
fn payload_len(h: &[u8]) -> u64 {
    match h[1] & 0x7f {
        126 => u16::from_be_bytes([h[2], h[3]]) as u64,
        127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
        n => n as u64,
    }
}

impl FrameParser {
    /// True between messages: no frame partly delivered and no fragmented message open.
    pub(crate) fn at_message_boundary(&self) -> bool {
        !self.in_payload && self.got == 0 && !self.fragmented
    }

    /// How many of `avail` (the next undelivered bytes) may be delivered without crossing
    /// the end of the current frame. At least 1 when `avail` is not empty.
    pub(crate) fn deliverable(&self, avail: &[u8]) -> usize {
        if avail.is_empty() {
            return 0;
        }
        if self.in_payload {
            return self.remaining.min(avail.len() as u64) as usize;
        }
        let byte = |i: usize| -> Option<u8> {
            if i < self.got {
                Some(self.hdr[i])
            } else {
                avail.get(i - self.got).copied()
            }
        };
        let (Some(b0), Some(b1)) = (byte(0), byte(1)) else {
            return avail.len(); // fewer than 2 header bytes known: all of them are header
        };
        let h = header_len(b0, b1);
        if self.got + avail.len() < h {
            return avail.len(); // still inside the header
        }
        let mut full = [0u8; 14];
        for (i, slot) in full.iter_mut().enumerate().take(h) {
            *slot = byte(i).unwrap_or(0);
        }
        let rest_of_header = h - self.got;
        let payload = payload_len(&full[..h]);
        let left = (avail.len() - rest_of_header) as u64;
        rest_of_header + payload.min(left) as usize
    }

    /// Advances over bytes that were delivered.
    pub(crate) fn consume(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.in_payload {
                let k = self.remaining.min(bytes.len() as u64);
                self.remaining -= k;
                bytes = &bytes[k as usize..];
                if self.remaining == 0 {
                    self.frame_done();
                }
                continue;
            }
            self.hdr[self.got] = bytes[0];
            self.got += 1;
            bytes = &bytes[1..];
            if self.got >= 2 && self.got == header_len(self.hdr[0], self.hdr[1]) {
                self.fin = self.hdr[0] & 0x80 != 0;
                self.opcode = self.hdr[0] & 0x0f;
                let p = payload_len(&self.hdr[..self.got]);
                self.got = 0;
                if p == 0 {
                    self.frame_done();
                } else {
                    self.in_payload = true;
                    self.remaining = p;
                }
            }
        }
    }

    fn frame_done(&mut self) {
        self.in_payload = false;
        match self.opcode {
            // Text/binary: a message starts; it is complete when FIN is set.
            1 | 2 => self.fragmented = !self.fin,
            // Continuation: the message ends with FIN.
            0 if self.fin => self.fragmented = false,
            // Control frames may sit between fragments and change nothing.
            _ => {}
        }
    }
}

/// The socket under a session: our accepted connection taken back from hyper after the
/// upgrade, a connection adopted from the fd store, or (served by something other than our
/// HTTP server) hyper's opaque upgraded stream, which cannot be handed over.
#[derive(Debug)]
pub(crate) enum Inner {
    /// Accepted by our listener (connection cap and read budget included).
    Capped(crate::gateway::listener::CappedStream),
    /// Adopted from the previous process.
    Tcp(tokio::net::TcpStream),
    /// hyper's upgraded stream (no fd: never handed over).
    Upgraded(TokioIo<hyper::upgrade::Upgraded>),
}

/// Flags a session reads while the stream is split between its reader and writer.
#[derive(Debug, Default)]
pub struct Shared {
    at_boundary: AtomicBool,
}

impl Shared {
    /// Whether everything tungstenite was given has been returned as complete messages.
    pub fn at_boundary(&self) -> bool {
        self.at_boundary.load(Ordering::Acquire)
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct BoundaryIo {
    inner: Inner,
    peer: SocketAddr,
    buf: Vec<u8>,
    pos: usize,
    parser: FrameParser,
    shared: Arc<Shared>,
}

impl BoundaryIo {
    fn new(inner: Inner, peer: SocketAddr, pending: Vec<u8>) -> BoundaryIo {
        let shared = Arc::new(Shared::default());
        shared.at_boundary.store(true, Ordering::Release);
        BoundaryIo {
            inner,
            peer,
            buf: pending,
            pos: 0,
            parser: FrameParser::default(),
            shared,
        }
    }

    /// Over our accepted connection after the upgrade; `read_buf` are bytes hyper read past
    /// the request (delivered first).
    pub fn capped(
        s: crate::gateway::listener::CappedStream,
        peer: SocketAddr,
        read_buf: Vec<u8>,
    ) -> BoundaryIo {
        Self::new(Inner::Capped(s), peer, read_buf)
    }

    /// Over hyper's upgraded stream (cannot be handed over).
    pub fn upgraded(io: TokioIo<hyper::upgrade::Upgraded>, peer: SocketAddr) -> BoundaryIo {
        Self::new(Inner::Upgraded(io), peer, Vec::new())
    }

    /// Over an adopted connection; `pending` are bytes the previous process had read but not
    /// parsed (they are delivered first).
    pub fn adopted(stream: tokio::net::TcpStream, peer: SocketAddr, pending: Vec<u8>) -> Self {
        Self::new(Inner::Tcp(stream), peer, pending)
    }

    /// The flags shared with the session.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// See [`FrameParser::at_message_boundary`].
    pub fn at_boundary(&self) -> bool {
        self.parser.at_message_boundary()
    }

    /// Bytes read from the socket and not yet given to tungstenite.
    pub fn take_pending(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.pos);
        self.buf.clear();
        self.pos = 0;
        rest
    }

    /// A duplicate of the socket's fd (for the fd store).
    pub fn dup_fd(&self) -> io::Result<OwnedFd> {
        match &self.inner {
            Inner::Capped(s) => s.as_fd().try_clone_to_owned(),
            Inner::Tcp(s) => s.as_fd().try_clone_to_owned(),
            Inner::Upgraded(_) => Err(io::Error::other(format!(
                "the connection from {} is not ours to hand over (not served by the gateway's HTTP server)",
                self.peer
            ))),
        }
    }
}

impl AsyncRead for BoundaryIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.pos < this.buf.len() {
            // Bytes read earlier past the end of a frame come first.
            let avail = &this.buf[this.pos..];
            let n = this.parser.deliverable(avail).min(out.remaining());
            out.put_slice(&avail[..n]);
            this.parser.consume(&avail[..n]);
            this.pos += n;
            if this.pos == this.buf.len() {
                // Drained: an idle socket keeps no buffer here.
                this.buf = Vec::new();
                this.pos = 0;
            }
        } else {
            // Read straight into tungstenite's buffer; keep only what lies past the current
            // frame (so no buffer of our own stays allocated per socket, and no copy is made
            // in the common case of one frame per read).
            let start = out.filled().len();
            let r = match &mut this.inner {
                Inner::Capped(s) => Pin::new(s).poll_read(cx, out),
                Inner::Tcp(s) => Pin::new(s).poll_read(cx, out),
                Inner::Upgraded(io) => Pin::new(io).poll_read(cx, out),
            };
            match r {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let got = &out.filled()[start..];
            if got.is_empty() {
                return Poll::Ready(Ok(())); // EOF
            }
            let n = this.parser.deliverable(got);
            this.parser.consume(&got[..n]);
            if n < got.len() {
                this.buf.extend_from_slice(&got[n..]);
                this.pos = 0;
            }
            out.set_filled(start + n);
        }
        this.shared
            .at_boundary
            .store(this.parser.at_message_boundary(), Ordering::Release);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for BoundaryIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Capped(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Upgraded(io) => Pin::new(io).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Capped(s) => Pin::new(s).poll_flush(cx),
            Inner::Tcp(s) => Pin::new(s).poll_flush(cx),
            Inner::Upgraded(io) => Pin::new(io).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Capped(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// A server (unmasked) close frame: code + reason (truncated to fit a control frame).
pub(crate) fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut r = reason.as_bytes();
    if r.len() > 123 {
        let mut end = 123;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        r = &r[..end];
    }
    let mut f = vec![0x88, (2 + r.len()) as u8];
    f.extend_from_slice(&code.to_be_bytes());
    f.extend_from_slice(r);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// A masked client frame (what a browser/CLI sends).
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let n = payload.len();
        if n < 126 {
            f.push(0x80 | n as u8);
        } else if n <= u16::MAX as usize {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
        let key = [0x11, 0x22, 0x33, 0x44];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    #[test]
    fn boundaries_over_every_split() {
        // text, ping, fragmented binary with a ping in between, 16-bit and 64-bit lengths, empty.
        let frames: Vec<(Vec<u8>, bool)> = vec![
            (client_frame(true, 1, b"{\"a\":1}"), true),
            (client_frame(true, 9, b"p"), true),
            (client_frame(false, 2, b"part1"), false),
            (client_frame(true, 9, b""), false),
            (client_frame(true, 0, b"part2"), true),
            (client_frame(true, 1, &[b'x'; 300]), true),
            (client_frame(true, 2, &vec![7u8; 70_000]), true),
            (client_frame(true, 1, b""), true),
        ];
        let stream: Vec<u8> = frames.iter().flat_map(|(f, _)| f.clone()).collect();
        let ends: Vec<(usize, bool)> = frames
            .iter()
            .scan(0, |off, (f, b)| {
                *off += f.len();
                Some((*off, *b))
            })
            .collect();
        // Deliver in chunks of every size from 1 to 17 bytes, and 4 KiB.
        for chunk in (1..=17).chain([4096]) {
            let mut p = FrameParser::default();
            let mut off = 0;
            while off < stream.len() {
                let avail = &stream[off..(off + chunk).min(stream.len())];
                let n = p.deliverable(avail);
                assert!(n >= 1 && n <= avail.len());
                p.consume(&avail[..n]);
                off += n;
                // Never past the end of a frame: every frame end is hit exactly.
                let at_frame_end = ends.iter().find(|(e, _)| *e == off);
                match at_frame_end {
                    Some((_, msg_boundary)) => {
                        assert_eq!(
                            p.at_message_boundary(),
                            *msg_boundary,
                            "chunk {chunk} off {off}"
                        )
                    }
                    None => assert!(!p.at_message_boundary(), "chunk {chunk} off {off}"),
                }
                let next_end = ends.iter().map(|(e, _)| *e).find(|e| *e >= off).unwrap();
                assert!(off <= next_end);
            }
        }
    }

    #[test]
    fn close_frames_are_unmasked_and_bounded() {
        assert_eq!(
            close_frame(1012, "ab"),
            vec![0x88, 4, 0x03, 0xf4, b'a', b'b']
        );
        let long = "é".repeat(100);
        let f = close_frame(1000, &long);
        assert!(f[1] as usize <= 125 && f.len() == 2 + f[1] as usize);
    }

    /// tungstenite over BoundaryIo: after each message, nothing is buffered inside tungstenite
    /// and the pending bytes are exactly the unparsed rest.
    #[tokio::test]
    async fn tungstenite_never_holds_bytes_past_a_message() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, peer) = l.accept().await.unwrap();
        let mut bytes = client_frame(true, 1, b"one");
        bytes.extend(client_frame(true, 1, b"two"));
        let third = client_frame(true, 1, b"three");
        bytes.extend(&third[..4]); // a partial third frame
        tokio::io::AsyncWriteExt::write_all(&mut client, &bytes)
            .await
            .unwrap();
        let io = BoundaryIo::adopted(server, peer, Vec::new());
        let shared = io.shared();
        let mut ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("one"));
        assert!(shared.at_boundary());
        // Everything after "one" is still ours, not tungstenite's.
        let pending = ws.get_mut().take_pending();
        assert_eq!(pending, bytes[client_frame(true, 1, b"one").len()..]);
        // A new stream over the same socket, fed the pending bytes first, continues exactly.
        let io = ws.into_inner();
        let Inner::Tcp(sock) = io.inner else {
            unreachable!()
        };
        let io2 = BoundaryIo::adopted(sock, peer, pending);
        let mut ws2 =
            tokio_tungstenite::WebSocketStream::from_raw_socket(io2, Role::Server, None).await;
        assert_eq!(ws2.next().await.unwrap().unwrap(), Message::text("two"));
        tokio::io::AsyncWriteExt::write_all(&mut client, &third[4..])
            .await
            .unwrap();
        assert_eq!(ws2.next().await.unwrap().unwrap(), Message::text("three"));
        ws2.send(Message::text("back")).await.unwrap();
        let mut buf = [0u8; 6];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf, b"\x81\x04back");
    }
}
