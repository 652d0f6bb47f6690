//! The blocking record halves of an established Transit connection, for worker threads.
//!
//! [`RecordWriter`] seals each record in place and writes it out whole (one `write_all` per
//! record: nothing lingers in a buffer, so a sender that then waits for the receiver's ack
//! cannot deadlock). A bulk sender reads its plaintext straight into a frame
//! ([`RecordWriter::send_frame`]), so a record is neither copied nor zeroed on its way out.
//!
//! [`RecordReader`] reads a record's header (length prefix, checked by
//! [`RecordOpener::parse_length`] before any allocation, then nonce and tag) through a small
//! buffer, then a large record's ciphertext straight from the socket into the caller's buffer,
//! where it is decrypted in place ([`RecordReader::receive_record_into`]): no copy out of a
//! read buffer, and no zero-fill when the caller recycles its buffers. Small records (the
//! reference sends 16 KiB) go through the small buffer, so they cost no syscall each.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use wormhole_protocol::transit::record::{
    RecordError, RecordOpener, RecordSealer, FRAME_HEADER_LEN, LENGTH_LEN, RECORD_OVERHEAD,
};
use wormhole_protocol::transit::Role;

/// Size of the receiving half's small buffer; records whose ciphertext fits in it are read
/// through it, larger ones straight into the caller's buffer.
const SMALL_BUFFER: usize = 128 << 10;
/// A large record's buffer grows by at most this much beyond the bytes received, so a peer
/// that announces a huge record and sends little makes us hold little.
const GROW_STEP: usize = 1 << 20;

fn invalid(e: RecordError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn eof_inside() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "end of stream inside a record",
    )
}

/// Sends encrypted records (length prefix, SecretBox with a counter nonce).
pub(crate) struct RecordWriter {
    stream: TcpStream,
    sealer: RecordSealer,
    buf: Vec<u8>,
}

impl RecordWriter {
    pub(super) fn new(stream: TcpStream, role: Role, transit_key: &[u8; 32]) -> Self {
        Self {
            stream,
            sealer: RecordSealer::new(role, transit_key),
            buf: Vec::new(),
        }
    }

    /// Encrypts and sends one record (blocking). The record is fully written to the socket
    /// when this returns. Records up to 64 MiB; 256 KiB–1 MiB is fastest.
    pub(crate) fn send_record(&mut self, plaintext: &[u8]) -> io::Result<()> {
        self.buf.clear();
        self.sealer
            .seal_into(plaintext, &mut self.buf)
            .map_err(invalid)?;
        self.stream.write_all(&self.buf)
    }

    /// Encrypts one record in place and sends it (blocking): `frame` is [`FRAME_HEADER_LEN`] bytes
    /// of room followed by the plaintext (at most 64 MiB). On return the frame holds the
    /// record's wire form, fully written to the socket.
    pub(crate) fn send_frame(&mut self, frame: &mut [u8]) -> io::Result<()> {
        self.sealer.seal_frame(frame).map_err(invalid)?;
        self.stream.write_all(frame)
    }

    /// Records sent so far.
    #[cfg(test)]
    pub(crate) fn records_sent(&self) -> u64 {
        self.sealer.count()
    }
}

/// Receives and decrypts records; a bad nonce, a bad MAC or an oversized length is an error.
pub(crate) struct RecordReader {
    stream: TcpStream,
    opener: RecordOpener,
    /// Bytes read but not yet used: `small[start..end]`.
    small: Vec<u8>,
    start: usize,
    end: usize,
}

impl RecordReader {
    pub(super) fn new(
        stream: TcpStream,
        leftover: Vec<u8>,
        role: Role,
        transit_key: &[u8; 32],
    ) -> Self {
        let end = leftover.len();
        let mut small = leftover;
        small.resize(end.max(SMALL_BUFFER), 0);
        Self {
            stream,
            opener: RecordOpener::new(role, transit_key),
            small,
            start: 0,
            end,
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.small[self.start..self.end]
    }

    /// Reads until at least `n` (≤ [`SMALL_BUFFER`]) bytes are buffered; `Ok(false)` if the
    /// stream ends first.
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        if self.end - self.start >= n {
            return Ok(true);
        }
        if self.start > 0 {
            self.small.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < n {
            match self.stream.read(&mut self.small[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(got) => self.end += got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Waits for the next record's header and returns the length of its plaintext (at most
    /// 64 MiB), without consuming anything; `Ok(None)` at a clean end of stream. Lets a caller
    /// refuse a record, or pick a buffer for it, before its body is read.
    pub(crate) fn next_record_len(&mut self) -> io::Result<Option<usize>> {
        if !self.fill(LENGTH_LEN)? {
            return if self.end == self.start {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "end of stream inside a record's length prefix",
                ))
            };
        }
        let mut prefix = [0u8; LENGTH_LEN];
        prefix.copy_from_slice(&self.buffered()[..LENGTH_LEN]);
        let len = RecordOpener::parse_length(prefix).map_err(invalid)?;
        if !self.fill(FRAME_HEADER_LEN)? {
            return Err(eof_inside());
        }
        Ok(Some(len - RECORD_OVERHEAD))
    }

    /// Receives one record (blocking) into `buf`, which it replaces (`buf.len()` is the
    /// plaintext's length afterwards; its capacity is reused, and pass it back with its length
    /// to avoid zero-filling). `Ok(false)` at a clean end of stream. Errors of kind
    /// `InvalidData` wrap a [`RecordError`] (bad nonce, bad MAC, bad length); an end of stream
    /// inside a record is `UnexpectedEof`.
    pub(crate) fn receive_record_into(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        let Some(ct_len) = self.next_record_len()? else {
            return Ok(false);
        };
        let mut head = [0u8; RECORD_OVERHEAD];
        head.copy_from_slice(&self.buffered()[LENGTH_LEN..FRAME_HEADER_LEN]);
        self.start += FRAME_HEADER_LEN;
        if ct_len <= SMALL_BUFFER {
            if !self.fill(ct_len)? {
                return Err(eof_inside());
            }
            buf.clear();
            buf.extend_from_slice(&self.buffered()[..ct_len]);
            self.start += ct_len;
        } else {
            self.read_large(ct_len, buf)?;
        }
        self.opener.open_in_place(&head, buf).map_err(invalid)?;
        Ok(true)
    }

    /// Reads `ct_len` bytes of ciphertext into `buf`: what is buffered, then straight from
    /// the socket, reading ahead at most the next record's header (kept in the small buffer).
    fn read_large(&mut self, ct_len: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        let mut filled = (self.end - self.start).min(ct_len);
        // Overwritten below; only bytes beyond the buffer's current length are zeroed.
        buf.resize(filled.max(buf.len().min(ct_len + FRAME_HEADER_LEN)), 0);
        buf[..filled].copy_from_slice(&self.small[self.start..self.start + filled]);
        self.start += filled;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        let want = ct_len + FRAME_HEADER_LEN;
        while filled < ct_len {
            let room = want.min(filled + GROW_STEP);
            if buf.len() < room {
                buf.resize(room, 0);
            }
            match self.stream.read(&mut buf[filled..room]) {
                Ok(0) => return Err(eof_inside()),
                Ok(got) => filled += got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled > ct_len {
            // Read ahead: the start of the next record. The small buffer is empty here.
            let extra = filled - ct_len;
            self.small[..extra].copy_from_slice(&buf[ct_len..filled]);
            (self.start, self.end) = (0, extra);
        }
        buf.truncate(ct_len);
        Ok(())
    }

    /// Receives one record (blocking); `Ok(None)` at a clean end of stream. Errors as for
    /// [`RecordReader::receive_record_into`].
    pub(crate) fn receive_record(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        Ok(self.receive_record_into(&mut buf)?.then_some(buf))
    }

    /// Records received so far.
    #[cfg(test)]
    pub(crate) fn records_received(&self) -> u64 {
        self.opener.count()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    use wormhole_protocol::transit::record::MAX_RECORD_LEN;

    use super::*;

    const KEY: [u8; 32] = [0x33; 32];

    fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    fn plain(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 7 + seed) % 251) as u8).collect()
    }

    /// Every size around the small buffer and the read-ahead, framed in place or copied, with
    /// the first bytes already read along with the handshake, into one recycled buffer.
    #[test]
    fn records_of_every_size_arrive_in_one_recycled_buffer() {
        let sizes = [
            0,
            1,
            16 << 10,
            SMALL_BUFFER - 1,
            SMALL_BUFFER,
            SMALL_BUFFER + 1,
            256 << 10,
            3 << 20,
            5,
            256 << 10,
        ];
        let (client, server) = socket_pair();
        // The first record, sealed by hand: its first 30 bytes are the leftover.
        let mut sealer = RecordSealer::new(Role::Sender, &KEY);
        let first = sealer.seal(&plain(100, 99)).expect("seal");
        let leftover = first[..30].to_vec();
        let send = thread::spawn(move || {
            let mut client = client;
            client.write_all(&first[30..]).expect("rest of the first");
            let mut writer = RecordWriter {
                stream: client,
                sealer,
                buf: Vec::new(),
            };
            for (i, &len) in sizes.iter().enumerate() {
                if i % 2 == 0 {
                    let mut frame = vec![0xaa; FRAME_HEADER_LEN];
                    frame.extend_from_slice(&plain(len, i));
                    writer.send_frame(&mut frame).expect("send frame");
                } else {
                    writer.send_record(&plain(len, i)).expect("send record");
                }
            }
        });
        let mut reader = RecordReader::new(server, leftover, Role::Receiver, &KEY);
        let mut buf = Vec::new();
        assert_eq!(reader.next_record_len().expect("len"), Some(100));
        assert!(reader.receive_record_into(&mut buf).expect("first"));
        assert_eq!(buf, plain(100, 99));
        for (i, &len) in sizes.iter().enumerate() {
            assert_eq!(reader.next_record_len().expect("len"), Some(len));
            assert!(reader.receive_record_into(&mut buf).expect("record"));
            assert!(buf == plain(len, i), "record {i} of {len} bytes");
        }
        send.join().expect("sender");
        assert_eq!(reader.next_record_len().expect("clean end"), None);
        assert!(!reader.receive_record_into(&mut buf).expect("clean end"));
        assert_eq!(reader.records_received(), sizes.len() as u64 + 1);
    }

    #[test]
    fn truncated_and_hostile_streams_are_errors() {
        let mut sealer = RecordSealer::new(Role::Sender, &KEY);
        let record = sealer.seal(&plain(300_000, 1)).expect("seal");
        for cut in [2, 4, 20, FRAME_HEADER_LEN, 1000, 200_000, record.len() - 1] {
            let (mut client, server) = socket_pair();
            let part = record[..cut].to_vec();
            let write = thread::spawn(move || client.write_all(&part).expect("write"));
            let mut reader = RecordReader::new(server, Vec::new(), Role::Receiver, &KEY);
            write.join().expect("writer");
            let err = reader.receive_record().expect_err("truncated");
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut {cut}");
        }
        // A huge announced record with little behind it: we hold little.
        let (mut client, server) = socket_pair();
        let mut wire = (MAX_RECORD_LEN as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&[0; 5000]);
        client.write_all(&wire).expect("write");
        drop(client);
        let mut reader = RecordReader::new(server, Vec::new(), Role::Receiver, &KEY);
        let mut buf = Vec::new();
        assert!(reader.receive_record_into(&mut buf).is_err());
        assert!(buf.capacity() <= 2 * GROW_STEP, "{}", buf.capacity());
        // Oversized and bad records.
        for wire in [vec![0xff; 8], vec![0, 0, 0, 39]] {
            let (mut client, server) = socket_pair();
            client.write_all(&wire).expect("write");
            let mut reader = RecordReader::new(server, Vec::new(), Role::Receiver, &KEY);
            let err = reader.next_record_len().expect_err("bad length");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
        let (mut client, server) = socket_pair();
        let mut bad = record;
        bad[100] ^= 1;
        let write = thread::spawn(move || client.write_all(&bad).expect("write"));
        let mut reader = RecordReader::new(server, Vec::new(), Role::Receiver, &KEY);
        let err = reader.receive_record().expect_err("bad mac");
        write.join().expect("writer");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
